//! A real etcd + kube-apiserver for the tests, started by `tests/envtest/start-control-plane.sh`
//! in a temporary run directory and stopped (and the directory removed) on drop.
//!
//! The script does the work so that the same control plane can be started by hand to look at a
//! failure; this module only passes the OIDC settings, reads the script's `env` file and offers
//! what the tests need: `kubectl` as admin, and raw HTTPS requests with a bearer token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http;
use crate::process::{self, Outcome, Reaper};

/// The API server's `--oidc-*` flags. Kubernetes 1.20 takes exactly one issuer, fixed at start.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// `--oidc-issuer-url`: must equal the `iss` of the tokens and serve discovery.
    pub issuer_url: String,
    /// `--oidc-ca-file`: the CA that signed the issuer's serving certificate.
    pub ca_file: PathBuf,
    /// `--oidc-client-id`: the `aud` tokens must carry.
    pub client_id: String,
    /// `--oidc-username-claim`.
    pub username_claim: String,
    /// `--oidc-username-prefix`.
    pub username_prefix: String,
    /// `--oidc-groups-claim`.
    pub groups_claim: String,
    /// `--oidc-groups-prefix`.
    pub groups_prefix: String,
}

/// The API server's `--authentication-token-webhook-*` flags (webhook mode: no `--oidc-*`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `--authentication-token-webhook-config-file`: a kubeconfig naming the webhook's URL.
    pub config_file: PathBuf,
    /// `--authentication-token-webhook-cache-ttl`, e.g. `2s`.
    pub cache_ttl: String,
    /// `--authentication-token-webhook-version`: `v1` or `v1beta1`.
    pub version: String,
    /// An audit policy: with it the API server writes its audit log, see
    /// [`ControlPlane::audit_events`].
    pub audit_policy: Option<PathBuf>,
}

