//! Plugin processes running in the background while a test does something else (approves a
//! code in the browser, starts nineteen more): started with piped output, their stderr
//! collected as it comes.

use std::io::Read as _;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::wait::{self, Check};
use e2e::UserEnv;

/// A running `kubectl-credential`.
pub(crate) struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

/// What a finished process left.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Running {
    /// Starts `kubectl-credential ARGS` in `env`, with `exec_info` as `KUBERNETES_EXEC_INFO`.
    pub(crate) fn start(env: &UserEnv, args: &[String], exec_info: Option<&str>) -> Self {
        let mut cmd = env.command(&e2e::bins::kubectl_credential());
        cmd.args(args);
        Self::spawn(cmd, exec_info)
    }

    /// As [`Running::start`], but from a parent process of its own, as every kubectl command
    /// is: the plugin takes a second call from the same parent for the same cached token to be
    /// kubectl's retry after a 401, and refreshes.
    pub(crate) fn start_as_kubectl_would(env: &UserEnv, args: &[String], exec_info: &str) -> Self {
        let mut cmd = env.command(std::path::Path::new("/bin/sh"));
        cmd.arg("-c")
            .arg(r#""$0" "$@"; exit $?"#)
            .arg(e2e::bins::kubectl_credential())
            .args(args);
        Self::spawn(cmd, Some(exec_info))
    }

    fn spawn(mut cmd: std::process::Command, exec_info: Option<&str>) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(info) = exec_info {
            cmd.env("KUBERNETES_EXEC_INFO", info);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kubectl-credential: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child
            .stderr
            .take()
            .unwrap_or_else(|| panic!("no stderr pipe"));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Self { child, stderr }
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub(crate) fn interrupt(&self) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0))
            .unwrap_or_else(|| panic!("no pid"));
        rustix::process::kill_process(pid, rustix::process::Signal::INT)
            .unwrap_or_else(|e| panic!("cannot send SIGINT: {e}"));
    }

    /// What it printed on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for it to exit.
    pub(crate) fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "kubectl-credential did not finish; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        // The reader thread may still be draining the pipe: wait for the end of the stream.
        let _ = wait::until("stderr drained", Duration::from_secs(5), || {
            if Arc::strong_count(&self.stderr) == 1 {
                Check::Done(())
            } else {
                Check::Retry(String::new())
            }
        });
        Finished {
            status,
            stdout,
            stderr: self.stderr(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A counter from the issuer's `/metrics`.
pub(crate) fn metric(issuer: &e2e::Issuer, name: &str) -> u64 {
    let agent = e2e::http::agent(issuer.ca_file());
    let resp = e2e::http::response(agent.get(&format!("{}/metrics", issuer.url())).call())
        .unwrap_or_else(|e| panic!("/metrics: {e}"));
    resp.body
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{}", resp.body))
}

/// Waits until one of `running` shows a user code, and returns it.
pub(crate) fn wait_for_code(running: &[&Running]) -> String {
    wait::until(
        "a user code is shown",
        Duration::from_secs(30),
        || match running
            .iter()
            .find_map(|r| e2e::plugin::find_user_code(&r.stderr()).map(str::to_owned))
        {
            Some(c) => Check::Done(c),
            None => Check::Retry("no code yet".to_owned()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// An issuer of a test's own (its settings and `/metrics` are not shared with other tests),
/// serving the one cluster `CLUSTER`, with one account in `k8s-readers`.
pub(crate) struct OwnIssuer {
    pub(crate) issuer: e2e::Issuer,
    pub(crate) username: String,
    pub(crate) password: String,
}

impl OwnIssuer {
    /// Starts it with `options` (its `clusters` are replaced by the one cluster).
    pub(crate) fn start(username: &str, options: e2e::IssuerOptions) -> Self {
        let issuer = e2e::Issuer::start(&e2e::IssuerOptions {
            clusters: vec![(
                crate::world::CLUSTER.to_owned(),
                crate::world::AUDIENCE.to_owned(),
            )],
            ..options
        });
        let password = format!("{username} password 1234");
        issuer.add_user(username, &[crate::world::READERS], &password);
        Self {
            issuer,
            username: username.to_owned(),
            password,
        }
    }

    /// Starts it with tokens that live two seconds.
    pub(crate) fn with_short_tokens(username: &str) -> Self {
        Self::start(
            username,
            e2e::IssuerOptions {
                token_ttl: "2s".to_owned(),
                ..e2e::IssuerOptions::default()
            },
        )
    }

    /// Starts it publishing `world`'s API server and CA for its cluster.
    pub(crate) fn with_api_server(username: &str, world: &crate::world::World) -> Self {
        Self::start(
            username,
            e2e::IssuerOptions {
                api_server: Some(world.api_server()),
                ..e2e::IssuerOptions::default()
            },
        )
    }

    /// A copy of the issuer's CA in `env`'s home, which outlives the issuer.
    pub(crate) fn copied_ca(&self, env: &UserEnv) -> std::path::PathBuf {
        let ca = env.home().join("issuer-ca.crt");
        std::fs::copy(self.issuer.ca_file(), &ca).unwrap_or_else(|e| panic!("{e}"));
        ca
    }

    /// The plugin's arguments for it, with a file cache, trusting `ca` (a copy of the issuer's
    /// CA that outlives the issuer, or the issuer's own).
    pub(crate) fn plugin_args(&self, ca: std::path::PathBuf) -> e2e::PluginArgs {
        e2e::PluginArgs {
            issuer: self.issuer.url().to_owned(),
            cluster: crate::world::CLUSTER.to_owned(),
            issuer_ca: ca,
            token_cache: e2e::TokenCache::File,
        }
    }

    /// `kubectl-credential login` in `env`, approved in the browser by the account.
    pub(crate) fn log_in(&self, env: &UserEnv, plugin: &e2e::PluginArgs) {
        let login = env.start_login(plugin);
        let _ = self
            .issuer
            .browser()
            .approve(login.user_code(), &self.username, &self.password);
        login.finish(Duration::from_secs(60)).assert_success();
    }
}

/// Waits until the wall clock has passed the Unix time `t` (a cached token's `exp`).
pub(crate) fn wait_until_past(t: i64) {
    wait::until("the cached token expires", Duration::from_secs(30), || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if now >= t {
            Check::Done(())
        } else {
            Check::Retry(format!("{} s left", t - now))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}
