//! Persistence: the only module that knows SQL.
//!
//! Two databases behind one interface: SQLite (embedded, WAL; the default, one issuer process)
//! and PostgreSQL (chosen by a `postgres://` URL; several replicas share it). Both are reached
//! through sqlx's `Any` driver, so every query is written once, with numbered placeholders
//! (`$1`) and SQL both dialects accept; the few places where they differ ask [`Backend`] for
//! the fragment (`dialect` functions in each file). Migrations exist once per dialect with the
//! same versions (`migrations/sqlite`, `migrations/postgres`).
//!
//! Every operation that must be atomic across concurrent requests, on any replica (spending a
//! device code, rotating a refresh token, approving a request) is a single conditional
//! `UPDATE ... WHERE <still valid>`, so that two racing requests cannot both win whichever
//! process they reach.

mod access;
mod audit;
mod devices;
#[cfg(test)]
pub(crate) mod disk_full_tests;
mod grants;
mod invitations;
mod leases;
mod machines;
mod rate_limits;
mod requests;
mod sessions;
mod signing_keys;
mod tx;
mod upstream;
mod users;
mod web;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions as _, Executor as _};
use time::OffsetDateTime;

pub use audit::{AuditEvent, AuditFilter, SEAL_BATCH};
pub use devices::{Device, NewDevice};
pub use grants::GrantFilter;
pub use invitations::{Acceptance, Invitation, NewInvitation};
pub use machines::{Machine, NewMachine, Principal, PrincipalKind};
pub use rate_limits::Attempt;
pub use requests::RequestFilter;
pub use sessions::{successor_context, Presenter, RotateOutcome, Session, Successor};
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
    #[error("database write not committed: {reason}")]
    BatchFailed {
        /// The passing fault behind it, if it was one.
        fault: Option<Fault>,
        /// The database's words.
        reason: String,
    },
    /// A uniqueness constraint failed (e.g. user name taken).
    #[error("{0} already exists")]
    Conflict(String),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The SQLite file exists but is not a SQLite database (or cannot be opened as one). The
    /// file is left untouched: it may be a backup someone needs.
    #[error("{} is not a usable SQLite database ({reason}); it was left untouched: move it away to start with a new database, or restore the right file", path.display())]
    NotSqlite {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A row holds a value this version cannot interpret.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// A fault of the database that passes by itself or by an operator's hand (a full disk, a
/// server that is down or restarting, a timeout, a lock held elsewhere): the request was not
/// carried out and may be tried again. Anything else (a constraint, a corrupt row, a bug) is not
/// a fault in this sense and stays an internal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No space left on the database's disk (SQLite `SQLITE_FULL`, PostgreSQL class 53).
    DiskFull,
    /// The database server cannot be reached or cut the connection (PostgreSQL class 08, a
    /// shutdown, an I/O error on the socket, no connection to be had).
    Unreachable,
    /// A statement ran past its time limit or waited too long for a connection.
    TimedOut,
    /// Another writer holds a lock (SQLite `SQLITE_BUSY`, PostgreSQL serialization/deadlock).
    Busy,
    /// The database refuses writes (a read-only file or file system, a hot standby).
    ReadOnly,
    /// Reading or writing the database file failed (SQLite `SQLITE_IOERR`).
    Io,
    /// The database server is out of memory or connections (PostgreSQL class 53 but a full
    /// disk).
    Overloaded,
}

impl Fault {
    /// What an operator reads in the log and on `/readyz`.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::DiskFull => "the database's disk is full",
            Self::Unreachable => "the database cannot be reached",
            Self::TimedOut => "the database did not answer in time",
            Self::Busy => "the database is locked by another writer",
            Self::ReadOnly => "the database is read-only",
            Self::Io => "the database file cannot be read or written (I/O error)",
            Self::Overloaded => "the database server is out of memory or connections",
        }
    }
}

