//! Administrative operations behind the `user`, `grant` and `keys` commands. They work on the same
//! data directory as a running server (`SQLite` in WAL mode allows it), so an administrator
//! can disable an account while the issuer is serving and the next refresh fails.

use time::OffsetDateTime;

use crate::cli::GrantAddArgs;
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

/// The grant `grant add` asks for: `--user`/`--group`, `--from` (default now), and `--until`
/// or `--for`.
pub fn new_grant(a: &GrantAddArgs, now: OffsetDateTime) -> Result<NewGrant, Error> {
    let grantee = match (&a.user, &a.group) {
        (Some(u), None) => Grantee::User(u.clone()),
        (None, Some(g)) => Grantee::Group(g.clone()),
        _ => {
            return Err(Error::Time {
                flag: "--user/--group",
                message: "give exactly one of them".into(),
            })
        }
    };
    let starts_at = match &a.from {
        Some(s) => parse_time("--from", s, false)?,
        None => now,
    };
    let ends_at = match (&a.until, &a.for_) {
        (Some(s), None) => parse_time("--until", s, true)?,
        (None, Some(d)) => {
            let d = crate::config::parse_duration(d).ok_or_else(|| Error::Time {
                flag: "--for",
                message: format!("`{d}` is not a duration like 90s, 5m, 8h or 30d"),
            })?;
            starts_at + grants::span(d)
        }
        _ => {
            return Err(Error::Time {
                flag: "--until/--for",
                message: "give exactly one of them".into(),
            })
        }
    };
    Ok(NewGrant {
        grantee,
        cluster: a.cluster.clone(),
        namespaces: a.namespaces.clone(),
        role: a.role.clone(),
        starts_at,
        ends_at,
        reason: a.reason.clone(),
        approved_by: None,
        request_id: None,
    })
}

/// Where a grant applies: `prod/ns1,ns2` or `prod (cluster-wide)`.
#[must_use]
pub fn grant_scope(g: &Grant) -> String {
    if g.namespaces.is_empty() {
        format!("{} (cluster-wide)", g.cluster)
    } else {
        format!("{}/{}", g.cluster, g.namespaces.join(","))
    }
}

/// `2026-12-31 18:00:00Z`.
#[must_use]
pub fn format_time(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The table `grant list` prints.
#[must_use]
pub fn grant_table(grants: &[Grant], now: OffsetDateTime) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<10}  {:<20}  {:<12}  {:<28}  {:<20}  {:<20}  {:<8}  REASON\n",
        "ID", "WHO", "ROLE", "WHERE", "FROM", "UNTIL", "STATUS"
    );
    for g in grants {
        let _ = writeln!(
            out,
            "{:<10}  {:<20}  {:<12}  {:<28}  {:<20}  {:<20}  {:<8}  {}",
            g.id,
            g.grantee.to_string(),
            g.role,
            grant_scope(g),
            format_time(g.starts_at),
            format_time(g.ends_at),
            g.status(now).as_str(),
            g.reason.as_deref().unwrap_or("")
        );
    }
    out
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
    async fn grants_are_checked_stored_audited_and_revoked() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        let file = crate::config::FileConfig {
            roles: vec![crate::config::FileRole {
                name: "viewer".into(),
                cluster_role: Some("view".into()),
                ..crate::config::FileRole::default()
            }],
            ..crate::config::FileConfig::default()
        };
        let config = Config::from_parts(file, &crate::config::Overrides::default(), || {
            Some("/tmp/x".into())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let new = NewGrant {
            grantee: Grantee::User("alice".into()),
            cluster: "default".into(),
            namespaces: vec![],
            role: "viewer".into(),
            starts_at: now,
            ends_at: now + time::Duration::hours(1),
            reason: Some("on call".into()),
            approved_by: None,
            request_id: None,
        };
        let r = add_grant(&s, &config, &new, ADMIN_ACTOR, now).await;
        assert!(matches!(r, Err(Error::NoSuchUser(_))), "{r:?}");
        let r = add_grant(
            &s,
            &config,
            &NewGrant {
                role: "admin".into(),
                ..new.clone()
            },
            ADMIN_ACTOR,
            now,
        )
        .await;
        assert!(matches!(r, Err(Error::Grant(_))), "{r:?}");
        add_user(
            &s,
            "alice",
            &[],
            None,
            &Secret::new("a long enough password"),
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let g = add_grant(&s, &config, &new, ADMIN_ACTOR, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        revoke_grant(&s, &g.id, Some("done"), ADMIN_ACTOR, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.audit_events_for("user:alice").await.unwrap_or_default(),
            ["grant.created", "grant.revoked"]
        );
    }

    #[test]
    fn grant_requests_and_the_list_table() {
        let now = time::macros::datetime!(2026-06-01 12:00 UTC);
        let args = GrantAddArgs {
            user: Some("alice".into()),
            group: None,
            cluster: "prod".into(),
            namespaces: vec!["web".into(), "db".into()],
            role: "deployer".into(),
            from: None,
            until: None,
            for_: Some("8h".into()),
            reason: Some("release".into()),
        };
        let new = new_grant(&args, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (new.starts_at, new.ends_at),
            (now, now + time::Duration::hours(8))
        );
        let bad = new_grant(
            &GrantAddArgs {
                for_: Some("a while".into()),
                ..args
            },
            now,
        );
        assert!(bad.err().is_some_and(|e| e.to_string().contains("--for")));

        let grant = |id: &str, grantee, namespaces: Vec<String>, revoked| Grant {
            id: id.into(),
            grantee,
            cluster: "prod".into(),
            namespaces,
            role: "deployer".into(),
            starts_at: now,
            ends_at: now + time::Duration::hours(8),
            reason: Some("release".into()),
            created_by: ADMIN_ACTOR.into(),
            approved_by: None,
            request_id: None,
            revoked_at: revoked,
            revoked_by: None,
        };
        let table = grant_table(
            &[
                grant(
                    "0a1b2c3d4e",
                    Grantee::User("alice".into()),
                    vec!["web".into(), "db".into()],
                    None,
                ),
                grant(
                    "5f6a7b8c9d",
                    Grantee::Group("sre".into()),
                    vec![],
                    Some(now),
                ),
            ],
            now,
        );
        let want = "\
ID          WHO                   ROLE          WHERE                         FROM                  UNTIL                 STATUS    REASON
0a1b2c3d4e  user:alice            deployer      prod/web,db                   2026-06-01 12:00:00Z  2026-06-01 20:00:00Z  active    release
5f6a7b8c9d  group:sre             deployer      prod (cluster-wide)           2026-06-01 12:00:00Z  2026-06-01 20:00:00Z  revoked   release
";
        assert_eq!(table, want);
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
