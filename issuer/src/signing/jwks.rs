//! The issuer's keys as JWKs (RFC 7517), the form the API servers fetch them in, with the
//! RFC 7638 thumbprint as `kid`.
//!
//! The thumbprint is computed here, once, and checked at every load, so a key file or row
//! cannot claim another key's id. [`verify`] checks a token against such a JWKS, as an API
//! server does.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credential_shared::oauth::{AccessTokenClaims, Jwk, Jwks};
use ring::signature::{EcdsaKeyPair, KeyPair as _};

use super::jws::{self, quote, Algorithm};
use super::{required_kid, Error, ALG, CRV, KTY};

/// Verifies an ES256 compact JWS against a JWKS (by kid) and returns the decoded claims.
///
/// Checks the algorithm, the key and the signature and nothing else: callers check `exp`, `nbf`,
/// `iss` and `aud` against their own clock and configuration.
pub fn verify(jwks: &Jwks, token: &str) -> Result<AccessTokenClaims, Error> {
    jws::verify(token, &[Algorithm::Es256], |_, kid| {
        let kid = required_kid(kid)?;
        let Some(jwk) = jwks.keys.iter().find(|k| k.kid == kid) else {
            return Err(Error::UnknownKid(quote(kid)));
        };
        let point = public_point(jwk).ok_or_else(|| Error::InvalidJwk(quote(kid)))?;
        Ok(jws::Key::P256 { kid: None, point })
    })
}

/// The public JWK of a key, with its RFC 7638 thumbprint as `kid`. `None` if the public key is
/// not an uncompressed P-256 point, which `ring` never produces for this algorithm.
pub(super) fn jwk_of(pair: &EcdsaKeyPair) -> Option<Jwk> {
    let [0x04, point @ ..] = pair.public_key().as_ref() else {
        return None;
    };
    if point.len() != 64 {
        return None;
    }
    let (x, y) = point.split_at(32);
    let x = URL_SAFE_NO_PAD.encode(x);
    let y = URL_SAFE_NO_PAD.encode(y);
    // RFC 7638 section 3.2: the required members only, in lexicographic order, no whitespace.
    // Every value is plain ASCII without characters JSON escapes, so formatting is exact.
    let canonical = format!(r#"{{"crv":"{CRV}","kty":"{KTY}","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ));
    Some(Jwk {
        kty: KTY.to_owned(),
        crv: CRV.to_owned(),
        x,
        y,
        kid,
        use_: "sig".to_owned(),
        alg: ALG.to_owned(),
    })
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
