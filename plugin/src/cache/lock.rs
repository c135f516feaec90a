//! One sign-in or refresh at a time per cache key.
//!
//! Refresh tokens are single-use: two `get`s that refresh at the same moment with the same
//! token make the issuer see a reuse, and it ends the session. And twenty kubectl commands
//! started at once with no session (a shell loop, k9s, an IDE) must cause one device flow, not
//! twenty browser tabs. So the process that signs in or refreshes holds a lock on the key; the
//! others wait, then read the cache again and find the new token.
//!
//! The lock is an OS advisory lock (`flock`/`LockFileEx` through `std::fs::File::lock`) on a
//! file per key that is never deleted: the OS releases it when the holder exits, however it
//! exits, so there is no stale lock to guess about. Waiting is bounded; past the bound the
//! caller gets a clear error (sign-in) or goes ahead (refresh, as it would without locking).

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use super::private::{self, Opened};
use super::{CacheKey, Root};
use crate::base::cancel::Cancel;
use crate::base::clock::Clock;

/// Poll interval while waiting for another process.
const POLL: Duration = Duration::from_millis(100);
/// Longest wait for another process's refresh: two issuer requests at their 15 s timeout.
pub(crate) const REFRESH_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for another process's sign-in: a device code lives 10 minutes by default.
pub(crate) const SIGN_IN_WAIT: Duration = Duration::from_secs(11 * 60);

/// Held while signing in or refreshing one key; released on drop (or when the process exits).
#[derive(Debug)]
pub(crate) struct KeyLock {
    _file: fs::File,
}

/// The outcome of trying to take a lock.
#[derive(Debug)]
pub(crate) enum Acquired {
    /// Taken without waiting.
    Free(KeyLock),
    /// Taken after another process released it (it may have stored what we need).
    AfterWaiting(KeyLock),
    /// Still held by another process after the wait; the path names the lock file.
    TimedOut(PathBuf),
    /// No lock is possible here (no cache directory, a file system without locks).
    Unavailable,
    /// The person pressed Ctrl-C while waiting.
    Cancelled,
}

impl KeyLock {
    /// The cache root whose `locks` directory holds the lock files
    /// (`{cache_dir}/kubectl-credential/locks`).
    pub(crate) fn default_root() -> Option<Root> {
        super::root().ok()
    }

    /// Takes the lock for `key` in `root`'s `locks` directory, waiting up to `max_wait`; `on_wait` runs once if the
    /// lock is busy (to tell a person why nothing happens); `cancel` ends the wait.
    pub(crate) fn acquire(
        root: &Root,
        key: &CacheKey,
        max_wait: Duration,
        clock: &dyn Clock,
        on_wait: &mut dyn FnMut(),
        cancel: &Cancel,
    ) -> Acquired {
        let path = root
            .path()
            .join("locks")
            .join(format!("{}.lock", key.as_hex()));
        // Opened like the other cache files: a link planted for a lock file is not followed
        // (nor created through), and one of another user's is not shared.
        let file: fs::File = match private::open_or_create(root, &path) {
            Ok(Opened::Trusted(file)) => file,
            Ok(Opened::Refused(refusal, _)) => {
                private::notice(&format!("{refusal}: not used, removed"));
                refusal.remove();
                return Acquired::Unavailable;
            }
            Ok(Opened::Missing) | Err(_) => return Acquired::Unavailable,
        };
        let attempts = max_wait.as_millis() / POLL.as_millis();
        let mut waited = false;
        for _ in 0..=attempts {
            match file.try_lock() {
                Ok(()) => {
                    let lock = Self { _file: file };
                    return if waited {
                        Acquired::AfterWaiting(lock)
                    } else {
                        Acquired::Free(lock)
                    };
                }
                Err(fs::TryLockError::WouldBlock) => {
                    if cancel.requested() {
                        return Acquired::Cancelled;
                    }
                    if !waited {
                        waited = true;
                        on_wait();
                    }
                    clock.sleep(POLL);
                }
                Err(fs::TryLockError::Error(_)) => return Acquired::Unavailable,
            }
        }
        Acquired::TimedOut(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::clock::fake::FakeClock;
    use crate::base::clock::SystemClock;

    fn key() -> CacheKey {
        CacheKey::new("https://i", "c", "k", None)
    }

    #[test]
    fn second_taker_waits_then_times_out_and_release_frees_it() {
        let (_tmp, root) = super::super::private::tests::root();
        let now = SystemClock.now();
        let mut waits = 0;
        let first = KeyLock::acquire(
            &root,
            &key(),
            REFRESH_WAIT,
            &FakeClock::at(now),
            &mut || waits += 1,
            &Cancel::default(),
        );
        assert!(matches!(first, Acquired::Free(_)), "{first:?}");

        // A live holder: the second caller polls for the whole (fake) wait, then gives up.
        let clock = FakeClock::at(now);
        let second = KeyLock::acquire(
            &root,
            &key(),
            REFRESH_WAIT,
            &clock,
            &mut || waits += 1,
            &Cancel::default(),
        );
        assert!(matches!(second, Acquired::TimedOut(_)), "{second:?}");
        assert!(clock.slept() >= REFRESH_WAIT);
        assert_eq!(waits, 1, "the wait is announced once");

        // Ctrl-C while waiting: the wait ends at once.
        let clock = FakeClock::at(now);
        let cancel = Cancel::default();
        let cancelled = KeyLock::acquire(
            &root,
            &key(),
            SIGN_IN_WAIT,
            &clock,
            &mut || cancel.request(),
            &cancel,
        );
        assert!(matches!(cancelled, Acquired::Cancelled), "{cancelled:?}");
        assert!(clock.slept() < Duration::from_secs(1));

        // Released on drop (as it is when the holder process exits).
        drop(first);
        let third = KeyLock::acquire(
            &root,
            &key(),
            REFRESH_WAIT,
            &FakeClock::at(now),
            &mut || {},
            &Cancel::default(),
        );
        assert!(matches!(third, Acquired::Free(_)), "{third:?}");
        // Other keys are independent.
        let other = CacheKey::new("https://i", "other", "k", None);
        let fourth = KeyLock::acquire(
            &root,
            &other,
            REFRESH_WAIT,
            &FakeClock::at(now),
            &mut || {},
            &Cancel::default(),
        );
        assert!(matches!(fourth, Acquired::Free(_)), "{fourth:?}");
    }
}
