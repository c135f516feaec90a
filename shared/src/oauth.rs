//! OAuth 2.0 messages: device authorization (RFC 8628), token (RFC 6749), revocation (RFC 7009),
//! and the discovery documents (OpenID Connect Discovery, RFC 8414) the issuer publishes.
//!
//! Requests are `application/x-www-form-urlencoded` (the issuer deserializes these structs from
//! forms, the plugin serializes them); responses are JSON.

use serde::{Deserialize, Serialize};

/// `grant_type` of the device flow's token request (RFC 8628 section 3.4).
pub const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// `grant_type` of the refresh request (RFC 6749 section 6).
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
/// OAuth 2.0 Token Exchange (RFC 8693): a CI job's identity token for a cluster token.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The client credentials grant (RFC 6749 section 4.4), with a `private_key_jwt` client
/// assertion (RFC 7523) from a registered machine.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
/// RFC 8693 token type: a JWT (what the issuer hands out, and what a CI platform's token is).
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// RFC 8693 token type: an OpenID Connect ID token (accepted as a subject token).
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693 token type: an access token (accepted as a requested token type).
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 7523 client assertion type.
pub const CLIENT_ASSERTION_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The `client_id` the plugin identifies itself with.
pub const PLUGIN_CLIENT_ID: &str = "kubectl-credential";

/// Path of the device authorization endpoint.
pub const PATH_DEVICE_AUTHORIZATION: &str = "/oauth/device_authorization";
/// Path of the token endpoint.
pub const PATH_TOKEN: &str = "/oauth/token";
/// Path of the revocation endpoint.
pub const PATH_REVOKE: &str = "/oauth/revoke";
/// Path of the page where a person enters a user code.
pub const PATH_DEVICE_PAGE: &str = "/device";
/// Path of the OpenID Connect discovery document.
pub const PATH_DISCOVERY: &str = "/.well-known/openid-configuration";
/// Path of the JSON Web Key Set.
pub const PATH_JWKS: &str = "/openid/v1/jwks";

/// `POST /oauth/device_authorization` form body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceAuthorizationRequest {
    /// The public client asking, [`PLUGIN_CLIENT_ID`] for the plugin.
    #[serde(default)]
    pub client_id: String,
    /// Space-separated scopes; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Name of the cluster (as configured in the issuer) the credential is for. It becomes the
    /// token's audience and is shown on the consent page.
    #[serde(default)]
    pub cluster: String,
}

/// Response of the device authorization endpoint (RFC 8628 section 3.2).
#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceAuthorizationResponse {
    /// The secret the client polls with. Redacted in `Debug`.
    pub device_code: String,
    /// The code a person types, shown as `XXXX-XXXX`.
    pub user_code: String,
    /// Where the person goes.
    pub verification_uri: String,
    /// `verification_uri` with the user code filled in.
    pub verification_uri_complete: String,
    /// Seconds until `device_code` expires.
    pub expires_in: u64,
    /// Seconds the client waits between polls.
    pub interval: u64,
}

impl std::fmt::Debug for DeviceAuthorizationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorizationResponse")
            .field("device_code", &"[redacted]")
            .field("user_code", &"[redacted]")
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// `POST /oauth/token` form body, for every grant type the issuer supports.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct TokenRequest {
    /// [`GRANT_DEVICE_CODE`] or [`GRANT_REFRESH_TOKEN`].
    #[serde(default)]
    pub grant_type: String,
    /// The client; must match the one the code or session was issued to.
    #[serde(default)]
    pub client_id: String,
    /// With [`GRANT_DEVICE_CODE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_code: Option<String>,
    /// With [`GRANT_REFRESH_TOKEN`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// With [`GRANT_TOKEN_EXCHANGE`]: the CI platform's identity token (a JWT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token: Option<String>,
    /// With [`GRANT_TOKEN_EXCHANGE`]: [`TOKEN_TYPE_JWT`] or [`TOKEN_TYPE_ID_TOKEN`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token_type: Option<String>,
    /// With [`GRANT_TOKEN_EXCHANGE`]: optional; [`TOKEN_TYPE_JWT`] or
    /// [`TOKEN_TYPE_ACCESS_TOKEN`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_token_type: Option<String>,
    /// The target cluster by name (RFC 8693 `audience`), for the machine grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The target cluster by its audience URL or API server URL (RFC 8707 `resource`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// With [`GRANT_CLIENT_CREDENTIALS`]: [`CLIENT_ASSERTION_JWT_BEARER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion_type: Option<String>,
    /// With [`GRANT_CLIENT_CREDENTIALS`]: the machine's signed assertion (RFC 7523).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .field("subject_token_type", &self.subject_token_type)
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

/// Successful token response (RFC 6749 section 5.1) with the issuer's extensions.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// A JWT for the cluster's API server.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    /// The next refresh token; the one presented is now spent. Empty (and absent on the wire)
    /// for the machine grants, which have no refresh.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refresh_token: String,
    /// Extension: Unix time at which the session (and so every refresh token) ends.
    #[serde(default)]
    pub session_expires_at: Option<i64>,
    /// Extension: the API server URL the issuer has configured for the token's cluster. The
    /// plugin refuses to hand the token to a kubeconfig that points the cluster elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server: Option<String>,
    /// RFC 8693: the type of `access_token` ([`TOKEN_TYPE_JWT`]), in token exchange answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"[redacted]")
            .field("session_expires_at", &self.session_expires_at)
            .field("api_server", &self.api_server)
            .field("issued_token_type", &self.issued_token_type)
            .finish()
    }
}

