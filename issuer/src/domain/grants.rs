//! Grants: who gets which role where, from when until when. This module holds the rules (is a
//! grant valid, is it active at `now`), the Kubernetes objects a set of active grants needs,
//! and the difference between those and what the cluster holds. It knows the shape of RBAC
//! objects, but not the Kubernetes API types or any IO: `kube/` translates.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::cluster::{ClusterConfig, PolicyRule, RoleConfig, RolePermissions};
use crate::domain::names::{
    check_namespaces, check_text, validate_group, validate_username, NameError, TermError,
};

/// `app.kubernetes.io/managed-by` value of every object the issuer manages.
pub const MANAGED_BY: &str = "credential-issuer";
/// The label that marks managed objects; the reconciler lists and touches only those.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The label naming the grant a binding exists for.
pub const GRANT_ID_LABEL: &str = "credential.kubectl.dev/grant-id";
/// The label naming the role a managed `ClusterRole` stands for.
pub const ROLE_LABEL: &str = "credential.kubectl.dev/role";
/// Prefix of every subject the API server sees from this issuer (`--oidc-*-prefix`).
pub const SUBJECT_PREFIX: &str = "credential:";
/// Prefix of binding names.
pub const BINDING_PREFIX: &str = "credential-grant-";
/// Prefix of managed `ClusterRole` names.
pub const ROLE_PREFIX: &str = "credential:role:";
pub use super::names::GRANT_GROUP_PREFIX;
/// The label selector of managed objects.
#[must_use]
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// Whom a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grantee {
    /// A person, by login name.
    User(String),
    /// Everyone in an (issuer or upstream) group.
    Group(String),
}

impl std::fmt::Display for Grantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(u) => write!(f, "user:{u}"),
            Self::Group(g) => write!(f, "group:{g}"),
        }
    }
}

/// A grant: its terms (whom, where, what, when, why), its author and its revocation. A grant
/// to be created is one of these too, with a fresh id and no revocation, checked by
/// [`validate`] before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Id, `[a-z0-9]`, used in object names.
    pub id: String,
    /// Whom.
    pub grantee: Grantee,
    /// Cluster name.
    pub cluster: String,
    /// Namespaces; empty means cluster-wide.
    pub namespaces: Vec<String>,
    /// Role name (from the policy).
    pub role: String,
    /// Start.
    pub starts_at: OffsetDateTime,
    /// End (exclusive).
    pub ends_at: OffsetDateTime,
    /// Why it was given.
    pub reason: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// Who approved it (a just-in-time approval), if anyone.
    pub approved_by: Option<String>,
    /// The access request it came from, if any.
    pub request_id: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

/// Where a grant stands at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not started yet.
    Pending,
    /// In force.
    Active,
    /// Its end has passed.
    Ended,
    /// Revoked.
    Revoked,
}

impl Status {
    /// Lower-case name for tables.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Revoked => "revoked",
        }
    }
}

impl Grant {
    /// The grant's status at `now`.
    #[must_use]
    pub fn status(&self, now: OffsetDateTime) -> Status {
        if self.revoked_at.is_some_and(|r| r <= now) {
            Status::Revoked
        } else if now < self.starts_at {
            Status::Pending
        } else if now < self.ends_at {
            Status::Active
        } else {
            Status::Ended
        }
    }

    /// Whether the grant is in force at `now`.
    #[must_use]
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.status(now) == Status::Active
    }

    /// The groups a token carries for this grant: `grant:<role>` for a cluster-wide grant,
    /// `grant:<role>:<namespace>` per namespace otherwise, so that an operator's binding on
    /// such a group can never reach further than the grant.
    #[must_use]
    pub fn token_groups(&self) -> Vec<String> {
        if self.namespaces.is_empty() {
            vec![format!("{GRANT_GROUP_PREFIX}{}", self.role)]
        } else {
            self.namespaces
                .iter()
                .map(|ns| format!("{GRANT_GROUP_PREFIX}{}:{ns}", self.role))
                .collect()
        }
    }
}

