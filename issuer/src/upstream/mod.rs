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
pub mod settings;
pub mod token;
pub mod trusted;

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;
use url::Url;

use crate::secrets::secret::Secret;
use crate::upstream::settings::UpstreamConfig;

pub use token::{Identity, Tokens};

/// Why talking to an upstream provider failed. Never carries a token, code or secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider could not be reached or did not answer in time.
    #[error("the identity provider {provider} could not be reached: {}", cause.describe())]
    Unreachable {
        /// Provider id.
        provider: String,
        /// What failed, named.
        cause: Transport,
        /// Transport detail (no URL query, no body), for the log.
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
    /// The provider answered an OAuth error (RFC 6749 section 5.2): `invalid_grant` refuses
    /// the person's grant; `invalid_client` and friends refuse the issuer itself.
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

/// How a request to a provider failed below HTTP, as told apart by the operating system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Nothing listens there (the provider, or its load balancer, is down).
    ConnectionRefused,
    /// No answer within the client's timeout (a frozen or very slow provider, or a network
    /// that drops packets).
    TimedOut,
    /// The connection was reset or closed before a complete answer.
    ConnectionReset,
    /// The provider's name does not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// What came back is not HTTP.
    Protocol,
    /// Any other transport failure.
    Other,
}

impl Transport {
    /// The metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::ConnectionRefused => "connection_refused",
            Self::TimedOut => "timeout",
            Self::ConnectionReset => "connection_reset",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Protocol => "not_http",
            Self::Other => "transport",
        }
    }

    /// Words for people.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::ConnectionRefused => "connection refused",
            Self::TimedOut => "no answer in time",
            Self::ConnectionReset => "connection reset or closed early",
            Self::Dns => "its name does not resolve",
            Self::Tls => "the TLS handshake failed",
            Self::Protocol => "its answer is not HTTP",
            Self::Other => "network error",
        }
    }
}

impl Error {
    /// Whether the provider refused the person for good, so that the session must end. Only
    /// `invalid_grant` does (RFC 6749 section 5.2: the grant is invalid, expired or revoked;
    /// it is also what providers answer for an account that was disabled or deleted).
    /// Everything else is the provider's or the issuer's problem, not the person's: the
    /// issuer's client refused (`invalid_client`, an expired client secret), rate limiting,
    /// server errors, malformed answers and ID tokens that do not verify are retryable.
    #[must_use]
    pub fn ends_session(&self) -> bool {
        matches!(self, Self::Refused { error, .. } if error == "invalid_grant")
    }

