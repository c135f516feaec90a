//! The person's machine: the `kubectl-credential` plugin and `kubectl`, run as child processes
//! with a private home directory, and the kubeconfig that connects the two.
//!
//! Every child gets a fresh `HOME` and `XDG_*` directories (so no test reads the developer's
//! real token cache or keyring), a `BROWSER` that only records that it was asked to open
//! something (so a test can prove no browser was opened), and no session bus unless the test
//! starts a [`crate::SecretService`] for it.

use std::fmt::{self, Write as _};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use credential_shared::exec_credential::ApiVersion;
use serde::Deserialize;

use crate::process::{self, Outcome};

/// How long one plugin or kubectl call may take before the test fails.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The plugin's exit codes (its documented interface).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// Non-interactive and no usable session: the person must run `kubectl credential login`.
    pub const LOGIN_REQUIRED: i32 = 3;
    /// The issuer could not be reached.
    pub const ISSUER_UNREACHABLE: i32 = 4;
    /// The login was denied or expired.
    pub const LOGIN_REFUSED: i32 = 5;
    /// The token cache (keyring) is unavailable.
    pub const CACHE_UNAVAILABLE: i32 = 6;
    /// Cancelled with Ctrl-C during a sign-in (128 + SIGINT).
    pub const CANCELLED: i32 = 130;
}

/// Where the plugin keeps tokens: `--token-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCache {
    /// A 0600 file under `$XDG_CACHE_HOME/kubectl-credential/tokens/`.
    File,
    /// The OS keyring (Secret Service on Linux).
    Keyring,
}

impl TokenCache {
    /// The flag value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Keyring => "keyring",
        }
    }
}

/// The arguments that say which issuer and cluster a plugin call is about.
#[derive(Debug, Clone)]
pub struct PluginArgs {
    /// `--issuer`.
    pub issuer: String,
    /// `--cluster`.
    pub cluster: String,
    /// `--issuer-ca`.
    pub issuer_ca: PathBuf,
    /// `--token-cache`.
    pub token_cache: TokenCache,
}

impl PluginArgs {
    /// `SUBCOMMAND --issuer URL --cluster NAME --issuer-ca FILE --token-cache KIND`.
    #[must_use]
    pub fn for_subcommand(&self, subcommand: &str) -> Vec<String> {
        vec![
            subcommand.to_owned(),
            "--issuer".to_owned(),
            self.issuer.clone(),
            "--cluster".to_owned(),
            self.cluster.clone(),
            "--issuer-ca".to_owned(),
            self.issuer_ca.display().to_string(),
            "--token-cache".to_owned(),
            self.token_cache.as_str().to_owned(),
        ]
    }

    /// The same arguments with another token cache.
    #[must_use]
    pub fn with_token_cache(&self, token_cache: TokenCache) -> Self {
        Self {
            token_cache,
            ..self.clone()
        }
    }
}

/// `KUBERNETES_EXEC_INFO` as kubectl sends it when stdin is not a terminal.
#[must_use]
pub fn exec_info(version: ApiVersion, interactive: bool) -> String {
    serde_json::json!({
        "apiVersion": version.as_str(),
        "kind": "ExecCredential",
        "spec": { "interactive": interactive },
    })
    .to_string()
}

/// One person's machine: a private home with its own caches and configuration.
#[derive(Debug)]
pub struct UserEnv {
    dir: tempfile::TempDir,
    session_bus: Option<String>,
}

