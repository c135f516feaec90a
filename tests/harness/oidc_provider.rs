//! The upstream OpenID provider: `tests/oidc-provider/server.mjs` (the OpenID Certified
//! `oidc-provider` package on Node), started on `127.0.0.1` with a free port it picks itself and
//! prints, and stopped on drop. Tests change a person's groups or disable them through its small
//! admin API, as an identity team would at the company's identity provider, or rotate its
//! signing key under the same key id; it can announce a proxy in front of it as its issuer.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use crate::process::{self, Collector, Reaper};

/// How long Node may take to load the provider and listen. It needs about a second on a quiet
/// machine; in CI it starts while kube-apiserver, etcd and issuer replicas of other tests start
/// on the same two cores, and once took longer than 30 s there.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// What to run when the provider's packages are not installed.
pub const INSTALL_HINT: &str = "run `npm ci --prefix tests/oidc-provider` (tests/run.sh does it)";

/// A person with an account at the provider.
#[derive(Debug, Clone)]
pub struct Account {
    /// Login name at the provider.
    pub username: String,
    /// Password at the provider.
    pub password: String,
    /// E-mail address (the issuer's default username claim).
    pub email: String,
    /// Groups at the provider.
    pub groups: Vec<String>,
}

/// The client the issuer is registered as.
#[derive(Debug, Clone)]
pub struct Client {
    /// Client id.
    pub id: String,
    /// Client secret.
    pub secret: String,
    /// The issuer's callback URL.
    pub redirect_uri: String,
}

/// A running provider. The processes sit behind a `Mutex` so that it is `Sync` and can live in
/// the e2e world (a `static`).
#[derive(Debug)]
pub struct OidcProvider {
    url: String,
    /// Where it listens (the same as the issuer's address unless it announces a proxy's).
    address: String,
    admin_token: String,
    pgid: u32,
    dir: tempfile::TempDir,
    procs: Mutex<Procs>,
}

#[derive(Debug)]
struct Procs {
    child: Option<Child>,
    stderr: Option<Collector>,
    reaper: Option<Reaper>,
}

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

impl OidcProvider {
    /// Starts the provider with `client` and `accounts`; returns once it prints its URL (at
    /// most [`START_TIMEOUT`]). Fails the test, saying how to install, when Node or the package is missing.
    #[track_caller]
    #[must_use]
    pub fn start(client: &Client, accounts: &[Account]) -> Self {
        Self::start_announcing(client, accounts, None)
    }