/// Why a grant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The end is not after the start.
    #[error("the grant must end after it starts")]
    EndsBeforeStart,
    /// The end has already passed.
    #[error("the end of the grant is in the past")]
    EndInPast,
    /// Longer than the role allows.
    #[error("role `{role}` may be granted for at most {}", super::requests::format_duration(*.max))]
    TooLong {
        /// The role.
        role: String,
        /// Its limit.
        max: Duration,
    },
    /// A bad namespace list or free text.
    #[error(transparent)]
    Terms(#[from] TermError),
    /// The role is not in the policy.
    #[error("unknown role `{0}`")]
    UnknownRole(String),
    /// The cluster is not configured.
    #[error("unknown cluster `{0}`")]
    UnknownCluster(String),
    /// The user or group name is not allowed.
    #[error("invalid name `{value}`: {source}")]
    Name {
        /// The name.
        value: String,
        /// The rule it broke.
        #[source]
        source: NameError,
    },
}

/// Checks a grant's terms against the policy at `now`.
pub fn validate(
    g: &Grant,
    roles: &[RoleConfig],
    clusters: &[ClusterConfig],
    now: OffsetDateTime,
) -> Result<(), GrantError> {
    match &g.grantee {
        Grantee::User(u) => validate_username(u),
        Grantee::Group(n) => validate_group(n),
    }
    .map_err(|source| GrantError::Name {
        value: match &g.grantee {
            Grantee::User(v) | Grantee::Group(v) => v.clone(),
        },
        source,
    })?;
    if !clusters.iter().any(|c| c.name == g.cluster) {
        return Err(GrantError::UnknownCluster(g.cluster.clone()));
    }
    let Some(role) = roles.iter().find(|r| r.name == g.role) else {
        return Err(GrantError::UnknownRole(g.role.clone()));
    };
    if g.ends_at <= g.starts_at {
        return Err(GrantError::EndsBeforeStart);
    }
    if g.ends_at <= now {
        return Err(GrantError::EndInPast);
    }
    if let Some(max) = role.exceeded_by(g.ends_at - g.starts_at) {
        return Err(GrantError::TooLong {
            role: role.name.clone(),
            max,
        });
    }
    check_namespaces(&g.namespaces)?;
    check_text("reason", g.reason.as_deref())?;
    check_text("request_id", g.request_id.as_deref())?;
    Ok(())
}

pub use super::names::is_dns_label;

/// Converts a `std` duration to `time`'s, saturating.
#[must_use]
pub fn span(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// An RBAC subject.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subject {
    /// `User` or `Group`.
    pub kind: String,
    /// Name as the API server sees it (`credential:alice`).
    pub name: String,
}

/// A `RoleBinding` (with a namespace) or `ClusterRoleBinding` (without) the issuer manages. Every
/// binding refers to a `ClusterRole`: a `RoleBinding` may, and then grants its rules in its
/// namespace only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Namespace of a `RoleBinding`; `None` for a `ClusterRoleBinding`.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// The `ClusterRole` it refers to (`roleRef`, immutable in Kubernetes).
    pub cluster_role: String,
    /// Subjects.
    pub subjects: Vec<Subject>,
    /// The grant it exists for (label), if any.
    pub grant_id: Option<String>,
}

/// A `ClusterRole` the issuer manages for a role defined by rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRole {
    /// `credential:role:<name>`.
    pub name: String,
    /// The role it stands for (label).
    pub role: String,
    /// Rules.
    pub rules: Vec<PolicyRule>,
}

/// Managed objects of one cluster: desired or actual.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objects {
    /// Managed `ClusterRoles`.
    pub roles: Vec<ManagedRole>,
    /// Managed bindings.
    pub bindings: Vec<Binding>,
}

/// The `ClusterRole` that `role` binds.
#[must_use]
pub fn cluster_role_of(role: &RoleConfig) -> String {
    match &role.permissions {
        RolePermissions::ClusterRole(name) => name.clone(),
        RolePermissions::Rules(_) => format!("{ROLE_PREFIX}{}", role.name),
    }
}

/// The objects that `grants` (already filtered to the active grants of one cluster) need,
/// given the policy's `roles`. Grants whose role has left the policy get nothing.
#[must_use]
pub fn desired(grants: &[Grant], roles: &[RoleConfig]) -> Objects {
    let mut out = Objects::default();
    for role in roles {
        if let RolePermissions::Rules(rules) = &role.permissions {
            out.roles.push(ManagedRole {
                name: cluster_role_of(role),
                role: role.name.clone(),
                rules: rules.clone(),
            });
        }
    }
    for g in grants {
        let Some(role) = roles.iter().find(|r| r.name == g.role) else {
            continue;
        };
        let subject = match &g.grantee {
            Grantee::User(u) => Subject {
                kind: "User".into(),
                name: format!("{SUBJECT_PREFIX}{u}"),
            },
            Grantee::Group(n) => Subject {
                kind: "Group".into(),
                name: format!("{SUBJECT_PREFIX}{n}"),
            },
        };
        let binding = |namespace: Option<String>| Binding {
            namespace,
            name: format!("{BINDING_PREFIX}{}", g.id),
            cluster_role: cluster_role_of(role),
            subjects: vec![subject.clone()],
            grant_id: Some(g.id.clone()),
        };
        if g.namespaces.is_empty() {
            out.bindings.push(binding(None));
        } else {
            for ns in &g.namespaces {
                out.bindings.push(binding(Some(ns.clone())));
            }
        }
    }
    out
}

