//! The issuer's own JSON API bodies (beyond OAuth): the public cluster list, the roles one may
//! request, and access requests.

use serde::{Deserialize, Serialize};

/// Path of the public cluster list.
pub const PATH_CLUSTERS: &str = "/api/v1/clusters";

/// `GET /api/v1/clusters`: what `kubectl credential setup` needs to write a kubeconfig.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterList {
    /// The issuer URL (so a kubeconfig can point the plugin back at it).
    pub issuer: String,
    /// Every configured cluster.
    pub clusters: Vec<ClusterInfo>,
}

/// One cluster as configured in the issuer. Public information only.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Name used with `--cluster`.
    pub name: String,
    /// API server URL, where known.
    #[serde(default)]
    pub server: Option<String>,
    /// Base64 PEM CA bundle of the API server, where known.
    #[serde(default)]
    pub certificate_authority_data: Option<String>,
    /// The `aud` of tokens for this cluster (the API server's `--oidc-client-id`).
    pub audience: String,
}

/// Path of the access requests of the caller (`GET` lists, `POST` files one); one request is
/// at `PATH_REQUESTS/{id}`. Authenticated with the plugin's access token (`Bearer`).
pub const PATH_REQUESTS: &str = "/api/v1/requests";

/// `POST /api/v1/requests`: ask for a role just in time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewAccessRequest {
    /// Cluster name.
    pub cluster: String,
    /// Role from the issuer's policy.
    pub role: String,
    /// Namespaces; empty for cluster-wide.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// How long the grant lasts once approved, in seconds.
    pub duration_secs: u64,
}

/// One access request as the issuer reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessRequestInfo {
    /// Request id.
    pub id: String,
    /// Who asked.
    pub requester: String,
    /// Cluster.
    pub cluster: String,
    /// Role.
    pub role: String,
    /// Namespaces (empty: cluster-wide).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// Asked-for length in seconds.
    pub duration_secs: u64,
    /// `pending`, `approved`, `denied`, `expired` or `cancelled` (new values may come).
    pub status: String,
    /// Filed at (Unix seconds).
    pub created_at: i64,
    /// Who decided.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// The decider's comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// The grant an approval created.
    #[serde(default)]
    pub grant_id: Option<String>,
    /// When that grant ends (Unix seconds).
    #[serde(default)]
    pub grant_ends_at: Option<i64>,
    /// Whether the grant is in force now (the plugin then refreshes its token so that the
    /// token's `grants` claim names it).
    #[serde(default)]
    pub grant_active: bool,
}

/// `GET /api/v1/requests`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccessRequestList {
    /// The caller's requests, newest first.
    pub requests: Vec<AccessRequestInfo>,
}

/// Path of the roles the caller may request (`GET`), with their limits. Authenticated with
/// the plugin's access token (`Bearer`), like [`PATH_REQUESTS`].
pub const PATH_ROLES: &str = "/api/v1/roles";

/// `GET /api/v1/roles`: what `kubectl credential request --role` accepts on the caller's
/// cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleList {
    /// The cluster of the caller's token (requests are filed for it).
    #[serde(default)]
    pub cluster: Option<String>,
    /// The requestable roles, by name.
    pub roles: Vec<RoleInfo>,
}

/// One role that may be requested.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleInfo {
    /// Name used with `--role`.
    pub name: String,
    /// Longest `--for`, in seconds.
    pub max_duration_secs: u64,
    /// The same limit as people write it (`4h`, `30m`, `30d`).
    pub max_duration: String,
    /// Whether a request waits for an approver (false: break-glass, approved at once and
    /// alerted).
    pub needs_approval: bool,
    /// Identity groups whose members approve (never the requester).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Whether a request must say why (`--reason`).
    #[serde(default)]
    pub reason_required: bool,
    /// Whether this is a break-glass role (every use raises an alert).
    #[serde(default)]
    pub break_glass: bool,
}

/// An error body of the requests API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Machine-readable code: `unauthorized`, `invalid_request`, `forbidden`, `not_found`,
    /// `rate_limited`, `server_error`.
    pub error: String,
    /// For people.
    #[serde(default)]
    pub message: String,
}
