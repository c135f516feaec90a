//! ID token validation (OpenID Connect Core section 3.1.3.7): the JWS signature through the
//! provider's JWKS (RS256 or ES256 only; `none` and HMAC never), then `iss`, `aud`, `azp`, `exp`,
//! `iat` (with a small skew, against the injected clock) and `nonce`.
//!
//! The signature is checked by [`crate::signing::jws`], the one JWS verifier, with this
//! module's allow-list ([`ALGORITHMS`]); what is specific to ID tokens is the claims.

use time::OffsetDateTime;

use crate::secrets::secret::{constant_time_eq, Secret};
use crate::signing::jws::{self, Algorithm, Jwks};

/// The algorithms an upstream provider may sign ID tokens with.
pub const ALGORITHMS: &[Algorithm] = &[Algorithm::Rs256, Algorithm::Es256];

/// Clock difference tolerated between the provider and the issuer, in seconds.
pub const SKEW_SECS: i64 = 60;

/// Why an ID token was refused. Carries no token content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// Not a compact JWS with a JSON header and payload.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not RS256 or ES256.
    #[error("unsupported algorithm")]
    Algorithm,
    /// No key in the JWKS has the token's key id (or a usable type).
    #[error("signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the signature does not verify with the provider's published keys")]
    Signature,
    /// `iss` is not the provider.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not name this client, or `azp` names another.
    #[error("wrong audience")]
    Audience,
    /// `exp` has passed, or `iat` lies in the future.
    #[error("expired or not yet valid")]
    Expired,
    /// `nonce` does not match the one sent with the authorization request.
    #[error("wrong nonce")]
    Nonce,
    /// `sub` is missing.
    #[error("no subject")]
    Subject,
}

/// What the token must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The provider's issuer.
    pub issuer: &'a str,
    /// Our client id.
    pub client_id: &'a str,
    /// The nonce sent with the authorization request; `None` for tokens from a refresh, which
    /// carry no fresh nonce.
    pub nonce: Option<&'a Secret>,
    /// Now.
    pub now: OffsetDateTime,
}

/// The validated claims.
pub type Claims = serde_json::Map<String, serde_json::Value>;

/// Verifies the signature and the claims; returns the claims.
pub fn validate(token: &str, jwks: &Jwks, want: &Expected<'_>) -> Result<Claims, IdTokenError> {
    let claims: Claims = jws::verify(token, ALGORITHMS, |alg, kid| jwks.find(alg, kid))?;
    check_claims(&claims, want)?;
    Ok(claims)
}

impl From<jws::Error> for IdTokenError {
    // The wording (and the kind, which decides whether the JWKS is fetched again) of each
    // verification failure, as this module has always reported it.
    fn from(e: jws::Error) -> Self {
        match e {
            jws::Error::NotThreeParts => Self::Malformed("not three parts"),
            jws::Error::Base64 { .. } => Self::Malformed("not base64url"),
            jws::Error::HeaderNotJson(_) => Self::Malformed("header is not JSON"),
            // A header that is not an object names no algorithm.
            jws::Error::HeaderNotObject | jws::Error::Algorithm(_) => Self::Algorithm,
            jws::Error::CriticalHeader => Self::Malformed("critical header extensions"),
            jws::Error::UnknownKey | jws::Error::KeyMismatch => Self::UnknownKey,
            jws::Error::BadSignature => Self::Signature,
            jws::Error::Payload(_) => Self::Malformed("payload is not a JSON object"),
        }
    }
}

