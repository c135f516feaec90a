//! The issuer's configuration: defaults < TOML file < environment < flags, parsed once into typed
//! values and validated before the server binds. A bad value fails with the field's name.

use std::fmt;

use crate::env;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use url::Url;

pub use crate::domain::cluster::{
    ClusterConfig, KubeAccess, PolicyRule, RequestPolicy, RoleConfig, RolePermissions,
    DEFAULT_RECONCILE_INTERVAL,
};
pub use crate::upstream::settings::{
    ClientAuth, UpstreamConfig, DEFAULT_OFFLINE_GRACE, DEFAULT_UPSTREAM_SCOPES, MAX_OFFLINE_GRACE,
};

/// The lease's lifetime when `leader_lease` is not configured (today's 15 s).
pub const LEADER_LEASE_DEFAULT: Duration = Duration::from_secs(15);
/// The shortest `leader_lease`: below it the margin (a fifth) leaves less than a second of
/// clock skew, and every replica writes the lease row more than once a second or so.
pub const LEADER_LEASE_MIN: Duration = Duration::from_secs(5);
/// The longest `leader_lease`: grants would stay unreconciled for minutes after a crash.
pub const LEADER_LEASE_MAX: Duration = Duration::from_secs(300);

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Public URL, the `iss` of every token. Always https.
    pub issuer_url: Url,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Database, keys and generated TLS material live here.
    pub data_dir: PathBuf,
    /// The database: SQLite in `data_dir` unless `database_url` names a PostgreSQL server.
    pub database: crate::store::Location,
    /// Where the serving certificate comes from.
    pub tls: TlsSource,
    /// Clusters tokens can be issued for.
    pub clusters: Vec<ClusterConfig>,
    /// OAuth client ids that may use the device flow.
    pub clients: Vec<String>,
    /// Lifetime of an access token.
    pub token_ttl: Duration,
    /// Absolute lifetime of a login session (refreshes cannot extend it).
    pub session_ttl: Duration,
    /// Lifetime of a device code.
    pub device_code_ttl: Duration,
    /// Minimum polling interval told to device-flow clients.
    pub poll_interval: Duration,
    /// Limits on guessing.
    pub rate_limits: RateLimits,
    /// Local accounts: second factor policy and invitations.
    pub accounts: Accounts,
    /// File with the 32-byte key that encrypts secrets at rest; `None`: `seal.key` in the data
    /// directory, created on first start (unless `encryption_key` is given).
    pub encryption_key_file: Option<PathBuf>,
    /// The key itself (base64), from `CREDENTIAL_ISSUER_ENCRYPTION_KEY`; excludes
    /// `encryption_key_file`.
    pub encryption_key: Option<crate::secrets::secret::Secret>,
    /// Upstream OpenID Connect providers offered on the sign-in page, in config order.
    pub upstreams: Vec<UpstreamConfig>,
    /// Group mapping applied to every identity at token minting.
    pub policy: crate::domain::policy::Policy,
    /// Roles that grants can give (`[[roles]]`).
    pub roles: Vec<RoleConfig>,
    /// How long the token-review webhook trusts a cached session state (zero: no cache). It
    /// bounds how late a revocation made by another process (`user disable`, another replica)
    /// is seen; this process's own revocations invalidate the cache at once.
    pub webhook_cache_ttl: Duration,
    /// How long after a rotation the previous refresh token, presented again, gets the same
    /// successor back instead of counting as reuse (a client whose answer was lost retries);
    /// zero: every second presentation revokes the session.
    pub refresh_retry_grace: Duration,
    /// How long an access request may stay pending before it expires.
    pub request_pending_ttl: Duration,
    /// Access requests one person may file per rate-limit window.
    pub request_file_limit: u32,
    /// The chat webhook, if configured.
    pub notifications: Option<Notifications>,
    /// `[audit]`: who may read the trail on the `/audit` page.
    pub audit: AuditConfig,
    /// `[signing] keys`: where the signing keys are kept. Read it through
    /// [`Config::signing_keys_source`].
    pub signing_keys: SigningKeys,
    /// `leader_lease`: how long the leader lease lasts in the database; it is renewed every
    /// third of that, and its holder stops acting as leader a fifth before it expires
    /// (the leader lease's `Timing`). A killed leader is replaced within about the lease plus a
    /// renewal.
    pub leader_lease: Duration,
    /// Where the settings that locate the store were given, so that a command printed for the
    /// operator names the same store as this process (`crate::cli::banner`).
    pub store_origin: StoreOrigin,
}

/// Where the settings that locate the store (config file, database URL, encryption key file)
/// came from. A hint that repeats them must name the file, or the flag or environment
/// variable, that gave them, and never paste a database URL that holds a password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOrigin {
    /// `--config` (or `CREDENTIAL_ISSUER_CONFIG`): the file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// `database_url` came from `--database-url` or `CREDENTIAL_ISSUER_DATABASE_URL` rather
    /// than from the config file.
    pub database_url_overridden: bool,
    /// `encryption_key_file` came from `--encryption-key-file` or its environment variable
    /// rather than from the config file.
    pub encryption_key_file_overridden: bool,
}

