//! The keyring backend: one keyring item per entry (service `kubectl-credential`, account = the
//! key's hex), in Secret Service on Linux, the Keychain on macOS, Credential Manager on Windows.
//! A keyring that cannot be used is an error, never a silent switch to files.

use super::{CacheError, CacheKey, SERVICE};

/// The OS keyring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyringStore;

impl KeyringStore {
    fn entry(key: &CacheKey) -> Result<keyring::Entry, CacheError> {
        keyring::Entry::new(SERVICE, key.as_hex()).map_err(CacheError::KeyringUnavailable)
    }

    /// The stored text under `key`; `None` when there is no item, or its secret is not UTF-8.
    pub(crate) fn load(key: &CacheKey) -> Result<Option<String>, CacheError> {
        map_read(Self::entry(key)?.get_password())
    }

    /// Creates or replaces the item under `key`.
    pub(crate) fn store(key: &CacheKey, contents: &str) -> Result<(), CacheError> {
        Self::entry(key)?
            .set_password(contents)
            .map_err(CacheError::KeyringUnavailable)
    }

    /// Proves that the keyring accepts items, by writing and deleting a probe item. A locked
    /// Secret Service collection answers a search with "no such item" rather than an error, so
    /// a miss alone cannot tell "not logged in" from "cannot store anything"; this can.
    pub(crate) fn probe_writable() -> Result<(), CacheError> {
        let probe =
            keyring::Entry::new(SERVICE, "write-probe").map_err(CacheError::KeyringUnavailable)?;
        probe
            .set_password("probe")
            .map_err(CacheError::KeyringUnavailable)?;
        match probe.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(CacheError::KeyringUnavailable(e)),
        }
    }

    /// Deletes the item under `key`; whether there was one.
    pub(crate) fn delete(key: &CacheKey) -> Result<bool, CacheError> {
        match Self::entry(key)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(CacheError::KeyringUnavailable(e)),
        }
    }
}

/// A missing item is a miss; an item that is not text is a corrupt entry, also a miss; anything
/// else means the keyring itself is not usable.
fn map_read(result: keyring::Result<String>) -> Result<Option<String>, CacheError> {
    match result {
        Ok(text) => Ok(Some(text)),
        Err(keyring::Error::NoEntry | keyring::Error::BadEncoding(_)) => Ok(None),
        Err(e) => Err(CacheError::KeyringUnavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_garbled_items_are_misses_other_failures_are_errors() {
        assert_eq!(map_read(Err(keyring::Error::NoEntry)).ok(), Some(None));
        assert_eq!(
            map_read(Err(keyring::Error::BadEncoding(vec![0xff]))).ok(),
            Some(None)
        );
        assert_eq!(
            map_read(Ok("x".to_owned())).ok(),
            Some(Some("x".to_owned()))
        );
        for err in [
            keyring::Error::NoStorageAccess("locked".into()),
            keyring::Error::PlatformFailure("no D-Bus session".into()),
        ] {
            assert!(matches!(
                map_read(Err(err)),
                Err(CacheError::KeyringUnavailable(_))
            ));
        }
    }
}
