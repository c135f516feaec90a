//! The TOML file's schema as written, before any value is checked: one struct per table.
//! Every table denies unknown keys, so a typo fails at start with the key's name.

use std::path::PathBuf;

use serde::Deserialize;

use super::{DatabaseUrl, PolicyRule};
// Named only in the field docs' links.
#[cfg(doc)]
use super::{
    Accounts, AuditConfig, Config, Notifications, RateLimits, RequestPolicy, SigningKeys,
    TlsSource, UpstreamConfig,
};

/// The TOML file's schema. Unknown keys are errors so that typos fail at start.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::issuer_url`].
    pub issuer_url: Option<String>,
    /// See [`Config::listen`].
    pub listen: Option<String>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::database`]. (Prefer the environment variable: it holds a password.)
    pub database_url: Option<DatabaseUrl>,
    /// PostgreSQL connections per issuer process (default 10).
    pub database_max_connections: Option<u32>,
    /// See [`TlsSource::Files`].
    pub tls_cert: Option<PathBuf>,
    /// See [`TlsSource::Files`].
    pub tls_key: Option<PathBuf>,
    /// e.g. `"5m"`.
    pub token_ttl: Option<String>,
    /// e.g. `"12h"`.
    pub session_ttl: Option<String>,
    /// e.g. `"10m"`.
    pub device_code_ttl: Option<String>,
    /// e.g. `"5s"`.
    pub poll_interval: Option<String>,
    /// Extra OAuth client ids besides `kubectl-credential`.
    #[serde(default)]
    pub clients: Vec<String>,
    /// `[[clusters]]` tables.
    #[serde(default)]
    pub clusters: Vec<FileCluster>,
    /// `[rate_limits]`.
    pub rate_limits: Option<FileRateLimits>,
    /// `[accounts]`.
    pub accounts: Option<FileAccounts>,
    /// See [`Config::encryption_key_file`].
    pub encryption_key_file: Option<PathBuf>,
    /// `[[upstreams]]` tables.
    #[serde(default)]
    pub upstreams: Vec<FileUpstream>,
    /// `[policy]`.
    pub policy: Option<FilePolicy>,
    /// `[[roles]]` tables.
    #[serde(default)]
    pub roles: Vec<FileRole>,
    /// See [`Config::webhook_cache_ttl`]; e.g. `"5s"`.
    pub webhook_cache_ttl: Option<String>,
    /// See [`Config::refresh_retry_grace`]; e.g. `"10s"`.
    pub refresh_retry_grace: Option<String>,
    /// `[requests]`.
    pub requests: Option<FileRequests>,
    /// `[notifications]`.
    pub notifications: Option<FileNotifications>,
    /// `[audit]`.
    pub audit: Option<FileAudit>,
    /// `[signing]`.
    pub signing: Option<FileSigning>,
    /// See [`Config::leader_lease`]; e.g. `"15s"`.
    pub leader_lease: Option<String>,
    /// `[[workloads]]` tables: CI jobs and automation trusted by their platform's token.
    #[serde(default)]
    pub workloads: Vec<FileWorkload>,
    /// `[device_flow]`.
    pub device_flow: Option<FileDeviceFlow>,
}

/// `[device_flow]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDeviceFlow {
    /// Networks (`10.0.0.0/8`, `2001:db8::/32`, or one address) device authorizations may come
    /// from; empty or absent: anywhere. See [`Config::device_allowed_networks`].
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

/// `[[workloads]]`: see `crate::domain::workloads::Workload` and docs/machines.md.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWorkload {
    /// DNS label.
    pub name: String,
    /// The trusted issuer (`iss`).
    pub issuer: String,
    /// The audience its tokens must carry.
    pub audience: String,
    /// CA bundle for the issuer's TLS.
    pub ca_file: Option<PathBuf>,
    /// JWKS URL instead of discovery.
    pub jwks_url: Option<String>,
    /// Identity template, e.g. `ci:github:{repository}:{environment}`.
    pub identity: String,
    /// Kubernetes groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Clusters it may get tokens for.
    #[serde(default)]
    pub clusters: Vec<String>,
    /// e.g. `"5m"` (default), at most `"1h"`.
    pub token_lifetime: Option<String>,
    /// Oldest subject token accepted, e.g. `"1h"` (default).
    pub max_age: Option<String>,
    /// Default `true`.
    pub single_use: Option<bool>,
    /// Default `true`.
    pub enabled: Option<bool>,
    /// Claim conditions: a string (exact or glob) or a list of them.
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, FileClaimValue>,
}

/// One claim condition of `[workloads.claims]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileClaimValue {
    /// One pattern.
    One(String),
    /// Any of these.
    Any(Vec<String>),
}

/// `[signing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSigning {
    /// `"directory"` or `"database"`; see [`SigningKeys`].
    pub keys: Option<String>,
}

/// `[requests]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRequests {
    /// See [`Config::request_pending_ttl`], e.g. `"1h"`.
    pub pending_ttl: Option<String>,
    /// See [`Config::request_file_limit`].
    pub file_limit: Option<u32>,
}

/// `[notifications]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNotifications {
    /// See [`Notifications::webhook_url`].
    pub webhook_url: Option<String>,
    /// File holding the HMAC key.
    pub webhook_secret_file: Option<PathBuf>,
}

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAudit {
    /// See [`AuditConfig::auditor_groups`].
    #[serde(default)]
    pub auditor_groups: Vec<String>,
}

