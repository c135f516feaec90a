//! The issuer's keys as JWKs (RFC 7517), the form the API servers fetch them in, with the
//! RFC 7638 thumbprint as `kid`.
//!
//! The thumbprint is computed here, once, and checked at every load, so a key file or row
//! cannot claim another key's id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credential_shared::oauth::Jwk;
use ring::signature::{EcdsaKeyPair, KeyPair as _};

use super::{ALG, CRV, KTY};

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
