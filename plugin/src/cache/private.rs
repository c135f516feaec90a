//! Opening the plugin's own files so that nobody else can read what they hold or steer what
//! they say. Every file the plugin trusts (token-cache entries, the keyring index, lock files,
//! backoff and pending-request records, hand-out markers) lives under a [`Root`], a directory
//! the plugin makes for itself inside a directory it does not own (`{cache_dir}`, the runtime
//! directory, the temporary directory), and is opened through here.
//!
//! What is accepted (Unix; elsewhere files are opened as they are):
//!
//! - **The directories above the root** (`{cache_dir}` and each of its ancestors up to `/`,
//!   both as written and, when a link is on the way, as resolved: `~/.cache` may be a link to
//!   another disk) must each be a directory owned by this user (the effective uid) or by root,
//!   and not writable by group or others unless sticky (like `/tmp`). They are the person's:
//!   they are never changed, and a flaw there makes the cache unusable (exit 6, naming it).
//! - **The root and every directory below it** down to the file must be a real directory
//!   (checked with `lstat`: a symbolic link is refused, never followed, and removed, as only a
//!   link itself is), owned by this user. One of another user's is refused (and left alone).
//!   One of ours that group or others can enter, list or write to (0755, 0777) is made 0700 at
//!   once, with a one-line note: every file in it is still checked on its own, and a file we
//!   own cannot have been made by anyone else. A sticky directory is never changed (it is a
//!   shared directory, not one the plugin made).
//! - **The file** is opened with `O_NOFOLLOW` (a symbolic link in its place is refused, not
//!   followed) and `O_NONBLOCK` (a FIFO planted there cannot hang the plugin), then checked with
//!   `fstat` on the opened descriptor, so what is checked is what is read: it must be a regular
//!   file owned by this user. A file holding secrets ([`Holds::Secret`], token-cache entries)
//!   must have no permission bit for group or others (0600 or stricter); a file that holds no
//!   secret but steers the plugin ([`Holds::Steering`]: the keyring index, lock files, pending
//!   and backoff records) must have no write bit for them (0644 is accepted).
//!
//! Directories are checked by path, top down, each before anything below it: once a directory
//! is known to be writable only by us (and root), nobody else can swap what is under it between
//! the check and the use, so only the last step, the file, needs the descriptor.
//!
//! A refusal names the path and why ([`Refusal`]'s `Display`); what the caller does about it is
//! the caller's: the token cache treats a readable entry as an exposed session.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// A directory the plugin makes for itself: `name` inside `base`. Keeping the two apart is
/// what lets the checks tell the directories the plugin may tighten (the root and below) from
/// those it must leave as they are (the base and above), whatever paths tests or users give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Root {
    base: PathBuf,
    path: PathBuf,
}

impl Root {
    /// The directory `name` (one path component) in `base`.
    pub(crate) fn new(base: impl Into<PathBuf>, name: &str) -> Self {
        let base = base.into();
        let path = base.join(name);
        Self { base, path }
    }

    /// The root directory itself.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// What a file holds, which decides the permission bits it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holds {
    /// Secrets (refresh and access tokens): no permission bit for group or others.
    Secret,
    /// Nothing secret, but what it says steers the plugin: no write bit for group or others.
    Steering,
}

impl Holds {
    /// The permission bits a file of this kind must not have.
    fn forbidden(self) -> u32 {
        match self {
            Self::Secret => 0o077,
            Self::Steering => 0o022,
        }
    }
}

/// What to do with a directory of ours that group or others can enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loose {
    /// Make it 0700 and go on (its files are each checked on their own).
    Tighten,
    /// Refuse it (for the hand-out markers on the cache hit: their mere presence is what they
    /// say, so ones made while the directory was open mean nothing; pruning tightens it).
    Refuse,
}

