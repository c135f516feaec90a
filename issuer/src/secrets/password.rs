//! Password hashing for local accounts: argon2id with the crate's recommended parameters.
//!
//! Hashing is deliberately slow, so async callers run it on a blocking thread.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::secrets::secret::{random_bytes, Secret};

/// Hashing failed (only on invalid parameters or a corrupt stored hash).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct Error(String);

impl Error {
    /// A hashing task that panicked or was cancelled.
    #[must_use]
    pub fn from_join(e: &tokio::task::JoinError) -> Self {
        Self(e.to_string())
    }
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &Secret) -> Result<String, Error> {
    let salt = SaltString::encode_b64(&random_bytes(16)).map_err(|e| Error(e.to_string()))?;
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error(e.to_string()))
}

/// Whether `password` matches `phc`. A corrupt stored hash is a mismatch, never a panic.
#[must_use]
pub fn verify(phc: &str, password: &Secret) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
    })
}

/// A valid hash of a random password, verified against when the account does not exist so that
/// "no such user" and "wrong password" take the same time.
pub fn dummy_hash() -> Result<String, Error> {
    hash(&crate::secrets::secret::random_token(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let pw = Secret::new("correct horse");
        let h = hash(&pw).unwrap_or_else(|e| panic!("{e}"));
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, &pw));
        assert!(!verify(&h, &Secret::new("wrong")));
        assert!(!verify("not a hash", &pw));
    }
}
