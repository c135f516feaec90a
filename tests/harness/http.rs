//! HTTPS clients for the harness: a `ureq` agent that trusts exactly one CA file (the issuer's
//! generated CA, or the control plane's), and calls that return the status and body whatever the
//! status is, because the tests assert on error statuses as much as on successes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{pem::PemObject as _, CertificateDer};

/// An agent trusting only the CA certificates in `ca_file` (PEM), using rustls with the `ring`
/// provider like the plugin and the issuer do. It keeps cookies and follows redirects, as a
/// browser does.
#[track_caller]
#[must_use]
pub fn agent(ca_file: &Path) -> ureq::Agent {
    agent_with_timeout(ca_file, Duration::from_secs(30))
}

/// Like [`agent`], giving up on a request after `timeout` (as a kubelet probe does after its
/// `timeoutSeconds`).
#[track_caller]
#[must_use]
pub fn agent_with_timeout(ca_file: &Path, timeout: Duration) -> ureq::Agent {
    let pem = std::fs::read(ca_file)
        .unwrap_or_else(|e| panic!("cannot read CA file {}: {e}", ca_file.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.unwrap_or_else(|e| panic!("bad PEM in {}: {e}", ca_file.display()));
        roots
            .add(cert)
            .unwrap_or_else(|e| panic!("bad certificate in {}: {e}", ca_file.display()));
    }
    assert!(
        !roots.is_empty(),
        "{} holds no certificate",
        ca_file.display()
    );
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("rustls protocol versions: {e}"))
    .with_root_certificates(roots)
    .with_no_client_auth();
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls))
        .timeout(timeout)
        .redirects(10)
        .build()
}

/// A response reduced to what tests look at.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status of the last response (after redirects).
    pub status: u16,
    /// URL of the last response (after redirects).
    pub url: String,
    /// The body as text.
    pub body: String,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

/// Turns ureq's "4xx/5xx is an error" into a plain [`Response`]; only a transport failure
/// (no connection, TLS) is an `Err`.
pub fn response(result: Result<ureq::Response, ureq::Error>) -> Result<Response, String> {
    let resp = match result {
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
        Err(ureq::Error::Transport(t)) => return Err(t.to_string()),
    };
    let status = resp.status();
    let url = resp.get_url().to_owned();
    let retry_after = resp.header("retry-after").map(str::to_owned);
    let body = resp
        .into_string()
        .map_err(|e| format!("cannot read the body from {url}: {e}"))?;
    Ok(Response {
        status,
        url,
        body,
        retry_after,
    })
}
