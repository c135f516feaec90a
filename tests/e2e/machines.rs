//! Machine identities (issue 16): a CI job gets a short-lived cluster token by exchanging its
//! platform's OpenID token (RFC 8693), and a cron job on a server by signing a client assertion
//! with a machine key (RFC 7523). Nothing stored is a secret the issuer handed out, and no
//! browser, device flow or keyring is involved.
//!
//! The CI platform is `tests/oidc-provider/ci.mjs` (the real `oidc-provider`, discovered and
//! verified like GitHub's `token.actions.githubusercontent.com`). The issuer is this module's
//! own, not the world's, because workload rules are configuration fixed at start: its
//! `[[workloads]]` trust the CI issuer. Two API servers trust it, one in OIDC mode and one in
//! webhook mode, each started the first time a story asks for it.
//!
//! The refusals are asserted on the error code and the keyword `docs/machines.md` documents,
//! and no answer ever repeats the token it refuses.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use credential_shared::exec_credential::ApiVersion;
use credential_shared::oauth::{
    OAuthErrorCode, TokenResponse, GRANT_TOKEN_EXCHANGE, PATH_TOKEN, PLUGIN_CLIENT_ID,
    TOKEN_TYPE_JWT,
};
use e2e::ci_issuer::claims_of;
use e2e::issuer::TokenError;
use e2e::process::{self, Outcome, Reaper};
use e2e::wait::{self, Check};
use e2e::{
    bins, http, CiIssuer, ControlPlane, ForgeKey, Issuer, IssuerOptions, Job, OidcSettings,
    UserEnv, WebhookSettings,
};

use crate::world::{ns_reader_binding, rbac, shipped_oidc_flags, unique, AUDIENCE, CLUSTER};

/// A cluster the issuer serves that no workload rule allows.
const OTHER_CLUSTER: &str = "staging";
/// The workload rule of the production deployment job.
const DEPLOY_RULE: &str = "deploy-production";
/// Its Kubernetes username, from `identity = "ci:github:{repository}:{environment}"`.
const DEPLOY_IDENTITY: &str = "ci:github:acme/deploy:production";
/// Its Kubernetes group (as `credential:deployers`), which may list namespaces.
const DEPLOYERS: &str = "deployers";
/// The workload rule the revocation story disables (no other story uses it).
const NIGHTLY_RULE: &str = "nightly";
/// Its Kubernetes group.
const NIGHTLY_GROUP: &str = "nightly-builders";
/// The group the cron machine is given (`machine add --group`).
const BACKUP_GROUP: &str = "backup-jobs";
/// `--oidc-username-prefix` and `--oidc-groups-prefix`, and the webhook's prefix.
const PREFIX: &str = "credential:";
/// The lifetime of the deployment rule's tokens.
const DEPLOY_TOKEN_LIFETIME: u64 = 300;
/// The webhook API server's `--authentication-token-webhook-cache-ttl`.
const CACHE_TTL: Duration = Duration::from_secs(2);
/// kube-apiserver's fixed success cache over every token authenticator.
const APISERVER_SUCCESS_CACHE: Duration = Duration::from_secs(10);
/// The issuer's default `webhook_cache_ttl`: a change made by another process (the CLI)
/// reaches the answering issuer within it.
const ISSUER_WEBHOOK_CACHE: Duration = Duration::from_secs(5);
/// Slack for a poll interval and a slow machine.
const MARGIN: Duration = Duration::from_secs(5);
/// The subject-token limit of the contract.
const MAX_SUBJECT_TOKEN: usize = 16 * 1024;

/// The CI jobs the platform knows: one the deployment rule matches, one for each claim that
/// can fail to match it, and the nightly build.
fn jobs() -> Vec<Job> {
    vec![
        Job::github(
            "deploy-main",
            "acme/deploy",
            "refs/heads/main",
            Some("production"),
        ),
        Job::github(
            "other-repo",
            "acme/other",
            "refs/heads/main",
            Some("production"),
        ),
        Job::github(
            "feature-branch",
            "acme/deploy",
            "refs/heads/feature",
            Some("production"),
        ),
        Job::github(
            "staging-env",
            "acme/deploy",
            "refs/heads/main",
            Some("staging"),
        ),
        Job::github("nightly-main", "acme/nightly", "refs/heads/main", None),
    ]
}

/// The `[[workloads]]` of the issuer: the CI tokens must be for `audience` (the issuer's URL).
fn workloads(ci_url: &str, audience: &str) -> String {
    format!(
        r#"
[[workloads]]
name = "{DEPLOY_RULE}"
issuer = "{ci_url}"
audience = "{audience}"
identity = "ci:github:{{repository}}:{{environment}}"
groups = ["{DEPLOYERS}"]
clusters = ["{CLUSTER}"]
token_lifetime = "{DEPLOY_TOKEN_LIFETIME}s"
[workloads.claims]
repository = "acme/deploy"
ref = "refs/heads/main"
environment = "production"

[[workloads]]
name = "{NIGHTLY_RULE}"
issuer = "{ci_url}"
audience = "{audience}"
identity = "ci:github:{{repository}}:{{ref}}"
groups = ["{NIGHTLY_GROUP}"]
clusters = ["{CLUSTER}"]
token_lifetime = "1h"
[workloads.claims]
repository = "acme/nightly"
ref = "refs/heads/*"
"#
    )
}

