//! A registered machine's key (ECDSA P-256) and the client assertion it signs (RFC 7523,
//! `private_key_jwt`): what proves a machine to the issuer when no CI platform vouches for it.
//! Key generation for `machine keygen` is here too, so that the key format lives in one place.
//! Neither the key nor an assertion is ever printed: `Debug` says `[redacted]`.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};

use crate::base::secret::Secret;

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` (`id-ecPublicKey`, `prime256v1`, a 66-byte
/// bit string); the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// How long an assertion is valid (the issuer accepts at most 5 minutes).
pub(crate) const ASSERTION_LIFETIME_SECS: i64 = 60;

/// Why a key file's content is not a usable machine key. Never quotes the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// No `-----BEGIN PRIVATE KEY-----` block.
    #[error("it holds no PKCS#8 PEM block (-----BEGIN PRIVATE KEY-----){}", if *sec1 { "; it is an `EC PRIVATE KEY`: convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`" } else { "" })]
    NotPem {
        /// Whether it is a SEC1 `EC PRIVATE KEY` instead.
        sec1: bool,
    },
    /// The block is not base64.
    #[error("its PEM block is not valid base64")]
    Base64,
    /// The DER is not a P-256 PKCS#8 key *ring* accepts.
    #[error("it is not an ECDSA P-256 private key in PKCS#8 ({0})")]
    Rejected(String),
    /// The system's random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// A machine's signing key.
pub(crate) struct MachineKey {
    pair: EcdsaKeyPair,
}

impl fmt::Debug for MachineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MachineKey([redacted])")
    }
}

/// A new key: its private PKCS#8 PEM (a secret) and its public SPKI PEM.
pub(crate) struct NewKey {
    /// `-----BEGIN PRIVATE KEY-----`.
    pub(crate) private_pem: Secret,
    /// `-----BEGIN PUBLIC KEY-----`.
    pub(crate) public_pem: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("private_pem", &self.private_pem)
            .field("public_pem", &self.public_pem)
            .finish()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

impl MachineKey {
    /// Generates a P-256 key pair (`machine keygen`).
    pub(crate) fn generate() -> Result<NewKey, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Random)?;
        let key = Self::from_der(pkcs8.as_ref())?;
        Ok(NewKey {
            private_pem: Secret::new(pem("PRIVATE KEY", pkcs8.as_ref())),
            public_pem: key.public_key_pem(),
        })
    }

    /// Reads a PKCS#8 PEM P-256 private key (what `machine keygen` and `openssl genpkey
    /// -algorithm EC -pkeyopt ec_paramgen_curve:P-256` write).
    pub(crate) fn from_pem(text: &[u8]) -> Result<Self, KeyError> {
        let text = String::from_utf8_lossy(text);
        let begin = "-----BEGIN PRIVATE KEY-----";
        let end = "-----END PRIVATE KEY-----";
        let body = text
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(body, _)| body);
        let Some(body) = body else {
            return Err(KeyError::NotPem {
                sec1: text.contains("-----BEGIN EC PRIVATE KEY-----"),
            });
        };
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(b64).map_err(|_| KeyError::Base64)?;
        Self::from_der(&der)
    }

    fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map(|pair| Self { pair })
            .map_err(|e| KeyError::Rejected(e.to_string()))
    }

    /// The public key as `SubjectPublicKeyInfo` PEM, what `credential-issuer machine add
    /// --public-key` reads.
    pub(crate) fn public_key_pem(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.pair.public_key().as_ref());
        pem("PUBLIC KEY", &der)
    }

    /// The client assertion of `machine` for the token endpoint `audience` at `now`: ES256,
    /// `iss` = `sub` = the machine, `exp` a minute later, a random 16-byte `jti`.
    pub(crate) fn assertion(
        &self,
        machine: &str,
        audience: &str,
        now: i64,
    ) -> Result<Secret, KeyError> {
        let rng = SystemRandom::new();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti).map_err(|_| KeyError::Random)?;
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT"});
        let claims = serde_json::json!({
            "iss": machine,
            "sub": machine,
            "aud": audience,
            "iat": now,
            "exp": now.saturating_add(ASSERTION_LIFETIME_SECS),
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&rng, signing_input.as_bytes())
            .map_err(|_| KeyError::Random)?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )))
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    use super::*;

    fn spki_point(public_pem: &str) -> Vec<u8> {
        let body: String = public_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(der.len(), 91);
        assert_eq!(der[..26], P256_SPKI_PREFIX);
        der[26..].to_vec()
    }

    #[test]
    fn an_assertion_verifies_with_the_public_key_and_has_the_claims() {
        let new = MachineKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert!(new.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(format!("{new:?}").matches("[redacted]").count(), 1);
        let key = MachineKey::from_pem(new.private_pem.expose().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{key:?}"), "MachineKey([redacted])");
        assert_eq!(key.public_key_pem(), new.public_pem);
        let a = key
            .assertion("deploy-bot", "https://issuer.example/oauth/token", 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{a:?}"), "[redacted]");
        let parts: Vec<&str> = a.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, spki_point(&new.public_pem));
        let sig = URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap_or_else(|e| panic!("{e}"));
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap_or_else(|_| panic!("the signature does not verify"));
        let decode = |part: &str| -> serde_json::Value {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .unwrap_or_else(|e| panic!("{e}"));
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            decode(parts[0]),
            serde_json::json!({"alg": "ES256", "typ": "JWT"})
        );
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "deploy-bot");
        assert_eq!(claims["sub"], "deploy-bot");
        assert_eq!(claims["aud"], "https://issuer.example/oauth/token");
        assert_eq!(claims["iat"], 1000);
        assert_eq!(claims["exp"], 1060);
        let jti = URL_SAFE_NO_PAD
            .decode(claims["jti"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(jti.len(), 16);
        // A tampered payload does not verify.
        let other = key
            .assertion("deploy-bot", "https://issuer.example/oauth/token", 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(other.expose(), a.expose(), "a fresh jti each time");
    }

    #[test]
    fn other_key_formats_are_refused_with_a_reason() {
        assert!(matches!(
            MachineKey::from_pem(
                b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
            ),
            Err(KeyError::NotPem { sec1: true })
        ));
        assert!(matches!(
            MachineKey::from_pem(b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n"),
            Err(KeyError::Base64)
        ));
        assert!(matches!(
            MachineKey::from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(KeyError::Rejected(_))
        ));
    }

    /// A key made by OpenSSL, as the contract's operators will make them, loads and signs.
    #[test]
    fn an_openssl_p256_key_loads() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("k.pem");
        let made = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&path)
            .output();
        let Ok(out) = made else {
            panic!("openssl is not installed: apt-get install openssl");
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read(&path).unwrap_or_default();
        let key = MachineKey::from_pem(&text).unwrap_or_else(|e| panic!("{e}"));
        // What openssl says the public key is, is what we print.
        let public = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&public.stdout),
            key.public_key_pem()
        );
    }
}
