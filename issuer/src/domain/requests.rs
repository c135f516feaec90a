//! Just-in-time access requests: who may file what, who may decide, the duration and reason
//! rules, and when a pending request expires. Pure: callers pass the policy and `now` in.

use std::fmt::Write as _;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::cluster::{ClusterConfig, RoleConfig};
use crate::domain::names::{self, check_namespaces, TermError};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Waiting for a decision.
    Pending,
    /// Approved; a grant exists.
    Approved,
    /// Denied.
    Denied,
    /// Nobody decided in time.
    Expired,
    /// Withdrawn.
    Cancelled,
}

impl RequestStatus {
    /// The stored and displayed name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// Id, 10 lower-case hex digits.
    pub id: String,
    /// Login name of the person asking.
    pub requester: String,
    /// Cluster.
    pub cluster: String,
    /// Role.
    pub role: String,
    /// Namespaces; empty: cluster-wide.
    pub namespaces: Vec<String>,
    /// Why.
    pub reason: Option<String>,
    /// How long the grant lasts once approved.
    pub duration: Duration,
    /// Filed at.
    pub created_at: OffsetDateTime,
    /// A pending request expires at this time.
    pub expires_at: OffsetDateTime,
    /// Status.
    pub status: RequestStatus,
    /// Who decided (approver, or the requester for break-glass).
    pub decided_by: Option<String>,
    /// The decider's comment.
    pub comment: Option<String>,
    /// When it was decided.
    pub decided_at: Option<OffsetDateTime>,
    /// The grant an approval created.
    pub grant_id: Option<String>,
    /// Address the request was filed from.
    pub client_addr: Option<String>,
}

impl AccessRequest {
    /// The status at `now`: a pending request past its deadline counts as expired even
    /// before the sweeper has recorded it.
    #[must_use]
    pub fn status_at(&self, now: OffsetDateTime) -> RequestStatus {
        if self.status == RequestStatus::Pending && now >= self.expires_at {
            RequestStatus::Expired
        } else {
            self.status
        }
    }
}

/// What a person asks for.
#[derive(Debug, Clone)]
pub struct Filing<'a> {
    /// Requester's login name.
    pub requester: &'a str,
    /// Cluster.
    pub cluster: &'a str,
    /// Role.
    pub role: &'a str,
    /// Namespaces.
    pub namespaces: &'a [String],
    /// Reason.
    pub reason: Option<&'a str>,
    /// Length of the grant.
    pub duration: Duration,
}

/// What happens to an accepted filing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Waits for an approver.
    Pending,
    /// Break-glass self-approval: approved at once, with an alert.
    BreakGlass,
}

/// Why a filing was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilingError {
    /// No such cluster.
    #[error("unknown cluster `{0}`")]
    UnknownCluster(String),
    /// No such role, or it cannot be requested.
    #[error("role `{0}` cannot be requested")]
    NotRequestable(String),
    /// A reason is required.
    #[error("role `{0}` requires a reason (--reason)")]
    ReasonRequired(String),
    /// Zero length.
    #[error("the duration must be at least 1s")]
    ZeroDuration,
    /// Longer than the role allows.
    #[error("role `{role}` may be requested for at most {}", format_duration(*.max))]
    TooLong {
        /// Role.
        role: String,
        /// Limit.
        max: Duration,
    },
    /// A bad namespace list or free text.
    #[error(transparent)]
    Terms(#[from] TermError),
}

/// Checks a filing against the policy and says whether it waits or is approved at once.
pub fn check_filing(
    f: &Filing<'_>,
    roles: &[RoleConfig],
    clusters: &[ClusterConfig],
) -> Result<Outcome, FilingError> {
    if !clusters.iter().any(|c| c.name == f.cluster) {
        return Err(FilingError::UnknownCluster(f.cluster.to_owned()));
    }
    let role = roles
        .iter()
        .find(|r| r.name == f.role && r.request.requestable)
        .ok_or_else(|| FilingError::NotRequestable(f.role.to_owned()))?;
    check_text("reason", f.reason)?;
    let reason = f.reason.map(str::trim).filter(|r| !r.is_empty());
    if role.request.reason_required && reason.is_none() {
        return Err(FilingError::ReasonRequired(role.name.clone()));
    }
    if f.duration.is_zero() {
        return Err(FilingError::ZeroDuration);
    }
    if let Some(max) = role.exceeded_by(f.duration) {
        return Err(FilingError::TooLong {
            role: role.name.clone(),
            max,
        });
    }
    check_namespaces(f.namespaces)?;
    Ok(if role.request.break_glass && role.request.self_approve {
        Outcome::BreakGlass
    } else {
        Outcome::Pending
    })
}

/// Checks a free-text field (a reason, a decider's comment) by the rule grants follow too.
pub fn check_text(field: &'static str, text: Option<&str>) -> Result<(), FilingError> {
    Ok(names::check_text(field, text)?)
}