/// The CI platform and the issuer that trusts it.
struct Machines {
    ci: CiIssuer,
    issuer: Issuer,
}

static MACHINES: OnceLock<Result<Machines, String>> = OnceLock::new();
static OIDC_CLUSTER: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static WEBHOOK_CLUSTER: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// `cell`'s value, started by `start` for the first test that asks; a failed start fails
/// every test that asks, with the same message.
/// The auditors' evidence: a job's exchange is in the trail with the claims that decided it, a
/// genuine token of another repository is refused and recorded too, the job is a machine
/// identity in `audit access`, and its rule's account is in `report stale`.
#[test]
fn exchanges_and_refused_attempts_are_in_the_trail_and_the_auditors_reports() {
    let m = machines();
    let subject = m.ci.job_token("deploy-main", m.issuer.url());
    exchange(&m.issuer, &subject, CLUSTER)
        .unwrap_or_else(|e| panic!("the matching job was refused: {e:?}"));
    let other = m.ci.job_token("other-repo", m.issuer.url());
    assert!(
        exchange(&m.issuer, &other, CLUSTER).is_err(),
        "another repository got a token"
    );

    let export = m
        .issuer
        .cli(&["audit", "export", "--cluster", CLUSTER], None);
    export.assert_success();
    let events: Vec<serde_json::Value> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let detail_of = |event: &str, needle: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == event)
            .filter_map(|e| e["detail"].as_str().map(str::to_owned))
            .filter(|d| d.contains(needle))
            .collect()
    };
    let granted = detail_of("exchange", "\"repository\":\"acme/deploy\"");
    assert!(
        granted
            .iter()
            .any(|d| d.contains(DEPLOY_RULE) && d.contains("\"run_id\"")),
        "no exchange row naming the rule and the run: {granted:#?}"
    );
    let refused = detail_of("exchange.refused", "\"repository\":\"acme/other\"");
    assert!(
        refused.iter().any(|d| d.contains("does not match")),
        "the other repository's attempt is not in the trail: {refused:#?}"
    );
    assert_no_token_in("the audit export", &export.stdout, &subject);
    assert_no_token_in("the audit export", &export.stdout, &other);

    let access = m.issuer.cli(
        &[
            "audit",
            "access",
            "--cluster",
            CLUSTER,
            "--namespace",
            "default",
            "--since",
            "2000-01-01",
            "--format",
            "jsonl",
        ],
        None,
    );
    access.assert_success();
    let machine_line = access
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["kind"] == "machine" && l["user"] == DEPLOY_IDENTITY)
        .unwrap_or_else(|| panic!("the job is not in audit access:\n{}", access.stdout));
    assert!(
        machine_line["machine_tokens"].as_u64() >= Some(1),
        "{machine_line}"
    );

    // Zero days: every account without a token this very second, the rule's own included.
    let stale = m.issuer.cli(
        &["report", "stale", "--days", "0", "--format", "jsonl"],
        None,
    );
    stale.assert_success();
    let account = format!("workload:{DEPLOY_RULE}");
    assert!(
        stale
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["kind"] == "workload" && l["user"] == account.as_str()),
        "the rule's account is not in report stale:\n{}",
        stale.stdout
    );
    // `user list` is for people; `--all` shows the rule's account as a workload.
    let people = m.issuer.cli(&["user", "list"], None);
    people.assert_success();
    assert!(!people.stdout.contains(&account), "{}", people.stdout);
    let all = m.issuer.cli(&["user", "list", "--all"], None);
    all.assert_success();
    assert!(
        all.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{account}\tworkload"))),
        "{}",
        all.stdout
    );
}

fn shared<T>(
    cell: &'static OnceLock<Result<T, String>>,
    what: &str,
    start: fn() -> T,
) -> &'static T {
    let started = cell.get_or_init(|| {
        std::panic::catch_unwind(start).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned())
        })
    });
    match started {
        Ok(v) => v,
        Err(e) => panic!("{what} did not start:\n{e}"),
    }
}

fn machines() -> &'static Machines {
    shared(&MACHINES, "the CI platform + machine issuer", || {
        let ci = CiIssuer::start(&jobs());
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("listener address: {e}"))
            .port();
        // The audience CI jobs ask for is the issuer's URL (the plugin's default).
        let issuer_url = format!("https://127.0.0.1:{port}");
        let issuer = Issuer::start_on(
            listener,
            &IssuerOptions {
                clusters: vec![
                    (CLUSTER.to_owned(), AUDIENCE.to_owned()),
                    (OTHER_CLUSTER.to_owned(), OTHER_CLUSTER.to_owned()),
                ],
                // Long enough for the OIDC probe below to need no refresh.
                token_ttl: "120s".to_owned(),
                workloads: Some(workloads(ci.url(), &issuer_url)),
                ..IssuerOptions::default()
            },
        );
        assert_eq!(issuer.url(), issuer_url, "the issuer announces another URL");
        Machines { ci, issuer }
    })
}

/// The RBAC of both API servers: the world's `ns-reader` role, bound to the workloads' and the
/// machine's groups.
fn machine_rbac() -> String {
    let mut manifest = rbac();
    for group in [DEPLOYERS, NIGHTLY_GROUP, BACKUP_GROUP] {
        manifest.push_str("---");
        manifest.push_str(&ns_reader_binding(
            &format!("ns-reader-{group}"),
            &format!("{PREFIX}{group}"),
        ));
    }
    manifest
}

