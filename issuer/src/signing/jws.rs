//! Compact JWS (RFC 7515): the one place where a signed token is verified, whoever signed it,
//! and where the issuer's own tokens are encoded.
//!
//! Verified here: the issuer's ES256 access tokens (the TokenReview webhook and the issuer's
//! API, through `Signer::verify`, and tests through the published JWKS) and the ID tokens of
//! upstream OpenID providers (RS256 or ES256 against the provider's JWKS, [`Jwks`]). Each caller
//! names the algorithms it accepts and finds the key for the header's `kid`; this module parses
//! the token strictly, checks `alg` against that allow-list, checks that the key is one of the
//! algorithm's type, and verifies the signature. The claims are the caller's to check.
//!
//! [`Algorithm`] names only asymmetric algorithms `ring` verifies: there is no `none` and no
//! HMAC to allow, so a public key can never be taken for an HMAC secret, and an RSA key never
//! verifies an EC token (or the reverse). Written against `ring` directly rather than a JOSE
//! crate: `ring` is already the workspace's crypto (rustls, sqlx), this is two algorithms and a
//! strict parser, and a JOSE crate would bring a second crypto stack or ask for one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credential_shared::oauth::AccessTokenClaims;
use ring::rand::SecureRandom;
use ring::signature::{self, EcdsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::de::DeserializeOwned;

use super::ALG;

/// Longest attacker-supplied header value quoted back in an error message.
const MAX_QUOTED: usize = 64;

/// A signature algorithm a caller may accept (RFC 7518 section 3.1). Deliberately no `none`
/// and no HMAC: an allow-list made of these cannot let either in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256, the signature as the fixed 64-byte `r || s`.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 to 8192 bits.
    Rs256,
}

impl Algorithm {
    /// The `alg` value in a JWS header.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }
}

/// A public key as the verifier uses it, borrowed from the caller's key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKey<'a> {
    /// A P-256 point, uncompressed (`04 || x || y`): verifies [`Algorithm::Es256`].
    P256(&'a [u8]),
    /// An RSA modulus and exponent (big-endian bytes): verifies [`Algorithm::Rs256`].
    Rsa {
        /// `n`.
        n: &'a [u8],
        /// `e`.
        e: &'a [u8],
    },
}

/// What a key lookup hands the verifier: a key it holds or one it borrows.
pub trait VerifyingKey {
    /// The key's public part.
    fn public_key(&self) -> PublicKey<'_>;
}

impl VerifyingKey for PublicKey<'_> {
    fn public_key(&self) -> PublicKey<'_> {
        *self
    }
}

impl<K: VerifyingKey + ?Sized> VerifyingKey for &K {
    fn public_key(&self) -> PublicKey<'_> {
        (**self).public_key()
    }
}

