//! The issuer under test, run in-process on a listener the harness bound first, with a fresh
//! `SQLite` database and generated TLS material in a temporary data directory.
//!
//! In-process because STYLE.md asks for it: the listener is bound to `127.0.0.1:0` before
//! anything else, so its URL is known before the API server is started with
//! `--oidc-issuer-url` pointing at it, and there is neither a port race nor a readiness sleep.
//! Accounts are managed the way an operator does it, through the real `credential-issuer` CLI
//! against the same data directory while the server runs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use credential_issuer::config::{
    Config, FileCluster, FileConfig, FilePolicy, FileUpstream, Overrides,
};
use credential_issuer::serve::BackgroundIssuer;
use credential_shared::oauth::{
    DeviceAuthorizationResponse, OAuthError, OAuthErrorCode, TokenResponse, GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN, PATH_DEVICE_AUTHORIZATION, PATH_TOKEN, PLUGIN_CLIENT_ID,
};

use crate::browser::Browser;
use crate::http;
use crate::process::{self, Outcome, Reaper};
use crate::wait::{self, Check};

/// How the issuer under test is configured.
#[derive(Debug, Clone)]
pub struct IssuerOptions {
    /// `(name, audience)` of each cluster.
    pub clusters: Vec<(String, String)>,
    /// Access token lifetime; short, so that tests can watch tokens expire.
    pub token_ttl: String,
    /// Device-flow polling interval told to clients; short, so that logins finish quickly.
    pub poll_interval: String,
    /// API server URL and CA file published for every cluster in the cluster list (what
    /// `kubectl credential setup` reads), when known.
    pub api_server: Option<(String, PathBuf)>,
    /// `[[upstreams]]`: upstream OpenID providers offered on the sign-in page.
    pub upstreams: Vec<FileUpstream>,
    /// `[policy]`: group mapping (none: groups pass unchanged).
    pub policy: Option<FilePolicy>,
    /// `[[roles]]` tables (TOML) for grants. When set, the configuration is also written to a
    /// file that every [`Issuer::cli`] call passes as `--config` (the admin CLI checks grants
    /// against the roles and clusters), and every cluster's grant reconciler uses the
    /// kubeconfig at [`Issuer::reconciler_kubeconfig`] (absent until the test writes it),
    /// every 2 seconds.
    pub grant_roles: Option<String>,
    /// `[[workloads]]` tables (TOML): the CI platforms' and service accounts' workload rules
    /// (machine identities). When set, the configuration is written to the file every
    /// [`Issuer::cli`] call passes as `--config` (as with `grant_roles`), so that `workload
    /// list` and `workload disable NAME` see the same rules as the server.
    pub workloads: Option<String>,
    /// The data directory, when the test keeps it (a small disk, a restart on the same
    /// database); by default a new one inside the issuer's temporary directory.
    pub data_dir: Option<PathBuf>,
    /// `[clusters.proxy]` of some clusters: the authenticating, impersonating proxy that
    /// [`crate::Proxy`] starts. When set, the configuration is written to the file every
    /// [`Issuer::cli`] call (and the proxy process) passes as `--config`, with the issuer's
    /// URL in it, since the proxy checks every token's `iss`.
    pub proxies: Vec<ProxyOptions>,
    /// More TOML appended to the config file (which is then written, as with `grant_roles`),
    /// for a section no other option covers, e.g. `[device_flow]`.
    pub extra_toml: Option<String>,
}

/// `[clusters.proxy]` of one cluster.
///
/// The published cluster list names the proxy's URL, so the URL must be known before anything
/// starts: the address is a port picked here (bound and released), used as both `listen` and
/// `url`. The proxy binds it a moment later; should another program take the port in between,
/// the proxy fails to start and says so (the harness reports its log).
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The cluster whose requests it carries.
    pub cluster: String,
    /// `listen` (and the authority of `url`).
    pub addr: std::net::SocketAddr,
    /// `kubeconfig`: the proxy's own credential to the real API server (see
    /// [`crate::proxy::service_account_kubeconfig`]).
    pub kubeconfig: PathBuf,
}

