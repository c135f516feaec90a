//! The HTTP client for upstream providers: blocking `ureq` (rustls on *ring*, as everywhere in
//! the workspace) run on tokio's blocking pool. Sign-ins and refreshes call a provider a few
//! times each, so a blocking client costs nothing measurable and adds no crate to the workspace.
//! Timeouts are short, redirects are off (token requests carry secrets), and a provider's own
//! `ca_file` replaces the web roots when configured.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{pem::PemObject as _, CertificateDer};

use super::Error;
use crate::secret::Secret;

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

/// A request to send.
pub(super) enum Req {
    /// `GET url` with an optional bearer token.
    Get { url: String, bearer: Option<Secret> },
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
        detail: e.to_string(),
    })?;
    Ok(Resp { status, body })
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
