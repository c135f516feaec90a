//! Backing off from an issuer that cannot be reached.
//!
//! An IDE or a dashboard polling the cluster runs the plugin many times a minute. When the
//! issuer is down, each of those calls would wait for a connection timeout before failing,
//! freezing the tool and piling load onto the issuer as it comes back. After a failed refresh
//! the plugin records, per cache key, a time before which non-interactive calls fail at once
//! (saying so and when it will try again). Only the refresh path reads or writes this; a cached
//! hit never does. Records are read and written like the other cache files (see
//! `cache::private`): a planted or foreign record is not believed.

use std::fs;
use std::path::PathBuf;

use super::{CacheKey, Root};

/// How long non-interactive calls stay away after a failed attempt.
pub(crate) const BACKOFF_SECS: i64 = 30;

/// The backoff record of one key, in `dir` (`{cache}/kubectl-credential/backoff`).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    root: Root,
    path: PathBuf,
}

impl Backoff {
    /// The record for `key` in the user's cache directory.
    pub(crate) fn for_key(key: &CacheKey) -> Option<Self> {
        Some(Self::new(super::root().ok()?, key))
    }

    /// The record for `key` in `root`'s `backoff` directory.
    pub(crate) fn new(root: Root, key: &CacheKey) -> Self {
        let path = root.path().join("backoff").join(key.as_hex());
        Self { root, path }
    }

    /// The Unix time before which no attempt should be made, if that is after `now`. A missing
    /// or unreadable record means no backoff.
    pub(crate) fn active_until(&self, now: i64) -> Option<i64> {
        let text = super::read_steering(&self.root, &self.path, 64)?;
        let until: i64 = std::str::from_utf8(&text).ok()?.trim().parse().ok()?;
        // A record far in the future (a clock that jumped back) is not trusted.
        (until > now && until <= now + BACKOFF_SECS).then_some(until)
    }

    /// Records a failed attempt at `now`; best effort (a full disk must not turn a network
    /// error into a different one).
    pub(crate) fn record_failure(&self, now: i64) {
        let until = (now + BACKOFF_SECS).to_string();
        let _ = super::replace_private(&self.root, &self.path, until.as_bytes());
    }

    /// Forgets the record after a success.
    pub(crate) fn clear(&self) {
        if fs::symlink_metadata(&self.path).is_ok() {
            super::remove_private(&self.root, &self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_expire_and_clear() {
        let (_tmp, root) = super::super::private::tests::root();
        let b = Backoff::new(root, &CacheKey::new("https://i", "c", "k", None));
        assert_eq!(b.active_until(1_000), None);
        b.record_failure(1_000);
        assert_eq!(b.active_until(1_010), Some(1_030));
        assert_eq!(b.active_until(1_030), None, "over after BACKOFF_SECS");
        assert_eq!(
            b.active_until(900),
            None,
            "a record from the future is ignored"
        );
        b.clear();
        assert_eq!(b.active_until(1_010), None);
        b.record_failure(1_000);
        super::super::file::write_new_private(&b.path.with_extension("x"), b"garbage")
            .and_then(|()| fs::rename(b.path.with_extension("x"), &b.path))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b.active_until(1_010),
            None,
            "a corrupt record is no backoff"
        );
    }
}