impl Error {
    /// The passing fault behind this error, if it is one.
    #[must_use]
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Self::Database(e) | Self::Migration { source: e, .. } => fault_of(e),
            Self::BatchFailed { fault, .. } => *fault,
            _ => None,
        }
    }
}

/// Classifies a driver error (see [`Fault`]).
fn fault_of(e: &sqlx::Error) -> Option<Fault> {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Some(Fault::Unreachable),
        sqlx::Error::PoolTimedOut => Some(Fault::TimedOut),
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                return postgres_fault(pg.code());
            }
            // SQLite: the primary result code is the low byte of the extended one.
            let code: i64 = db.code()?.parse().ok()?;
            match code & 0xff {
                13 => Some(Fault::DiskFull),
                5 | 6 => Some(Fault::Busy),
                8 => Some(Fault::ReadOnly),
                10 | 14 => Some(Fault::Io),
                _ => None,
            }
        }
        _ => None,
    }
}

/// PostgreSQL SQLSTATEs that pass (Appendix A of its manual).
fn postgres_fault(sqlstate: &str) -> Option<Fault> {
    match sqlstate {
        "53100" => Some(Fault::DiskFull),
        s if s.starts_with("53") => Some(Fault::Overloaded),
        s if s.starts_with("08") => Some(Fault::Unreachable),
        "57P01" | "57P02" | "57P03" => Some(Fault::Unreachable),
        "57014" => Some(Fault::TimedOut),
        "40001" | "40P01" | "55P03" => Some(Fault::Busy),
        "25006" => Some(Fault::ReadOnly),
        "58030" => Some(Fault::Io),
        _ => None,
    }
}

/// An error and its sources, joined, for a log line.
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// SQLite migrations, applied in order, each once.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_initial.sql")),
    (2, include_str!("../../migrations/sqlite/0002_accounts.sql")),
    (3, include_str!("../../migrations/sqlite/0003_upstream.sql")),
    (4, include_str!("../../migrations/sqlite/0004_grants.sql")),
    (
        5,
        include_str!("../../migrations/sqlite/0005_audit_chain.sql"),
    ),
    (6, include_str!("../../migrations/sqlite/0006_requests.sql")),
    (
        7,
        include_str!("../../migrations/sqlite/0007_audit_access.sql"),
    ),
    (8, include_str!("../../migrations/sqlite/0008_replicas.sql")),
    (9, include_str!("../../migrations/sqlite/0009_indexes.sql")),
    (
        10,
        include_str!("../../migrations/sqlite/0010_refresh_retry.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_health_probe.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_machines.sql"),
    ),
    (
        13,
        include_str!("../../migrations/sqlite/0013_device_origin.sql"),
    ),
];

/// The same migrations in PostgreSQL's dialect (same versions, same tables and meaning).
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_accounts.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_upstream.sql"),
    ),
    (4, include_str!("../../migrations/postgres/0004_grants.sql")),
    (
        5,
        include_str!("../../migrations/postgres/0005_audit_chain.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_requests.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_audit_access.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_replicas.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_indexes.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_refresh_retry.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_health_probe.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_machines.sql"),
    ),
    (
        13,
        include_str!("../../migrations/postgres/0013_device_origin.sql"),
    ),
];

/// How long a request waits for a PostgreSQL connection before it fails. While the server is
/// down, requests do not wait at all: the health probe (`crate::telemetry::health`) sees it within a
/// second and the HTTP layer answers 503 at once; this bounds the wait of those already in
/// flight.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The advisory lock key that serialises migrations of replicas starting together (PostgreSQL).
const MIGRATION_LOCK: i64 = 0x6b63_7265_645f_6d31;

/// Which database a [`Store`] talks to; the few dialect differences are asked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file, one issuer process.
    Sqlite,
    /// A server shared by several issuer replicas.
    Postgres,
}