/// How the API server authenticates bearer tokens.
#[derive(Debug, Clone, Copy)]
enum Authn<'a> {
    None,
    /// No token authenticator, and the audit log written with this policy.
    NoneAudited(&'a Path),
    Oidc(&'a OidcSettings),
    Webhook(&'a WebhookSettings),
}

/// A running etcd + kube-apiserver.
#[derive(Debug)]
pub struct ControlPlane {
    run_dir: PathBuf,
    server: String,
    ca_file: PathBuf,
    admin_kubeconfig: PathBuf,
    apiserver_log: PathBuf,
    audit_log: Option<PathBuf>,
    // Dropped last (fields drop in order): stops both processes and removes run_dir.
    _reaper: Reaper,
}

/// Set to keep run directories (logs, certificates, etcd data) after the tests, for debugging.
pub const KEEP_ENV: &str = "E2E_KEEP";

const OIDC_VARS: [&str; 12] = [
    "WEBHOOK_CONFIG_FILE",
    "WEBHOOK_CACHE_TTL",
    "WEBHOOK_VERSION",
    "AUDIT_POLICY_FILE",
    "OIDC_ISSUER_URL",
    "OIDC_CA_FILE",
    "OIDC_CLIENT_ID",
    "OIDC_USERNAME_CLAIM",
    "OIDC_USERNAME_PREFIX",
    "OIDC_GROUPS_CLAIM",
    "OIDC_GROUPS_PREFIX",
    "OIDC_SIGNING_ALGS",
];

impl ControlPlane {
    /// Starts a control plane whose API server trusts the OIDC issuer in `oidc`, signing with
    /// ES256. Takes about 5 s; fails with the script's output (and the logs' tails) if it cannot.
    #[track_caller]
    #[must_use]
    pub fn start(oidc: &OidcSettings) -> Self {
        Self::start_with(Authn::Oidc(oidc))
    }

    /// Starts a control plane whose API server authenticates bearer tokens with a token-review
    /// webhook (and no OIDC issuer).
    #[track_caller]
    #[must_use]
    pub fn start_with_webhook(webhook: &WebhookSettings) -> Self {
        Self::start_with(Authn::Webhook(webhook))
    }

    /// Starts a control plane without OIDC authentication (for the harness's self-test).
    #[track_caller]
    #[must_use]
    pub fn start_without_oidc() -> Self {
        Self::start_with(Authn::None)
    }

    /// Starts a control plane without OIDC or webhook authentication (only client certificates
    /// and service account tokens) that writes its audit log with `audit_policy`, see
    /// [`ControlPlane::audit_events`]: what the credential proxy talks to, impersonating.
    #[track_caller]
    #[must_use]
    pub fn start_without_oidc_audited(audit_policy: &Path) -> Self {
        Self::start_with(Authn::NoneAudited(audit_policy))
    }

    #[track_caller]
    fn start_with(authn: Authn<'_>) -> Self {
        let apiserver = kube_apiserver_binary();
        process::require_all(&[
            ("etcd", "apt-get install etcd-server"),
            ("openssl", "apt-get install openssl"),
            ("curl", "apt-get install curl"),
            ("python3", "apt-get install python3"),
            ("setsid", "apt-get install util-linux"),
        ]);
        let script = envtest_dir().join("start-control-plane.sh");
        let run_dir = tempfile::Builder::new()
            .prefix("e2e-control-plane.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
            .keep();
        let keep = if std::env::var_os(KEEP_ENV).is_some() {
            "1"
        } else {
            ""
        };
        // The reaper exists before anything is started, so even a crash during start cleans up.
        let reaper = Reaper::spawn(
            "the control plane",
            r#"bash "$1" stop "$2" >/dev/null 2>&1; [ -n "$3" ] || rm -rf "$2""#,
            &[script.as_os_str(), run_dir.as_os_str(), keep.as_ref()],
        );

        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .arg("start")
            .arg(&run_dir)
            .env("KUBE_APISERVER_BIN", &apiserver);
        for var in OIDC_VARS {
            cmd.env_remove(var);
        }
        if let Authn::Webhook(w) = authn {
            cmd.env("WEBHOOK_CONFIG_FILE", &w.config_file)
                .env("WEBHOOK_CACHE_TTL", &w.cache_ttl)
                .env("WEBHOOK_VERSION", &w.version);
            if let Some(policy) = &w.audit_policy {
                cmd.env("AUDIT_POLICY_FILE", policy);
            }
        }
        if let Authn::NoneAudited(policy) = authn {
            cmd.env("AUDIT_POLICY_FILE", policy);
        }
        if let Authn::Oidc(o) = authn {
            cmd.env("OIDC_ISSUER_URL", &o.issuer_url)
                .env("OIDC_CA_FILE", &o.ca_file)
                .env("OIDC_CLIENT_ID", &o.client_id)
                .env("OIDC_USERNAME_CLAIM", &o.username_claim)
                .env("OIDC_USERNAME_PREFIX", &o.username_prefix)
                .env("OIDC_GROUPS_CLAIM", &o.groups_claim)
                .env("OIDC_GROUPS_PREFIX", &o.groups_prefix)
                .env("OIDC_SIGNING_ALGS", "ES256");
        }
        let out = process::run(&mut cmd, None, Duration::from_secs(180));
        assert!(out.success(), "the control plane did not start: {out}");

        let env_file = run_dir.join("env");
        let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}\n(script output: {out})",
                env_file.display()
            )
        });
        let env = parse_env(&text);
        let get = |key: &str| {
            env.get(key)
                .cloned()
                .unwrap_or_else(|| panic!("{} has no {key}:\n{text}", env_file.display()))
        };
        if !keep.is_empty() {
            eprintln!(
                "harness: control plane run directory (kept): {}",
                run_dir.display()
            );
        }
        Self {
            server: get("KUBE_APISERVER_URL"),
            ca_file: get("KUBE_CA_FILE").into(),
            admin_kubeconfig: get("KUBE_ADMIN_KUBECONFIG").into(),
            apiserver_log: get("KUBE_APISERVER_LOG").into(),
            audit_log: env
                .get("KUBE_AUDIT_LOG")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            run_dir,
            _reaper: reaper,
        }
    }

    /// The API server URL, `https://127.0.0.1:PORT`.
    #[must_use]
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The CA that signed the API server's certificate.
    #[must_use]
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A kubeconfig for the cluster admin (client certificate in `system:masters`).
    #[must_use]
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The run directory (certificates, logs, etcd data).
    #[must_use]
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The last `lines` lines of the API server's log, for failure messages.
    #[must_use]
    pub fn apiserver_log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.apiserver_log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The events of the API server's audit log so far (JSON lines), when it was started with an
    /// audit policy; fails the test otherwise.
    #[track_caller]
    #[must_use]
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        let Some(path) = &self.audit_log else {
            panic!("this control plane was started without an audit policy")
        };
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read the audit log {}: {e}", path.display()));
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("audit log line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Runs `kubectl ARGS` as the cluster admin.
    #[track_caller]
    pub fn kubectl_admin(&self, args: &[&str], stdin: Option<&str>) -> Outcome {
        let home = self.run_dir.join("kubectl-home");
        let mut cmd = Command::new(crate::bins::kubectl());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .arg("--kubeconfig")
            .arg(&self.admin_kubeconfig)
            .args(args);
        process::run(&mut cmd, stdin.map(str::as_bytes), Duration::from_secs(60))
    }

    /// `kubectl apply -f -` of `manifest` (YAML or JSON) as the cluster admin; fails the test if
    /// the API server refuses it.
    #[track_caller]
    pub fn apply(&self, manifest: &str) {
        self.kubectl_admin(&["apply", "-f", "-"], Some(manifest))
            .assert_success();
    }

    /// `GET path` on the API server with `Authorization: Bearer token`: the status and body.
    /// 401 means the token was not accepted (expired, bad signature, OIDC not ready yet).
    #[track_caller]
    #[must_use]
    pub fn get_with_token(&self, path: &str, token: &str) -> http::Response {
        let agent = http::agent(&self.ca_file);
        let url = format!("{}{path}", self.server);
        http::response(
            agent
                .get(&url)
                .set("Authorization", &format!("Bearer {token}"))
                .call(),
        )
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }
}

