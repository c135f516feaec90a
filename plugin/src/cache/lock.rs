//! A lock around refreshing one entry. Refresh tokens are single-use: two `get`s that refresh
//! at the same moment with the same token make the issuer see a reuse, and it ends the session.
//! With the lock, the second `get` waits for the first and then finds its fresh token.
//!
//! The lock is a file created with `create_new` (atomic on every platform and every file
//! system the cache can live on), removed on drop. A holder that died leaves the file behind;
//! after [`STALE_AFTER_SECS`] it is taken over. The lock is best effort: when it cannot be
//! created or is held too long, the refresh goes ahead without it, as it would without locking.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::{CacheKey, SERVICE};
use crate::clock::Clock;

/// Poll interval while waiting for another process's refresh.
const POLL: Duration = Duration::from_millis(100);
/// Longest wait: two issuer requests at their 15 s timeout.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A lock older than this belongs to a process that died.
const STALE_AFTER_SECS: i64 = 60;

/// Held while refreshing one entry; released on drop.
#[derive(Debug)]
pub(crate) struct RefreshLock {
    path: PathBuf,
}

impl RefreshLock {
    /// Takes the lock for `key` in `{cache_dir}/kubectl-credential/locks`, waiting for another
    /// holder; `None` when it cannot be had (no cache directory, or waited too long).
    pub(crate) fn acquire_default(key: &CacheKey, clock: &dyn Clock) -> Option<Self> {
        let base = directories::BaseDirs::new()?;
        Self::acquire(&base.cache_dir().join(SERVICE).join("locks"), key, clock)
    }

    /// Takes the lock for `key` in `dir`.
    pub(crate) fn acquire(dir: &Path, key: &CacheKey, clock: &dyn Clock) -> Option<Self> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).ok()?;
        let path = dir.join(format!("{}.lock", key.as_hex()));
        let attempts = MAX_WAIT.as_millis() / POLL.as_millis();
        for _ in 0..attempts {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Some(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if is_stale(&path, clock.now()) {
                        let _ = fs::remove_file(&path);
                    } else {
                        clock.sleep(POLL);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for RefreshLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether the lock file at `path` was left by a process that died (or is already gone).
fn is_stale(path: &Path, now: i64) -> bool {
    let Ok(modified) = fs::metadata(path).and_then(|m| m.modified()) else {
        return true;
    };
    let modified = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    now.saturating_sub(modified) > STALE_AFTER_SECS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::fake::FakeClock;
    use crate::clock::SystemClock;

    fn key() -> CacheKey {
        CacheKey::new("https://i", "c", "k", None)
    }

    #[test]
    fn second_taker_waits_then_gives_up_and_a_dead_holder_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let now = SystemClock.now();
        let first = RefreshLock::acquire(tmp.path(), &key(), &FakeClock::at(now));
        assert!(first.is_some());

        // A live holder: the second caller polls for MAX_WAIT of (fake) time, then goes ahead.
        let clock = FakeClock::at(now);
        assert!(RefreshLock::acquire(tmp.path(), &key(), &clock).is_none());
        assert_eq!(clock.slept(), MAX_WAIT);

        // The holder looks dead a minute later: its lock is taken over at once.
        let later = FakeClock::at(now + STALE_AFTER_SECS + 5);
        let second = RefreshLock::acquire(tmp.path(), &key(), &later);
        assert!(second.is_some());
        assert_eq!(later.slept(), Duration::ZERO);

        // Released on drop.
        drop(second);
        drop(first);
        assert!(RefreshLock::acquire(tmp.path(), &key(), &FakeClock::at(now)).is_some());
    }
}
