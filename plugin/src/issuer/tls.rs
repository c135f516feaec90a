//! Trusting `--issuer-ca` (or an API server's CA): the rustls configuration that trusts exactly
//! that bundle, and telling a refused certificate apart from other transport failures.

use std::error::Error as StdError;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{pem::PemObject as _, CertificateDer};

use super::IssuerError;

/// Checks that `--issuer-ca` can be used (a readable PEM bundle of CA certificates) without
/// connecting: a local mistake is reported as such before anything about the network.
pub(crate) fn check_ca(path: &Path) -> Result<(), IssuerError> {
    tls_config_trusting(path).map(drop)
}

/// A rustls configuration that trusts exactly the certificates in the PEM file at `path`.
pub(super) fn tls_config_trusting(path: &Path) -> Result<Arc<rustls::ClientConfig>, IssuerError> {
    let pem = std::fs::read(path).map_err(|source| IssuerError::CaRead {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| IssuerError::CaRead {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })?;
        roots.add(cert).map_err(|source| IssuerError::CaInvalid {
            path: path.to_owned(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(IssuerError::CaEmpty {
            path: path.to_owned(),
        });
    }
    tls_config_with_roots(roots).map_err(IssuerError::TlsSetup)
}

/// A rustls configuration (*ring*, safe default protocol versions, no client certificate) that
/// trusts exactly `roots`: for the issuer's `--issuer-ca` and for the CA an API server's
/// kubeconfig entry names.
pub(super) fn tls_config_with_roots(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether a transport error is rustls refusing the connection. ureq wraps the rustls error in
/// an `io::Error`, whose `source()` skips the wrapped error, so look inside those by hand.
pub(super) fn is_tls_error(transport: &ureq::Transport) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = transport.source();
    while let Some(err) = next {
        if err.is::<rustls::Error>() {
            return true;
        }
        next = match err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
    }
    false
}