/// Where the signing keys are kept (`[signing] keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKeys {
    /// `"directory"`: files in `<data dir>/keys` (one issuer).
    Directory,
    /// `"database"`: rows of the database, sealed with `encryption_key_file`, shared by every
    /// replica.
    Database,
}

/// `[audit]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditConfig {
    /// Members of any of these (identity) groups may open `/audit`; empty: nobody may.
    pub auditor_groups: Vec<String>,
}

/// `[notifications]`: the chat webhook told about requests and decisions.
#[derive(Debug, Clone)]
pub struct Notifications {
    /// Where to POST (http or https).
    pub webhook_url: Url,
    /// HMAC-SHA256 key for the `X-Credential-Signature` header, read at start.
    pub webhook_secret: Option<crate::secrets::secret::Secret>,
}

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A CA and a certificate for localhost/127.0.0.1, generated in `data_dir/tls` on first start.
    Generated,
    /// Operator-provided PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
}

/// `[accounts]`: local accounts' second factor and invitations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// Refuse password-only sign-in: every local account must have enrolled TOTP.
    pub require_totp: bool,
    /// Default lifetime of an invitation link (`invite create --link-ttl` overrides it).
    pub invitation_ttl: Duration,
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            require_totp: false,
            invitation_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Rate limits against guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Wrong user codes accepted per client address per window.
    pub user_code_failures: u32,
    /// Wrong passwords accepted per account per window (and per address per window).
    pub password_failures: u32,
    /// Wrong TOTP codes accepted per account (or invitation) per window (and four times as
    /// many per address).
    pub totp_failures: u32,
    /// Device authorizations started per client address per window (each stores a row, so an
    /// unauthenticated flood must not grow the database without bound).
    pub device_authorizations: u32,
    /// Length of the window.
    pub window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            user_code_failures: 10,
            password_failures: 5,
            totp_failures: 5,
            device_authorizations: 100,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// A configuration error. Each names the field it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema (unknown keys included).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the field.
        message: String,
    },
    /// A field has a bad value.
    #[error("invalid value for `{field}`: {message}")]
    Invalid {
        /// Dotted field name (`clusters[0].audience`) or environment variable/flag name.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// No data directory could be determined.
    #[error(
        "cannot determine a data directory: set --data-dir or {}",
        env::DATA_DIR
    )]
    NoDataDir,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A database URL as the operator wrote it. It may carry a password, so `Debug` shows it
/// redacted; only [`Config::database`] holds the usable value.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::store::redact_url(&self.0))
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// PostgreSQL connections per issuer process, unless `database_max_connections` says otherwise.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

fn parse_database(
    url: Option<&DatabaseUrl>,
    max_connections: Option<u32>,
    data_dir: &Path,
    explicit_key: bool,
) -> Result<crate::store::Location, ConfigError> {
    use crate::store::{Location, PostgresOptions};
    let Some(DatabaseUrl(url)) = url else {
        return Ok(Location::Sqlite(data_dir.join("issuer.db")));
    };
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(invalid(
                "database_url",
                "`sqlite:` needs a file path, e.g. sqlite:///var/lib/credential-issuer/issuer.db",
            ));
        }
        return Ok(Location::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let parsed = Url::parse(url).map_err(|e| {
            invalid(
                "database_url",
                format!("{} is not a valid URL: {e}", crate::store::redact_url(url)),
            )
        })?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("database_url", "the PostgreSQL URL names no host"));
        }
        if !explicit_key {
            return Err(invalid(
                "encryption_key_file",
                "is required with a PostgreSQL database: every replica must seal and open secrets \
                 with the same key. Create one with `head -c 32 /dev/urandom | base64 > FILE` \
                 and give it to every replica (a Kubernetes Secret)",
            ));
        }
        let max_connections = max_connections.unwrap_or(POSTGRES_MAX_CONNECTIONS);
        if !(2..=1000).contains(&max_connections) {
            return Err(invalid(
                "database_max_connections",
                format!("{max_connections} is outside 2..=1000"),
            ));
        }
        return Ok(Location::Postgres(PostgresOptions {
            url: url.clone(),
            max_connections,
            schema: None,
        }));
    }
    Err(invalid(
        "database_url",
        format!(
            "{} is neither postgres://USER:PASSWORD@HOST/DB nor sqlite:PATH",
            crate::store::redact_url(url)
        ),
    ))
}

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