impl Backend {
    fn migrations(self) -> &'static [(i64, &'static str)] {
        match self {
            Self::Sqlite => SQLITE_MIGRATIONS,
            Self::Postgres => POSTGRES_MIGRATIONS,
        }
    }

    /// `json_array(cols)` as text.
    pub(crate) fn json_array(self, cols: &str) -> String {
        match self {
            Self::Sqlite => format!("json_array({cols})"),
            Self::Postgres => format!("json_build_array({cols})::text"),
        }
    }

    /// A subquery yielding the strings of the JSON array text bound at placeholder `param`.
    pub(crate) fn json_strings(self, param: &str) -> String {
        match self {
            Self::Sqlite => format!("SELECT value FROM json_each({param})"),
            Self::Postgres => format!("SELECT json_array_elements_text({param}::json)"),
        }
    }

    /// Whether `needle` occurs in `haystack` (both SQL expressions).
    pub(crate) fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Self::Sqlite => format!("instr({haystack}, {needle}) > 0"),
            Self::Postgres => format!("strpos({haystack}, {needle}) > 0"),
        }
    }
}

/// How to reach PostgreSQL.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/db?sslmode=...` (holds a password: never printed).
    pub url: String,
    /// Connections per process.
    pub max_connections: u32,
    /// A schema to use instead of the default search path (tests isolate themselves with it).
    pub schema: Option<String>,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("schema", &self.schema)
            .finish()
    }
}

/// A database URL with any password replaced by `***`, for logs and error messages.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable database URL>".to_owned(),
    }
}

/// Where the database is.
#[derive(Debug, Clone)]
pub enum Location {
    /// This SQLite file (created if missing).
    Sqlite(std::path::PathBuf),
    /// This PostgreSQL server.
    Postgres(PostgresOptions),
}

/// The database.
///
/// SQLite allows one writer at a time. Rather than let several connections race for the write
/// lock (and back off in `busy_timeout` sleeps), all writes go through a pool of exactly one
/// connection, where they queue without spinning; reads use a separate pool and, in WAL mode,
/// never wait for the writer. With PostgreSQL both are the same pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    write: AnyPool,
    backend: Backend,
    rotations: sessions::Rotations,
    /// PostgreSQL: how old (database clock) an audit row must be before it is sealed, so that
    /// every row with a lower `seq` has committed (see `seal_audit`).
    audit_settle_ms: i64,
    /// PostgreSQL: how to open a connection of its own, to name the cause when the pool has
    /// none to give ([`Store::diagnose`]).
    direct: Option<Direct>,
}

/// Connect options (they hold the password: `Debug` shows nothing of them).
#[derive(Clone)]
struct Direct(AnyConnectOptions);

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Direct(..)")
    }
}

/// How long an audit row must have been written before the sealer links it (PostgreSQL).
const AUDIT_SETTLE_MS: i64 = 5_000;

