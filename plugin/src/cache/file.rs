//! The file backend, for machines without a usable keyring: one JSON file per entry in a
//! directory only the user can enter, each file readable only by the user and replaced
//! atomically, so a concurrent reader sees the old entry or the new one, never half of one.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::{CacheError, CacheKey, SERVICE};

/// Larger files are not entries (an entry is about 2 KiB); reading stops there.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// `{cache_dir}/kubectl-credential/tokens/{key}.json`.
#[derive(Debug, Clone)]
pub(crate) struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// The store under the user's cache directory (`XDG_CACHE_HOME`, else `~/.cache`, on Linux).
    pub(crate) fn open_default() -> Result<Self, CacheError> {
        let base = directories::BaseDirs::new().ok_or(CacheError::NoCacheDir)?;
        Ok(Self::new(base.cache_dir().join(SERVICE).join("tokens")))
    }

    /// A store in `dir` (created, mode 0700, on the first write).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory holding the entries.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.as_hex()))
    }

    /// The stored text under `key`; `None` when absent, too large or not UTF-8.
    pub(crate) fn load(&self, key: &CacheKey) -> Result<Option<String>, CacheError> {
        let path = self.path(key);
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Read { path, source }),
        };
        let mut bytes = Vec::with_capacity(4096);
        if let Err(source) = file.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut bytes) {
            return Err(CacheError::Read { path, source });
        }
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Ok(None);
        }
        Ok(String::from_utf8(bytes).ok())
    }

    /// Replaces the entry under `key` with `contents`: a 0600 temporary file in the same
    /// directory, written and synced, then renamed over the old one.
    pub(crate) fn store(&self, key: &CacheKey, contents: &str) -> Result<(), CacheError> {
        self.ensure_dir()?;
        let path = self.path(key);
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            key.as_hex(),
            std::process::id(),
            unique_suffix()
        ));
        let result =
            write_new_private(&tmp, contents.as_bytes()).and_then(|()| fs::rename(&tmp, &path));
        if let Err(source) = result {
            // The temporary file is ours and useless now; failing to remove it changes nothing.
            let _ = fs::remove_file(&tmp);
            return Err(CacheError::Write { path, source });
        }
        sync_dir(&self.dir);
        Ok(())
    }

    /// Deletes the entry under `key`; whether there was one.
    pub(crate) fn delete(&self, key: &CacheKey) -> Result<bool, CacheError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(CacheError::Write { path, source }),
        }
    }

    /// The keys of every entry in the directory, sorted; none when it does not exist. Files
    /// that are not `{64 hex digits}.json` (temporary files, strangers) are ignored.
    pub(crate) fn keys(&self) -> Result<Vec<CacheKey>, CacheError> {
        let dir = match fs::read_dir(&self.dir) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CacheError::Read {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut keys = Vec::new();
        for item in dir {
            let item = item.map_err(|source| CacheError::Read {
                path: self.dir.clone(),
                source,
            })?;
            let name = item.file_name();
            let key = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(CacheKey::from_hex);
            keys.extend(key);
        }
        keys.sort();
        Ok(keys)
    }

    /// Creates the directory (and its `kubectl-credential` parent) with mode 0700, and
    /// tightens them to 0700 if they already existed with looser modes.
    pub(crate) fn ensure_dir(&self) -> Result<(), CacheError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.dir)
            .map_err(|source| CacheError::Write {
                path: self.dir.clone(),
                source,
            })?;
        #[cfg(unix)]
        for dir in [Some(self.dir.as_path()), self.dir.parent()]
            .into_iter()
            .flatten()
        {
            use std::os::unix::fs::PermissionsExt as _;
            let meta = fs::metadata(dir).map_err(|source| CacheError::Write {
                path: dir.to_owned(),
                source,
            })?;
            if meta.permissions().mode() & 0o777 != 0o700 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
                    CacheError::Write {
                        path: dir.to_owned(),
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }
}

/// Creates `path` (which must not exist) readable and writable only by the user, and writes
/// and syncs `bytes`.
pub(super) fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the rename durable. Best effort: the entry is already in place either way.
pub(super) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Distinguishes temporary files of one process (nanoseconds of the clock).
pub(super) fn unique_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777)
    }

    fn key(n: &str) -> CacheKey {
        CacheKey::new("https://i", n, "c", None)
    }

    #[test]
    fn writes_private_files_in_a_private_directory() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let parent = tmp.path().join(SERVICE);
        // A pre-existing, too-open parent is tightened.
        fs::create_dir(&parent).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let store = FileStore::new(parent.join("tokens"));
        assert_eq!(store.load(&key("a")).ok(), Some(None));

        store
            .store(&key("a"), "{\"v\":1}")
            .unwrap_or_else(|e| panic!("{e}"));
        let file = store.dir().join(format!("{}.json", key("a").as_hex()));
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&parent), 0o700);
        assert_eq!(
            store.load(&key("a")).ok().flatten().as_deref(),
            Some("{\"v\":1}")
        );
    }

    #[test]
    fn replaces_atomically_and_leaves_no_temporary_files() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = FileStore::new(tmp.path().join("tokens"));
        store
            .store(&key("a"), "first")
            .unwrap_or_else(|e| panic!("{e}"));
        let file = store.dir().join(format!("{}.json", key("a").as_hex()));
        // A reader holding the old file keeps reading the old contents: the new file is a
        // different inode renamed over it, not the old one rewritten in place.
        let mut old = fs::File::open(&file).unwrap_or_else(|e| panic!("{e}"));
        store
            .store(&key("a"), "second")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut seen = String::new();
        old.read_to_string(&mut seen)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, "first");
        assert_eq!(
            store.load(&key("a")).ok().flatten().as_deref(),
            Some("second")
        );
        assert_eq!(mode(&file), 0o600);
        let names: Vec<_> = fs::read_dir(store.dir())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn oversized_or_binary_files_are_misses_and_delete_reports_presence() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = FileStore::new(tmp.path().to_owned());
        let path = |k: &CacheKey| store.dir().join(format!("{}.json", k.as_hex()));
        fs::write(path(&key("big")), vec![b' '; 70 * 1024]).unwrap_or_else(|e| panic!("{e}"));
        fs::write(path(&key("bin")), [0xff, 0xfe, 0x00]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.load(&key("big")).ok(), Some(None));
        assert_eq!(store.load(&key("bin")).ok(), Some(None));
        assert_eq!(store.delete(&key("big")).ok(), Some(true));
        assert_eq!(store.delete(&key("big")).ok(), Some(false));
    }

    #[test]
    fn keys_lists_entries_and_ignores_other_files() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = FileStore::new(tmp.path().join("tokens"));
        assert_eq!(store.keys().ok(), Some(vec![]));
        for name in ["b", "a"] {
            store
                .store(&key(name), "{}")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for stranger in ["notes.txt", "abc.json", ".tmp.json"] {
            fs::write(store.dir().join(stranger), "x").unwrap_or_else(|e| panic!("{e}"));
        }
        let mut want = vec![key("a"), key("b")];
        want.sort();
        assert_eq!(store.keys().ok(), Some(want));
    }

    #[test]
    fn unwritable_directory_is_a_cache_error() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // A file where the directory should be: creating the directory fails for root too.
        let blocker = tmp.path().join("tokens");
        fs::write(&blocker, "").unwrap_or_else(|e| panic!("{e}"));
        let store = FileStore::new(blocker.join("inner"));
        let err = store.store(&key("a"), "x").err();
        assert!(matches!(err, Some(CacheError::Write { .. })), "{err:?}");
    }
}