impl Default for UserEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl UserEnv {
    /// A fresh home directory with empty caches, no session bus and a recording `BROWSER`.
    #[track_caller]
    #[must_use]
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("e2e-user.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let env = Self {
            dir,
            session_bus: None,
        };
        for d in [
            env.home(),
            env.cache_home(),
            env.config_home(),
            env.data_home(),
        ] {
            std::fs::create_dir_all(&d)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
        }
        // Records its argument and "succeeds", like a browser that opened the page.
        let script = env.browser_script();
        let marker = env.browser_marker();
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n",
                marker.display()
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", script.display()));
        set_mode(&script, 0o755);
        env
    }

    /// Lets children reach the Secret Service on the bus at `address`.
    #[must_use]
    pub fn with_session_bus(mut self, address: &str) -> Self {
        self.session_bus = Some(address.to_owned());
        self
    }

    /// `$HOME`.
    #[must_use]
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `$XDG_CACHE_HOME`.
    #[must_use]
    pub fn cache_home(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// `$XDG_CONFIG_HOME`.
    #[must_use]
    pub fn config_home(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// `$XDG_DATA_HOME`.
    #[must_use]
    pub fn data_home(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn browser_script(&self) -> PathBuf {
        self.dir.path().join("browser.sh")
    }

    fn browser_marker(&self) -> PathBuf {
        self.dir.path().join("browser-opened")
    }

    /// Every URL the plugin asked the browser to open (empty: no browser was opened).
    #[must_use]
    pub fn browser_launches(&self) -> Vec<String> {
        std::fs::read_to_string(self.browser_marker())
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// A command for `program` with this machine's environment and nothing of the test
    /// process's (no real `HOME`, keyring, `KUBECONFIG` or proxy settings leak in).
    #[must_use]
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_CACHE_HOME", self.cache_home())
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("XDG_DATA_HOME", self.data_home())
            .env("BROWSER", self.browser_script())
            .env("RUST_BACKTRACE", "1")
            // Without a Secret Service, the bus address points at a socket that does not exist,
            // so nothing can reach the developer's real keyring by accident.
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                self.session_bus.clone().unwrap_or_else(|| {
                    format!(
                        "unix:path={}",
                        self.dir.path().join("no-session-bus").display()
                    )
                }),
            );
        cmd
    }

    /// Runs `kubectl-credential ARGS` to completion, stdin not a terminal.
    #[track_caller]
    #[must_use]
    pub fn plugin(&self, args: &[String]) -> Outcome {
        let mut cmd = self.command(&crate::bins::kubectl_credential());
        cmd.args(args);
        process::run(&mut cmd, None, CALL_TIMEOUT)
    }

    /// Runs `kubectl-credential ARGS` the way kubectl does: with `KUBERNETES_EXEC_INFO`, and
    /// from a parent process of its own, as each kubectl command is. (The plugin takes a second
    /// call from the same parent for the same token as kubectl's retry after a 401, and
    /// refreshes; calls from the test process itself would all share one parent.) The parent
    /// is a shell that waits for the plugin and exits with its code.
    #[track_caller]
    #[must_use]
    pub fn plugin_as_kubectl_would(&self, args: &[String], exec_info: &str) -> Outcome {
        let mut cmd = self.command(Path::new("/bin/sh"));
        cmd.arg("-c")
            .arg(r#""$0" "$@"; exit $?"#)
            .arg(crate::bins::kubectl_credential())
            .args(args)
            .env("KUBERNETES_EXEC_INFO", exec_info);
        process::run(&mut cmd, None, CALL_TIMEOUT)
    }

    /// Runs `kubectl --kubeconfig KUBECONFIG ARGS`, stdin not a terminal (so kubectl tells the
    /// plugin the call is not interactive).
    #[track_caller]
    #[must_use]
    pub fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> Outcome {
        let mut cmd = self.command(&crate::bins::kubectl());
        cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
        process::run(&mut cmd, None, CALL_TIMEOUT)
    }

    /// Starts `kubectl --kubeconfig KUBECONFIG ARGS` in the background (a `--watch`), stdin
    /// not a terminal; it is killed when the handle drops.
    #[track_caller]
    #[must_use]
    pub fn kubectl_background(&self, kubeconfig: &Path, args: &[&str]) -> process::Background {
        let mut cmd = self.command(&crate::bins::kubectl());
        cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
        process::Background::spawn(&mut cmd)
    }

    /// Writes a kubeconfig named `file_name` in this home: one cluster (`server`, trusted via
    /// `ca_file`) and one user whose credential comes from `kubectl-credential get ...` over the
    /// exec protocol `version`. Returns its path.
    #[track_caller]
    #[must_use]
    pub fn write_kubeconfig(
        &self,
        file_name: &str,
        server: &str,
        ca_file: &Path,
        version: ApiVersion,
        plugin: &PluginArgs,
    ) -> PathBuf {
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{
                "name": plugin.cluster,
                "cluster": { "server": server, "certificate-authority": ca_file },
            }],
            "users": [{
                "name": "credential",
                "user": { "exec": {
                    "apiVersion": version.as_str(),
                    "command": crate::bins::kubectl_credential(),
                    "args": plugin.for_subcommand("get"),
                    "interactiveMode": "IfAvailable",
                    "provideClusterInfo": true,
                    "installHint": "kubectl-credential is part of this repository: cargo build --workspace --bins",
                }},
            }],
            "contexts": [{
                "name": plugin.cluster,
                "context": { "cluster": plugin.cluster, "user": "credential" },
            }],
            "current-context": plugin.cluster,
        });
        // kubectl reads JSON kubeconfigs (JSON is YAML), and JSON needs no quoting rules.
        let path = self.dir.path().join(file_name);
        let text =
            serde_json::to_string_pretty(&doc).unwrap_or_else(|e| panic!("kubeconfig JSON: {e}"));
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        set_mode(&path, 0o600);
        path
    }

    /// Starts `kubectl-credential login ... --no-browser` and waits (at most 30 s) for it to
    /// print a user code on stderr. The test then answers in a [`crate::Browser`] and calls
    /// [`LoginProcess::finish`].
    #[track_caller]
    #[must_use]
    pub fn start_login(&self, plugin: &PluginArgs) -> LoginProcess {
        let mut cmd = self.command(&crate::bins::kubectl_credential());
        cmd.args(plugin.for_subcommand("login")).arg("--no-browser");
        LoginProcess::start(cmd, Duration::from_secs(30))
    }

    /// The token cache directory of `--token-cache file`.
    #[must_use]
    pub fn token_dir(&self) -> PathBuf {
        self.cache_home().join("kubectl-credential").join("tokens")
    }

    /// The `*.json` files in [`UserEnv::token_dir`].
    #[must_use]
    pub fn token_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.token_dir())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// The one cached token of `--token-cache file`; fails the test unless there is exactly one
    /// cache file and it is private (mode 0600).
    #[track_caller]
    #[must_use]
    pub fn cached_token(&self) -> CachedToken {
        let files = self.token_files();
        assert_eq!(
            files.len(),
            1,
            "expected exactly one token file in {}, found {files:?}",
            self.token_dir().display()
        );
        let path = &files[0];
        let mode = file_mode(path);
        assert_eq!(
            mode & 0o777,
            0o600,
            "{} has mode {:o}; a token file must be private",
            path.display(),
            mode & 0o777
        );
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        CachedToken::parse(&text)
            .unwrap_or_else(|e| panic!("{} is not a token cache file ({e})", path.display()))
    }

    /// Every file under this machine's home, caches and configuration whose bytes contain
    /// `needle` (to prove a secret was not written to disk).
    #[must_use]
    pub fn files_containing(&self, needle: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut todo = vec![self.dir.path().to_owned()];
        while let Some(dir) = todo.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => todo.push(path),
                    Ok(t) if t.is_file() => {
                        let bytes = std::fs::read(&path).unwrap_or_default();
                        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                            found.push(path);
                        }
                    }
                    _ => {}
                }
            }
        }
        found
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).map_or_else(
        |e| panic!("cannot stat {}: {e}", path.display()),
        |m| m.permissions().mode(),
    )
}