/// A statement with its values bound, as built by `sqlx::query(..).bind(..)`.
type Bound<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl Store {
    /// Runs one conditional `UPDATE` on the writer and says whether it changed exactly one row:
    /// the check is the statement's `WHERE`, so of racing callers exactly one sees `true`.
    async fn won(&self, q: Bound<'_>) -> Result<bool> {
        Ok(q.execute(&self.write).await?.rows_affected() == 1)
    }

    /// Runs one statement on the writer, for its effect only.
    async fn run(&self, q: Bound<'_>) -> Result<()> {
        q.execute(&self.write).await?;
        Ok(())
    }

    /// Opens the database and applies migrations.
    pub async fn open(location: &Location) -> Result<Self> {
        match location {
            Location::Sqlite(path) => Self::open_sqlite(path).await,
            Location::Postgres(options) => Self::open_postgres(options).await,
        }
    }

    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        check_sqlite_file(path)?;
        let url = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy();
        let opts = AnyConnectOptions::from_url(&url)?;
        // One connection of its own first, reading the schema: a file SQLite cannot use fails
        // here at once, named, instead of as a pool timeout after retries.
        let probe = async {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&opts).await?;
            sqlx::query("SELECT count(*) FROM sqlite_master")
                .execute(&mut conn)
                .await?;
            sqlx::Connection::close(conn).await
        };
        probe.await.map_err(|e: sqlx::Error| Error::NotSqlite {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        // The writer never checkpoints the WAL itself (a checkpoint fsyncs and would stall every
        // queued write behind it); `checkpoint` does it from a reader connection instead.
        let write = sqlite_pool(opts.clone(), 1, "PRAGMA wal_autocheckpoint = 0;").await?;
        let pool = sqlite_pool(opts, 4, "").await?;
        let store = Self::assemble(pool, Some(write), Backend::Sqlite, 0);
        store.migrate().await?;
        #[cfg(unix)]
        restrict_permissions(path);
        Ok(store)
    }

    /// Connects to PostgreSQL and applies migrations (under an advisory lock, so replicas that
    /// start together migrate once).
    pub async fn open_postgres(options: &PostgresOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let opts = AnyConnectOptions::from_url(&options.url.parse().map_err(|_| {
            Error::Database(sqlx::Error::Configuration(
                format!("invalid database URL {}", redact_url(&options.url)).into(),
            ))
        })?)?;
        let direct = opts.clone();
        // One connection of its own first: a wrong host, password or database name fails here
        // with the server's own words rather than as a pool timeout.
        sqlx::Connection::close(
            <sqlx::AnyConnection as sqlx::Connection>::connect_with(&opts).await?,
        )
        .await?;
        let schema = options.schema.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .min_connections(1)
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                let schema = schema.clone();
                Box::pin(async move {
                    if let Some(schema) = schema {
                        conn.execute(sqlx::raw_sql(&format!(
                            "SET search_path TO \"{}\"",
                            schema.replace('"', "")
                        )))
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let mut store = Self::assemble(pool, None, Backend::Postgres, AUDIT_SETTLE_MS);
        store.direct = Some(Direct(direct));
        store.migrate().await?;
        Ok(store)
    }

    /// Seals audit rows only `ms` after they were written (PostgreSQL; tests of the delay).
    #[cfg(test)]
    pub(crate) fn with_audit_settle_ms(mut self, ms: i64) -> Self {
        if self.backend == Backend::Postgres {
            self.audit_settle_ms = ms;
        }
        self
    }

    /// Seals audit rows as soon as they are written (tests that seal right after writing).
    #[cfg(test)]
    pub(crate) fn without_audit_settle(mut self) -> Self {
        self.audit_settle_ms = 0;
        self
    }

    fn assemble(
        pool: AnyPool,
        write: Option<AnyPool>,
        backend: Backend,
        audit_settle_ms: i64,
    ) -> Self {
        let write = write.unwrap_or_else(|| pool.clone());
        let rotations = sessions::Rotations::start(write.clone(), backend);
        Self {
            pool,
            write,
            backend,
            rotations,
            audit_settle_ms,
            direct: None,
        }
    }

    /// Which database this is.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let result = self.migrate_on(&mut conn).await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    async fn migrate_on(&self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await?;
        let migrations = self.backend.migrations();
        let supported = migrations.last().map_or(0, |m| m.0);
        if let Some(&found) = applied
            .iter()
            .find(|v| !migrations.iter().any(|m| m.0 == **v))
        {
            return Err(Error::TooNew { found, supported });
        }
        // Every known migration not applied yet, in order (not only those above the newest
        // applied one, so that a migration numbered between two applied ones still runs).
        for &(version, sql) in migrations.iter().filter(|m| !applied.contains(&m.0)) {
            // Another process may be migrating the same database right now (an admin command
            // next to a starting server; PostgreSQL replicas are already serialised by the
            // advisory lock): take the write lock first, then look again.
            let mut tx = match self.backend {
                Backend::Sqlite => {
                    sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?
                }
                Backend::Postgres => sqlx::Connection::begin(&mut *conn).await?,
            };
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                tx.rollback().await?;
                continue;
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| Error::Migration { version, source })?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(OffsetDateTime::now_utc().unix_timestamp())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "database migration applied");
        }
        Ok(())
    }

    /// SQLite: copies the write-ahead log back into the database file without blocking the
    /// writer (`PASSIVE`). The server calls this every second. PostgreSQL: nothing to do.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
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

    /// Checks that the database answers reads on both pools and commits a write (a full disk
    /// fails only writes): one row of `health_probe` per process, updated in a transaction of
    /// its own.
    pub async fn probe(&self, process: &str, now: OffsetDateTime) -> Result<()> {
        self.ping().await?;
        let mut tx = tx::WriteTx::begin(&self.write, self.backend).await?;
        sqlx::query(
            "INSERT INTO health_probe (process, written_at) VALUES ($1, $2)
             ON CONFLICT (process) DO UPDATE SET written_at = excluded.written_at",
        )
        .bind(process)
        .bind(now.unix_timestamp())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Why the database does not answer, when [`Store::probe`] timed out: PostgreSQL's pool
    /// retries connecting until its timeout and then says only that, so one connection of its
    /// own names the cause (refused, no route, wrong password, the server shutting down).
    /// `None` when that connection works, or for SQLite.
    pub async fn diagnose(&self) -> Option<(Fault, String)> {
        let Direct(opts) = self.direct.as_ref()?;
        match <sqlx::AnyConnection as sqlx::Connection>::connect_with(opts).await {
            Ok(conn) => {
                let _ = sqlx::Connection::close(conn).await;
                None
            }
            Err(e) => {
                let e = Error::Database(e);
                Some((e.fault().unwrap_or(Fault::Unreachable), cause_chain(&e)))
            }
        }
    }

    /// Deletes expired device codes, web sessions, rate-limit windows and spent `jti`s. Returns rows removed.
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64> {
        let now = now.unix_timestamp();
        let mut n = 0;
        // Web sessions may still point at a device code about to go.
        sqlx::query(
            "UPDATE web_sessions SET device_id = NULL WHERE device_id IN (SELECT id FROM device_codes WHERE expires_at < $1)",
        )
        .bind(now - 3600)
        .execute(&self.write)
        .await?;
        n += sqlx::query("DELETE FROM device_codes WHERE expires_at < $1")
            .bind(now - 3600)
            .execute(&self.write)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM upstream_logins WHERE expires_at < $1")
            .bind(now)
            .execute(&self.write)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.write)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM used_jtis WHERE expires_at < $1")
            .bind(now)
            .execute(&self.write)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM health_probe WHERE written_at < $1")
            .bind(now - 86_400)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n)
    }
}

