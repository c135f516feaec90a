//! The file backend, for machines without a usable keyring: one JSON file per entry in a
//! directory only the user can enter, each file readable only by the user and replaced
//! atomically, so a concurrent reader sees the old entry or the new one, never half of one.
//!
//! Every entry is opened through [`private`](super::private): a file others could read, one
//! owned by someone else, a symbolic link in its place or in the directory chain is never used
//! as an entry. What the plugin does about such a file is [`FileStore::refuse`]'s.

use std::cell::RefCell;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::private::{self, Chain, EnsureError, Holds, Opened, Refusal, Why};
use super::{CacheError, CacheKey, Entry, SERVICE};

/// Larger files are not entries (an entry is about 2 KiB); reading stops there.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// `{cache_dir}/kubectl-credential/tokens/{key}.json`.
#[derive(Debug, Clone)]
pub(crate) struct FileStore {
    /// The cache root the directory chain is checked from (`{cache_dir}/kubectl-credential`).
    root: PathBuf,
    dir: PathBuf,
    /// Entries refused because others could read them: their sessions are to be ended.
    exposed: RefCell<Vec<Entry>>,
    /// Paths already reported in this run (a refused directory is met by every load).
    reported: RefCell<Vec<PathBuf>>,
}

/// What [`FileStore::load`] found.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No entry.
    Missing,
    /// The stored text (`None` when too large or not UTF-8).
    Found(Option<String>),
    /// A file that is not trusted; its text when the content is ours (only its mode is wrong).
    Refused {
        /// What and why.
        refusal: Refusal,
        /// The text, for ending the session it holds.
        content: Option<String>,
    },
}

impl FileStore {
    /// The store under the user's cache directory (`XDG_CACHE_HOME`, else `~/.cache`, on Linux).
    pub(crate) fn open_default() -> Result<Self, CacheError> {
        let base = directories::BaseDirs::new().ok_or(CacheError::NoCacheDir)?;
        Ok(Self::new(base.cache_dir().join(SERVICE).join("tokens")))
    }

    /// A store in `dir` (created, mode 0700, on the first write); the directory chain is
    /// checked from its parent, the cache root.
    pub(crate) fn new(dir: PathBuf) -> Self {
        let root = dir.parent().map_or_else(|| dir.clone(), Path::to_owned);
        Self {
            root,
            dir,
            exposed: RefCell::default(),
            reported: RefCell::default(),
        }
    }

    /// The directory holding the entries.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.as_hex()))
    }

    /// The entry file under `key`, checked (see [`private`]). On a cache hit this is two
    /// `lstat`s, one `open` and one `fstat`: no write.
    pub(crate) fn load(&self, key: &CacheKey) -> Result<Loaded, CacheError> {
        let path = self.path(key);
        let read_error = |source| CacheError::Read {
            path: path.clone(),
            source,
        };
        match private::open(&self.root, &path, Holds::Secret).map_err(read_error)? {
            Opened::Missing => Ok(Loaded::Missing),
            Opened::Trusted(file) => Ok(Loaded::Found(read_text(file).map_err(read_error)?)),
            Opened::Refused(refusal, file) => {
                let content = file.and_then(|f| read_text(f).ok().flatten());
                Ok(Loaded::Refused { refusal, content })
            }
        }
    }

    /// Deals with a refused file or directory: says so in one line (once per run), removes
    /// what is ours to remove (the file, or a planted link), and keeps `entry`, the session
    /// a file others could read held, for [`FileStore::take_exposed`] to end at its issuer.
    pub(crate) fn refuse(&self, refusal: &Refusal, entry: Option<Entry>) {
        if let Some(entry) = entry.filter(|e| e.refresh_token.is_some()) {
            self.exposed.borrow_mut().push(entry);
        }
        if self.reported.borrow().contains(&refusal.path) {
            refusal.remove();
            return;
        }
        self.reported.borrow_mut().push(refusal.path.clone());
        let what = match (refusal.is_dir, refusal.why) {
            (false, Why::Mode { .. }) => {
                "its session is treated as exposed, ended and removed; sign in again"
            }
            (_, Why::Symlink) => "not followed, removed; sign in again",
            (false, _) => "not read, removed; sign in again",
            (true, _) => "the sessions in it are not used; fix or remove it, then sign in again",
        };
        private::notice(&format!("{refusal}: {what}"));
        refusal.remove();
    }

    /// The sessions found exposed so far in this run, to be ended at their issuer.
    pub(crate) fn take_exposed(&self) -> Vec<Entry> {
        std::mem::take(&mut *self.exposed.borrow_mut())
    }

    /// Replaces the entry under `key` with `contents`: a 0600 temporary file in the same
    /// directory, written and synced, then renamed over the old one (or over a link planted in
    /// its place: `rename` replaces the link, never what it points to).
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

    /// Deletes the entry under `key`; whether there was one. Nothing is deleted through a
    /// directory that is not trusted.
    pub(crate) fn delete(&self, key: &CacheKey) -> Result<bool, CacheError> {
        let path = self.path(key);
        match self.chain()? {
            Chain::Trusted => {}
            Chain::Missing | Chain::Refused(_) => return Ok(false),
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(CacheError::Write { path, source }),
        }
    }

    fn chain(&self) -> Result<Chain, CacheError> {
        private::check_dirs(&self.root, &self.dir).map_err(|source| CacheError::Read {
            path: self.dir.clone(),
            source,
        })
    }

    /// The keys of every entry in the directory, sorted; none when it does not exist or is
    /// refused (which is reported). Files that are not `{64 hex digits}.json` (temporary
    /// files, strangers) are ignored.
    pub(crate) fn keys(&self) -> Result<Vec<CacheKey>, CacheError> {
        match self.chain()? {
            Chain::Trusted => {}
            Chain::Missing => return Ok(Vec::new()),
            Chain::Refused(refusal) => {
                self.refuse(&refusal, None);
                return Ok(Vec::new());
            }
        }
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

    /// Creates the directory (and the cache root) with mode 0700, tightens them to 0700 if
    /// they already existed with looser modes, removes a symbolic link planted for the
    /// directory, and refuses a directory of another user's.
    pub(crate) fn ensure_dir(&self) -> Result<(), CacheError> {
        ensure_dirs(&self.root, &self.dir)
    }
}