/// An API server in OIDC mode (the shipped flags) trusting the machine issuer.
fn oidc_cluster() -> &'static ControlPlane {
    shared(&OIDC_CLUSTER, "the OIDC-mode API server", || {
        let issuer = &machines().issuer;
        let flags = shipped_oidc_flags();
        let flag = |name: &str| {
            flags.iter().find(|(k, _)| k == name).map_or_else(
                || panic!("install/apiserver-flags.txt lacks {name}"),
                |(_, v)| v.clone(),
            )
        };
        let cp = ControlPlane::start(&OidcSettings {
            issuer_url: flag("--oidc-issuer-url").replace("ISSUER_URL", issuer.url()),
            ca_file: PathBuf::from(
                flag("--oidc-ca-file").replace("CA_FILE", &issuer.ca_file().to_string_lossy()),
            ),
            client_id: flag("--oidc-client-id").replace("AUDIENCE", AUDIENCE),
            username_claim: flag("--oidc-username-claim"),
            username_prefix: flag("--oidc-username-prefix"),
            groups_claim: flag("--oidc-groups-claim"),
            groups_prefix: flag("--oidc-groups-prefix"),
        });
        cp.apply(&machine_rbac());
        wait_for_oidc(&cp, issuer);
        cp
    })
}

/// The API server fetches the issuer's discovery document some seconds after start; until
/// then it refuses every token. A person's token (not a machine's, whose exchange is under
/// test) is presented until it is accepted.
fn wait_for_oidc(cp: &ControlPlane, issuer: &Issuer) {
    let name = unique("oidc-probe");
    let password = format!("probe password {name}");
    issuer.add_user(&name, &[crate::world::READERS], &password);
    let tokens = issuer.login_over_http(CLUSTER, &name, &password);
    wait::until(
        "the OIDC-mode API server accepts the machine issuer's tokens",
        Duration::from_secs(90),
        || {
            let resp = cp.get_with_token("/api", &tokens.access_token);
            match resp.status {
                200 => Check::Done(()),
                401 => Check::Retry(format!("401 {}", resp.body.trim())),
                other => Check::Fail(format!("unexpected status {other}: {}", resp.body)),
            }
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- kube-apiserver log ---\n{}",
            cp.apiserver_log_tail(40)
        )
    });
}

fn install_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../install")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// An API server in webhook mode (the shipped webhook kubeconfig and flags) asking the machine
/// issuer about every token.
fn webhook_cluster() -> &'static ControlPlane {
    shared(&WEBHOOK_CLUSTER, "the webhook-mode API server", || {
        let issuer = &machines().issuer;
        let kubeconfig = install_text("webhook-kubeconfig.yaml")
            .replace("ISSUER_URL", issuer.url())
            .replace("CLUSTER", CLUSTER)
            .replace("CA_FILE", &issuer.ca_file().to_string_lossy());
        // The data directory lives as long as the issuer, so as long as this static.
        let path = issuer.data_dir().join("webhook-kubeconfig.yaml");
        std::fs::write(&path, kubeconfig)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        let flags = install_text("apiserver-webhook-flags.txt");
        let flag = |name: &str| {
            flags
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("install/apiserver-webhook-flags.txt lacks {name}"))
                .to_owned()
        };
        let cp = ControlPlane::start_with_webhook(&WebhookSettings {
            config_file: PathBuf::from(
                flag("--authentication-token-webhook-config-file")
                    .replace("WEBHOOK_KUBECONFIG", &path.to_string_lossy()),
            ),
            cache_ttl: flag("--authentication-token-webhook-cache-ttl")
                .replace("CACHE_TTL", &format!("{}s", CACHE_TTL.as_secs())),
            version: flag("--authentication-token-webhook-version"),
            audit_policy: None,
        });
        cp.apply(&machine_rbac());
        cp
    })
}

/// `POST /oauth/token` with `grant_type=token-exchange`: `subject_token` for `cluster`.
fn exchange(
    issuer: &Issuer,
    subject_token: &str,
    cluster: &str,
) -> Result<TokenResponse, TokenError> {
    issuer.token_request(&[
        ("grant_type", GRANT_TOKEN_EXCHANGE),
        ("subject_token", subject_token),
        ("subject_token_type", TOKEN_TYPE_JWT),
        ("audience", cluster),
        ("client_id", PLUGIN_CLIENT_ID),
    ])
}

/// Fails the test unless `result` is a refusal with `code` whose description names `keyword`
/// and repeats no part of `token` but its header. Returns the description.
#[track_caller]
fn assert_refused(
    what: &str,
    result: Result<TokenResponse, TokenError>,
    code: OAuthErrorCode,
    keyword: &str,
    token: &str,
) -> String {
    let refused = match result {
        Ok(tokens) => panic!("{what}: the issuer exchanged it: {tokens:?}"),
        Err(e) => e,
    };
    assert_eq!(refused.code(), Some(code), "{what}: {}", refused.body);
    let description = refused
        .error
        .as_ref()
        .and_then(|e| e.error_description.clone())
        .unwrap_or_default();
    assert!(
        description.to_lowercase().contains(keyword),
        "{what}: the description does not say {keyword:?}: {}",
        refused.body
    );
    assert_no_token_in(what, &refused.body, token);
    description
}

