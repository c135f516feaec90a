//! The HTTP client for the issuer: discovery, device authorization, token polling, refresh and
//! revocation. Blocking `ureq` with rustls on *ring*: nothing here runs on a cache hit, and the
//! agent (TLS roots, connection pool) is only built when a request is about to be made.

//!
//! One folder per concern of the client: [`error`] (what can go wrong and what it means for
//! retrying), [`oauth`] (device authorization, token polling, refresh, revocation), [`api`]
//! (the issuer's clusters and access-requests API), [`http`] (reading answers, telling an
//! issuer's error apart from a stranger's), [`tls`] (trusting `--issuer-ca`), and for machine
//! mode [`assertion`] (a machine key and its signed client assertion) and [`identity`] (asking
//! the GitHub Actions runner for the job's identity token). Beside the issuer, [`api_server`] is
//! the one request made to a Kubernetes API server (does it still accept the cached token?),
//! on the same HTTP and TLS stack.

mod api;
pub(crate) mod api_server;
pub(crate) mod assertion;
mod error;
mod http;
pub(crate) mod identity;
mod oauth;
mod tls;

use std::path::Path;
use std::time::Duration;

use credential_shared::oauth::{
    DiscoveryDocument, PATH_DEVICE_AUTHORIZATION, PATH_DISCOVERY, PATH_REVOKE,
};

use crate::base::target::{normalize_issuer, IssuerUrl};

pub(crate) use self::error::{IssuerError, Retry};
pub(crate) use self::tls::check_ca;
use self::tls::tls_config_trusting;

/// Time to establish a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole request, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Sent as `User-Agent`.
const USER_AGENT: &str = concat!("kubectl-credential/", env!("CARGO_PKG_VERSION"));

/// The endpoints the plugin uses, from discovery (or the issuer's default paths).
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    /// RFC 8628 device authorization.
    pub(crate) device_authorization: String,
    /// Token endpoint (device code, refresh and the machine grants).
    pub(crate) token: String,
    /// RFC 7009 revocation.
    pub(crate) revocation: String,
}

/// A client for one issuer.
#[derive(Debug)]
pub(crate) struct IssuerClient {
    issuer: IssuerUrl,
    agent: ureq::Agent,
    /// Whether `--issuer-ca` was given (for the hint of a refused certificate).
    ca_given: bool,
}

impl IssuerClient {
    /// Builds the HTTP agent: rustls on *ring*, trusting only `ca_file` when given (else the
    /// webpki roots), 5 s to connect, 15 s per request, and no redirects at all. Token and
    /// device requests carry secrets and must never be replayed to another host; nothing the
    /// plugin asks for is legitimately redirected.
    pub(crate) fn new(issuer: &IssuerUrl, ca_file: Option<&Path>) -> Result<Self, IssuerError> {
        Self::with_timeouts(issuer, ca_file, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
    }

    /// The same client with other bounds: for calls that are a courtesy to the issuer (ending
    /// a session found exposed) and must not hold the person up for long.
    pub(crate) fn with_timeouts(
        issuer: &IssuerUrl,
        ca_file: Option<&Path>,
        connect: Duration,
        request: Duration,
    ) -> Result<Self, IssuerError> {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(connect)
            .timeout(request)
            .redirects(0)
            .user_agent(USER_AGENT);
        if let Some(path) = ca_file {
            builder = builder.tls_config(tls_config_trusting(path)?);
        }
        Ok(Self {
            issuer: issuer.clone(),
            agent: builder.build(),
            ca_given: ca_file.is_some(),
        })
    }

    /// The issuer URL.
    pub(crate) fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// Whether the issuer is a plain-http loopback URL (development only).
    pub(crate) fn issuer_is_http(&self) -> bool {
        self.issuer.is_http()
    }

    /// Fetches the discovery document, checks that it names this issuer, and picks the endpoints.
    pub(crate) fn discover(&self) -> Result<Endpoints, IssuerError> {
        let url = format!("{}{PATH_DISCOVERY}", self.issuer);
        let result = self
            .agent
            .get(&url)
            .set("Accept", "application/json")
            .call();
        let doc: DiscoveryDocument = self
            .read_json(&url, result)
            .map_err(|e| self.not_an_issuer(&url, e))?;
        if normalize_issuer(&doc.issuer).ok().as_ref() != Some(&self.issuer) {
            return Err(IssuerError::IssuerMismatch {
                issuer: self.issuer().to_owned(),
                url,
                found: doc.issuer.clone(),
            });
        }
        let default = |path: &str| format!("{}{path}", self.issuer);
        Ok(Endpoints {
            device_authorization: self.check_endpoint(
                doc.device_authorization_endpoint
                    .unwrap_or_else(|| default(PATH_DEVICE_AUTHORIZATION)),
            )?,
            token: self.check_endpoint(doc.token_endpoint)?,
            revocation: self.check_endpoint(
                doc.revocation_endpoint
                    .unwrap_or_else(|| default(PATH_REVOKE)),
            )?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
