//! Faults under the store, for real: a small tmpfs filled under SQLite and under a PostgreSQL
//! tablespace, a PostgreSQL connection killed in the middle of a transaction, a statement
//! timeout. Every answered write must be durable, every other one must fail with a passing
//! [`Fault`], and the same store must work again once the fault is gone, with no restart.
//!
//! Mounting needs root (CI and tests/run.sh have it); the PostgreSQL tests need the server
//! `CREDENTIAL_TEST_POSTGRES_URL` names, on this machine (tests/run.sh starts one).

use super::test_support::{add_session, add_user, create_schema};
use super::*;
use crate::store::sessions::tests::next;

/// A small tmpfs mounted for one test, unmounted on drop.
pub(crate) struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts `size` (e.g. `"8m"`), its root owned by `uid` (PostgreSQL's tablespace must
    /// belong to the server's user).
    pub(crate) fn mount(size: &str, uid: Option<u32>) -> Self {
        Self::mount_with(&match uid {
            Some(uid) => format!("size={size},mode=0700,uid={uid}"),
            None => format!("size={size},mode=0700"),
        })
    }

    /// Mounts a tmpfs with these `mount -o` options (`ro` for a read-only one).
    pub(crate) fn mount_with(opts: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run mount: {e}"));
        assert!(
            out.status.success(),
            "this test needs a real tmpfs ({opts}) and must mount one: run it as root (CI and \
             tests/run.sh do): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Writes a filler file into `disk` until it is full, then gives back `slack` bytes of it.
fn fill(disk: &Path, slack: u64) -> std::path::PathBuf {
    use std::io::Write as _;
    let path = disk.join("filler");
    let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let len = f.metadata().map_or(0, |m| m.len());
    f.set_len(len.saturating_sub(slack))
        .unwrap_or_else(|e| panic!("{e}"));
    path
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The superuser URL of the test server; these tests need it whichever store the suite runs.
fn postgres_url() -> String {
    std::env::var("CREDENTIAL_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "this test needs a PostgreSQL server on this machine: set CREDENTIAL_TEST_POSTGRES_URL \
             to a superuser URL (tests/run.sh starts one and sets it; \
             `bash tests/postgres/start-postgres.sh DIR` prints one)"
        )
    })
}

/// A connection of the test's own (as psql would be), in `schema`.
async fn admin(url: &str, schema: Option<&str>) -> sqlx::AnyConnection {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL: {e}"));
    if let Some(schema) = schema {
        conn.execute(sqlx::raw_sql(&format!("SET search_path TO \"{schema}\"")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    conn
}

async fn sql(conn: &mut sqlx::AnyConnection, statement: &str) {
    conn.execute(sqlx::raw_sql(statement))
        .await
        .unwrap_or_else(|e| panic!("{statement}: {}", cause_chain(&e)));
}

/// A store on a new schema of the test server, with `extra` appended to the URL's query.
async fn postgres_location(url: &str, extra: &str) -> (Location, String) {
    let schema = format!(
        "f_{}",
        crate::secrets::secret::hex(&crate::secrets::secret::random_bytes(8))
    );
    create_schema(url, &schema).await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = if extra.is_empty() {
        url.to_owned()
    } else {
        format!("{url}{sep}{extra}")
    };
    let location = Location::Postgres(PostgresOptions {
        url,
        max_connections: 4,
        schema: Some(schema.clone()),
    });
    (location, schema)
}

/// One account and one session with refresh token `t0`.
async fn one_session(store: &Store, now: OffsetDateTime) {
    add_user(store, "u", "u", &[], now).await;
    add_session(store, "s", "u", now, "t0").await;
}

const BY: Presenter<'static> = Presenter {
    client_id: "c",
    client_addr: "a",
    request_id: "r",
    token_detail: "{}",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_answered_rotations_survive_a_full_disk_and_the_store_recovers() {
    let disk = SmallDisk::mount("8m", None);
    full_disk_scenario(
        &Location::Sqlite(disk.path().join("issuer.db")),
        disk.path(),
    )
    .await;
}

/// PostgreSQL's data files on a full disk: the test schema's sessions and audit tables live in
/// a tablespace on the small tmpfs (the server's WAL stays where it is, so the server itself
/// keeps running, as with a full data volume).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answered_rotations_survive_a_full_disk_and_the_store_recovers() {
    let url = postgres_url();
    let mut conn = admin(&url, None).await;
    let data_dir: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("the test server's data directory: {e}"));
    let uid = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&data_dir)
            .unwrap_or_else(|e| {
                panic!("{data_dir}: {e} (the test PostgreSQL must run on this machine)")
            })
            .uid()
    };
    let disk = SmallDisk::mount("8m", Some(uid));
    let space = format!(
        "ts_{}",
        crate::secrets::secret::hex(&crate::secrets::secret::random_bytes(6))
    );
    sql(
        &mut conn,
        &format!(
            "CREATE TABLESPACE {space} LOCATION '{}'",
            disk.path().display()
        ),
    )
    .await;
    let (location, schema) = postgres_location(&url, "").await;
    let _cleanup = DropTablespace {
        url: url.clone(),
        schema: schema.clone(),
        space: space.clone(),
    };
    // Migrate, then move the tables a refresh writes onto the small disk.
    drop(
        Store::open(&location)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let mut in_schema = admin(&url, Some(&schema)).await;
    for table in ["sessions", "audit_events"] {
        sql(
            &mut in_schema,
            &format!("ALTER TABLE {table} SET TABLESPACE {space}"),
        )
        .await;
    }
    drop(in_schema);
    full_disk_scenario(&location, disk.path()).await;
}

/// Drops the test's schema and tablespace, also when the test fails, and before the disk is
/// unmounted: a server holding buffers of files that vanished fails every checkpoint after.
struct DropTablespace {
    url: String,
    schema: String,
    space: String,
}

impl Drop for DropTablespace {
    fn drop(&mut self) {
        let (url, schema, space) = (self.url.clone(), self.schema.clone(), self.space.clone());
        // Its own thread and runtime: this may run while the test's runtime unwinds.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            rt.block_on(async {
                let mut conn = admin(&url, None).await;
                sql(
                    &mut conn,
                    &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
                )
                .await;
                sql(&mut conn, &format!("DROP TABLESPACE IF EXISTS {space}")).await;
            });
        })
        .join();
    }
}