/// Fails the test if `text` holds `token` or its claims or signature part.
#[track_caller]
fn assert_no_token_in(what: &str, text: &str, token: &str) {
    let secret_parts = token.split('.').skip(1).filter(|p| p.len() >= 8);
    for part in std::iter::once(token).chain(secret_parts) {
        assert!(
            !text.contains(part),
            "{what}: the text repeats the token: {}",
            text.chars().take(300).collect::<String>()
        );
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The exec protocol version this kubectl speaks best.
fn exec_version() -> ApiVersion {
    if bins::kubectl_speaks_exec_v1() {
        ApiVersion::V1
    } else {
        ApiVersion::V1Beta1
    }
}

/// `get --issuer URL --cluster CLUSTER --issuer-ca FILE` followed by `source`, the machine
/// mode's one credential source.
fn machine_args(issuer_url: &str, issuer_ca: &Path, source: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "get",
        "--issuer",
        issuer_url,
        "--cluster",
        CLUSTER,
        "--issuer-ca",
    ]
    .map(str::to_owned)
    .to_vec();
    args.push(issuer_ca.display().to_string());
    args.extend(source.iter().map(|s| (*s).to_owned()));
    args
}

/// A kubeconfig at `path` for `cp` whose user is `kubectl-credential ARGS` (never
/// interactive: a CI runner or cron has no terminal), as `kubectl credential setup --machine`
/// writes one.
fn write_machine_kubeconfig(path: &Path, cp: &ControlPlane, args: &[String]) {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER,
            "cluster": { "server": cp.server(), "certificate-authority": cp.ca_file() },
        }],
        "users": [{
            "name": "machine",
            "user": { "exec": {
                "apiVersion": exec_version().as_str(),
                "command": bins::kubectl_credential(),
                "args": args,
                "interactiveMode": "Never",
                "provideClusterInfo": true,
            }},
        }],
        "contexts": [{ "name": CLUSTER, "context": { "cluster": CLUSTER, "user": "machine" } }],
        "current-context": CLUSTER,
    });
    let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| panic!("kubeconfig: {e}"));
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// A CI runner: a clean home, the variables the platform sets for the job, and a kubeconfig in
/// machine mode.
struct Runner {
    env: UserEnv,
    vars: Vec<(String, String)>,
    kubeconfig: PathBuf,
}

impl Runner {
    fn new(cp: &ControlPlane, source: &[&str], vars: Vec<(String, String)>) -> Self {
        let m = machines();
        let env = UserEnv::new();
        let kubeconfig = env.home().join("kubeconfig");
        write_machine_kubeconfig(
            &kubeconfig,
            cp,
            &machine_args(m.issuer.url(), m.issuer.ca_file(), source),
        );
        Self {
            env,
            vars,
            kubeconfig,
        }
    }

    /// `kubectl ARGS` in the job's environment (kubectl hands it on to the plugin).
    fn kubectl(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.env.command(&bins::kubectl());
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args);
        process::run(&mut cmd, None, Duration::from_secs(60))
    }

    /// Fails the test unless the job may list namespaces and is forbidden to list secrets,
    /// as `username` (without the prefix), and nothing was cached in its home.
    #[track_caller]
    fn assert_allowed_namespaces_only(&self, username: &str) {
        self.kubectl(&["get", "namespaces", "-o", "name"])
            .assert_success()
            .assert_stdout_contains("namespace/default");
        let out = self.kubectl(&["get", "secrets", "-n", "default"]);
        assert_forbidden_as(&out, username);
        assert!(
            self.env.token_files().is_empty(),
            "machine mode without --token-cache-file wrote tokens: {:?}",
            self.env.token_files()
        );
    }
}

/// Fails the test unless kubectl failed because the API server forbade `username` something.
#[track_caller]
fn assert_forbidden_as(out: &Outcome, username: &str) {
    out.assert_failure();
    assert!(
        out.stderr.to_lowercase().contains("forbidden"),
        "expected Forbidden, but {out}"
    );
    let kube_username = format!("{PREFIX}{username}");
    assert!(
        out.stderr.contains(&kube_username),
        "expected the user name {kube_username} in the message, but {out}"
    );
}

/// Waits until `cp` refuses `token` with 401, at most `bound` + [`MARGIN`]; returns how long
/// it took.
#[track_caller]
fn wait_until_refused(cp: &ControlPlane, token: &str, what: &str, bound: Duration) -> Duration {
    let t0 = Instant::now();
    wait::until(what, bound + MARGIN, || {
        let resp = cp.get_with_token("/api/v1/namespaces", token);
        match resp.status {
            401 => Check::Done(()),
            200 => Check::Retry("still accepted".to_owned()),
            other => Check::Fail(format!("unexpected status {other}: {}", resp.body)),
        }
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- kube-apiserver log ---\n{}",
            cp.apiserver_log_tail(30)
        )
    });
    t0.elapsed()
}

#[test]
fn a_github_actions_job_runs_kubectl_with_its_platform_token_in_oidc_mode() {
    let m = machines();
    let cp = oidc_cluster();
    // What the runner sets for a job with `permissions: id-token: write`.
    let runner = Runner::new(
        cp,
        &["--identity-token", "github-actions"],
        vec![
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL".to_owned(),
                m.ci.github_request_url("deploy-main"),
            ),
            (
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN".to_owned(),
                m.ci.runner_token().to_owned(),
            ),
        ],
    );
    runner.assert_allowed_namespaces_only(DEPLOY_IDENTITY);

    // A job of another repository gets nothing, and kubectl says why.
    let other = Runner::new(
        cp,
        &["--identity-token", "github-actions"],
        vec![
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL".to_owned(),
                m.ci.github_request_url("other-repo"),
            ),
            (
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN".to_owned(),
                m.ci.runner_token().to_owned(),
            ),
        ],
    );
    other
        .kubectl(&["get", "namespaces"])
        .assert_failure()
        .assert_stderr_contains("no workload rule matched");
}