/// Values from the command line (and, through clap, their environment variables). `None` means
/// "not given"; they override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<DatabaseUrl>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--issuer-url`.
    pub issuer_url: Option<String>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--token-ttl`.
    pub token_ttl: Option<String>,
    /// `--session-ttl`.
    pub session_ttl: Option<String>,
    /// `--encryption-key-file`.
    pub encryption_key_file: Option<PathBuf>,
    /// `CREDENTIAL_ISSUER_ENCRYPTION_KEY` (environment only: a flag would show in `ps`).
    pub encryption_key: Option<crate::secrets::secret::Secret>,
}

impl Config {
    /// Loads the file named by `overrides.config_file` (if any), applies the overrides and
    /// validates the result.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => Self::read_file(path)?,
            None => FileConfig::default(),
        };
        Self::from_parts(file, overrides, default_data_dir)
    }

    /// Parses a TOML file.
    pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = read_small_file(path, MAX_CONFIG_FILE)
            .and_then(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Merges file and overrides and validates. `default_data_dir` is called only when neither
    /// gives a data directory.
    pub fn from_parts(
        file: FileConfig,
        o: &Overrides,
        default_data_dir: impl FnOnce() -> Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let listen_s = o
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_s.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen_s}` is not an address like 127.0.0.1:8443"),
            )
        })?;

        let issuer_s = o
            .issuer_url
            .clone()
            .or(file.issuer_url)
            .unwrap_or_else(|| format!("https://{}", default_host(listen)));
        let issuer_url = parse_issuer_url(&issuer_s)?;

        let data_dir = match o.data_dir.clone().or(file.data_dir) {
            Some(d) => d,
            None => default_data_dir().ok_or(ConfigError::NoDataDir)?,
        };

        let tls = match (
            o.tls_cert.clone().or(file.tls_cert),
            o.tls_key.clone().or(file.tls_key),
        ) {
            (None, None) => TlsSource::Generated,
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            (Some(_), None) => {
                return Err(invalid("tls_key", "tls_cert is set but tls_key is not"))
            }
            (None, Some(_)) => {
                return Err(invalid("tls_cert", "tls_key is set but tls_cert is not"))
            }
        };

        let token_ttl = duration_field(
            "token_ttl",
            o.token_ttl.as_deref().or(file.token_ttl.as_deref()),
            "5m",
        )?;
        let session_ttl = duration_field(
            "session_ttl",
            o.session_ttl.as_deref().or(file.session_ttl.as_deref()),
            "12h",
        )?;
        let device_code_ttl =
            duration_field("device_code_ttl", file.device_code_ttl.as_deref(), "10m")?;
        let poll_interval = duration_field("poll_interval", file.poll_interval.as_deref(), "5s")?;
        if token_ttl < Duration::from_secs(1) || token_ttl > Duration::from_secs(24 * 3600) {
            return Err(invalid("token_ttl", "must be between 1s and 24h"));
        }
        if session_ttl < token_ttl {
            return Err(invalid("session_ttl", "must not be shorter than token_ttl"));
        }
        if session_ttl > MAX_SESSION_TTL {
            return Err(invalid("session_ttl", "must be at most 366d"));
        }
        if device_code_ttl < Duration::from_secs(30) || device_code_ttl > Duration::from_secs(3600)
        {
            return Err(invalid("device_code_ttl", "must be between 30s and 1h"));
        }
        if poll_interval.is_zero() || poll_interval > Duration::from_secs(60) {
            return Err(invalid("poll_interval", "must be between 1s and 60s"));
        }

        let webhook_cache_ttl =
            duration_field("webhook_cache_ttl", file.webhook_cache_ttl.as_deref(), "5s")?;
        if webhook_cache_ttl > Duration::from_secs(300) {
            return Err(invalid("webhook_cache_ttl", "must be at most 5m"));
        }
        let refresh_retry_grace = duration_field(
            "refresh_retry_grace",
            file.refresh_retry_grace.as_deref(),
            "10s",
        )?;
        if refresh_retry_grace > Duration::from_secs(120) {
            return Err(invalid(
                "refresh_retry_grace",
                "must be at most 2m (a spent token stays usable for that long)",
            ));
        }

        let leader_lease = duration_field(
            "leader_lease",
            file.leader_lease.as_deref(),
            &format!("{}s", LEADER_LEASE_DEFAULT.as_secs()),
        )?;
        if !(LEADER_LEASE_MIN..=LEADER_LEASE_MAX).contains(&leader_lease) {
            return Err(invalid(
                "leader_lease",
                format!(
                    "must be between {}s and {}m (shorter: less clock skew tolerated between \
                     replicas; longer: a dead leader's work waits that long)",
                    LEADER_LEASE_MIN.as_secs(),
                    LEADER_LEASE_MAX.as_secs() / 60
                ),
            ));
        }

        let audit = AuditConfig {
            auditor_groups: file.audit.map(|a| a.auditor_groups).unwrap_or_default(),
        };
        for (i, g) in audit.auditor_groups.iter().enumerate() {
            crate::domain::names::validate_group(g)
                .map_err(|e| invalid(format!("audit.auditor_groups[{i}]"), e.to_string()))?;
        }

        let mut clusters = Vec::new();
        for (i, c) in file.clusters.into_iter().enumerate() {
            clusters.push(validate_cluster(i, c)?);
        }
        if clusters.is_empty() {
            // Zero configuration: one cluster whose API server is configured with
            // `--oidc-client-id=kubernetes`, as install/ documents.
            clusters.push(ClusterConfig {
                name: "default".to_owned(),
                server: None,
                certificate_authority_data: None,
                audience: "kubernetes".to_owned(),
                access: None,
                reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            });
        }
        for (i, c) in clusters.iter().enumerate() {
            if clusters[..i].iter().any(|p| p.name == c.name) {
                return Err(invalid(
                    format!("clusters[{i}].name"),
                    format!("duplicate cluster `{}`", c.name),
                ));
            }
        }

        let mut clients = vec![credential_shared::oauth::PLUGIN_CLIENT_ID.to_owned()];
        for (i, c) in file.clients.into_iter().enumerate() {
            if c.is_empty() || c.len() > 128 || !c.chars().all(|ch| ch.is_ascii_graphic()) {
                return Err(invalid(
                    format!("clients[{i}]"),
                    "must be 1 to 128 visible ASCII characters",
                ));
            }
            if !clients.contains(&c) {
                clients.push(c);
            }
        }

        let mut rate_limits = RateLimits::default();
        if let Some(r) = file.rate_limits {
            if let Some(n) = r.user_code_failures {
                rate_limits.user_code_failures = n;
            }
            if let Some(n) = r.password_failures {
                rate_limits.password_failures = n;
            }
            if let Some(n) = r.totp_failures {
                if n == 0 {
                    return Err(invalid(
                        "rate_limits.totp_failures",
                        "must be at least 1 (0 would refuse every code)",
                    ));
                }
                rate_limits.totp_failures = n;
            }
            if let Some(n) = r.device_authorizations {
                rate_limits.device_authorizations = n;
            }
            rate_limits.window = duration_field("rate_limits.window", r.window.as_deref(), "15m")?;
            if rate_limits.window > MAX_RATE_LIMIT_WINDOW {
                return Err(invalid("rate_limits.window", "must be at most 1d"));
            }
        }

        let mut accounts = Accounts::default();
        if let Some(a) = file.accounts {
            accounts.require_totp = a.require_totp.unwrap_or(false);
            accounts.invitation_ttl = duration_field(
                "accounts.invitation_ttl",
                a.invitation_ttl.as_deref(),
                "24h",
            )?;
            if accounts.invitation_ttl < Duration::from_secs(60)
                || accounts.invitation_ttl > Duration::from_secs(30 * 86_400)
            {
                return Err(invalid(
                    "accounts.invitation_ttl",
                    "must be between 1m and 30d",
                ));
            }
        }
        let mut upstreams: Vec<UpstreamConfig> = Vec::new();
        for (i, u) in file.upstreams.into_iter().enumerate() {
            let u = validate_upstream(i, u)?;
            if upstreams.iter().any(|p| p.id == u.id) {
                return Err(invalid(
                    format!("upstreams[{i}].id"),
                    format!("duplicate upstream `{}`", u.id),
                ));
            }
            upstreams.push(u);
        }
        let policy = validate_policy(file.policy.unwrap_or_default(), &clusters)?;
        let mut roles = Vec::new();
        for (i, r) in file.roles.into_iter().enumerate() {
            let role = validate_role(i, r)?;
            if roles.iter().any(|p: &RoleConfig| p.name == role.name) {
                return Err(invalid(
                    format!("roles[{i}].name"),
                    format!("duplicate role `{}`", role.name),
                ));
            }
            roles.push(role);
        }
        let requests = file.requests.unwrap_or_default();
        let request_pending_ttl = duration_field(
            "requests.pending_ttl",
            requests.pending_ttl.as_deref(),
            "1h",
        )?;
        if request_pending_ttl < Duration::from_secs(60)
            || request_pending_ttl > Duration::from_secs(7 * 86_400)
        {
            return Err(invalid("requests.pending_ttl", "must be between 1m and 7d"));
        }
        let request_file_limit = requests.file_limit.unwrap_or(20);
        if request_file_limit == 0 {
            return Err(invalid(
                "requests.file_limit",
                "must be at least 1 (0 would refuse every request)",
            ));
        }
        let notifications = file
            .notifications
            .map(validate_notifications)
            .transpose()?
            .flatten();
        let store_origin = StoreOrigin {
            config_file: o.config_file.clone(),
            database_url_overridden: o.database_url.is_some(),
            encryption_key_file_overridden: o.encryption_key_file.is_some(),
        };
        let encryption_key_file = o.encryption_key_file.clone().or(file.encryption_key_file);
        let encryption_key = o.encryption_key.clone();
        if encryption_key.is_some() && encryption_key_file.is_some() {
            return Err(invalid(
                "encryption_key_file",
                format!(
                    "and {} are both set: give the key one way only",
                    env::ENCRYPTION_KEY
                ),
            ));
        }
        // What replicas need: a key given to them, not one each generates for itself.
        let explicit_key = encryption_key_file.is_some() || encryption_key.is_some();
        let database = parse_database(
            o.database_url.as_ref().or(file.database_url.as_ref()),
            file.database_max_connections,
            &data_dir,
            explicit_key,
        )?;
        let signing_keys =
            validate_signing(&file.signing.unwrap_or_default(), explicit_key, &database)?;
        Ok(Self {
            issuer_url,
            listen,
            data_dir,
            database,
            tls,
            clusters,
            clients,
            token_ttl,
            session_ttl,
            device_code_ttl,
            poll_interval,
            rate_limits,
            accounts,
            encryption_key_file,
            encryption_key,
            upstreams,
            policy,
            roles,
            webhook_cache_ttl,
            refresh_retry_grace,
            request_pending_ttl,
            request_file_limit,
            notifications,
            audit,
            signing_keys,
            leader_lease,
            store_origin,
        })
    }

    /// The upstream provider with this id.
    #[must_use]
    pub fn upstream(&self, id: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.id == id)
    }

    /// The cluster called `name`.
    #[must_use]
    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// The role called `name`.
    #[must_use]
    pub fn role(&self, name: &str) -> Option<&RoleConfig> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The issuer URL as written into `iss` (no trailing slash).
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.issuer_url.as_str().trim_end_matches('/')
    }

    /// The database for people: the SQLite file, or the PostgreSQL URL without its password.
    #[must_use]
    pub fn database_description(&self) -> String {
        match &self.database {
            crate::store::Location::Sqlite(path) => format!("SQLite {}", path.display()),
            crate::store::Location::Postgres(o) => {
                format!("PostgreSQL {}", crate::store::redact_url(&o.url))
            }
        }
    }

    /// How long a superseded signing key stays published (and on disk): the longest token
    /// lifetime, plus the time a running issuer may take to notice a rotation and keep signing
    /// with the old key, plus a minute of clock skew.
    #[must_use]
    pub fn key_retention(&self) -> Duration {
        self.token_ttl + crate::signing::RELOAD_EVERY + Duration::from_secs(60)
    }

    /// Where the signing keys are kept: `[signing] keys`, validated (in the database only
    /// with an explicit `encryption_key_file`).
    #[must_use]
    pub fn signing_keys_source(&self) -> SigningKeys {
        self.signing_keys
    }

    /// Directory of the signing keys (when they are kept in files).
    #[must_use]
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    /// The key that encrypts secrets kept at rest: `encryption_key_file`, or `seal.key` in the
    /// data directory (created on first start).
    #[must_use]
    pub fn seal_key_file(&self) -> PathBuf {
        self.encryption_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("seal.key"))
    }

    /// The key that seals secrets at rest: `CREDENTIAL_ISSUER_ENCRYPTION_KEY`, else the key
    /// file, created when missing if `create` (the server; admin commands never create one: a
    /// new key would not open what was sealed with the shared one).
    pub fn sealer(
        &self,
        create: bool,
    ) -> Result<crate::secrets::seal::Sealer, crate::secrets::seal::SealError> {
        if let Some(key) = &self.encryption_key {
            return crate::secrets::seal::Sealer::from_text(env::ENCRYPTION_KEY, key.expose());
        }
        let path = self.seal_key_file();
        if create {
            crate::secrets::seal::Sealer::load_or_create(&path)
        } else {
            crate::secrets::seal::Sealer::load(&path)
        }
    }

    /// Directory of generated TLS material.
    #[must_use]
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }
}