/// `[[upstreams]]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    /// See [`UpstreamConfig::id`].
    pub id: String,
    /// See [`UpstreamConfig::name`]; defaults to the id.
    pub name: Option<String>,
    /// See [`UpstreamConfig::issuer_url`].
    pub issuer_url: String,
    /// See [`UpstreamConfig::client_id`].
    pub client_id: String,
    /// File holding the client secret (trailing newline ignored).
    pub client_secret_file: Option<PathBuf>,
    /// Environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// `client_secret_basic` (default) or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// See [`UpstreamConfig::scopes`].
    pub scopes: Option<Vec<String>>,
    /// See [`UpstreamConfig::username_claim`].
    pub username_claim: Option<String>,
    /// See [`UpstreamConfig::groups_claim`].
    pub groups_claim: Option<String>,
    /// See [`UpstreamConfig::allowed_email_domains`].
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// See [`UpstreamConfig::ca_file`].
    pub ca_file: Option<PathBuf>,
    /// See [`UpstreamConfig::offline_grace`]; e.g. `"1h"`, `"0s"` to turn it off.
    pub offline_grace: Option<String>,
}

/// `[policy]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePolicy {
    /// `[[policy.rules]]`, first match wins.
    #[serde(default)]
    pub rules: Vec<FileRule>,
}

/// `[[policy.rules]]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRule {
    /// Identity group name, or a glob (`eng-*`).
    pub group: String,
    /// Kubernetes groups given; default: the identity group's own name.
    #[serde(default)]
    pub kubernetes_groups: Vec<String>,
    /// Clusters the rule applies to; default: all.
    pub clusters: Option<Vec<String>>,
    /// Deny the matching groups.
    #[serde(default)]
    pub deny: bool,
}

/// `[[roles]]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the config file's schema: one switch per key"
)]
pub struct FileRole {
    /// Role name.
    pub name: String,
    /// An existing `ClusterRole` to bind.
    pub cluster_role: Option<String>,
    /// Rules of a managed `ClusterRole`.
    pub rules: Option<Vec<PolicyRule>>,
    /// Longest grant, e.g. `"30d"`.
    pub max_duration: Option<String>,
    /// See [`RequestPolicy::requestable`].
    #[serde(default)]
    pub requestable: bool,
    /// See [`RequestPolicy::approvers`].
    #[serde(default)]
    pub approvers: Vec<String>,
    /// See [`RequestPolicy::reason_required`].
    #[serde(default)]
    pub reason_required: bool,
    /// See [`RequestPolicy::break_glass`].
    #[serde(default)]
    pub break_glass: bool,
    /// See [`RequestPolicy::self_approve`].
    #[serde(default)]
    pub self_approve: bool,
}

/// `[[clusters]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    /// Cluster name.
    pub name: String,
    /// API server URL.
    pub server: Option<String>,
    /// Path of the API server's CA bundle (read at start).
    pub ca_file: Option<PathBuf>,
    /// Base64 PEM of the API server's CA bundle.
    pub certificate_authority_data: Option<String>,
    /// Token audience; defaults to the cluster name.
    pub audience: Option<String>,
    /// Kubeconfig the grant reconciler uses for this cluster.
    pub kubeconfig: Option<PathBuf>,
    /// `true`: the reconciler uses the pod's service account.
    pub in_cluster: Option<bool>,
    /// e.g. `"30s"`.
    pub reconcile_interval: Option<String>,
    /// `[clusters.proxy]`: the impersonating proxy in front of this cluster.
    pub proxy: Option<FileProxy>,
}

/// `[clusters.proxy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProxy {
    /// The proxy's TLS listener, e.g. `"0.0.0.0:8443"` (required).
    pub listen: Option<String>,
    /// The https URL kubeconfigs point at (required).
    pub url: Option<String>,
    /// The proxy's own kubeconfig for the real API server.
    pub kubeconfig: Option<PathBuf>,
    /// `true`: the proxy uses the pod's service account instead.
    pub in_cluster: Option<bool>,
    /// Send `Impersonate-Uid` (Kubernetes 1.22 and later); default false.
    pub impersonate_uid: Option<bool>,
    /// `"none"` or `"metadata"` (default).
    pub audit: Option<String>,
    /// The operator's serving certificate (with `tls_key_file` and `tls_ca_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key.
    pub tls_key_file: Option<PathBuf>,
    /// The CA that signed it, published in the cluster list.
    pub tls_ca_file: Option<PathBuf>,
}

/// `[accounts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAccounts {
    /// See [`Accounts::require_totp`].
    pub require_totp: Option<bool>,
    /// See [`Accounts::invitation_ttl`], e.g. `"24h"`.
    pub invitation_ttl: Option<String>,
}

/// `[rate_limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRateLimits {
    /// See [`RateLimits::user_code_failures`].
    pub user_code_failures: Option<u32>,
    /// See [`RateLimits::password_failures`].
    pub password_failures: Option<u32>,
    /// See [`RateLimits::totp_failures`].
    pub totp_failures: Option<u32>,
    /// See [`RateLimits::device_authorizations`].
    pub device_authorizations: Option<u32>,
    /// See [`RateLimits::window`], e.g. `"15m"`.
    pub window: Option<String>,
}