/// Why a file or directory is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A symbolic link where a file, the root or a directory below it should be.
    Symlink,
    /// Something other than a regular file (a FIFO, a device, a directory) where a file should be.
    NotAFile,
    /// Something other than a directory where a directory should be.
    NotADirectory,
    /// Owned by another user.
    Owner {
        /// Its owner.
        uid: u32,
    },
    /// Permission bits for group or others that its kind forbids: for a file of ours, what it
    /// holds is ours, but others may have read (or changed) it.
    Mode {
        /// Its permission bits.
        mode: u32,
    },
    /// A directory above the root that others can write to (and not sticky), or a sticky
    /// directory where one of ours should be.
    Writable {
        /// Its permission bits.
        mode: u32,
    },
}

impl Why {
    /// Whether others may have changed what the file says (a write bit for group or others):
    /// then nothing in it is believed, not even which issuer it names.
    pub(crate) fn writable_by_others(self) -> bool {
        matches!(self, Self::Mode { mode } | Self::Writable { mode } if mode & 0o022 != 0)
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Symlink => f.write_str("is a symbolic link"),
            Self::NotAFile => f.write_str("is not a regular file"),
            Self::NotADirectory => f.write_str("is not a directory"),
            Self::Owner { uid } => write!(f, "is owned by another user (uid {uid})"),
            Self::Mode { mode } if mode & 0o044 != 0 => {
                write!(f, "is readable by others (mode {mode:04o})")
            }
            Self::Mode { mode } | Self::Writable { mode } if mode & 0o022 != 0 => {
                write!(f, "is writable by others (mode {mode:04o})")
            }
            Self::Mode { mode } | Self::Writable { mode } => {
                write!(f, "is open to others (mode {mode:04o})")
            }
        }
    }
}

/// A file or directory the plugin will not trust, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The file or directory.
    pub(crate) path: PathBuf,
    /// Why.
    pub(crate) why: Why,
    /// Whether it is a directory of the chain (else the file itself).
    pub(crate) is_dir: bool,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", crate::base::term::path(&self.path), self.why)
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// Removes what was refused, where that is safe and ours to do: the file (or the link,
    /// never what it points to) in a directory we trust, or a symbolic link planted for the
    /// root or a directory below it. A directory is never removed. Best effort: whether it went.
    pub(crate) fn remove(&self) -> bool {
        match (self.is_dir, self.why) {
            // `remove_file` unlinks the link itself.
            (true, Why::Symlink) | (false, _) => fs::remove_file(&self.path).is_ok(),
            (true, _) => false,
        }
    }
}

/// The outcome of [`open`].
#[derive(Debug)]
pub(crate) enum Opened {
    /// The file (or a directory on its way) does not exist.
    Missing,
    /// The file, trusted.
    Trusted(File),
    /// Refused. The file is given when it is a regular file of ours refused only for its mode:
    /// what it holds is ours (an exposed session can be ended); a link is not followed and
    /// another user's file is not read.
    Refused(Refusal, Option<File>),
}

/// What [`check_dirs`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Chain {
    /// Every directory exists and is trusted.
    Trusted,
    /// One of them does not exist (so nothing below it does).
    Missing,
    /// One of them is refused.
    Refused(Refusal),
}

/// Prints one line for people on stderr, prefixed with the program's name: the one place the
/// cache's notices reach the terminal.
pub(crate) fn notice(line: &str) {
    eprintln!("{}: {line}", super::SERVICE);
}

/// Opens `path`, a file in `root` or below, for reading, after checking the directories down
/// to it and then the opened file itself (see the module docs for what is accepted).
pub(crate) fn open(root: &Root, path: &Path, holds: Holds) -> io::Result<Opened> {
    let Some(dir) = path.parent() else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    match check_dirs(root, dir, Loose::Tighten)? {
        Chain::Missing => return Ok(Opened::Missing),
        Chain::Refused(refusal) => return Ok(Opened::Refused(refusal, None)),
        Chain::Trusted => {}
    }
    imp::open_file(path, holds, false)
}

