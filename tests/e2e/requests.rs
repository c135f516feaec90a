//! Just-in-time access requests end to end: the requester files `kubectl credential request`
//! with the real plugin, cannot approve it themselves, another approver approves on the web
//! page, and the requester's very next kubectl call is allowed without a new login, with a token
//! that names the grant; when the grant ends the access is gone in the cluster. Denials show in
//! `kubectl credential requests`, break-glass is self-approved with an alert, and a notification
//! receiver (a tiny HTTP server of this test) gets every event, signed.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use credential_shared::exec_credential::ApiVersion;
use e2e::wait::{self, Check};

use crate::world::{assert_forbidden, unique, world, Laptop};

/// The identity group whose members approve [`ROLE`].
pub(crate) const APPROVERS: &str = "jit-approvers";
/// A requestable namespace role.
pub(crate) const ROLE: &str = "jit-pod-reader";
/// A break-glass role, self-approved.
const GLASS: &str = "jit-glass";
/// The HMAC key of the notifications.
const SECRET: &str = "e2e notification signing key";

/// What a notification receiver got: `(signature header, body)`.
type Received = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;

struct Receiver {
    url: String,
    received: Received,
    secret_file: PathBuf,
}

/// The receiver, started once (the world's issuer is configured with its URL).
fn receiver() -> &'static Receiver {
    static RECEIVER: OnceLock<Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("listener address: {e}"))
            .port();
        let received: Received = Arc::default();
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(&stream);
                let mut length = 0usize;
                let mut signature = None;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let l = line.trim_end().to_owned();
                    line.clear();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        let k = k.trim().to_ascii_lowercase();
                        if k == "content-length" {
                            length = v.trim().parse().unwrap_or(0);
                        } else if k == "x-credential-signature" {
                            signature = Some(v.trim().to_owned());
                        }
                    }
                }
                let mut body = vec![0; length.min(1 << 20)];
                if reader.read_exact(&mut body).is_ok() {
                    let raw = String::from_utf8_lossy(&body).into_owned();
                    let expected =
                        credential_issuer::service::notify::signature(SECRET.as_bytes(), &body);
                    // Only correctly signed bodies count: a test then fails for a bad signature.
                    let signed = signature.as_deref() == Some(expected.as_str());
                    if let Ok(v) = serde_json::from_str(&raw) {
                        if let Ok(mut r) = sink.lock() {
                            r.push((signed.then_some(expected), v));
                        }
                    }
                }
                let _ = (&stream).write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        let dir = std::env::temp_dir().join(format!("e2e-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let secret_file = dir.join("webhook-secret");
        std::fs::write(&secret_file, SECRET)
            .unwrap_or_else(|e| panic!("{}: {e}", secret_file.display()));
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            received,
            secret_file,
        }
    })
}

/// The roles, request settings and notifications this story needs, appended to the world's
/// issuer configuration (starts the receiver).
pub(crate) fn config() -> String {
    let r = receiver();
    format!(
        r#"
[[roles]]
name = "{ROLE}"
rules = [{{ api_groups = [""], resources = ["pods"], verbs = ["get", "list"] }}]
max_duration = "1h"
requestable = true
approvers = ["{APPROVERS}"]
reason_required = true

[[roles]]
name = "{GLASS}"
rules = [{{ api_groups = [""], resources = ["pods"], verbs = ["get", "list"] }}]
max_duration = "1h"
requestable = true
break_glass = true
self_approve = true

[requests]
pending_ttl = "10m"

[notifications]
webhook_url = "{url}"
webhook_secret_file = {secret:?}
"#,
        url = r.url,
        secret = r.secret_file.to_string_lossy(),
    )
}