#[test]
fn a_gitlab_style_job_runs_kubectl_with_an_identity_token_from_its_environment_in_webhook_mode() {
    let m = machines();
    let cp = webhook_cluster();
    // GitLab's `id_tokens:` puts the job's token in a variable of the job's choosing, one
    // token for the whole job: its later kubectl calls reuse the cluster token through the
    // job's cache file (the rule accepts each platform token once).
    let token = m.ci.job_token("deploy-main", m.issuer.url());
    let job_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let cache = job_dir.path().join("kube-token.json");
    let cache_arg = cache.display().to_string();
    let runner = Runner::new(
        cp,
        &[
            "--identity-token",
            "env:DEPLOY_ID_TOKEN",
            "--token-cache-file",
            &cache_arg,
        ],
        vec![("DEPLOY_ID_TOKEN".to_owned(), token)],
    );
    runner.assert_allowed_namespaces_only(DEPLOY_IDENTITY);
    assert!(cache.is_file(), "the job's cache file was not written");
}

#[test]
fn a_pod_runs_kubectl_with_a_projected_token_file_read_on_every_exchange() {
    let m = machines();
    let cp = oidc_cluster();
    // A projected service-account token: the kubelet rewrites the file, so the plugin reads
    // it on every exchange. Here each kubectl call gets a file with a fresh token.
    let runner = Runner::new(cp, &[], Vec::new());
    let file = runner.env.home().join("token");
    let args = machine_args(
        m.issuer.url(),
        m.issuer.ca_file(),
        &["--identity-token", &format!("file:{}", file.display())],
    );
    write_machine_kubeconfig(&runner.kubeconfig, cp, &args);
    for _ in 0..2 {
        std::fs::write(&file, m.ci.job_token("deploy-main", m.issuer.url()))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        runner
            .kubectl(&["get", "namespaces", "-o", "name"])
            .assert_success()
            .assert_stdout_contains("namespace/default");
    }
}

#[test]
fn the_token_exchange_answers_a_matching_job_with_a_short_lived_token_and_no_refresh_token() {
    let m = machines();
    let subject = m.ci.job_token("deploy-main", m.issuer.url());
    let tokens = exchange(&m.issuer, &subject, CLUSTER)
        .unwrap_or_else(|e| panic!("the matching job was refused: {e:?}"));
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.issued_token_type.as_deref(), Some(TOKEN_TYPE_JWT));
    assert!(
        tokens.refresh_token.is_empty(),
        "a machine grant has no refresh token"
    );
    assert!(
        (1..=DEPLOY_TOKEN_LIFETIME).contains(&tokens.expires_in),
        "expires_in {} is not within the rule's {DEPLOY_TOKEN_LIFETIME}s",
        tokens.expires_in
    );
    let claims = claims_of(&tokens.access_token);
    assert_eq!(claims["aud"], AUDIENCE, "{claims}");
    assert_eq!(claims["iss"], m.issuer.url(), "{claims}");
    let lifetime = claims["exp"].as_i64().unwrap_or_default() - claims["iat"].as_i64().unwrap_or(0);
    assert!(
        lifetime > 0 && lifetime <= i64::try_from(DEPLOY_TOKEN_LIFETIME).unwrap_or(i64::MAX),
        "{claims}"
    );

    // `resource=` (the cluster's audience) names the cluster as well as `audience=`.
    let subject = m.ci.job_token("deploy-main", m.issuer.url());
    let by_resource = m.issuer.token_request(&[
        ("grant_type", GRANT_TOKEN_EXCHANGE),
        ("subject_token", &subject),
        ("subject_token_type", TOKEN_TYPE_JWT),
        ("resource", AUDIENCE),
    ]);
    assert!(by_resource.is_ok(), "resource={AUDIENCE}: {by_resource:?}");
}