/// Opens a file the person named on the command line (`--machine-key`,
/// `--token-cache-file`), which lives wherever they chose and so has no [`Root`]: only the file
/// itself is checked, on its descriptor, as [`open`] checks a file (no link followed, a regular
/// file of ours, no bits for others that `holds` forbids).
pub(crate) fn open_named(path: &Path, holds: Holds) -> io::Result<Opened> {
    imp::open_file(path, holds, false)
}

/// Writes `bytes` to `path`, a file the person named (`--token-cache-file`, `machine keygen
/// --out`): created 0600 without following a link; an existing one is used only if it is a
/// regular file of ours with no bit for group or others (else the refusal), and `replace`
/// says whether an existing one may be overwritten at all (`None` when it exists and may not).
pub(crate) fn write_named(path: &Path, bytes: &[u8], replace: bool) -> io::Result<Option<Refusal>> {
    imp::write_named(path, bytes, replace)
}

/// Reads a file that holds no secret of ours and may be anyone's (a projected service-account
/// token, owned by root and readable by all by design): links are followed (Kubernetes
/// projects those files through `..data` links), but it must be a regular file, opened
/// without blocking (a FIFO cannot hang the plugin), of at most `max` bytes. `Err` with
/// [`io::ErrorKind::InvalidData`] when larger; the refusal when not a regular file.
pub(crate) fn read_public(path: &Path, max: u64) -> io::Result<Result<Vec<u8>, Refusal>> {
    use std::io::Read as _;

    let file = imp::open_public(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(Err(Refusal {
            path: path.to_owned(),
            why: Why::NotAFile,
            is_dir: false,
        }));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::ErrorKind::InvalidData.into());
    }
    Ok(Ok(bytes))
}

/// Opens (creating it, mode 0600, if needed) `path`, a lock file in `root` or below, after
/// making sure of the directories; checked as [`Holds::Steering`]. The caller deals with a
/// refused one.
pub(crate) fn open_or_create(root: &Root, path: &Path) -> Result<Opened, EnsureError> {
    let dir = path
        .parent()
        .ok_or_else(|| EnsureError::Io(io::ErrorKind::InvalidInput.into()))?;
    ensure_dirs(root, dir)?;
    imp::open_file(path, Holds::Steering, true).map_err(EnsureError::Io)
}

/// Checks the directories above `root`, `root` itself and every directory below it down to
/// `dir` (which must be `root` or under it). Directories of ours that others can enter are
/// tightened to 0700 with a note, or refused, as `loose` says.
pub(crate) fn check_dirs(root: &Root, dir: &Path, loose: Loose) -> io::Result<Chain> {
    let Ok(below) = dir.strip_prefix(&root.path) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    match imp::check_above(&root.base)? {
        Chain::Trusted => {}
        other => return Ok(other),
    }
    let mut current = root.path.clone();
    match imp::check_own(&current, loose)? {
        Chain::Trusted => {}
        other => return Ok(other),
    }
    for part in below.components() {
        current.push(part);
        match imp::check_own(&current, loose)? {
            Chain::Trusted => {}
            other => return Ok(other),
        }
    }
    Ok(Chain::Trusted)
}

/// Makes sure the directories from `root` down to `dir` exist (created 0700; the base too, if
/// it is missing) and are trusted before a file is written there: a symbolic link planted for
/// one of them is removed (with a note) and a real directory made; one that is still refused
/// is an error.
pub(crate) fn ensure_dirs(root: &Root, dir: &Path) -> Result<(), EnsureError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    if !root.base.exists() {
        builder.create(&root.base).map_err(EnsureError::Io)?;
    }
    if let Chain::Refused(refusal) =
        check_dirs(root, dir, Loose::Tighten).map_err(EnsureError::Io)?
    {
        if !(refusal.is_dir && refusal.why == Why::Symlink) {
            return Err(EnsureError::Refused(refusal));
        }
        notice(&format!("{refusal}: not followed, removed"));
        refusal.remove();
    }
    builder.create(dir).map_err(EnsureError::Io)?;
    match check_dirs(root, dir, Loose::Tighten).map_err(EnsureError::Io)? {
        Chain::Trusted => Ok(()),
        Chain::Refused(refusal) => Err(EnsureError::Refused(refusal)),
        Chain::Missing => Err(EnsureError::Io(io::ErrorKind::NotFound.into())),
    }
}