fn check_claims(c: &Claims, want: &Expected<'_>) -> Result<(), IdTokenError> {
    let s = |f: &str| c.get(f).and_then(serde_json::Value::as_str);
    let n = |f: &str| c.get(f).and_then(serde_json::Value::as_i64);
    if s("iss") != Some(want.issuer) {
        return Err(IdTokenError::Issuer);
    }
    let aud: Vec<&str> = match c.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.as_str()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => vec![],
    };
    if !aud.contains(&want.client_id) {
        return Err(IdTokenError::Audience);
    }
    // Core 3.1.3.7 items 4 and 5: with several audiences the token must be for us (azp).
    match s("azp") {
        Some(azp) if azp != want.client_id => return Err(IdTokenError::Audience),
        None if aud.len() > 1 => return Err(IdTokenError::Audience),
        _ => {}
    }
    let now = want.now.unix_timestamp();
    match (n("exp"), n("iat")) {
        (Some(exp), Some(iat)) if exp + SKEW_SECS > now && iat - SKEW_SECS <= now => {}
        _ => return Err(IdTokenError::Expired),
    }
    if let Some(nonce) = want.nonce {
        match s("nonce") {
            Some(got) if constant_time_eq(got, nonce.expose()) => {}
            _ => return Err(IdTokenError::Nonce),
        }
    }
    if s("sub").is_none_or(str::is_empty) {
        return Err(IdTokenError::Subject);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::signing::jws::Key;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ring::rand::SystemRandom;
    use ring::signature::{
        EcdsaKeyPair, KeyPair as _, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);

    struct Signer {
        key: EcdsaKeyPair,
        kid: &'static str,
    }

    impl Signer {
        fn new(kid: &'static str) -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Self { key, kid }
        }

        fn public(&self) -> Key {
            Key::P256 {
                kid: Some(self.kid.to_owned()),
                point: self.key.public_key().as_ref().to_vec(),
            }
        }

        fn sign(&self, claims: &serde_json::Value) -> String {
            let header = serde_json::json!({"alg": "ES256", "kid": self.kid});
            let mut t = URL_SAFE_NO_PAD.encode(header.to_string());
            t.push('.');
            t.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
            let sig = self.key.sign(&SystemRandom::new(), t.as_bytes()).unwrap();
            t.push('.');
            t.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
            t
        }
    }

    fn good_claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://idp.example", "aud": "issuer-client", "sub": "u-1",
            "iat": NOW.unix_timestamp() - 5, "exp": NOW.unix_timestamp() + 300,
            "nonce": "n-123", "groups": ["eng"],
        })
    }

    fn check(token: &str, jwks: &Jwks) -> Result<Claims, IdTokenError> {
        let nonce = Secret::new("n-123");
        validate(
            token,
            jwks,
            &Expected {
                issuer: "https://idp.example",
                client_id: "issuer-client",
                nonce: Some(&nonce),
                now: NOW,
            },
        )
    }

    fn with(f: &str, v: serde_json::Value) -> serde_json::Value {
        let mut c = good_claims();
        c[f] = v;
        c
    }

    #[test]
    fn a_good_token_passes_and_each_bad_claim_fails() {
        let k = Signer::new("k1");
        let jwks = Jwks {
            keys: vec![k.public()],
        };
        let claims = check(&k.sign(&good_claims()), &jwks).unwrap();
        assert_eq!(claims["sub"], "u-1");
        let cases = [
            (with("nonce", "other".into()), IdTokenError::Nonce),
            (with("aud", "someone-else".into()), IdTokenError::Audience),
            (
                with("aud", serde_json::json!(["issuer-client", "other"])),
                IdTokenError::Audience,
            ),
            (with("azp", "other".into()), IdTokenError::Audience),
            (
                with("iss", "https://evil.example".into()),
                IdTokenError::Issuer,
            ),
            (
                with("exp", (NOW.unix_timestamp() - SKEW_SECS - 1).into()),
                IdTokenError::Expired,
            ),
            (
                with("iat", (NOW.unix_timestamp() + SKEW_SECS + 10).into()),
                IdTokenError::Expired,
            ),
            (with("sub", "".into()), IdTokenError::Subject),
        ];
        for (claims, want) in cases {
            assert_eq!(check(&k.sign(&claims), &jwks), Err(want), "{claims}");
        }
        // Within the skew is fine; several audiences with azp naming us are fine.
        let mut c = with("exp", (NOW.unix_timestamp() - 10).into());
        c["aud"] = serde_json::json!(["issuer-client", "other"]);
        c["azp"] = "issuer-client".into();
        assert!(check(&k.sign(&c), &jwks).is_ok());
    }

    #[test]
    fn signatures_algorithms_and_keys() {
        let k = Signer::new("k1");
        let other = Signer::new("k1");
        let jwks = Jwks {
            keys: vec![k.public()],
        };
        // Signed by another key under the same kid.
        assert_eq!(
            check(&other.sign(&good_claims()), &jwks),
            Err(IdTokenError::Signature)
        );
        // A changed payload.
        let t = k.sign(&good_claims());
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(with("sub", "admin".into()).to_string());
        parts[1] = &forged;
        assert_eq!(check(&parts.join("."), &jwks), Err(IdTokenError::Signature));
        // alg none / HS256.
        for alg in ["none", "HS256"] {
            let h = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": alg}).to_string());
            let p = URL_SAFE_NO_PAD.encode(good_claims().to_string());
            assert_eq!(
                check(&format!("{h}.{p}."), &jwks),
                Err(IdTokenError::Algorithm)
            );
        }
        assert!(matches!(
            check("a.b", &jwks),
            Err(IdTokenError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_kid_until_the_rotated_jwks_is_known() {
        let old = Signer::new("k1");
        let new = Signer::new("k2");
        let cached = Jwks {
            keys: vec![old.public()],
        };
        let token = new.sign(&good_claims());
        assert_eq!(check(&token, &cached), Err(IdTokenError::UnknownKey));
        let refetched = Jwks::from_json(&serde_json::json!({"keys": [
            jwk_json(&old), jwk_json(&new), {"kty": "oct", "k": "c2VjcmV0"}
        ]}));
        assert_eq!(refetched.keys.len(), 2);
        assert!(check(&token, &refetched).is_ok());
    }

    #[test]
    fn rs256_verifies_from_the_modulus_and_exponent() {
        use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
        // A throwaway 2048-bit key made for this test (`openssl genpkey -algorithm RSA`, then
        // `openssl rsa -traditional -outform DER`).
        let key = RsaKeyPair::from_der(include_bytes!("testdata/rs256-test-key.der")).unwrap();
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
        let jwks = Jwks::from_json(&serde_json::json!({"keys": [{
            "kty": "RSA", "kid": "r1", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(&public.n),
            "e": URL_SAFE_NO_PAD.encode(&public.e),
        }]}));
        let sign = |claims: &serde_json::Value, alg: &str| {
            let header = serde_json::json!({"alg": alg, "kid": "r1"});
            let mut t = URL_SAFE_NO_PAD.encode(header.to_string());
            t.push('.');
            t.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
            let mut sig = vec![0; key.public().modulus_len()];
            key.sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                t.as_bytes(),
                &mut sig,
            )
            .unwrap();
            t.push('.');
            t.push_str(&URL_SAFE_NO_PAD.encode(sig));
            t
        };
        assert!(check(&sign(&good_claims(), "RS256"), &jwks).is_ok());
        assert_eq!(
            check(&sign(&with("nonce", "x".into()), "RS256"), &jwks),
            Err(IdTokenError::Nonce)
        );
        // An RSA key never verifies a token that claims ES256.
        assert_eq!(
            check(&sign(&good_claims(), "ES256"), &jwks),
            Err(IdTokenError::UnknownKey)
        );
    }

    fn jwk_json(s: &Signer) -> serde_json::Value {
        let Key::P256 { point, .. } = s.public() else {
            unreachable!()
        };
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "kid": s.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        })
    }
}
