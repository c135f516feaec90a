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