/// The plugin's token cache file (`{"v":1,"access_token":..,...}`), as the tests read it.
#[derive(Clone, Deserialize)]
pub struct CachedToken {
    /// Format version.
    pub v: u32,
    /// The JWT handed to kubectl.
    pub access_token: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// The refresh token for the next token.
    pub refresh_token: String,
    /// When the session ends (Unix seconds).
    #[serde(default)]
    pub session_expires_at: Option<i64>,
    /// Who is logged in.
    #[serde(default)]
    pub username: Option<String>,
    /// Their groups: not stored in the entry (the plugin keeps it small for keyrings), read
    /// from the JWT's `groups` claim by [`CachedToken::parse`].
    #[serde(skip)]
    pub groups: Vec<String>,
}

impl CachedToken {
    /// Parses a cache entry and reads the groups from its JWT.
    pub fn parse(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        #[derive(Deserialize)]
        struct Claims {
            #[serde(default)]
            groups: Vec<String>,
        }
        let mut entry: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let payload = entry
            .access_token
            .split('.')
            .nth(1)
            .ok_or("the access token is not a JWT")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|e| format!("JWT payload is not base64url: {e}"))?;
        let claims: Claims =
            serde_json::from_slice(&bytes).map_err(|e| format!("JWT payload is not JSON: {e}"))?;
        entry.groups = claims.groups;
        Ok(entry)
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("v", &self.v)
            .field("access_token", &"[redacted]")
            .field("iat", &self.iat)
            .field("exp", &self.exp)
            .field("refresh_token", &"[redacted]")
            .field("session_expires_at", &self.session_expires_at)
            .field("username", &self.username)
            .field("groups", &self.groups)
            .finish()
    }
}

/// A running `kubectl-credential login` that has printed its user code.
#[derive(Debug)]
pub struct LoginProcess {
    command: String,
    child: Option<Child>,
    user_code: String,
    stderr: Arc<Mutex<String>>,
    stderr_done: mpsc::Receiver<()>,
    stdout: Option<process::Collector>,
    started: Instant,
}