impl ProxyOptions {
    /// A proxy for `cluster` on a free port of 127.0.0.1, with `kubeconfig` as its credential.
    #[track_caller]
    #[must_use]
    pub fn new(cluster: &str, kubeconfig: &Path) -> Self {
        let probe = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let addr = probe
            .local_addr()
            .unwrap_or_else(|e| panic!("listener address: {e}"));
        drop(probe);
        Self {
            cluster: cluster.to_owned(),
            addr,
            kubeconfig: kubeconfig.to_owned(),
        }
    }

    /// `https://127.0.0.1:PORT`: what kubeconfigs point at.
    #[must_use]
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Default for IssuerOptions {
    fn default() -> Self {
        Self {
            clusters: vec![("envtest".to_owned(), "kubernetes".to_owned())],
            token_ttl: "10s".to_owned(),
            poll_interval: "1s".to_owned(),
            api_server: None,
            upstreams: Vec::new(),
            policy: None,
            grant_roles: None,
            workloads: None,
            data_dir: None,
            proxies: Vec::new(),
            extra_toml: None,
        }
    }
}

/// A running issuer.
#[derive(Debug)]
pub struct Issuer {
    // Declared first so that it stops (drop joins its thread) before the data dir is removed.
    // In a Mutex so that `Issuer` is `Sync` and can live in a test binary's shared fixture.
    _server: Mutex<BackgroundIssuer>,
    url: String,
    ca_file: PathBuf,
    data_dir: PathBuf,
    config_file: Option<PathBuf>,
    proxies: Vec<ProxyOptions>,
    // Removes the temporary directory on drop, or when the test process exits without dropping
    // (the e2e fixture is a `static`).
    _cleanup: Reaper,
}

/// A refused token request: the HTTP status and the RFC 6749 error body.
#[derive(Debug, Clone)]
pub struct TokenError {
    /// HTTP status (400 for every OAuth error but `invalid_client`).
    pub status: u16,
    /// The parsed body; `None` if it was not an OAuth error document.
    pub error: Option<OAuthError>,
    /// The raw body, for messages.
    pub body: String,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl TokenError {
    /// The `error` code, if the body had one.
    #[must_use]
    pub fn code(&self) -> Option<OAuthErrorCode> {
        self.error.as_ref().map(|e| e.error)
    }
}

impl Issuer {
    /// Binds `127.0.0.1:0`, builds the configuration the way an operator's flags would, and
    /// starts serving. Returns once the issuer accepts connections.
    #[track_caller]
    #[must_use]
    pub fn start(options: &IssuerOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        Self::start_on(listener, options)
    }

