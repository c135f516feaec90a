//! Administrative operations behind the `user` and `keys` commands. They work on the same
//! data directory as a running server (SQLite in WAL mode allows it), so an administrator
//! can disable an account while the issuer is serving and the next refresh fails.

use time::OffsetDateTime;

use crate::domain::names::{validate_group, validate_username, NameError};
use crate::secret::{random_token, Secret};
use crate::store::{AuditEvent, NewUser, Store};

/// An administrative operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user or group name is not allowed.
    #[error("invalid {what} {value:?}: {source}")]
    Name {
        /// `user name` or `group`.
        what: &'static str,
        /// The value.
        value: String,
        /// The rule it broke.
        #[source]
        source: NameError,
    },
    /// The password is unusable.
    #[error("the password must be at least 12 characters")]
    WeakPassword,
    /// The e-mail address is not plausible.
    #[error("invalid e-mail address {0:?}")]
    Email(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] crate::password::Error),
}

/// Minimum password length for local accounts (NIST SP 800-63B allows 8; contractors'
/// accounts guard production clusters, so this asks for more).
pub const MIN_PASSWORD_LEN: usize = 12;

/// Creates a local account.
pub async fn add_user(
    store: &Store,
    name: &str,
    groups: &[String],
    email: Option<&str>,
    password: &Secret,
    now: OffsetDateTime,
) -> Result<(), Error> {
    validate_username(name).map_err(|source| Error::Name {
        what: "user name",
        value: name.to_owned(),
        source,
    })?;
    let mut groups = groups.to_vec();
    for g in &groups {
        validate_group(g).map_err(|source| Error::Name {
            what: "group",
            value: g.clone(),
            source,
        })?;
    }
    groups.sort();
    groups.dedup();
    if let Some(e) = email {
        if e.len() > 254 || !e.contains('@') || e.chars().any(char::is_whitespace) {
            return Err(Error::Email(e.to_owned()));
        }
    }
    if password.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::WeakPassword);
    }
    let pw = password.clone();
    let phc = tokio::task::spawn_blocking(move || crate::password::hash(&pw))
        .await
        .map_err(|e| crate::password::Error::from_join(&e))??;
    store
        .create_user(
            &NewUser {
                id: format!("u-{}", random_token(12).expose()),
                username: name.to_owned(),
                email: email.map(str::to_owned),
                password_hash: Some(phc),
                groups,
            },
            now,
        )
        .await?;
    store
        .audit(
            &AuditEvent {
                event: "user.created",
                actor: Some("admin-cli".into()),
                subject: Some(name.to_owned()),
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    Ok(())
}

/// Disables an account and ends its sessions. Returns how many sessions ended.
pub async fn disable_user(store: &Store, name: &str, now: OffsetDateTime) -> Result<u64, Error> {
    let ended = store.disable_user(name, now).await?;
    store
        .audit(
            &AuditEvent {
                event: "user.disabled",
                actor: Some("admin-cli".into()),
                subject: Some(name.to_owned()),
                detail: Some(format!("{{\"sessions_ended\":{ended}}}")),
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    Ok(ended)
}

/// What `policy explain` prints: the Kubernetes groups `user` would get in `cluster`, the rule
/// that gave each, and the identity groups that gave nothing and why.
#[must_use]
pub fn explain(
    policy: &crate::domain::policy::Policy,
    username: &str,
    identity_groups: &[String],
    cluster: &str,
) -> String {
    use crate::domain::policy::Dropped;
    use std::fmt::Write as _;
    let rule = |i: usize| {
        policy
            .rules
            .get(i)
            .map_or_else(String::new, |r| format!("rule {i} ({})", r.group.as_str()))
    };
    let m = policy.map(identity_groups, cluster);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "user {username} in cluster {cluster}: identity groups [{}]",
        identity_groups.join(", ")
    );
    if policy.rules.is_empty() {
        let _ = writeln!(
            out,
            "no policy rules are configured: groups pass unchanged (except system: names)"
        );
    }
    let _ = writeln!(out, "kubernetes groups:");
    if m.granted.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for g in &m.granted {
        let by = g
            .rule
            .map_or_else(|| "no rules (pass-through)".to_owned(), rule);
        let _ = writeln!(out, "  {}  <- {} by {by}", g.group, g.from);
    }
    if !m.dropped.is_empty() {
        let _ = writeln!(out, "dropped:");
    }
    for (g, why) in &m.dropped {
        let why = match why {
            Dropped::Denied(i) => format!("denied by {}", rule(*i)),
            Dropped::NoRule => "no rule matches (default deny)".to_owned(),
            Dropped::Reserved(Some(i)) => {
                format!("{} would give a reserved or invalid name", rule(*i))
            }
            Dropped::Reserved(None) => "reserved or invalid name".to_owned(),
        };
        let _ = writeln!(out, "  {g}  {why}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;

    #[tokio::test]
    async fn add_user_validates_and_hashes() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        let pw = Secret::new("a long enough password");
        let r = add_user(&s, "system:x", &[], None, &pw, now).await;
        assert!(matches!(r, Err(Error::Name { .. })), "{r:?}");
        let r = add_user(&s, "bob", &["system:masters".into()], None, &pw, now).await;
        assert!(matches!(r, Err(Error::Name { .. })), "{r:?}");
        let r = add_user(&s, "bob", &[], None, &Secret::new("short"), now).await;
        assert!(matches!(r, Err(Error::WeakPassword)), "{r:?}");
        add_user(
            &s,
            "bob",
            &["b".into(), "a".into(), "a".into()],
            Some("bob@x.io"),
            &pw,
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let u = s
            .user_by_name("bob")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no bob"));
        assert_eq!(u.groups, ["a", "b"]);
        assert!(crate::password::verify(
            u.password_hash.as_deref().unwrap_or(""),
            &pw
        ));
        assert_eq!(disable_user(&s, "bob", now).await.unwrap_or(99), 0);
        let u = s
            .user_by_name("bob")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no bob"));
        assert!(u.disabled_at.is_some());
    }

    #[test]
    fn explain_names_the_rule_behind_each_group() {
        let text = r#"
[[clusters]]
name = "prod"
[[clusters]]
name = "staging"
[[policy.rules]]
group = "eng-contractors"
deny = true
[[policy.rules]]
group = "eng-*"
kubernetes_groups = ["developers"]
[[policy.rules]]
group = "sre"
kubernetes_groups = ["cluster-admins"]
clusters = ["prod"]
"#;
        let file: crate::config::FileConfig =
            toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let cfg =
            crate::config::Config::from_parts(file, &crate::config::Overrides::default(), || {
                Some("/tmp/x".into())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let groups: Vec<String> = ["eng-contractors", "eng-web", "sales", "sre"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        insta::assert_snapshot!(explain(&cfg.policy, "ann", &groups, "prod"), @r"
        user ann in cluster prod: identity groups [eng-contractors, eng-web, sales, sre]
        kubernetes groups:
          cluster-admins  <- sre by rule 2 (sre)
          developers  <- eng-web by rule 1 (eng-*)
        dropped:
          eng-contractors  denied by rule 0 (eng-contractors)
          sales  no rule matches (default deny)
        ");
        assert!(explain(&cfg.policy, "ann", &groups, "staging").contains("sre  no rule matches"));
    }
}
