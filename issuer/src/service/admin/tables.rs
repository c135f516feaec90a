//! The tables `grant list` and `request list` print, escaped for a terminal.

use credential_shared::text::Untrusted;
use time::OffsetDateTime;

use super::times::format_time;
use crate::domain::grants::Grant;

/// Where a grant applies: `prod/ns1,ns2` or `prod (cluster-wide)`, escaped for a terminal.
#[must_use]
pub fn grant_scope(g: &Grant) -> String {
    scope(&g.cluster, &g.namespaces)
}

/// `cluster/ns1,ns2` or `cluster (cluster-wide)`, escaped for a terminal.
fn scope(cluster: &str, namespaces: &[String]) -> String {
    if namespaces.is_empty() {
        format!("{} (cluster-wide)", Untrusted::new(cluster))
    } else {
        format!(
            "{}/{}",
            Untrusted::new(cluster),
            Untrusted::long(namespaces.join(","))
        )
    }
}

/// The table `grant list` prints. Names, roles and reasons are escaped: they came from
/// people (a reason typed into a request form, a name from an identity provider).
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
            Untrusted::new(&g.id),
            Untrusted::new(&g.grantee),
            Untrusted::new(&g.role),
            grant_scope(g),
            format_time(g.starts_at),
            format_time(g.ends_at),
            g.status(now).as_str(),
            Untrusted::long(g.reason.as_deref().unwrap_or(""))
        );
    }
    out
}

/// The table `request list` prints, escaped as [`grant_table`] is.
#[must_use]
pub fn request_table(
    requests: &[crate::domain::requests::AccessRequest],
    now: OffsetDateTime,
) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<10}  {:<16}  {:<12}  {:<28}  {:<8}  {:<9}  {:<20}  {:<16}  REASON\n",
        "ID", "REQUESTER", "ROLE", "WHERE", "FOR", "STATUS", "FILED", "DECIDED BY"
    );
    for r in requests {
        let scope = scope(&r.cluster, &r.namespaces);
        let _ = writeln!(
            out,
            "{:<10}  {:<16}  {:<12}  {:<28}  {:<8}  {:<9}  {:<20}  {:<16}  {}",
            Untrusted::new(&r.id),
            Untrusted::new(&r.requester),
            Untrusted::new(&r.role),
            scope,
            crate::domain::requests::format_duration(r.duration),
            r.status_at(now).as_str(),
            format_time(r.created_at),
            Untrusted::new(r.decided_by.as_deref().unwrap_or("-")),
            Untrusted::long(r.reason.as_deref().unwrap_or(""))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grants::Grantee;
    use crate::service::admin::{explain, ADMIN_ACTOR};
    use time::macros::datetime;

    /// Names, roles and reasons come from people and identity providers: an escape sequence
    /// or a newline in one reaches the operator's terminal escaped, on its own row.
    #[test]
    fn tables_and_explain_escape_names_from_outside() {
        let now = datetime!(2026-11-25 12:00 UTC);
        let evil = "mallory\x1b[31m\n2026-11-25 INFO admin-cli granted";
        let grant = Grant {
            id: "0a1b2c3d4e".into(),
            grantee: Grantee::User(evil.into()),
            cluster: "prod".into(),
            namespaces: vec!["pay\u{202e}ments".into()],
            role: "viewer\x1b]0;pwned\x07".into(),
            starts_at: now,
            ends_at: now + time::Duration::hours(1),
            reason: Some("x".repeat(1 << 20)),
            created_by: ADMIN_ACTOR.into(),
            approved_by: None,
            request_id: None,
            revoked_at: None,
            revoked_by: None,
        };
        let text = grant_table(&[grant], now);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains(r"user:mallory\x1b[31m\n2026-11-25 INFO"),
            "{text}"
        );
        assert!(text.contains(r"prod/pay\u{202e}ments"), "{text}");
        assert!(text.contains(r"viewer\x1b]0;pwned\x07"), "{text}");
        assert!(text.len() < 2000, "not bounded: {} bytes", text.len());
        assert!(!text.contains(['\x1b', '\x07', '\u{202e}']), "{text}");

        let request = crate::domain::requests::AccessRequest {
            id: "4f2a9c01de".into(),
            requester: evil.into(),
            cluster: "prod".into(),
            role: "viewer".into(),
            namespaces: vec![],
            reason: Some("because\r\n4f2a9c01de  root".into()),
            duration: std::time::Duration::from_secs(1800),
            created_at: now,
            expires_at: now + time::Duration::hours(1),
            status: crate::domain::requests::RequestStatus::Pending,
            decided_by: Some("bob\u{9b}2J".into()),
            comment: None,
            decided_at: None,
            grant_id: None,
            client_addr: None,
        };
        let text = request_table(&[request], now);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(r"because\r\n4f2a9c01de  root"), "{text}");
        assert!(text.contains(r"bob\u{9b}2J"), "{text}");
        assert!(!text.contains(['\x1b', '\r', '\u{9b}']), "{text}");

        let policy = crate::domain::policy::Policy::default();
        let groups = [
            "dev\nkubernetes groups:".to_owned(),
            "ops\x1b[8m".to_owned(),
        ];
        let text = explain(&policy, evil, &groups, "prod");
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains(r"[dev\nkubernetes groups:, ops\x1b[8m]"),
            "{text}"
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("kubernetes groups:"))
                .count(),
            1,
            "a forged line: {text}"
        );
    }
}
