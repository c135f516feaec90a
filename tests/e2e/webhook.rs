//! Webhook mode: an API server configured with exactly `install/webhook-kubeconfig.yaml` and
//! `install/apiserver-webhook-flags.txt` (placeholders filled in) and no `--oidc-*` flag asks the
//! issuer about every token. RBAC applies to the same `credential:` names as in OIDC mode, the
//! API server's own audit log carries the issuer's `extra` fields, and a session ended by
//! `logout` is refused while its token is still unexpired, within the revocation bound.
//!
//! The issuer is one of the test's own, not the world's: kube-apiserver caches every successful
//! token authentication for a fixed 10 s on top of the webhook cache TTL, so a revocation can
//! take up to TTL + 10 s to bite, which the world's 10 s tokens would not outlive (their expiry
//! could not be told apart from the revocation).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credential_shared::exec_credential::ApiVersion;
use e2e::wait::{self, Check};
use e2e::{ControlPlane, Issuer, IssuerOptions, UserEnv, WebhookSettings};

use crate::procs::OwnIssuer;
use crate::world::{assert_forbidden, Person, CLUSTER};

/// The API server's `--authentication-token-webhook-cache-ttl` in this test: short, so that
/// the revocation can be watched.
const CACHE_TTL: Duration = Duration::from_secs(2);
/// kube-apiserver's token success cache over all token authenticators (not configurable).
const APISERVER_SUCCESS_CACHE: Duration = Duration::from_secs(10);
/// Slack on top of the caches for one poll interval and a slow machine.
const MARGIN: Duration = Duration::from_secs(5);
/// Token lifetime of this test's issuer: well beyond the revocation bound.
const TOKEN_TTL: &str = "90s";

/// Every request at Metadata level: who, what, the answer; no bodies.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n";

fn install_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../install")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Starts an API server in webhook mode against `issuer`, from the shipped files.
fn webhook_control_plane(issuer: &Issuer, dir: &std::path::Path) -> ControlPlane {
    let kubeconfig = install_text("webhook-kubeconfig.yaml")
        .replace("ISSUER_URL", issuer.url())
        .replace("CLUSTER", CLUSTER)
        .replace("CA_FILE", &issuer.ca_file().to_string_lossy());
    let kubeconfig_path = dir.join("webhook-kubeconfig.yaml");
    std::fs::write(&kubeconfig_path, kubeconfig).unwrap_or_else(|e| panic!("write: {e}"));
    let policy_path = dir.join("audit-policy.yaml");
    std::fs::write(&policy_path, AUDIT_POLICY).unwrap_or_else(|e| panic!("write: {e}"));

    let flags: Vec<(String, String)> = install_text("apiserver-webhook-flags.txt")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("--"))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let flag = |name: &str| {
        flags.iter().find(|(k, _)| k == name).map_or_else(
            || panic!("install/apiserver-webhook-flags.txt lacks {name}"),
            |(_, v)| v.clone(),
        )
    };
    assert_eq!(
        flags.len(),
        3,
        "the test passes exactly the shipped flags: {flags:?}"
    );
    let cp = ControlPlane::start_with_webhook(&WebhookSettings {
        config_file: PathBuf::from(
            flag("--authentication-token-webhook-config-file")
                .replace("WEBHOOK_KUBECONFIG", &kubeconfig_path.to_string_lossy()),
        ),
        cache_ttl: flag("--authentication-token-webhook-cache-ttl")
            .replace("CACHE_TTL", &format!("{}s", CACHE_TTL.as_secs())),
        version: flag("--authentication-token-webhook-version"),
        audit_policy: Some(policy_path),
    });
    cp.apply(&crate::world::rbac());
    cp
}

/// The `sid` claim of a JWT (the test only reads it; the API server verified it).
fn session_id(jwt: &str) -> String {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_else(|e| panic!("token payload: {e}"));
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("token claims: {e}"));
    claims["sid"].as_str().unwrap_or_default().to_owned()
}

