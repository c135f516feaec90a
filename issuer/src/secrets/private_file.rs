//! Crash-safe writes of key and certificate files, shared by [`crate::signing`] and
//! [`crate::serve::tls`].
//!
//! A key file is either absent or complete: it is written to a temporary file that already has
//! its final mode (so a private key is never readable by others, not even for a moment), synced,
//! and then renamed over the final name. Temporary names start with a dot so that directory
//! scans skip them, including ones a crash left behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};

/// Mode of files holding a private key.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of files anyone may read (certificates).
pub(crate) const PUBLIC_FILE_MODE: u32 = 0o644;

/// Creates `dir` and any missing parents with mode 0700. An existing directory is left as it is:
/// its mode is the operator's choice (a mounted Kubernetes Secret, for example).
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to `path` atomically with the given Unix `mode`, replacing any existing file.
pub(crate) fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // A random suffix rather than the pid: a crashed process can leave a temporary file behind,
    // and pids repeat across reboots.
    let mut suffix = [0_u8; 8];
    SystemRandom::new()
        .fill(&mut suffix)
        .map_err(|_| io::Error::other("system random number generator failed"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        crate::secrets::secret::hex(&suffix)
    ));

    let result = write_new(&tmp, bytes, mode).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir)
}

/// Creates `path` (which must not exist) with `mode`, writes `bytes` and syncs them to disk.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a rename durable: without syncing the directory, a crash can forget the new name.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_atomically_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let path = dir.join("k.p8");
        write(&path, b"one", PRIVATE_FILE_MODE).unwrap_or_else(|e| panic!("write: {e}"));
        write(&path, b"two", PRIVATE_FILE_MODE).unwrap_or_else(|e| panic!("write: {e}"));
        assert_eq!(fs::read(&path).unwrap_or_default(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read_dir: {e}"))
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k.p8")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| {
                let metadata =
                    fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
                metadata.permissions().mode() & 0o777
            };
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&tmp.path().join("a")), 0o700);
        }
    }
}