/// Waits for the signed notification `event` about request `id`.
fn notification(id: &str, event: &str) -> serde_json::Value {
    wait::until(
        &format!("the {event} notification of request {id}"),
        Duration::from_secs(30),
        || {
            let got = receiver()
                .received
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default();
            match got
                .iter()
                .find(|(_, b)| b["request_id"] == id && b["event"] == event)
            {
                Some((Some(_), body)) => Check::Done(body.clone()),
                Some((None, body)) => Check::Fail(format!("unsigned or badly signed: {body}")),
                None => Check::Retry(format!("{} notifications so far", got.len())),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn create_namespace(name: &str) {
    world()
        .control_plane
        .kubectl_admin(&["create", "namespace", name], None)
        .assert_success();
}

/// `kubectl-credential request ...` on `laptop`.
pub(crate) fn file(
    laptop: &Laptop,
    role: &str,
    namespace: Option<&str>,
    length: &str,
) -> e2e::Outcome {
    let mut args = laptop.plugin.for_subcommand("request");
    args.extend(
        [
            "--role",
            role,
            "--reason",
            "OOM in payment-service",
            "--for",
            length,
        ]
        .map(str::to_owned),
    );
    if let Some(ns) = namespace {
        args.extend(["--namespace".to_owned(), ns.to_owned()]);
    }
    laptop.env.plugin(&args)
}

/// The request id `request` printed (`request: ID`).
pub(crate) fn request_id(out: &e2e::Outcome) -> String {
    let id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("request: "))
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(
        id.len() == 10 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "no request id in {out}"
    );
    id
}

/// The managed `RoleBinding`'s grant id in `namespace`, once there is one.
fn wait_for_grant_binding(namespace: &str) -> String {
    wait::until(
        "the reconciler creates the approved grant's RoleBinding",
        Duration::from_secs(30),
        || {
            let out = world().control_plane.kubectl_admin(
                &[
                    "get",
                    "rolebindings",
                    "-n",
                    namespace,
                    "-l",
                    "app.kubernetes.io/managed-by=credential-issuer",
                    "-o",
                    "jsonpath={.items[*].metadata.labels.credential\\.kubectl\\.dev/grant-id}",
                ],
                None,
            );
            match out.stdout.trim() {
                "" => Check::Retry("no managed RoleBinding yet".to_owned()),
                id => Check::Done(id.to_owned()),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The token of the ExecCredential `laptop` prints for kubectl (empty if it has none).
fn token_of_get(laptop: &Laptop) -> String {
    let out = laptop.get_credential(ApiVersion::V1);
    let cred: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("bad ExecCredential ({e}): {out}"));
    cred["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The `grants` claim of the token `get` prints.
fn grants_of_get(laptop: &Laptop) -> Vec<String> {
    let out = laptop.get_credential(ApiVersion::V1);
    out.assert_success();
    let cred: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("bad ExecCredential ({e}): {out}"));
    let token = cred["status"]["token"].as_str().unwrap_or_default();
    let payload = token.split('.').nth(1).unwrap_or_default();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap_or_else(|e| panic!("token payload: {e}")),
    )
    .unwrap_or_else(|e| panic!("token claims: {e}"));
    claims["grants"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_approved_request_opens_the_namespace_without_a_new_login_and_closes_at_its_end() {
    let world = world();
    // The requester is in the approvers group too: still never for their own request.
    let requester = world.new_person("jit-req", &[APPROVERS]);
    let approver = world.new_person("jit-lead", &[APPROVERS]);
    let ns = unique("jit");
    create_namespace(&ns);
    let laptop = Laptop::new();
    laptop.log_in(&requester);
    assert_forbidden(&laptop.kubectl(&["get", "pods", "-n", &ns]), &requester);

    let out = file(&laptop, ROLE, Some(&ns), "45s");
    out.assert_success()
        .assert_stdout_contains("status:  pending");
    let id = request_id(&out);
    let filed = notification(&id, "request.filed");
    assert_eq!(filed["requester"], requester.name.as_str());
    assert_eq!(filed["role"], ROLE);
    assert_eq!(filed["namespaces"][0], ns.as_str());
    assert_eq!(filed["reason"], "OOM in payment-service");
    assert_eq!(filed["alert"], false);
    assert!(
        filed["text"].as_str().unwrap_or_default().contains(&id),
        "{filed}"
    );

    // The requester cannot approve: the page shows no form for it and refuses a forged post,
    // and the API refuses their token.
    let own = world.browser();
    let login = own.get("/login");
    let _ = own.sign_in(&login, &requester.name, &requester.password);
    let page = own.get("/requests");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains(&id) && page.body.contains("Your own request"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&format!("action=\"/requests/{id}\"")),
        "{}",
        page.body
    );
    let csrf = e2e::browser::csrf_token(&login);
    let forged = own.post(
        &format!("/requests/{id}"),
        &[("action", "approve"), ("csrf_token", &csrf)],
    );
    assert_ne!(forged.status, 200, "{forged:?}");
    let token = token_of_get(&laptop);
    let api = e2e::http::response(
        e2e::http::agent(world.issuer.ca_file())
            .post(&format!(
                "{}/api/v1/requests/{id}/approve",
                world.issuer.url()
            ))
            .set("Authorization", &format!("Bearer {token}"))
            .call(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(api.status, 403, "{api:?}");
    assert!(!api.body.contains(&token), "the token was echoed");

    // Another approver approves on the web page.
    let lead = world.browser();
    let login = lead.get("/login");
    let _ = lead.sign_in(&login, &approver.name, &approver.password);
    let page = lead.get("/requests");
    assert!(
        page.body.contains(&format!("action=\"/requests/{id}\"")),
        "{}",
        page.body
    );
    let decided = lead.post(
        &format!("/requests/{id}"),
        &[
            ("action", "approve"),
            ("comment", "go ahead"),
            ("csrf_token", &e2e::browser::csrf_token(&page)),
        ],
    );
    assert_eq!(decided.status, 200, "{decided:?}");
    assert!(decided.body.contains("approved"), "{}", decided.body);
    let decision = notification(&id, "request.approved");
    assert_eq!(decision["decided_by"], approver.name.as_str());

    // The very next kubectl call is allowed, without a new login, and `get` hands out a
    // token naming the grant.
    let grant = wait_for_grant_binding(&ns);
    laptop.kubectl(&["get", "pods", "-n", &ns]).assert_success();
    assert_eq!(grants_of_get(&laptop), [grant]);

    // At the end of the 45 s the binding goes and access is gone.
    wait::until(
        "access ends with the grant",
        Duration::from_secs(90),
        || {
            let out = laptop.kubectl(&["get", "pods", "-n", &ns]);
            if out.success() {
                Check::Retry("still allowed".to_owned())
            } else {
                Check::Done(out)
            }
        },
    )
    .map_or_else(|e| panic!("{e}"), |out| assert_forbidden(&out, &requester));
}

#[test]
fn a_denial_is_shown_by_kubectl_credential_requests() {
    let world = world();
    let (_requester, laptop) = world.signed_in("jit-denied", &[]);
    let out = file(&laptop, ROLE, Some("payments"), "30m");
    out.assert_success();
    let id = request_id(&out);
    world
        .issuer
        .cli(&["request", "deny", &id, "--comment", "use staging"], None)
        .assert_success();
    let denied = notification(&id, "request.denied");
    assert_eq!(denied["comment"], "use staging");
    let listed = laptop.plugin("requests");
    listed.assert_success();
    let line = listed
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("request {id} not listed: {listed}"));
    assert!(
        line.contains("denied") && line.contains("admin-cli") && line.contains("use staging"),
        "{line}"
    );
    // The admin CLI's list shows it too.
    world
        .issuer
        .cli(&["request", "list"], None)
        .assert_success()
        .assert_stdout_contains(&id);
}

#[test]
fn break_glass_is_self_approved_and_raises_an_alert() {
    let world = world();
    let (person, laptop) = world.signed_in("jit-glass", &[]);
    let out = file(&laptop, GLASS, None, "10m");
    out.assert_success()
        .assert_stdout_contains("status:  approved")
        .assert_stdout_contains(&format!("by:      {}", person.name));
    let id = request_id(&out);
    let alert = notification(&id, "request.break_glass");
    assert_eq!(alert["alert"], true);
    assert_eq!(alert["requester"], person.name.as_str());
    assert!(
        alert["text"]
            .as_str()
            .unwrap_or_default()
            .contains("BREAK-GLASS"),
        "{alert}"
    );
    // The token now carries the grant (the plugin refreshed after the approval).
    assert_eq!(grants_of_get(&laptop).len(), 1);
}

#[test]
fn request_wait_ends_with_exit_8_when_the_request_is_denied() {
    let world = world();
    let (requester, laptop) = world.signed_in("jit-waiter", &[]);
    let mut args = laptop.plugin.for_subcommand("request");
    args.extend(
        [
            "--role",
            ROLE,
            "--namespace",
            "payments",
            "--reason",
            "waiting",
            "--for",
            "5m",
            "--wait",
        ]
        .map(str::to_owned),
    );
    std::thread::scope(|s| {
        let waiting = s.spawn(|| laptop.env.plugin(&args));
        // The administrator finds the pending request and denies it.
        let id = wait::until(
            "the waiting request is listed as pending",
            Duration::from_secs(30),
            || {
                let out = world.issuer.cli(&["request", "list", "--pending"], None);
                match out
                    .stdout
                    .lines()
                    .find(|l| l.contains(&requester.name))
                    .and_then(|l| l.split_whitespace().next())
                {
                    Some(id) => Check::Done(id.to_owned()),
                    None => Check::Retry(format!("not listed yet: {out}")),
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        world
            .issuer
            .cli(&["request", "deny", &id, "--comment", "not now"], None)
            .assert_success();
        let out = waiting
            .join()
            .unwrap_or_else(|_| panic!("the waiting plugin thread panicked"));
        out.assert_code(8)
            .assert_stderr_contains("was denied: not now")
            .assert_stdout_contains("status:  denied");
    });
}

/// A person opens the approvals page without being signed in: they sign in and land back on
/// `/requests`, which lists the roles they may ask for with the limit as configured (`1h`);
/// the plugin's token reads the same list from `/api/v1/roles`, and a request for longer is
/// refused naming `1h`, not a number of seconds.
#[test]
fn the_requests_page_returns_after_sign_in_and_lists_the_roles_one_may_request() {
    let world = world();
    let person = world.new_person("jit-roles", &["jit-nobody"]);
    let browser = world.browser();
    let login = browser.get("/requests");
    assert_eq!(
        e2e::browser::path_of(&login),
        "/login",
        "not sent to sign in: {login:?}"
    );
    let back = browser.sign_in(&login, &person.name, &person.password);
    assert_eq!(back.status, 200, "{back:?}");
    assert_eq!(
        e2e::browser::path_of(&back),
        "/requests",
        "the sign-in did not come back to /requests: {}",
        back.body
    );
    let roles = &back.body[back
        .body
        .find(r#"id="roles""#)
        .unwrap_or_else(|| panic!("no roles section: {}", back.body))..];
    let role_row = |name: &str| -> String {
        let start = roles
            .find(&format!(r#"id="role-{name}""#))
            .unwrap_or_else(|| panic!("{name} is not listed: {roles}"));
        let row = &roles[start..];
        row[..row.find("</tr>").unwrap_or(row.len())].to_owned()
    };
    let row = role_row(ROLE);
    assert!(row.contains("<td>1h</td>"), "{row}");
    assert!(row.contains(APPROVERS), "{row}");
    assert!(row.contains("required"), "{row}");
    assert!(role_row(GLASS).contains("approved at once"), "{roles}");

    let laptop = Laptop::new();
    laptop.log_in(&person);
    let token = token_of_get(&laptop);
    let api = e2e::http::response(
        e2e::http::agent(world.issuer.ca_file())
            .get(&format!(
                "{}{}",
                world.issuer.url(),
                credential_shared::api::PATH_ROLES
            ))
            .set("Authorization", &format!("Bearer {token}"))
            .call(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(api.status, 200, "{api:?}");
    let list: credential_shared::api::RoleList =
        serde_json::from_str(&api.body).unwrap_or_else(|e| panic!("{e}: {}", api.body));
    let listed = list
        .roles
        .iter()
        .find(|r| r.name == ROLE)
        .unwrap_or_else(|| panic!("{ROLE} not in {list:?}"));
    assert_eq!(listed.max_duration, "1h");
    assert!(listed.needs_approval);

    // `kubectl credential roles` prints the same list.
    let listed = laptop.env.plugin(&laptop.plugin.for_subcommand("roles"));
    listed.assert_success();
    let line = listed
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{ROLE} ")))
        .unwrap_or_else(|| panic!("{ROLE} not listed: {listed}"));
    assert!(
        line.contains(" 1h ") && line.contains("required") && line.contains(APPROVERS),
        "{line}"
    );
    assert!(listed.stdout.contains(GLASS), "{listed}");

    let out = file(&laptop, ROLE, None, "2h");
    out.assert_failure().assert_stderr_contains("at most 1h");
    assert!(!out.stderr.contains("3600"), "{out}");
}