    /// Like [`Issuer::start`] on a listener the caller bound, for when something started
    /// before the issuer needs its URL (an upstream provider's redirect URI).
    #[track_caller]
    #[must_use]
    pub fn start_on(listener: TcpListener, options: &IssuerOptions) -> Self {
        let (dir, cleanup) = process::reaped_temp_dir("e2e-issuer.", "the issuer's data directory");
        let data_dir = options.data_dir.clone().unwrap_or_else(|| dir.join("data"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("listener address: {e}"))
            .port();

        let file = FileConfig {
            clusters: options
                .clusters
                .iter()
                .map(|(name, audience)| FileCluster {
                    name: name.clone(),
                    audience: Some(audience.clone()),
                    server: options.api_server.as_ref().map(|(s, _)| s.clone()),
                    ca_file: options.api_server.as_ref().map(|(_, ca)| ca.clone()),
                    ..FileCluster::default()
                })
                .collect(),
            poll_interval: Some(options.poll_interval.clone()),
            upstreams: options.upstreams.clone(),
            policy: options.policy.clone(),
            ..FileConfig::default()
        };
        let issuer_url = format!("https://127.0.0.1:{port}");
        let config_file = (options.grant_roles.is_some()
            || options.workloads.is_some()
            || options.extra_toml.is_some()
            || !options.proxies.is_empty())
        .then(|| write_config_file(&dir, &data_dir, &issuer_url, options));
        let file = match &config_file {
            // The file holds what the admin CLI needs (clusters, roles, workloads), read the
            // way `--config` is read, so every table it knows is carried; upstreams and policy
            // (whose secrets the CLI does not need) come from the options as they are.
            Some(path) => FileConfig {
                poll_interval: file.poll_interval,
                upstreams: file.upstreams,
                policy: file.policy,
                ..Config::read_file(path).unwrap_or_else(|e| panic!("issuer config: {e}"))
            },
            None => file,
        };
        let overrides = Overrides {
            data_dir: Some(data_dir.clone()),
            listen: Some(format!("127.0.0.1:{port}")),
            issuer_url: Some(issuer_url),
            token_ttl: Some(options.token_ttl.clone()),
            ..Overrides::default()
        };
        let config = Config::from_parts(file, &overrides, || None)
            .unwrap_or_else(|e| panic!("issuer config: {e}"));
        let server = BackgroundIssuer::spawn(listener, config)
            .unwrap_or_else(|e| panic!("the issuer did not start: {e}"));
        let url = server.url().to_owned();
        let ca_file = server
            .ca_file()
            .unwrap_or_else(|| {
                panic!("the issuer generated no CA although no TLS files were configured")
            })
            .to_owned();
        Self {
            _server: Mutex::new(server),
            url,
            ca_file,
            data_dir,
            config_file,
            proxies: options.proxies.clone(),
            _cleanup: cleanup,
        }
    }

    /// The configuration file every [`Issuer::cli`] call passes as `--config`, if one was
    /// written (roles, workloads or proxies).
    #[must_use]
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// The `[clusters.proxy]` settings of `cluster`, if it has a proxy.
    #[must_use]
    pub fn proxy_options(&self, cluster: &str) -> Option<&ProxyOptions> {
        self.proxies.iter().find(|p| p.cluster == cluster)
    }

    /// `https://127.0.0.1:PORT`, the `iss` of its tokens.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The generated CA that signed the issuer's serving certificate.
    #[must_use]
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The data directory (database, keys, TLS material).
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the grant reconciler of `cluster` reads its kubeconfig (in the data directory).
    #[must_use]
    pub fn reconciler_kubeconfig(&self, cluster: &str) -> PathBuf {
        reconciler_kubeconfig(&self.data_dir, cluster)
    }

    /// Runs `credential-issuer ARGS --data-dir DIR` with `stdin` as its input.
    #[track_caller]
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Outcome {
        let mut cmd = Command::new(crate::bins::credential_issuer());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.data_dir.parent().unwrap_or(&self.data_dir))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir);
        if let Some(config) = &self.config_file {
            cmd.arg("--config").arg(config);
        }
        process::run(&mut cmd, stdin.map(str::as_bytes), Duration::from_secs(60))
    }

    /// `credential-issuer user add NAME --group G... ` with the password on stdin.
    #[track_caller]
    pub fn add_user(&self, name: &str, groups: &[&str], password: &str) {
        add_user_with(|args, stdin| self.cli(args, stdin), name, groups, password);
    }

    /// `credential-issuer user disable NAME`.
    #[track_caller]
    pub fn disable_user(&self, name: &str) {
        self.cli(&["user", "disable", name], None).assert_success();
    }

    /// `credential-issuer user list`: its stdout.
    #[track_caller]
    #[must_use]
    pub fn list_users(&self) -> String {
        self.cli(&["user", "list"], None)
            .assert_success()
            .stdout
            .clone()
    }

    /// `credential-issuer keys rotate`.
    #[track_caller]
    pub fn rotate_keys(&self) {
        self.cli(&["keys", "rotate"], None).assert_success();
    }

    /// A browser with empty cookies, trusting the issuer.
    #[track_caller]
    #[must_use]
    pub fn browser(&self) -> Browser {
        Browser::new(&self.url, &self.ca_file)
    }

