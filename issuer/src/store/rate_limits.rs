//! Fixed-window attempt counters against guessing (user codes, passwords, TOTP codes) and
//! against floods (device authorizations, sign-in pages, access requests). Kept in the
//! database so that every replica sees the same counts.
//!
//! An attempt is *reserved* before it is checked: one statement increments the window's count
//! and returns it, so of any number of concurrent requests, on any replica, at most `limit`
//! see a count within the limit and go on to the (slow) check. A read of the count followed by
//! a separate write of the failure would let a burst read the same low count and all be
//! checked. An attempt that succeeds is given back ([`Store::release_attempt`]), so only
//! failures (and attempts still in flight) fill the window.

use std::time::Duration;

use time::OffsetDateTime;

use super::{Result, Store};

/// The outcome of [`Store::reserve_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The counter's key.
    key: String,
    /// Where the counter's current window starts (unix seconds).
    window_start: i64,
    /// Attempts in the current window, this one included.
    pub count: u32,
    /// Whether this attempt is within the limit and may be checked.
    pub allowed: bool,
    /// When the current window ends: a refused caller may try again then.
    pub retry_after: Duration,
}

impl Attempt {
    /// The retry time in whole minutes, rounded up (for pages: "try again in 3 minutes").
    #[must_use]
    pub fn retry_minutes(&self) -> u64 {
        self.retry_after.as_secs().div_ceil(60).max(1)
    }
}

impl Store {
    /// Counts one attempt for `key` (starting a new window when the old one is over) and says
    /// whether it is within `limit`. One atomic statement on both databases: the count it
    /// returns includes every attempt committed before it, on any replica.
    pub async fn reserve_attempt(
        &self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
        limit: u32,
    ) -> Result<Attempt> {
        let t = now.unix_timestamp();
        let w = i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 2);
        let (window_start, count): (i64, i64) = sqlx::query_as(
            "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
             ON CONFLICT(key) DO UPDATE SET
               count = CASE WHEN $2 >= rate_limits.window_start + $3 THEN 1 ELSE rate_limits.count + 1 END,
               window_start = CASE WHEN $2 >= rate_limits.window_start + $3 THEN $2 ELSE rate_limits.window_start END
             RETURNING window_start, count",
        )
        .bind(key)
        .bind(t)
        .bind(w)
        .fetch_one(&self.write)
        .await?;
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let ends = window_start.saturating_add(w);
        Ok(Attempt {
            key: key.to_owned(),
            window_start,
            count,
            allowed: count <= limit,
            retry_after: Duration::from_secs(u64::try_from(ends - t).unwrap_or(0).max(1)),
        })
    }

    /// Gives a reserved attempt back (it succeeded, or it was never checked), if its window is
    /// still the current one. Never lowers a count below zero.
    pub async fn release_attempt(&self, attempt: &Attempt) -> Result<()> {
        let q = sqlx::query(
            "UPDATE rate_limits SET count = count - 1 WHERE key = $1 AND window_start = $2 AND count > 0",
        )
        .bind(&attempt.key)
        .bind(attempt.window_start);
        self.run(q).await
    }

    /// Forgets the attempts of `key` (after a success).
    pub async fn clear_failures(&self, key: &str) -> Result<()> {
        let q = sqlx::query("DELETE FROM rate_limits WHERE key = $1").bind(key);
        self.run(q).await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::temp_store;
    use std::sync::Arc;
    use std::time::Duration;
    use time::OffsetDateTime;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[tokio::test]
    async fn window_counts_resets_and_releases() {
        let (store, _d) = temp_store().await;
        let window = Duration::from_secs(60);
        let t0 = t0();
        for n in 1..=3 {
            let first = store
                .reserve_attempt("k", t0, window, 2)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(first.count, n);
            assert_eq!(first.allowed, n <= 2);
            assert_eq!(first.retry_after, window);
        }
        let later = t0 + time::Duration::seconds(45);
        let first = store
            .reserve_attempt("k", later, window, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((first.count, first.allowed), (4, false));
        assert_eq!(first.retry_after, Duration::from_secs(15));
        assert_eq!(first.retry_minutes(), 1);
        // A new window starts over; a released attempt does not count.
        let next = t0 + time::Duration::seconds(61);
        let first = store
            .reserve_attempt("k", next, window, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((first.count, first.allowed), (1, true));
        store
            .release_attempt(&first)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let second = store
            .reserve_attempt("k", next, window, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.count, 1);
        // Releasing an attempt of an old window leaves the new one alone.
        let newer = next + time::Duration::seconds(61);
        let third = store
            .reserve_attempt("k", newer, window, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .release_attempt(&second)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let fourth = store
            .reserve_attempt("k", newer, window, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((third.count, fourth.count), (1, 2));
        store
            .clear_failures("k")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let fifth = store
            .reserve_attempt("k", newer, window, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fifth.count, 1);
    }

    /// Of a burst of concurrent reservations exactly `limit` are allowed, and the counts they
    /// see are all distinct: nothing is read before it is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_reserves_each_attempt_once() {
        let (s, _d) = temp_store().await;
        let s = Arc::new(s);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let s = Arc::clone(&s);
            tasks.spawn(async move {
                s.reserve_attempt("burst", t0(), Duration::from_secs(60), 7)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            });
        }
        let mut counts = Vec::new();
        let mut allowed = 0;
        while let Some(a) = tasks.join_next().await {
            let a = a.unwrap_or_else(|e| panic!("{e}"));
            allowed += usize::from(a.allowed);
            counts.push(a.count);
        }
        counts.sort_unstable();
        assert_eq!(counts, (1..=200).collect::<Vec<u32>>());
        assert_eq!(allowed, 7);
    }
}
