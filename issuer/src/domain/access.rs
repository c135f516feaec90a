//! The auditor's answers, assembled from rows the caller read: who had access to a namespace
//! of a cluster in a time window, why and who approved it (`audit access`), and who holds
//! access they have not used for a while (`report stale`). Pure: no IO, `now` is passed in.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::grants::{Grant, Grantee};

/// A token the issuer minted, from a `login` or `refresh` audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEvent {
    /// When.
    pub at: OffsetDateTime,
    /// `login` or `refresh`.
    pub event: String,
    /// The person's id (the event's subject).
    pub user_id: String,
    /// The person's login name (the event's actor), when recorded.
    pub username: Option<String>,
    /// Cluster.
    pub cluster: String,
    /// Kubernetes groups the token carried (empty for events written before they were
    /// recorded).
    pub groups: Vec<String>,
}

impl TokenEvent {
    /// Reads the groups from a token event's `detail` JSON (`{"groups": [..], ..}`).
    #[must_use]
    pub fn groups_from_detail(detail: Option<&str>) -> Vec<String> {
        detail
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|v| {
                v.get("groups").and_then(|g| g.as_array()).map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    fn who(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.user_id)
    }
}

/// A half-open time window `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start (inclusive).
    pub since: OffsetDateTime,
    /// End (exclusive).
    pub until: OffsetDateTime,
}

/// How a grant's time in force ended (or did not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Revoked at `to`.
    Revoked,
    /// Ran to its end at `to`.
    Expired,
    /// Still in force at the time of the report (`to` is its planned end).
    InForce,
}

impl Ended {
    /// Lowercase name for reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "ended",
            Self::InForce => "in force",
        }
    }
}

/// A grant that gave access in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantAccess {
    /// The grant.
    pub grant: Grant,
    /// Start of the time it was actually in force.
    pub from: OffsetDateTime,
    /// End of that time: its revocation or its end.
    pub to: OffsetDateTime,
    /// Why `to`.
    pub ended: Ended,
}

/// A Kubernetes group whose members obtained tokens for the cluster in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAccess {
    /// Group name as in the token (RBAC sees `credential:<group>`).
    pub group: String,
    /// Login names of the members who got a token carrying it, sorted.
    pub members: Vec<String>,
}

/// One person's tokens for the cluster in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonTokens {
    /// Login name (or id when the name was not recorded).
    pub who: String,
    /// First token in the window.
    pub first: OffsetDateTime,
    /// Last token in the window.
    pub last: OffsetDateTime,
    /// Logins in the window.
    pub logins: u32,
    /// Refreshes in the window.
    pub refreshes: u32,
    /// Tokens a machine identity obtained in the window: a CI job's token exchange or a
    /// machine client's signed assertion (each is a sign-in of its own: no refresh).
    pub machine_tokens: u32,
}

/// An issuer identity bound to a role in the namespace (or cluster-wide) at the time of the
/// report, read from the cluster: Kubernetes keeps no history of bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundNow {
    /// `RoleBinding <ns>/<name>` or `ClusterRoleBinding <name>`.
    pub binding: String,
    /// `ClusterRole/<name>` or `Role/<name>`.
    pub role: String,
    /// `User` or `Group`.
    pub kind: String,
    /// `credential:<name>`.
    pub subject: String,
}

/// The answer to "who had access to namespace X in cluster Y between two dates".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReport {
    /// Grants covering the namespace (or cluster-wide) in force during the window.
    pub grants: Vec<GrantAccess>,
    /// Groups that reached the cluster in tokens, with their members.
    pub groups: Vec<GroupAccess>,
    /// Who obtained tokens for the cluster.
    pub people: Vec<PersonTokens>,
}

/// Whether `g` gives access in `namespace` (namespaced grants list it; an empty list is
/// cluster-wide).
#[must_use]
pub fn covers(g: &Grant, namespace: &str) -> bool {
    g.namespaces.is_empty() || g.namespaces.iter().any(|n| n == namespace)
}

