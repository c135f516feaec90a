//! Signing keys kept in the database (`[signing] keys = "database"`), so that every replica
//! signs with, and publishes, the same keys. Rows hold the key already sealed by
//! [`crate::signing`]: this module stores bytes and never sees key material in the clear.

use std::fmt;

use time::OffsetDateTime;

use super::{is_unique_violation, ts, Error, Result, Store};

/// One row of `signing_keys`.
pub struct StoredSigningKey {
    /// The key's id (its RFC 7638 thumbprint).
    pub kid: String,
    /// When it was added; the newest by (`created_at`, `kid`) signs.
    pub created_at: OffsetDateTime,
    /// The PKCS#8 DER, sealed under the encryption key.
    pub sealed_key: Vec<u8>,
}

impl fmt::Debug for StoredSigningKey {
    // By hand: the sealed bytes are ciphertext, but nothing of a key belongs in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// The advisory lock key that serialises first-key inserts of replicas starting together
/// (PostgreSQL).
const FIRST_KEY_LOCK: i64 = 0x6b63_7265_645f_6b31;

impl Store {
    /// Adds a key. A kid already present is a conflict (a thumbprint names one key).
    pub async fn insert_signing_key(
        &self,
        kid: &str,
        created_at: OffsetDateTime,
        sealed_key: &[u8],
    ) -> Result<()> {
        sqlx::query("INSERT INTO signing_keys (kid, created_at, sealed_key) VALUES ($1, $2, $3)")
            .bind(kid)
            .bind(created_at.unix_timestamp())
            .bind(sealed_key.to_vec())
            .execute(&self.write)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict(format!("signing key {kid}"))
                } else {
                    Error::Database(e)
                }
            })?;
        Ok(())
    }

    /// Adds a key only if the table is empty (the first start of the first replica). Returns
    /// whether it was added. Replicas starting together add one between them: SQLite runs one
    /// writer at a time, and on PostgreSQL (where two such statements would otherwise run
    /// concurrently under read committed and both insert) a transaction-scoped advisory lock
    /// makes the second look after the first committed.
    pub async fn insert_first_signing_key(
        &self,
        kid: &str,
        created_at: OffsetDateTime,
        sealed_key: &[u8],
    ) -> Result<bool> {
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        if self.backend == super::Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(FIRST_KEY_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, created_at, sealed_key) SELECT $1, $2, $3 \
             WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
        )
        .bind(kid)
        .bind(created_at.unix_timestamp())
        .bind(sealed_key.to_vec())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Every key, oldest first: by `created_at`, then `kid` (the same order as key files, whose
    /// names start with the time and then the kid).
    pub async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT kid, created_at, sealed_key FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(kid, created_at, sealed_key)| {
                Ok(StoredSigningKey {
                    kid,
                    created_at: ts("signing_keys", created_at)?,
                    sealed_key,
                })
            })
            .collect()
    }

    /// Deletes a retired key. Returns whether it was there (a concurrent rotation may have
    /// deleted it first).
    pub async fn delete_signing_key(&self, kid: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(done > 0)
    }

    /// Overwrites a key's sealed bytes, as an intruder with write access to the database
    /// would (for tests of what loading then says).
    #[cfg(test)]
    pub(crate) async fn set_sealed_signing_key_for_tests(&self, kid: &str, sealed_key: &[u8]) {
        sqlx::query("UPDATE signing_keys SET sealed_key = $1 WHERE kid = $2")
            .bind(sealed_key.to_vec())
            .bind(kid)
            .execute(&self.write)
            .await
            .unwrap_or_else(|e| panic!("tamper: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn kids(keys: &[StoredSigningKey]) -> Vec<&str> {
        keys.iter().map(|k| k.kid.as_str()).collect()
    }

    #[tokio::test]
    async fn keys_are_listed_oldest_first_and_deleted_by_kid() {
        let (store, _dir) = temp_store().await;
        let later = T0 + time::Duration::seconds(1);
        for (kid, at) in [("c", later), ("b", T0), ("a", later)] {
            store
                .insert_signing_key(kid, at, kid.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("insert {kid}: {e}"));
        }
        let keys = store.signing_keys().await.unwrap_or_default();
        assert_eq!(kids(&keys), ["b", "a", "c"]);
        assert_eq!(keys[0].created_at, T0);
        assert_eq!(keys[2].sealed_key, b"c");
        let debug = format!("{keys:?}");
        assert!(!debug.contains("sealed_key"), "{debug}");

        let again = store.insert_signing_key("a", T0, b"x").await;
        assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
        assert!(matches!(store.delete_signing_key("a").await, Ok(true)));
        assert!(matches!(store.delete_signing_key("a").await, Ok(false)));
        let keys = store.signing_keys().await.unwrap_or_default();
        assert_eq!(kids(&keys), ["b", "c"]);
    }

    #[tokio::test]
    async fn the_first_key_is_inserted_only_into_an_empty_table() {
        let (store, _dir) = temp_store().await;
        let first = store.insert_first_signing_key("a", T0, b"a").await;
        assert!(matches!(first, Ok(true)), "{first:?}");
        let second = store.insert_first_signing_key("b", T0, b"b").await;
        assert!(matches!(second, Ok(false)), "{second:?}");
        let keys = store.signing_keys().await.unwrap_or_default();
        assert_eq!(kids(&keys), ["a"]);
    }
}
