//! The clusters the issuer serves and the roles a grant can give them, as configuration
//! validated them: plain data that the domain rules (grants, requests) and the reconciler read.
//! `config` builds these; nothing here parses.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// Default time between two reconciler rounds for a cluster.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

/// A role that a grant can give: a reference to an existing `ClusterRole`, or rules from which the
/// issuer makes a managed `ClusterRole` `credential:role:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    /// Name used by `grant add --role`.
    pub name: String,
    /// What the role allows.
    pub permissions: RolePermissions,
    /// Longest grant of this role; `None`: no limit.
    pub max_duration: Option<Duration>,
    /// Who may ask for this role just in time, and who decides (issue 5).
    pub request: RequestPolicy,
}

impl RoleConfig {
    /// The role's longest grant, when `length` is longer than that.
    #[must_use]
    pub fn exceeded_by<D: PartialOrd<Duration> + Copy>(&self, length: D) -> Option<Duration> {
        self.max_duration.filter(|max| length > *max)
    }
}

/// The just-in-time request policy of a role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent policy switches, as written in the config file"
)]
pub struct RequestPolicy {
    /// People may file requests for this role (`kubectl credential request`).
    pub requestable: bool,
    /// Identity groups whose members may approve (never the requester).
    pub approvers: Vec<String>,
    /// A request must say why.
    pub reason_required: bool,
    /// A break-glass role: every use raises an alert.
    pub break_glass: bool,
    /// The requester's own request is approved at once (only with `break_glass`).
    pub self_approve: bool,
}

/// What a role allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolePermissions {
    /// An existing `ClusterRole`, by name (`view`, `edit`, ...).
    ClusterRole(String),
    /// Rules of a `ClusterRole` the issuer manages.
    Rules(Vec<PolicyRule>),
}

/// One RBAC rule of a role.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// API groups (`""` is the core group).
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Resources, e.g. `pods`, `deployments/scale`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Verbs, e.g. `get`, `list`, `*`.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Restricts the rule to these object names.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// How the reconciler reaches a cluster's API server with credentials of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeAccess {
    /// A kubeconfig file, read at every round (so a file written or rotated later is used).
    Kubeconfig(PathBuf),
    /// The pod's service account: token and CA at the standard paths.
    InCluster,
}

/// One cluster whose API server trusts this issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Name used by `--cluster`.
    pub name: String,
    /// API server URL, published in the cluster list.
    pub server: Option<Url>,
    /// Base64 PEM CA of the API server, published in the cluster list.
    pub certificate_authority_data: Option<String>,
    /// `aud` of tokens for this cluster; the API server's `--oidc-client-id`.
    pub audience: String,
    /// How the grant reconciler reaches the cluster; `None`: grants are not made real here.
    pub access: Option<KubeAccess>,
    /// Time between two reconciler rounds (grant changes and grant ends start one sooner).
    pub reconcile_interval: Duration,
    /// `[clusters.proxy]`: people reach this cluster through the impersonating proxy
    /// (`credential-issuer proxy --cluster NAME`); the published cluster list then names the
    /// proxy, and `server` stays the real API server the proxy forwards to.
    pub proxy: Option<ProxyConfig>,
}

impl ClusterConfig {
    /// The API server URL people's kubeconfigs use for this cluster, as written (no trailing
    /// `/`): the proxy's `url` when the cluster is proxied, else `server`. The cluster list,
    /// token answers (`api_server`, which the plugin compares with the kubeconfig's) and
    /// machine tokens all give this one.
    #[must_use]
    pub fn published_server(&self) -> Option<String> {
        self.proxy
            .as_ref()
            .map(|p| &p.url)
            .or(self.server.as_ref())
            .map(|u| u.as_str().trim_end_matches('/').to_owned())
    }
}

/// `[clusters.proxy]` as validated: where the proxy listens, the URL kubeconfigs point at, its
/// own credential to the real API server, and what it sends and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The proxy's own TLS listener.
    pub listen: std::net::SocketAddr,
    /// What kubeconfigs point at (https), published in the cluster list.
    pub url: url::Url,
    /// The proxy's credential to the real API server (a kubeconfig or the pod's service
    /// account); its server and CA are used when the cluster names none.
    pub upstream: KubeAccess,
    /// Send `Impersonate-Uid` (Kubernetes 1.22 and later only).
    pub impersonate_uid: bool,
    /// One audit event per request, or none.
    pub audit: ProxyAudit,
    /// The proxy's serving certificate.
    pub tls: ProxyTls,
}

/// What the proxy writes to the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyAudit {
    /// Nothing.
    None,
    /// One `proxy.request` event per request: who, what (verb, resource, namespace, name),
    /// the answer's code, duration and size; no bodies.
    Metadata,
}

/// Where the proxy's serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyTls {
    /// A leaf for the host of `url` signed by the issuer's generated local CA (`ca.crt` in the
    /// data directory's TLS folder), which the cluster list publishes.
    Generated,
    /// The operator's certificate and key, and the CA that signed them (published).
    Files {
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key.
        key: PathBuf,
        /// Base64 of the PEM CA bundle that clients must trust.
        ca_data: String,
    },
}
