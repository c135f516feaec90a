//! A real PostgreSQL for the tests: one server per test process, a fresh database per test.
//!
//! The server is the one `CREDENTIAL_TEST_POSTGRES_URL` names (tests/run.sh starts one per run
//! and exports it; a developer may point it at their own), or else a private one started by
//! `tests/postgres/start-postgres.sh` in a temporary directory and stopped by a reaper when the
//! test process ends. Either way it is reached over TCP with a password, as the issuer reaches
//! its database in production. Each test asks for its own database
//! ([`Postgres::fresh_database`]) so that tests running in parallel never see each other's rows.
//!
//! SQL runs through `psql` (from the `postgresql` package), not a Rust client: the harness stays
//! synchronous and small, and the tests only need to set up databases and look at a few rows.
//! The password is handed to `psql` in its environment, never on its command line, so neither
//! `ps` nor a failure message shows it; [`redact`] is the form of a URL fit for messages.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use url::Url;

use crate::process::{self, Outcome, Reaper};

/// The URL of a PostgreSQL superuser connection (database `postgres`) to run the tests against,
/// instead of starting a private server.
pub const URL_ENV: &str = "CREDENTIAL_TEST_POSTGRES_URL";

const INSTALL: &str = "apt-get install postgresql";

/// A PostgreSQL server the tests may create databases on.
pub struct Postgres {
    /// The superuser URL, password included.
    url: String,
    /// The server this handle started, if it started one.
    private: Option<Private>,
}

/// A server started by `start-postgres.sh`: its directory, and the reaper that stops it and
/// removes the directory when the handle drops or the test process dies.
struct Private {
    dir: PathBuf,
    _reaper: Reaper,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &redact(&self.url))
            .field("private_dir", &self.dir())
            .finish_non_exhaustive()
    }
}

static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();