/// `tests/envtest`, where the control-plane scripts live.
#[must_use]
pub fn envtest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("envtest")
}

/// The kube-apiserver binary that `tests/envtest/build-kube-apiserver.sh` built (same lookup as
/// the scripts: `KUBE_APISERVER_BIN`, else the cache directory).
#[track_caller]
#[must_use]
pub fn kube_apiserver_binary() -> PathBuf {
    let path = if let Some(bin) = std::env::var_os("KUBE_APISERVER_BIN") {
        PathBuf::from(bin)
    } else {
        let cache = std::env::var_os("K8S_ENVTEST_CACHE").map_or_else(
            || {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                    .unwrap_or_else(|| PathBuf::from(".cache"))
                    .join("k8s-envtest")
            },
            PathBuf::from,
        );
        cache.join("kube-apiserver")
    };
    assert!(
        path.is_file(),
        "kube-apiserver not found at {}: run `bash tests/run.sh` or `bash tests/envtest/build-kube-apiserver.sh` \
         (builds it from Debian's kubernetes source package, about 4 minutes once)",
        path.display()
    );
    path
}

/// Parses the script's `KEY='value'` lines.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            (!key.starts_with('#')).then(|| (key.to_owned(), value.trim_matches('\'').to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_env_file() {
        let env = parse_env(
            "# comment\nKUBE_APISERVER_URL='https://127.0.0.1:6443'\nexport X='a b'\nEMPTY=''\n",
        );
        assert_eq!(
            env.get("KUBE_APISERVER_URL").map(String::as_str),
            Some("https://127.0.0.1:6443")
        );
        assert_eq!(env.get("X").map(String::as_str), Some("a b"));
        assert_eq!(env.get("EMPTY").map(String::as_str), Some(""));
    }

    /// The real thing: etcd + kube-apiserver start, the admin can list namespaces and create
    /// RBAC objects, an unknown bearer token is refused, and everything is gone after drop.
    #[test]
    fn control_plane_starts_serves_kubectl_and_stops() {
        let cp = ControlPlane::start_without_oidc();
        let out = cp.kubectl_admin(&["get", "namespaces", "-o", "name"], None);
        out.assert_success()
            .assert_stdout_contains("namespace/kube-system");
        cp.apply(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: selftest\nrules:\n- apiGroups: [\"\"]\n  resources: [namespaces]\n  verbs: [get, list]\n",
        );
        cp.kubectl_admin(&["get", "clusterrole", "selftest"], None)
            .assert_success();
        let anonymous = cp.get_with_token("/api", "not-a-token");
        assert_eq!(
            anonymous.status, 401,
            "an unknown token must be refused: {anonymous:?}"
        );

        let run_dir = cp.run_dir().to_owned();
        let pids: Vec<String> = ["etcd.pid", "kube-apiserver.pid"]
            .iter()
            .map(|f| {
                std::fs::read_to_string(run_dir.join(f))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .collect();
        drop(cp);
        for pid in pids {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(cmdline.is_empty(), "process {pid} still runs after drop");
        }
        if std::env::var_os(KEEP_ENV).is_none() {
            assert!(!run_dir.exists(), "{} was not removed", run_dir.display());
        }
    }
}
