//! The issuer's configuration: defaults < TOML file < environment < flags, parsed once into typed
//! values and validated before the server binds. A bad value fails with the field's name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use url::Url;

/// Environment variables the issuer reads, each documented once here.
pub mod env {
    /// Path of the TOML config file.
    pub const CONFIG: &str = "CREDENTIAL_ISSUER_CONFIG";
    /// Directory of the database, keys and generated TLS material.
    pub const DATA_DIR: &str = "CREDENTIAL_ISSUER_DATA_DIR";
    /// Socket address to listen on, e.g. `127.0.0.1:8443`.
    pub const LISTEN: &str = "CREDENTIAL_ISSUER_LISTEN";
    /// Public https URL of the issuer (the `iss` claim).
    pub const ISSUER_URL: &str = "CREDENTIAL_ISSUER_URL";
    /// PEM certificate chain to serve instead of the generated one.
    pub const TLS_CERT: &str = "CREDENTIAL_ISSUER_TLS_CERT";
    /// PEM private key of `TLS_CERT`.
    pub const TLS_KEY: &str = "CREDENTIAL_ISSUER_TLS_KEY";
    /// Access token lifetime, e.g. `5m`.
    pub const TOKEN_TTL: &str = "CREDENTIAL_ISSUER_TOKEN_TTL";
    /// Session (refresh) lifetime, e.g. `12h`.
    pub const SESSION_TTL: &str = "CREDENTIAL_ISSUER_SESSION_TTL";
    /// Log filter, as for every tracing program.
    pub const RUST_LOG: &str = "RUST_LOG";
    /// File holding the 32-byte key that encrypts secrets at rest (raw or base64).
    pub const ENCRYPTION_KEY_FILE: &str = "CREDENTIAL_ISSUER_ENCRYPTION_KEY_FILE";
    /// `json` for JSON logs, anything else for text.
    pub const LOG_FORMAT: &str = "CREDENTIAL_ISSUER_LOG_FORMAT";
}

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
    /// File with the 32-byte key that encrypts secrets at rest; `None`: `seal.key` in the data
    /// directory, created on first start.
    pub encryption_key_file: Option<PathBuf>,
    /// How long the token-review webhook trusts a cached session state (zero: no cache). It
    /// bounds how late a revocation made by another process (`user disable`, another replica)
    /// is seen; this process's own revocations invalidate the cache at once.
    pub webhook_cache_ttl: Duration,
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
}

/// Rate limits against guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Wrong user codes accepted per client address per window.
    pub user_code_failures: u32,
    /// Wrong passwords accepted per account per window (and per address per window).
    pub password_failures: u32,
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
    /// See [`Config::encryption_key_file`].
    pub encryption_key_file: Option<PathBuf>,
    /// See [`Config::webhook_cache_ttl`]; e.g. `"5s"`.
    pub webhook_cache_ttl: Option<String>,
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
}