impl Postgres {
    /// The server of this test process, set up by the first test that asks: the one
    /// [`URL_ENV`] names, else a private one ([`Postgres::start`]). If setting it up failed,
    /// every test that asks fails with the same message.
    #[track_caller]
    #[must_use]
    pub fn shared() -> &'static Self {
        let ready = SHARED.get_or_init(|| {
            std::panic::catch_unwind(|| match std::env::var(URL_ENV) {
                Ok(url) if !url.is_empty() => Self::given(url),
                _ => Self::start(),
            })
            .map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "unknown panic".to_owned())
            })
        });
        match ready {
            Ok(postgres) => postgres,
            Err(e) => panic!("the shared PostgreSQL server is not available:\n{e}"),
        }
    }

    /// Starts a private server with `tests/postgres/start-postgres.sh` in a new temporary
    /// directory (about a second). Dropping the handle stops it and removes the directory
    /// (kept when `E2E_KEEP` is set).
    #[track_caller]
    #[must_use]
    pub fn start() -> Self {
        let _psql = psql_binary();
        let bash = process::require("bash", "apt-get install bash");
        let dir = tempfile::Builder::new()
            .prefix("e2e-postgres.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
            .keep();
        let keep = process::keep_flag();
        // The reaper exists before the server, so even a failed start is cleaned up.
        let scripts = scripts_dir();
        let reaper = Reaper::spawn(
            "the PostgreSQL server",
            r#"bash "$1" "$2" >/dev/null 2>&1; [ -n "$3" ] || rm -rf "$2""#,
            &[
                scripts.join("stop-postgres.sh").as_os_str(),
                dir.as_os_str(),
                keep.as_ref(),
            ],
        );
        let out = process::run(
            Command::new(bash)
                .arg(scripts.join("start-postgres.sh"))
                .arg(&dir),
            None,
            Duration::from_secs(120),
        );
        // Not `{out}`: a complete stdout would be the URL, password and all.
        assert!(
            out.success(),
            "tests/postgres/start-postgres.sh {} failed (code {:?}; `{INSTALL}` installs the server):\n{}",
            dir.display(),
            out.code,
            out.stderr.trim_end()
        );
        let url = out.stdout.trim().to_owned();
        let parsed = parse(&url, "start-postgres.sh's output");
        assert!(
            parsed.password().is_some(),
            "start-postgres.sh printed a URL without a password: {}",
            redact(&url)
        );
        if !keep.is_empty() {
            eprintln!("harness: PostgreSQL directory (kept): {}", dir.display());
        }
        Self {
            url,
            private: Some(Private {
                dir,
                _reaper: reaper,
            }),
        }
    }

    /// The server `url` names (a superuser connection), after checking that it answers.
    #[track_caller]
    fn given(url: String) -> Self {
        let _parsed = parse(&url, URL_ENV);
        let postgres = Self { url, private: None };
        let out = postgres.try_psql(&postgres.url, "SELECT 1");
        assert!(
            out.success(),
            "{URL_ENV} ({}) does not answer: {out}",
            redact(&postgres.url)
        );
        postgres
    }

    /// The superuser URL (database `postgres`), password included: for programs under test,
    /// never for messages (see [`redact`]).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory of a server this handle started (data, `postgres.log`, the socket), or
    /// `None` for a server given by [`URL_ENV`].
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        self.private.as_ref().map(|p| p.dir.as_path())
    }

    /// Stops a server this handle started (`stop-postgres.sh`, an immediate shutdown): the
    /// database is down until [`Postgres::restart`].
    #[track_caller]
    pub fn stop(&self) {
        self.run_script("stop-postgres.sh", &[]);
    }

    /// Starts a server stopped by [`Postgres::stop`] again, on the same port and data.
    #[track_caller]
    pub fn restart(&self) {
        let port = parse(&self.url, "the server URL")
            .port()
            .unwrap_or(5432)
            .to_string();
        self.run_script("restart-postgres.sh", &[&port]);
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) every process of a server this handle started:
    /// connections stay open and nothing answers, as when the database's machine hangs.
    #[track_caller]
    pub fn freeze(&self, frozen: bool) {
        let dir = self.private_dir("freeze");
        let pid_file = dir.join("data/postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", pid_file.display()));
        let pid = pid.lines().next().unwrap_or_default().trim().to_owned();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        // The backends first, then the postmaster (which would otherwise notice them).
        let _ = Command::new("pkill").args([signal, "-P", &pid]).status();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    #[track_caller]
    fn private_dir(&self, what: &str) -> &Path {
        self.dir().unwrap_or_else(|| {
            panic!("{what}: only a server the test started itself (Postgres::start) can be")
        })
    }

    #[track_caller]
    fn run_script(&self, script: &str, args: &[&str]) {
        let dir = self.private_dir(script);
        let bash = process::require("bash", "apt-get install bash");
        let out = process::run(
            Command::new(bash)
                .arg(scripts_dir().join(script))
                .arg(dir)
                .args(args),
            None,
            Duration::from_secs(120),
        );
        assert!(
            out.success(),
            "tests/postgres/{script} failed:\n{}",
            out.stderr.trim_end()
        );
    }

    /// Creates a new database, named after `name_hint` and unique on this server (across test
    /// processes too), and returns its URL with the superuser's credentials.
    #[track_caller]
    #[must_use]
    pub fn fresh_database(&self, name_hint: &str) -> String {
        let name = unique_name(name_hint);
        self.psql(&self.url, &format!("CREATE DATABASE \"{name}\""));
        let mut url = parse(&self.url, "the server URL");
        url.set_path(&format!("/{name}"));
        url.into()
    }

    /// Runs `sql` (one or more statements) on the database `url` names and returns what it
    /// printed: one line per row, columns separated by `|`, no headers (`psql -At`). Fails the
    /// test with psql's error when a statement fails. Statements that print nothing (`CREATE`,
    /// `INSERT`) may ignore the result.
    #[track_caller]
    #[expect(
        clippy::must_use_candidate,
        reason = "statements such as CREATE and INSERT are run for their effect and print nothing"
    )]
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = self.try_psql(url, sql);
        assert!(out.success(), "SQL failed: {sql}\n{out}");
        out.stdout
    }

    /// Like [`Postgres::psql`], but returns how psql ended instead of failing the test, for
    /// statements that are meant to fail. Stops at the first failing statement.
    #[track_caller]
    #[must_use]
    pub fn try_psql(&self, url: &str, sql: &str) -> Outcome {
        let mut target = parse(url, "the database URL");
        let password = target.password().map(percent_decode);
        let _ = target.set_password(None);
        let mut cmd = Command::new(psql_binary());
        cmd.args(["--no-psqlrc", "--quiet", "--no-align", "--tuples-only"])
            .args(["--no-password", "--set=ON_ERROR_STOP=1", "--file=-"])
            .arg(format!("--dbname={target}"))
            // No ~/.pgpass, no service file: the URL says everything.
            .env("PGPASSFILE", "/dev/null")
            .env_remove("PGSERVICE")
            .env("PGCONNECT_TIMEOUT", "10");
        match password {
            Some(password) => cmd.env("PGPASSWORD", password),
            None => cmd.env_remove("PGPASSWORD"),
        };
        process::run(&mut cmd, Some(sql.as_bytes()), Duration::from_secs(60))
    }
}

/// `url` with its password replaced by `[redacted]`, for messages.
#[must_use]
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // `[` is percent-encoded in a password, so a plain placeholder goes in first.
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.as_str().replacen(":REDACTED@", ":[redacted]@", 1)
        }
        Ok(parsed) => parsed.into(),
        Err(_) => "[a URL that does not parse]".to_owned(),
    }
}

/// `tests/postgres`, where the start and stop scripts live.
#[must_use]
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("postgres")
}

/// `psql` of the newest PostgreSQL installed (`/usr/lib/postgresql/VERSION/bin`), else the one
/// on `PATH`.
#[track_caller]
#[must_use]
pub fn psql_binary() -> PathBuf {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let newest = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| {
                    let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                    let psql = entry.path().join("bin/psql");
                    psql.is_file().then_some((version, psql))
                })
                .max_by_key(|(version, _)| *version);
            newest
                .map(|(_, psql)| psql)
                .or_else(|| process::find_on_path("psql"))
        })
        .clone()
        .unwrap_or_else(|| {
            panic!(
                "psql not found: run `bash tests/run.sh` (installs every test dependency) or `{INSTALL}`"
            )
        })
}