/// Why a token did not verify. Carries no token content but a bounded `alg` value; callers map
/// it into their own error, with their own wording.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not three dot-separated parts.
    #[error("token is malformed: not three dot-separated parts")]
    NotThreeParts,
    /// A part is not base64url without padding.
    #[error("token {part} is not base64url")]
    Base64 {
        /// `header`, `payload` or `signature`.
        part: &'static str,
        /// The cause.
        #[source]
        source: base64::DecodeError,
    },
    /// The header is not JSON.
    #[error("token header is not JSON")]
    HeaderNotJson(#[source] serde_json::Error),
    /// The header is JSON but not an object.
    #[error("token is malformed: header is not a JSON object")]
    HeaderNotObject,
    /// The header's `alg` (quoted, bounded) is not in the caller's allow-list; this includes
    /// `none`, HMAC and a missing `alg` (an empty string).
    #[error("token algorithm {0:?} is not allowed")]
    Algorithm(String),
    /// The header names critical extensions (RFC 7515 section 4.1.11), and this verifier
    /// understands none.
    #[error("token is malformed: header has critical extensions")]
    CriticalHeader,
    /// No key in the key set fits the token's `kid` and algorithm.
    #[error("no key in the key set fits the token")]
    UnknownKey,
    /// The key the caller found is not of the token's algorithm's type.
    #[error("the key for the token is not a key of its algorithm")]
    KeyMismatch,
    /// The signature does not match.
    #[error("token signature is invalid")]
    BadSignature,
    /// The signature is good but the payload is not what the caller expects.
    #[error("token payload is invalid")]
    Payload(#[source] serde_json::Error),
}

/// Verifies a compact JWS and returns its payload as `T`.
///
/// In this order: three parts; the header base64url, JSON, an object; its `alg` in `allowed`;
/// no `crit`; the key `key_for` finds for the algorithm and the header's `kid` (a string, or
/// `None`), which must be of the algorithm's type; the signature; the payload base64url and a
/// `T`. The first failure is the answer, in the caller's error type.
pub fn verify<T, E, K>(
    token: &str,
    allowed: &[Algorithm],
    key_for: impl FnOnce(Algorithm, Option<&str>) -> Result<K, E>,
) -> Result<T, E>
where
    T: DeserializeOwned,
    E: From<Error>,
    K: VerifyingKey,
{
    let Some((signed, signature_b64)) = token.rsplit_once('.') else {
        return Err(Error::NotThreeParts.into());
    };
    let Some((header_b64, payload_b64)) = signed.split_once('.') else {
        return Err(Error::NotThreeParts.into());
    };
    if payload_b64.contains('.') {
        return Err(Error::NotThreeParts.into());
    }

    let header = decode_part("header", header_b64)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(Error::HeaderNotJson)?;
    let Some(header) = header.as_object() else {
        return Err(Error::HeaderNotObject.into());
    };
    let alg = header
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let Some(alg) = Algorithm::from_name(alg).filter(|a| allowed.contains(a)) else {
        return Err(Error::Algorithm(quote(alg)).into());
    };
    if header.contains_key("crit") {
        return Err(Error::CriticalHeader.into());
    }
    let kid = header.get("kid").and_then(serde_json::Value::as_str);
    let key = key_for(alg, kid)?;

    let signature = decode_part("signature", signature_b64)?;
    let verified = match (alg, key.public_key()) {
        (Algorithm::Es256, PublicKey::P256(point)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed.as_bytes(), &signature)
        }
        (Algorithm::Rs256, PublicKey::Rsa { n, e }) => RsaPublicKeyComponents { n, e }.verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        ),
        _ => return Err(Error::KeyMismatch.into()),
    };
    verified.map_err(|_| Error::BadSignature)?;

    let payload = decode_part("payload", payload_b64)?;
    Ok(serde_json::from_slice(&payload).map_err(Error::Payload)?)
}

/// Signs `claims` as ES256 `header.payload.signature` with `key`, naming it `kid` in the
/// header: the issuer's access tokens.
pub(super) fn encode(
    key: &EcdsaKeyPair,
    kid: &str,
    claims: &AccessTokenClaims,
    rng: &dyn SecureRandom,
) -> Result<String, super::Error> {
    let header = serde_json::json!({ "alg": ALG, "typ": "JWT", "kid": kid });
    let header = serde_json::to_vec(&header).map_err(super::Error::SerializeClaims)?;
    let payload = serde_json::to_vec(claims).map_err(super::Error::SerializeClaims)?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    // The fixed encoding (r || s, 64 bytes) is the one JWS requires, not ASN.1 DER.
    let signature = key
        .sign(rng, token.as_bytes())
        .map_err(|_| super::Error::Sign)?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
    Ok(token)
}

/// Someone else's signing keys, as a verifier holds them: the usable keys of a JWKS document
/// (RFC 7517), such as an OpenID provider's `jwks_uri`. Keys of other types or uses are
/// ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    /// The usable keys.
    pub keys: Vec<Key>,
}

/// A public key of a [`Jwks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// RSA modulus and exponent (big-endian bytes).
    Rsa {
        /// `kid`.
        kid: Option<String>,
        /// `n`.
        n: Vec<u8>,
        /// `e`.
        e: Vec<u8>,
    },
    /// P-256 point, uncompressed (`04 || x || y`).
    P256 {
        /// `kid`.
        kid: Option<String>,
        /// The point.
        point: Vec<u8>,
    },
}

impl Key {
    fn kid(&self) -> Option<&str> {
        match self {
            Self::Rsa { kid, .. } | Self::P256 { kid, .. } => kid.as_deref(),
        }
    }

    fn fits(&self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (Self::Rsa { .. }, Algorithm::Rs256) | (Self::P256 { .. }, Algorithm::Es256)
        )
    }
}

impl VerifyingKey for Key {
    fn public_key(&self) -> PublicKey<'_> {
        match self {
            Self::Rsa { n, e, .. } => PublicKey::Rsa { n, e },
            Self::P256 { point, .. } => PublicKey::P256(point),
        }
    }
}

