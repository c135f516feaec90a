//! One upstream provider as configuration validated it (`[[upstreams]]`): what the upstream
//! client needs to discover, redirect to, and redeem codes at the provider. `config` builds it.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// The scopes asked of an upstream provider when `scopes` is not set.
pub const DEFAULT_UPSTREAM_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// How the issuer authenticates itself at an upstream provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (the OpenID Connect default).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// One upstream OpenID Connect provider (`[[upstreams]]`).
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Url-safe id, used in URLs, the database and audit rows.
    pub id: String,
    /// Name shown on the sign-in page.
    pub name: String,
    /// The provider's issuer (`iss`); discovery is `<issuer_url>/.well-known/openid-configuration`.
    pub issuer_url: Url,
    /// Client id registered at the provider; the ID token's `aud`.
    pub client_id: String,
    /// Client secret, read at start from a file or an environment variable.
    pub client_secret: crate::secrets::secret::Secret,
    /// Token endpoint authentication.
    pub client_auth: ClientAuth,
    /// Scopes requested (`openid` always included).
    pub scopes: Vec<String>,
    /// Claim that becomes the username (default `email`).
    pub username_claim: String,
    /// Claim holding the groups (default `groups`).
    pub groups_claim: String,
    /// When not empty, only people whose verified e-mail is in one of these domains may sign in.
    pub allowed_email_domains: Vec<String>,
    /// PEM CA bundle to trust for this provider instead of the system's web roots.
    pub ca_file: Option<PathBuf>,
    /// While the provider cannot give an answer about a person (down, frozen, slow, server
    /// errors, the issuer's client refused, ...; never when it refuses the person), sessions
    /// whose last successful check there is younger than this keep refreshing, their tokens
    /// marked as not re-checked. Zero turns the grace off. See docs/threat-model.md.
    pub offline_grace: Duration,
}

/// Default [`UpstreamConfig::offline_grace`]; docs/threat-model.md says why an hour.
pub const DEFAULT_OFFLINE_GRACE: &str = "1h";

/// Longest [`UpstreamConfig::offline_grace`] accepted.
pub const MAX_OFFLINE_GRACE: Duration = Duration::from_secs(12 * 3600);
