//! The issuer's own JSON API bodies (beyond OAuth): the public cluster list.

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
