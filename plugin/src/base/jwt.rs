//! Reads the claims of an access token, without verifying it: the plugin is not the relying
//! party (the API server verifies), it only needs the user name, groups and lifetime to show
//! and to cache.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use credential_shared::oauth::AccessTokenClaims;

/// base64url, with or without padding (RFC 7515 says without; be lenient in what we read).
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a token could not be read. Never includes the token itself.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwtError {
    /// Not `header.payload.signature`.
    #[error("it is not a JWT (three dot-separated parts)")]
    Shape,
    /// The payload is not base64url.
    #[error("its payload is not base64url")]
    Base64(#[source] base64::DecodeError),
    /// The payload is not the claims the issuer promises.
    #[error("its payload does not hold the expected claims")]
    Claims(#[source] serde_json::Error),
}

/// Decodes the payload of a compact JWS without checking its signature.
pub(crate) fn decode_claims(token: &str) -> Result<AccessTokenClaims, JwtError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    let json = BASE64URL.decode(payload).map_err(JwtError::Base64)?;
    serde_json::from_slice(&json).map_err(JwtError::Claims)
}

#[cfg(test)]
pub(crate) mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    /// A JWT-shaped token with these claims and a junk signature.
    pub(crate) fn token(iat: i64, exp: i64, user: &str, groups: &[&str]) -> String {
        let claims = serde_json::json!({
            "iss": "https://issuer.example", "sub": "u-1", "aud": "prod", "iat": iat, "nbf": iat,
            "exp": exp, "jti": "j-1", "preferred_username": user, "groups": groups,
        });
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn decodes_claims() {
        let claims = decode_claims(&token(100, 1000, "alice", &["dev", "ops"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.preferred_username, "alice");
        assert_eq!(claims.groups, ["dev", "ops"]);
        assert_eq!((claims.iat, claims.exp), (100, 1000));
    }

    #[test]
    fn rejects_malformed_tokens() {
        assert!(matches!(
            decode_claims("opaque-token"),
            Err(JwtError::Shape)
        ));
        assert!(matches!(decode_claims("a.b.c.d"), Err(JwtError::Shape)));
        assert!(matches!(decode_claims("a.!!!.c"), Err(JwtError::Base64(_))));
        let not_claims = format!("a.{}.c", URL_SAFE_NO_PAD.encode(b"{\"sub\":1}"));
        assert!(matches!(
            decode_claims(&not_claims),
            Err(JwtError::Claims(_))
        ));
    }
}