/// Why [`ensure_dirs`] failed.
#[derive(Debug)]
pub(crate) enum EnsureError {
    /// A directory could not be created or examined.
    Io(io::Error),
    /// A directory is not trusted.
    Refused(Refusal),
}

/// This process's effective user id: the owner its files get.
#[cfg(unix)]
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(unix)]
mod imp {
    use std::fs::{self, Metadata};
    use std::io;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
    use std::path::Path;

    use rustix::fs::OFlags;

    use super::{euid, notice, Chain, Holds, Loose, Opened, Refusal, Why};

    /// The sticky bit: in such a directory only an entry's owner may remove or rename it.
    const STICKY: u32 = 0o1000;

    /// Permission bits.
    fn mode(meta: &Metadata) -> u32 {
        meta.permissions().mode() & 0o7777
    }

    fn refused(path: &Path, why: Why, is_dir: bool) -> Refusal {
        Refusal {
            path: path.to_owned(),
            why,
            is_dir,
        }
    }

    /// Opens `path` without following a link (`create`: creating it, 0600, for a lock) and
    /// checks the descriptor.
    pub(super) fn open_file(path: &Path, holds: Holds, create: bool) -> io::Result<Opened> {
        let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK;
        let mut options = fs::OpenOptions::new();
        if create {
            options.write(true).create(true).truncate(false).mode(0o600);
        } else {
            options.read(true);
        }
        let file = match options.custom_flags(flags.bits().cast_signed()).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
            Err(e) => {
                // `O_NOFOLLOW` on a link fails with ELOOP (EMLINK on FreeBSD): ask `lstat`.
                if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Ok(Opened::Refused(refused(path, Why::Symlink, false), None));
                }
                // A socket: ENXIO.
                if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) {
                    return Ok(Opened::Refused(refused(path, Why::NotAFile, false), None));
                }
                return Err(e);
            }
        };
        // The descriptor's own metadata: what was checked is what will be read.
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Ok(Opened::Refused(refused(path, Why::NotAFile, false), None));
        }
        if meta.uid() != euid() {
            let why = Why::Owner { uid: meta.uid() };
            return Ok(Opened::Refused(refused(path, why, false), None));
        }
        if mode(&meta) & holds.forbidden() != 0 {
            let why = Why::Mode { mode: mode(&meta) };
            return Ok(Opened::Refused(refused(path, why, false), Some(file)));
        }
        Ok(Opened::Trusted(file))
    }

    /// Opens `path` for reading, following links, without blocking on a FIFO.
    pub(super) fn open_public(path: &Path) -> io::Result<fs::File> {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(OFlags::NONBLOCK.bits().cast_signed())
            .open(path)
    }

    /// See [`super::write_named`].
    pub(super) fn write_named(
        path: &Path,
        bytes: &[u8],
        replace: bool,
    ) -> io::Result<Option<Refusal>> {
        use std::io::Write as _;

        let mut options = fs::OpenOptions::new();
        options
            .write(true)
            .mode(0o600)
            .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits().cast_signed());
        if replace {
            options.create(true).truncate(false);
        } else {
            options.create_new(true);
        }
        let mut file = match options.open(path) {
            Ok(file) => file,
            Err(e) => {
                if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Ok(Some(refused(path, Why::Symlink, false)));
                }
                return Err(e);
            }
        };
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Ok(Some(refused(path, Why::NotAFile, false)));
        }
        if meta.uid() != euid() {
            return Ok(Some(refused(path, Why::Owner { uid: meta.uid() }, false)));
        }
        if mode(&meta) & Holds::Secret.forbidden() != 0 {
            let why = Why::Mode { mode: mode(&meta) };
            return Ok(Some(refused(path, why, false)));
        }
        file.set_len(0)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(None)
    }

    /// The base and its ancestors: as written (each `lstat`ed, and `stat`ed too when it is a
    /// link), then, if a link was met, as resolved, top down.
    pub(super) fn check_above(base: &Path) -> io::Result<Chain> {
        match fs::metadata(base) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Chain::Missing),
            Err(e) => return Err(e),
        }
        let written: Vec<&Path> = base
            .ancestors()
            .filter(|d| !d.as_os_str().is_empty())
            .collect();
        let mut linked = base.is_relative();
        for dir in written.into_iter().rev() {
            let mut meta = fs::symlink_metadata(dir)?;
            if meta.file_type().is_symlink() {
                linked = true;
                meta = fs::metadata(dir)?;
            }
            if let Some(why) = judge_above(&meta) {
                return Ok(Chain::Refused(refused(dir, why, true)));
            }
        }
        if linked {
            let real = fs::canonicalize(base)?;
            let resolved: Vec<&Path> = real.ancestors().collect();
            for dir in resolved.into_iter().rev() {
                if let Some(why) = judge_above(&fs::metadata(dir)?) {
                    return Ok(Chain::Refused(refused(dir, why, true)));
                }
            }
        }
        Ok(Chain::Trusted)
    }

    /// A directory above the root: ours or root's, and not writable by others unless sticky.
    fn judge_above(meta: &Metadata) -> Option<Why> {
        let bits = mode(meta);
        if !meta.is_dir() {
            Some(Why::NotADirectory)
        } else if meta.uid() != euid() && meta.uid() != 0 {
            Some(Why::Owner { uid: meta.uid() })
        } else if bits & 0o022 != 0 && bits & STICKY == 0 {
            Some(Why::Writable { mode: bits })
        } else {
            None
        }
    }

    /// The root or a directory below it: a real directory of ours, private (or tightened).
    pub(super) fn check_own(dir: &Path, loose: Loose) -> io::Result<Chain> {
        let meta = match fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Chain::Missing),
            Err(e) => return Err(e),
        };
        let refuse = |why| Ok(Chain::Refused(refused(dir, why, true)));
        if meta.file_type().is_symlink() {
            return refuse(Why::Symlink);
        }
        if !meta.is_dir() {
            return refuse(Why::NotADirectory);
        }
        if meta.uid() != euid() {
            return refuse(Why::Owner { uid: meta.uid() });
        }
        let bits = mode(&meta);
        if bits & (0o077 | STICKY) == 0 {
            return Ok(Chain::Trusted);
        }
        if bits & STICKY != 0 {
            // A shared directory (like /tmp) where ours should be: never changed.
            return refuse(Why::Writable { mode: bits });
        }
        if loose == Loose::Refuse {
            return refuse(Why::Mode { mode: bits });
        }
        let shown = crate::base::term::path(dir);
        match fs::set_permissions(dir, fs::Permissions::from_mode(0o700)) {
            Ok(()) => {
                let what = Why::Mode { mode: bits };
                notice(&format!("{shown} {what}; made it private (0700)"));
                Ok(Chain::Trusted)
            }
            Err(e) => {
                notice(&format!(
                    "{shown} is open to others (mode {bits:04o}) and could not be made private: {e}"
                ));
                // Entering or listing it reads no file (each is checked); writing to it could
                // replace them.
                if bits & 0o022 == 0 {
                    Ok(Chain::Trusted)
                } else {
                    refuse(Why::Writable { mode: bits })
                }
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use std::fs;
    use std::io;
    use std::path::Path;

    use super::{Chain, Holds, Loose, Opened};

    pub(super) fn open_file(path: &Path, _holds: Holds, create: bool) -> io::Result<Opened> {
        let mut options = fs::OpenOptions::new();
        if create {
            options.write(true).create(true).truncate(false);
        } else {
            options.read(true);
        }
        match options.open(path) {
            Ok(file) => Ok(Opened::Trusted(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Opened::Missing),
            Err(e) => Err(e),
        }
    }

    pub(super) fn open_public(path: &Path) -> io::Result<fs::File> {
        fs::File::open(path)
    }

    pub(super) fn write_named(
        path: &Path,
        bytes: &[u8],
        replace: bool,
    ) -> io::Result<Option<super::Refusal>> {
        let mut options = fs::OpenOptions::new();
        options.write(true);
        if replace {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        std::io::Write::write_all(&mut options.open(path)?, bytes)?;
        Ok(None)
    }

    pub(super) fn check_above(base: &Path) -> io::Result<Chain> {
        check_own(base, Loose::Tighten)
    }

    pub(super) fn check_own(dir: &Path, _loose: Loose) -> io::Result<Chain> {
        Ok(if dir.is_dir() {
            Chain::Trusted
        } else {
            Chain::Missing
        })
    }
}

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt as _};

    use super::*;

    /// A fresh temporary directory and the root `kubectl-credential` in it (not yet made).
    pub(crate) fn root() -> (tempfile::TempDir, Root) {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Root::new(tmp.path(), super::super::SERVICE);
        (tmp, root)
    }

    pub(crate) fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }

    pub(crate) fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).map_or(0, |m| m.permissions().mode() & 0o7777)
    }

    /// Gives `path` (not following a link) to another user, failing the test, with the reason,
    /// when that is impossible: only root can, and these cases must not go untested silently.
    pub(crate) fn give_away(path: &Path) -> u32 {
        let other = 65_534; // nobody
        assert_eq!(
            euid(),
            0,
            "this test makes a file owned by another user, which needs root: run `cargo test -p \
             kubectl-credential` as root (as the CI container does) to test that case"
        );
        std::os::unix::fs::lchown(path, Some(other), Some(other))
            .unwrap_or_else(|e| panic!("cannot give {} to uid {other}: {e}", path.display()));
        other
    }

    fn write(path: &Path, mode: u32) {
        fs::write(path, "x").unwrap_or_else(|e| panic!("{e}"));
        chmod(path, mode);
    }

    fn opened(root: &Root, path: &Path, holds: Holds) -> Result<(), Refusal> {
        match open(root, path, holds) {
            Ok(Opened::Trusted(_)) => Ok(()),
            Ok(Opened::Refused(refusal, _)) => Err(refusal),
            Ok(Opened::Missing) => panic!("{} is missing", path.display()),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn files_must_be_ours_with_the_bits_their_kind_allows() {
        let (_tmp, root) = root();
        let dir = root.path().join("tokens");
        ensure_dirs(&root, &dir).unwrap_or_else(|e| panic!("{e:?}"));
        let file = dir.join("f");
        // (mode, accepted as a secret, accepted as a steering file)
        for (mode, secret, steering) in [
            (0o600, true, true),
            (0o400, true, true),
            (0o640, false, true),
            (0o644, false, true),
            (0o604, false, true),
            (0o620, false, false),
            (0o666, false, false),
            (0o602, false, false),
        ] {
            write(&file, mode);
            assert_eq!(
                opened(&root, &file, Holds::Secret).is_ok(),
                secret,
                "secret {mode:o}"
            );
            assert_eq!(
                opened(&root, &file, Holds::Steering).is_ok(),
                steering,
                "steering {mode:o}"
            );
        }
        write(&file, 0o644);
        let refusal = opened(&root, &file, Holds::Secret).err();
        let text = refusal.map(|r| r.to_string()).unwrap_or_default();
        assert_eq!(
            text,
            format!("{} is readable by others (mode 0644)", file.display())
        );
        // The content of a file of ours refused for its mode is handed over; nothing else's is.
        assert!(matches!(
            open(&root, &file, Holds::Secret),
            Ok(Opened::Refused(_, Some(_)))
        ));
        assert!(matches!(
            open(&root, &dir.join("absent"), Holds::Secret),
            Ok(Opened::Missing)
        ));
    }

    #[test]
    fn another_users_file_is_refused_and_not_read() {
        let (_tmp, root) = root();
        let dir = root.path().join("tokens");
        ensure_dirs(&root, &dir).unwrap_or_else(|e| panic!("{e:?}"));
        let file = dir.join("f");
        write(&file, 0o600);
        let uid = give_away(&file);
        match open(&root, &file, Holds::Steering) {
            Ok(Opened::Refused(refusal, None)) => {
                assert_eq!(refusal.why, Why::Owner { uid });
                assert!(refusal.remove(), "ours to remove: it is in our directory");
            }
            other => panic!("{other:?}"),
        }
        assert!(fs::symlink_metadata(&file).is_err());
    }

    #[test]
    fn links_are_never_followed_and_only_the_link_is_removed() {
        let (tmp, root) = root();
        let dir = root.path().join("tokens");
        ensure_dirs(&root, &dir).unwrap_or_else(|e| panic!("{e:?}"));
        let target = tmp.path().join("target");
        write(&target, 0o600);
        let link = dir.join("f");
        symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        match open(&root, &link, Holds::Secret) {
            Ok(Opened::Refused(refusal, None)) => {
                assert_eq!(refusal.why, Why::Symlink);
                assert!(refusal.remove());
            }
            other => panic!("{other:?}"),
        }
        assert!(fs::symlink_metadata(&link).is_err(), "the link is gone");
        assert_eq!(fs::read_to_string(&target).ok().as_deref(), Some("x"));

        // A link planted for a directory below the root: refused, and replaced by
        // `ensure_dirs` with a real directory; the target directory is untouched.
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap_or_else(|e| panic!("{e}"));
        chmod(&elsewhere, 0o700);
        let pending = root.path().join("pending");
        symlink(&elsewhere, &pending).unwrap_or_else(|e| panic!("{e}"));
        let chain = check_dirs(&root, &pending, Loose::Tighten).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&chain, Chain::Refused(r) if r.why == Why::Symlink && r.is_dir),
            "{chain:?}"
        );
        ensure_dirs(&root, &pending).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(fs::symlink_metadata(&pending).is_ok_and(|m| m.is_dir()));
        assert!(fs::symlink_metadata(&elsewhere).is_ok_and(|m| m.is_dir()));

        // The root itself may not be a link either.
        let moved = tmp.path().join("moved");
        fs::rename(root.path(), &moved).unwrap_or_else(|e| panic!("{e}"));
        symlink(&moved, root.path()).unwrap_or_else(|e| panic!("{e}"));
        let chain =
            check_dirs(&root, root.path(), Loose::Tighten).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&chain, Chain::Refused(r) if r.why == Why::Symlink),
            "{chain:?}"
        );
    }

    #[test]
    fn open_directories_of_ours_are_tightened_shared_ones_never() {
        let (tmp, root) = root();
        let dir = root.path().join("tokens");
        ensure_dirs(&root, &dir).unwrap_or_else(|e| panic!("{e:?}"));
        chmod(root.path(), 0o755);
        chmod(&dir, 0o777);
        let chain = check_dirs(&root, &dir, Loose::Tighten).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(chain, Chain::Trusted);
        assert_eq!(mode_of(root.path()), 0o700);
        assert_eq!(mode_of(&dir), 0o700);

        // Hand-out markers refuse instead (on the cache hit).
        chmod(&dir, 0o750);
        let chain = check_dirs(&root, &dir, Loose::Refuse).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(chain, Chain::Refused(ref r) if r.why == Why::Mode { mode: 0o750 }));
        assert_eq!(mode_of(&dir), 0o750);

        // A sticky directory where ours should be is a shared one: refused, never changed.
        chmod(&dir, 0o1777);
        let chain = check_dirs(&root, &dir, Loose::Tighten).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(chain, Chain::Refused(ref r) if r.why == Why::Writable { mode: 0o1777 }));
        assert_eq!(mode_of(&dir), 0o1777);
        chmod(&dir, 0o700);

        // The base and above are never changed: a base writable by others is refused, a
        // sticky one (like /tmp) accepted.
        let base_mode = mode_of(tmp.path());
        chmod(tmp.path(), 0o777);
        let chain = check_dirs(&root, &dir, Loose::Tighten).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&chain, Chain::Refused(r) if r.path == tmp.path() && r.why == Why::Writable { mode: 0o777 }),
            "{chain:?}"
        );
        assert_eq!(mode_of(tmp.path()), 0o777);
        chmod(tmp.path(), 0o1777);
        let chain = check_dirs(&root, &dir, Loose::Tighten).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(chain, Chain::Trusted);
        chmod(tmp.path(), base_mode);
    }

    #[test]
    fn directories_of_other_users_are_refused_above_and_below_the_root() {
        let (tmp, root) = root();
        let dir = root.path().join("tokens");
        ensure_dirs(&root, &dir).unwrap_or_else(|e| panic!("{e:?}"));
        let uid = give_away(&dir);
        let chain = check_dirs(&root, &dir, Loose::Tighten).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&chain, Chain::Refused(r) if r.path == dir && r.why == Why::Owner { uid }),
            "{chain:?}"
        );
        // `ensure_dirs` does not take it over.
        assert!(matches!(
            ensure_dirs(&root, &dir),
            Err(EnsureError::Refused(_))
        ));
        // Above the root: a base of another user's (not root's).
        let base = tmp.path().join("theirs");
        fs::create_dir(&base).unwrap_or_else(|e| panic!("{e}"));
        give_away(&base);
        let theirs = Root::new(&base, super::super::SERVICE);
        let chain = check_dirs(&theirs, theirs.path(), Loose::Tighten);
        assert!(
            matches!(&chain, Ok(Chain::Refused(r)) if r.path == base && r.why == Why::Owner { uid }),
            "{chain:?}"
        );
    }

    #[test]
    fn a_linked_base_is_checked_where_it_leads() {
        let (tmp, _) = root();
        // `~/.cache` as a link into a directory that others can write to.
        let open_dir = tmp.path().join("open");
        let real = open_dir.join("cache");
        fs::create_dir_all(&real).unwrap_or_else(|e| panic!("{e}"));
        let link = tmp.path().join("cache-link");
        symlink(&real, &link).unwrap_or_else(|e| panic!("{e}"));
        let root = Root::new(&link, super::super::SERVICE);
        ensure_dirs(&root, root.path()).unwrap_or_else(|e| panic!("{e:?}"));
        chmod(&open_dir, 0o777);
        let chain = check_dirs(&root, root.path(), Loose::Tighten);
        assert!(
            matches!(&chain, Ok(Chain::Refused(r)) if r.path.ends_with("open") && r.why == Why::Writable { mode: 0o777 }),
            "{chain:?}"
        );
        chmod(&open_dir, 0o755);
        let chain = check_dirs(&root, root.path(), Loose::Tighten);
        assert!(matches!(chain, Ok(Chain::Trusted)), "{chain:?}");
    }

    #[test]
    fn a_fifo_cannot_hang_the_open() {
        let (_tmp, root) = root();
        ensure_dirs(&root, root.path()).unwrap_or_else(|e| panic!("{e:?}"));
        let fifo = root.path().join("f");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap_or_else(|e| panic!("mkfifo: {e}"));
        assert!(made.success(), "mkfifo failed");
        assert!(matches!(
            open(&root, &fifo, Holds::Secret),
            Ok(Opened::Refused(
                Refusal {
                    why: Why::NotAFile,
                    ..
                },
                None
            ))
        ));
    }
}
