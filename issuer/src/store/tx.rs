//! Write transactions that cannot outlive a failure.
//!
//! When a `COMMIT` fails (a full disk: `SQLITE_FULL`, an I/O error, a connection cut mid-way),
//! SQLite may keep the transaction open, and sqlx's own transaction object then believes it is
//! still one level deep: the next `begin` on that connection becomes a `SAVEPOINT` inside the
//! dead transaction, every later "commit" only releases that savepoint, and answered writes
//! are never durable. A [`WriteTx`] therefore issues `BEGIN`/`COMMIT`/`ROLLBACK` itself and,
//! unless it ended cleanly, closes its connection instead of handing it back to the pool:
//! closing rolls back whatever the server still holds, and the pool opens a fresh connection
//! for the next write. A failure costs one reconnect; a success costs nothing extra.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor as _};

use super::{Backend, Result};

/// An open write transaction on a connection of its own.
pub(crate) struct WriteTx {
    conn: PoolConnection<Any>,
    /// `COMMIT` or `ROLLBACK` succeeded: the connection is clean and may go back to the pool.
    clean: bool,
}

impl WriteTx {
    /// Takes a connection of `pool` and begins a transaction. SQLite: `BEGIN IMMEDIATE`, which
    /// takes the write lock first (waiting up to `busy_timeout` for another process), so the
    /// transaction cannot fail with `SQLITE_BUSY` when it upgrades from reading to writing.
    pub(crate) async fn begin(pool: &AnyPool, backend: Backend) -> Result<Self> {
        let mut conn = pool.acquire().await?;
        let begin = match backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        if let Err(e) = conn.execute(sqlx::raw_sql(begin)).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(Self { conn, clean: false })
    }

    /// Commits. On failure nothing of the transaction is kept (the connection is closed, which
    /// rolls it back) and the error says why.
    pub(crate) async fn commit(mut self) -> Result<()> {
        self.conn.execute(sqlx::raw_sql("COMMIT")).await?;
        self.clean = true;
        Ok(())
    }

    /// Rolls back (a transaction that found nothing to do).
    pub(crate) async fn rollback(mut self) -> Result<()> {
        self.conn.execute(sqlx::raw_sql("ROLLBACK")).await?;
        self.clean = true;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        // An error, a cancelled request or a failed COMMIT: never reuse this connection.
        if !self.clean {
            self.conn.close_on_drop();
        }
    }
}