/// The time `g` was actually in force: from its start to the earlier of its end and its
/// revocation. `None` when it was revoked before it started.
#[must_use]
pub fn in_force(g: &Grant, now: OffsetDateTime) -> Option<(OffsetDateTime, OffsetDateTime, Ended)> {
    let (to, ended) = match g.revoked_at {
        Some(r) if r < g.ends_at => (r, Ended::Revoked),
        _ if g.ends_at > now => (g.ends_at, Ended::InForce),
        _ => (g.ends_at, Ended::Expired),
    };
    (to > g.starts_at).then_some((g.starts_at, to, ended))
}

/// How a person could reach the namespace: the evidence behind their line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A grant for them (or for a group whose tokens they held) covering the namespace.
    Grant {
        /// Grant id.
        id: String,
        /// Its role.
        role: String,
    },
    /// A token group of theirs that a binding in the namespace (read now) names.
    Binding {
        /// The Kubernetes group or user name the binding names (`credential:<name>`).
        subject: String,
        /// The binding, e.g. `RoleBinding team-b/x`.
        binding: String,
        /// Its role.
        role: String,
    },
}

/// A person who obtained tokens for the cluster in the window and could reach the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// User name.
    pub who: String,
    /// Every way they could (at least one).
    pub via: Vec<Via>,
}

/// The people of `report` who could reach its namespace: those a grant of the report covers
/// (as user, or through a group their tokens carried), and those whose tokens carried a group
/// (or whose name is) a subject of the namespace's bindings read now (`prefix` is the API
/// server's, `credential:`). Everyone else who obtained tokens for the cluster is no evidence
/// of access to the namespace and is not listed here.
#[must_use]
pub fn reached(report: &AccessReport, bindings: &[BoundNow], prefix: &str) -> Vec<Reached> {
    let members = |group: &str| -> Vec<&str> {
        report
            .groups
            .iter()
            .filter(|g| g.group == group)
            .flat_map(|g| g.members.iter().map(String::as_str))
            .collect()
    };
    let mut out: BTreeMap<&str, Vec<Via>> = BTreeMap::new();
    let got_tokens = |who: &str| report.people.iter().any(|p| p.who == who);
    for g in &report.grants {
        let via = Via::Grant {
            id: g.grant.id.clone(),
            role: g.grant.role.clone(),
        };
        let people: Vec<&str> = match &g.grant.grantee {
            Grantee::User(u) => vec![u.as_str()],
            Grantee::Group(group) => members(group),
        };
        for who in people.into_iter().filter(|w| got_tokens(w)) {
            out.entry(who).or_default().push(via.clone());
        }
    }
    for b in bindings {
        let Some(name) = b.subject.strip_prefix(prefix) else {
            continue;
        };
        let via = Via::Binding {
            subject: b.subject.clone(),
            binding: b.binding.clone(),
            role: b.role.clone(),
        };
        let people: Vec<&str> = match b.kind.as_str() {
            "Group" => members(name),
            "User" => vec![name],
            _ => vec![],
        };
        for who in people.into_iter().filter(|w| got_tokens(w)) {
            out.entry(who).or_default().push(via.clone());
        }
    }
    out.into_iter()
        .map(|(who, via)| Reached {
            who: who.to_owned(),
            via,
        })
        .collect()
}

/// Assembles the access report for `namespace` of `cluster` in `window` from the cluster's
/// grants (all of them, revoked and ended included) and the token events of the cluster in
/// the window. Groups given by grants (`grant:...`) are left out of the group section: the
/// grant section already names them with their reason.
#[must_use]
pub fn access_report(
    cluster: &str,
    namespace: &str,
    window: Window,
    grants: &[Grant],
    tokens: &[TokenEvent],
    now: OffsetDateTime,
) -> AccessReport {
    let mut in_window: Vec<GrantAccess> = grants
        .iter()
        .filter(|g| g.cluster == cluster && covers(g, namespace))
        .filter_map(|g| {
            let (from, to, ended) = in_force(g, now)?;
            (from < window.until && to > window.since).then(|| GrantAccess {
                grant: g.clone(),
                from,
                to,
                ended,
            })
        })
        .collect();
    in_window.sort_by(|a, b| a.from.cmp(&b.from).then(a.grant.id.cmp(&b.grant.id)));

    let tokens: Vec<&TokenEvent> = tokens
        .iter()
        .filter(|t| t.cluster == cluster && t.at >= window.since && t.at < window.until)
        .collect();
    let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut people: BTreeMap<&str, PersonTokens> = BTreeMap::new();
    for t in &tokens {
        for g in t.groups.iter().filter(|g| !g.starts_with("grant:")) {
            groups.entry(g).or_default().insert(t.who());
        }
        let p = people.entry(t.who()).or_insert_with(|| PersonTokens {
            who: t.who().to_owned(),
            first: t.at,
            last: t.at,
            logins: 0,
            refreshes: 0,
            machine_tokens: 0,
        });
        p.first = p.first.min(t.at);
        p.last = p.last.max(t.at);
        match t.event.as_str() {
            "login" => p.logins += 1,
            "refresh" => p.refreshes += 1,
            _ => p.machine_tokens += 1,
        }
    }
    AccessReport {
        grants: in_window,
        groups: groups
            .into_iter()
            .map(|(g, m)| GroupAccess {
                group: g.to_owned(),
                members: m.into_iter().map(str::to_owned).collect(),
            })
            .collect(),
        people: people.into_values().collect(),
    }
}

