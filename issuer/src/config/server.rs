//! The server's own settings: where it listens and under which URL, its data directory and
//! TLS certificate, the OAuth clients it serves, and the lifetimes of what it hands out
//! (tokens, sessions, device codes, the webhook's cache, the leader lease).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::values::{duration_field, duration_within};
use super::{invalid, ConfigError, FileConfig};

/// The lease's lifetime when `leader_lease` is not configured (today's 15 s).
pub const LEADER_LEASE_DEFAULT: Duration = Duration::from_secs(15);
/// The shortest `leader_lease`: below it the margin (a fifth) leaves less than a second of
/// clock skew, and every replica writes the lease row more than once a second or so.
pub const LEADER_LEASE_MIN: Duration = Duration::from_secs(5);
/// The longest `leader_lease`: grants would stay unreconciled for minutes after a crash.
pub const LEADER_LEASE_MAX: Duration = Duration::from_secs(300);

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// Longest login session. Handlers add it to the time (`now + session_ttl`), which must stay a
/// date; a year is far beyond any sensible login.
const MAX_SESSION_TTL: Duration = Duration::from_secs(366 * 86_400);

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

/// `listen`, [`DEFAULT_LISTEN`] unless given.
pub(super) fn listen(given: Option<String>) -> Result<SocketAddr, ConfigError> {
    let listen_s = given.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    listen_s.parse().map_err(|_| {
        invalid(
            "listen",
            format!("`{listen_s}` is not an address like 127.0.0.1:8443"),
        )
    })
}

/// `issuer_url`; unless given, https on the listen address (loopback for an unspecified one).
pub(super) fn issuer_url(given: Option<String>, listen: SocketAddr) -> Result<Url, ConfigError> {
    let issuer_s = given.unwrap_or_else(|| format!("https://{}", default_host(listen)));
    parse_issuer_url(&issuer_s)
}

/// The host (and port) of the default issuer URL: an unspecified address is not one a
/// client can reach, so loopback stands in for it.
fn default_host(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        format!("127.0.0.1:{}", listen.port())
    } else {
        listen.to_string()
    }
}

/// The issuer URL: https, at the root of its host, without query or fragment.
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

/// `data_dir`; unless given, `default` is asked (it is called only then).
pub(super) fn data_dir(
    given: Option<PathBuf>,
    default: impl FnOnce() -> Option<PathBuf>,
) -> Result<PathBuf, ConfigError> {
    match given {
        Some(d) => Ok(d),
        None => default().ok_or(ConfigError::NoDataDir),
    }
}

/// The platform's data directory for the issuer (`~/.local/share/credential-issuer` on Linux).
pub(super) fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("dev", "kubectl-credential", "credential-issuer")
        .map(|d| d.data_dir().to_owned())
}

/// `tls_cert` and `tls_key`: both or neither (a generated certificate).
pub(super) fn tls(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<TlsSource, ConfigError> {
    match (cert, key) {
        (None, None) => Ok(TlsSource::Generated),
        (Some(cert), Some(key)) => Ok(TlsSource::Files { cert, key }),
        (Some(_), None) => Err(invalid("tls_key", "tls_cert is set but tls_key is not")),
        (None, Some(_)) => Err(invalid("tls_cert", "tls_key is set but tls_cert is not")),
    }
}

/// The lifetimes of what the server hands out; see the fields of the same names on
/// [`super::Config`].
#[derive(Debug)]
pub(super) struct Lifetimes {
    pub(super) token_ttl: Duration,
    pub(super) session_ttl: Duration,
    pub(super) device_code_ttl: Duration,
    pub(super) poll_interval: Duration,
    pub(super) webhook_cache_ttl: Duration,
    pub(super) refresh_retry_grace: Duration,
    pub(super) leader_lease: Duration,
}

/// Reads and bounds every lifetime. The four of the sign-in are all read before any is
/// bounded, so that an unreadable one is reported before one out of bounds.
pub(super) fn lifetimes(file: &FileConfig) -> Result<Lifetimes, ConfigError> {
    let token_ttl = duration_field("token_ttl", file.token_ttl.as_deref(), "5m")?;
    let session_ttl = duration_field("session_ttl", file.session_ttl.as_deref(), "12h")?;
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
    if device_code_ttl < Duration::from_secs(30) || device_code_ttl > Duration::from_secs(3600) {
        return Err(invalid("device_code_ttl", "must be between 30s and 1h"));
    }
    if poll_interval.is_zero() || poll_interval > Duration::from_secs(60) {
        return Err(invalid("poll_interval", "must be between 1s and 60s"));
    }

    let webhook_cache_ttl = duration_within(
        "webhook_cache_ttl",
        file.webhook_cache_ttl.as_deref(),
        "5s",
        Duration::ZERO..=Duration::from_secs(300),
        "must be at most 5m",
    )?;
    let refresh_retry_grace = duration_within(
        "refresh_retry_grace",
        file.refresh_retry_grace.as_deref(),
        "10s",
        Duration::ZERO..=Duration::from_secs(120),
        "must be at most 2m (a spent token stays usable for that long)",
    )?;
    let leader_lease = duration_within(
        "leader_lease",
        file.leader_lease.as_deref(),
        &format!("{}s", LEADER_LEASE_DEFAULT.as_secs()),
        LEADER_LEASE_MIN..=LEADER_LEASE_MAX,
        &format!(
            "must be between {}s and {}m (shorter: less clock skew tolerated between \
             replicas; longer: a dead leader's work waits that long)",
            LEADER_LEASE_MIN.as_secs(),
            LEADER_LEASE_MAX.as_secs() / 60
        ),
    )?;
    Ok(Lifetimes {
        token_ttl,
        session_ttl,
        device_code_ttl,
        poll_interval,
        webhook_cache_ttl,
        refresh_retry_grace,
        leader_lease,
    })
}

/// `clients`: the plugin's client id first, then the extra ones, each once.
pub(super) fn clients(extra: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let mut clients = vec![credential_shared::oauth::PLUGIN_CLIENT_ID.to_owned()];
    for (i, c) in extra.into_iter().enumerate() {
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
    Ok(clients)
}