#[test]
fn the_token_exchange_refuses_every_token_that_is_not_the_jobs_own_and_never_repeats_it() {
    use OAuthErrorCode::{InvalidGrant, InvalidRequest, InvalidTarget};
    let m = machines();
    let aud = m.issuer.url();
    let fresh = || m.ci.job_token("deploy-main", aud);
    // The claims of a genuine token with a new jti, for forgeries.
    let genuine = || {
        let mut claims = claims_of(&fresh());
        claims["jti"] = unique("forged-jti").into();
        claims
    };
    let now = unix_now();

    let mut expired = genuine();
    expired["iat"] = (now - 900).into();
    expired["nbf"] = (now - 900).into();
    expired["exp"] = (now - 300).into();
    let mut untrusted = genuine();
    untrusted["iss"] = "https://token.actions.githubusercontent.example".into();
    let mut oversized = genuine();
    oversized["padding"] = "x".repeat(MAX_SUBJECT_TOKEN + 1).into();
    let oversized = m.ci.forge(&oversized, ForgeKey::Published);
    assert!(oversized.len() > MAX_SUBJECT_TOKEN);

    let cases: Vec<(&str, String, &str, OAuthErrorCode, &str)> = vec![
        (
            "a job of another repository",
            m.ci.job_token("other-repo", aud),
            CLUSTER,
            InvalidGrant,
            r#"claim "repository""#,
        ),
        (
            "a job on another branch",
            m.ci.job_token("feature-branch", aud),
            CLUSTER,
            InvalidGrant,
            r#"claim "ref""#,
        ),
        (
            "a job deploying to another environment",
            m.ci.job_token("staging-env", aud),
            CLUSTER,
            InvalidGrant,
            r#"claim "environment""#,
        ),
        (
            "a token for another audience",
            m.ci.job_token("deploy-main", "https://elsewhere.example"),
            CLUSTER,
            InvalidGrant,
            "audience",
        ),
        (
            "an expired token",
            m.ci.forge(&expired, ForgeKey::Published),
            CLUSTER,
            InvalidGrant,
            "expired",
        ),
        (
            "a token signed by a key the platform does not publish",
            m.ci.forge(&genuine(), ForgeKey::Unknown),
            CLUSTER,
            InvalidGrant,
            "key",
        ),
        (
            "an unsigned token (alg none)",
            m.ci.forge(&genuine(), ForgeKey::None),
            CLUSTER,
            InvalidGrant,
            "algorithm",
        ),
        (
            "HS256 keyed with the platform's JWKS",
            m.ci.forge(&genuine(), ForgeKey::Hs256Jwks),
            CLUSTER,
            InvalidGrant,
            "algorithm",
        ),
        (
            "a token over 16 KiB",
            oversized,
            CLUSTER,
            InvalidGrant,
            "too large",
        ),
        (
            "a token of an issuer no rule trusts",
            m.ci.forge(&untrusted, ForgeKey::Published),
            CLUSTER,
            InvalidGrant,
            "issuer",
        ),
        (
            "a cluster the issuer does not know",
            fresh(),
            "nowhere",
            InvalidTarget,
            "cluster",
        ),
        (
            "a cluster the rule does not allow",
            fresh(),
            OTHER_CLUSTER,
            InvalidTarget,
            "cluster",
        ),
    ];
    for (what, token, cluster, code, keyword) in &cases {
        let description = assert_refused(
            what,
            exchange(&m.issuer, token, cluster),
            *code,
            keyword,
            token,
        );
        if keyword.starts_with("claim") {
            assert!(
                description.contains("no workload rule matched")
                    && description.contains(DEPLOY_RULE),
                "{what}: the description does not say which rule failed on what: {description}"
            );
        }
    }

    // A missing parameter is named.
    let token = fresh();
    let missing = m.issuer.token_request(&[
        ("grant_type", GRANT_TOKEN_EXCHANGE),
        ("subject_token_type", TOKEN_TYPE_JWT),
        ("audience", CLUSTER),
    ]);
    assert_refused(
        "no subject_token",
        missing,
        InvalidRequest,
        "subject_token",
        &token,
    );
}

#[test]
fn a_job_token_is_exchanged_once_even_by_a_burst_of_eight_parallel_requests() {
    let m = machines();
    let token = m.ci.job_token("deploy-main", m.issuer.url());
    exchange(&m.issuer, &token, CLUSTER)
        .unwrap_or_else(|e| panic!("the first exchange was refused: {e:?}"));
    assert_refused(
        "the same token again",
        exchange(&m.issuer, &token, CLUSTER),
        OAuthErrorCode::InvalidGrant,
        "already used",
        &token,
    );

    let token = m.ci.job_token("deploy-main", m.issuer.url());
    let results: Vec<Result<TokenResponse, TokenError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| exchange(&m.issuer, &token, CLUSTER)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a request thread panicked"))
            })
            .collect()
    });
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        won, 1,
        "exactly one of 8 parallel exchanges wins: {results:?}"
    );
    for refused in results.into_iter().filter(Result::is_err) {
        assert_refused(
            "a parallel replay",
            refused,
            OAuthErrorCode::InvalidGrant,
            "already used",
            &token,
        );
    }
}

#[test]
fn workload_disable_stops_new_exchanges_at_once_and_the_webhook_refuses_issued_tokens_within_seconds(
) {
    let m = machines();
    let cp = webhook_cluster();
    let token = exchange(
        &m.issuer,
        &m.ci.job_token("nightly-main", m.issuer.url()),
        CLUSTER,
    )
    .unwrap_or_else(|e| panic!("the nightly job was refused: {e:?}"))
    .access_token;
    // Accepted, and so cached by the API server, just before the disable.
    let resp = cp.get_with_token("/api/v1/namespaces", &token);
    assert_eq!(resp.status, 200, "{}", resp.body);

    m.issuer
        .cli(&["workload", "disable", NIGHTLY_RULE], None)
        .assert_success();
    m.issuer
        .cli(&["workload", "list"], None)
        .assert_success()
        .assert_stdout_contains(NIGHTLY_RULE)
        .assert_stdout_contains("disabled");
    let subject = m.ci.job_token("nightly-main", m.issuer.url());
    assert_refused(
        "a job of a disabled workload",
        exchange(&m.issuer, &subject, CLUSTER),
        OAuthErrorCode::InvalidGrant,
        "disabled",
        &subject,
    );

    // The token already out: refused within the caches' bound, long before its hour is up.
    let bound = CACHE_TTL + APISERVER_SUCCESS_CACHE + ISSUER_WEBHOOK_CACHE;
    let took = wait_until_refused(
        cp,
        &token,
        "the webhook-mode API server refuses the disabled workload's token",
        bound,
    );
    eprintln!("machines: the disabled workload's token was refused {took:.1?} after the disable");

    // Enabled again, the workload's jobs get tokens again.
    m.issuer
        .cli(&["workload", "enable", NIGHTLY_RULE], None)
        .assert_success();
    exchange(
        &m.issuer,
        &m.ci.job_token("nightly-main", m.issuer.url()),
        CLUSTER,
    )
    .unwrap_or_else(|e| panic!("the enabled workload was refused: {e:?}"));
}