/// One change the reconciler makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create a managed `ClusterRole`.
    CreateRole(ManagedRole),
    /// Replace a managed `ClusterRole`'s rules.
    UpdateRole(ManagedRole),
    /// Delete a managed `ClusterRole` (its role left the policy).
    DeleteRole(String),
    /// Create a binding.
    Create(Binding),
    /// Replace a binding's subjects or labels in place.
    Update(Binding),
    /// Delete a binding and create it again (`roleRef` cannot be changed in place).
    Recreate(Binding),
    /// Delete a binding.
    Delete(Binding),
}

impl Change {
    /// The action label (`create`, `update`, `recreate`, `delete`) for logs and metrics.
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            Self::CreateRole(_) | Self::Create(_) => "create",
            Self::UpdateRole(_) | Self::Update(_) => "update",
            Self::Recreate(_) => "recreate",
            Self::DeleteRole(_) | Self::Delete(_) => "delete",
        }
    }

    /// `ClusterRole/NAME`, `RoleBinding/NS/NAME` or `ClusterRoleBinding/NAME`.
    #[must_use]
    pub fn object(&self) -> String {
        match self {
            Self::CreateRole(r) | Self::UpdateRole(r) => format!("ClusterRole/{}", r.name),
            Self::DeleteRole(name) => format!("ClusterRole/{name}"),
            Self::Create(b) | Self::Update(b) | Self::Recreate(b) | Self::Delete(b) => b.describe(),
        }
    }
}

impl Binding {
    /// `RoleBinding/NS/NAME` or `ClusterRoleBinding/NAME`.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("RoleBinding/{ns}/{}", self.name),
            None => format!("ClusterRoleBinding/{}", self.name),
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<8} {}", self.action(), self.object())
    }
}

/// What must change so that `actual` (the managed objects listed from the cluster) becomes
/// `desired`. Deterministic order: roles first (bindings may refer to them), then bindings by
/// key; deletions of bindings before deletions of roles.
#[must_use]
pub fn diff(desired: &Objects, actual: &Objects) -> Vec<Change> {
    let mut changes = Vec::new();
    let actual_roles: BTreeMap<&str, &ManagedRole> =
        actual.roles.iter().map(|r| (r.name.as_str(), r)).collect();
    let desired_roles: BTreeMap<&str, &ManagedRole> =
        desired.roles.iter().map(|r| (r.name.as_str(), r)).collect();
    for (name, want) in &desired_roles {
        match actual_roles.get(name) {
            None => changes.push(Change::CreateRole((*want).clone())),
            Some(have) if have != want => changes.push(Change::UpdateRole((*want).clone())),
            Some(_) => {}
        }
    }
    let key = |b: &Binding| (b.namespace.clone(), b.name.clone());
    let actual_b: BTreeMap<_, &Binding> = actual.bindings.iter().map(|b| (key(b), b)).collect();
    let desired_b: BTreeMap<_, &Binding> = desired.bindings.iter().map(|b| (key(b), b)).collect();
    for (k, want) in &desired_b {
        match actual_b.get(k) {
            None => changes.push(Change::Create((*want).clone())),
            Some(have) if have.cluster_role != want.cluster_role => {
                changes.push(Change::Recreate((*want).clone()));
            }
            Some(have) if have.subjects != want.subjects || have.grant_id != want.grant_id => {
                changes.push(Change::Update((*want).clone()));
            }
            Some(_) => {}
        }
    }
    for (k, have) in &actual_b {
        if !desired_b.contains_key(k) {
            changes.push(Change::Delete((*have).clone()));
        }
    }
    for name in actual_roles.keys() {
        if !desired_roles.contains_key(name) {
            changes.push(Change::DeleteRole((*name).to_owned()));
        }
    }
    changes
}