    /// A short label naming the cause, for metrics and structured logs.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unreachable { cause, .. } => cause.label(),
            Self::Status { status: 429, .. } => "rate_limited",
            Self::Status { status, .. } if *status >= 500 => "server_error",
            Self::Status { .. } => "http_status",
            Self::Refused { error, .. } => match error.as_str() {
                "invalid_grant" => "invalid_grant",
                "invalid_client" | "unauthorized_client" => "invalid_client",
                "too_many_requests" | "slow_down" => "rate_limited",
                "temporarily_unavailable" | "server_error" => "server_error",
                _ => "oauth_error",
            },
            Self::Invalid { .. } => "malformed_answer",
            Self::IdToken(
                id_token::IdTokenError::Signature | id_token::IdTokenError::UnknownKey,
            ) => "id_token_signature",
            Self::IdToken(_) => "id_token_invalid",
            Self::CaFile { .. } => "ca_file",
        }
    }

    /// What failed, in words for the person and the client (no detail from the provider's
    /// body beyond a short OAuth error code).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Unreachable { cause, .. } => format!("cannot be reached ({})", cause.describe()),
            Self::Status { status: 429, .. } => "is rate limiting the issuer (HTTP 429)".into(),
            Self::Status { status, .. } => format!("answered HTTP {status}"),
            Self::Refused { error, .. } => match self.label() {
                "invalid_client" => format!(
                    "refused the issuer's own client credentials ({error}; the client secret may have expired)"
                ),
                "rate_limited" => format!("is rate limiting the issuer ({error})"),
                _ => format!("answered the OAuth error {error}"),
            },
            Self::Invalid { .. } => "sent an answer the issuer cannot read".into(),
            Self::IdToken(id_token::IdTokenError::Signature | id_token::IdTokenError::UnknownKey) => {
                "sent an ID token whose signature does not verify with its published keys".into()
            }
            Self::IdToken(e) => format!("sent an ID token that is not valid ({e})"),
            Self::CaFile { .. } => "cannot be trusted: the issuer's CA file for it is unusable".into(),
        }
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

    /// Whether the provider answers at all, before a browser is sent there: a GET of its
    /// discovery document with a short timeout (the cached metadata would otherwise send
    /// people to a provider that is down).
    pub async fn probe(&self) -> Result<(), Error> {
        let base = self.config.issuer_url.as_str().trim_end_matches('/');
        let resp = self
            .client
            .send(client::Req::Probe {
                url: format!("{base}/.well-known/openid-configuration"),
            })
            .await?;
        if resp.status == 200 {
            Ok(())
        } else {
            Err(Error::Status {
                provider: self.config.id.clone(),
                status: resp.status,
            })
        }
    }

    /// Refreshes at the provider and reads the person again. A refusal means the person (or
    /// their grant) is gone upstream.
    ///
    /// OpenID Connect Core section 12.2 lets a refresh answer leave out the ID token. Then the
    /// person is read from the userinfo endpoint when the provider has one, and otherwise the
    /// answer is `None`: the provider accepted the grant (so the person is still there) but
    /// said nothing new, and the stored claims stand. Whatever is read must be about
    /// `subject`, the account the session was started with.
    pub async fn refresh(
        &self,
        refresh_token: &Secret,
        subject: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(Option<Identity>, Tokens), Error> {
        let meta = self.metadata(now).await?;
        let tokens = token::refresh(&self.client, &self.config, &meta, refresh_token).await?;
        let identity = if tokens.id_token.is_some() {
            Some(self.identity(&meta, &tokens, None, now).await?)
        } else if let Some(endpoint) = meta.userinfo_endpoint.as_deref() {
            let mut info =
                token::userinfo(&self.client, &self.config, endpoint, &tokens.access_token).await?;
            info.entry("iss")
                .or_insert_with(|| serde_json::Value::String(meta.issuer.clone()));
            Some(token::identity(&self.config, &info, None)?)
        } else {
            None
        };
        if let (Some(who), Some(subject)) = (&identity, subject) {
            if who.subject != subject {
                return Err(Error::Invalid {
                    provider: self.config.id.clone(),
                    detail: "the refresh answer is about another subject".into(),
                });
            }
        }
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
            // The provider may have rotated its keys, under a new key id or (some do) the same
            // one: fetch the JWKS again (rate limited) and try once more.
            Err(id_token::IdTokenError::UnknownKey | id_token::IdTokenError::Signature) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(error: &str) -> Error {
        Error::Refused {
            provider: "corp".into(),
            error: error.into(),
        }
    }

    /// Which upstream answers end a session: only the provider refusing the person's grant.
    #[test]
    fn only_invalid_grant_ends_a_session() {
        let cases: Vec<(Error, bool, &str)> = vec![
            (refused("invalid_grant"), true, "invalid_grant"),
            (refused("invalid_client"), false, "invalid_client"),
            (refused("unauthorized_client"), false, "invalid_client"),
            (refused("too_many_requests"), false, "rate_limited"),
            (refused("temporarily_unavailable"), false, "server_error"),
            (refused("invalid_request"), false, "oauth_error"),
            (
                Error::Status {
                    provider: "corp".into(),
                    status: 429,
                },
                false,
                "rate_limited",
            ),
            (
                Error::Status {
                    provider: "corp".into(),
                    status: 500,
                },
                false,
                "server_error",
            ),
            (
                Error::Invalid {
                    provider: "corp".into(),
                    detail: "token response: expected value".into(),
                },
                false,
                "malformed_answer",
            ),
            (
                Error::IdToken(id_token::IdTokenError::Signature),
                false,
                "id_token_signature",
            ),
            (
                Error::IdToken(id_token::IdTokenError::UnknownKey),
                false,
                "id_token_signature",
            ),
            (
                Error::IdToken(id_token::IdTokenError::Expired),
                false,
                "id_token_invalid",
            ),
            (
                Error::Unreachable {
                    provider: "corp".into(),
                    cause: Transport::ConnectionRefused,
                    detail: String::new(),
                },
                false,
                "connection_refused",
            ),
            (
                Error::Unreachable {
                    provider: "corp".into(),
                    cause: Transport::TimedOut,
                    detail: String::new(),
                },
                false,
                "timeout",
            ),
        ];
        for (e, ends, label) in cases {
            assert_eq!(e.ends_session(), ends, "{e}");
            assert_eq!(e.label(), label, "{e}");
        }
    }

    /// The words name the cause, so that a refused connection, a timeout, a server error and
    /// a malformed answer are told apart in the log and the 503's description.
    #[test]
    fn descriptions_name_the_cause() {
        let unreachable = |cause| Error::Unreachable {
            provider: "corp".into(),
            cause,
            detail: String::new(),
        };
        assert!(unreachable(Transport::ConnectionRefused)
            .to_string()
            .contains("connection refused"));
        assert!(unreachable(Transport::TimedOut)
            .describe()
            .contains("no answer in time"));
        let status = Error::Status {
            provider: "corp".into(),
            status: 500,
        };
        assert_eq!(status.describe(), "answered HTTP 500");
        assert!(refused("invalid_client")
            .describe()
            .contains("client secret may have expired"));
        assert!(Error::IdToken(id_token::IdTokenError::Signature)
            .describe()
            .contains("signature does not verify"));
        assert!(!status.describe().contains("reached"));
    }
}