/// `YYYY-MM-DD`, `days` from today (UTC), as `date` prints it.
fn date_in_days(days: u32) -> String {
    let out = process::run(
        Command::new("date").args(["-u", "-d", &format!("+{days} days"), "+%F"]),
        None,
        Duration::from_secs(10),
    );
    out.assert_success();
    out.stdout.trim().to_owned()
}

/// `kubectl credential machine keygen --out KEY` on `env`: the public key PEM it prints.
#[track_caller]
fn keygen(env: &UserEnv, key: &Path) -> String {
    let out = env.plugin(&[
        "machine".to_owned(),
        "keygen".to_owned(),
        "--out".to_owned(),
        key.display().to_string(),
    ]);
    out.assert_success();
    assert!(
        out.stdout
            .trim_start()
            .starts_with("-----BEGIN PUBLIC KEY-----"),
        "keygen prints the public key: {out}"
    );
    out.stdout.clone()
}

/// The cron script an operator writes: plain bash and kubectl, nothing else.
const CRON_SCRIPT: &str = r#"#!/bin/bash
set -euo pipefail
kubectl --kubeconfig "$1" get namespaces -o name
"#;

#[test]
fn a_cron_script_with_a_machine_key_runs_kubectl_until_the_machine_is_disabled() {
    use std::os::unix::fs::PermissionsExt as _;
    let m = machines();
    let cp = oidc_cluster();
    let server = UserEnv::new();
    let home = server.home();
    let key = home.join("backup.key");
    let public = keygen(&server, &key);
    let private = std::fs::read_to_string(&key).unwrap_or_default();
    assert!(
        private.starts_with("-----BEGIN PRIVATE KEY-----"),
        "the key file is not PKCS#8 PEM"
    );
    let mode = std::fs::metadata(&key).map_or(0, |md| md.permissions().mode() & 0o777);
    assert_eq!(mode, 0o600, "the private key is mode {mode:o}");
    // It never overwrites a key.
    server
        .plugin(&[
            "machine".to_owned(),
            "keygen".to_owned(),
            "--out".to_owned(),
            key.display().to_string(),
        ])
        .assert_failure();
    assert_eq!(std::fs::read_to_string(&key).unwrap_or_default(), private);

    let name = unique("backup");
    let pub_file = home.join("backup.pub");
    std::fs::write(&pub_file, public).unwrap_or_else(|e| panic!("write: {e}"));
    let pub_path = pub_file.display().to_string();
    let until = date_in_days(30);
    m.issuer
        .cli(
            &[
                "machine",
                "add",
                &name,
                "--public-key",
                &pub_path,
                "--group",
                BACKUP_GROUP,
                "--cluster",
                CLUSTER,
                "--until",
                &until,
            ],
            None,
        )
        .assert_success();
    m.issuer
        .cli(&["machine", "list"], None)
        .assert_success()
        .assert_stdout_contains(&name);

    let kubeconfig = home.join("kubeconfig");
    let key_path = key.display().to_string();
    write_machine_kubeconfig(
        &kubeconfig,
        cp,
        &machine_args(
            m.issuer.url(),
            m.issuer.ca_file(),
            &["--machine", &name, "--machine-key", &key_path],
        ),
    );
    let script = home.join("backup.sh");
    std::fs::write(&script, CRON_SCRIPT).unwrap_or_else(|e| panic!("write: {e}"));
    let run_script = || {
        let mut cmd = server.command(Path::new("/bin/bash"));
        cmd.arg(&script).arg(&kubeconfig);
        process::run(&mut cmd, None, Duration::from_secs(60))
    };
    run_script()
        .assert_success()
        .assert_stdout_contains("namespace/default");
    assert_forbidden_as(
        &server.kubectl(&kubeconfig, &["get", "secrets", "-n", "default"]),
        &format!("machine:{name}"),
    );

    m.issuer
        .cli(&["machine", "disable", &name], None)
        .assert_success();
    let out = run_script();
    out.assert_failure();
    assert!(
        out.stderr.to_lowercase().contains("disabled"),
        "the script's kubectl does not say the machine is disabled: {out}"
    );
}

/// `credential-issuer serve` as an operator runs it (`2> issuer.log`), with the machine
/// configuration, for the log story: the in-process issuer has no log of its own.
struct LoggedIssuer {
    child: Child,
    url: String,
    dir: PathBuf,
    config: PathBuf,
    _reaper: Reaper,
    _cleanup: Reaper,
}

