//! The authorization request (OpenID Connect Core section 3.1.2.1) with PKCE S256 (RFC 7636),
//! `state` (binds the callback to the browser that started it: login CSRF) and `nonce` (binds the
//! ID token to this request: replay).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use url::Url;

use super::discovery::Metadata;
use super::Error;
use crate::secrets::secret::{random_token, Secret};
use crate::upstream::settings::UpstreamConfig;

/// The secrets of one login attempt. Only hashes or sealed copies are stored.
#[derive(Debug, Clone)]
pub struct Request {
    /// `state`.
    pub state: Secret,
    /// `nonce`.
    pub nonce: Secret,
    /// PKCE `code_verifier` (43 characters, 256 bits).
    pub verifier: Secret,
}

impl Request {
    /// Fresh random values.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: random_token(32),
            nonce: random_token(32),
            verifier: random_token(32),
        }
    }
}

impl Default for Request {
    fn default() -> Self {
        Self::new()
    }
}

/// `BASE64URL(SHA256(verifier))`.
#[must_use]
pub fn challenge(verifier: &Secret) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, verifier.expose().as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// The URL to redirect the browser to.
pub fn url(
    meta: &Metadata,
    cfg: &UpstreamConfig,
    req: &Request,
    redirect_uri: &str,
) -> Result<Url, Error> {
    let mut url = Url::parse(&meta.authorization_endpoint).map_err(|_| Error::Invalid {
        provider: cfg.id.clone(),
        detail: "authorization_endpoint is not a URL".into(),
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &cfg.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &cfg.scopes.join(" "))
        .append_pair("state", req.state.expose())
        .append_pair("nonce", req.nonce.expose())
        .append_pair("code_challenge", &challenge(&req.verifier))
        .append_pair("code_challenge_method", "S256");
    if cfg.scopes.iter().any(|s| s == "offline_access") {
        // Core section 11: offline_access is ignored unless consent is asked for.
        url.query_pairs_mut().append_pair("prompt", "consent");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let v = Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(challenge(&v), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
