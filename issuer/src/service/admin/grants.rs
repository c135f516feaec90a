//! `grant add` and `grant revoke`: time-bound grants of a role, checked against the policy,
//! and the words of `grant add` read into a grant.

use time::OffsetDateTime;

use super::times::parse_time;
use super::Error;
use crate::config::Config;
use crate::domain::grants::{self, Grant, Grantee};
use crate::store::{AuditEvent, Store};

/// Creates a grant after checking it against the policy; its author (`created_by`) is the
/// actor of the audit event. The server makes it real in the cluster within seconds (it polls
/// the grants epoch).
pub async fn add_grant(
    store: &Store,
    config: &Config,
    grant: &Grant,
    now: OffsetDateTime,
) -> Result<Grant, Error> {
    grants::validate(grant, &config.roles, &config.clusters, now)?;
    if let Grantee::User(name) = &grant.grantee {
        if store.user_by_name(name).await?.is_none() {
            return Err(Error::NoSuchUser(name.clone()));
        }
    }
    store.insert_grant(grant, now).await?;
    store
        .audit(
            &AuditEvent::for_grant("grant.created", grant, &grant.created_by, None),
            now,
        )
        .await?;
    Ok(grant.clone())
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
        .audit(
            &AuditEvent::for_grant("grant.revoked", &grant, actor, reason),
            now,
        )
        .await?;
    Ok(grant)
}

/// A grant as typed at `grant add`, before it is checked: who, where, what, when and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantWords {
    /// The person (login name).
    pub user: Option<String>,
    /// Everyone in this group.
    pub group: Option<String>,
    /// Cluster.
    pub cluster: String,
    /// Namespace (repeatable); none means cluster-wide.
    pub namespaces: Vec<String>,
    /// Role from the issuer's policy (`[[roles]]`).
    pub role: String,
    /// Start (RFC 3339 or YYYY-MM-DD); default now.
    pub from: Option<String>,
    /// End (RFC 3339, or YYYY-MM-DD meaning the end of that day, UTC).
    pub until: Option<String>,
    /// Length from the start, e.g. 8h.
    pub for_: Option<String>,
    /// Why (shown in `grant list`, recorded in the audit trail).
    pub reason: Option<String>,
}

/// The grant `grant add` asks for: `--user`/`--group`, `--from` (default now), and `--until`
/// or `--for`; a fresh id, by the administrator.
pub fn new_grant(a: &GrantWords, now: OffsetDateTime) -> Result<Grant, Error> {
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
    Ok(Grant {
        id: grant_id(),
        grantee,
        cluster: a.cluster.clone(),
        namespaces: a.namespaces.clone(),
        role: a.role.clone(),
        starts_at,
        ends_at,
        reason: a.reason.clone(),
        created_by: super::ADMIN_ACTOR.to_owned(),
        approved_by: None,
        request_id: None,
        revoked_at: None,
        revoked_by: None,
    })
}

/// A grant (or access request) id: 10 lower-case hex digits, usable in Kubernetes object names
/// and labels.
#[must_use]
pub fn grant_id() -> String {
    crate::secrets::secret::hex(&crate::secrets::secret::random_bytes(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::secret::Secret;
    use crate::service::admin::{add_user, grant_table, ADMIN_ACTOR};
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
        let new = Grant {
            id: grant_id(),
            grantee: Grantee::User("alice".into()),
            cluster: "default".into(),
            namespaces: vec![],
            role: "viewer".into(),
            starts_at: now,
            ends_at: now + time::Duration::hours(1),
            reason: Some("on call".into()),
            created_by: ADMIN_ACTOR.into(),
            approved_by: None,
            request_id: None,
            revoked_at: None,
            revoked_by: None,
        };
        let r = add_grant(&s, &config, &new, now).await;
        assert!(matches!(r, Err(Error::NoSuchUser(_))), "{r:?}");
        let r = add_grant(
            &s,
            &config,
            &Grant {
                role: "admin".into(),
                ..new.clone()
            },
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
        let g = add_grant(&s, &config, &new, now)
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
        let args = GrantWords {
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
            &GrantWords {
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
}