/// `[signing]`: where keys are kept. In the database they are sealed with the encryption key,
/// which every replica must share, so it has to be given explicitly: the `seal.key` generated
/// in one replica's data directory would differ from the next one's.
fn validate_signing(
    signing: &FileSigning,
    explicit_key: bool,
    database: &crate::store::Location,
) -> Result<SigningKeys, ConfigError> {
    let keys = match signing.keys.as_deref() {
        // Replicas on one PostgreSQL must sign with the same keys: there they live in it.
        None if matches!(database, crate::store::Location::Postgres(_)) => SigningKeys::Database,
        None | Some("directory") => SigningKeys::Directory,
        Some("database") => SigningKeys::Database,
        Some(other) => {
            return Err(invalid(
                "signing.keys",
                format!("`{other}` is neither \"directory\" nor \"database\""),
            ))
        }
    };
    if keys == SigningKeys::Database && !explicit_key {
        return Err(invalid(
            "signing.keys",
            format!(
                "\"database\" seals the keys with the encryption key that every replica shares, \
                 so it needs an explicit encryption_key_file (or {} / --encryption-key-file); \
                 create one with `openssl rand -base64 32`",
                env::ENCRYPTION_KEY_FILE
            ),
        ));
    }
    Ok(keys)
}

fn default_host(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        format!("127.0.0.1:{}", listen.port())
    } else {
        listen.to_string()
    }
}

fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("dev", "kubectl-credential", "credential-issuer")
        .map(|d| d.data_dir().to_owned())
}

fn parse_issuer_url(s: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(s).map_err(|e| invalid("issuer_url", format!("`{s}` is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(invalid(
            "issuer_url",
            "must be an https URL (kube-apiserver accepts no other)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("issuer_url", "must not have a query or fragment"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(invalid(
            "issuer_url",
            "a path prefix is not supported; serve the issuer at the root of a host",
        ));
    }
    Ok(url)
}

fn validate_cluster(i: usize, c: FileCluster) -> Result<ClusterConfig, ConfigError> {
    let field = |f: &str| format!("clusters[{i}].{f}");
    if c.name.is_empty()
        || c.name.len() > 63
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
    {
        return Err(invalid(
            field("name"),
            "must be 1 to 63 characters of [A-Za-z0-9._-]",
        ));
    }
    let server = match c.server {
        None => None,
        Some(s) => {
            let u = Url::parse(&s)
                .map_err(|e| invalid(field("server"), format!("`{s}` is not a URL: {e}")))?;
            if u.scheme() != "https" {
                return Err(invalid(field("server"), "must be an https URL"));
            }
            Some(u)
        }
    };
    let certificate_authority_data = match (c.ca_file, c.certificate_authority_data) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                field("ca_file"),
                "set ca_file or certificate_authority_data, not both",
            ))
        }
        (Some(path), None) => {
            let pem = read_small_file(&path, MAX_CA_FILE).map_err(|e| {
                invalid(
                    field("ca_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            if !pem.starts_with(b"-----BEGIN") {
                return Err(invalid(
                    field("ca_file"),
                    format!("{} is not a PEM file", path.display()),
                ));
            }
            Some(base64::engine::general_purpose::STANDARD.encode(pem))
        }
        (None, data) => data,
    };
    let audience = c.audience.unwrap_or_else(|| c.name.clone());
    if audience.is_empty() || audience.len() > 256 {
        return Err(invalid(field("audience"), "must be 1 to 256 characters"));
    }
    let access = match (c.kubeconfig, c.in_cluster.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(invalid(
                field("in_cluster"),
                "set kubeconfig or in_cluster = true, not both",
            ))
        }
        (Some(path), false) => {
            if path.as_os_str().is_empty() {
                return Err(invalid(field("kubeconfig"), "must not be empty"));
            }
            Some(KubeAccess::Kubeconfig(path))
        }
        (None, true) => Some(KubeAccess::InCluster),
        (None, false) => None,
    };
    let reconcile_interval = duration_field(
        &field("reconcile_interval"),
        c.reconcile_interval.as_deref(),
        "30s",
    )?;
    if reconcile_interval.is_zero() || reconcile_interval > Duration::from_secs(3600) {
        return Err(invalid(
            field("reconcile_interval"),
            "must be between 1s and 1h",
        ));
    }
    Ok(ClusterConfig {
        name: c.name,
        server,
        certificate_authority_data,
        audience,
        access,
        reconcile_interval,
    })
}

