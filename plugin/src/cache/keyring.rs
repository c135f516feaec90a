//! The keyring backend: entries in Secret Service on Linux, the Keychain on macOS, Credential
//! Manager on Windows (service `kubectl-credential`, account = the key's hex). A keyring that
//! cannot be used is an error, never a silent switch to files.
//!
//! Windows Credential Manager refuses a secret over 2,560 bytes (and stores text as UTF-16, so
//! that is 1,280 ASCII characters), and a person in many groups gets a token larger than that.
//! So a value that does not fit in one item is split, on every platform alike (so that the
//! splitting is exercised wherever the tests run):
//!
//! - the item under the key's own account holds either the value itself (a JSON entry, which
//!   starts with `{`), or a header `kubectl-credential chunks v1 N DIGEST`;
//! - the parts are items `KEY~DIGEST~1` .. `KEY~DIGEST~N`, where `DIGEST` is the first 16 hex
//!   digits of the value's SHA-256. Naming parts after the value means a new value never
//!   overwrites the parts an older header still points at: a reader sees the old value or the
//!   new one, and a missing or mismatched part (a write that did not finish) reads as a miss.
//!
//! Writing stores the new parts, then the header, then deletes the old value's parts; a value
//! already stored is not written again. Deleting removes the header and its parts.

use std::fmt;
use std::sync::Arc;

use ring::digest;

use super::{CacheError, CacheKey, HEX, SERVICE};

/// The largest secret one keyring item may hold, in the bytes the platform stores.
pub(crate) const MAX_ITEM_BYTES: usize = 2560;
/// The most parts a value may have: a value larger than this many items is not ours.
const MAX_PARTS: usize = 32;
/// How a split value's header starts.
const HEADER_PREFIX: &str = "kubectl-credential chunks v1 ";

/// Opens the keyring item for an account.
type Opener = dyn Fn(&str) -> keyring::Result<keyring::Entry> + Send + Sync;

/// The OS keyring.
#[derive(Clone)]
pub(crate) struct KeyringStore {
    open: Arc<Opener>,
}

impl fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyringStore")
    }
}

impl Default for KeyringStore {
    fn default() -> Self {
        Self::with_opener(|account| keyring::Entry::new(SERVICE, account))
    }
}

/// A stored value as the key's own item describes it.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The value itself.
    Whole(String),
    /// A header: `parts` items named after `digest`.
    Split { parts: usize, digest: String },
}

impl KeyringStore {
    /// A store whose items come from `open` (the OS keyring, or a test double).
    pub(crate) fn with_opener(
        open: impl Fn(&str) -> keyring::Result<keyring::Entry> + Send + Sync + 'static,
    ) -> Self {
        Self {
            open: Arc::new(open),
        }
    }

    fn item(&self, account: &str) -> Result<keyring::Entry, CacheError> {
        (self.open)(account).map_err(CacheError::KeyringUnavailable)
    }

    fn read_item(&self, account: &str) -> Result<Option<String>, CacheError> {
        map_read(self.item(account)?.get_password())
    }

    fn write_item(&self, account: &str, text: &str) -> Result<(), CacheError> {
        self.item(account)?
            .set_password(text)
            .map_err(CacheError::KeyringUnavailable)
    }

    fn delete_item(&self, account: &str) -> Result<bool, CacheError> {
        match self.item(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(CacheError::KeyringUnavailable(e)),
        }
    }

    fn head(&self, key: &CacheKey) -> Result<Option<Head>, CacheError> {
        Ok(self.read_item(key.as_hex())?.map(parse_head))
    }

    /// The stored text under `key`; `None` when there is no item, its secret is not UTF-8, or
    /// a split value is incomplete or does not match its header.
    pub(crate) fn load(&self, key: &CacheKey) -> Result<Option<String>, CacheError> {
        match self.head(key)? {
            None => Ok(None),
            Some(Head::Whole(text)) => Ok(Some(text)),
            Some(Head::Split { parts, digest }) => {
                let mut value = String::new();
                for i in 1..=parts {
                    let Some(part) = self.read_item(&part_account(key, &digest, i))? else {
                        return Ok(None);
                    };
                    value.push_str(&part);
                }
                Ok((value_digest(&value) == digest).then_some(value))
            }
        }
    }

