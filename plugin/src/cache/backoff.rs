//! Backing off from an issuer that cannot be reached, or that asked to be left alone for a
//! while.
//!
//! An IDE or a dashboard polling the cluster runs the plugin many times a minute. When the
//! issuer is down, each of those calls would wait for a connection timeout before failing,
//! freezing the tool and piling load onto the issuer as it comes back. After a failed refresh
//! the plugin records, per cache key, a time before which non-interactive calls fail at once
//! (saying so and when it will try again). Two cases are told apart, because they call for
//! different waits:
//!
//! - the issuer could not be reached (no connection, a timeout): [`BACKOFF_SECS`];
//! - the issuer answered that it cannot serve the request now (HTTP 429 or 5xx, such as
//!   `temporarily_unavailable` while its identity provider is down): as long as its
//!   `Retry-After` says, at most [`MAX_WAIT_SECS`], or [`DEFAULT_WAIT_SECS`] without one. Its
//!   explanation is kept in the record, so that the calls held off can show it.
//!
//! Only the refresh path reads or writes this; a cached hit never does. Records are read and
//! written like the other cache files (see `cache::private`): a planted or foreign record is
//! not believed, and no record holds calls back for longer than its kind allows.

use std::fs;
use std::path::PathBuf;

use credential_shared::text;

use super::{CacheKey, Root};

/// How long non-interactive calls stay away after the issuer could not be reached.
pub(crate) const BACKOFF_SECS: i64 = 30;
/// How long they stay away after the issuer answered that it cannot serve now, without saying
/// for how long: short, since it answered and will probably answer again soon.
pub(crate) const DEFAULT_WAIT_SECS: u64 = 5;
/// The longest `Retry-After` followed: an issuer asking for more is asked again after this.
pub(crate) const MAX_WAIT_SECS: u64 = 300;
/// Bound of a record on disk: the time, the kind, and an explanation of at most
/// [`text::SHORT`] characters, escaped (each at most 10 bytes as an escape).
const MAX_RECORD_BYTES: u64 = 4096;

/// Why calls are held off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The issuer could not be reached.
    Unreachable,
    /// The issuer answered that it cannot serve the request now.
    Answered {
        /// Its HTTP status.
        status: u16,
        /// Seconds to stay away (at most [`MAX_WAIT_SECS`]).
        wait: u64,
        /// Whether the issuer asked for `wait` (`Retry-After`), rather than it being
        /// [`DEFAULT_WAIT_SECS`].
        asked: bool,
        /// The issuer's explanation, escaped and bounded, when it gave one.
        reason: Option<String>,
    },
}

impl Hold {
    /// The hold after an answer with `status`, `retry_after` seconds asked for (if any) and the
    /// issuer's `description` (if any).
    pub(crate) fn answered(
        status: u16,
        retry_after: Option<u64>,
        description: Option<&str>,
    ) -> Self {
        Self::Answered {
            status,
            wait: retry_after.unwrap_or(DEFAULT_WAIT_SECS).min(MAX_WAIT_SECS),
            asked: retry_after.is_some(),
            reason: description
                .filter(|d| !d.trim().is_empty())
                .map(|d| text::escape(d, text::SHORT).into_owned()),
        }
    }

    /// Seconds to stay away.
    fn secs(&self) -> i64 {
        match self {
            Self::Unreachable => BACKOFF_SECS,
            Self::Answered { wait, .. } => i64::try_from((*wait).min(MAX_WAIT_SECS)).unwrap_or(0),
        }
    }

    /// The record's second line and the rest.
    fn encode(&self, until: i64) -> String {
        match self {
            Self::Unreachable => format!("{until}\nunreachable\n"),
            Self::Answered {
                status,
                wait,
                asked,
                reason,
            } => format!(
                "{until}\nanswered {status} {wait} {}\n{}\n",
                u8::from(*asked),
                reason.as_deref().unwrap_or_default()
            ),
        }
    }

    /// Reads a record's lines after the time. A record of the first releases holds only the
    /// time: the issuer could not be reached.
    fn decode<'a>(mut lines: impl Iterator<Item = &'a str>) -> Option<Self> {
        let kind = match lines.next() {
            None => return Some(Self::Unreachable),
            Some(kind) => kind.trim(),
        };
        if kind == "unreachable" {
            return Some(Self::Unreachable);
        }
        let mut words = kind.strip_prefix("answered ")?.split(' ');
        let status: u16 = words.next()?.parse().ok()?;
        let wait: u64 = words.next()?.parse().ok()?;
        let asked = match words.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        if words.next().is_some() || wait > MAX_WAIT_SECS {
            return None;
        }
        // Escaped when written; escaped again in case the file was edited (escaping is
        // idempotent), so that it is one bounded line whatever it holds.
        let reason = lines
            .next()
            .filter(|r| !r.trim().is_empty())
            .map(|r| text::escape(r, text::SHORT).into_owned());
        Some(Self::Answered {
            status,
            wait,
            asked,
            reason,
        })
    }
}

