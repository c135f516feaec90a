//! Opening the plugin's own files so that nobody else can read what they hold or steer what
//! they say: every file the plugin trusts lives under the cache root
//! (`{cache_dir}/kubectl-credential`) and is opened through here.
//!
//! What is accepted (Unix; elsewhere files are opened as they are):
//!
//! - **The cache root** may itself be a symbolic link (a cache directory moved to another
//!   disk); what it points to must be a directory owned by this user (the effective uid) or by
//!   root, and not writable by group or others. Directories above it (`$HOME`,
//!   `$XDG_CACHE_HOME`) are the person's to keep; they are not checked.
//! - **Every directory below the root** down to the file (`tokens/`, `pending/`) must be a real
//!   directory (checked with `lstat`, so a symbolic link is refused, never followed), owned by
//!   this user or root, and not writable by group or others.
//! - A directory of ours (the root included) that group or others can enter or list (0755) is
//!   tightened to 0700 at once, with a one-line note: nothing in it was readable through that
//!   alone (each file is checked on its own), but it should not stay so. One that others can
//!   write to (0775, 0777) is tightened the same way: its files are still each checked, and a
//!   file we own cannot have been made by anyone else. A directory of root's that others can
//!   write to, or one of another user's, is refused: nothing in it is read, nothing written.
//! - **The file** is opened with `O_NOFOLLOW` (a symbolic link in its place is refused, not
//!   followed) and `O_NONBLOCK` (a FIFO planted there cannot hang the plugin), then checked with
//!   `fstat` on the opened descriptor, so what is checked is what is read: it must be a regular
//!   file owned by this user. A file holding secrets ([`Holds::Secret`], token-cache entries)
//!   must have no permission bit for group or others (0600 or stricter); a file that holds no
//!   secret but steers the plugin ([`Holds::Steering`], the keyring index, pending-request
//!   records) must have no write bit for them (0644 is accepted).
//!
//! A refusal names the path and why ([`Refusal`]'s `Display`), and what the caller does about
//! it is the caller's: the token cache treats a readable entry as an exposed session.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

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