    /// Creates or replaces the value under `key`, split into parts if it does not fit in one
    /// item. Writes nothing when the same value is already stored.
    pub(crate) fn store(&self, key: &CacheKey, contents: &str) -> Result<(), CacheError> {
        let old = self.head(key)?;
        let parts = split(contents);
        let new_head = if parts.len() == 1 {
            Head::Whole(contents.to_owned())
        } else {
            Head::Split {
                parts: parts.len(),
                digest: value_digest(contents),
            }
        };
        if old.as_ref() == Some(&new_head) && self.load(key)?.as_deref() == Some(contents) {
            return Ok(());
        }
        match &new_head {
            Head::Whole(text) => self.write_item(key.as_hex(), text)?,
            Head::Split { digest, .. } => {
                for (i, part) in parts.iter().enumerate() {
                    self.write_item(&part_account(key, digest, i + 1), part)?;
                }
                self.write_item(key.as_hex(), &header(parts.len(), digest))?;
            }
        }
        // The old value's parts, unless the new value reuses them (same digest).
        if let Some(Head::Split { parts, digest }) = old {
            if !matches!(&new_head, Head::Split { digest: d, .. } if *d == digest) {
                self.delete_parts(key, &digest, parts)?;
            }
        }
        Ok(())
    }

    fn delete_parts(&self, key: &CacheKey, digest: &str, parts: usize) -> Result<(), CacheError> {
        for i in 1..=parts {
            self.delete_item(&part_account(key, digest, i))?;
        }
        Ok(())
    }

    /// Proves that the keyring accepts items, by writing and deleting a probe item. A locked
    /// Secret Service collection answers a search with "no such item" rather than an error, so
    /// a miss alone cannot tell "not logged in" from "cannot store anything"; this can.
    pub(crate) fn probe_writable(&self) -> Result<(), CacheError> {
        let probe = self.item("write-probe")?;
        probe
            .set_password("probe")
            .map_err(CacheError::KeyringUnavailable)?;
        match probe.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(CacheError::KeyringUnavailable(e)),
        }
    }

    /// Deletes the value under `key` and all its parts; whether there was one.
    pub(crate) fn delete(&self, key: &CacheKey) -> Result<bool, CacheError> {
        if let Some(Head::Split { parts, digest }) = self.head(key)? {
            self.delete_parts(key, &digest, parts)?;
        }
        self.delete_item(key.as_hex())
    }
}

/// What the key's own item says.
fn parse_head(text: String) -> Head {
    let split = text.strip_prefix(HEADER_PREFIX).and_then(|rest| {
        let (n, digest) = rest.split_once(' ')?;
        let parts: usize = n.parse().ok()?;
        let valid = (2..=MAX_PARTS).contains(&parts)
            && digest.len() == 16
            && digest.bytes().all(|b| HEX.contains(&b));
        valid.then(|| Head::Split {
            parts,
            digest: digest.to_owned(),
        })
    });
    split.unwrap_or(Head::Whole(text))
}

fn header(parts: usize, digest: &str) -> String {
    format!("{HEADER_PREFIX}{parts} {digest}")
}

fn part_account(key: &CacheKey, digest: &str, i: usize) -> String {
    format!("{}~{digest}~{i}", key.as_hex())
}

