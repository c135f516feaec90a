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

use super::private::{self, Chain, EnsureError, Holds, Loose, Opened, Refusal, Root, Why};
use super::{CacheError, CacheKey, Entry};

/// Larger files are not entries (an entry is about 2 KiB); reading stops there.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// `{cache_dir}/kubectl-credential/tokens/{key}.json`.
#[derive(Debug)]
pub(crate) struct FileStore {
    /// The cache root the directory chain is checked from (`{cache_dir}/kubectl-credential`).
    root: Root,
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
        Ok(Self::new(super::root()?))
    }

    /// The store in `root`'s `tokens` directory (created, mode 0700, on the first write).
    pub(crate) fn new(root: Root) -> Self {
        let dir = root.path().join("tokens");
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

    /// The entry file under `key`, checked (see [`private`]). On a cache hit this is a few
    /// `lstat`s (the directories), one `open` and one `fstat`: no write.
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
    /// If others could also write the file, it is not trusted to name its issuer: the session
    /// is then ended at the issuer of the command that found it, if any.
    pub(crate) fn refuse(&self, refusal: &Refusal, entry: Option<Entry>) {
        if let Some(mut entry) = entry.filter(|e| e.refresh_token.is_some()) {
            if refusal.why.writable_by_others() {
                entry.origin = None;
            }
            self.exposed.borrow_mut().push(entry);
        }
        if self.reported.borrow().contains(&refusal.path) {
            // Said once already; a link planted again is removed again all the same.
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
        private::check_dirs(&self.root, &self.dir, Loose::Tighten).map_err(|source| {
            CacheError::Read {
                path: self.dir.clone(),
                source,
            }
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
    /// they already existed with looser modes, removes a symbolic link planted for either,
    /// and refuses a directory of another user's.
    pub(crate) fn ensure_dir(&self) -> Result<(), CacheError> {
        ensure_dirs(&self.root, &self.dir)
    }
}

/// [`private::ensure_dirs`], with its failures as cache errors.
pub(super) fn ensure_dirs(root: &Root, dir: &Path) -> Result<(), CacheError> {
    private::ensure_dirs(root, dir).map_err(|e| match e {
        EnsureError::Io(source) => CacheError::Write {
            path: dir.to_owned(),
            source,
        },
        EnsureError::Refused(refusal) => CacheError::Unsafe(refusal),
    })
}

/// Replaces `path` (a file in `root` or below) with `bytes`, the way entries are written: the
/// directories checked (and made, 0700), a 0600 temporary file renamed over it. For the small
/// records that steer the plugin (pending requests, backoff).
pub(crate) fn replace_private(root: &Root, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
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

/// Removes `path` (a file in `root` or below), unless the directories on the way are not
/// trusted (nothing is removed through a planted link). Best effort.
pub(crate) fn remove_private(root: &Root, path: &Path) {
    let trusted = path
        .parent()
        .and_then(|dir| private::check_dirs(root, dir, Loose::Tighten).ok())
        == Some(Chain::Trusted);
    if trusted {
        let _ = fs::remove_file(path);
    }
}

/// Reads `path`, a small file in `root` or below that steers the plugin, if it is trusted
/// ([`Holds::Steering`]); at most `max` bytes. A refused one is reported, removed and reads as
/// absent, like a missing or unreadable one.
pub(crate) fn read_steering(root: &Root, path: &Path, max: u64) -> Option<Vec<u8>> {
    let file = match private::open(root, path, Holds::Steering).ok()? {
        Opened::Trusted(file) => file,
        Opened::Missing => return None,
        Opened::Refused(refusal, _) => {
            let what = if refusal.is_dir && refusal.why != Why::Symlink {
                "not used; fix or remove it"
            } else {
                "not believed, removed"
            };
            private::notice(&format!("{refusal}: {what}"));
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
    use std::os::unix::fs::symlink;

    use super::super::private::tests::{chmod, give_away, mode_of, root};
    use super::super::SERVICE;
    use super::*;

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

    /// A store holding one entry under `key("a")`, and its path.
    fn stored() -> (tempfile::TempDir, FileStore, PathBuf) {
        let (tmp, root) = root();
        let store = FileStore::new(root);
        store
            .store(&key("a"), "{\"v\":1}")
            .unwrap_or_else(|e| panic!("{e}"));
        let path = store.path(&key("a"));
        (tmp, store, path)
    }

    #[test]
    fn writes_private_files_in_a_private_directory() {
        let (tmp, root) = root();
        let parent = tmp.path().join(SERVICE);
        // A pre-existing, too-open root is tightened.
        fs::create_dir(&parent).unwrap_or_else(|e| panic!("{e}"));
        chmod(&parent, 0o755);
        let store = FileStore::new(root);
        assert!(missing(&store, &key("a")));

        store
            .store(&key("a"), "{\"v\":1}")
            .unwrap_or_else(|e| panic!("{e}"));
        let file = store.dir().join(format!("{}.json", key("a").as_hex()));
        assert_eq!(mode_of(&file), 0o600);
        assert_eq!(mode_of(store.dir()), 0o700);
        assert_eq!(mode_of(&parent), 0o700);
        assert_eq!(text(&store, &key("a")).as_deref(), Some("{\"v\":1}"));
    }

    #[test]
    fn replaces_atomically_and_leaves_no_temporary_files() {
        let (_tmp, root) = root();
        let store = FileStore::new(root);
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
        assert_eq!(text(&store, &key("a")).as_deref(), Some("second"));
        assert_eq!(mode_of(&file), 0o600);
        let names: Vec<_> = fs::read_dir(store.dir())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn oversized_or_binary_files_are_misses_and_delete_reports_presence() {
        let (_tmp, root) = root();
        let store = FileStore::new(root);
        store.ensure_dir().unwrap_or_else(|e| panic!("{e}"));
        let write = |k: &CacheKey, bytes: &[u8]| {
            write_new_private(&store.path(k), bytes).unwrap_or_else(|e| panic!("{e}"));
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
        let (_tmp, root) = root();
        let store = FileStore::new(root);
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
        let (tmp, root) = root();
        // A file where the directory should be: creating the directory fails for root too.
        let blocker = tmp.path().join(SERVICE);
        fs::write(&blocker, "").unwrap_or_else(|e| panic!("{e}"));
        let store = FileStore::new(root);
        let err = store.store(&key("a"), "x").err();
        assert!(
            matches!(
                err,
                Some(
                    CacheError::Write { .. }
                        | CacheError::Unsafe(Refusal {
                            why: Why::NotADirectory,
                            ..
                        })
                )
            ),
            "{err:?}"
        );
    }

    #[test]
    fn an_entry_others_can_read_is_refused_with_its_content_and_removed() {
        let (_tmp, store, path) = stored();
        chmod(&path, 0o644);
        let Ok(Loaded::Refused { refusal, content }) = store.load(&key("a")) else {
            panic!("a 0644 entry was not refused");
        };
        assert_eq!(refusal.why, Why::Mode { mode: 0o644 });
        assert_eq!(
            refusal.to_string(),
            format!("{} is readable by others (mode 0644)", path.display())
        );
        // Its content is read (through the descriptor already open) so its session can be
        // ended; the file is removed by `refuse`.
        assert_eq!(content.as_deref(), Some("{\"v\":1}"));
        store.refuse(&refusal, None);
        assert!(
            fs::symlink_metadata(&path).is_err(),
            "the file is still there"
        );
        assert!(missing(&store, &key("a")));
    }

    #[test]
    fn a_directory_others_can_enter_is_made_private_and_its_entries_still_checked() {
        let (_tmp, store, path) = stored();
        chmod(store.dir(), 0o755);
        assert_eq!(text(&store, &key("a")).as_deref(), Some("{\"v\":1}"));
        assert_eq!(mode_of(store.dir()), 0o700, "the directory was left open");
        // An entry that is itself open is refused all the same.
        chmod(store.dir(), 0o755);
        chmod(&path, 0o640);
        assert!(matches!(store.load(&key("a")), Ok(Loaded::Refused { .. })));
        assert_eq!(mode_of(store.dir()), 0o700);
    }

    #[test]
    fn an_entry_owned_by_another_user_is_not_read() {
        let (_tmp, store, path) = stored();
        let uid = give_away(&path);
        let Ok(Loaded::Refused { refusal, content }) = store.load(&key("a")) else {
            panic!("another user's entry was not refused");
        };
        assert_eq!(refusal.why, Why::Owner { uid });
        assert_eq!(content, None, "another user's file was read");
        store.refuse(&refusal, None);
        assert!(fs::symlink_metadata(&path).is_err());
    }

    #[test]
    fn a_link_planted_for_an_entry_is_not_followed_and_is_removed() {
        let (tmp, store, path) = stored();
        // The link points at a well-formed entry elsewhere: following it would be a hit.
        let planted = tmp.path().join("planted.json");
        fs::rename(&path, &planted).unwrap_or_else(|e| panic!("{e}"));
        symlink(&planted, &path).unwrap_or_else(|e| panic!("{e}"));
        let Ok(Loaded::Refused { refusal, content }) = store.load(&key("a")) else {
            panic!("a link was followed");
        };
        assert_eq!((refusal.why, content), (Why::Symlink, None));
        store.refuse(&refusal, None);
        assert!(
            fs::symlink_metadata(&path).is_err(),
            "the link is still there"
        );
        assert_eq!(
            fs::read_to_string(&planted).ok().as_deref(),
            Some("{\"v\":1}"),
            "the link's target was touched"
        );
        // Storing replaces a link planted in the entry's place, never its target.
        symlink(&planted, &path).unwrap_or_else(|e| panic!("{e}"));
        store
            .store(&key("a"), "new")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text(&store, &key("a")).as_deref(), Some("new"));
        assert_eq!(
            fs::read_to_string(&planted).ok().as_deref(),
            Some("{\"v\":1}")
        );
    }

    #[test]
    fn a_link_planted_for_the_directory_is_not_followed_and_is_removed() {
        let (tmp, store, path) = stored();
        // `tokens` replaced by a link to a directory holding a copy of the entry.
        let elsewhere = tmp.path().join("elsewhere");
        fs::rename(store.dir(), &elsewhere).unwrap_or_else(|e| panic!("{e}"));
        symlink(&elsewhere, store.dir()).unwrap_or_else(|e| panic!("{e}"));
        let Ok(Loaded::Refused { refusal, content }) = store.load(&key("a")) else {
            panic!("a linked directory was followed");
        };
        assert_eq!(
            (refusal.why, refusal.is_dir, content),
            (Why::Symlink, true, None)
        );
        assert_eq!(store.keys().ok(), Some(vec![]), "listing followed the link");
        store.refuse(&refusal, None);
        assert!(
            fs::symlink_metadata(store.dir()).is_err(),
            "the link is still there"
        );
        assert!(missing(&store, &key("a")));
        assert!(elsewhere
            .join(path.file_name().unwrap_or_default())
            .exists());
    }
}
