//! What `audit access` and `report stale` do beyond parsing flags: read the rows, let
//! [`crate::domain::access`] assemble the answer, and render it as a table for people or as
//! JSON lines for tools. Usable from tests without a process.

use std::fmt::Write as _;

use credential_shared::text::{escape_json, Untrusted};
use time::OffsetDateTime;

use crate::config::Config;
use crate::domain::access::{self, AccessReport, Account, BoundNow, StaleReport, Window};
use crate::store::{self, GrantFilter, Store};

/// Output formats of the reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// One JSON object per line, each with a `kind`.
    Jsonl,
}

/// The RBAC part of the access report: read from the cluster now, or why not.
#[derive(Debug, Clone)]
pub enum Bindings {
    /// Read at the time of the report.
    Read(Vec<BoundNow>),
    /// Not read (no access configured, unreachable).
    NotRead(String),
}

/// Everything `audit access` prints.
#[derive(Debug, Clone)]
pub struct Access {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// The window.
    pub window: Window,
    /// Grants, groups, people.
    pub report: AccessReport,
    /// Bindings now.
    pub bindings: Bindings,
}

/// Reads and assembles the access report. Bindings are read with the reconciler's kubeconfig
/// when the cluster has one.
pub async fn audit_access(
    store: &Store,
    config: &Config,
    cluster: &str,
    namespace: &str,
    window: Window,
    now: OffsetDateTime,
) -> Result<Access, store::Error> {
    let grants = store
        .list_grants(
            &GrantFilter {
                cluster: Some(cluster.to_owned()),
                all: true,
                ..GrantFilter::default()
            },
            now,
        )
        .await?;
    let tokens = store
        .token_events(cluster, window.since, window.until)
        .await?;
    let report = access::access_report(cluster, namespace, window, &grants, &tokens, now);
    let bindings = match config.cluster(cluster) {
        None => Bindings::NotRead(format!("cluster `{cluster}` is not in the configuration")),
        Some(c) => match crate::kube::bindings::bound_now(c, namespace).await {
            Ok(b) => Bindings::Read(b),
            Err(e) => Bindings::NotRead(e.to_string()),
        },
    };
    Ok(Access {
        cluster: cluster.to_owned(),
        namespace: namespace.to_owned(),
        window,
        report,
        bindings,
    })
}

/// Reads and assembles the stale report.
pub async fn stale(
    store: &Store,
    days: u32,
    now: OffsetDateTime,
) -> Result<StaleReport, store::Error> {
    let accounts: Vec<Account> = store
        .list_users()
        .await?
        .into_iter()
        .map(|u| Account {
            enabled: u.disabled_at.is_none() && !u.is_expired(now),
            created_at: u.created_at,
            kind: u.kind.as_str(),
            id: u.id,
            username: u.username,
            groups: u.groups,
        })
        .collect();
    let grants = store.list_grants(&GrantFilter::default(), now).await?;
    let last = store.last_tokens().await?;
    Ok(access::stale_report(&accounts, &grants, &last, days, now))
}

/// RFC 3339 in UTC.
#[must_use]
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Whole seconds: `--until`'s default (now) would otherwise print with nanoseconds, and
    // every time in the store is whole seconds anyway.
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn or_dash(s: Option<&str>) -> &str {
    s.filter(|s| !s.is_empty()).unwrap_or("-")
}

fn namespaces(g: &crate::domain::grants::Grant) -> String {
    if g.namespaces.is_empty() {
        "(cluster-wide)".to_owned()
    } else {
        Untrusted::long(g.namespaces.join(",")).to_string()
    }
}

/// An optional value from outside for a table: escaped, or `-`.
fn or_dash_escaped(s: Option<&str>) -> Untrusted<&str> {
    Untrusted::new(or_dash(s))
}

/// Renders the access report. In the table every name, reason and error text is escaped
/// (they come from people, identity providers and the cluster); JSON lines are escaped by
/// JSON.
#[must_use]
pub fn render_access(a: &Access, format: Format) -> String {
    match format {
        Format::Table => access_table(a),
        Format::Jsonl => access_jsonl(a),
    }
}