/// Longest role name: `credential:role:<name>` must stay a short, readable object name.
const MAX_ROLE_NAME: usize = 40;

fn validate_role(i: usize, r: FileRole) -> Result<RoleConfig, ConfigError> {
    let field = |f: &str| format!("roles[{i}].{f}");
    if !crate::domain::grants::is_dns_label(&r.name) || r.name.len() > MAX_ROLE_NAME {
        return Err(invalid(
            field("name"),
            format!("must be 1 to {MAX_ROLE_NAME} characters of [a-z0-9-], starting and ending with a letter or digit"),
        ));
    }
    let permissions = match (r.cluster_role, r.rules) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                field("rules"),
                "set cluster_role or rules, not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                field("cluster_role"),
                "set cluster_role (an existing ClusterRole) or rules",
            ))
        }
        (Some(name), None) => {
            if name.is_empty()
                || name.len() > 253
                || name.chars().any(|c| c.is_whitespace() || c == '/')
            {
                return Err(invalid(field("cluster_role"), "must be a ClusterRole name"));
            }
            RolePermissions::ClusterRole(name)
        }
        (None, Some(rules)) => {
            if rules.is_empty() {
                return Err(invalid(field("rules"), "must hold at least one rule"));
            }
            for (j, rule) in rules.iter().enumerate() {
                if rule.verbs.is_empty() {
                    return Err(invalid(
                        field(&format!("rules[{j}].verbs")),
                        "must name at least one verb",
                    ));
                }
                if rule.resources.is_empty() {
                    return Err(invalid(
                        field(&format!("rules[{j}].resources")),
                        "must name at least one resource",
                    ));
                }
                let all = rule
                    .api_groups
                    .iter()
                    .chain(&rule.resources)
                    .chain(&rule.verbs)
                    .chain(&rule.resource_names);
                for v in all {
                    if v.len() > 253 || v.chars().any(char::is_whitespace) {
                        return Err(invalid(
                            field(&format!("rules[{j}]")),
                            format!("`{v}` is not a valid RBAC value"),
                        ));
                    }
                }
            }
            RolePermissions::Rules(rules)
        }
    };
    let max_duration = match r.max_duration {
        None => None,
        Some(s) => Some(duration_field(&field("max_duration"), Some(&s), "0s")?),
    };
    if max_duration.is_some_and(|d| d.is_zero() || d > MAX_GRANT_DURATION) {
        return Err(invalid(
            field("max_duration"),
            "must be between 1s and 366d",
        ));
    }
    for (j, g) in r.approvers.iter().enumerate() {
        if crate::domain::names::validate_group(g).is_err() {
            return Err(invalid(
                field(&format!("approvers[{j}]")),
                format!("`{g}` is not a valid group name"),
            ));
        }
    }
    if r.self_approve && !r.break_glass {
        return Err(invalid(
            field("self_approve"),
            "only a break_glass role may be self-approved",
        ));
    }
    if r.requestable && r.approvers.is_empty() && !r.self_approve {
        return Err(invalid(
            field("approvers"),
            "a requestable role needs approvers (or break_glass with self_approve)",
        ));
    }
    if !r.requestable && (r.break_glass || r.reason_required || !r.approvers.is_empty()) {
        return Err(invalid(
            field("requestable"),
            "approvers, reason_required and break_glass only apply to a requestable role",
        ));
    }
    if r.requestable && max_duration.is_none() {
        return Err(invalid(
            field("max_duration"),
            "a requestable role needs a max_duration",
        ));
    }
    Ok(RoleConfig {
        name: r.name,
        permissions,
        max_duration,
        request: RequestPolicy {
            requestable: r.requestable,
            approvers: r.approvers,
            reason_required: r.reason_required || r.break_glass,
            break_glass: r.break_glass,
            self_approve: r.self_approve,
        },
    })
}

