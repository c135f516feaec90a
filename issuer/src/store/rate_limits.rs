//! Fixed-window failure counters against guessing (user codes, passwords). Kept in the
//! database so that every replica sees the same counts.

use std::time::Duration;

use time::OffsetDateTime;

use super::{Result, Store};

impl Store {
    /// Failures counted for `key` in the current window.
    pub async fn failures(&self, key: &str, now: OffsetDateTime, window: Duration) -> Result<u32> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT window_start, count FROM rate_limits WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        Ok(match row {
            Some((start, count)) if now.unix_timestamp() < start.saturating_add(window) => {
                u32::try_from(count).unwrap_or(u32::MAX)
            }
            _ => 0,
        })
    }

    /// Counts one failure for `key`, starting a new window when the old one is over.
    pub async fn record_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<()> {
        let t = now.unix_timestamp();
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
             ON CONFLICT(key) DO UPDATE SET
               count = CASE WHEN $2 >= rate_limits.window_start + $3 THEN 1 ELSE rate_limits.count + 1 END,
               window_start = CASE WHEN $2 >= rate_limits.window_start + $3 THEN $2 ELSE rate_limits.window_start END",
        )
        .bind(key)
        .bind(t)
        .bind(window)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Counts one event for `key` and returns how many the current window holds, this one
    /// included (for limits on things that are not failures, like starting a device flow).
    pub async fn count_event(
        &self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<u32> {
        self.record_failure(key, now, window).await?;
        self.failures(key, now, window).await
    }

    /// Forgets the failures of `key` (after a success).
    pub async fn clear_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM rate_limits WHERE key = $1")
            .bind(key)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::temp_store;
    use std::time::Duration;
    use time::OffsetDateTime;

    #[tokio::test]
    async fn window_counts_and_resets() {
        let (s, _d) = temp_store().await;
        let w = Duration::from_secs(60);
        let t0 =
            OffsetDateTime::from_unix_timestamp(1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        for _ in 0..3 {
            s.record_failure("k", t0, w)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(s.failures("k", t0, w).await.unwrap_or(0), 3);
        let later = t0 + time::Duration::seconds(61);
        assert_eq!(s.failures("k", later, w).await.unwrap_or(9), 0);
        s.record_failure("k", later, w)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.failures("k", later, w).await.unwrap_or(0), 1);
        s.clear_failures("k")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.failures("k", later, w).await.unwrap_or(9), 0);
    }
}