/// `[rate_limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRateLimits {
    /// See [`RateLimits::user_code_failures`].
    pub user_code_failures: Option<u32>,
    /// See [`RateLimits::password_failures`].
    pub password_failures: Option<u32>,
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
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
            if let Some(n) = r.device_authorizations {
                rate_limits.device_authorizations = n;
            }
            rate_limits.window = duration_field("rate_limits.window", r.window.as_deref(), "15m")?;
        }

        Ok(Self {
            issuer_url,
            listen,
            data_dir,
            tls,
            clusters,
            clients,
            token_ttl,
            session_ttl,
            device_code_ttl,
            poll_interval,
            rate_limits,
            encryption_key_file: o.encryption_key_file.clone().or(file.encryption_key_file),
            webhook_cache_ttl,
        })
    }

    /// The cluster called `name`.
    #[must_use]
    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// The issuer URL as written into `iss` (no trailing slash).
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.issuer_url.as_str().trim_end_matches('/')
    }

    /// Path of the SQLite database.
    #[must_use]
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("issuer.db")
    }

    /// How long a superseded signing key stays published (and on disk): the longest token
    /// lifetime, plus the time a running issuer may take to notice a rotation and keep signing
    /// with the old key, plus a minute of clock skew.
    #[must_use]
    pub fn key_retention(&self) -> Duration {
        self.token_ttl + crate::server::KEY_RELOAD_EVERY + Duration::from_secs(60)
    }

    /// Directory of the signing keys.
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

    /// Directory of generated TLS material.
    #[must_use]
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }
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
            let pem = std::fs::read(&path).map_err(|e| {
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
    Ok(ClusterConfig {
        name: c.name,
        server,
        certificate_authority_data,
        audience,
    })
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
mod tests {
    use super::*;

    fn load(toml_text: &str, o: &Overrides) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(toml_text).map_err(|e| ConfigError::Parse {
            path: "test.toml".into(),
            message: e.to_string(),
        })?;
        Config::from_parts(file, o, || Some(PathBuf::from("/tmp/data")))
    }

    #[test]
    fn zero_configuration_defaults() {
        let c = load("", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.issuer(), "https://127.0.0.1:8443");
        assert_eq!(c.token_ttl, Duration::from_secs(300));
        assert_eq!(c.session_ttl, Duration::from_secs(12 * 3600));
        assert_eq!(c.device_code_ttl, Duration::from_secs(600));
        assert_eq!(c.tls, TlsSource::Generated);
        assert_eq!(c.clusters[0].name, "default");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/data"));
    }

    #[test]
    fn flags_override_file() {
        let o = Overrides {
            token_ttl: Some("1m".into()),
            listen: Some("127.0.0.1:9000".into()),
            ..Overrides::default()
        };
        let c = load("token_ttl = \"10m\"\nlisten = \"0.0.0.0:1\"\n", &o)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.token_ttl, Duration::from_secs(60));
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
    }

    fn err(toml_text: &str, o: &Overrides) -> String {
        match load(toml_text, o) {
            Ok(_) => panic!("expected an error for {toml_text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_values_name_their_field() {
        let none = Overrides::default();
        let cases = [
            ("token_ttl = \"5 minutes\"", "token_ttl"),
            ("session_ttl = \"1s\"", "session_ttl"),
            ("issuer_url = \"http://x\"", "issuer_url"),
            ("listen = \"nope\"", "listen"),
            ("tls_cert = \"/a\"", "tls_key"),
            ("[[clusters]]\nname = \"bad name\"", "clusters[0].name"),
            (
                "[[clusters]]\nname = \"a\"\nserver = \"http://x\"",
                "clusters[0].server",
            ),
            (
                "[[clusters]]\nname = \"a\"\n[[clusters]]\nname = \"a\"",
                "clusters[1].name",
            ),
            ("tokn_ttl = \"5m\"", "tokn_ttl"),
        ];
        for (text, field) in cases {
            let e = err(text, &none);
            assert!(
                e.contains(field),
                "{text:?} gave {e:?}, which does not name {field}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }

    #[test]
    fn webhook_cache_ttl_defaults_to_5s_allows_0s_and_is_bounded() {
        let o = Overrides::default();
        let c = load("", &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.webhook_cache_ttl, Duration::from_secs(5));
        let c = load("webhook_cache_ttl = \"0s\"", &o).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.webhook_cache_ttl.is_zero());
        let err = load("webhook_cache_ttl = \"6m\"", &o)
            .err()
            .unwrap_or_else(|| panic!("6m was accepted"));
        assert!(err.to_string().contains("webhook_cache_ttl"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    #[test]
    fn the_shipped_example_config_parses() {
        let text = include_str!("../../install/issuer.example.toml");
        let parsed: Result<super::FileConfig, _> = toml::from_str(text);
        assert!(
            parsed.is_ok(),
            "install/issuer.example.toml: {:?}",
            parsed.err()
        );
    }
}
