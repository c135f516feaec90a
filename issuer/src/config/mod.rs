//! The issuer's configuration, loaded once at start: this folder owns the config file's
//! schema, the command line's overrides, and turning both into one validated [`Config`] of
//! typed values before the server binds. A bad value fails with the field's name.
//!
//! Precedence, lowest first: defaults < TOML file < environment < flags. clap gives a flag
//! precedence over its environment variable; `precedence.rs` lays both over the file and is
//! the only place that does; each section then fills in its defaults for what is still
//! absent. [`Config::from_parts`] reads the sections in a fixed order, so of several bad
//! values the same one is always reported.
//!
//! - `file.rs`: the TOML schema as written.
//! - `precedence.rs`: [`Overrides`] (flags and environment) over the file.
//! - `server.rs`, `storage.rs`, `clusters.rs`, `roles.rs`, `upstreams.rs`, `policy.rs`,
//!   `accounts.rs`, `notifications.rs`, `audit.rs`, `device_flow.rs`: one section each, checked into its typed
//!   value.
//! - `values.rs`: durations and small files, shared by the sections.
//! - `tests.rs` (loading and every error naming its field), `example_tests.rs` (the shipped
//!   example config), `fuzz_tests.rs` (property tests of the whole path).

mod accounts;
mod audit;
mod clusters;
mod device_flow;
mod file;
mod notifications;
mod policy;
mod precedence;
mod roles;
mod server;
mod storage;
mod upstreams;
mod values;
mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::env;

pub use self::accounts::{Accounts, RateLimits};
pub use self::audit::AuditConfig;
pub use self::file::{
    FileAccounts, FileAudit, FileClaimValue, FileCluster, FileConfig, FileDeviceFlow,
    FileNotifications, FilePolicy, FileProxy, FileRateLimits, FileRequests, FileRole, FileRule,
    FileSigning, FileUpstream, FileWorkload,
};
pub use self::notifications::Notifications;
pub use self::precedence::{Overrides, StoreOrigin};
pub use self::server::{
    TlsSource, DEFAULT_LISTEN, LEADER_LEASE_DEFAULT, LEADER_LEASE_MAX, LEADER_LEASE_MIN,
};
pub use self::storage::{DatabaseUrl, SigningKeys};
pub use self::values::parse_duration;
pub use crate::domain::cluster::{
    ClusterConfig, KubeAccess, PolicyRule, ProxyAudit, ProxyConfig, ProxyTls, RequestPolicy,
    RoleConfig, RolePermissions, DEFAULT_RECONCILE_INTERVAL,
};
pub use crate::upstream::settings::{
    ClientAuth, UpstreamConfig, DEFAULT_OFFLINE_GRACE, DEFAULT_UPSTREAM_SCOPES, MAX_OFFLINE_GRACE,
};

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
    /// `[[workloads]]`: CI jobs and automation trusted by their platform's identity token.
    pub workloads: Vec<crate::domain::workloads::Workload>,
    /// Where the keys of each issuer the workloads trust come from (one entry per issuer).
    pub workload_issuers: Vec<crate::upstream::trusted::TrustedIssuer>,
    /// `[device_flow] allowed_networks`: the networks device authorizations may come from;
    /// empty: anywhere.
    pub device_allowed_networks: crate::domain::origin::AllowedNetworks,
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

/// A [`ConfigError::Invalid`] for `field`.
fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// `{list}[{i}].{key}`'s error when the `what` called `name` is given twice.
fn duplicate(list: &str, i: usize, key: &str, what: &str, name: &str) -> ConfigError {
    invalid(
        format!("{list}[{i}].{key}"),
        format!("duplicate {what} `{name}`"),
    )
}

/// Largest config file read (the example is 10 KiB).
const MAX_CONFIG_FILE: u64 = 1024 * 1024;

impl Config {
    /// Loads the file named by `overrides.config_file` (if any), applies the overrides and
    /// validates the result.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => Self::read_file(path)?,
            None => FileConfig::default(),
        };
        Self::from_parts(file, overrides, server::default_data_dir)
    }

    /// Parses a TOML file.
    pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
        let text =
            values::read_small_text(path, MAX_CONFIG_FILE).map_err(|source| ConfigError::Read {
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
        let precedence::Layered {
            mut file,
            encryption_key,
            store_origin,
        } = precedence::layer(file, o);
        let listen = server::listen(file.listen.take())?;
        let issuer_url = server::issuer_url(file.issuer_url.take(), listen)?;
        let data_dir = server::data_dir(file.data_dir.take(), default_data_dir)?;
        let tls = server::tls(file.tls_cert.take(), file.tls_key.take())?;
        let lifetimes = server::lifetimes(&file)?;
        let audit = audit::audit(file.audit)?;
        let clusters = clusters::clusters(file.clusters)?;
        let clients = server::clients(file.clients)?;
        let rate_limits = accounts::rate_limits(file.rate_limits)?;
        let accounts = accounts::accounts(file.accounts)?;
        let upstreams = upstreams::upstreams(file.upstreams)?;
        let policy = policy::policy(file.policy.unwrap_or_default(), &clusters)?;
        let roles = roles::roles(file.roles)?;
        let requests = roles::requests(file.requests)?;
        let notifications = notifications::notifications(file.notifications)?;
        let (workloads, workload_issuers) = workloads::workloads(file.workloads, &clusters)?;
        let device_allowed_networks = device_flow::device_flow(file.device_flow)?;
        let key = storage::EncryptionKey::new(file.encryption_key_file, encryption_key)?;
        let database = storage::database(
            file.database_url.as_ref(),
            file.database_max_connections,
            &data_dir,
            key.explicit(),
        )?;
        let signing_keys =
            storage::signing_keys(&file.signing.unwrap_or_default(), key.explicit(), &database)?;
        Ok(Self {
            issuer_url,
            listen,
            data_dir,
            database,
            tls,
            clusters,
            clients,
            token_ttl: lifetimes.token_ttl,
            session_ttl: lifetimes.session_ttl,
            device_code_ttl: lifetimes.device_code_ttl,
            poll_interval: lifetimes.poll_interval,
            rate_limits,
            accounts,
            encryption_key_file: key.file,
            encryption_key: key.key,
            upstreams,
            policy,
            roles,
            webhook_cache_ttl: lifetimes.webhook_cache_ttl,
            refresh_retry_grace: lifetimes.refresh_retry_grace,
            request_pending_ttl: requests.pending_ttl,
            request_file_limit: requests.file_limit,
            notifications,
            audit,
            signing_keys,
            leader_lease: lifetimes.leader_lease,
            store_origin,
            workloads,
            workload_issuers,
            device_allowed_networks,
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

    /// The workload rule called `name`.
    #[must_use]
    pub fn workload(&self, name: &str) -> Option<&crate::domain::workloads::Workload> {
        self.workloads.iter().find(|w| w.name == name)
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

#[cfg(test)]
mod example_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
