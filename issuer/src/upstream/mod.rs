//! Upstream OpenID Connect providers: people sign in at the company's identity provider, and
//! the issuer trusts what that provider's ID token says about them.
//!
//! One module per concern: `client` (the HTTP client), `discovery` (provider metadata and the
//! JWKS cache), `authorize` (PKCE, `state`, `nonce` and the authorization URL), `id_token` (JWS
//! and claim validation), `token` (code exchange, refresh, userinfo, reading the identity).

pub mod authorize;
mod client;
pub mod discovery;
pub mod id_token;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;
use url::Url;

use crate::config::UpstreamConfig;
use crate::secret::Secret;

pub use token::{Identity, Tokens};

/// Why talking to an upstream provider failed. Never carries a token, code or secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider could not be reached or did not answer in time.
    #[error("the identity provider {provider} could not be reached")]
    Unreachable {
        /// Provider id.
        provider: String,
        /// Transport detail (no URL query, no body).
        detail: String,
    },
    /// The provider answered with an HTTP error status that is not an OAuth error.
    #[error("the identity provider {provider} answered HTTP {status}")]
    Status {
        /// Provider id.
        provider: String,
        /// Status code.
        status: u16,
    },
    /// The provider refused a grant (`invalid_grant` and friends, RFC 6749 section 5.2).
    #[error("the identity provider {provider} refused: {error}")]
    Refused {
        /// Provider id.
        provider: String,
        /// The OAuth error code (short, from a closed vocabulary in practice).
        error: String,
    },
    /// The provider answered something this client cannot use.
    #[error("the identity provider {provider} sent an invalid response: {detail}")]
    Invalid {
        /// Provider id.
        provider: String,
        /// What was wrong.
        detail: String,
    },
    /// The ID token failed validation.
    #[error("the identity provider's ID token was refused: {0}")]
    IdToken(#[from] id_token::IdTokenError),
    /// The configured CA file could not be used.
    #[error("cannot use the CA file of the identity provider {provider}: {detail}")]
    CaFile {
        /// Provider id.
        provider: String,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// Whether the provider said no for good (the session must end), as opposed to being
    /// unreachable or broken for now.
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. } | Self::IdToken(_))
    }
}

/// Whether `url` may be used for a provider: https, or plain http to a loopback address (tests
/// and local development only; a provider elsewhere over http would expose codes and tokens).
#[must_use]
pub fn is_allowed_url(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        },
        _ => false,
    }
}

/// One configured provider with its HTTP client and metadata cache.
#[derive(Debug)]
pub struct Provider {
    config: UpstreamConfig,
    client: client::Client,
    cache: discovery::Cache,
}

/// Every configured provider, by id. Built once at start; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    providers: Arc<HashMap<String, Arc<Provider>>>,
}

impl Upstreams {
    /// Builds the clients (reading each `ca_file`).
    pub fn new(configs: &[UpstreamConfig]) -> Result<Self, Error> {
        let mut providers = HashMap::new();
        for c in configs {
            let client = client::Client::new(&c.id, c.ca_file.as_deref())?;
            providers.insert(
                c.id.clone(),
                Arc::new(Provider {
                    config: c.clone(),
                    client,
                    cache: discovery::Cache::default(),
                }),
            );
        }
        Ok(Self {
            providers: Arc::new(providers),
        })
    }

    /// The provider with this id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.providers.get(id).cloned()
    }
}

impl Provider {
    /// Its configuration.
    #[must_use]
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    async fn metadata(&self, now: OffsetDateTime) -> Result<discovery::Metadata, Error> {
        discovery::metadata(&self.client, &self.config, &self.cache, now).await
    }

    /// The URL to send the browser to, for a login whose secrets are in `request`.
    pub async fn authorization_url(
        &self,
        request: &authorize::Request,
        redirect_uri: &str,
        now: OffsetDateTime,
    ) -> Result<Url, Error> {
        let meta = self.metadata(now).await?;
        authorize::url(&meta, &self.config, request, redirect_uri)
    }

    /// Exchanges an authorization code, validates the ID token against `nonce` and reads the
    /// person's identity (from the ID token, or userinfo when the groups claim is not in it).
    pub async fn exchange(
        &self,
        code: &Secret,
        verifier: &Secret,
        nonce: &Secret,
        redirect_uri: &str,
        now: OffsetDateTime,
    ) -> Result<(Identity, Tokens), Error> {
        let meta = self.metadata(now).await?;
        let tokens = token::exchange(
            &self.client,
            &self.config,
            &meta,
            code,
            verifier,
            redirect_uri,
        )
        .await?;
        let identity = self.identity(&meta, &tokens, Some(nonce), now).await?;
        Ok((identity, tokens))
    }

    /// Refreshes at the provider and reads the person again. A refusal means the person (or
    /// their grant) is gone upstream.
    pub async fn refresh(
        &self,
        refresh_token: &Secret,
        now: OffsetDateTime,
    ) -> Result<(Identity, Tokens), Error> {
        let meta = self.metadata(now).await?;
        let tokens = token::refresh(&self.client, &self.config, &meta, refresh_token).await?;
        let identity = self.identity(&meta, &tokens, None, now).await?;
        Ok((identity, tokens))
    }

    async fn identity(
        &self,
        meta: &discovery::Metadata,
        tokens: &Tokens,
        nonce: Option<&Secret>,
        now: OffsetDateTime,
    ) -> Result<Identity, Error> {
        let Some(raw) = tokens.id_token.as_ref() else {
            return Err(Error::Invalid {
                provider: self.config.id.clone(),
                detail: "no id_token in the token response".into(),
            });
        };
        let expected = id_token::Expected {
            issuer: &meta.issuer,
            client_id: &self.config.client_id,
            nonce,
            now,
        };
        let claims = match id_token::validate(raw.expose(), &meta.jwks, &expected) {
            Err(id_token::IdTokenError::UnknownKey) => {
                // The provider may have rotated its keys: fetch the JWKS again (rate limited).
                let jwks =
                    discovery::refresh_jwks(&self.client, &self.config, &self.cache, now).await?;
                id_token::validate(raw.expose(), &jwks, &expected)?
            }
            other => other?,
        };
        let userinfo = if claims.get(&self.config.groups_claim).is_none() {
            match meta.userinfo_endpoint.as_deref() {
                Some(endpoint) => Some(
                    token::userinfo(&self.client, &self.config, endpoint, &tokens.access_token)
                        .await?,
                ),
                None => None,
            }
        } else {
            None
        };
        token::identity(&self.config, &claims, userinfo.as_ref())
    }
}