#[track_caller]
fn parse(url: &str, what: &str) -> Url {
    let parsed =
        Url::parse(url).unwrap_or_else(|e| panic!("{what} is not a URL ({e}): {}", redact(url)));
    assert!(
        matches!(parsed.scheme(), "postgres" | "postgresql") && parsed.host().is_some(),
        "{what} is not a postgres://USER:PASSWORD@HOST:PORT/DATABASE URL: {}",
        redact(url)
    );
    parsed
}

/// A database name made of `hint` (lowercase letters, digits and `_` only) and what makes it
/// unique: this process, a counter and random bits (another run may have used the same pid on a
/// server given by [`URL_ENV`]). At most 63 bytes, PostgreSQL's limit.
fn unique_name(hint: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let hint: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(20)
        .collect();
    let mut random = [0_u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
        .unwrap_or_else(|e| panic!("cannot read /dev/urandom: {e}"));
    format!(
        "test_{hint}_{}_{}_{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        u32::from_be_bytes(random)
    )
}

/// Decodes `%XX` escapes (a URL's password is stored percent-encoded).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password_and_decodes_escapes() {
        assert_eq!(
            redact("postgres://app:s%2Fcret@db:5432/issuer?sslmode=require"),
            "postgres://app:[redacted]@db:5432/issuer?sslmode=require"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(percent_decode("s%2Fcr%25et%zz%4"), "s/cr%et%zz%4");
    }

    #[test]
    fn database_names_are_unique_safe_identifiers() {
        let a = unique_name("Device flow: hit/miss, and a much longer hint than needed");
        let b = unique_name("Device flow: hit/miss, and a much longer hint than needed");
        assert_ne!(a, b);
        assert!(a.starts_with("test_device_flow__hit_mis_"), "{a}");
        assert!(a.len() <= 63, "{a} is longer than PostgreSQL's 63 bytes");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{a}"
        );
    }

    /// The real thing, on the server the tests use: two fresh databases do not see each other's
    /// tables, and the server wants the password its URL carries (a server that trusts every
    /// connection would let a test pass that production would fail).
    #[test]
    fn shared_server_gives_isolated_databases_behind_a_password() {
        let pg = Postgres::shared();
        let a = pg.fresh_database("selftest a");
        let b = pg.fresh_database("selftest b");
        assert_ne!(a, b);

        pg.psql(
            &a,
            "CREATE TABLE leases (name text PRIMARY KEY, holder text);\n\
             INSERT INTO leases VALUES ('leader', 'replica-1');",
        );
        assert_eq!(
            pg.psql(&a, "SELECT name, holder FROM leases").trim(),
            "leader|replica-1"
        );
        assert_eq!(
            pg.psql(&b, "SELECT to_regclass('leases') IS NULL").trim(),
            "t",
            "a table created in one fresh database is visible in another"
        );
        pg.try_psql(&b, "SELECT holder FROM leases")
            .assert_failure()
            .assert_stderr_contains("does not exist");
        let name = Url::parse(&b)
            .map(|u| u.path().trim_start_matches('/').to_owned())
            .unwrap_or_default();
        assert_eq!(pg.psql(&b, "SELECT current_database()").trim(), name);

        let mut wrong = Url::parse(&a).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            wrong.password().is_some_and(|p| !p.is_empty()),
            "{URL_ENV} or start-postgres.sh must give a URL with a password: {}",
            redact(&a)
        );
        let _ = wrong.set_password(Some("not-the-password"));
        let refused = pg.try_psql(wrong.as_str(), "SELECT 1");
        assert!(
            !refused.success(),
            "a wrong password was accepted: the server must check passwords (scram-sha-256), \
             not trust every connection: {refused}"
        );
        refused.assert_stderr_contains("password authentication failed");
    }

    /// A private server from start-postgres.sh (tested even when tests/run.sh hands the shared
    /// one in by URL): it answers on its URL, and after drop it is stopped and its directory gone.
    #[test]
    fn private_server_starts_and_is_gone_after_drop() {
        let pg = Postgres::start();
        let url = Url::parse(pg.url()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert_eq!(url.path(), "/postgres");
        assert_eq!(
            pg.psql(pg.url(), "SHOW fsync; SHOW max_connections;")
                .trim(),
            "off\n300"
        );
        assert!(
            !format!("{pg:?}").contains(url.password().unwrap_or("no password")),
            "Debug shows the password: {pg:?}"
        );
        let dir = pg.dir().map(Path::to_owned).unwrap_or_default();
        let port = url.port().unwrap_or(5432);
        drop(pg);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server still accepts connections on port {port} after drop"
        );
        if std::env::var_os(crate::control_plane::KEEP_ENV).is_none() {
            assert!(!dir.exists(), "{} was not removed", dir.display());
        }
    }
}