/// A pool of `size` SQLite connections, each set up with the pragmas every connection needs and
/// then `extra`.
async fn sqlite_pool(opts: AnyConnectOptions, size: u32, extra: &'static str) -> Result<AnyPool> {
    const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                           PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;";
    Ok(AnyPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(sqlx::raw_sql(PRAGMAS)).await?;
                if !extra.is_empty() {
                    conn.execute(sqlx::raw_sql(extra)).await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await?)
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

/// Refuses a file that exists, is not empty and does not start with SQLite's header, before
/// SQLite itself touches it (opening would not change it, but the WAL and journal files it
/// creates beside it would confuse whoever restores it).
fn check_sqlite_file(path: &Path) -> Result<()> {
    use std::io::Read as _;
    const HEADER: &[u8; 16] = b"SQLite format 3\0";
    let not = |reason: String| Error::NotSqlite {
        path: path.to_owned(),
        reason,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(not(format!("cannot read it: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| not(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(not("it is not a regular file".to_owned()));
    }
    if meta.len() == 0 {
        return Ok(());
    }
    let mut head = [0u8; 16];
    match file.read_exact(&mut head) {
        Ok(()) if &head == HEADER => Ok(()),
        Ok(()) => Err(not("its first bytes are not SQLite's header".to_owned())),
        Err(_) => Err(not(format!(
            "it is {} bytes long, shorter than a SQLite header",
            meta.len()
        ))),
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
    //! The database every unit test runs on: SQLite by default, or, with
    //! `CREDENTIAL_TEST_STORE=postgres`, a fresh schema on the PostgreSQL server at
    //! `CREDENTIAL_TEST_POSTGRES_URL` (tests/run.sh starts one and runs the suite both ways).
    use super::{PostgresOptions, Store};

    /// Where the tests' database lives.
    pub(crate) enum Place {
        /// `t.db` in the directory.
        Sqlite,
        /// A schema of its own on the test server.
        Postgres { url: String, schema: String },
    }

    /// A store on a fresh database (kept alive, with a scratch directory, by the returned guard).
    pub(crate) async fn temp_store() -> (Store, TestDb) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let place = match std::env::var("CREDENTIAL_TEST_STORE").as_deref() {
            Err(_) | Ok("" | "sqlite") => Place::Sqlite,
            Ok("postgres") => {
                let url = std::env::var("CREDENTIAL_TEST_POSTGRES_URL").unwrap_or_else(|_| {
                    panic!(
                        "CREDENTIAL_TEST_STORE=postgres needs CREDENTIAL_TEST_POSTGRES_URL, the URL \
                         of a PostgreSQL superuser (tests/run.sh starts a server and sets it; \
                         or `bash tests/postgres/start-postgres.sh DIR` prints one)"
                    )
                });
                let schema = format!(
                    "t_{}",
                    crate::secrets::secret::hex(&crate::secrets::secret::random_bytes(8))
                );
                create_schema(&url, &schema).await;
                Place::Postgres { url, schema }
            }
            Ok(other) => panic!("CREDENTIAL_TEST_STORE={other:?}: use sqlite or postgres"),
        };
        let db = TestDb { dir, place };
        let store = db.open().await.unwrap_or_else(|e| panic!("open: {e}"));
        (store, db)
    }

    pub(crate) async fn create_schema(url: &str, schema: &str) {
        use sqlx::{Connection as _, Executor as _};
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to the test PostgreSQL: {e}"));
        conn.execute(sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\"")))
            .await
            .unwrap_or_else(|e| panic!("create schema: {e}"));
        let _ = conn.close().await;
    }

    /// A test's database and scratch directory.
    pub(crate) struct TestDb {
        dir: tempfile::TempDir,
        place: Place,
    }

    impl TestDb {
        /// Opens the database again (a second process, or a restart).
        pub(crate) async fn open(&self) -> super::Result<Store> {
            match &self.place {
                Place::Sqlite => Store::open_sqlite(&self.dir.path().join("t.db")).await,
                Place::Postgres { url, schema } => {
                    let store = Store::open_postgres(&PostgresOptions {
                        url: url.clone(),
                        max_connections: 4,
                        schema: Some(schema.clone()),
                    })
                    .await?;
                    Ok(store.without_audit_settle())
                }
            }
        }

        /// Another empty database next to this one (a file in the directory, or a new schema).
        pub(crate) async fn another_location(&self) -> super::Location {
            match &self.place {
                Place::Sqlite => super::Location::Sqlite(self.dir.path().join("other.db")),
                Place::Postgres { url, schema } => {
                    let other = format!("{schema}_b");
                    create_schema(url, &other).await;
                    super::Location::Postgres(PostgresOptions {
                        url: url.clone(),
                        max_connections: 4,
                        schema: Some(other),
                    })
                }
            }
        }

        /// A scratch directory for the test.
        pub(crate) fn path(&self) -> &std::path::Path {
            self.dir.path()
        }
    }

    /// Account `id`, called `username`, in `groups`, without a password.
    pub(crate) async fn add_user(
        store: &Store,
        id: &str,
        username: &str,
        groups: &[&str],
        now: time::OffsetDateTime,
    ) {
        let user = super::NewUser {
            id: id.into(),
            username: username.into(),
            email: None,
            password_hash: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        store
            .create_user(&user, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Session `id` of `user_id`, opened at `now` for an hour.
    pub(crate) fn session(id: &str, user_id: &str, now: time::OffsetDateTime) -> super::Session {
        super::Session {
            id: id.into(),
            user_id: user_id.into(),
            client_id: "c".into(),
            cluster: "k".into(),
            created_at: now,
            expires_at: now + time::Duration::hours(1),
            revoked_at: None,
        }
    }

    /// Session `id` of `user_id` (see [`session`]) stored with refresh token `token`.
    pub(crate) async fn add_session(
        store: &Store,
        id: &str,
        user_id: &str,
        now: time::OffsetDateTime,
        token: &str,
    ) {
        store
            .create_session(&session(id, user_id, now), token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::temp_store;
    use super::*;

    #[test]
    fn both_dialects_have_the_same_migration_versions() {
        let versions = |b: Backend| b.migrations().iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(versions(Backend::Sqlite), versions(Backend::Postgres));
    }

    /// A data directory whose `issuer.db` is something else (a text file, a truncated copy, a
    /// database of another program's format) fails at once, naming the file, and the file is
    /// exactly as it was, with nothing created beside it.
    #[tokio::test]
    async fn a_file_that_is_not_a_sqlite_database_is_refused_at_once_and_left_untouched() {
        for (name, content) in [
            ("text", b"this is a backup of something else\n".repeat(100)),
            ("short", b"SQLite".to_vec()),
            ("garbage header", {
                let mut v = b"SQLite format 3\0".to_vec();
                v.extend(std::iter::repeat_n(0xAB_u8, 8192));
                v
            }),
        ] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("issuer.db");
            std::fs::write(&path, &content).unwrap_or_else(|e| panic!("{e}"));
            let err = Store::open_sqlite(&path)
                .await
                .err()
                .unwrap_or_else(|| panic!("{name}: a non-database was opened"));
            let text = err.to_string();
            assert!(matches!(err, Error::NotSqlite { .. }), "{name}: {err:?}");
            assert!(text.contains(&path.display().to_string()), "{name}: {text}");
            assert!(text.contains("left untouched"), "{name}: {text}");
            assert_eq!(std::fs::read(&path).unwrap_or_default(), content, "{name}");
            if name != "garbage header" {
                let names: Vec<_> = std::fs::read_dir(dir.path())
                    .unwrap_or_else(|e| panic!("{e}"))
                    .filter_map(|e| e.ok().map(|e| e.file_name()))
                    .collect();
                assert_eq!(names.len(), 1, "{name}: files created beside it: {names:?}");
            }
        }
    }

    #[test]
    fn database_urls_are_redacted() {
        let r = redact_url("postgres://issuer:s3cret@db.example:5432/issuer?sslmode=require");
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("issuer:***@db.example"), "{r}");
        assert!(!redact_url("not a url s3cret").contains("s3cret"));
    }

    /// Two processes opening a new database at the same moment (a server starting while an
    /// admin command runs, or replicas): both end up on the migrated schema, each migration
    /// applied once.
    #[tokio::test]
    async fn processes_migrating_together_apply_each_migration_once() {
        let (_first, db) = temp_store().await;
        let fresh = db.another_location().await;
        // Interleaved on one task: each waits on the database, so their migrations race there.
        let (a, b, c) = tokio::join!(
            Store::open(&fresh),
            Store::open(&fresh),
            Store::open(&fresh)
        );
        let stores: Vec<Store> = [a, b, c]
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("open: {e}")))
            .collect();
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(&stores[0].pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<i64> = stores[0].backend.migrations().iter().map(|m| m.0).collect();
        assert_eq!(versions, expected);
    }

    #[tokio::test]
    async fn migrations_are_idempotent_and_refuse_newer_schema() {
        let (store, dir) = temp_store().await;
        store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
            .execute(&store.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let err = dir.open().await.err();
        assert!(
            matches!(err, Some(Error::TooNew { found: 999, .. })),
            "{err:?}"
        );
    }
}