/// Why a file or directory is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A symbolic link where a file or a directory below the root should be.
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
    /// A file of ours with permission bits for group or others that its kind forbids: what it
    /// holds is ours, but others may have read (or changed) it.
    Mode {
        /// Its permission bits.
        mode: u32,
    },
    /// A directory of root's that others can write to.
    Writable {
        /// Its permission bits.
        mode: u32,
    },
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
            Self::Mode { mode } | Self::Writable { mode } => {
                write!(f, "is writable by others (mode {mode:04o})")
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
        write!(f, "{} {}", crate::term::path(&self.path), self.why)
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// Removes what was refused, where that is safe and ours to do: the file (or the link, never
    /// what it points to) in a directory we trust, or a symbolic link planted for a directory.
    /// A directory of another user's is left alone. Best effort: whether it went.
    pub(crate) fn remove(&self) -> bool {
        match (self.is_dir, self.why) {
            // `remove_file` unlinks the link itself.
            (true, Why::Symlink) | (false, Why::Symlink | Why::Owner { .. } | Why::Mode { .. }) => {
                fs::remove_file(&self.path).is_ok()
            }
            (false, Why::NotAFile) => {
                fs::remove_file(&self.path).is_ok() || fs::remove_dir(&self.path).is_ok()
            }
            _ => false,
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
    /// Refused; the file is given when its content is ours ([`Why::content_is_ours`]).
    Refused(Refusal, Option<File>),
}

/// Prints one line for people on stderr, prefixed with the program's name. The one place the
/// cache's notices reach the terminal.
pub(crate) fn notice(line: &str) {
    eprintln!("{}: {line}", super::SERVICE);
}

/// Opens `path`, a file under `root`, for reading, after checking the directories from `root`
/// down to it and then the opened file itself (see the module docs for what is accepted).
pub(crate) fn open(root: &Path, path: &Path, holds: Holds) -> io::Result<Opened> {
    let Some(dir) = path.parent() else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    match check_dirs(root, dir)? {
        Chain::Missing => return Ok(Opened::Missing),
        Chain::Refused(refusal) => return Ok(Opened::Refused(refusal, None)),
        Chain::Trusted => {}
    }
    imp::open_file(path, holds)
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

/// Checks `root` and every directory below it down to `dir` (which must be `root` or under it).
/// Tightens directories of ours that others can enter to 0700, with a note.
pub(crate) fn check_dirs(root: &Path, dir: &Path) -> io::Result<Chain> {
    let Ok(below) = dir.strip_prefix(root) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    // The root may be a link the person made: it is followed.
    match imp::check_dir(root, true)? {
        Chain::Trusted => {}
        other => return Ok(other),
    }
    let mut current = root.to_owned();
    for part in below.components() {
        current.push(part);
        match imp::check_dir(&current, false)? {
            Chain::Trusted => {}
            other => return Ok(other),
        }
    }
    Ok(Chain::Trusted)
}

/// Makes sure the directories from `root` down to `dir` exist (created 0700) and are trusted
/// before a file is written there: a symbolic link planted for one below the root is removed
/// and a real directory made; one that is still refused is an error.
pub(crate) fn ensure_dirs(root: &Path, dir: &Path) -> Result<(), EnsureError> {
    if let Chain::Refused(refusal) = check_dirs(root, dir).map_err(EnsureError::Io)? {
        if !(refusal.is_dir && refusal.why == Why::Symlink && refusal.path != root) {
            return Err(EnsureError::Refused(refusal));
        }
        notice(&format!("{refusal}: not followed, removed"));
        refusal.remove();
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(EnsureError::Io)?;
    match check_dirs(root, dir).map_err(EnsureError::Io)? {
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

/// This process's effective user id.
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

    use super::{euid, notice, Chain, Holds, Opened, Refusal, Why};

    /// Permission bits.
    fn mode(meta: &Metadata) -> u32 {
        meta.permissions().mode() & 0o7777
    }

    pub(super) fn open_file(path: &Path, holds: Holds) -> io::Result<Opened> {
        let refused = |why, file| {
            let refusal = Refusal {
                path: path.to_owned(),
                why,
                is_dir: false,
            };
            Ok(Opened::Refused(refusal, file))
        };
        let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK;
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits().cast_signed())
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
            // `O_NOFOLLOW` on a link: ELOOP.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return refused(Why::Symlink, None)
            }
            // A socket: ENXIO.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                return refused(Why::NotAFile, None)
            }
            Err(e) => return Err(e),
        };
        // The descriptor's own metadata: what was checked is what will be read.
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return refused(Why::NotAFile, None);
        }
        if meta.uid() != euid() {
            return refused(Why::Owner { uid: meta.uid() }, None);
        }
        if mode(&meta) & holds.forbidden() != 0 {
            return refused(Why::Mode { mode: mode(&meta) }, Some(file));
        }
        Ok(Opened::Trusted(file))
    }

    pub(super) fn check_dir(dir: &Path, follow: bool) -> io::Result<Chain> {
        let meta = if follow {
            fs::metadata(dir)
        } else {
            fs::symlink_metadata(dir)
        };
        let meta = match meta {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Chain::Missing),
            Err(e) => return Err(e),
        };
        let refused = |why| {
            Ok(Chain::Refused(Refusal {
                path: dir.to_owned(),
                why,
                is_dir: true,
            }))
        };
        if meta.file_type().is_symlink() {
            return refused(Why::Symlink);
        }
        if !meta.is_dir() {
            return refused(Why::NotADirectory);
        }
        let me = euid();
        let bits = mode(&meta);
        if meta.uid() == me {
            if bits & 0o077 != 0 {
                // Ours: tighten it rather than refuse (see the module docs).
                let tightened = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
                let line = match &tightened {
                    Ok(()) => format!(
                        "{} was open to others (mode {bits:04o}); now 0700",
                        crate::term::path(dir)
                    ),
                    Err(e) => format!(
                        "{} is open to others (mode {bits:04o}) and could not be tightened: {e}",
                        crate::term::path(dir)
                    ),
                };
                notice(&line);
                if tightened.is_err() && bits & 0o022 != 0 {
                    return refused(Why::Writable { mode: bits });
                }
            }
            return Ok(Chain::Trusted);
        }
        if meta.uid() != 0 {
            return refused(Why::Owner { uid: meta.uid() });
        }
        if bits & 0o022 != 0 {
            return refused(Why::Writable { mode: bits });
        }
        Ok(Chain::Trusted)
    }
}

#[cfg(not(unix))]
mod imp {
    use std::fs::File;
    use std::io;
    use std::path::Path;

    use super::{Chain, Holds, Opened};