/// A store on a new schema (`extra` appended to its URL) with one session, and another
/// connection inside a transaction holding that session's row: the store's rotation of `t0`
/// will wait in its `UPDATE`.
async fn behind_a_held_lock(
    url: &str,
    extra: &str,
) -> (Store, sqlx::AnyConnection, OffsetDateTime) {
    let (location, schema) = postgres_location(url, extra).await;
    let store = Store::open(&location)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = OffsetDateTime::now_utc();
    one_session(&store, now).await;
    let mut holder = admin(url, Some(&schema)).await;
    sql(
        &mut holder,
        "BEGIN; SELECT id FROM sessions WHERE id = 's' FOR UPDATE",
    )
    .await;
    (store, holder, now)
}

/// The issuer's connection is killed by the server (`pg_terminate_backend`: what a failover, an
/// operator or a connection limit does) while its rotation waits inside a transaction: the
/// request fails with a passing fault, nothing was spent, and the pool works on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_connection_killed_mid_transaction_spends_nothing() {
    let url = postgres_url();
    let (store, mut holder, now) = behind_a_held_lock(&url, "").await;
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = store.clone();
    let rotation = tokio::spawn(async move { s.rotate_refresh("t0", next("t1"), now, BY).await });
    let mut killer = admin(&url, None).await;
    let mut terminated = 0_i64;
    for _ in 0..100 {
        // Exactly the backend our lock holds up.
        terminated = sqlx::query_scalar(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE {holder_pid} = ANY(pg_blocking_pids(pid))"
        ))
        .fetch_one(&mut killer)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        if terminated > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        terminated > 0,
        "the rotation never waited on the lock: the test proves nothing"
    );
    let err = rotation
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .err()
        .unwrap_or_else(|| panic!("a rotation on a killed connection succeeded"));
    assert_eq!(
        err.fault(),
        Some(Fault::Unreachable),
        "{}",
        cause_chain(&err)
    );
    sql(&mut holder, "ROLLBACK").await;
    // Nothing was spent: the client's token still rotates, on a fresh connection.
    let o = store
        .rotate_refresh("t0", next("t1"), now, BY)
        .await
        .unwrap_or_else(|e| panic!("after the kill: {}", cause_chain(&e)));
    assert!(matches!(o, RotateOutcome::Rotated(..)), "{o:?}");
}

/// A statement that runs past the server's `statement_timeout` (set by an operator on the role,
/// or, here, in the URL's options) fails with [`Fault::TimedOut`] and spends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_statement_timeout_spends_nothing() {
    let url = postgres_url();
    let (store, mut holder, now) =
        behind_a_held_lock(&url, "options=-c%20statement_timeout%3D300").await;
    let err = store
        .rotate_refresh("t0", next("t1"), now, BY)
        .await
        .err()
        .unwrap_or_else(|| panic!("a rotation behind a held lock succeeded"));
    assert_eq!(err.fault(), Some(Fault::TimedOut), "{}", cause_chain(&err));
    sql(&mut holder, "ROLLBACK").await;
    let o = store
        .rotate_refresh("t0", next("t1"), now, BY)
        .await
        .unwrap_or_else(|e| panic!("after the timeout: {}", cause_chain(&e)));
    assert!(matches!(o, RotateOutcome::Rotated(..)), "{o:?}");
}

