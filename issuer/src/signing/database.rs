//! The database source: each key is a row of `signing_keys` (`kid`, `created_at`, the PKCS#8
//! DER sealed with the encryption key under a context naming the row's kid and time, so a
//! sealed key moved to another row does not open). Every replica on the database shares them.
//!
//! [`crate::store`] keeps the sealed bytes and never sees a key in the clear; sealing and
//! opening happen here. Only loading, creating and deleting live here; which key signs and
//! which are published is [`super::keyset`]'s.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use time::OffsetDateTime;

use super::keyset::{generate, key_from_der, Key, KeyProblem, KeySet};
use super::rotation::{next_created, retired, unix_seconds, PUBLISH_BEFORE_SIGNING};
use super::{Error, KeyInfo};
use crate::secrets::seal::{SealError, Sealer};
use crate::secrets::secret::Secret;
use crate::store::{Store, StoredSigningKey};

/// The key set of the database, creating a first key if there is none.
///
/// Replicas starting together must not each sign with a "first" key of their own: the first
/// key is inserted only into an empty table, and the table is read again afterwards, so every
/// replica signs with what the table holds (its newest key by created time, then kid), whoever
/// inserted it.
pub(super) async fn open(
    store: &Store,
    sealer: &Sealer,
    rng: &SystemRandom,
    now: OffsetDateTime,
) -> Result<KeySet, Error> {
    let mut rows = store.signing_keys().await.map_err(Error::Database)?;
    if rows.is_empty() {
        let (info, blob) = new_sealed_key(sealer, unix_seconds(now), rng)?;
        let inserted = store
            .insert_first_signing_key(&info.kid, info.created_at, &blob)
            .await
            .map_err(Error::Database)?;
        if inserted {
            tracing::info!(kid = %info.kid, "created first signing key in the database");
        }
        rows = store.signing_keys().await.map_err(Error::Database)?;
    }
    open_rows(&rows, sealer, rng, now)
}

/// The key set of the database if it differs from `current`; `None` if not.
///
/// Rows carry the kid, which is derived from the key and checked when it is loaded, so an
/// equal list of (kid, created) means equal keys and nothing is decrypted.
pub(super) async fn reload(
    store: &Store,
    sealer: &Sealer,
    current: &KeySet,
    rng: &SystemRandom,
    now: OffsetDateTime,
) -> Result<Option<KeySet>, Error> {
    let rows = store.signing_keys().await.map_err(Error::Database)?;
    let unchanged = current
        .infos()
        .map(|i| (i.kid.as_str(), i.created_at))
        .eq(rows.iter().map(|r| (r.kid.as_str(), r.created_at)));
    if unchanged && !current.due(now) {
        return Ok(None);
    }
    open_rows(&rows, sealer, rng, now).map(Some)
}

/// [`super::rotate`] for keys in the database: the new key is stamped
/// [`PUBLISH_BEFORE_SIGNING`] ahead, so every replica publishes it before any signs with it.
pub(super) async fn rotate(
    store: &Store,
    sealer: &Sealer,
    now: OffsetDateTime,
    retain: std::time::Duration,
) -> Result<KeyInfo, Error> {
    let rows = store.signing_keys().await.map_err(Error::Database)?;
    let mut infos: Vec<KeyInfo> = rows.iter().map(row_info).collect();
    let publish_first = now + PUBLISH_BEFORE_SIGNING;
    let (new, blob) = new_sealed_key(
        sealer,
        next_created(&infos, publish_first),
        &SystemRandom::new(),
    )?;
    store
        .insert_signing_key(&new.kid, new.created_at, &blob)
        .await
        .map_err(Error::Database)?;
    tracing::info!(kid = %new.kid, "created signing key in the database");
    infos.push(new.clone());
    for old in retired(&infos, now, retain) {
        // `false`: a concurrent rotation got there first.
        if store
            .delete_signing_key(&old.kid)
            .await
            .map_err(Error::Database)?
        {
            tracing::info!(kid = %old.kid, "deleted retired signing key from the database");
        }
    }
    Ok(new)
}

/// The keys in the database, oldest first, each decrypted and checked.
pub(super) async fn list(store: &Store, sealer: &Sealer) -> Result<Vec<KeyInfo>, Error> {
    let rows = store.signing_keys().await.map_err(Error::Database)?;
    let rng = SystemRandom::new();
    rows.iter()
        .map(|row| open_stored(row, sealer, &rng).map(|k| k.info))
        .collect()
}

/// The context a key row is sealed under: its kid and created time, so that a sealed key
/// copied into another row (or given another time, which would change which key signs) does
/// not open.
pub(super) fn key_context(kid: &str, created_at: OffsetDateTime) -> String {
    format!("signing-key:{kid}:{}", created_at.unix_timestamp())
}

/// Generates a key for the database: its info and its sealed PKCS#8 DER (the sealed text's
/// bytes; the DER is base64-encoded first because sealed values are text).
pub(super) fn new_sealed_key(
    sealer: &Sealer,
    created: i64,
    rng: &SystemRandom,
) -> Result<(KeyInfo, Vec<u8>), Error> {
    let (pkcs8, kid) = generate(rng)?;
    let created_at =
        OffsetDateTime::from_unix_timestamp(created).map_err(|_| Error::KeyGeneration)?;
    let plain = Secret::new(STANDARD.encode(pkcs8.as_ref()));
    let text = sealer
        .seal(&plain, &key_context(&kid, created_at))
        .map_err(Error::Seal)?;
    let info = KeyInfo {
        kid,
        created_at,
        path: None,
    };
    Ok((info, text.into_bytes()))
}

fn row_info(row: &StoredSigningKey) -> KeyInfo {
    KeyInfo {
        kid: row.kid.clone(),
        created_at: row.created_at,
        path: None,
    }
}

/// Decrypts and checks one key row.
fn open_stored(row: &StoredSigningKey, sealer: &Sealer, rng: &SystemRandom) -> Result<Key, Error> {
    let unseal = |source| Error::Unseal {
        kid: row.kid.clone(),
        source,
    };
    let text = std::str::from_utf8(&row.sealed_key).map_err(|_| unseal(SealError::Corrupt))?;
    let plain = sealer
        .open(text, &key_context(&row.kid, row.created_at))
        .map_err(unseal)?;
    let der = STANDARD
        .decode(plain.expose())
        .map_err(|_| unseal(SealError::Corrupt))?;
    drop(plain);
    key_from_der(&row_info(row), &der, rng).map_err(|problem| match problem {
        KeyProblem::Invalid(reason) => Error::InvalidStoredKey {
            kid: row.kid.clone(),
            reason,
        },
        KeyProblem::KidMismatch(actual) => Error::StoredKidMismatch {
            kid: row.kid.clone(),
            actual,
        },
    })
}

/// The key set of the rows (oldest first), each decrypted and checked.
fn open_rows(
    rows: &[StoredSigningKey],
    sealer: &Sealer,
    rng: &SystemRandom,
    now: OffsetDateTime,
) -> Result<KeySet, Error> {
    let keys = rows
        .iter()
        .map(|row| open_stored(row, sealer, rng))
        .collect::<Result<Vec<_>, _>>()?;
    KeySet::from_keys(keys, now).ok_or(Error::NoStoredKeys)
}