/// `POST /oauth/revoke` form body (RFC 7009).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct RevocationRequest {
    /// A refresh token: revoking it ends its whole session.
    #[serde(default)]
    pub token: String,
    /// `refresh_token`; other hints are accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
    /// The client.
    #[serde(default)]
    pub client_id: String,
}

impl std::fmt::Debug for RevocationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationRequest")
            .field("token", &"[redacted]")
            .field("token_type_hint", &self.token_type_hint)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// The `error` codes of RFC 6749 section 5.2 and RFC 8628 section 3.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// A parameter is missing or malformed.
    InvalidRequest,
    /// Unknown client.
    InvalidClient,
    /// The code or refresh token is unknown, spent, revoked or belongs to another client.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The scope or cluster is unknown.
    InvalidScope,
    /// RFC 8707 / RFC 8693: the target cluster (`audience`, `resource`) is unknown or not allowed.
    InvalidTarget,
    /// Device flow: the person has not answered yet.
    AuthorizationPending,
    /// Device flow: polling too fast; add 5 seconds to the interval.
    SlowDown,
    /// Device flow: the person denied the request.
    AccessDenied,
    /// Device flow: the device code expired; start again.
    ExpiredToken,
    /// RFC 7009: the token type cannot be revoked.
    UnsupportedTokenType,
    /// The issuer failed; retry later.
    ServerError,
    /// The issuer is overloaded or rate limiting this client.
    TemporarilyUnavailable,
    /// A code this version does not know (kept so that old clients tolerate new codes).
    #[serde(other)]
    Unknown,
}

impl OAuthErrorCode {
    /// The wire string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Unknown => "unknown",
        }
    }
}

/// Error response body (RFC 6749 section 5.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthError {
    /// The code clients branch on.
    pub error: OAuthErrorCode,
    /// Text for a person; never contains a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// The OpenID Connect discovery document (the subset kube-apiserver and the plugin read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiscoveryDocument {
    /// Must equal the URL the document was fetched under, minus the well-known suffix.
    pub issuer: String,
    /// RFC 8628 endpoint.
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    /// Token endpoint.
    pub token_endpoint: String,
    /// RFC 7009 endpoint.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// JWKS URL.
    pub jwks_uri: String,
    /// Required by OpenID Connect Discovery; the issuer has no browser-facing authorize endpoint
    /// for third parties, so this points at the device page.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// `["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"]`.
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    /// `["ES256"]`.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `["id_token"]` (required member of the document).
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// `["public"]`.
    #[serde(default)]
    pub subject_types_supported: Vec<String>,
    /// Claims the tokens carry.
    #[serde(default)]
    pub claims_supported: Vec<String>,
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// One public EC P-256 key (RFC 7518 section 6.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwk {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    /// Base64url of the X coordinate.
    pub x: String,
    /// Base64url of the Y coordinate.
    pub y: String,
    /// Key id, the `kid` in the token header.
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `ES256`.
    pub alg: String,
}

/// The claims of an access token. The plugin decodes them (without verifying: it is not the
/// relying party) to show who is logged in; the issuer serializes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer URL.
    pub iss: String,
    /// Stable user id.
    pub sub: String,
    /// The cluster's audience.
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// Login name.
    pub preferred_username: String,
    /// E-mail address where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Group names, unprefixed (the API server adds its `--oidc-groups-prefix`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Name of the cluster the token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Id of the issuer-side session (used by the plugin for display only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Ids of the grants in force when the token was minted (their roles also appear in
    /// `groups` as `grant:<role>` or `grant:<role>:<namespace>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// Set only on a token minted while the person's identity provider could not be asked
    /// (its offline grace): when the provider last confirmed the person (Unix seconds). Such a
    /// token says "not re-checked since" this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_checked_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_unknown_is_tolerated() {
        let e: OAuthError =
            serde_json::from_str(r#"{"error":"slow_down"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.error, OAuthErrorCode::SlowDown);
        assert_eq!(e.error.as_str(), "slow_down");
        let e: OAuthError =
            serde_json::from_str(r#"{"error":"brand_new_code","error_description":"x","extra":1}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.error, OAuthErrorCode::Unknown);
        for code in [
            OAuthErrorCode::InvalidRequest,
            OAuthErrorCode::AuthorizationPending,
            OAuthErrorCode::ExpiredToken,
            OAuthErrorCode::AccessDenied,
        ] {
            let s = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(s, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn debug_never_prints_secrets() {
        let r = TokenResponse {
            access_token: "AT-secret".into(),
            token_type: "Bearer".into(),
            expires_in: 1,
            refresh_token: "RT-secret".into(),
            session_expires_at: None,
            api_server: None,
            issued_token_type: None,
        };
        let d = format!("{r:?}");
        assert!(!d.contains("AT-secret") && !d.contains("RT-secret"));
        let q = TokenRequest {
            device_code: Some("DC-secret".into()),
            refresh_token: Some("RT-secret".into()),
            subject_token: Some("ST-secret".into()),
            client_assertion: Some("CA-secret".into()),
            ..TokenRequest::default()
        };
        let d = format!("{q:?}");
        for secret in ["DC-secret", "RT-secret", "ST-secret", "CA-secret"] {
            assert!(!d.contains(secret), "{d}");
        }
    }
}