/// The first 16 hex digits of the SHA-256 of `value`.
fn value_digest(value: &str) -> String {
    let hash = digest::digest(&digest::SHA256, value.as_bytes());
    let mut hex = String::with_capacity(16);
    for byte in &hash.as_ref()[..8] {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

/// How many bytes the platform stores for `text`: Windows keeps UTF-16.
fn stored_size(text: &str) -> usize {
    if cfg!(windows) {
        text.encode_utf16().count() * 2
    } else {
        text.len()
    }
}

/// `value` cut at character boundaries into pieces of at most [`MAX_ITEM_BYTES`] stored bytes
/// each (one piece when it fits).
fn split(value: &str) -> Vec<&str> {
    if stored_size(value) <= MAX_ITEM_BYTES {
        return vec![value];
    }
    let mut parts = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, c) in value.char_indices() {
        let len = stored_size(c.encode_utf8(&mut [0; 4]));
        if size + len > MAX_ITEM_BYTES {
            parts.push(&value[start..i]);
            start = i;
            size = 0;
        }
        size += len;
    }
    parts.push(&value[start..]);
    parts
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
pub(crate) mod tests {
    use std::any::Any;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use keyring::credential::CredentialApi;

    use super::*;

    /// Items shared by every entry the mock opens, and how many writes each account saw.
    #[derive(Debug, Default)]
    pub(crate) struct Items {
        pub(crate) secrets: BTreeMap<String, Vec<u8>>,
        pub(crate) writes: BTreeMap<String, usize>,
        /// Accounts whose next write fails (a write cut short).
        pub(crate) fail_writes_of: Vec<String>,
    }

    /// A keyring credential in the shared map, refusing secrets over 2,560 bytes as Windows
    /// Credential Manager does.
    #[derive(Debug)]
    struct Limited {
        account: String,
        items: Arc<Mutex<Items>>,
    }

    impl CredentialApi for Limited {
        fn set_secret(&self, secret: &[u8]) -> keyring::Result<()> {
            if secret.len() > MAX_ITEM_BYTES {
                return Err(keyring::Error::TooLong(
                    "secret".to_owned(),
                    u32::try_from(MAX_ITEM_BYTES).unwrap_or(u32::MAX),
                ));
            }
            let mut items = self.items.lock().unwrap_or_else(|e| panic!("{e}"));
            if items.fail_writes_of.contains(&self.account) {
                return Err(keyring::Error::PlatformFailure("cut short".into()));
            }
            *items.writes.entry(self.account.clone()).or_default() += 1;
            items.secrets.insert(self.account.clone(), secret.to_vec());
            Ok(())
        }

        fn get_secret(&self) -> keyring::Result<Vec<u8>> {
            let items = self.items.lock().unwrap_or_else(|e| panic!("{e}"));
            items
                .secrets
                .get(&self.account)
                .cloned()
                .ok_or(keyring::Error::NoEntry)
        }

        fn delete_credential(&self) -> keyring::Result<()> {
            let mut items = self.items.lock().unwrap_or_else(|e| panic!("{e}"));
            items
                .secrets
                .remove(&self.account)
                .map(|_| ())
                .ok_or(keyring::Error::NoEntry)
        }

        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    /// A store over the limited mock, and its items.
    pub(crate) fn limited_store() -> (KeyringStore, Arc<Mutex<Items>>) {
        let items = Arc::new(Mutex::new(Items::default()));
        let shared = Arc::clone(&items);
        let store = KeyringStore::with_opener(move |account| {
            Ok(keyring::Entry::new_with_credential(Box::new(Limited {
                account: account.to_owned(),
                items: Arc::clone(&shared),
            })))
        });
        (store, items)
    }

    fn key() -> CacheKey {
        CacheKey::new("https://i", "prod", "kubectl-credential", None)
    }

    fn big(n: usize, fill: char) -> String {
        let mut s = String::from("{");
        while s.len() < n {
            s.push(fill);
        }
        s
    }

    fn accounts(items: &Arc<Mutex<Items>>) -> Vec<String> {
        let items = items.lock().unwrap_or_else(|e| panic!("{e}"));
        items.secrets.keys().cloned().collect()
    }

    #[test]
    fn the_mock_refuses_what_windows_refuses() {
        let (store, _) = limited_store();
        let item = store.item("x").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            item.set_password(&big(MAX_ITEM_BYTES + 1, 'a')),
            Err(keyring::Error::TooLong(..))
        ));
        assert!(item.set_password(&big(MAX_ITEM_BYTES, 'a')).is_ok());
    }

    #[test]
    fn small_values_are_one_item_large_ones_are_split_and_read_back() {
        let (store, items) = limited_store();
        store
            .store(&key(), "{\"small\":1}")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(accounts(&items), [key().as_hex().to_owned()]);
        assert_eq!(
            store.load(&key()).ok().flatten().as_deref(),
            Some("{\"small\":1}")
        );

        // Exactly at the limit: still one item. One byte more: split.
        let at_limit = big(MAX_ITEM_BYTES, 'a');
        store
            .store(&key(), &at_limit)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(accounts(&items).len(), 1);
        // Multi-byte characters are never cut in half.
        let large = format!("{}{}", big(6000, 'b'), "é".repeat(500));
        store
            .store(&key(), &large)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.load(&key()).ok().flatten(), Some(large.clone()));
        let stored = items.lock().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.secrets.len(), 4, "header + 3 parts");
        assert!(stored.secrets.values().all(|s| s.len() <= MAX_ITEM_BYTES));
        let head = String::from_utf8_lossy(&stored.secrets[key().as_hex()]).into_owned();
        assert!(
            head.starts_with("kubectl-credential chunks v1 3 "),
            "{head}"
        );
    }

    #[test]
    fn shrinking_and_deleting_leave_no_parts_behind() {
        let (store, items) = limited_store();
        store
            .store(&key(), &big(9000, 'a'))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(accounts(&items).len(), 5);
        // A different large value: new parts, the old ones gone.
        store
            .store(&key(), &big(6000, 'c'))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(accounts(&items).len(), 4);
        // Shrunk to one item: every part gone.
        store.store(&key(), "{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(accounts(&items), [key().as_hex().to_owned()]);
        store
            .store(&key(), &big(6000, 'd'))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(store.delete(&key()).unwrap_or_else(|e| panic!("{e}")));
        assert!(accounts(&items).is_empty());
        assert!(!store.delete(&key()).unwrap_or_else(|e| panic!("{e}")));
    }

    #[test]
    fn unchanged_values_are_not_written_again() {
        let (store, items) = limited_store();
        let value = big(6000, 'a');
        store
            .store(&key(), &value)
            .unwrap_or_else(|e| panic!("{e}"));
        let before = items.lock().map(|i| i.writes.clone()).unwrap_or_default();
        store
            .store(&key(), &value)
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .store(&key(), &value)
            .unwrap_or_else(|e| panic!("{e}"));
        let after = items.lock().map(|i| i.writes.clone()).unwrap_or_default();
        assert_eq!(before, after);
        store.store(&key(), "{}").unwrap_or_else(|e| panic!("{e}"));
        store.store(&key(), "{}").unwrap_or_else(|e| panic!("{e}"));
        let writes = items.lock().map(|i| i.writes.clone()).unwrap_or_default();
        assert_eq!(writes[key().as_hex()], 2, "header once, small value once");
    }

    #[test]
    fn a_split_write_cut_short_or_a_missing_part_reads_as_the_old_value_or_a_miss() {
        let (store, items) = limited_store();
        let old = big(6000, 'a');
        store.store(&key(), &old).unwrap_or_else(|e| panic!("{e}"));
        // The new value's second part cannot be written: the old value still reads.
        let new = big(6000, 'b');
        let digest = value_digest(&new);
        if let Ok(mut i) = items.lock() {
            i.fail_writes_of.push(part_account(&key(), &digest, 2));
        }
        assert!(store.store(&key(), &new).is_err());
        assert_eq!(store.load(&key()).ok().flatten(), Some(old.clone()));
        // A part of the stored value goes missing: a miss, not a crash or half a value.
        let old_digest = value_digest(&old);
        if let Ok(mut i) = items.lock() {
            i.secrets.remove(&part_account(&key(), &old_digest, 3));
        }
        assert_eq!(store.load(&key()).ok().flatten(), None);
        // A part replaced by something else: the digest does not match, a miss.
        store.store(&key(), &old).unwrap_or_else(|e| panic!("{e}"));
        if let Ok(mut i) = items.lock() {
            i.secrets
                .insert(part_account(&key(), &old_digest, 1), b"{tampered".to_vec());
        }
        assert_eq!(store.load(&key()).ok().flatten(), None);
    }

    #[test]
    fn headers_that_are_not_ours_read_as_plain_values() {
        for text in [
            "kubectl-credential chunks v1 1 0123456789abcdef",
            "kubectl-credential chunks v1 99 0123456789abcdef",
            "kubectl-credential chunks v1 2 0123",
            "kubectl-credential chunks v1 2 ../../../../etc/x",
        ] {
            assert_eq!(parse_head(text.to_owned()), Head::Whole(text.to_owned()));
        }
        assert_eq!(
            parse_head("kubectl-credential chunks v1 2 0123456789abcdef".to_owned()),
            Head::Split {
                parts: 2,
                digest: "0123456789abcdef".to_owned()
            }
        );
    }

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