    /// Like [`OidcProvider::start`], but announcing `issuer` (a proxy in front of it, such as
    /// [`crate::fault_proxy::FaultProxy`]) as its issuer URL.
    #[track_caller]
    #[must_use]
    pub fn start_announcing(client: &Client, accounts: &[Account], issuer: Option<&str>) -> Self {
        let node = process::require(
            "node",
            "install Node.js 20.19 or newer (Debian: apt-get install nodejs npm)",
        );
        let pkg = package_dir();
        assert!(
            pkg.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "the upstream OpenID provider's packages are not installed: {INSTALL_HINT}"
        );
        let dir = tempfile::Builder::new()
            .prefix("e2e-oidc-provider.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let accounts_file = dir.path().join("accounts.json");
        let json: Vec<serde_json::Value> = accounts
            .iter()
            .map(|a| {
                serde_json::json!({
                    "username": a.username, "password": a.password,
                    "email": a.email, "groups": a.groups,
                })
            })
            .collect();
        std::fs::write(&accounts_file, serde_json::Value::from(json).to_string())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", accounts_file.display()));
        let admin_token = format!("admin-{}", std::process::id());
        let mut command = Command::new(node);
        command
            .arg(pkg.join("server.mjs"))
            .current_dir(&pkg)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OIDC_CLIENT_ID", &client.id)
            .env("OIDC_CLIENT_SECRET", &client.secret)
            .env("OIDC_REDIRECT_URI", &client.redirect_uri)
            .env("OIDC_ACCOUNTS_FILE", &accounts_file)
            .env("OIDC_ADMIN_TOKEN", &admin_token);
        if let Some(issuer) = issuer {
            command.env("OIDC_ISSUER", issuer);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {}: {e}", pkg.display()));
        let pgid = child.id();
        let reaper = Reaper::spawn(
            "the OpenID provider",
            r#"kill -TERM -- "-$1" 2>/dev/null || exit 0
for _ in $(seq 1 50); do kill -0 -- "-$1" 2>/dev/null || exit 0; sleep 0.1; done
kill -KILL -- "-$1" 2>/dev/null || true"#,
            &[pgid.to_string()],
        );
        let stderr = process::collect(child.stderr.take());
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut address = String::new();
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(a) = line.strip_prefix("address ") {
                        a.trim().clone_into(&mut address);
                    }
                    if let Some(url) = line.strip_prefix("listening ") {
                        let _ = tx.send((url.trim().to_owned(), address.clone()));
                    }
                }
            });
        }
        let mut provider = Self {
            url: String::new(),
            address: String::new(),
            admin_token,
            pgid,
            dir,
            procs: Mutex::new(Procs {
                child: Some(child),
                stderr: Some(stderr),
                reaper: Some(reaper),
            }),
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok((url, address)) => {
                provider.url = url;
                provider.address = address;
            }
            Err(e) => {
                let how = match e {
                    mpsc::RecvTimeoutError::Disconnected => {
                        "exited before printing its URL".to_owned()
                    }
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("did not print its URL within {START_TIMEOUT:?}")
                    }
                };
                let log = provider.stop();
                panic!("the OpenID provider {how}; its stderr:\n{log}\n(if a package is missing: {INSTALL_HINT})");
            }
        }
        provider
    }

    /// `http://127.0.0.1:PORT`, its issuer.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A directory that lives as long as the provider (for the issuer's client secret file).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where it listens, for a proxy in front of it.
    #[must_use]
    pub fn address(&self) -> std::net::SocketAddr {
        self.address.parse().unwrap_or_else(|e| {
            panic!(
                "the OpenID provider printed a bad address {:?}: {e}",
                self.address
            )
        })
    }

    /// Replaces the provider's signing key by a new one under the same key id.
    #[track_caller]
    pub fn rotate_key_keeping_kid(&self) {
        let url = format!("http://{}/admin/rotate-key-same-kid", self.address);
        let resp = ureq::post(&url)
            .set("Authorization", &format!("Bearer {}", self.admin_token))
            .call();
        if let Err(e) = resp {
            panic!("the OpenID provider's admin API refused the key rotation: {e}");
        }
    }

    fn admin(&self, username: &str, change: &serde_json::Value) {
        let url = format!("http://{}/admin/accounts/{username}", self.address);
        let resp = ureq::post(&url)
            .set("Authorization", &format!("Bearer {}", self.admin_token))
            .set("Content-Type", "application/json")
            .send_string(&change.to_string());
        if let Err(e) = resp {
            panic!("the OpenID provider's admin API refused {change} for {username}: {e}");
        }
    }

    /// Replaces `username`'s groups at the provider.
    #[track_caller]
    pub fn set_groups(&self, username: &str, groups: &[&str]) {
        self.admin(username, &serde_json::json!({ "groups": groups }));
    }

    /// Disables (or enables again) `username` at the provider.
    #[track_caller]
    pub fn set_disabled(&self, username: &str, disabled: bool) {
        self.admin(username, &serde_json::json!({ "disabled": disabled }));
    }

    /// Freezes the provider (`SIGSTOP` to its process group), as a provider that hangs: the
    /// kernel still accepts connections, but nothing answers them, so the issuer's calls time
    /// out. Its state (sessions, refresh tokens) is kept for [`OidcProvider::resume`].
    pub fn pause(&self) {
        process::kill_group(self.pgid, rustix::process::Signal::STOP);
    }

    /// Lets a paused provider run again; it answers as before.
    pub fn resume(&self) {
        process::kill_group(self.pgid, rustix::process::Signal::CONT);
    }

    fn stop(&mut self) -> String {
        process::kill_group(self.pgid, rustix::process::Signal::TERM);
        // A paused provider acts on SIGTERM only once it runs again.
        self.resume();
        let procs = match self.procs.get_mut() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(mut child) = procs.child.take() {
            if process::wait_for(&mut child, Duration::from_secs(10)).is_none() {
                eprintln!("harness: the OpenID provider ignored SIGTERM and was killed");
            }
        }
        drop(procs.reaper.take());
        procs
            .stderr
            .take()
            .map(Collector::finish)
            .unwrap_or_default()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