    /// Runs SQL on the issuer's SQLite database with Python's sqlite3 module, as an operator's
    /// script would, for rows the CLI has no flag for (an event of long ago, a session last
    /// confirmed hours ago).
    #[track_caller]
    pub fn sqlite(&self, statement: &str) {
        let db = self.data_dir.join("issuer.db");
        let out = Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); c.executescript(sys.argv[2]); c.commit()",
            ])
            .arg(&db)
            .arg(statement)
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 (apt-get install python3): {e}"));
        assert!(
            out.status.success(),
            "SQL failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `GET path`, without cookies.
    #[track_caller]
    #[must_use]
    pub fn get(&self, path: &str) -> http::Response {
        let url = format!("{}{path}", self.url);
        http::response(http::agent(&self.ca_file).get(&url).call())
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// `POST path` with a form body, as an OAuth client (no cookies kept between calls).
    #[track_caller]
    #[must_use]
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> http::Response {
        let url = format!("{}{path}", self.url);
        http::response(http::agent(&self.ca_file).post(&url).send_form(fields))
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    /// Starts a device login for `cluster` as the plugin does (RFC 8628 section 3.1).
    #[track_caller]
    #[must_use]
    pub fn device_authorization(&self, cluster: &str) -> DeviceAuthorizationResponse {
        let resp = self.post_form(
            PATH_DEVICE_AUTHORIZATION,
            &[("client_id", PLUGIN_CLIENT_ID), ("cluster", cluster)],
        );
        assert_eq!(resp.status, 200, "device authorization refused: {resp:?}");
        serde_json::from_str(&resp.body)
            .unwrap_or_else(|e| panic!("bad device authorization response ({e}): {}", resp.body))
    }

    /// One token request with `fields`: the tokens, or the refusal.
    #[track_caller]
    pub fn token_request(&self, fields: &[(&str, &str)]) -> Result<TokenResponse, TokenError> {
        let resp = self.post_form(PATH_TOKEN, fields);
        if resp.status == 200 {
            Ok(serde_json::from_str(&resp.body)
                .unwrap_or_else(|e| panic!("bad token response ({e}): {}", resp.body)))
        } else {
            Err(TokenError {
                status: resp.status,
                error: serde_json::from_str(&resp.body).ok(),
                body: resp.body,
                retry_after: resp.retry_after,
            })
        }
    }

    /// `grant_type=refresh_token` with `refresh_token`, as client `kubectl-credential`.
    #[track_caller]
    pub fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, TokenError> {
        self.token_request(&[
            ("grant_type", GRANT_REFRESH_TOKEN),
            ("client_id", PLUGIN_CLIENT_ID),
            ("refresh_token", refresh_token),
        ])
    }

    /// A complete device login over HTTP without the plugin: device authorization, the person
    /// approving in a browser, then polling the token endpoint. Used by the fixture to wait for
    /// the API server's OIDC authenticator, independently of the plugin under test.
    #[track_caller]
    #[must_use]
    pub fn login_over_http(&self, cluster: &str, username: &str, password: &str) -> TokenResponse {
        let device = self.device_authorization(cluster);
        let _ = self
            .browser()
            .approve(&device.user_code, username, password);
        let fields = [
            ("grant_type", GRANT_DEVICE_CODE),
            ("client_id", PLUGIN_CLIENT_ID),
            ("device_code", device.device_code.as_str()),
        ];
        // Polling faster than the announced interval would earn `slow_down` (RFC 8628 3.5).
        let interval = Duration::from_secs(device.interval.max(1));
        wait::every(
            "the token endpoint hands out the approved tokens",
            Duration::from_secs(30),
            interval,
            || match self.token_request(&fields) {
                Ok(tokens) => Check::Done(tokens),
                Err(e)
                    if matches!(
                        e.code(),
                        Some(OAuthErrorCode::AuthorizationPending | OAuthErrorCode::SlowDown)
                    ) =>
                {
                    Check::Retry(e.body)
                }
                Err(e) => Check::Fail(format!("status {}: {}", e.status, e.body)),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// `credential-issuer user add NAME --group G...` run by `cli` with the password on stdin.
#[track_caller]
pub(crate) fn add_user_with(
    cli: impl FnOnce(&[&str], Option<&str>) -> Outcome,
    name: &str,
    groups: &[&str],
    password: &str,
) {
    let mut args = vec!["user", "add", name];
    for group in groups {
        args.extend(["--group", group]);
    }
    cli(&args, Some(&format!("{password}\n"))).assert_success();
}

fn reconciler_kubeconfig(data_dir: &Path, cluster: &str) -> PathBuf {
    data_dir.join(format!("reconciler-{cluster}.kubeconfig"))
}

/// Writes the clusters and `[[roles]]` and/or `[[workloads]]` and proxies of `options` as a
/// config file. With roles, every cluster has its grant reconciler's kubeconfig. With proxies,
/// the file names the issuer's URL (a proxy process started with it checks tokens' `iss`).
fn write_config_file(
    dir: &Path,
    data_dir: &Path,
    issuer_url: &str,
    options: &IssuerOptions,
) -> PathBuf {
    use std::fmt::Write as _;
    let mut text = String::new();
    if !options.proxies.is_empty() {
        let _ = writeln!(text, "issuer_url = {issuer_url:?}\n");
    }
    for (name, audience) in &options.clusters {
        let _ = writeln!(
            text,
            "[[clusters]]\nname = {name:?}\naudience = {audience:?}"
        );
        if options.grant_roles.is_some() {
            let _ = writeln!(
                text,
                "kubeconfig = {:?}\nreconcile_interval = \"2s\"",
                reconciler_kubeconfig(data_dir, name).to_string_lossy()
            );
        }
        if let Some((server, ca)) = &options.api_server {
            let _ = writeln!(
                text,
                "server = {server:?}\nca_file = {:?}",
                ca.to_string_lossy()
            );
        }
        // The sub-table comes after every key of its `[[clusters]]` element.
        if let Some(proxy) = options.proxies.iter().find(|p| &p.cluster == name) {
            let _ = writeln!(
                text,
                "[clusters.proxy]\nlisten = {:?}\nurl = {:?}\nkubeconfig = {:?}",
                proxy.addr.to_string(),
                proxy.url(),
                proxy.kubeconfig.to_string_lossy()
            );
        }
    }
    for tables in [
        &options.grant_roles,
        &options.workloads,
        &options.extra_toml,
    ]
    .into_iter()
    .flatten()
    {
        text.push('\n');
        text.push_str(tables);
        text.push('\n');
    }
    let path = dir.join("issuer.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[clusters.proxy]` lands under its own cluster, and the file names the issuer's URL
    /// (which the proxy process needs to check `iss`).
    #[test]
    fn proxies_are_written_under_their_cluster_with_the_issuer_url() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let proxy = ProxyOptions::new("b", Path::new("/etc/proxy.kubeconfig"));
        let options = IssuerOptions {
            clusters: vec![("a".into(), "aud-a".into()), ("b".into(), "aud-b".into())],
            api_server: Some(("https://127.0.0.1:6443".into(), "/ca.crt".into())),
            proxies: vec![proxy.clone()],
            ..IssuerOptions::default()
        };
        let path = write_config_file(
            dir.path(),
            &dir.path().join("data"),
            "https://127.0.0.1:1",
            &options,
        );
        let file = Config::read_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.issuer_url.as_deref(), Some("https://127.0.0.1:1"));
        assert!(file.clusters[0].proxy.is_none());
        let b = file.clusters[1].proxy.as_ref();
        assert_eq!(b.and_then(|p| p.url.clone()), Some(proxy.url()));
        assert_eq!(
            b.and_then(|p| p.listen.clone()),
            Some(proxy.addr.to_string())
        );
        assert_eq!(
            b.and_then(|p| p.kubeconfig.clone()),
            Some(PathBuf::from("/etc/proxy.kubeconfig"))
        );
        assert_eq!(
            file.clusters[1].server.as_deref(),
            Some("https://127.0.0.1:6443")
        );
    }
}