impl LoggedIssuer {
    fn start(ci: &CiIssuer) -> Self {
        let (dir, cleanup) = process::reaped_temp_dir("e2e-machine-log.", "the issuer's directory");
        // The URL must be in the configuration (the CI tokens' audience) before it starts.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or_else(|e| panic!("bind: {e}"), |a| a.port());
        let url = format!("https://127.0.0.1:{port}");
        let config = dir.join("issuer.toml");
        let text = format!(
            "[[clusters]]\nname = \"{CLUSTER}\"\naudience = \"{AUDIENCE}\"\n{}",
            workloads(ci.url(), &url)
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("write: {e}"));
        let file = |name: &str| {
            std::fs::File::create(dir.join(name)).unwrap_or_else(|e| panic!("create {name}: {e}"))
        };
        let child = Command::new(bins::credential_issuer())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("RUST_LOG", "debug")
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--issuer-url",
                &url,
            ])
            .stdin(Stdio::null())
            .stdout(file("issuer.out"))
            .stderr(file("issuer.log"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start credential-issuer: {e}"));
        let reaper = Reaper::spawn(
            "the issuer",
            r#"kill -KILL -- "-$1" 2>/dev/null || true"#,
            &[child.id().to_string()],
        );
        let mut issuer = Self {
            child,
            url,
            dir,
            config,
            _reaper: reaper,
            _cleanup: cleanup,
        };
        let ca = issuer.ca_file();
        let ready = format!("{}/readyz", issuer.url);
        wait::until(
            "the logged issuer is ready",
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = issuer.child.try_wait() {
                    return Check::Fail(format!("it exited ({status}):\n{}", issuer.log()));
                }
                if !ca.is_file() {
                    return Check::Retry("no CA yet".to_owned());
                }
                match http::response(http::agent(&ca).get(&ready).call()) {
                    Ok(r) if r.status == 200 => Check::Done(()),
                    Ok(r) => Check::Retry(format!("status {}", r.status)),
                    Err(e) => Check::Retry(e),
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        issuer
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("data/tls/ca.crt")
    }

    /// Its stderr and stdout so far.
    fn log(&self) -> String {
        let read = |n: &str| {
            String::from_utf8_lossy(&std::fs::read(self.dir.join(n)).unwrap_or_default())
                .into_owned()
        };
        format!("{}{}", read("issuer.log"), read("issuer.out"))
    }

    fn cli(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(bins::credential_issuer());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.dir.join("data"));
        process::run(&mut cmd, None, Duration::from_secs(60))
    }

    fn exchange(&self, subject_token: &str) -> http::Response {
        let url = format!("{}{PATH_TOKEN}", self.url);
        http::response(http::agent(&self.ca_file()).post(&url).send_form(&[
            ("grant_type", GRANT_TOKEN_EXCHANGE),
            ("subject_token", subject_token),
            ("subject_token_type", TOKEN_TYPE_JWT),
            ("audience", CLUSTER),
        ]))
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }
}

impl Drop for LoggedIssuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_issuer_log_holds_no_subject_token_client_assertion_or_access_token() {
    let m = machines();
    let issuer = LoggedIssuer::start(&m.ci);

    // A successful exchange, its replay, and a forgery.
    let subject = m.ci.job_token("deploy-main", &issuer.url);
    let ok = issuer.exchange(&subject);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let access: serde_json::Value = serde_json::from_str(&ok.body).unwrap_or_default();
    let access = access["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        issuer.exchange(&subject).status,
        400,
        "the replay was accepted"
    );
    let forged = m.ci.forge(&claims_of(&subject), ForgeKey::Hs256Jwks);
    assert_eq!(
        issuer.exchange(&forged).status,
        400,
        "the forgery was accepted"
    );

    // A machine's client assertion, made and sent by the plugin.
    let server = UserEnv::new();
    let key = server.home().join("machine.key");
    let pub_file = server.home().join("machine.pub");
    std::fs::write(&pub_file, keygen(&server, &key)).unwrap_or_else(|e| panic!("write: {e}"));
    let name = unique("logged");
    issuer
        .cli(&[
            "machine",
            "add",
            &name,
            "--public-key",
            &pub_file.display().to_string(),
            "--group",
            BACKUP_GROUP,
            "--cluster",
            CLUSTER,
            "--until",
            &date_in_days(30),
        ])
        .assert_success();
    let key_path = key.display().to_string();
    let got = server.plugin_as_kubectl_would(
        &machine_args(
            &issuer.url,
            &issuer.ca_file(),
            &["--machine", &name, "--machine-key", &key_path],
        ),
        &e2e::plugin::exec_info(exec_version(), false),
    );
    got.assert_success();
    let machine_token = crate::world::token_in(&got.stdout);
    assert!(!machine_token.is_empty(), "no token in {got}");

    // Give the log a moment's worth of requests to be written: wait for the last one's line.
    let log = wait::until(
        "the issuer logs the requests",
        Duration::from_secs(30),
        || {
            let log = issuer.log();
            if log.matches("/oauth/token").count() >= 4 {
                Check::Done(log)
            } else {
                Check::Retry(log)
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for (what, token) in [
        ("the subject token", subject.as_str()),
        ("the forged token", forged.as_str()),
        ("the access token", access.as_str()),
        ("the machine's access token", machine_token.as_str()),
    ] {
        assert_no_token_in(what, &log, token);
    }
    // Every JWT (the client assertion the plugin made included) starts with `eyJ` (`{"`).
    assert!(
        !log.contains("eyJ"),
        "the log holds something JWT-shaped:\n{}",
        log.lines()
            .filter(|l| l.contains("eyJ"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