/// Why someone may not decide a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// The decider filed it.
    #[error("you cannot decide your own request")]
    OwnRequest,
    /// Not in an approver group of the role.
    #[error("you are not an approver of role `{0}`")]
    NotApprover(String),
    /// No longer pending.
    #[error("request {id} is {status}, not pending")]
    NotPending {
        /// Request.
        id: String,
        /// Its status.
        status: &'static str,
    },
    /// The role is no longer in the policy.
    #[error("role `{0}` is no longer requestable")]
    RoleGone(String),
}

/// Who decides: a person by name and identity groups, or the administrator (`request
/// approve` on the issuer's host, who may decide any request but their own does not exist).
#[derive(Debug, Clone, Copy)]
pub enum Decider<'a> {
    /// A signed-in person.
    Person {
        /// Login name.
        username: &'a str,
        /// Identity groups.
        groups: &'a [String],
    },
    /// The admin CLI.
    Admin,
}

/// Whether `who` may decide `r` at `now` under `roles`. The requester never decides their own
/// request, whatever groups they are in.
pub fn may_decide(
    r: &AccessRequest,
    who: Decider<'_>,
    roles: &[RoleConfig],
    now: OffsetDateTime,
) -> Result<(), DecisionError> {
    let status = r.status_at(now);
    if status != RequestStatus::Pending {
        return Err(DecisionError::NotPending {
            id: r.id.clone(),
            status: status.as_str(),
        });
    }
    let role = roles
        .iter()
        .find(|p| p.name == r.role && p.request.requestable)
        .ok_or_else(|| DecisionError::RoleGone(r.role.clone()))?;
    match who {
        Decider::Admin => Ok(()),
        Decider::Person { username, groups } => {
            if username == r.requester {
                return Err(DecisionError::OwnRequest);
            }
            if role.request.approvers.iter().any(|a| groups.contains(a)) {
                Ok(())
            } else {
                Err(DecisionError::NotApprover(r.role.clone()))
            }
        }
    }
}

/// Whether a person in `groups` approves any requestable role (sees the approvals page).
#[must_use]
pub fn is_approver(groups: &[String], roles: &[RoleConfig]) -> bool {
    roles
        .iter()
        .any(|r| r.request.approvers.iter().any(|a| groups.contains(a)))
}

/// The roles people may request, in the policy's order, each with whether a request waits for
/// an approver (a break-glass role that approves itself does not).
#[must_use]
pub fn requestable(roles: &[RoleConfig]) -> Vec<(&RoleConfig, bool)> {
    roles
        .iter()
        .filter(|r| r.request.requestable)
        .map(|r| (r, !(r.request.break_glass && r.request.self_approve)))
        .collect()
}

