//! A real small disk for fault tests: a tmpfs of a few MiB mounted on a temporary directory,
//! filled by a filler file (the disk is then truly full for every process), and unmounted on
//! drop. Mounting needs root, which CI and `tests/run.sh` have; elsewhere the test fails saying
//! so rather than skipping.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs.
#[derive(Debug)]
pub struct SmallDisk {
    dir: tempfile::TempDir,
    filler: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `"8m"`).
    #[track_caller]
    #[must_use]
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("e2e-small-disk.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "this test fills a real {size} tmpfs and must mount one: run it as root (CI and \
             tests/run.sh do): mount said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let filler = dir.path().join("filler");
        Self { dir, filler }
    }

    /// The mount point.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the filler file until the disk is full, then gives back `slack` bytes of it.
    #[track_caller]
    pub fn fill(&self, slack: u64) {
        let mut f = std::fs::File::create(&self.filler)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.filler.display()));
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let len = f.metadata().map_or(0, |m| m.len());
        f.set_len(len.saturating_sub(slack))
            .unwrap_or_else(|e| panic!("cannot shorten the filler: {e}"));
    }

    /// Removes the filler: the disk has room again.
    #[track_caller]
    pub fn free(&self) {
        std::fs::remove_file(&self.filler)
            .unwrap_or_else(|e| panic!("cannot remove {}: {e}", self.filler.display()));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a file still open elsewhere must not keep the mount (and the test) alive.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
