//! The timing rules both key sources share: when a new key is stamped, when it starts to sign,
//! and when a superseded key is retired (no longer published, and deleted).
//!
//! One rule for publishing and deleting keeps a key stored exactly as long as it may be
//! published, whichever source holds it.

use time::OffsetDateTime;

use super::KeyInfo;

/// How often the signing keys are re-read (so `keys rotate`, from the CLI or on another
/// replica, needs no restart). Shorter than any token lifetime.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// How far in the future `keys rotate` stamps a new key kept in the database: every replica
/// loads keys every [`RELOAD_EVERY`], so by the time any of them signs with
/// the new key, every replica has published it for at least one reload interval, and an API
/// server that meets the new `kid` and fetches the JWKS again finds it whichever replica
/// answers. (With a directory, one process rotates and reloads: the key signs at once.)
pub const PUBLISH_BEFORE_SIGNING: std::time::Duration = std::time::Duration::from_secs(20);

/// The created time of a new key: now, but at least one second after the newest key, so that
/// it sorts last (and so is active) even when two rotations happen within the same second.
pub(super) fn next_created(infos: &[KeyInfo], now: OffsetDateTime) -> i64 {
    match infos.last() {
        Some(newest) => unix_seconds(now).max(newest.created_at.unix_timestamp().saturating_add(1)),
        None => unix_seconds(now),
    }
}

/// The keys (of `infos`, oldest first) that [`is_retired`]: no longer published, so deleted.
pub(super) fn retired(
    infos: &[KeyInfo],
    now: OffsetDateTime,
    retain: std::time::Duration,
) -> impl Iterator<Item = &KeyInfo> {
    infos.windows(2).filter_map(move |pair| match pair {
        [old, next] if is_retired(next.created_at, now, retain) => Some(old),
        _ => None,
    })
}

/// Whether a key superseded at `superseded_at` can no longer have signed an unexpired token.
/// One rule for both publishing and deleting, so that a key file exists exactly as long as the
/// key may be published.
pub(super) fn is_retired(
    superseded_at: OffsetDateTime,
    now: OffsetDateTime,
    retain: std::time::Duration,
) -> bool {
    now - superseded_at >= retain
}

pub(super) fn unix_seconds(t: OffsetDateTime) -> i64 {
    // Key file names have no sign; a clock before 1970 is not worth an error of its own.
    t.unix_timestamp().max(0)
}