fn validate_notifications(n: FileNotifications) -> Result<Option<Notifications>, ConfigError> {
    let Some(url) = n.webhook_url else {
        if n.webhook_secret_file.is_some() {
            return Err(invalid(
                "notifications.webhook_secret_file",
                "needs notifications.webhook_url",
            ));
        }
        return Ok(None);
    };
    let webhook_url = Url::parse(&url)
        .map_err(|e| invalid("notifications.webhook_url", format!("not a URL: {e}")))?;
    if !matches!(webhook_url.scheme(), "http" | "https") || webhook_url.host().is_none() {
        return Err(invalid(
            "notifications.webhook_url",
            "must be an http or https URL",
        ));
    }
    let webhook_secret = match n.webhook_secret_file {
        None => None,
        Some(path) => {
            let text = read_small_file(&path, MAX_SECRET_FILE)
                .and_then(|b| {
                    String::from_utf8(b)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                })
                .map_err(|e| {
                    invalid(
                        "notifications.webhook_secret_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
            let text = text.trim();
            if text.len() < 16 {
                return Err(invalid(
                    "notifications.webhook_secret_file",
                    "the secret must be at least 16 characters",
                ));
            }
            Some(crate::secrets::secret::Secret::new(text.to_owned()))
        }
    };
    Ok(Some(Notifications {
        webhook_url,
        webhook_secret,
    }))
}

fn validate_upstream(i: usize, u: FileUpstream) -> Result<UpstreamConfig, ConfigError> {
    let field = |f: &str| format!("upstreams[{i}].{f}");
    if u.id.is_empty()
        || u.id.len() > 32
        || !u
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            field("id"),
            "must be 1 to 32 characters of [A-Za-z0-9_-]",
        ));
    }
    let name = u.name.unwrap_or_else(|| u.id.clone());
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(invalid(field("name"), "must be 1 to 64 characters"));
    }
    let issuer_url = Url::parse(&u.issuer_url).map_err(|e| {
        invalid(
            field("issuer_url"),
            format!("`{}` is not a URL: {e}", u.issuer_url),
        )
    })?;
    if !crate::upstream::is_allowed_url(&issuer_url) {
        return Err(invalid(
            field("issuer_url"),
            "must be an https URL (plain http only for loopback addresses)",
        ));
    }
    if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
        return Err(invalid(
            field("issuer_url"),
            "must not have a query or fragment",
        ));
    }
    if u.client_id.is_empty() || u.client_id.len() > 256 {
        return Err(invalid(field("client_id"), "must be 1 to 256 characters"));
    }
    let client_secret = match (u.client_secret_file, u.client_secret_env) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                field("client_secret_file"),
                "set client_secret_file or client_secret_env, not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                field("client_secret_file"),
                "set client_secret_file or client_secret_env",
            ))
        }
        (Some(path), None) => read_small_file(&path, MAX_SECRET_FILE)
            .and_then(|b| {
                String::from_utf8(b)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .map_err(|e| {
                invalid(
                    field("client_secret_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        (None, Some(var)) => std::env::var(&var).map_err(|_| {
            invalid(
                field("client_secret_env"),
                format!("environment variable {var} is not set"),
            )
        })?,
    };
    if client_secret.is_empty() {
        return Err(invalid(
            field("client_secret_file"),
            "the client secret is empty",
        ));
    }
    let client_auth = match u.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => ClientAuth::Basic,
        Some("client_secret_post") => ClientAuth::Post,
        Some(other) => {
            return Err(invalid(
                field("token_endpoint_auth_method"),
                format!("`{other}` is not client_secret_basic or client_secret_post"),
            ))
        }
    };
    let mut scopes = u.scopes.unwrap_or_else(|| {
        DEFAULT_UPSTREAM_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    });
    if scopes.iter().any(|s| {
        s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    }) {
        return Err(invalid(
            field("scopes"),
            "each scope must be visible ASCII without spaces",
        ));
    }
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    let claim = |f: &str, v: Option<String>, default: &str| {
        let v = v.unwrap_or_else(|| default.to_owned());
        if v.is_empty() || v.len() > 64 {
            Err(invalid(field(f), "must be 1 to 64 characters"))
        } else {
            Ok(v)
        }
    };
    let username_claim = claim("username_claim", u.username_claim, "email")?;
    let groups_claim = claim("groups_claim", u.groups_claim, "groups")?;
    let mut allowed_email_domains = Vec::new();
    for (j, d) in u.allowed_email_domains.iter().enumerate() {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if d.is_empty() || !d.contains('.') || d.contains(['@', ' ', '/']) {
            return Err(invalid(
                format!("upstreams[{i}].allowed_email_domains[{j}]"),
                "must be a domain like example.com",
            ));
        }
        allowed_email_domains.push(d);
    }
    if let Some(ca) = &u.ca_file {
        if !ca.is_file() {
            return Err(invalid(
                field("ca_file"),
                format!("{} is not a readable file", ca.display()),
            ));
        }
    }
    let offline_grace = duration_field(
        &field("offline_grace"),
        u.offline_grace.as_deref(),
        DEFAULT_OFFLINE_GRACE,
    )?;
    if offline_grace > MAX_OFFLINE_GRACE {
        return Err(invalid(
            field("offline_grace"),
            "must be at most 12h (a longer grace keeps removed people in for too long)",
        ));
    }
    Ok(UpstreamConfig {
        id: u.id,
        name,
        issuer_url,
        client_id: u.client_id,
        client_secret: crate::secrets::secret::Secret::new(client_secret),
        client_auth,
        scopes,
        username_claim,
        groups_claim,
        allowed_email_domains,
        ca_file: u.ca_file,
        offline_grace,
    })
}

fn validate_policy(
    p: FilePolicy,
    clusters: &[ClusterConfig],
) -> Result<crate::domain::policy::Policy, ConfigError> {
    use crate::domain::policy::{Pattern, Policy, Rule};
    let mut rules = Vec::new();
    for (i, r) in p.rules.into_iter().enumerate() {
        let field = |f: &str| format!("policy.rules[{i}].{f}");
        if r.group.is_empty() || r.group.len() > 128 {
            return Err(invalid(field("group"), "must be 1 to 128 characters"));
        }
        if r.deny && !r.kubernetes_groups.is_empty() {
            return Err(invalid(
                field("kubernetes_groups"),
                "a rule with deny = true gives no groups",
            ));
        }
        for (j, g) in r.kubernetes_groups.iter().enumerate() {
            crate::domain::names::validate_group(g).map_err(|e| {
                invalid(
                    format!("policy.rules[{i}].kubernetes_groups[{j}]"),
                    e.to_string(),
                )
            })?;
        }
        if let Some(cs) = &r.clusters {
            if cs.is_empty() {
                return Err(invalid(
                    field("clusters"),
                    "must name at least one cluster (leave it out for all clusters)",
                ));
            }
            for (j, c) in cs.iter().enumerate() {
                if !clusters.iter().any(|k| &k.name == c) {
                    return Err(invalid(
                        format!("policy.rules[{i}].clusters[{j}]"),
                        format!("`{c}` is not a configured cluster"),
                    ));
                }
            }
        }
        rules.push(Rule {
            group: Pattern::parse(&r.group),
            kubernetes_groups: r.kubernetes_groups,
            clusters: r.clusters,
            deny: r.deny,
        });
    }
    Ok(Policy { rules })
}

/// Longest login session. Handlers add it to the time (`now + session_ttl`), which must stay a
/// date; a year is far beyond any sensible login.
const MAX_SESSION_TTL: Duration = Duration::from_secs(366 * 86_400);
/// Longest rate-limit window. The store adds it to a time in SQL (a PostgreSQL `bigint`, which
/// refuses to overflow), and a counter that forgives after more than a day locks people out.
const MAX_RATE_LIMIT_WINDOW: Duration = Duration::from_secs(86_400);
/// Longest grant a role allows: a requested grant ends at `now + duration`, which must stay a
/// date.
const MAX_GRANT_DURATION: Duration = Duration::from_secs(366 * 86_400);
/// Largest config file read (the example is 10 KiB).
const MAX_CONFIG_FILE: u64 = 1024 * 1024;
/// Largest CA bundle read for a cluster.
const MAX_CA_FILE: u64 = 1024 * 1024;
/// Largest secret file read (client secrets and webhook secrets are short).
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a file the config names: a regular file of at most `max` bytes. A device (`/dev/zero`
/// would be read until memory runs out), a FIFO (whose `open` waits for a writer) or a huge
/// file is an error, so a wrong path fails at start with the field's name instead of hanging.
fn read_small_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Parses `90s`, `5m`, `12h`, `30d` (one unit; a bare number is seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

fn duration_field(
    field: &str,
    value: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let s = value.unwrap_or(default);
    parse_duration(s).ok_or_else(|| {
        invalid(
            field,
            format!("`{s}` is not a duration like 90s, 5m, 12h or 30d"),
        )
    })
}

#[cfg(test)]
mod example_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
