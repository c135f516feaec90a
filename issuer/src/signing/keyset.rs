//! The keys of a source as loaded in memory: which one signs, which are superseded, which are
//! still to come, and which of them are published at a given moment.
//!
//! Both key sources end here, so that the choice of the signing key and the retention rule are
//! written once.

use credential_shared::oauth::Jwk;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use time::OffsetDateTime;

use super::jwks::jwk_of;
use super::rotation::is_retired;
use super::{Error, KeyInfo};

/// A loaded key. Deliberately not `Debug`: it holds the private key.
pub(super) struct Key {
    pub(super) info: KeyInfo,
    pub(super) pair: EcdsaKeyPair,
    pub(super) jwk: Jwk,
}

/// The keys of a source at one moment. Keeping the active key apart makes "there is at least
/// one key" a property of the type.
pub(super) struct KeySet {
    /// Superseded keys, oldest first.
    pub(super) previous: Vec<Key>,
    /// The newest key whose time has come, the one that signs.
    pub(super) active: Key,
    /// Keys created for a time still to come, oldest first: published (and accepted) already,
    /// signing from their created time (see [`super::PUBLISH_BEFORE_SIGNING`]).
    pub(super) upcoming: Vec<Key>,
}

impl KeySet {
    /// The set of `keys` (oldest first) at `now`; `None` when there is none. The first key
    /// signs even if it was stamped in the future (there is nothing else to sign with).
    pub(super) fn from_keys(mut keys: Vec<Key>, now: OffsetDateTime) -> Option<Self> {
        let mut upcoming = Vec::new();
        while keys.len() > 1 && keys.last().is_some_and(|k| k.info.created_at > now) {
            upcoming.extend(keys.pop());
        }
        upcoming.reverse();
        let active = keys.pop()?;
        Some(Self {
            previous: keys,
            active,
            upcoming,
        })
    }

    /// Every key, oldest first.
    pub(super) fn infos(&self) -> impl Iterator<Item = &KeyInfo> {
        self.previous
            .iter()
            .chain(std::iter::once(&self.active))
            .chain(&self.upcoming)
            .map(|k| &k.info)
    }

    /// Whether an upcoming key's time has come by `now` (the set must be rebuilt).
    pub(super) fn due(&self, now: OffsetDateTime) -> bool {
        self.upcoming
            .first()
            .is_some_and(|k| k.info.created_at <= now)
    }

    /// The keys published at `now`: the active key first, then every older key superseded
    /// (the next newer key was created) less than `retain` ago, newest first, then the
    /// upcoming keys. `retain` is the longest token lifetime, so every unexpired token stays
    /// verifiable. The JWKS and the issuer's own verification both take their keys from here.
    pub(super) fn published(
        &self,
        now: OffsetDateTime,
        retain: std::time::Duration,
    ) -> impl Iterator<Item = &Key> {
        let previous = self
            .previous
            .iter()
            .enumerate()
            .rev()
            .filter(move |(i, _)| {
                let next = self.previous.get(i + 1).unwrap_or(&self.active);
                !is_retired(next.info.created_at, now, retain)
            })
            .map(|(_, k)| k);
        std::iter::once(&self.active)
            .chain(previous)
            .chain(&self.upcoming)
    }
}

/// What is wrong with a stored key's bytes; the caller names the file or row.
pub(super) enum KeyProblem {
    /// Not an ECDSA P-256 PKCS#8 key (`ring`'s reason).
    Invalid(String),
    /// A valid key, whose kid (given) is not the stored one.
    KidMismatch(String),
}

/// Parses PKCS#8 DER and checks that the key is the one `info` names.
pub(super) fn key_from_der(
    info: &KeyInfo,
    der: &[u8],
    rng: &SystemRandom,
) -> Result<Key, KeyProblem> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, rng)
        .map_err(|e| KeyProblem::Invalid(e.to_string()))?;
    let jwk = jwk_of(&pair)
        .ok_or_else(|| KeyProblem::Invalid("unexpected public key encoding".into()))?;
    if jwk.kid != info.kid {
        return Err(KeyProblem::KidMismatch(jwk.kid));
    }
    Ok(Key {
        info: info.clone(),
        pair,
        jwk,
    })
}

/// A new key: its PKCS#8 DER and its kid.
pub(super) fn generate(rng: &SystemRandom) -> Result<(ring::pkcs8::Document, String), Error> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|_| Error::KeyGeneration)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .map_err(|_| Error::KeyGeneration)?;
    let kid = jwk_of(&pair).ok_or(Error::KeyGeneration)?.kid;
    Ok((pkcs8, kid))
}