/// The next time after `now` at which one of `grants` starts or ends: when the reconciler must
/// look again even if nothing else happens.
#[must_use]
pub fn next_boundary(grants: &[Grant], now: OffsetDateTime) -> Option<OffsetDateTime> {
    grants
        .iter()
        .filter(|g| g.revoked_at.is_none())
        .flat_map(|g| [g.starts_at, g.ends_at])
        .filter(|t| *t > now)
        .min()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn roles() -> Vec<RoleConfig> {
        vec![
            RoleConfig {
                name: "viewer".into(),
                permissions: RolePermissions::ClusterRole("view".into()),
                max_duration: Some(Duration::from_secs(8 * 3600)),
                request: crate::domain::cluster::RequestPolicy::default(),
            },
            RoleConfig {
                name: "deployer".into(),
                permissions: RolePermissions::Rules(vec![PolicyRule {
                    api_groups: vec!["apps".into()],
                    resources: vec!["deployments".into()],
                    verbs: vec!["get".into()],
                    resource_names: vec![],
                }]),
                max_duration: None,
                request: crate::domain::cluster::RequestPolicy::default(),
            },
        ]
    }

    fn clusters() -> Vec<ClusterConfig> {
        vec![ClusterConfig {
            name: "prod".into(),
            server: None,
            certificate_authority_data: None,
            audience: "kubernetes".into(),
            access: None,
            reconcile_interval: Duration::from_secs(30),
            proxy: None,
        }]
    }

    fn new_grant() -> Grant {
        Grant {
            reason: Some("incident 42".into()),
            ..grant("g1", Grantee::User("alice".into()), &["team-a"], "viewer")
        }
    }

    /// A grant on `prod` for the hour from [`NOW`], by the administrator; other tests of the
    /// domain build theirs from it.
    pub(crate) fn grant(id: &str, grantee: Grantee, namespaces: &[&str], role: &str) -> Grant {
        Grant {
            id: id.into(),
            grantee,
            cluster: "prod".into(),
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
            role: role.into(),
            starts_at: NOW,
            ends_at: NOW + time::Duration::hours(1),
            reason: None,
            created_by: "admin-cli".into(),
            approved_by: None,
            request_id: None,
            revoked_at: None,
            revoked_by: None,
        }
    }

    #[test]
    fn validation() {
        #[expect(
            clippy::needless_pass_by_value,
            reason = "table rows read better by value"
        )]
        fn check(change: impl FnOnce(&mut Grant), want: Result<(), GrantError>) {
            let mut g = new_grant();
            change(&mut g);
            assert_eq!(validate(&g, &roles(), &clusters(), NOW), want, "{g:?}");
        }
        check(|_| {}, Ok(()));
        check(|g| g.namespaces.clear(), Ok(()));
        check(
            |g| g.ends_at = g.starts_at,
            Err(GrantError::EndsBeforeStart),
        );
        check(
            |g| {
                g.starts_at = NOW - time::Duration::hours(2);
                g.ends_at = NOW - time::Duration::hours(1);
            },
            Err(GrantError::EndInPast),
        );
        check(
            |g| g.ends_at = NOW + time::Duration::hours(9),
            Err(GrantError::TooLong {
                role: "viewer".into(),
                max: Duration::from_secs(8 * 3600),
            }),
        );
        check(
            |g| {
                g.role = "deployer".into();
                g.ends_at = NOW + time::Duration::days(400);
            },
            Ok(()),
        );
        for bad in ["Team", "-a", "a-", "a_b", "", &"a".repeat(64)] {
            let bad = bad.to_owned();
            check(
                |g| g.namespaces = vec![bad.clone()],
                Err(TermError::Namespace(bad.clone()).into()),
            );
        }
        check(
            |g| g.namespaces = vec!["a".into(), "a".into()],
            Err(TermError::DuplicateNamespace("a".into()).into()),
        );
        check(
            |g| g.role = "admin".into(),
            Err(GrantError::UnknownRole("admin".into())),
        );
        check(
            |g| g.cluster = "dev".into(),
            Err(GrantError::UnknownCluster("dev".into())),
        );
        check(
            |g| g.grantee = Grantee::Group("system:masters".into()),
            Err(GrantError::Name {
                value: "system:masters".into(),
                source: NameError::Reserved,
            }),
        );
        check(
            |g| g.reason = Some("a\nb".into()),
            Err(TermError::Text("reason").into()),
        );
    }

    #[test]
    fn status_over_time() {
        let mut g = grant("g1", Grantee::User("alice".into()), &[], "viewer");
        g.starts_at = NOW + time::Duration::minutes(1);
        assert_eq!(g.status(NOW), Status::Pending);
        assert!(g.is_active(NOW + time::Duration::minutes(1)));
        assert_eq!(g.status(g.ends_at), Status::Ended);
        g.revoked_at = Some(NOW + time::Duration::minutes(2));
        assert!(g.is_active(NOW + time::Duration::seconds(90)));
        assert_eq!(g.status(NOW + time::Duration::minutes(2)), Status::Revoked);
    }

    #[test]
    fn desired_objects_per_grant_and_namespace() {
        let grants = [
            grant("aaa", Grantee::User("alice".into()), &["a", "b"], "viewer"),
            grant("bbb", Grantee::Group("sre".into()), &[], "deployer"),
            grant("ccc", Grantee::User("carol".into()), &[], "removed-role"),
        ];
        let d = desired(&grants, &roles());
        assert_eq!(
            d.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["credential:role:deployer"]
        );
        let got: Vec<_> = d
            .bindings
            .iter()
            .map(|b| {
                (
                    b.describe(),
                    b.cluster_role.as_str(),
                    b.subjects[0].kind.as_str(),
                    b.subjects[0].name.as_str(),
                    b.grant_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "RoleBinding/a/credential-grant-aaa".to_owned(),
                    "view",
                    "User",
                    "credential:alice",
                    Some("aaa")
                ),
                (
                    "RoleBinding/b/credential-grant-aaa".to_owned(),
                    "view",
                    "User",
                    "credential:alice",
                    Some("aaa")
                ),
                (
                    "ClusterRoleBinding/credential-grant-bbb".to_owned(),
                    "credential:role:deployer",
                    "Group",
                    "credential:sre",
                    Some("bbb")
                ),
            ]
        );
    }

    #[test]
    fn diff_creates_updates_recreates_and_deletes() {
        let want = desired(
            &[
                grant("new", Grantee::User("a".into()), &["x"], "viewer"),
                grant("same", Grantee::User("b".into()), &["x"], "viewer"),
                grant("subj", Grantee::User("c".into()), &["x"], "viewer"),
                grant("ref", Grantee::User("d".into()), &[], "viewer"),
            ],
            &roles(),
        );
        let mut have = want.clone();
        have.bindings.retain(|b| b.name != "credential-grant-new");
        for b in &mut have.bindings {
            if b.name == "credential-grant-subj" {
                b.subjects.push(Subject {
                    kind: "User".into(),
                    name: "mallory".into(),
                });
            }
            if b.name == "credential-grant-ref" {
                b.cluster_role = "cluster-admin".into();
            }
        }
        have.bindings.push(Binding {
            namespace: Some("x".into()),
            name: "stray".into(),
            cluster_role: "admin".into(),
            subjects: vec![],
            grant_id: None,
        });
        have.roles[0].rules[0].verbs.push("delete".into());
        have.roles.push(ManagedRole {
            name: "credential:role:old".into(),
            role: "old".into(),
            rules: vec![],
        });
        let changes: Vec<String> = diff(&want, &have).iter().map(ToString::to_string).collect();
        assert_eq!(
            changes,
            [
                "update   ClusterRole/credential:role:deployer",
                "recreate ClusterRoleBinding/credential-grant-ref",
                "create   RoleBinding/x/credential-grant-new",
                "update   RoleBinding/x/credential-grant-subj",
                "delete   RoleBinding/x/stray",
                "delete   ClusterRole/credential:role:old",
            ]
        );
        assert!(diff(&want, &want).is_empty());
    }

    #[test]
    fn token_groups_never_reach_further_than_the_grant() {
        let g = grant("g", Grantee::User("a".into()), &["x", "y"], "viewer");
        assert_eq!(g.token_groups(), ["grant:viewer:x", "grant:viewer:y"]);
        let g = grant("g", Grantee::User("a".into()), &[], "viewer");
        assert_eq!(g.token_groups(), ["grant:viewer"]);
    }

    #[test]
    fn next_boundary_is_the_next_start_or_end() {
        let mut a = grant("a", Grantee::User("a".into()), &[], "viewer");
        a.ends_at = NOW + time::Duration::seconds(5);
        let mut b = grant("b", Grantee::User("b".into()), &[], "viewer");
        b.starts_at = NOW + time::Duration::seconds(3);
        assert_eq!(
            next_boundary(&[a.clone(), b], NOW),
            Some(NOW + time::Duration::seconds(3))
        );
        assert_eq!(next_boundary(&[a], NOW + time::Duration::seconds(5)), None);
    }
}