fn access_table(a: &Access) -> String {
    let mut out = String::new();
    let r = &a.report;
    let _ = writeln!(
        out,
        "access to namespace {} in cluster {} from {} until {}",
        Untrusted::new(&a.namespace),
        Untrusted::new(&a.cluster),
        rfc3339(a.window.since),
        rfc3339(a.window.until)
    );
    let _ = writeln!(
        out,
        "\ngrants in force in the window (this namespace or cluster-wide):"
    );
    if r.grants.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for g in &r.grants {
        let _ = writeln!(
            out,
            "  {}  {}  role {} in {}  from {} to {} ({})  reason: {}  approved by: {}  request: {}  created by: {}",
            Untrusted::new(&g.grant.grantee),
            Untrusted::new(&g.grant.id),
            Untrusted::new(&g.grant.role),
            namespaces(&g.grant),
            rfc3339(g.from),
            rfc3339(g.to),
            g.ended.as_str(),
            Untrusted::long(or_dash(g.grant.reason.as_deref())),
            or_dash_escaped(g.grant.approved_by.as_deref()),
            or_dash_escaped(g.grant.request_id.as_deref()),
            Untrusted::new(&g.grant.created_by),
        );
    }
    let _ = writeln!(
        out,
        "\nissuer identities bound to roles in {} NOW (read from the cluster at the time of this report, not as of the window):",
        Untrusted::new(&a.namespace)
    );
    match &a.bindings {
        Bindings::NotRead(why) => {
            let _ = writeln!(out, "  not read: {}", Untrusted::long(why));
        }
        Bindings::Read(b) if b.is_empty() => {
            let _ = writeln!(out, "  (none)");
        }
        Bindings::Read(b) => {
            for b in b {
                let _ = writeln!(
                    out,
                    "  {} {}  {}  by {}",
                    Untrusted::new(&b.kind),
                    Untrusted::new(&b.subject),
                    Untrusted::new(&b.role),
                    Untrusted::new(&b.binding)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "\npeople who could reach {} and obtained tokens for {} in the window, and how:",
        Untrusted::new(&a.namespace),
        Untrusted::new(&a.cluster)
    );
    let reached = a.reached();
    if reached.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for p in &reached {
        let via: Vec<String> = p.via.iter().map(describe_via).collect();
        let _ = writeln!(
            out,
            "  {}  via {}",
            Untrusted::new(&p.who),
            Untrusted::long(via.join("; "))
        );
    }
    if matches!(a.bindings, Bindings::NotRead(_)) {
        let _ = writeln!(
            out,
            "  (through grants only: the namespace's bindings could not be read, see below)"
        );
    }
    let _ = writeln!(
        out,
        "\nCLUSTER-WIDE, not evidence of access to {}: groups in the tokens issued for {} in the window (RBAC sees credential:<group>):",
        Untrusted::new(&a.namespace),
        Untrusted::new(&a.cluster)
    );
    if r.groups.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for g in &r.groups {
        let _ = writeln!(
            out,
            "  group:{}  members: {}",
            Untrusted::new(&g.group),
            Untrusted::long(g.members.join(", "))
        );
    }
    let _ = writeln!(
        out,
        "\nCLUSTER-WIDE, not evidence of access to {}: people who obtained tokens for {} in the window:",
        Untrusted::new(&a.namespace),
        Untrusted::new(&a.cluster)
    );
    if r.people.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for p in &r.people {
        let _ = write!(
            out,
            "  {}  first {}  last {}  logins {}  refreshes {}",
            Untrusted::new(&p.who),
            rfc3339(p.first),
            rfc3339(p.last),
            p.logins,
            p.refreshes
        );
        if p.machine_tokens > 0 {
            let _ = write!(out, "  machine tokens {}", p.machine_tokens);
        }
        out.push('\n');
    }
    out
}

/// `via grant g-1 (role deployer)` / `via group credential:x (RoleBinding ns/b, ClusterRole/edit)`.
fn describe_via(v: &access::Via) -> String {
    match v {
        access::Via::Grant { id, role } => format!("grant {id} (role {role})"),
        access::Via::Binding {
            subject,
            binding,
            role,
        } => format!("{subject} ({binding}, {role})"),
    }
}

impl Access {
    /// The people who could reach the namespace (see [`access::reached`]).
    #[must_use]
    pub fn reached(&self) -> Vec<access::Reached> {
        let bound: &[access::BoundNow] = match &self.bindings {
            Bindings::Read(b) => b,
            Bindings::NotRead(_) => &[],
        };
        access::reached(&self.report, bound, crate::kube::bindings::PREFIX)
    }
}

/// One JSON line; the characters JSON leaves raw that a terminal would obey are escaped too.
fn line(out: &mut String, v: &serde_json::Value) {
    let _ = writeln!(out, "{}", escape_json(&v.to_string()));
}

fn access_jsonl(a: &Access) -> String {
    use serde_json::json;
    let mut out = String::new();
    for g in &a.report.grants {
        line(
            &mut out,
            &json!({
                "kind": "grant",
                "cluster": a.cluster,
                "namespace": a.namespace,
                "grant_id": g.grant.id,
                "grantee": g.grant.grantee.to_string(),
                "role": g.grant.role,
                "namespaces": g.grant.namespaces,
                "from": rfc3339(g.from),
                "to": rfc3339(g.to),
                "status": g.ended.as_str(),
                "reason": g.grant.reason,
                "approver": g.grant.approved_by,
                "request_id": g.grant.request_id,
                "created_by": g.grant.created_by,
            }),
        );
    }
    for p in a.reached() {
        let via: Vec<serde_json::Value> = p
            .via
            .iter()
            .map(|v| match v {
                access::Via::Grant { id, role } => json!({"grant_id": id, "role": role}),
                access::Via::Binding {
                    subject,
                    binding,
                    role,
                } => json!({"subject": subject, "binding": binding, "role": role}),
            })
            .collect();
        line(
            &mut out,
            &json!({"kind": "reached", "cluster": a.cluster, "namespace": a.namespace, "user": p.who, "via": via}),
        );
    }
    for g in &a.report.groups {
        line(
            &mut out,
            &json!({"kind": "group", "scope": "cluster", "cluster": a.cluster, "group": g.group, "members": g.members}),
        );
    }
    match &a.bindings {
        Bindings::Read(b) => {
            for b in b {
                line(
                    &mut out,
                    &json!({
                        "kind": "binding_now",
                        "cluster": a.cluster,
                        "namespace": a.namespace,
                        "binding": b.binding,
                        "role": b.role,
                        "subject_kind": b.kind,
                        "subject": b.subject,
                    }),
                );
            }
        }
        Bindings::NotRead(why) => line(
            &mut out,
            &json!({"kind": "bindings_not_read", "cluster": a.cluster, "reason": why}),
        ),
    }
    for p in &a.report.people {
        line(
            &mut out,
            &json!({
                // A machine identity (CI job, machine client) never logs in or refreshes.
                "kind": if p.logins + p.refreshes == 0 && p.machine_tokens > 0 { "machine" } else { "person" },
                "scope": "cluster",
                "cluster": a.cluster,
                "user": p.who,
                "first": rfc3339(p.first),
                "last": rfc3339(p.last),
                "logins": p.logins,
                "refreshes": p.refreshes,
                "machine_tokens": p.machine_tokens,
            }),
        );
    }
    out
}

/// Renders the stale report (empty text for an empty report in JSON lines; a one-line "nothing
/// stale" in a table).
#[must_use]
pub fn render_stale(r: &StaleReport, days: u32, format: Format) -> String {
    use serde_json::json;
    let last = |t: Option<OffsetDateTime>| t.map_or_else(|| "never".to_owned(), rfc3339);
    let mut out = String::new();
    match format {
        Format::Jsonl => {
            for p in &r.people {
                line(
                    &mut out,
                    &json!({
                        // `person`, `workload` or `machine`; grants follow as `grant`.
                        "kind": p.kind,
                        "user": p.username,
                        "last_token": p.last_token.map(rfc3339),
                        "active_grants": p.active_grants,
                        "days": days,
                    }),
                );
            }
            for g in &r.grants {
                line(
                    &mut out,
                    &json!({
                        "kind": "grant",
                        "grant_id": g.grant.id,
                        "grantee": g.grant.grantee.to_string(),
                        "cluster": g.grant.cluster,
                        "namespaces": g.grant.namespaces,
                        "role": g.grant.role,
                        "starts_at": rfc3339(g.grant.starts_at),
                        "ends_at": rfc3339(g.grant.ends_at),
                        "last_token": g.last_token.map(rfc3339),
                        "days": days,
                    }),
                );
            }
        }
        Format::Table => {
            if r.people.is_empty() && r.grants.is_empty() {
                let _ = writeln!(out, "nothing stale: every enabled account and grant was used in the last {days} day(s)");
                return out;
            }
            let _ = writeln!(
                out,
                "people with an enabled account and no token for {days} day(s):"
            );
            if r.people.is_empty() {
                let _ = writeln!(out, "  (none)");
            }
            for p in &r.people {
                let grants = if p.active_grants.is_empty() {
                    "-".to_owned()
                } else {
                    Untrusted::long(p.active_grants.join(",")).to_string()
                };
                let _ = writeln!(
                    out,
                    "  {}{}  last token {}  active grants {}",
                    Untrusted::new(&p.username),
                    if p.kind == "person" {
                        String::new()
                    } else {
                        format!(" ({})", p.kind)
                    },
                    last(p.last_token),
                    grants
                );
            }
            let _ = writeln!(
                out,
                "\ngrants in force whose grantee has not used the cluster for {days} day(s):"
            );
            if r.grants.is_empty() {
                let _ = writeln!(out, "  (none)");
            }
            for g in &r.grants {
                let _ = writeln!(
                    out,
                    "  {}  {}  role {} in {} of {}  since {}  last token there {}",
                    Untrusted::new(&g.grant.id),
                    Untrusted::new(&g.grant.grantee),
                    Untrusted::new(&g.grant.role),
                    namespaces(&g.grant),
                    Untrusted::new(&g.grant.cluster),
                    rfc3339(g.grant.starts_at),
                    last(g.last_token)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::domain::access::{GroupAccess, PersonTokens, StalePerson};

    const EVIL: &str = "eve\x1b[2J\n  root  first 2026-01-01T00:00:00Z";

    fn access(bindings: Bindings) -> Access {
        let now = datetime!(2026-11-25 12:00 UTC);
        Access {
            cluster: "prod".into(),
            namespace: "pay\u{202e}ments".into(),
            window: Window {
                since: now - time::Duration::days(1),
                until: now,
            },
            report: AccessReport {
                grants: vec![],
                groups: vec![GroupAccess {
                    group: "ops\u{9b}31m".into(),
                    members: vec![EVIL.into()],
                }],
                people: vec![PersonTokens {
                    who: EVIL.into(),
                    first: now,
                    last: now,
                    logins: 1,
                    refreshes: 0,
                    machine_tokens: 0,
                }],
            },
            bindings,
        }
    }

    /// Names from the audit trail and the cluster, and the error text of a cluster that could
    /// not be read, reach the auditor's terminal escaped; JSON lines keep their values.
    #[test]
    fn reports_escape_outside_text() {
        let hostile = [
            Bindings::NotRead(format!("forbidden: {EVIL}")),
            Bindings::Read(vec![BoundNow {
                binding: "RoleBinding pay/x\x1b]8;;http://evil\x07".into(),
                role: "ClusterRole/edit".into(),
                kind: "User".into(),
                subject: format!("credential:{EVIL}"),
            }]),
        ];
        for bindings in hostile {
            let a = access(bindings);
            let table = render_access(&a, Format::Table);
            assert!(
                !table.contains(['\x1b', '\x07', '\u{9b}', '\u{202e}']),
                "{table}"
            );
            assert!(table.contains(r"eve\x1b[2J\n  root"), "{table}");
            assert_eq!(
                table.lines().filter(|l| l.starts_with("  root")).count(),
                0,
                "a forged line: {table}"
            );
            let jsonl = render_access(&a, Format::Jsonl);
            assert!(
                !jsonl.chars().any(|c| c.is_control() && c != '\n'),
                "{jsonl}"
            );
            assert!(!jsonl.contains(['\u{9b}', '\u{202e}']), "{jsonl}");
            for line in jsonl.lines() {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if v["kind"] == "person" {
                    assert_eq!(v["user"], EVIL);
                }
            }
        }
        let stale = StaleReport {
            people: vec![StalePerson {
                username: EVIL.into(),
                kind: "person",
                last_token: None,
                active_grants: vec!["g\x1b".into()],
            }],
            grants: vec![],
        };
        let table = render_stale(&stale, 30, Format::Table);
        assert!(!table.contains('\x1b'), "{table}");
        assert!(table.contains(r"active grants g\x1b"), "{table}");
    }
}

#[cfg(test)]
mod time_tests {
    use super::rfc3339;

    /// `--until` defaults to now, which carries nanoseconds: reports print whole seconds.
    #[test]
    fn times_print_in_whole_seconds() {
        let t = time::macros::datetime!(2026-12-07 10:11:12.123456789 UTC);
        assert_eq!(rfc3339(t), "2026-12-07T10:11:12Z");
    }
}
