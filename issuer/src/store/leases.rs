//! Leases: a named row that one holder owns until `expires_at`, so that of several issuer
//! replicas on one database exactly one does the work only one may do (the leader lease of
//! [`crate::serve::leader`]). Taking, renewing and taking over are one conditional upsert, so two
//! replicas racing for an expired lease cannot both win.

use std::time::Duration;

use time::OffsetDateTime;

use super::{ts, Result, Store};

impl Store {
    /// Takes the lease `name` for `holder` until `now + ttl`: inserts it when nobody holds it,
    /// renews it when `holder` already does (keeping its `acquired_at`), takes it over when the
    /// current holder's lease expired before `now`. Returns whether `holder` holds it now.
    ///
    /// One statement: the conflict clause's `WHERE` decides, and `rows_affected` (0 when the
    /// `WHERE` refused the update) says who won.
    pub async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool> {
        let now = now.unix_timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at, acquired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at, \
             acquired_at = CASE WHEN leases.holder = excluded.holder \
                 THEN leases.acquired_at ELSE excluded.acquired_at END \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl))
        .bind(now)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Gives the lease up at once (graceful shutdown), so that another replica takes it at its
    /// next attempt instead of waiting for it to expire. Only `holder`'s own lease is deleted.
    /// Returns whether there was one.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(done > 0)
    }

    /// Who holds the lease `name` at `now`, and until when; `None` when nobody does (never
    /// taken, released, or expired).
    pub async fn lease_holder(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(String, OffsetDateTime)>> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT holder, expires_at FROM leases WHERE name = $1 AND expires_at >= $2",
        )
        .bind(name)
        .bind(now.unix_timestamp())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(holder, expires_at)| Ok((holder, ts("leases", expires_at)?)))
            .transpose()
    }

    /// Closes the connections, so that every later statement fails as with a database that
    /// went away (for tests of what callers do then).
    #[cfg(test)]
    pub(crate) async fn close_for_tests(&self) {
        self.pool.close().await;
        self.write.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
    const TTL: Duration = Duration::from_secs(15);

    fn at(secs: i64) -> OffsetDateTime {
        T0 + time::Duration::seconds(secs)
    }

    async fn acquire(store: &Store, holder: &str, now: OffsetDateTime) -> bool {
        store
            .try_acquire_lease("leader", holder, now, TTL)
            .await
            .unwrap_or_else(|e| panic!("acquire: {e}"))
    }

    async fn holder(store: &Store, now: OffsetDateTime) -> Option<(String, OffsetDateTime)> {
        store
            .lease_holder("leader", now)
            .await
            .unwrap_or_else(|e| panic!("holder: {e}"))
    }

    async fn release(store: &Store, holder: &str) -> bool {
        store
            .release_lease("leader", holder)
            .await
            .unwrap_or_else(|e| panic!("release: {e}"))
    }

    async fn acquired_at(store: &Store) -> Option<(String, i64)> {
        sqlx::query_as("SELECT holder, acquired_at FROM leases WHERE name = $1")
            .bind("leader")
            .fetch_optional(&store.pool)
            .await
            .unwrap_or_else(|e| panic!("read lease: {e}"))
    }

    #[tokio::test]
    async fn first_wins_renews_and_is_taken_over_only_after_expiry() {
        let (store, _dir) = temp_store().await;
        assert_eq!(holder(&store, T0).await, None);

        assert!(acquire(&store, "a", T0).await, "a free lease is taken");
        assert!(
            !acquire(&store, "b", at(1)).await,
            "a held lease is refused"
        );
        assert_eq!(holder(&store, at(1)).await, Some(("a".into(), at(15))));

        assert!(acquire(&store, "a", at(5)).await, "the holder renews");
        assert_eq!(holder(&store, at(5)).await, Some(("a".into(), at(20))));
        assert_eq!(
            acquired_at(&store).await,
            Some(("a".into(), T0.unix_timestamp())),
            "a renewal keeps acquired_at"
        );
        // At its expiry second the lease is still a's; only after it may b take over.
        assert!(!acquire(&store, "b", at(20)).await);
        assert_eq!(holder(&store, at(21)).await, None, "expired");
        assert!(
            acquire(&store, "b", at(21)).await,
            "an expired lease is taken over"
        );
        assert_eq!(holder(&store, at(21)).await, Some(("b".into(), at(36))));
        assert_eq!(
            acquired_at(&store).await,
            Some(("b".into(), at(21).unix_timestamp())),
            "a takeover starts a new acquired_at"
        );
        assert!(
            !acquire(&store, "a", at(22)).await,
            "the old holder's renewal is refused"
        );

        // Other lease names are independent.
        let other = store.try_acquire_lease("other", "a", at(22), TTL).await;
        assert!(matches!(other, Ok(true)), "{other:?}");
    }

    #[tokio::test]
    async fn release_lets_another_holder_in_at_once() {
        let (store, _dir) = temp_store().await;
        assert!(acquire(&store, "a", T0).await);
        assert!(!release(&store, "b").await, "only the holder can release");
        assert!(!acquire(&store, "b", at(1)).await);
        assert!(release(&store, "a").await);
        assert_eq!(holder(&store, at(1)).await, None);
        assert!(acquire(&store, "b", at(1)).await, "no wait for the TTL");
        assert!(!release(&store, "a").await);
        assert_eq!(holder(&store, at(1)).await, Some(("b".into(), at(16))));
    }

    #[tokio::test]
    async fn racing_holders_get_exactly_one_lease() {
        let (store, dir) = temp_store().await;
        // A second store on the same file: another process, with its own writer connection.
        let other = dir.open().await.unwrap_or_else(|e| panic!("open: {e}"));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = if i % 2 == 0 {
                    store.clone()
                } else {
                    other.clone()
                };
                tokio::spawn(async move {
                    store
                        .try_acquire_lease("leader", &format!("h{i}"), T0, TTL)
                        .await
                })
            })
            .collect();
        let mut won = Vec::new();
        for h in handles {
            let r = h.await.unwrap_or_else(|e| panic!("join: {e}"));
            won.push(r.unwrap_or_else(|e| panic!("acquire: {e}")));
        }
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    }
}