/// [`private::ensure_dirs`], with its failures as cache errors.
pub(super) fn ensure_dirs(root: &Path, dir: &Path) -> Result<(), CacheError> {
    private::ensure_dirs(root, dir).map_err(|e| match e {
        EnsureError::Io(source) => CacheError::Write {
            path: dir.to_owned(),
            source,
        },
        EnsureError::Refused(refusal) => CacheError::Unsafe(refusal),
    })
}

/// Replaces `path` (a file under `root`) with `bytes`, the way entries are written: the
/// directories checked (and made, 0700), a 0600 temporary file renamed over it. For the small
/// records that steer the plugin (pending requests, backoff).
pub(crate) fn replace_private(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let write_error = |source| CacheError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| write_error(io::ErrorKind::InvalidInput.into()))?;
    ensure_dirs(root, dir)?;
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), unique_suffix()));
    let result = write_new_private(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write_error(source));
    }
    Ok(())
}

/// Reads `path`, a small file under `root` that steers the plugin, if it is trusted
/// ([`Holds::Steering`]); at most `max` bytes. A refused one is reported, removed and reads as
/// absent, like a missing or unreadable one.
pub(crate) fn read_steering(root: &Path, path: &Path, max: u64) -> Option<Vec<u8>> {
    let file = match private::open(root, path, Holds::Steering).ok()? {
        Opened::Trusted(file) => file,
        Opened::Missing => return None,
        Opened::Refused(refusal, _) => {
            private::notice(&format!("{refusal}: not trusted, ignored and removed"));
            refusal.remove();
            return None;
        }
    };
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

/// Reads at most [`MAX_ENTRY_BYTES`]; `None` when larger or not UTF-8.
fn read_text(file: fs::File) -> io::Result<Option<String>> {
    let mut bytes = Vec::with_capacity(4096);
    file.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Ok(None);
    }
    Ok(String::from_utf8(bytes).ok())
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

    /// What a plain load found: `Some(text)` for a trusted entry, `None` for anything else.
    fn text(store: &FileStore, key: &CacheKey) -> Option<String> {
        match store.load(key) {
            Ok(Loaded::Found(text)) => text,
            _ => None,
        }
    }

    fn missing(store: &FileStore, key: &CacheKey) -> bool {
        matches!(store.load(key), Ok(Loaded::Missing))
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
        assert!(missing(&store, &key("a")));

        store
            .store(&key("a"), "{\"v\":1}")
            .unwrap_or_else(|e| panic!("{e}"));
        let file = store.dir().join(format!("{}.json", key("a").as_hex()));
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&parent), 0o700);
        assert_eq!(
            text(&store, &key("a")).as_deref(),
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
            text(&store, &key("a")).as_deref(),
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
        let store = FileStore::new(tmp.path().join("tokens"));
        store.ensure_dir().unwrap_or_else(|e| panic!("{e}"));
        let path = |k: &CacheKey| store.dir().join(format!("{}.json", k.as_hex()));
        let write = |k: &CacheKey, bytes: &[u8]| {
            let mut options = fs::OpenOptions::new();
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options
                .write(true)
                .create(true)
                .truncate(true)
                .open(path(k))
                .and_then(|mut f| f.write_all(bytes))
                .unwrap_or_else(|e| panic!("{e}"));
        };
        write(&key("big"), &vec![b' '; 70 * 1024]);
        write(&key("bin"), &[0xff, 0xfe, 0x00]);
        assert!(matches!(store.load(&key("big")), Ok(Loaded::Found(None))));
        assert!(matches!(store.load(&key("bin")), Ok(Loaded::Found(None))));
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
        assert!(
            matches!(err, Some(CacheError::Write { .. } | CacheError::Unsafe(_))),
            "{err:?}"
        );
    }
}
