//! Administrative operations behind the `user`, `grant` and `keys` commands. They work on the same
//! data directory as a running server (`SQLite` in WAL mode allows it), so an administrator
//! can disable an account while the issuer is serving and the next refresh fails.

use time::OffsetDateTime;

use crate::config::Config;
use crate::domain::grants::{self, Grant, Grantee, NewGrant};
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
    /// The grant breaks a rule of the policy.
    #[error(transparent)]
    Grant(#[from] crate::domain::grants::GrantError),
    /// A grant for a user who has no account.
    #[error("no user {0:?}; create the account first (user add)")]
    NoSuchUser(String),
    /// A time or duration flag could not be read.
    #[error("{flag}: {message}")]
    Time {
        /// The flag.
        flag: &'static str,
        /// What is expected.
        message: String,
    },
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

/// Disables an account and ends its sessions. Returns how many sessions ended. Its grants stop
/// counting at once: the store leaves grants of disabled accounts out, and disabling bumps the
/// grants epoch, so the server's reconciler removes the bindings within seconds.
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

/// Who the admin CLI acts as in the audit trail.
pub const ADMIN_ACTOR: &str = "admin-cli";

/// Creates a grant after checking it against the policy. The server makes it real in the
/// cluster within seconds (it polls the grants epoch).
pub async fn add_grant(
    store: &Store,
    config: &Config,
    new: &NewGrant,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Grant, Error> {
    grants::validate(new, &config.roles, &config.clusters, now)?;
    if let Grantee::User(name) = &new.grantee {
        if store.user_by_name(name).await?.is_none() {
            return Err(Error::NoSuchUser(name.clone()));
        }
    }
    let grant = Grant {
        id: grant_id(),
        grantee: new.grantee.clone(),
        cluster: new.cluster.clone(),
        namespaces: new.namespaces.clone(),
        role: new.role.clone(),
        starts_at: new.starts_at,
        ends_at: new.ends_at,
        reason: new.reason.clone(),
        created_by: actor.to_owned(),
        approved_by: new.approved_by.clone(),
        request_id: new.request_id.clone(),
        revoked_at: None,
        revoked_by: None,
    };
    store.insert_grant(&grant, now).await?;
    store
        .audit(&grant_event("grant.created", &grant, actor, None), now)
        .await?;
    Ok(grant)
}

/// Revokes a grant; the server removes its bindings within seconds.
pub async fn revoke_grant(
    store: &Store,
    id: &str,
    reason: Option<&str>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Grant, Error> {
    let grant = store.revoke_grant(id, actor, reason, now).await?;
    store
        .audit(&grant_event("grant.revoked", &grant, actor, reason), now)
        .await?;
    Ok(grant)
}

fn grant_event(
    event: &'static str,
    g: &Grant,
    actor: &str,
    revoke_reason: Option<&str>,
) -> AuditEvent {
    let detail = serde_json::json!({
        "grant_id": g.id,
        "namespaces": g.namespaces,
        "role": g.role,
        "starts_at": g.starts_at.unix_timestamp(),
        "ends_at": g.ends_at.unix_timestamp(),
        "reason": revoke_reason.map(str::to_owned).or_else(|| g.reason.clone()),
        "approver": g.approved_by,
    });
    AuditEvent {
        event,
        actor: Some(actor.to_owned()),
        subject: Some(g.grantee.to_string()),
        cluster: Some(g.cluster.clone()),
        request_id: g.request_id.clone(),
        detail: Some(detail.to_string()),
        ..AuditEvent::default()
    }
}

/// A grant id: 10 lower-case hex digits, usable in Kubernetes object names and labels.
fn grant_id() -> String {
    use std::fmt::Write as _;
    crate::secret::random_bytes(5)
        .iter()
        .fold(String::with_capacity(10), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Reads `--from`/`--until`: RFC 3339 (`2026-12-31T18:00:00Z`), or a date (`2026-12-31`),
/// which means the start of that day (UTC) for `--from` and its end for `--until`.
pub fn parse_time(flag: &'static str, s: &str, end_of_day: bool) -> Result<OffsetDateTime, Error> {
    let bad = || Error::Time {
        flag,
        message: format!("`{s}` is not a time like 2026-12-31 or 2026-12-31T18:00:00Z"),
    };
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, &format).map_err(|_| bad())?;
    let start = date.midnight().assume_utc();
    Ok(if end_of_day {
        start + time::Duration::days(1)
    } else {
        start
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;

    #[test]
    fn grant_times() {
        let t = parse_time("--until", "2026-12-31", true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t, time::macros::datetime!(2027-01-01 00:00 UTC));
        let t = parse_time("--from", "2026-12-31", false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t, time::macros::datetime!(2026-12-31 00:00 UTC));
        let t = parse_time("--from", "2026-12-31T18:00:00+01:00", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t, time::macros::datetime!(2026-12-31 17:00 UTC));
        let e = parse_time("--until", "tomorrow", true)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("--until")));
        let id = grant_id();
        assert_eq!(id.len(), 10);
        assert!(crate::domain::grants::is_dns_label(&id));
    }

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
}