impl LoginProcess {
    #[track_caller]
    fn start(mut cmd: Command, code_timeout: Duration) -> Self {
        let command = process::describe(&cmd);
        let started = Instant::now();
        let mut child = process::spawn_captured(&mut cmd, Stdio::null(), &command);
        let stdout = process::collect(child.stdout.take());
        let stderr = Arc::new(Mutex::new(String::new()));
        let (line_tx, line_rx) = mpsc::channel::<String>();
        let (done_tx, stderr_done) = mpsc::channel::<()>();
        if let Some(pipe) = child.stderr.take() {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(mut all) = stderr.lock() {
                        all.push_str(&line);
                        all.push('\n');
                    }
                    let _ = line_tx.send(line);
                }
                let _ = done_tx.send(());
            });
        }
        let mut login = Self {
            command,
            child: Some(child),
            user_code: String::new(),
            stderr,
            stderr_done,
            stdout: Some(stdout),
            started,
        };

        let deadline = Instant::now() + code_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match line_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(code) = find_user_code(&line) {
                        code.clone_into(&mut login.user_code);
                        return login;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let out = login.finish(Duration::from_secs(1));
                    panic!("no user code like BCDF-GHJK on stderr within {code_timeout:?}: {out}");
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let out = login.finish(Duration::from_secs(10));
                    panic!("login ended before printing a user code: {out}");
                }
            }
        }
    }

    /// The user code the plugin printed (`XXXX-XXXX`).
    #[must_use]
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Sends SIGINT to the login's process group, as Ctrl-C in its terminal would.
    pub fn interrupt(&self) {
        if let Some(child) = &self.child {
            process::kill_group(child.id(), rustix::process::Signal::INT);
        }
    }

    /// Everything the plugin printed on stderr so far.
    #[must_use]
    pub fn stderr_so_far(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for the login to end (killing it after `timeout`) and returns how it ended.
    #[must_use]
    pub fn finish(mut self, timeout: Duration) -> Outcome {
        let status = self
            .child
            .take()
            .and_then(|mut child| process::wait_for(&mut child, timeout));
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(5));
        let mut stderr = self.stderr_so_far();
        if status.is_none() {
            let _ = write!(
                stderr,
                "\n[harness: killed after {timeout:?} without exiting]"
            );
        }
        Outcome {
            command: self.command.clone(),
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
            stdout: self
                .stdout
                .take()
                .map(process::Collector::finish)
                .unwrap_or_default(),
            stderr,
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for LoginProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_group(child.id(), rustix::process::Signal::KILL);
            let _ = child.wait();
        }
    }
}

/// The first user code in `text`: `XXXX-XXXX` from the unambiguous consonants the issuer uses
/// (RFC 8628 section 6.1), not part of a longer word.
#[must_use]
pub fn find_user_code(text: &str) -> Option<&str> {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(8)).find_map(|i| {
        let w = &bytes[i..i + 9];
        let code = w[4] == b'-' && w[..4].iter().chain(&w[5..]).all(|c| ALPHABET.contains(c));
        let before_ok = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let after_ok = bytes.get(i + 9).is_none_or(|c| !c.is_ascii_alphanumeric());
        (code && before_ok && after_ok).then(|| &text[i..i + 9])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_user_codes() {
        let cases = [
            (
                "Enter code BCDF-GHJK at https://x/device",
                Some("BCDF-GHJK"),
            ),
            ("https://x/device?user_code=WXZB-QRST", Some("WXZB-QRST")),
            ("BCDF-GHJK", Some("BCDF-GHJK")),
            ("vowels AEIO-UBCD are not used", None),
            ("too long BCDFG-HJKL", None),
            ("lower bcdf-ghjk", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(find_user_code(text), want, "{text:?}");
        }
    }

    #[test]
    fn plugin_args_follow_the_documented_order() {
        let args = PluginArgs {
            issuer: "https://127.0.0.1:1".into(),
            cluster: "envtest".into(),
            issuer_ca: "/ca.crt".into(),
            token_cache: TokenCache::File,
        };
        assert_eq!(
            args.for_subcommand("get").join(" "),
            "get --issuer https://127.0.0.1:1 --cluster envtest --issuer-ca /ca.crt --token-cache file"
        );
    }

    #[test]
    fn the_recording_browser_records() {
        let env = UserEnv::new();
        assert!(env.browser_launches().is_empty());
        let out = process::run(
            env.command(&env.browser_script())
                .arg("https://example.invalid/device"),
            None,
            CALL_TIMEOUT,
        );
        out.assert_success();
        assert_eq!(
            env.browser_launches(),
            vec!["https://example.invalid/device".to_owned()]
        );
    }
}