/// The issuer's own answer to a `TokenReview` of `token` (`status` and body), for messages.
fn issuer_review(issuer: &Issuer, token: &str) -> String {
    let url = format!("{}/authenticate/{CLUSTER}", issuer.url());
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    });
    let resp = e2e::http::response(
        e2e::http::agent(issuer.ca_file())
            .post(&url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
    );
    match resp {
        Ok(r) => format!("{} {}", r.status, r.body),
        Err(e) => format!("POST {url} failed: {e}"),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[test]
fn webhook_mode_allows_forbids_audits_extra_and_refuses_a_logged_out_session_within_the_bound() {
    let own = OwnIssuer::start(
        "yuki",
        IssuerOptions {
            token_ttl: TOKEN_TTL.to_owned(),
            ..IssuerOptions::default()
        },
    );
    let yuki = Person {
        name: own.username.clone(),
        password: own.password.clone(),
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let cp = webhook_control_plane(&own.issuer, dir.path());

    let env = UserEnv::new();
    let plugin = own.plugin_args(own.issuer.ca_file().to_owned());
    own.log_in(&env, &plugin);
    let version = if e2e::bins::kubectl_speaks_exec_v1() {
        ApiVersion::V1
    } else {
        ApiVersion::V1Beta1
    };
    let kubeconfig = env.write_kubeconfig(
        "kubeconfig-webhook",
        cp.server(),
        cp.ca_file(),
        version,
        &plugin,
    );

    // RBAC grants the readers' group namespaces, and nothing else.
    env.kubectl(&kubeconfig, &["get", "namespaces", "-o", "name"])
        .assert_success()
        .assert_stdout_contains("namespace/default");
    assert_forbidden(
        &env.kubectl(&kubeconfig, &["get", "secrets", "-n", "default"]),
        &yuki,
    );

    // Kubernetes' own audit log names the person with the issuer's extra fields.
    let cached = env.cached_token();
    let sid = session_id(&cached.access_token);
    assert!(!sid.is_empty(), "the token has no sid");
    let events = cp.audit_events();
    let mine: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["user"]["username"] == yuki.kube_username().as_str())
        .collect();
    let listed = mine
        .iter()
        .find(|e| e["objectRef"]["resource"] == "namespaces" && e["verb"] == "list")
        .unwrap_or_else(|| {
            panic!(
                "no audit event for the namespace list by {}: {mine:#?}",
                yuki.name
            )
        });
    let user = &listed["user"];
    assert_eq!(user["groups"][0], "credential:k8s-readers", "{user}");
    assert_eq!(
        user["extra"]["credential.kubectl.dev/session-id"][0],
        sid.as_str(),
        "{user}"
    );
    assert_eq!(
        user["extra"]["credential.kubectl.dev/cluster"][0], CLUSTER,
        "{user}"
    );
    assert_eq!(
        user["extra"]["credential.kubectl.dev/client-id"][0], "kubectl-credential",
        "{user}"
    );
    assert!(
        mine.iter()
            .any(|e| e["objectRef"]["resource"] == "secrets" && e["responseStatus"]["code"] == 403),
        "no audit event for the forbidden secrets list: {mine:#?}"
    );

    // The token kubectl uses, accepted (and cached by the API server) just before the logout.
    let token = cached.access_token;
    let resp = cp.get_with_token("/api/v1/namespaces", &token);
    assert_eq!(resp.status, 200, "{}", resp.body);

    // `kubectl credential logout` revokes the session at the issuer.
    env.plugin(&plugin.for_subcommand("logout"))
        .assert_success();
    let logged_out = std::time::Instant::now();
    let bound = CACHE_TTL + APISERVER_SUCCESS_CACHE;
    let refused_at = wait::until(
        "the webhook-mode API server refuses the logged-out session's token",
        bound + MARGIN,
        || {
            let resp = cp.get_with_token("/api/v1/namespaces", &token);
            match resp.status {
                401 => Check::Done(unix_now()),
                200 => Check::Retry("still accepted".to_owned()),
                other => Check::Fail(format!("unexpected status {other}: {}", resp.body)),
            }
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: the revocation did not reach the API server within its cache TTL ({CACHE_TTL:?}) \
             + its fixed success cache ({APISERVER_SUCCESS_CACHE:?}) + {MARGIN:?}\n\
             the issuer itself answers: {}\n--- kube-apiserver log (tail) ---\n{}",
            issuer_review(&own.issuer, &token),
            cp.apiserver_log_tail(30)
        )
    });
    eprintln!(
        "webhook: the API server refused the logged-out session's token {:.1?} after the logout",
        logged_out.elapsed()
    );
    assert!(
        refused_at < cached.exp,
        "the token was refused only at its expiry ({}), not because of the logout",
        cached.exp
    );
}
