//! The HTTP client for upstream providers: blocking `ureq` (rustls on *ring*, as everywhere in
//! the workspace) run on tokio's blocking pool. Sign-ins and refreshes call a provider a few
//! times each, so a blocking client costs nothing measurable and adds no crate to the workspace.
//! Timeouts are short, redirects are off (token requests carry secrets), and a provider's own
//! `ca_file` replaces the web roots when configured.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{pem::PemObject as _, CertificateDer};

use super::{Error, Transport};
use crate::secrets::secret::Secret;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read (discovery documents and JWKS are a few kB).
const MAX_BODY: u64 = 1 << 20;

/// A client for one provider.
#[derive(Clone)]
pub(super) struct Client {
    provider: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// How long a reachability probe (before sending a browser to the provider) may take.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A request to send.
pub(super) enum Req {
    /// `GET url` with an optional bearer token.
    Get { url: String, bearer: Option<Secret> },
    /// `GET url` with [`PROBE_TIMEOUT`], to learn whether the provider answers at all.
    Probe { url: String },
    /// `POST url` with a form body and optional HTTP Basic credentials.
    Form {
        url: String,
        fields: Vec<(&'static str, Secret)>,
        basic: Option<(String, Secret)>,
    },
}

/// A response: status and body (any status; the caller interprets it).
pub(super) struct Resp {
    pub(super) status: u16,
    pub(super) body: String,
}

impl Client {
    pub(super) fn new(provider: &str, ca_file: Option<&Path>) -> Result<Self, Error> {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirects(0)
            .user_agent(concat!("credential-issuer/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            builder = builder.tls_config(tls_trusting(provider, path)?);
        }
        Ok(Self {
            provider: provider.to_owned(),
            agent: builder.build(),
        })
    }

    pub(super) async fn send(&self, req: Req) -> Result<Resp, Error> {
        let agent = self.agent.clone();
        let provider = self.provider.clone();
        tokio::task::spawn_blocking(move || send_blocking(&agent, &provider, req))
            .await
            .map_err(|e| Error::Unreachable {
                provider: self.provider.clone(),
                cause: Transport::Other,
                detail: e.to_string(),
            })?
    }
}

fn send_blocking(agent: &ureq::Agent, provider: &str, req: Req) -> Result<Resp, Error> {
    let result = match req {
        Req::Get { url, bearer } => {
            let mut r = agent.get(&url).set("Accept", "application/json");
            if let Some(b) = bearer {
                r = r.set("Authorization", &format!("Bearer {}", b.expose()));
            }
            r.call()
        }
        Req::Probe { url } => agent
            .get(&url)
            .set("Accept", "application/json")
            .timeout(PROBE_TIMEOUT)
            .call(),
        Req::Form { url, fields, basic } => {
            let mut r = agent.post(&url).set("Accept", "application/json");
            if let Some((user, pass)) = basic {
                use base64::Engine as _;
                // RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", enc(&user), enc(pass.expose()));
                r = r.set(
                    "Authorization",
                    &format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ),
                );
            }
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.expose())).collect();
            r.send_form(&pairs)
        }
    };
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => {
            return Err(Error::Unreachable {
                provider: provider.to_owned(),
                cause: transport_cause(&t),
                // The kind and message only: the URL could carry a query.
                detail: format!("{:?}: {}", t.kind(), t.message().unwrap_or("")),
            });
        }
    };
    let status = response.status();
    let mut body = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(response.into_reader(), MAX_BODY),
        &mut body,
    )
    .map_err(|e| Error::Unreachable {
        provider: provider.to_owned(),
        cause: io_cause(e.kind()),
        detail: e.to_string(),
    })?;
    Ok(Resp { status, body })
}

/// Names a transport failure from the I/O error under it (ureq wraps it), so that a log line
/// and a metric tell a provider that is down from one that hangs.
fn transport_cause(t: &ureq::Transport) -> Transport {
    match t.kind() {
        ureq::ErrorKind::Dns => return Transport::Dns,
        ureq::ErrorKind::InsecureRequestHttpsOnly => return Transport::Tls,
        ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader => return Transport::Protocol,
        _ => {}
    }
    let mut source = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if inner.downcast_ref::<rustls::Error>().is_some() {
                    return Transport::Tls;
                }
            }
            return io_cause(io.kind());
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return Transport::Tls;
        }
        source = e.source();
    }
    Transport::Other
}

fn io_cause(kind: std::io::ErrorKind) -> Transport {
    use std::io::ErrorKind as K;
    match kind {
        K::ConnectionRefused => Transport::ConnectionRefused,
        K::TimedOut | K::WouldBlock => Transport::TimedOut,
        K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe => {
            Transport::ConnectionReset
        }
        _ => Transport::Other,
    }
}

fn tls_trusting(provider: &str, path: &Path) -> Result<Arc<rustls::ClientConfig>, Error> {
    let err = |detail: String| Error::CaFile {
        provider: provider.to_owned(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| err(e.to_string()))?;
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err(format!("{} holds no certificate", path.display())));
    }
    let provider_crypto = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider_crypto)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