/// What the stale report knows about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Id (the token's `sub`, the token events' subject).
    pub id: String,
    /// Login name.
    pub username: String,
    /// Identity groups.
    pub groups: Vec<String>,
    /// Enabled and not past its end.
    pub enabled: bool,
    /// When the account was created: one younger than the report's window is not stale.
    pub created_at: OffsetDateTime,
    /// `person`, `workload` or `machine` (the account's kind in the store).
    pub kind: &'static str,
}

/// The newest token of one person for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastToken {
    /// Person's id.
    pub user_id: String,
    /// Cluster.
    pub cluster: String,
    /// When.
    pub at: OffsetDateTime,
}

/// An enabled account (a person or a machine identity) that has not obtained a token for
/// `days` days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalePerson {
    /// Login name.
    pub username: String,
    /// `person`, `workload` or `machine`.
    pub kind: &'static str,
    /// Their newest token anywhere, if any.
    pub last_token: Option<OffsetDateTime>,
    /// Ids of the grants in force for them (directly or through a group).
    pub active_grants: Vec<String>,
}

/// A grant in force whose grantee has not used the cluster for `days` days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleGrant {
    /// The grant.
    pub grant: Grant,
    /// The grantee's newest token for the grant's cluster since the grant started, if any.
    pub last_token: Option<OffsetDateTime>,
}

/// `report stale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleReport {
    /// People, by name.
    pub people: Vec<StalePerson>,
    /// Grants, by id.
    pub grants: Vec<StaleGrant>,
}

fn grant_holders<'a>(g: &Grant, accounts: &'a [Account]) -> Vec<&'a Account> {
    accounts
        .iter()
        .filter(|a| match &g.grantee {
            Grantee::User(u) => &a.username == u,
            Grantee::Group(n) => a.groups.iter().any(|x| x == n),
        })
        .collect()
}