/// Rotations of 40 sessions in parallel rounds while the disk fills: every answered rotation is
/// durable (another process sees it at once, a restart keeps it, each has its audit row), every
/// other one fails with [`Fault::DiskFull`], and once there is room again the same store (no
/// restart) rotates every session and seals the audit trail.
async fn full_disk_scenario(location: &Location, disk: &Path) {
    let open = || async {
        Store::open(location)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"))
            .without_audit_settle()
    };
    let store = open().await;
    let now = OffsetDateTime::now_utc();
    add_user(&store, "u", "u", &["g"], now).await;
    let sessions = 40;
    for i in 0..sessions {
        add_session(&store, &format!("s{i}"), "u", now, &format!("t{i}-0")).await;
    }
    // A large detail, as for a person in many groups: each answered rotation adds an audit row
    // of some kilobytes (random, so that PostgreSQL cannot compress it away), and the database
    // grows until the disk is full.
    let detail: &'static str = Box::leak(
        format!(
            r#"{{"groups":["{}"],"grants":[]}}"#,
            crate::secrets::secret::hex(&crate::secrets::secret::random_bytes(1500))
        )
        .into_boxed_str(),
    );
    let by = Presenter {
        client_id: "c",
        client_addr: "a",
        request_id: "r",
        token_detail: detail,
    };
    // The live token of each session, as its client would hold it: moved on only when a
    // rotation was answered.
    let mut live: Vec<String> = (0..sessions).map(|i| format!("t{i}-0")).collect();
    let filler = fill(disk, 1024 * 1024);
    let mut answered = 0;
    let mut failed = 0;
    for round in 1..=20 {
        // As the server does every second; it may fail too while the disk is full.
        let _ = store.checkpoint().await;
        let mut tasks = Vec::new();
        for (i, old) in live.iter().enumerate() {
            let s = store.clone();
            let old = old.clone();
            let new = format!("t{i}-{round}");
            tasks.push(tokio::spawn(async move {
                let r = s.rotate_refresh(&old, next(&new), now, by).await;
                (i, new, r)
            }));
        }
        for t in tasks {
            let (i, new, r) = t.await.unwrap_or_else(|e| panic!("{e}"));
            match r {
                Ok(RotateOutcome::Rotated(..)) => {
                    answered += 1;
                    live[i] = new;
                }
                Ok(other) => panic!("session {i}: {other:?}"),
                Err(e) => {
                    assert_eq!(e.fault(), Some(Fault::DiskFull), "{}", cause_chain(&e));
                    failed += 1;
                }
            }
        }
    }
    eprintln!("disk full: {answered} answered, {failed} failed");
    assert!(failed > 0, "the disk never filled: the test proves nothing");
    assert!(answered > 0, "nothing was answered before the disk filled");
    // Another process sees every answered rotation while the disk is still full.
    let other = open().await;
    for (i, token) in live.iter().enumerate() {
        let found = other
            .session_by_refresh(token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            found.is_some(),
            "session {i}: answered token {token} is not in the database"
        );
    }
    drop(other);
    // Room again: the store recovers by itself.
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    store
        .checkpoint()
        .await
        .unwrap_or_else(|e| panic!("checkpoint with room again: {e}"));
    for (i, old) in live.clone().iter().enumerate() {
        if i % 8 == 0 {
            store
                .checkpoint()
                .await
                .unwrap_or_else(|e| panic!("checkpoint: {}", cause_chain(&e)));
        }
        let new = format!("t{i}-after");
        match store.rotate_refresh(old, next(&new), now, by).await {
            Ok(RotateOutcome::Rotated(..)) => live[i] = new,
            other => panic!("session {i} after the disk had room again: {other:?}"),
        }
    }
    // Audit sealing works again too.
    assert!(
        store
            .seal_audit(SEAL_BATCH)
            .await
            .unwrap_or_else(|e| panic!("seal: {e}"))
            > 0
    );
    // Another process (a restart) sees every answered rotation, each with its audit row.
    drop(store);
    let again = open().await;
    assert_eq!(
        again.count_events("refresh").await.unwrap_or_default(),
        answered + sessions,
        "one audit row per answered rotation, none for a failed one"
    );
    for (i, token) in live.iter().enumerate() {
        let found = again
            .session_by_refresh(token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            found.is_some(),
            "session {i}: answered token {token} was lost"
        );
    }
}
