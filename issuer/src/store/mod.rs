//! Persistence: the only module that knows SQL.
//!
//! SQLite (embedded, WAL) is the default. Every operation that must be atomic across
//! concurrent requests (spending a device code, rotating a refresh token) is a single
//! conditional `UPDATE ... WHERE <still valid>` so that two racing requests cannot both win.

mod access;
mod audit;
mod devices;
mod grants;
mod invitations;
mod leases;
mod rate_limits;
mod requests;
mod sessions;
mod signing_keys;
mod upstream;
mod users;
mod web;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use time::OffsetDateTime;

pub use audit::{AuditEvent, AuditFilter, SEAL_BATCH};
pub use devices::{Device, NewDevice};
pub use grants::GrantFilter;
pub use invitations::{Acceptance, Invitation, NewInvitation};
pub use requests::RequestFilter;
pub use sessions::{Presenter, RotateOutcome, Session};
pub use signing_keys::StoredSigningKey;
pub use upstream::{grant_context, login_context, session_context, PendingLogin, UpstreamSession};
pub use users::{NewUser, User, UserTotp};
pub use web::WebSession;

/// A store error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened or a query failed.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration {version} failed")]
    Migration {
        /// The migration.
        version: i64,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The database was written by a newer issuer.
    #[error("the database schema (version {found}) is newer than this issuer supports ({supported}); upgrade the issuer")]
    TooNew {
        /// Version found.
        found: i64,
        /// Newest version known here.
        supported: i64,
    },
    /// A batched write was not committed (the cause is shared by every write in the batch).
    #[error("database write not committed: {0}")]
    BatchFailed(String),
    /// A uniqueness constraint failed (e.g. user name taken).
    #[error("{0} already exists")]
    Conflict(String),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A row holds a value this version cannot interpret.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Migrations, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_initial.sql")),
    (2, include_str!("../../migrations/0002_accounts.sql")),
    (3, include_str!("../../migrations/0003_upstream.sql")),
    (4, include_str!("../../migrations/0004_grants.sql")),
    (5, include_str!("../../migrations/0005_audit_chain.sql")),
    (6, include_str!("../../migrations/0006_requests.sql")),
    (7, include_str!("../../migrations/0007_audit_access.sql")),
    (8, include_str!("../../migrations/sqlite/0008_replicas.sql")),
];

/// The database.
///
/// SQLite allows one writer at a time. Rather than let several connections race for the write
/// lock (and back off in `busy_timeout` sleeps), all writes go through a pool of exactly one
/// connection, where they queue without spinning; reads use a separate pool and, in WAL mode,
/// never wait for the writer.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    write: SqlitePool,
    rotations: sessions::Rotations,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(Error::Database)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // The writer never checkpoints the WAL itself (a checkpoint fsyncs and would stall every
        // queued write behind it); `checkpoint` does it from a reader connection instead.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(opts.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(opts)
            .await?;
        let rotations = sessions::Rotations::start(write.clone());
        let store = Self {
            pool,
            write,
            rotations,
        };
        store.migrate().await?;
        #[cfg(unix)]
        restrict_permissions(path);
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&self.write)
        .await?;
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(&self.pool)
                .await?;
        let supported = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some(&found) = applied
            .iter()
            .find(|v| !MIGRATIONS.iter().any(|m| m.0 == **v))
        {
            return Err(Error::TooNew { found, supported });
        }
        // Every known migration not applied yet, in order (not only those above the newest
        // applied one, so that a migration numbered between two applied ones still runs).
        for &(version, sql) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
            let mut tx = self.write.begin().await?;
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| Error::Migration { version, source })?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(OffsetDateTime::now_utc().unix_timestamp())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "database migration applied");
        }
        Ok(())
    }

    /// Copies the write-ahead log back into the database file without blocking the writer
    /// (`PASSIVE`). The server calls this every second.
    pub async fn checkpoint(&self) -> Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Checks the database answers (readiness).
    pub async fn ping(&self) -> Result<()> {
        let _: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&self.pool).await?;
        let _: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&self.write)
            .await?;
        Ok(())
    }

    /// Deletes expired device codes, web sessions and rate-limit windows. Returns rows removed.
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64> {
        let now = now.unix_timestamp();
        let mut n = 0;
        // Web sessions may still point at a device code about to go.
        sqlx::query(
            "UPDATE web_sessions SET device_id = NULL WHERE device_id IN (SELECT id FROM device_codes WHERE expires_at < ?)",
        )
        .bind(now - 3600)
        .execute(&self.write)
        .await?;
        n += sqlx::query("DELETE FROM device_codes WHERE expires_at < ?")
            .bind(now - 3600)
            .execute(&self.write)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM upstream_logins WHERE expires_at < ?")
            .bind(now)
            .execute(&self.write)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM web_sessions WHERE expires_at < ?")
            .bind(now)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n)
    }
}

/// The database holds password hashes and session state: readable by the issuer's user only.
#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

/// Unix seconds to a time, or a corrupt-row error.
fn ts(table: &'static str, secs: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| Error::Corrupt {
        table,
        detail: e.to_string(),
    })
}

fn opt_ts(table: &'static str, secs: Option<i64>) -> Result<Option<OffsetDateTime>> {
    secs.map(|s| ts(table, s)).transpose()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Store;

    /// A store in a fresh temporary directory (kept alive by the returned guard).
    pub(crate) async fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let store = Store::open_sqlite(&dir.path().join("t.db"))
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        (store, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::temp_store;
    use super::*;

    #[tokio::test]
    async fn migrations_are_idempotent_and_refuse_newer_schema() {
        let (store, dir) = temp_store().await;
        store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
            .execute(&store.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let err = Store::open_sqlite(&dir.path().join("t.db")).await.err();
        assert!(
            matches!(err, Some(Error::TooNew { found: 999, .. })),
            "{err:?}"
        );
    }
}
