//! Encryption at rest for the few secrets the issuer must read back later (an upstream
//! provider's refresh token, a TOTP seed): AES-256-GCM under one key kept outside the database.
//!
//! Everything else secret (device codes, user codes, refresh tokens, web session ids,
//! passwords) is only ever stored hashed; this module exists for what cannot be.
//!
//! A sealed value is `v1.<key id>.<base64url(nonce || ciphertext || tag)>`. The caller passes a
//! *context* string (for example `totp:<user id>`) that is authenticated but not stored, so a
//! ciphertext copied into another row or column does not open. The key file holds 32 random
//! bytes, is created 0600 on first start (`<data dir>/seal.key`), and can be given instead by
//! the operator (a mounted Kubernetes Secret, for several replicas sharing one database).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use crate::secrets::private_file;
use crate::secrets::secret::Secret;

const KEY_LEN: usize = 32;
const VERSION: &str = "v1";

/// Why sealing or opening failed. Never carries the plaintext or the key.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be read or created.
    #[error("cannot read or create the encryption key file {path}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold exactly 32 bytes (raw, or base64 of them).
    #[error("the encryption key file {path} must hold 32 random bytes (raw or base64); it holds something else")]
    KeyLength {
        /// The file.
        path: PathBuf,
    },
    /// The key given in the environment is not base64 of 32 bytes.
    #[error("{variable} must be the base64 of 32 random bytes (`openssl rand -base64 32`); it holds something else")]
    KeyText {
        /// The environment variable.
        variable: &'static str,
    },
    /// The sealed value was made with another key (the key file was replaced).
    #[error("the value was encrypted with key {found}, but the issuer has key {expected}; restore the old encryption key file")]
    WrongKey {
        /// Key id in the value.
        found: String,
        /// Key id loaded.
        expected: String,
    },
    /// The value is not a sealed value, was altered, or belongs to another context.
    #[error("an encrypted value in the database is damaged or does not belong where it was found")]
    Corrupt,
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Seals and opens values under the issuer's encryption key.
pub struct Sealer {
    key: LessSafeKey,
    key_id: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer over 32 key bytes.
    #[must_use]
    pub fn from_key(bytes: &[u8; KEY_LEN]) -> Self {
        // `new` fails only for a wrong key length, which the type rules out.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 key is 32 bytes");
        let id = digest::digest(&digest::SHA256, bytes);
        Self {
            key: LessSafeKey::new(unbound),
            key_id: crate::secrets::secret::hex(&id.as_ref()[..4]),
            rng: SystemRandom::new(),
        }
    }

    /// Loads the key from `path`, creating it (0600, 32 random bytes) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let io = |source| SealError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => Self::parse_key(path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0_u8; KEY_LEN];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| SealError::Random)?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    private_file::create_private_dir(dir).map_err(io)?;
                }
                private_file::write(path, &key, private_file::PRIVATE_FILE_MODE).map_err(io)?;
                Ok(Self::from_key(&key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Loads an existing key file: 32 raw bytes, or their standard/url-safe base64 (what a
    /// Kubernetes Secret or `openssl rand -base64 32` produces).
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let bytes = std::fs::read(path).map_err(|source| SealError::KeyFile {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_key(path, &bytes)
    }

    fn parse_key(path: &Path, bytes: &[u8]) -> Result<Self, SealError> {
        if let Ok(key) = <[u8; KEY_LEN]>::try_from(bytes) {
            return Ok(Self::from_key(&key));
        }
        let text = std::str::from_utf8(bytes).unwrap_or("").trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .ok()
            .and_then(|d| <[u8; KEY_LEN]>::try_from(d.as_slice()).ok());
        decoded
            .map(|k| Self::from_key(&k))
            .ok_or_else(|| SealError::KeyLength {
                path: path.to_owned(),
            })
    }

    /// The key given as text (base64 of 32 bytes) in the environment variable `variable`.
    pub fn from_text(variable: &'static str, text: &str) -> Result<Self, SealError> {
        Self::parse_key(Path::new(variable), text.as_bytes())
            .map_err(|_| SealError::KeyText { variable })
    }

    /// Short public id of the key (first bytes of its SHA-256), stored with each value.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts `plaintext`, binding it to `context`.
    pub fn seal(&self, plaintext: &Secret, context: &str) -> Result<String, SealError> {
        let mut nonce = [0_u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut buf = plaintext.expose().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Corrupt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(format!(
            "{VERSION}.{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Decrypts a value made by [`Sealer::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Corrupt);
        };
        if kid != self.key_id {
            return Err(SealError::WrongKey {
                found: kid.chars().take(16).collect(),
                expected: self.key_id.clone(),
            });
        }
        let mut raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Corrupt)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let mut ct = raw.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| SealError::Corrupt)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut ct)
            .map_err(|_| SealError::Corrupt)?;
        String::from_utf8(plain.to_vec())
            .map(Secret::new)
            .map_err(|_| SealError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let s = Sealer::from_key(&[7; 32]);
        let v = s.seal(&Secret::new("refresh-xyz"), "upstream:s1").unwrap();
        assert!(v.starts_with("v1."), "{v}");
        assert!(!v.contains("refresh-xyz"));
        assert_eq!(s.open(&v, "upstream:s1").unwrap().expose(), "refresh-xyz");
        // Another row's context does not open it.
        assert!(matches!(s.open(&v, "upstream:s2"), Err(SealError::Corrupt)));
        // Two seals of the same value differ (fresh nonce).
        assert_ne!(
            v,
            s.seal(&Secret::new("refresh-xyz"), "upstream:s1").unwrap()
        );
    }

    #[test]
    fn tampering_and_wrong_keys_are_detected() {
        let s = Sealer::from_key(&[7; 32]);
        let v = s.seal(&Secret::new("seed"), "c").unwrap();
        let mut bytes = v.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(s.open(&tampered, "c"), Err(SealError::Corrupt)));
        let other = Sealer::from_key(&[8; 32]);
        assert!(matches!(
            other.open(&v, "c"),
            Err(SealError::WrongKey { .. })
        ));
        for junk in ["", "v1", "v2.x.y", "v1.x", "v1.zz.!!"] {
            assert!(s.open(junk, "c").is_err(), "{junk:?}");
        }
    }

    #[test]
    fn key_file_is_created_private_and_read_back_in_any_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/seal.key");
        let a = Sealer::load_or_create(&path).unwrap();
        let b = Sealer::load_or_create(&path).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let raw = std::fs::read(&path).unwrap();
        let b64 = dir.path().join("b64.key");
        std::fs::write(
            &b64,
            format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode(&raw)
            ),
        )
        .unwrap();
        assert_eq!(Sealer::load(&b64).unwrap().key_id(), a.key_id());
        let short = dir.path().join("short.key");
        std::fs::write(&short, b"too short").unwrap();
        let err = Sealer::load(&short).unwrap_err().to_string();
        assert!(err.contains("32 random bytes"), "{err}");
    }
}
