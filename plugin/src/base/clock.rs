//! Time as a dependency: the real clock in production, a fake one in tests, so that expiry,
//! polling and lock waits are tested without sleeping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reads the time and waits.
pub(crate) trait Clock {
    /// Unix time in seconds.
    fn now(&self) -> i64;
    /// Blocks for `duration` (the fake clock advances instead).
    fn sleep(&self, duration: Duration);
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        // A clock before 1970 makes every token look expired, which is the safe reading.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Formats a Unix time as RFC 3339 (`2026-01-01T00:00:00Z`), the format kubectl expects in
/// `expirationTimestamp`. `None` for a time outside what RFC 3339 can express.
pub(crate) fn rfc3339(unix: i64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A duration for people: `45s`, `10m 0s`, `1h 5m`, `2d 3h`.
pub(crate) fn human_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// `at` as seen from `now`: `in 4m 12s`, `3m 0s ago`.
pub(crate) fn relative(at: i64, now: i64) -> String {
    let delta = at.saturating_sub(now);
    if delta >= 0 {
        format!("in {}", human_duration(delta.unsigned_abs()))
    } else {
        format!("{} ago", human_duration(delta.unsigned_abs()))
    }
}

/// `2026-01-01T00:04:12Z (in 4m 12s)`: absolute UTC time and relative to `now`.
pub(crate) fn when(at: i64, now: i64) -> String {
    let absolute = rfc3339(at).unwrap_or_else(|| at.to_string());
    format!("{absolute} ({})", relative(at, now))
}

#[cfg(test)]
pub(crate) mod fake {
    use std::cell::Cell;
    use std::time::Duration;

    use super::Clock;

    /// A clock that only moves when something sleeps on it.
    #[derive(Debug)]
    pub(crate) struct FakeClock {
        start: i64,
        slept: Cell<Duration>,
    }

    impl FakeClock {
        pub(crate) fn at(start: i64) -> Self {
            Self {
                start,
                slept: Cell::new(Duration::ZERO),
            }
        }

        /// Total time spent "sleeping".
        pub(crate) fn slept(&self) -> Duration {
            self.slept.get()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> i64 {
            // Sub-second sleeps accumulate; the Unix time follows whole seconds of them.
            self.start + i64::try_from(self.slept.get().as_secs()).unwrap_or(i64::MAX)
        }

        fn sleep(&self, duration: Duration) {
            self.slept.set(self.slept.get() + duration);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{human_duration, relative, rfc3339, when};

    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(
            rfc3339(1_767_225_600).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(rfc3339(i64::MAX), None);
    }

    #[test]
    fn durations_and_relative_times_for_people() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (60, "1m 0s"),
            (252, "4m 12s"),
            (3900, "1h 5m"),
            (86_400 * 30 + 7200, "30d 2h"),
        ] {
            assert_eq!(human_duration(secs), text, "{secs}");
        }
        assert_eq!(relative(1_252, 1_000), "in 4m 12s");
        assert_eq!(relative(1_000, 1_180), "3m 0s ago");
        assert_eq!(relative(i64::MIN, i64::MAX), "106751991167300d 15h ago");
        assert_eq!(
            when(1_767_225_852, 1_767_225_600),
            "2026-01-01T00:04:12Z (in 4m 12s)"
        );
    }
}