/// `30m`, `4h`, `1h30m`, `90s`, `30d`: a duration as people write it (and as the config file
/// and the plugin's `--for` take it), never a bare number of seconds. Whole days are shown in
/// days, anything else in hours, minutes and seconds.
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(86_400) {
        return format!("{}d", s / 86_400);
    }
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if sec > 0 || out.is_empty() {
        let _ = write!(out, "{sec}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cluster::{RequestPolicy, RolePermissions};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn role(name: &str, request: RequestPolicy) -> RoleConfig {
        RoleConfig {
            name: name.into(),
            permissions: RolePermissions::ClusterRole("edit".into()),
            max_duration: Some(Duration::from_secs(3600)),
            request,
        }
    }

    fn roles() -> Vec<RoleConfig> {
        vec![
            role(
                "prod-exec",
                RequestPolicy {
                    requestable: true,
                    approvers: vec!["sre-leads".into()],
                    reason_required: true,
                    ..RequestPolicy::default()
                },
            ),
            role(
                "glass",
                RequestPolicy {
                    requestable: true,
                    reason_required: true,
                    break_glass: true,
                    self_approve: true,
                    ..RequestPolicy::default()
                },
            ),
            role("viewer", RequestPolicy::default()),
        ]
    }

    fn clusters() -> Vec<ClusterConfig> {
        vec![ClusterConfig {
            name: "prod".into(),
            server: None,
            certificate_authority_data: None,
            audience: "prod".into(),
            access: None,
            reconcile_interval: Duration::from_secs(30),
            proxy: None,
        }]
    }

    fn check(
        cluster: &str,
        role: &str,
        ns: &[&str],
        reason: Option<&str>,
        secs: u64,
    ) -> Result<Outcome, FilingError> {
        let namespaces: Vec<String> = ns.iter().map(|s| (*s).to_owned()).collect();
        check_filing(
            &Filing {
                requester: "alice",
                cluster,
                role,
                namespaces: &namespaces,
                reason,
                duration: Duration::from_secs(secs),
            },
            &roles(),
            &clusters(),
        )
    }

    #[test]
    fn filings_follow_the_role_policy() {
        use FilingError as E;
        assert_eq!(
            check("prod", "prod-exec", &["payments"], Some("OOM"), 1800),
            Ok(Outcome::Pending)
        );
        assert_eq!(
            check("prod", "glass", &[], Some("outage"), 600),
            Ok(Outcome::BreakGlass)
        );
        assert_eq!(
            check("dev", "prod-exec", &[], Some("x"), 60),
            Err(E::UnknownCluster("dev".into()))
        );
        assert_eq!(
            check("prod", "viewer", &[], Some("x"), 60),
            Err(E::NotRequestable("viewer".into()))
        );
        assert_eq!(
            check("prod", "nope", &[], Some("x"), 60),
            Err(E::NotRequestable("nope".into()))
        );
        assert_eq!(
            check("prod", "prod-exec", &[], Some("  "), 60),
            Err(E::ReasonRequired("prod-exec".into()))
        );
        assert_eq!(
            check("prod", "prod-exec", &[], None, 60),
            Err(E::ReasonRequired("prod-exec".into()))
        );
        assert_eq!(
            check("prod", "prod-exec", &[], Some("x"), 3601),
            Err(E::TooLong {
                role: "prod-exec".into(),
                max: Duration::from_secs(3600)
            })
        );
        assert_eq!(
            check("prod", "prod-exec", &[], Some("x"), 0),
            Err(E::ZeroDuration)
        );
        assert_eq!(
            check("prod", "prod-exec", &["Bad_NS"], Some("x"), 60),
            Err(TermError::Namespace("Bad_NS".into()).into())
        );
        assert_eq!(
            check("prod", "prod-exec", &["a", "a"], Some("x"), 60),
            Err(TermError::DuplicateNamespace("a".into()).into())
        );
        assert_eq!(
            check("prod", "prod-exec", &[], Some("line\nbreak"), 60),
            Err(TermError::Text("reason").into())
        );
    }

    fn request(status: RequestStatus) -> AccessRequest {
        AccessRequest {
            id: "abc".into(),
            requester: "alice".into(),
            cluster: "prod".into(),
            role: "prod-exec".into(),
            namespaces: vec!["payments".into()],
            reason: Some("OOM".into()),
            duration: Duration::from_secs(1800),
            created_at: NOW,
            expires_at: NOW + time::Duration::hours(1),
            status,
            decided_by: None,
            comment: None,
            decided_at: None,
            grant_id: None,
            client_addr: None,
        }
    }

    #[test]
    fn only_other_approvers_decide_pending_requests() {
        let leads = vec!["sre-leads".to_owned()];
        let devs = vec!["devs".to_owned()];
        let person = |username, groups| Decider::Person { username, groups };
        let r = request(RequestStatus::Pending);
        assert_eq!(may_decide(&r, person("bob", &leads), &roles(), NOW), Ok(()));
        // In the approvers group, but the requester: never.
        assert_eq!(
            may_decide(&r, person("alice", &leads), &roles(), NOW),
            Err(DecisionError::OwnRequest)
        );
        assert_eq!(
            may_decide(&r, person("carol", &devs), &roles(), NOW),
            Err(DecisionError::NotApprover("prod-exec".into()))
        );
        assert_eq!(may_decide(&r, Decider::Admin, &roles(), NOW), Ok(()));
        // Past the pending deadline it counts as expired before the sweeper records it.
        let late = NOW + time::Duration::hours(1);
        assert_eq!(r.status_at(late), RequestStatus::Expired);
        assert!(matches!(
            may_decide(&r, person("bob", &leads), &roles(), late),
            Err(DecisionError::NotPending {
                status: "expired",
                ..
            })
        ));
        let done = request(RequestStatus::Approved);
        assert!(matches!(
            may_decide(&done, Decider::Admin, &roles(), NOW),
            Err(DecisionError::NotPending { .. })
        ));
        let mut gone = request(RequestStatus::Pending);
        gone.role = "viewer".into();
        assert_eq!(
            may_decide(&gone, Decider::Admin, &roles(), NOW),
            Err(DecisionError::RoleGone("viewer".into()))
        );
        assert!(is_approver(&leads, &roles()));
        assert!(!is_approver(&devs, &roles()));
    }

    #[test]
    fn only_requestable_roles_are_listed_and_break_glass_needs_no_approval() {
        let roles = roles();
        let listed: Vec<(&str, bool)> = requestable(&roles)
            .into_iter()
            .map(|(r, approval)| (r.name.as_str(), approval))
            .collect();
        assert_eq!(listed, [("prod-exec", true), ("glass", false)]);
    }

    #[test]
    fn durations_read_like_the_flags() {
        assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
        assert_eq!(format_duration(Duration::from_secs(14_400)), "4h");
        assert_eq!(format_duration(Duration::from_secs(3600 + 1)), "1h1s");
        assert_eq!(format_duration(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(format_duration(Duration::from_secs(36 * 3600)), "36h");
        let too_long = FilingError::TooLong {
            role: "prod-exec".into(),
            max: Duration::from_secs(14_400),
        };
        assert_eq!(
            too_long.to_string(),
            "role `prod-exec` may be requested for at most 4h"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            RequestStatus::Pending,
            RequestStatus::Approved,
            RequestStatus::Denied,
            RequestStatus::Expired,
            RequestStatus::Cancelled,
        ] {
            assert_eq!(RequestStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RequestStatus::parse("other"), None);
    }
}