/// People with an enabled account whose newest token is older than `days` days (or who never
/// got one), and grants in force for at least `days` days whose grantee has not obtained a
/// token for the grant's cluster in the last `days` days (or at all since the grant started).
/// `grants` are those in force at `now`.
#[must_use]
pub fn stale_report(
    accounts: &[Account],
    grants: &[Grant],
    last_tokens: &[LastToken],
    days: u32,
    now: OffsetDateTime,
) -> StaleReport {
    let cutoff = now - time::Duration::days(i64::from(days));
    let newest = |user_id: &str, cluster: Option<&str>| {
        last_tokens
            .iter()
            .filter(|t| t.user_id == user_id && cluster.is_none_or(|c| t.cluster == c))
            .map(|t| t.at)
            .max()
    };
    let active: Vec<&Grant> = grants.iter().filter(|g| g.is_active(now)).collect();
    let mut people: Vec<StalePerson> = accounts
        .iter()
        .filter(|a| a.enabled && a.created_at <= cutoff)
        .filter_map(|a| {
            let last = newest(&a.id, None);
            if last.is_some_and(|t| t >= cutoff) {
                return None;
            }
            let active_grants = active
                .iter()
                .filter(|g| grant_holders(g, accounts).iter().any(|h| h.id == a.id))
                .map(|g| g.id.clone())
                .collect();
            Some(StalePerson {
                username: a.username.clone(),
                kind: a.kind,
                last_token: last,
                active_grants,
            })
        })
        .collect();
    people.sort_by(|a, b| a.username.cmp(&b.username));
    let mut stale_grants: Vec<StaleGrant> = active
        .iter()
        .filter(|g| g.starts_at <= cutoff)
        .filter_map(|g| {
            let last = grant_holders(g, accounts)
                .iter()
                .filter(|h| h.enabled)
                .filter_map(|h| newest(&h.id, Some(&g.cluster)))
                .filter(|t| *t >= g.starts_at)
                .max();
            if last.is_some_and(|t| t >= cutoff) {
                return None;
            }
            Some(StaleGrant {
                grant: (*g).clone(),
                last_token: last,
            })
        })
        .collect();
    stale_grants.sort_by(|a, b| a.grant.id.cmp(&b.grant.id));
    StaleReport {
        people,
        grants: stale_grants,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-11-01 00:00 UTC);

    fn grant(id: &str, grantee: Grantee, namespaces: &[&str], start_h: i64, end_h: i64) -> Grant {
        Grant {
            id: id.into(),
            grantee,
            cluster: "prod".into(),
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
            role: "edit".into(),
            starts_at: T0 + Duration::hours(start_h),
            ends_at: T0 + Duration::hours(end_h),
            reason: Some("INC-1".into()),
            created_by: "admin-cli".into(),
            approved_by: Some("carol".into()),
            request_id: Some("req1".into()),
            revoked_at: None,
            revoked_by: None,
        }
    }

    fn token(who: &str, event: &str, h: i64, groups: &[&str]) -> TokenEvent {
        TokenEvent {
            at: T0 + Duration::hours(h),
            event: event.into(),
            user_id: format!("id-{who}"),
            username: Some(who.into()),
            cluster: "prod".into(),
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn window(from_h: i64, to_h: i64) -> Window {
        Window {
            since: T0 + Duration::hours(from_h),
            until: T0 + Duration::hours(to_h),
        }
    }

    fn ids(r: &AccessReport) -> Vec<&str> {
        r.grants.iter().map(|g| g.grant.id.as_str()).collect()
    }

    #[test]
    fn grants_count_when_they_cover_the_namespace_and_overlap_the_window() {
        let u = |n: &str| Grantee::User(n.into());
        let mut revoked_early = grant("g5", u("eve"), &["payments"], 0, 100);
        revoked_early.revoked_at = Some(T0 + Duration::hours(12));
        let mut revoked_before_start = grant("g6", u("fay"), &["payments"], 30, 40);
        revoked_before_start.revoked_at = Some(T0 + Duration::hours(1));
        let mut other_cluster = grant("g7", u("gus"), &["payments"], 0, 100);
        other_cluster.cluster = "staging".into();
        let grants = vec![
            grant("g1", u("alice"), &["payments"], 0, 48),
            grant("g2", u("bob"), &["web"], 0, 48),
            grant("g3", Grantee::Group("sre".into()), &[], 0, 48),
            grant("g4", u("dan"), &["payments"], 50, 60),
            revoked_early,
            revoked_before_start,
            other_cluster,
        ];
        let now = T0 + Duration::hours(200);
        let r = access_report("prod", "payments", window(20, 30), &grants, &[], now);
        // g1 (namespace), g3 (cluster-wide) overlap; g2 other namespace; g4 later; g5 revoked
        // before the window; g6 never in force; g7 another cluster.
        assert_eq!(ids(&r), vec!["g1", "g3"]);
        assert_eq!(r.grants[0].to, T0 + Duration::hours(48));
        assert_eq!(r.grants[0].ended, Ended::Expired);
        assert_eq!(r.grants[0].grant.approved_by.as_deref(), Some("carol"));

        let r = access_report("prod", "payments", window(0, 10), &grants, &[], now);
        assert_eq!(ids(&r), vec!["g1", "g3", "g5"]);
        let g5 = &r.grants[2];
        assert_eq!(
            (g5.to, g5.ended),
            (T0 + Duration::hours(12), Ended::Revoked)
        );

        // A grant still running says so.
        let r = access_report("prod", "payments", window(0, 10), &grants, &[], T0);
        assert_eq!(r.grants[0].ended, Ended::InForce);
        // The window is half-open: a grant starting at its end is out.
        let r = access_report("prod", "payments", window(45, 50), &grants, &[], now);
        assert_eq!(ids(&r), vec!["g1", "g3"]);
    }

    /// Only people with a way into the namespace are listed under it: a grant covering it, or
    /// a group (or their name) that one of its bindings names. Someone who merely obtained
    /// tokens for the cluster, with groups bound elsewhere, is not.
    #[test]
    fn only_people_who_could_reach_the_namespace_are_listed_under_it() {
        let u = |n: &str| Grantee::User(n.into());
        let grants = vec![
            grant("g1", u("alice"), &["team-b"], 0, 48),
            grant("g2", Grantee::Group("sre".into()), &[], 0, 48),
            grant("g3", u("nobody-came"), &["team-b"], 0, 48),
        ];
        let tokens = vec![
            token("alice", "login", 1, &[]),
            token("sam", "login", 2, &["sre"]),
            token("tess", "login", 3, &["k8s-team-b"]),
            token("una", "login", 4, &["k8s-team-a", "k8s-readers"]),
            token("vic", "login", 5, &[]),
        ];
        let r = access_report("prod", "team-b", window(0, 10), &grants, &tokens, T0);
        let bindings = vec![
            BoundNow {
                binding: "RoleBinding team-b/edit".into(),
                role: "ClusterRole/edit".into(),
                kind: "Group".into(),
                subject: "credential:k8s-team-b".into(),
            },
            BoundNow {
                binding: "RoleBinding team-b/vic".into(),
                role: "ClusterRole/view".into(),
                kind: "User".into(),
                subject: "credential:vic".into(),
            },
        ];
        let got = reached(&r, &bindings, "credential:");
        let who: Vec<&str> = got.iter().map(|p| p.who.as_str()).collect();
        // una got tokens for the cluster, but nothing of hers reaches team-b; nobody-came
        // holds a grant but never obtained a token.
        assert_eq!(who, ["alice", "sam", "tess", "vic"]);
        assert!(matches!(&got[0].via[..], [Via::Grant { id, .. }] if id == "g1"));
        assert!(matches!(&got[1].via[..], [Via::Grant { id, .. }] if id == "g2"));
        assert!(
            matches!(&got[2].via[..], [Via::Binding { subject, .. }] if subject == "credential:k8s-team-b")
        );
        assert!(
            matches!(&got[3].via[..], [Via::Binding { binding, .. }] if binding == "RoleBinding team-b/vic")
        );
    }

    #[test]
    fn token_events_give_groups_and_people_in_the_window_only() {
        let tokens = vec![
            token("alice", "login", 1, &["dev", "grant:edit:payments"]),
            token("alice", "refresh", 2, &["dev"]),
            token("bob", "login", 3, &["dev", "sre"]),
            token("carl", "login", 30, &["ops"]),
            TokenEvent {
                cluster: "staging".into(),
                ..token("dora", "login", 2, &["qa"])
            },
            // A CI job's exchange and a machine client's token: machine identities are in
            // the report too, with their groups.
            token("ci:github:acme/deploy", "exchange", 4, &["deployers"]),
            token("ci:github:acme/deploy", "exchange", 5, &["deployers"]),
            token("machine:backup", "machine.token", 6, &["backup"]),
        ];
        let r = access_report("prod", "payments", window(0, 10), &[], &tokens, T0);
        let groups: Vec<(&str, Vec<&str>)> = r
            .groups
            .iter()
            .map(|g| {
                (
                    g.group.as_str(),
                    g.members.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            vec![
                ("backup", vec!["machine:backup"]),
                ("deployers", vec!["ci:github:acme/deploy"]),
                ("dev", vec!["alice", "bob"]),
                ("sre", vec!["bob"])
            ]
        );
        assert_eq!(r.people.len(), 4);
        let ci = r.people.iter().find(|p| p.who == "ci:github:acme/deploy");
        assert_eq!(
            ci.map(|p| (p.logins, p.refreshes, p.machine_tokens)),
            Some((0, 0, 2))
        );
        let alice = &r.people[0];
        assert_eq!(alice.who, "alice");
        assert_eq!(
            (alice.first, alice.last, alice.logins, alice.refreshes),
            (T0 + Duration::hours(1), T0 + Duration::hours(2), 1, 1)
        );
    }

    #[test]
    fn groups_are_read_from_the_detail_json() {
        assert_eq!(
            TokenEvent::groups_from_detail(Some(
                r#"{"session":"s","groups":["a","b"],"grants":[]}"#
            )),
            vec!["a", "b"]
        );
        assert!(TokenEvent::groups_from_detail(None).is_empty());
        assert!(TokenEvent::groups_from_detail(Some("not json")).is_empty());
    }

    fn account(name: &str, groups: &[&str], enabled: bool) -> Account {
        Account {
            id: format!("id-{name}"),
            username: name.into(),
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
            enabled,
            created_at: T0,
            kind: "person",
        }
    }

    fn last(name: &str, cluster: &str, days_ago: i64, now: OffsetDateTime) -> LastToken {
        LastToken {
            user_id: format!("id-{name}"),
            cluster: cluster.into(),
            at: now - Duration::days(days_ago),
        }
    }

    /// A CI rule or machine client nobody used for the window is stale like a person, and
    /// says what it is; one used yesterday is not.
    #[test]
    fn stale_machine_identities_say_their_kind() {
        let now = T0 + Duration::days(100);
        let accounts = vec![
            Account {
                kind: "workload",
                ..account("workload:deploy", &[], true)
            },
            Account {
                kind: "machine",
                ..account("machine:backup", &[], true)
            },
        ];
        let tokens = vec![last("machine:backup", "prod", 1, now)];
        let r = stale_report(&accounts, &[], &tokens, 30, now);
        let got: Vec<(&str, &str)> = r
            .people
            .iter()
            .map(|p| (p.username.as_str(), p.kind))
            .collect();
        assert_eq!(got, vec![("workload:deploy", "workload")]);
    }

    #[test]
    fn stale_people_and_grants() {
        let now = T0 + Duration::days(100);
        let accounts = vec![
            account("active", &[], true),
            account("old", &["sre"], true),
            account("never", &[], true),
            account("gone", &[], false),
            account("elsewhere", &[], true),
        ];
        let at = |days_ago: i64| now - Duration::days(days_ago);
        let mk = |id: &str, grantee: Grantee, started_days_ago: i64| Grant {
            starts_at: at(started_days_ago),
            ends_at: now + Duration::days(10),
            ..grant(id, grantee, &[], 0, 1)
        };
        let grants = vec![
            mk("gactive", Grantee::User("active".into()), 60),
            mk("gnew", Grantee::User("never".into()), 5),
            mk("gnever", Grantee::User("never".into()), 60),
            mk("gsre", Grantee::Group("sre".into()), 60),
            mk("gelse", Grantee::User("elsewhere".into()), 60),
        ];
        let tokens = vec![
            last("active", "prod", 1, now),
            last("old", "prod", 45, now),
            last("gone", "prod", 90, now),
            // Recent, but in another cluster than the grant's.
            last("elsewhere", "staging", 1, now),
        ];
        let r = stale_report(&accounts, &grants, &tokens, 30, now);
        let people: Vec<(&str, Option<OffsetDateTime>, Vec<&str>)> = r
            .people
            .iter()
            .map(|p| {
                (
                    p.username.as_str(),
                    p.last_token,
                    p.active_grants.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            people,
            vec![
                ("never", None, vec!["gnew", "gnever"]),
                ("old", Some(at(45)), vec!["gsre"]),
            ]
        );
        let grants: Vec<&str> = r.grants.iter().map(|g| g.grant.id.as_str()).collect();
        // gnew is younger than 30 days; gactive was used yesterday.
        assert_eq!(grants, vec!["gelse", "gnever", "gsre"]);
        assert_eq!(r.grants[2].last_token, Some(at(45)));

        // Zero days: everyone who has not got a token this very second.
        let r = stale_report(&accounts, &[], &tokens, 0, now);
        assert_eq!(r.people.len(), 4);
        // Nothing stale: an empty report.
        let r = stale_report(&[account("active", &[], true)], &[], &tokens, 30, now);
        assert!(r.people.is_empty() && r.grants.is_empty());
        // An account created five minutes ago has had no time to get a token: not stale.
        let newcomer = Account {
            created_at: now - Duration::minutes(5),
            ..account("newcomer", &[], true)
        };
        let r = stale_report(&[newcomer], &[], &[], 30, now);
        assert!(r.people.is_empty(), "{r:?}");
    }
}
