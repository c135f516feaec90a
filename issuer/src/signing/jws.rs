//! The compact JWS encoding (RFC 7515) of access tokens, ES256 only (RFC 7518 section 3.4).
//!
//! Written against `ring` directly rather than a JWT crate: the issuer needs exactly one
//! algorithm, and accepting exactly one on verification is what keeps `alg: none` and algorithm
//! confusion out.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credential_shared::oauth::{AccessTokenClaims, Jwk, Jwks};
use ring::rand::SecureRandom;
use ring::signature::{EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

use super::{Error, ALG, CRV, KTY};

/// Longest attacker-supplied header value quoted back in an error message.
const MAX_QUOTED: usize = 64;

/// Signs `claims` as `header.payload.signature` with `key`, naming it `kid` in the header.
pub(super) fn encode(
    key: &EcdsaKeyPair,
    kid: &str,
    claims: &AccessTokenClaims,
    rng: &dyn SecureRandom,
) -> Result<String, Error> {
    let header = serde_json::json!({ "alg": ALG, "typ": "JWT", "kid": kid });
    let header = serde_json::to_vec(&header).map_err(Error::SerializeClaims)?;
    let payload = serde_json::to_vec(claims).map_err(Error::SerializeClaims)?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    // The fixed encoding (r || s, 64 bytes) is the one JWS requires, not ASN.1 DER.
    let signature = key.sign(rng, token.as_bytes()).map_err(|_| Error::Sign)?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
    Ok(token)
}

/// Verifies an ES256 compact JWS against a JWKS (by kid) and returns the decoded claims.
///
/// Checks the algorithm, the key and the signature and nothing else: callers check `exp`, `nbf`,
/// `iss` and `aud` against their own clock and configuration.
pub fn verify(jwks: &Jwks, token: &str) -> Result<AccessTokenClaims, Error> {
    verify_with(token, |kid| {
        let Some(jwk) = jwks.keys.iter().find(|k| k.kid == kid) else {
            return Err(Error::UnknownKid(quote(kid)));
        };
        public_point(jwk).ok_or_else(|| Error::InvalidJwk(quote(kid)))
    })
}

/// Verifies an ES256 compact JWS with the public key (uncompressed P-256 point) that `key_for`
/// finds for the header's kid, and returns the decoded claims. Shared by [`verify`] (a JWKS)
/// and the issuer's own key set (`Signer::verify`), so both parse tokens the same way.
pub(super) fn verify_with<K: AsRef<[u8]>>(
    token: &str,
    key_for: impl FnOnce(&str) -> Result<K, Error>,
) -> Result<AccessTokenClaims, Error> {
    let malformed = Error::MalformedToken {
        reason: "not three dot-separated parts",
    };
    let Some((signed, signature_b64)) = token.rsplit_once('.') else {
        return Err(malformed);
    };
    let Some((header_b64, payload_b64)) = signed.split_once('.') else {
        return Err(malformed);
    };
    if payload_b64.contains('.') {
        return Err(malformed);
    }

    let header = decode_part("header", header_b64)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(Error::InvalidHeader)?;
    let Some(header) = header.as_object() else {
        return Err(Error::MalformedToken {
            reason: "header is not a JSON object",
        });
    };
    let alg = header
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if alg != ALG {
        return Err(Error::UnsupportedAlgorithm(quote(alg)));
    }
    // RFC 7515 section 4.1.11: extensions the recipient does not understand must be rejected,
    // and this verifier understands none.
    if header.contains_key("crit") {
        return Err(Error::MalformedToken {
            reason: "header has critical extensions",
        });
    }
    let Some(kid) = header.get("kid").and_then(serde_json::Value::as_str) else {
        return Err(Error::MalformedToken {
            reason: "header has no kid",
        });
    };
    let public_key = key_for(kid)?;

    let signature = decode_part("signature", signature_b64)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key.as_ref())
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| Error::BadSignature)?;

    let payload = decode_part("payload", payload_b64)?;
    serde_json::from_slice(&payload).map_err(Error::InvalidClaims)
}

fn decode_part(part: &'static str, b64: &str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|source| Error::Base64 { part, source })
}

/// The uncompressed point `0x04 || X || Y` of an EC P-256 JWK, if it is one.
fn public_point(jwk: &Jwk) -> Option<Vec<u8>> {
    if jwk.kty != KTY || jwk.crv != CRV || (!jwk.alg.is_empty() && jwk.alg != ALG) {
        return None;
    }
    let x = URL_SAFE_NO_PAD.decode(&jwk.x).ok()?;
    let y = URL_SAFE_NO_PAD.decode(&jwk.y).ok()?;
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

/// Bounds a value taken from the token before it goes into an error message (and so a log line).
pub(super) fn quote(value: &str) -> String {
    value.chars().take(MAX_QUOTED).collect()
}