impl Jwks {
    /// Reads the usable keys from a JWKS document.
    #[must_use]
    pub fn from_json(doc: &serde_json::Value) -> Self {
        let b64 = |k: &serde_json::Value, f: &str| {
            k.get(f)
                .and_then(serde_json::Value::as_str)
                .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
        };
        let mut keys = Vec::new();
        for k in doc
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |f: &str| k.get(f).and_then(serde_json::Value::as_str);
            if s("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let kid = s("kid").map(str::to_owned);
            match (s("kty"), s("crv")) {
                (Some("RSA"), _) => {
                    if let (Some(n), Some(e)) = (b64(k, "n"), b64(k, "e")) {
                        keys.push(Key::Rsa { kid, n, e });
                    }
                }
                (Some("EC"), Some("P-256")) => {
                    if let (Some(x), Some(y)) = (b64(k, "x"), b64(k, "y")) {
                        if x.len() == 32 && y.len() == 32 {
                            let mut point = vec![4];
                            point.extend(x);
                            point.extend(y);
                            keys.push(Key::P256 { kid, point });
                        }
                    }
                }
                _ => {}
            }
        }
        Self { keys }
    }

    /// The key for a token of `alg` with key id `kid`: the first key of the algorithm's type
    /// with that kid. Without a kid, a key set with exactly one key of that type is
    /// unambiguous; more is not.
    pub fn find(&self, alg: Algorithm, kid: Option<&str>) -> Result<&Key, Error> {
        let mut fitting = self
            .keys
            .iter()
            .filter(|k| k.fits(alg) && (kid.is_none() || k.kid() == kid));
        match (kid, fitting.next(), fitting.next()) {
            (_, Some(k), None) | (Some(_), Some(k), Some(_)) => Ok(k),
            _ => Err(Error::UnknownKey),
        }
    }
}

fn decode_part(part: &'static str, b64: &str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|source| Error::Base64 { part, source })
}

/// Bounds a value taken from the token before it goes into an error message (and so a log line).
pub(super) fn quote(value: &str) -> String {
    value.chars().take(MAX_QUOTED).collect()
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};

    use super::*;

    fn key() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("generate: {e}"));
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap_or_else(|e| panic!("load: {e}"))
    }

    fn token(key: &EcdsaKeyPair, header: &serde_json::Value) -> String {
        let mut t = URL_SAFE_NO_PAD.encode(header.to_string());
        t.push('.');
        t.push_str(&URL_SAFE_NO_PAD.encode(r#"{"sub":"u-1"}"#));
        let sig = key
            .sign(&SystemRandom::new(), t.as_bytes())
            .unwrap_or_else(|e| panic!("sign: {e}"));
        t.push('.');
        t.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        t
    }

    fn check(
        token: &str,
        allowed: &[Algorithm],
        key: PublicKey<'_>,
    ) -> Result<serde_json::Value, Error> {
        verify(token, allowed, |_, _| Ok::<_, Error>(key))
    }

    #[test]
    fn the_allow_list_the_key_type_and_crit_are_enforced_here() {
        let k = key();
        let point = PublicKey::P256(k.public_key().as_ref());
        let good = token(&k, &serde_json::json!({"alg": "ES256", "kid": "k1"}));
        assert!(check(&good, &[Algorithm::Es256], point).is_ok());
        // Not on the caller's list, whatever the key.
        assert!(matches!(
            check(&good, &[Algorithm::Rs256], point),
            Err(Error::Algorithm(a)) if a == "ES256"
        ));
        assert!(matches!(check(&good, &[], point), Err(Error::Algorithm(_))));
        // A key of another type than the algorithm never verifies (no algorithm confusion),
        // even when the caller's lookup hands one over.
        let rsa = PublicKey::Rsa {
            n: &[1; 256],
            e: &[1, 0, 1],
        };
        assert!(matches!(
            check(&good, &[Algorithm::Es256, Algorithm::Rs256], rsa),
            Err(Error::KeyMismatch)
        ));
        let crit = token(
            &k,
            &serde_json::json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}),
        );
        assert!(matches!(
            check(&crit, &[Algorithm::Es256], point),
            Err(Error::CriticalHeader)
        ));
    }

    #[test]
    fn a_key_set_without_kid_is_unambiguous_only_with_one_fitting_key() {
        let p256 = |kid: &str| Key::P256 {
            kid: Some(kid.to_owned()),
            point: vec![4; 65],
        };
        let one = Jwks {
            keys: vec![p256("a")],
        };
        assert!(one.find(Algorithm::Es256, None).is_ok());
        assert!(matches!(
            one.find(Algorithm::Rs256, None),
            Err(Error::UnknownKey)
        ));
        let two = Jwks {
            keys: vec![p256("a"), p256("b")],
        };
        assert!(matches!(
            two.find(Algorithm::Es256, None),
            Err(Error::UnknownKey)
        ));
        assert_eq!(two.find(Algorithm::Es256, Some("b")).ok(), Some(&p256("b")));
        assert!(matches!(
            two.find(Algorithm::Es256, Some("c")),
            Err(Error::UnknownKey)
        ));
    }
}