/// A hold in force: no attempt before `until` (Unix seconds), because of `hold`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Active {
    /// Unix time of the next attempt.
    pub(crate) until: i64,
    /// Why.
    pub(crate) hold: Hold,
}

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

    /// The hold in force at `now`, if any. A missing, unreadable or malformed record means
    /// none, and so does one that ends later than its kind allows (a clock that jumped back).
    pub(crate) fn active(&self, now: i64) -> Option<Active> {
        let bytes = super::read_steering(&self.root, &self.path, MAX_RECORD_BYTES)?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let mut lines = text.lines();
        let until: i64 = lines.next()?.trim().parse().ok()?;
        let hold = Hold::decode(lines)?;
        (until > now && until <= now.saturating_add(hold.secs())).then_some(Active { until, hold })
    }

    /// Records a failed attempt at `now` and why; best effort (a full disk must not turn a
    /// network error into a different one). An issuer that asked for no wait at all
    /// (`Retry-After: 0`) gets none.
    pub(crate) fn record(&self, now: i64, hold: &Hold) {
        let secs = hold.secs();
        if secs <= 0 {
            self.clear();
            return;
        }
        let record = hold.encode(now.saturating_add(secs));
        let _ = super::replace_private(&self.root, &self.path, record.as_bytes());
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

    fn backoff() -> (tempfile::TempDir, Backoff) {
        let (tmp, root) = super::super::private::tests::root();
        (
            tmp,
            Backoff::new(root, &CacheKey::new("https://i", "c", "k", None)),
        )
    }

    /// Replaces the record with `bytes`, as another program (or an older version) would.
    fn plant(b: &Backoff, bytes: &[u8]) {
        super::super::file::write_new_private(&b.path.with_extension("x"), bytes)
            .and_then(|()| fs::rename(b.path.with_extension("x"), &b.path))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn until(b: &Backoff, now: i64) -> Option<i64> {
        b.active(now).map(|a| a.until)
    }

    #[test]
    fn an_unreachable_issuer_is_left_alone_for_backoff_secs() {
        let (_tmp, b) = backoff();
        assert_eq!(b.active(1_000), None);
        b.record(1_000, &Hold::Unreachable);
        assert_eq!(
            b.active(1_010),
            Some(Active {
                until: 1_030,
                hold: Hold::Unreachable
            })
        );
        assert_eq!(until(&b, 1_030), None, "over after BACKOFF_SECS");
        assert_eq!(until(&b, 900), None, "a record from the future is ignored");
        b.clear();
        assert_eq!(until(&b, 1_010), None);
        b.record(1_000, &Hold::Unreachable);
        plant(&b, b"garbage");
        assert_eq!(until(&b, 1_010), None, "a corrupt record is no backoff");
        // A record of the first releases, the time alone, still holds.
        plant(&b, b"1030");
        assert_eq!(
            b.active(1_010).map(|a| a.hold),
            Some(Hold::Unreachable),
            "an old record means unreachable"
        );
    }

    #[test]
    fn an_issuer_that_asked_to_wait_is_left_alone_exactly_that_long() {
        let (_tmp, b) = backoff();
        let hold = Hold::answered(
            503,
            Some(7),
            Some("the identity provider cannot be reached"),
        );
        b.record(1_000, &hold);
        let active = b.active(1_000).unwrap_or_else(|| panic!("no hold"));
        assert_eq!(active.until, 1_007);
        assert_eq!(
            active.hold,
            Hold::Answered {
                status: 503,
                wait: 7,
                asked: true,
                reason: Some("the identity provider cannot be reached".to_owned()),
            }
        );
        assert_eq!(until(&b, 1_006), Some(1_007));
        assert_eq!(
            until(&b, 1_007),
            None,
            "the next call after the wait tries again"
        );
    }

    #[test]
    fn waits_are_short_by_default_and_bounded() {
        let (_tmp, b) = backoff();
        b.record(1_000, &Hold::answered(503, None, None));
        assert_eq!(
            b.active(1_000),
            Some(Active {
                until: 1_000 + 5,
                hold: Hold::Answered {
                    status: 503,
                    wait: DEFAULT_WAIT_SECS,
                    asked: false,
                    reason: None
                }
            }),
            "no Retry-After: a few seconds, not BACKOFF_SECS"
        );
        b.record(1_000, &Hold::answered(429, Some(86_400), Some("")));
        assert_eq!(until(&b, 1_000), Some(1_300), "at most MAX_WAIT_SECS");
        b.record(1_000, &Hold::answered(503, Some(0), None));
        assert_eq!(until(&b, 1_000), None, "Retry-After: 0 holds nothing back");
        // A record claiming a longer wait than it may, or than its kind allows, is no hold.
        plant(&b, b"1400\nanswered 503 400 1\nx\n");
        assert_eq!(until(&b, 1_000), None);
        plant(&b, b"1100\nanswered 503 10 1\nx\n");
        assert_eq!(until(&b, 1_000), None, "ends after its own wait");
        plant(&b, b"1100\nunreachable\n");
        assert_eq!(until(&b, 1_000), None, "ends after BACKOFF_SECS");
        plant(&b, b"1010\nanswered 503 10 2\n");
        assert_eq!(until(&b, 1_000), None, "malformed kind");
    }

    #[test]
    fn the_reason_is_kept_escaped_and_bounded() {
        let (_tmp, b) = backoff();
        let evil = format!("down\x1b[2J\nerror: fine{}", "A".repeat(10_000));
        b.record(1_000, &Hold::answered(503, Some(5), Some(&evil)));
        let Some(Active {
            hold:
                Hold::Answered {
                    reason: Some(reason),
                    ..
                },
            ..
        }) = b.active(1_000)
        else {
            panic!("no reason kept")
        };
        assert!(
            reason.starts_with(r"down\x1b[2J\nerror: fineAAA"),
            "{reason}"
        );
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
        assert!(reason.chars().count() <= text::SHORT + text::MARKER_MAX);
        // Written by hand with raw controls: still one escaped line.
        plant(&b, b"1005\nanswered 503 5 1\nbad\x1b]0;t\x07 reason\n");
        let held = b.active(1_000).map(|a| a.hold);
        assert_eq!(
            held,
            Some(Hold::Answered {
                status: 503,
                wait: 5,
                asked: true,
                reason: Some(r"bad\x1b]0;t\x07 reason".to_owned())
            })
        );
    }
}