    pub(super) fn open_file(path: &Path, _holds: Holds) -> io::Result<Opened> {
        match File::open(path) {
            Ok(file) => Ok(Opened::Trusted(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Opened::Missing),
            Err(e) => Err(e),
        }
    }

    pub(super) fn check_dir(dir: &Path, _follow: bool) -> io::Result<Chain> {
        Ok(if dir.is_dir() {
            Chain::Trusted
        } else {
            Chain::Missing
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Read as _;
    use std::os::unix::fs::{symlink, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};

    use super::*;

    /// An id that is not ours: `nobody`. The tests run as root, so `chown` to it works; if it
    /// does not, the test fails (it cannot prove anything otherwise).
    const OTHER_UID: u32 = 65_534;

    /// A cache root (0700, ours) with `tokens/` (0700) and `tokens/entry.json` (0600).
    fn layout() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path().join("kubectl-credential");
        let dir = root.join("tokens");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("entry.json");
        write_private(&file, "secret");
        (tmp, root, file)
    }

    use std::os::unix::fs::DirBuilderExt as _;

    fn write_private(path: &Path, text: &str) {
        use std::io::Write as _;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
    }

    #[track_caller]
    fn give_away(path: &Path) {
        std::os::unix::fs::lchown(path, Some(OTHER_UID), None).unwrap_or_else(|e| {
            panic!(
                "cannot give {} to uid {OTHER_UID} (these tests must run as root to create \
                 a file of another user's): {e}",
                path.display()
            )
        });
        let owner = fs::symlink_metadata(path).map_or(0, |m| m.uid());
        assert_eq!(owner, OTHER_UID, "chown did not take effect");
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).map_or(0, |m| m.permissions().mode() & 0o7777)
    }

    #[track_caller]
    fn refused(opened: io::Result<Opened>) -> (Refusal, Option<File>) {
        match opened {
            Ok(Opened::Refused(refusal, file)) => (refusal, file),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[track_caller]
    fn trusted(opened: io::Result<Opened>) -> String {
        match opened {
            Ok(Opened::Trusted(mut file)) => {
                let mut text = String::new();
                file.read_to_string(&mut text)
                    .unwrap_or_else(|e| panic!("{e}"));
                text
            }
            other => panic!("expected a trusted file, got {other:?}"),
        }
    }

    #[test]
    fn a_private_file_in_a_private_chain_is_trusted_and_a_missing_one_is_missing() {
        let (_tmp, root, file) = layout();
        assert_eq!(trusted(open(&root, &file, Holds::Secret)), "secret");
        let absent = root.join("tokens").join("absent.json");
        assert!(matches!(open(&root, &absent, Holds::Secret), Ok(Opened::Missing)));
        let no_dir = root.join("pending").join("x.json");
        assert!(matches!(open(&root, &no_dir, Holds::Steering), Ok(Opened::Missing)));
    }

    #[test]
    fn a_file_others_can_read_is_refused_and_its_content_kept_for_ending_the_session() {
        let (_tmp, root, file) = layout();
        chmod(&file, 0o644);
        let (refusal, content) = refused(open(&root, &file, Holds::Secret));
        assert_eq!(refusal.why, Why::Mode { mode: 0o644 });
        assert!(!refusal.is_dir);
        assert_eq!(
            refusal.to_string(),
            format!("{} is readable by others (mode 0644)", file.display())
        );
        let mut text = String::new();
        content
            .unwrap_or_else(|| panic!("the content is ours and is given"))
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "secret");
        // Group bits alone, and write-only bits, are refused too.
        for mode in [0o640, 0o620, 0o602] {
            chmod(&file, mode);
            let (refusal, _) = refused(open(&root, &file, Holds::Secret));
            assert_eq!(refusal.why, Why::Mode { mode }, "{mode:o}");
        }
        chmod(&file, 0o602);
        assert!(refused(open(&root, &file, Holds::Secret)).0.to_string().contains("is writable by others (mode 0602)"));
        // A file that holds no secret may be read by others, never written by them.
        chmod(&file, 0o644);
        assert_eq!(trusted(open(&root, &file, Holds::Steering)), "secret");
        chmod(&file, 0o666);
        let (refusal, _) = refused(open(&root, &file, Holds::Steering));
        assert_eq!(refusal.why, Why::Mode { mode: 0o666 });
        assert!(refusal.remove());
        assert!(fs::symlink_metadata(&file).is_err(), "not removed");
    }

    #[test]
    fn directories_of_ours_open_to_others_are_tightened_before_use() {
        let (_tmp, root, file) = layout();
        let dir = root.join("tokens");
        chmod(&dir, 0o755);
        chmod(&root, 0o777);
        assert_eq!(trusted(open(&root, &file, Holds::Secret)), "secret");
        assert_eq!(mode_of(&dir), 0o700, "tokens/ was not tightened");
        assert_eq!(mode_of(&root), 0o700, "the root was not tightened");
    }

    #[test]
    fn a_file_of_another_user_is_refused_unread_and_removed() {
        let (_tmp, root, file) = layout();
        give_away(&file);
        let (refusal, content) = refused(open(&root, &file, Holds::Secret));
        assert_eq!(refusal.why, Why::Owner { uid: OTHER_UID });
        assert!(content.is_none(), "another user's file must not be read");
        assert!(refusal.to_string().ends_with("is owned by another user (uid 65534)"));
        assert!(refusal.remove());
        assert!(fs::symlink_metadata(&file).is_err(), "not removed");
    }

    #[test]
    fn a_directory_of_another_user_is_refused_and_left_alone() {
        let (_tmp, root, file) = layout();
        let dir = root.join("tokens");
        give_away(&dir);
        let (refusal, content) = refused(open(&root, &file, Holds::Secret));
        assert_eq!(
            refusal,
            Refusal {
                path: dir.clone(),
                why: Why::Owner { uid: OTHER_UID },
                is_dir: true
            }
        );
        assert!(content.is_none());
        assert!(!refusal.remove());
        assert!(file.exists(), "nothing in another user's directory is touched");
        // Nor is anything written there.
        let err = ensure_dirs(&root, &dir).err();
        assert!(matches!(err, Some(EnsureError::Refused(_))), "{err:?}");
        // The root too.
        let (_tmp, root, file) = layout();
        give_away(&root);
        assert_eq!(refused(open(&root, &file, Holds::Secret)).0.path, root);
    }

    #[test]
    fn a_link_planted_for_the_file_is_not_followed() {
        let (tmp, root, file) = layout();
        let elsewhere = tmp.path().join("elsewhere.json");
        write_private(&elsewhere, "planted");
        fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
        symlink(&elsewhere, &file).unwrap_or_else(|e| panic!("{e}"));
        let (refusal, content) = refused(open(&root, &file, Holds::Secret));
        assert_eq!(refusal.why, Why::Symlink);
        assert!(content.is_none());
        assert!(refusal.remove());
        assert!(fs::symlink_metadata(&file).is_err(), "the link is still there");
        assert_eq!(fs::read_to_string(&elsewhere).ok().as_deref(), Some("planted"), "the target must stay");
        // A dangling link is refused the same way (not "missing": it is somebody's plant).
        symlink(tmp.path().join("nothing"), &file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(refused(open(&root, &file, Holds::Secret)).0.why, Why::Symlink);
    }

    #[test]
    fn a_link_planted_for_a_directory_in_the_chain_is_not_followed() {
        let (tmp, root, _file) = layout();
        let dir = root.join("tokens");
        let elsewhere = tmp.path().join("elsewhere");
        fs::rename(&dir, &elsewhere).unwrap_or_else(|e| panic!("{e}"));
        symlink(&elsewhere, &dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("entry.json");
        let (refusal, content) = refused(open(&root, &file, Holds::Secret));
        assert_eq!((refusal.path.clone(), refusal.why, refusal.is_dir), (dir.clone(), Why::Symlink, true));
        assert!(content.is_none());
        // Writing removes the link and makes a real, private directory.
        ensure_dirs(&root, &dir).unwrap_or_else(|e| panic!("{e:?}"));
        let meta = fs::symlink_metadata(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(meta.is_dir() && mode_of(&dir) == 0o700);
        assert!(elsewhere.join("entry.json").exists(), "the link's target must stay");
        // The root itself may be a link (a cache moved to another disk).
        let moved = tmp.path().join("moved-root");
        fs::rename(&root, &moved).unwrap_or_else(|e| panic!("{e}"));
        symlink(&moved, &root).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(open(&root, &root.join("tokens").join("x.json"), Holds::Secret), Ok(Opened::Missing)));
    }

    #[test]
    fn a_fifo_does_not_hang_and_is_refused() {
        let (_tmp, root, file) = layout();
        fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
        rustix::fs::mkfifoat(rustix::fs::CWD, &file, rustix::fs::Mode::from_raw_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(refused(open(&root, &file, Holds::Secret)).0.why, Why::NotAFile);
    }
}
