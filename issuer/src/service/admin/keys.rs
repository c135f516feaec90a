//! `keys rotate` and `keys list`: the signing keys, in their directory or in the database.

use std::sync::Arc;

use time::OffsetDateTime;

use super::Error;
use crate::config::Config;
use crate::signing::{KeyInfo, KeySource};
use crate::store::Store;

/// Where `keys rotate` and `keys list` act with `[signing] keys = "database"`: the keys in
/// `store`, opened with the encryption key file. The file must exist already: it is never
/// created here, since a new key would not open the keys sealed with the one the replicas
/// share.
pub fn database_key_source(config: &Config, store: &Store) -> Result<KeySource, Error> {
    let sealer = Arc::new(config.sealer(false)?);
    Ok(KeySource::Database {
        store: store.clone(),
        sealer,
    })
}

/// `keys rotate`: adds a key that signs from now on. Older keys stay published (and stored)
/// for [`Config::key_retention`], so every token they signed keeps verifying; running issuers
/// pick the new key up at their next reload.
pub async fn rotate_keys(
    source: &KeySource,
    config: &Config,
    now: OffsetDateTime,
) -> Result<KeyInfo, Error> {
    Ok(source.rotate(now, config.key_retention()).await?)
}

/// `keys list`: the stored keys, oldest first, each read and checked.
pub async fn list_keys(source: &KeySource) -> Result<Vec<KeyInfo>, Error> {
    Ok(source.list().await?)
}
