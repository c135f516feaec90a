//! The credential proxy: an API server that knows nothing of the issuer (no `--oidc-*`, no
//! webhook) is reached through `credential-issuer proxy`, which checks each person's token and
//! forwards the request impersonating them with a credential of its own that may do nothing
//! else (the `ServiceAccount` of `install/proxy-rbac.yaml`). People get the proxy's URL from
//! `kubectl credential setup`, and kubectl works as it does against the API server: lists in
//! pages, `--watch`, `apply`, `delete`, `auth can-i`, `exec` (answered by the API server here:
//! there is no kubelet), large bodies, an upgraded connection (through the API server's service
//! proxy to a backend that switches protocols), and the API server's own Forbidden. Its audit
//! log names the person. The proxy refuses what it must: a client's own impersonation, a
//! disabled account or machine and a logged-out session within seconds, a token of another
//! cluster; a revoked grant ends within seconds. It follows key rotation, every request is a
//! `proxy.request` event of the issuer's audit trail (kept at SIGTERM), and no token reaches its
//! log.
//!
//! The stories share one [`Site`] (control plane, issuer, proxy), each with its own people and
//! namespaces; the ones that stop a proxy or rotate keys start an issuer and proxy of their own
//! on the site's API server.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::proxy::{self, ProxyCredential};
use e2e::wait::{self, Check};
use e2e::{
    ControlPlane, Issuer, IssuerOptions, Outcome, PluginArgs, Proxy, ProxyOptions, TokenCache,
    UserEnv,
};

use crate::world::{assert_forbidden, unique, Person, CLUSTER, LOGIN_TIMEOUT};

/// A second cluster of the issuer, without a proxy: its tokens must not pass the proxy.
const OTHER_CLUSTER: &str = "elsewhere";
/// Its audience.
const OTHER_AUDIENCE: &str = "elsewhere-audience";
/// The issuer group whose members may list namespaces (as `credential:proxy-readers`).
const READERS: &str = "proxy-readers";
/// The `ClusterRole` a team gets in its `NAME-view` namespace. Not Kubernetes' own `view`:
/// that one is aggregated, and with no controller manager in the test its rules stay empty.
const VIEWER: &str = "proxy-viewer";
/// The `ClusterRole` a team gets in its `NAME-edit` namespace (see [`VIEWER`]).
const EDITOR: &str = "proxy-editor";
/// Token lifetime: far beyond the revocation bound, so that a refusal is not the expiry.
const TOKEN_TTL: &str = "120s";
/// What the proxy answers a client's own `Impersonate-*` header (the contract's wording).
const NO_IMPERSONATION: &str =
    "impersonation headers are not accepted through the credential proxy";
/// Every request at Metadata level: who, as whom, what, the answer; no bodies.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n";
/// How long a revocation may take to reach the proxy: its session cache (the issuer's default
/// `webhook_cache_ttl`, 5 s), the revocation feed (about 1 s) and slack for a slow machine.
const REVOCATION_BOUND: Duration = Duration::from_secs(15);

/// The control plane, the issuer and the proxy of its first cluster.
struct Site {
    // Declared first so that it stops before the issuer whose data directory it uses.
    proxy: Proxy,
    issuer: Issuer,
    control_plane: ControlPlane,
    credential: ProxyCredential,
    _dir: tempfile::TempDir,
}

static SITE: OnceLock<Result<Site, String>> = OnceLock::new();

fn site() -> &'static Site {
    let started = SITE.get_or_init(|| {
        std::panic::catch_unwind(Site::start).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned())
        })
    });
    match started {
        Ok(site) => site,
        Err(e) => panic!("the control plane + issuer + proxy did not start:\n{e}"),
    }
}

impl Site {
    fn start() -> Self {
        let t0 = Instant::now();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let policy = dir.path().join("audit-policy.yaml");
        std::fs::write(&policy, AUDIT_POLICY).unwrap_or_else(|e| panic!("write: {e}"));
        let control_plane = ControlPlane::start_without_oidc_audited(&policy);
        let credential = proxy::service_account_credential(&control_plane, dir.path());
        let options = ProxyOptions::new(CLUSTER, &credential.kubeconfig);
        let issuer = Issuer::start(&IssuerOptions {
            clusters: vec![
                (CLUSTER.to_owned(), "kubernetes".to_owned()),
                (OTHER_CLUSTER.to_owned(), OTHER_AUDIENCE.to_owned()),
            ],
            token_ttl: TOKEN_TTL.to_owned(),
            api_server: Some((
                control_plane.server().to_owned(),
                control_plane.ca_file().to_owned(),
            )),
            proxies: vec![options],
            // Grants of the `pod-reader` role, reconciled into the API server every 2 s.
            grant_roles: Some(crate::grants::ROLES.to_owned()),
            ..IssuerOptions::default()
        });
        crate::grants::give_the_reconciler_access(
            &control_plane,
            &issuer.reconciler_kubeconfig(CLUSTER),
        );
        control_plane.apply(&format!(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: proxy-ns-reader
rules:
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: proxy-ns-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: proxy-ns-reader
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: credential:{READERS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {VIEWER}
rules:
- apiGroups: [""]
  resources: ["pods", "configmaps", "services"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {EDITOR}
rules:
- apiGroups: [""]
  resources: ["pods", "configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods/exec", "services/proxy"]
  verbs: ["create", "get"]
- apiGroups: [""]
  resources: ["endpoints"]
  verbs: ["get", "list"]
"#
        ));
        let proxy = Proxy::start(&issuer, CLUSTER);
        eprintln!(
            "e2e: proxy {} for API server {} ready in {:.1?}",
            proxy.url(),
            control_plane.server(),
            t0.elapsed()
        );
        Self {
            proxy,
            issuer,
            control_plane,
            credential,
            _dir: dir,
        }
    }

    /// A new person in [`READERS`] and a team group of their own, with namespaces
    /// `NAME-view` ([`VIEWER`]) and `NAME-edit` ([`EDITOR`]), on a desk whose
    /// kubeconfig comes from `kubectl credential setup`, logged in through the plugin.
    fn person_at_desk(&self, role: &str) -> Desk {
        let name = unique(role);
        let password = format!("correct horse battery staple {name}");
        let team = format!("team-{name}");
        self.issuer
            .add_user(&name, &[READERS, team.as_str()], &password);
        let view_ns = format!("{name}-view");
        let edit_ns = format!("{name}-edit");
        for (ns, cluster_role) in [(&view_ns, VIEWER), (&edit_ns, EDITOR)] {
            self.control_plane.apply(&format!(
                r"
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: team-{cluster_role}
  namespace: {ns}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {cluster_role}
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: credential:{team}
"
            ));
        }
        let desk = Desk::set_up(self, Person { name, password });
        desk.log_in(self);
        Desk {
            view_ns,
            edit_ns,
            ..desk
        }
    }
}

/// A person's machine with the kubeconfig `kubectl credential setup` wrote.
struct Desk {
    person: Person,
    env: UserEnv,
    plugin: PluginArgs,
    kubeconfig: PathBuf,
    view_ns: String,
    edit_ns: String,
}

impl Desk {
    /// `kubectl credential setup` from the issuer's cluster list into a fresh kubeconfig; its
    /// context for the proxied cluster must point at the proxy.
    fn set_up(site: &Site, person: Person) -> Self {
        let env = UserEnv::new();
        let kubeconfig = env.home().join("kubeconfig");
        let plugin_bin = e2e::bins::kubectl_credential();
        let mut cmd = env.command(&plugin_bin);
        cmd.env("KUBECONFIG", &kubeconfig).args([
            "setup",
            "--issuer",
            site.issuer.url(),
            "--issuer-ca",
            &site.issuer.ca_file().to_string_lossy(),
            "--token-cache",
            "file",
            "--command",
            &plugin_bin.to_string_lossy(),
        ]);
        e2e::process::run(&mut cmd, None, Duration::from_secs(30)).assert_success();
        let plugin = PluginArgs {
            issuer: site.issuer.url().to_owned(),
            cluster: CLUSTER.to_owned(),
            issuer_ca: site.issuer.ca_file().to_owned(),
            token_cache: TokenCache::File,
        };
        Self {
            person,
            env,
            plugin,
            kubeconfig,
            view_ns: String::new(),
            edit_ns: String::new(),
        }
    }

    /// `kubectl-credential login`, approved in a browser.
    fn log_in(&self, site: &Site) {
        let login = self.env.start_login(&self.plugin);
        let _ = site.issuer.browser().approve(
            login.user_code(),
            &self.person.name,
            &self.person.password,
        );
        login.finish(LOGIN_TIMEOUT).assert_success();
    }

    /// `kubectl --context CLUSTER ARGS` with the kubeconfig from setup.
    fn kubectl(&self, args: &[&str]) -> Outcome {
        let mut all = vec!["--context", CLUSTER];
        all.extend_from_slice(args);
        self.env.kubectl(&self.kubeconfig, &all)
    }

    /// The access token kubectl is handed (from the plugin's cache).
    fn token(&self) -> String {
        self.env.cached_token().access_token
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The body of a refusal by the proxy: a Kubernetes `Status` with `code` and `reason`.
#[track_caller]
fn assert_status(resp: &e2e::http::Response, code: u16, reason: &str) -> serde_json::Value {
    assert_eq!(resp.status, code, "expected {code} {reason}, got {resp:?}");
    let doc: serde_json::Value = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("the {code} body is not a Status ({e}): {}", resp.body));
    assert_eq!(doc["kind"], "Status", "{doc}");
    assert_eq!(doc["status"], "Failure", "{doc}");
    assert_eq!(doc["reason"], reason, "{doc}");
    assert_eq!(doc["code"], code, "{doc}");
    assert!(
        doc["message"].as_str().is_some_and(|m| !m.is_empty()),
        "the Status says nothing: {doc}"
    );
    doc
}

/// The API server's audit events of requests the proxy made as `username`.
fn impersonated_events(cp: &ControlPlane, username: &str) -> Vec<serde_json::Value> {
    cp.audit_events()
        .into_iter()
        .filter(|e| e["impersonatedUser"]["username"] == username)
        .collect()
}

#[test]
fn through_the_proxy_kubectl_works_as_the_person_and_rbac_decides() {
    let site = site();
    let desk = site.person_at_desk("pia");

    // setup wrote the proxy's URL (and the CA that signed its certificate), not the API server's.
    let view = desk
        .env
        .kubectl(&desk.kubeconfig, &["config", "view", "--raw", "-o", "json"]);
    view.assert_success();
    let config: serde_json::Value = serde_json::from_str(&view.stdout)
        .unwrap_or_else(|e| panic!("kubectl config view printed no JSON ({e}): {view}"));
    let cluster = config["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == CLUSTER))
        .unwrap_or_else(|| panic!("setup wrote no cluster {CLUSTER}: {config:#}"));
    assert_eq!(
        cluster["cluster"]["server"],
        site.proxy.url(),
        "setup must point kubectl at the proxy, not at the API server {}",
        site.control_plane.server()
    );
    let ca = cluster["cluster"]["certificate-authority-data"]
        .as_str()
        .map(|b64| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_else(|e| panic!("certificate-authority-data is not base64: {e}"))
        })
        .unwrap_or_default();
    assert_eq!(
        ca,
        std::fs::read(site.issuer.ca_file()).unwrap_or_default(),
        "setup must trust the CA of the proxy's generated certificate (the issuer's), not the \
         API server's: {cluster:#}"
    );

    desk.kubectl(&["get", "namespaces", "-o", "name"])
        .assert_success()
        .assert_stdout_contains(&format!("namespace/{}", desk.view_ns));

    // The team may view its namespace; the API server's own Forbidden reaches kubectl, naming
    // the person (not the proxy) for what RBAC does not allow.
    desk.kubectl(&["get", "pods", "-n", &desk.view_ns])
        .assert_success();
    let secrets = desk.kubectl(&["get", "secrets", "-n", "kube-system"]);
    assert_forbidden(&secrets, &desk.person);
    secrets.assert_stderr_contains("cannot list resource \"secrets\"");
    assert!(
        !secrets.stderr.contains(&site.credential.username),
        "the Forbidden names the proxy, not the person: {secrets}"
    );

    // A list in pages: the query (`limit`, then `continue`) reaches the API server unchanged.
    for name in ["one", "two", "three"] {
        site.control_plane.apply(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {}\n",
            desk.view_ns
        ));
    }
    let paged = desk.kubectl(&[
        "get",
        "configmaps",
        "-n",
        &desk.view_ns,
        "--chunk-size=1",
        "-o",
        "name",
    ]);
    paged.assert_success();
    for name in ["one", "two", "three"] {
        paged.assert_stdout_contains(&format!("configmap/{name}"));
    }

    // `auth can-i` is answered for the person: yes where the team views, no elsewhere.
    desk.kubectl(&["auth", "can-i", "list", "pods", "-n", &desk.view_ns])
        .assert_success()
        .assert_stdout_contains("yes");
    desk.kubectl(&["auth", "can-i", "list", "secrets", "-n", "kube-system"])
        .assert_code(1)
        .assert_stdout_contains("no");
    desk.kubectl(&["auth", "can-i", "create", "configmaps", "-n", &desk.view_ns])
        .assert_code(1)
        .assert_stdout_contains("no");
    desk.kubectl(&["auth", "can-i", "create", "configmaps", "-n", &desk.edit_ns])
        .assert_success()
        .assert_stdout_contains("yes");

    // The proxy's own credential may not do what the person did: the rights are theirs.
    site.control_plane
        .kubectl_admin(
            &[
                "auth",
                "can-i",
                "list",
                "pods",
                "-n",
                &desk.view_ns,
                "--as",
                &site.credential.username,
            ],
            None,
        )
        .assert_code(1);
}

#[test]
fn through_the_proxy_apply_and_delete_change_what_the_person_may_edit() {
    let site = site();
    let desk = site.person_at_desk("eli");
    let manifest = |ns: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  colour: blue\n"
        )
    };
    let apply = |ns: &str| {
        let path = desk.env.home().join(format!("{ns}.yaml"));
        std::fs::write(&path, manifest(ns)).unwrap_or_else(|e| panic!("write: {e}"));
        desk.kubectl(&["apply", "-f", &path.to_string_lossy()])
    };

    apply(&desk.edit_ns)
        .assert_success()
        .assert_stdout_contains("configmap/settings created");
    let got = site.control_plane.kubectl_admin(
        &[
            "get",
            "configmap",
            "settings",
            "-n",
            &desk.edit_ns,
            "-o",
            "jsonpath={.data.colour}",
        ],
        None,
    );
    got.assert_success();
    assert_eq!(got.stdout.trim(), "blue", "{got}");
    // A second apply reads the object back through the proxy and finds nothing to change.
    apply(&desk.edit_ns)
        .assert_success()
        .assert_stdout_contains("configmap/settings unchanged");

    // Viewing is not editing.
    assert_forbidden(&apply(&desk.view_ns), &desk.person);

    desk.kubectl(&["delete", "configmap", "settings", "-n", &desk.edit_ns])
        .assert_success()
        .assert_stdout_contains("deleted");
    site.control_plane
        .kubectl_admin(&["get", "configmap", "settings", "-n", &desk.edit_ns], None)
        .assert_failure()
        .assert_stderr_contains("NotFound");
}

#[test]
fn large_bodies_pass_the_proxy_whole_both_ways() {
    let site = site();
    let desk = site.person_at_desk("bea");
    // Close to the 1 MiB a ConfigMap may hold: well past any buffer a proxy might cap.
    let data: String = (0..900_000_u32)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap_or(0)))
        .collect();
    let file = desk.env.home().join("big.txt");
    std::fs::write(&file, &data).unwrap_or_else(|e| panic!("write: {e}"));
    desk.kubectl(&[
        "create",
        "configmap",
        "big",
        "-n",
        &desk.edit_ns,
        &format!("--from-file=big.txt={}", file.display()),
    ])
    .assert_success();
    let stored = site.control_plane.kubectl_admin(
        &[
            "get",
            "configmap",
            "big",
            "-n",
            &desk.edit_ns,
            "-o",
            "jsonpath={.data.big\\.txt}",
        ],
        None,
    );
    stored.assert_success();
    assert!(
        stored.stdout == data,
        "the API server stored {} bytes, not the {} sent",
        stored.stdout.len(),
        data.len()
    );
    let read = desk.kubectl(&[
        "get",
        "configmap",
        "big",
        "-n",
        &desk.edit_ns,
        "-o",
        "jsonpath={.data.big\\.txt}",
    ]);
    read.assert_success();
    assert!(
        read.stdout == data,
        "{} bytes came back through the proxy, not {}",
        read.stdout.len(),
        data.len()
    );

    // The OpenAPI document (megabytes, sent in chunks) arrives whole.
    let direct = site
        .control_plane
        .kubectl_admin(&["get", "--raw", "/openapi/v2"], None);
    direct.assert_success();
    let proxied = desk.kubectl(&["get", "--raw", "/openapi/v2"]);
    proxied.assert_success();
    assert!(
        direct.stdout.len() > 1_000_000 && proxied.stdout == direct.stdout,
        "the OpenAPI document through the proxy ({} bytes) differs from the API server's ({} bytes)",
        proxied.stdout.len(),
        direct.stdout.len()
    );
}

#[test]
fn a_watch_through_the_proxy_sees_a_change_made_while_it_runs() {
    let site = site();
    let desk = site.person_at_desk("wes");
    let ns = desk.view_ns.clone();
    let create = |name: &str| {
        site.control_plane.apply(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
        ));
    };
    create("before");
    let mut watch = desk.env.kubectl_background(
        &desk.kubeconfig,
        &[
            "--context",
            CLUSTER,
            "get",
            "configmaps",
            "-n",
            &ns,
            "--watch",
            "-o",
            "name",
        ],
    );
    // The list part of the watch is done once the first object is printed.
    wait::until(
        "kubectl --watch lists the existing ConfigMap",
        Duration::from_secs(30),
        || {
            if watch.stdout().contains("configmap/before") {
                Check::Done(())
            } else if !watch.is_running() {
                Check::Fail(format!(
                    "kubectl exited: {}\n{}",
                    watch.stdout(),
                    watch.stderr()
                ))
            } else {
                Check::Retry(watch.stdout())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n--- proxy log ---\n{}", site.proxy.log_tail(20)));

    // Created after the list: only the watch stream, carried by the proxy, can bring it.
    create("after");
    wait::until(
        "kubectl --watch shows the ConfigMap created while it runs",
        Duration::from_secs(30),
        || {
            if watch.stdout().contains("configmap/after") {
                Check::Done(())
            } else if !watch.is_running() {
                Check::Fail(format!(
                    "kubectl exited: {}\n{}",
                    watch.stdout(),
                    watch.stderr()
                ))
            } else {
                Check::Retry(watch.stdout())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n--- proxy log ---\n{}", site.proxy.log_tail(20)));
    assert!(
        watch.is_running(),
        "the watch ended instead of staying open: {}",
        watch.stderr()
    );
    let out = watch.stop();
    assert!(
        !out.stderr.to_lowercase().contains("error"),
        "the watch reported an error: {out}"
    );
    let watched = wait::until(
        "the API server's audit log has the person's watch",
        Duration::from_secs(10),
        || {
            let mine = impersonated_events(&site.control_plane, &desk.person.kube_username());
            if mine
                .iter()
                .any(|e| e["verb"] == "watch" && e["objectRef"]["resource"] == "configmaps")
            {
                Check::Done(())
            } else {
                Check::Retry(format!("{} events of the person", mine.len()))
            }
        },
    );
    watched.unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_api_servers_audit_log_names_the_person_the_proxy_impersonated() {
    let site = site();
    let desk = site.person_at_desk("ada");
    desk.kubectl(&["get", "pods", "-n", &desk.view_ns])
        .assert_success();

    let username = desk.person.kube_username();
    let event = wait::until(
        "the API server's audit log has the person's pod list",
        Duration::from_secs(10),
        || {
            let mine = impersonated_events(&site.control_plane, &username);
            match mine.into_iter().find(|e| {
                e["verb"] == "list"
                    && e["objectRef"]["resource"] == "pods"
                    && e["objectRef"]["namespace"] == desk.view_ns.as_str()
            }) {
                Some(e) => Check::Done(e),
                None => Check::Retry("no such event yet".to_owned()),
            }
        },
    )
    .unwrap_or_else(|e| {
        let by_proxy: Vec<serde_json::Value> = site
            .control_plane
            .audit_events()
            .into_iter()
            .filter(|e| e["user"]["username"] == site.credential.username.as_str())
            .take(5)
            .collect();
        panic!("{e}\nsome events by the proxy's account: {by_proxy:#?}")
    });
    // Who asked: the proxy's `ServiceAccount`, on behalf of the person, with the person's groups
    // and the issuer's extra fields; the answer was the API server's.
    assert_eq!(
        event["user"]["username"],
        site.credential.username.as_str(),
        "{event:#}"
    );
    let groups: Vec<&str> = event["impersonatedUser"]["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    for group in [
        format!("credential:{READERS}"),
        format!("credential:team-{}", desk.person.name),
    ] {
        assert!(groups.contains(&group.as_str()), "no {group}: {event:#}");
    }
    assert_eq!(
        event["impersonatedUser"]["extra"]["credential.kubectl.dev/cluster"][0], CLUSTER,
        "{event:#}"
    );
    assert!(
        event["impersonatedUser"]["extra"]["credential.kubectl.dev/session-id"][0]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "no session id: {event:#}"
    );
    assert_eq!(event["responseStatus"]["code"], 200, "{event:#}");
}

#[test]
fn a_client_sent_impersonation_is_refused_by_the_proxy() {
    let site = site();
    let desk = site.person_at_desk("ivo");
    let token = desk.token();
    let path = format!("/api/v1/namespaces/{}/pods", desk.view_ns);

    // The same request without impersonation passes: what follows is refused for the header.
    let plain = site.proxy.request("GET", &path, Some(&token), &[]);
    assert_eq!(plain.status, 200, "{plain:?}");

    // kubectl reports a refused discovery request as `Forbidden: unknown` (so it does with the
    // API server's own 403), so the person has used kubectl before: discovery is cached, and
    // the refused request is the pod list, whose Status message kubectl prints.
    desk.kubectl(&["get", "pods", "-n", &desk.view_ns])
        .assert_success();
    let out = desk.kubectl(&["--as", "admin", "get", "pods", "-n", &desk.view_ns]);
    out.assert_failure()
        .assert_stderr_contains("Forbidden")
        .assert_stderr_contains(NO_IMPERSONATION);

    for header in [
        ("Impersonate-User", "admin"),
        ("Impersonate-Group", "system:masters"),
        ("Impersonate-Extra-Scopes", "everything"),
        ("impersonate-uid", "0"),
    ] {
        let resp = site.proxy.request("GET", &path, Some(&token), &[header]);
        let status = assert_status(&resp, 403, "Forbidden");
        assert_eq!(status["message"], NO_IMPERSONATION, "{header:?}: {status}");
    }
    // Named as hop-by-hop, so that a proxy dropping such headers would drop it silently: still
    // refused, not stripped.
    let resp = site.proxy.request(
        "GET",
        &path,
        Some(&token),
        &[
            ("Connection", "Impersonate-User"),
            ("Impersonate-User", "admin"),
        ],
    );
    assert_status(&resp, 403, "Forbidden");

    // Nothing reached the API server as `admin` (or as anyone but the person) on their behalf.
    let as_admin: Vec<serde_json::Value> = site
        .control_plane
        .audit_events()
        .into_iter()
        .filter(|e| {
            e["user"]["username"] == site.credential.username.as_str()
                && (e["impersonatedUser"]["username"] == "admin"
                    || e["impersonatedUser"]["groups"]
                        .as_array()
                        .is_some_and(|g| g.iter().any(|g| g == "system:masters")))
        })
        .collect();
    assert!(
        as_admin.is_empty(),
        "the proxy forwarded a client's impersonation: {as_admin:#?}"
    );
}

#[test]
fn a_disabled_person_is_refused_at_the_proxy_within_seconds() {
    let site = site();
    let desk = site.person_at_desk("dan");
    desk.kubectl(&["get", "pods", "-n", &desk.view_ns])
        .assert_success();
    let cached = desk.env.cached_token();
    let path = format!("/api/v1/namespaces/{}/pods", desk.view_ns);
    let before = site
        .proxy
        .request("GET", &path, Some(&cached.access_token), &[]);
    assert_eq!(before.status, 200, "{before:?}");

    site.issuer.disable_user(&desk.person.name);
    let took = wait_until_refused(
        site,
        &path,
        &cached.access_token,
        "the proxy refuses the disabled person's unexpired token",
    );
    eprintln!("proxy: refused the disabled person's token {took:.1?} after `user disable`");
    assert!(
        unix_now() < cached.exp,
        "the token was refused only at its expiry ({}), not because of `user disable`",
        cached.exp
    );
    let refused = site
        .proxy
        .request("GET", &path, Some(&cached.access_token), &[]);
    let status = assert_status(&refused, 401, "Unauthorized");
    assert!(
        !status["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&cached.access_token),
        "the refusal echoes the token: {status}"
    );
    // And kubectl, with the plugin unable to refresh, fails.
    desk.kubectl(&["get", "pods", "-n", &desk.view_ns])
        .assert_failure();
}

/// Waits until the proxy answers `token` with 401 on `path`, within [`REVOCATION_BOUND`].
#[track_caller]
fn wait_until_refused(site: &Site, path: &str, token: &str, what: &str) -> Duration {
    let started = Instant::now();
    wait::until(what, REVOCATION_BOUND, || {
        let resp = site.proxy.request("GET", path, Some(token), &[]);
        match resp.status {
            401 => Check::Done(()),
            200 => Check::Retry("still accepted".to_owned()),
            other => Check::Fail(format!("unexpected status {other}: {}", resp.body)),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n--- proxy log (tail) ---\n{}", site.proxy.log_tail(30)));
    started.elapsed()
}

#[test]
fn a_logged_out_session_is_refused_at_the_proxy_within_seconds() {
    let site = site();
    let desk = site.person_at_desk("lea");
    let cached = desk.env.cached_token();
    let path = format!("/api/v1/namespaces/{}/pods", desk.view_ns);
    let before = site
        .proxy
        .request("GET", &path, Some(&cached.access_token), &[]);
    assert_eq!(before.status, 200, "{before:?}");

    desk.env
        .plugin(&desk.plugin.for_subcommand("logout"))
        .assert_success();
    let took = wait_until_refused(
        site,
        &path,
        &cached.access_token,
        "the proxy refuses the logged-out session's unexpired token",
    );
    eprintln!("proxy: refused the logged-out session's token {took:.1?} after the logout");
    assert!(
        unix_now() < cached.exp,
        "the token was refused only at its expiry ({}), not because of the logout",
        cached.exp
    );
}

#[test]
fn a_token_for_another_cluster_or_none_is_refused_with_401() {
    let site = site();
    let name = unique("ole");
    let password = format!("correct horse battery staple {name}");
    site.issuer.add_user(&name, &[READERS], &password);
    let here = site.issuer.login_over_http(CLUSTER, &name, &password);
    let there = site.issuer.login_over_http(OTHER_CLUSTER, &name, &password);

    let ok = site
        .proxy
        .request("GET", "/api/v1/namespaces", Some(&here.access_token), &[]);
    assert_eq!(ok.status, 200, "the proxied cluster's own token: {ok:?}");

    let other = site
        .proxy
        .request("GET", "/api/v1/namespaces", Some(&there.access_token), &[]);
    let status = assert_status(&other, 401, "Unauthorized");
    assert!(
        !other.body.contains(&there.access_token),
        "the refusal echoes the token: {status}"
    );

    // Nor does any other bearer token pass: not even the proxy's own.
    let own = site.proxy.request(
        "GET",
        "/api/v1/namespaces",
        Some(&site.credential.token),
        &[],
    );
    assert_status(&own, 401, "Unauthorized");

    let none = site.proxy.request("GET", "/api/v1/namespaces", None, &[]);
    assert_status(&none, 401, "Unauthorized");
    let garbage = site
        .proxy
        .request("GET", "/api/v1/namespaces", Some("not-a-token"), &[]);
    assert_status(&garbage, 401, "Unauthorized");
}

/// An event's field `key`, at the top level or in its `detail` (an object, or JSON text).
fn field(event: &serde_json::Value, key: &str) -> serde_json::Value {
    if let Some(v) = event.get(key).filter(|v| !v.is_null()) {
        return v.clone();
    }
    let detail = match &event["detail"] {
        serde_json::Value::String(s) => serde_json::from_str(s).unwrap_or_default(),
        other => other.clone(),
    };
    detail.get(key).cloned().unwrap_or_default()
}

/// `credential-issuer audit export --user NAME`, as an auditor asks for one person's events:
/// the `proxy.request` events among them.
fn proxy_events(issuer: &Issuer, name: &str) -> Vec<serde_json::Value> {
    let out = issuer.cli(&["audit", "export", "--user", name], None);
    out.assert_success();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|e: &serde_json::Value| e["event"] == "proxy.request" && e["actor"] == name)
        .collect()
}

#[test]
fn the_issuers_audit_trail_has_a_proxy_request_event_for_each_request() {
    let site = site();
    let desk = site.person_at_desk("aud");
    desk.kubectl(&["get", "pods", "-n", &desk.view_ns])
        .assert_success();
    assert_forbidden(
        &desk.kubectl(&["get", "secrets", "-n", "kube-system"]),
        &desk.person,
    );
    let refused = site.proxy.request(
        "GET",
        "/api/v1/namespaces",
        Some(&desk.token()),
        &[("Impersonate-User", "admin")],
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    // A refused token is an event too, without an actor: found by its (unique) namespace.
    let nobody_ns = unique("nobody");
    let unauthenticated = site.proxy.request(
        "GET",
        &format!("/api/v1/namespaces/{nobody_ns}/pods"),
        Some("not-a-token"),
        &[],
    );
    assert_eq!(unauthenticated.status, 401, "{unauthenticated:?}");

    let wanted = |e: &serde_json::Value, verb: &str, resource: &str, code: u16| {
        field(e, "verb") == verb && field(e, "resource") == resource && field(e, "code") == code
    };
    let events = wait::until(
        "the audit trail has the person's proxied requests",
        Duration::from_secs(20),
        || {
            let events = proxy_events(&site.issuer, &desk.person.name);
            let listed = events.iter().any(|e| wanted(e, "list", "pods", 200));
            let forbidden = events.iter().any(|e| wanted(e, "list", "secrets", 403));
            // The proxy's own refusal says why; the API server's Forbidden does not.
            let impersonation = events
                .iter()
                .any(|e| wanted(e, "list", "namespaces", 403) && e["reason"] == NO_IMPERSONATION);
            if listed && forbidden && impersonation {
                Check::Done(events)
            } else {
                Check::Retry(format!(
                    "pods 200: {listed}, secrets 403: {forbidden}, impersonation 403: \
                     {impersonation}; events: {events:#?}"
                ))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let pods = events
        .iter()
        .find(|e| wanted(e, "list", "pods", 200))
        .unwrap_or_else(|| panic!("no pod list in {events:#?}"));
    assert_eq!(pods["cluster"], CLUSTER, "{pods:#}");
    assert!(
        pods["reason"].is_null(),
        "a forwarded request has no refusal: {pods:#}"
    );
    assert_eq!(field(pods, "namespace"), desk.view_ns.as_str(), "{pods:#}");
    assert_eq!(pods["actor"], desk.person.name.as_str(), "{pods:#}");
    assert!(
        field(pods, "session_id")
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "no session id in {pods:#}"
    );
    let text = serde_json::to_string(&events).unwrap_or_default();
    assert!(
        !text.contains(&desk.token()),
        "a token reached the audit trail"
    );

    let out = site
        .issuer
        .cli(&["audit", "export", "--cluster", CLUSTER], None);
    out.assert_success();
    let refusal: serde_json::Value = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "proxy.request" && e["namespace"] == nobody_ns.as_str())
        .unwrap_or_else(|| panic!("no event for the refused token:\n{}", out.stdout));
    assert_eq!(field(&refusal, "code"), 401, "{refusal:#}");
    assert!(refusal["actor"].is_null(), "{refusal:#}");
    assert!(
        refusal["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "a refusal says why: {refusal:#}"
    );
}

#[test]
fn no_token_reaches_the_proxys_log() {
    let site = site();
    let desk = site.person_at_desk("lou");
    desk.kubectl(&["get", "pods", "-n", &desk.view_ns])
        .assert_success();
    assert_forbidden(
        &desk.kubectl(&["get", "secrets", "-n", "kube-system"]),
        &desk.person,
    );
    let cached = desk.env.cached_token();
    let token = cached.access_token.clone();
    let _ = site.proxy.request(
        "GET",
        "/api",
        Some(&token),
        &[("Impersonate-User", "admin")],
    );
    let forged = format!("{token}x");
    let _ = site.proxy.request("GET", "/api", Some(&forged), &[]);

    let log = site.proxy.log();
    assert!(
        log.contains(proxy::LISTENING),
        "the log is not the proxy's: {log}"
    );
    let signature = token.rsplit('.').next().unwrap_or_default();
    for (what, secret) in [
        ("the access token", token.as_str()),
        ("the access token's signature", signature),
        ("the refresh token", cached.refresh_token.as_str()),
        ("the proxy's own token", site.credential.token.as_str()),
    ] {
        assert!(
            secret.len() > 16 && !log.contains(secret),
            "{what} is in the proxy's log"
        );
    }
}

/// A kubeconfig in `env`'s home that sends `token` as it is to `proxy` (no plugin): for a story
/// about the proxy's process rather than the person's machine.
fn static_token_kubeconfig(env: &UserEnv, proxy: &Proxy, token: &str) -> PathBuf {
    let path = env.home().join("static-token.kubeconfig");
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "proxy",
            "cluster": { "server": proxy.url(), "certificate-authority": proxy.ca_file() },
        }],
        "users": [{ "name": "person", "user": { "token": token } }],
        "contexts": [{ "name": "proxy", "context": { "cluster": "proxy", "user": "person" } }],
        "current-context": "proxy",
    });
    std::fs::write(&path, doc.to_string()).unwrap_or_else(|e| panic!("write: {e}"));
    path
}

/// An issuer and proxy of a story's own (to stop it, to rotate its keys), on the site's API
/// server with the site proxy's credential.
fn own_issuer_and_proxy(site: &Site) -> (Issuer, Proxy) {
    let options = ProxyOptions::new(CLUSTER, &site.credential.kubeconfig);
    let issuer = Issuer::start(&IssuerOptions {
        clusters: vec![(CLUSTER.to_owned(), "kubernetes".to_owned())],
        token_ttl: TOKEN_TTL.to_owned(),
        api_server: Some((
            site.control_plane.server().to_owned(),
            site.control_plane.ca_file().to_owned(),
        )),
        proxies: vec![options],
        ..IssuerOptions::default()
    });
    let proxy = Proxy::start(&issuer, CLUSTER);
    (issuer, proxy)
}

/// The `kid` in a JWT's header.
fn kid(jwt: &str) -> String {
    use base64::Engine as _;
    let header = jwt.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap_or_else(|e| panic!("the token header is not base64url: {e}"));
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the token header is not JSON: {e}"));
    v["kid"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn after_keys_rotate_the_proxy_accepts_new_tokens_and_still_the_old_ones() {
    let site = site();
    let (issuer, own) = own_issuer_and_proxy(site);
    let name = unique("kai");
    let password = format!("correct horse battery staple {name}");
    issuer.add_user(&name, &[READERS], &password);
    let before = issuer.login_over_http(CLUSTER, &name, &password);
    let path = "/api/v1/namespaces";
    let ok = own.request("GET", path, Some(&before.access_token), &[]);
    assert_eq!(ok.status, 200, "{ok:?}");

    issuer.rotate_keys();
    // The running issuer picks the new key up by itself; a refresh then signs with it.
    let mut refresh_token = before.refresh_token.clone();
    let after = wait::until(
        "the issuer signs with the rotated key",
        Duration::from_secs(30),
        || match issuer.refresh(&refresh_token) {
            Ok(t) if kid(&t.access_token) != kid(&before.access_token) => Check::Done(t),
            Ok(t) => {
                refresh_token = t.refresh_token;
                Check::Retry("still the old key".to_owned())
            }
            Err(e) => Check::Fail(format!("refresh refused: {e:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The proxy process, which verifies with the keys in the shared store, knows it at once
    // or within its key reload.
    wait::until(
        "the proxy accepts a token signed with the rotated key",
        Duration::from_secs(30),
        || {
            let resp = own.request("GET", path, Some(&after.access_token), &[]);
            match resp.status {
                200 => Check::Done(()),
                401 => Check::Retry(resp.body),
                other => Check::Fail(format!("status {other}: {}", resp.body)),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n--- proxy log (tail) ---\n{}", own.log_tail(20)));
    let old = own.request("GET", path, Some(&before.access_token), &[]);
    assert_eq!(
        old.status, 200,
        "a token signed before the rotation must keep working until it expires: {old:?}"
    );
}

#[test]
fn sigterm_stops_the_proxy_promptly_with_a_watch_open_and_keeps_its_events() {
    let site = site();
    // A proxy of its own: this one is stopped.
    let (issuer, mut own) = own_issuer_and_proxy(site);
    let name = unique("sam");
    let password = format!("correct horse battery staple {name}");
    issuer.add_user(&name, &[READERS], &password);
    let tokens = issuer.login_over_http(CLUSTER, &name, &password);
    let env = UserEnv::new();
    let kubeconfig = static_token_kubeconfig(&env, &own, &tokens.access_token);
    env.kubectl(&kubeconfig, &["get", "namespaces", "-o", "name"])
        .assert_success();
    let mut watch =
        env.kubectl_background(&kubeconfig, &["get", "namespaces", "--watch", "-o", "name"]);
    wait::until(
        "the watch lists the namespaces",
        Duration::from_secs(30),
        || {
            if watch.stdout().contains("namespace/default") {
                Check::Done(())
            } else if watch.is_running() {
                Check::Retry(watch.stdout())
            } else {
                Check::Fail(watch.stderr())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let stopping = Instant::now();
    // `stop` fails the test unless the proxy exits within 30 s (its grace for in-flight
    // requests and its audit flush are 10 s each).
    let status = own.stop();
    eprintln!(
        "proxy: stopped {:.1?} after SIGTERM with a watch open",
        stopping.elapsed()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the proxy did not exit cleanly after SIGTERM ({status:?}):\n{}",
        own.log_tail(30)
    );
    let refused = e2e::http::response(
        e2e::http::agent_with_timeout(own.ca_file(), Duration::from_secs(5))
            .get(&format!("{}/version", own.url()))
            .call(),
    );
    assert!(
        refused.is_err(),
        "a stopped proxy still answers: {refused:?}"
    );
    // The watch's connection is gone with it (kubectl, cut off, retries and fails or waits).
    let watch_out = watch.stop();

    // Both requests are in the trail: written at shutdown, not lost with the process.
    let events = proxy_events(&issuer, &name);
    let listed = events
        .iter()
        .any(|e| field(e, "verb") == "list" && field(e, "resource") == "namespaces");
    let watched = events
        .iter()
        .find(|e| field(e, "verb") == "watch" && field(e, "resource") == "namespaces");
    assert!(
        listed && watched.is_some(),
        "the list and the watch must be events after the stop: {events:#?}\nwatch: {watch_out}"
    );
}

#[test]
fn a_machine_with_a_key_runs_kubectl_through_the_proxy_until_it_is_disabled() {
    let site = site();
    let server = UserEnv::new();
    let home = server.home();
    let key = home.join("machine.key");
    let keygen = server.plugin(&[
        "machine".to_owned(),
        "keygen".to_owned(),
        "--out".to_owned(),
        key.display().to_string(),
    ]);
    keygen.assert_success();
    let public = home.join("machine.pub");
    std::fs::write(&public, &keygen.stdout).unwrap_or_else(|e| panic!("write: {e}"));
    let name = unique("backup");
    site.issuer
        .cli(
            &[
                "machine",
                "add",
                &name,
                "--public-key",
                &public.to_string_lossy(),
                "--group",
                READERS,
                "--cluster",
                CLUSTER,
                "--until",
                "30d",
            ],
            None,
        )
        .assert_success();

    // As `kubectl credential setup --machine` writes it, pointing at the proxy.
    let kubeconfig = home.join("kubeconfig");
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER,
            "cluster": { "server": site.proxy.url(), "certificate-authority": site.proxy.ca_file() },
        }],
        "users": [{
            "name": "machine",
            "user": { "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": e2e::bins::kubectl_credential(),
                "args": [
                    "get", "--issuer", site.issuer.url(), "--cluster", CLUSTER,
                    "--issuer-ca", site.issuer.ca_file(),
                    "--machine", name, "--machine-key", key,
                ],
                "interactiveMode": "Never",
                "provideClusterInfo": true,
            }},
        }],
        "contexts": [{ "name": CLUSTER, "context": { "cluster": CLUSTER, "user": "machine" } }],
        "current-context": CLUSTER,
    });
    std::fs::write(&kubeconfig, doc.to_string()).unwrap_or_else(|e| panic!("write: {e}"));

    server
        .kubectl(&kubeconfig, &["get", "namespaces", "-o", "name"])
        .assert_success()
        .assert_stdout_contains("namespace/default");
    let secrets = server.kubectl(&kubeconfig, &["get", "secrets", "-n", "default"]);
    secrets
        .assert_failure()
        .assert_stderr_contains("Forbidden")
        .assert_stderr_contains(&format!("credential:machine:{name}"));

    // A token the machine holds (as kubectl would, for its lifetime) before it is disabled.
    let args: Vec<String> = doc["users"][0]["user"]["exec"]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let credential = server.plugin(&args);
    credential.assert_success();
    let token = crate::world::token_in(&credential.stdout);
    let held = site
        .proxy
        .request("GET", "/api/v1/namespaces", Some(&token), &[]);
    assert_eq!(held.status, 200, "{held:?}");

    site.issuer
        .cli(&["machine", "disable", &name], None)
        .assert_success();
    let took = wait_until_refused(
        site,
        "/api/v1/namespaces",
        &token,
        "the proxy refuses the disabled machine's unexpired token",
    );
    eprintln!("proxy: refused the disabled machine's token {took:.1?} after `machine disable`");
    wait::until(
        "kubectl through the proxy fails for the disabled machine",
        REVOCATION_BOUND,
        || {
            let out = server.kubectl(&kubeconfig, &["get", "namespaces", "-o", "name"]);
            if out.success() {
                Check::Retry("still allowed".to_owned())
            } else {
                Check::Done(())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_exec_through_the_proxy_reaches_the_api_server_and_its_answer_reaches_kubectl() {
    let site = site();
    let desk = site.person_at_desk("exa");
    let ns = &desk.edit_ns;
    // A pod no node runs (there is no scheduler or kubelet here): the API server itself answers
    // the exec, before any upgrade, with why it cannot connect.
    site.control_plane.apply(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {ns}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: shell\n  namespace: {ns}\nspec:\n  \
         automountServiceAccountToken: false\n  containers:\n  - name: main\n    image: busybox\n"
    ));
    let out = desk.kubectl(&["exec", "-n", ns, "shell", "--", "true"]);
    out.assert_failure()
        .assert_stderr_contains("does not have a host assigned");
    // The API server saw the person's `connect` to pods/exec, which RBAC allowed.
    let username = desk.person.kube_username();
    wait::until(
        "the API server's audit log has the person's exec",
        Duration::from_secs(10),
        || {
            let mine = impersonated_events(&site.control_plane, &username);
            if mine.iter().any(|e| {
                e["objectRef"]["subresource"] == "exec" && e["objectRef"]["name"] == "shell"
            }) {
                Check::Done(())
            } else {
                Check::Retry(format!("{} events of the person", mine.len()))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{out}"));
    // And the issuer's trail has it as a `connect` to the exec subresource, with the answer.
    let events = wait::until(
        "the audit trail has the person's exec",
        Duration::from_secs(20),
        || {
            let events = proxy_events(&site.issuer, &desk.person.name);
            if events
                .iter()
                .any(|e| field(e, "verb") == "connect" && field(e, "subresource") == "exec")
            {
                Check::Done(events)
            } else {
                Check::Retry(format!("{events:#?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let exec = events
        .iter()
        .find(|e| field(e, "verb") == "connect" && field(e, "subresource") == "exec")
        .unwrap_or_else(|| panic!("no exec event"));
    assert_eq!(field(exec, "resource"), "pods", "{exec:#}");
    assert_eq!(field(exec, "name"), "shell", "{exec:#}");
    assert_eq!(field(exec, "code"), 400, "{exec:#}");
}

/// This machine's first IPv4 address that is not loopback: the API server refuses loopback
/// endpoints for a Service.
fn host_ip() -> std::net::Ipv4Addr {
    let hostname = e2e::process::require("hostname", "apt-get install hostname");
    let out = e2e::process::run(
        std::process::Command::new(hostname).arg("-I"),
        None,
        Duration::from_secs(10),
    );
    out.assert_success();
    out.stdout
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .find(|a| !a.is_loopback())
        .unwrap_or_else(|| {
            panic!(
                "this story needs a non-loopback IPv4 address (the API server refuses loopback \
                 endpoints): `hostname -I` printed {:?}",
                out.stdout
            )
        })
}

/// Answers one upgrade with 101 and then echoes what it reads, upper-cased, until the end.
fn upgrade_echo_server(listener: std::net::TcpListener) -> std::thread::JoinHandle<String> {
    use std::io::{Read as _, Write as _};
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return String::new();
        };
        let mut head = Vec::new();
        let mut byte = [0_u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return String::from_utf8_lossy(&head).into_owned(),
            }
        }
        let _ = conn.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        );
        let mut buf = [0_u8; 4096];
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 || conn.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
                break;
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    })
}

#[test]
fn an_upgraded_connection_through_the_proxy_carries_bytes_both_ways() {
    use std::io::{Read as _, Write as _};
    let site = site();
    let desk = site.person_at_desk("upg");
    let ns = &desk.edit_ns;
    // Behind a Service the API server proxies to (services/proxy, an upgrade-aware path that
    // needs no kubelet): a server that switches protocols and echoes.
    let listener = std::net::TcpListener::bind((host_ip(), 0))
        .unwrap_or_else(|e| panic!("cannot bind the echo server: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("echo server address: {e}"));
    let server = upgrade_echo_server(listener);
    // The API server proxies only to an endpoint that is a pod's IP: a pod (which no node runs)
    // is given the echo server's address as its status, as a kubelet would report it.
    site.control_plane.apply(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {ns}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: echo\n  namespace: {ns}\nspec:\n  \
         automountServiceAccountToken: false\n  containers:\n  - name: main\n    image: busybox\n"
    ));
    site.control_plane
        .kubectl_admin(
            &[
                "patch",
                "pod",
                "echo",
                "-n",
                ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                &format!(
                    r#"{{"status":{{"podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}]}}}}"#,
                    ip = addr.ip()
                ),
            ],
            None,
        )
        .assert_success();
    site.control_plane.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\n  namespace: {ns}\nspec:\n  \
         ports:\n  - port: 80\n    targetPort: {port}\n---\napiVersion: v1\nkind: Endpoints\n\
         metadata:\n  name: echo\n  namespace: {ns}\nsubsets:\n- addresses:\n  - ip: {ip}\n    \
         targetRef:\n      kind: Pod\n      name: echo\n      namespace: {ns}\n  \
         ports:\n  - port: {port}\n",
        ip = addr.ip(),
        port = addr.port(),
    ));

    let token = desk.token();
    let request = format!(
        "GET /api/v1/namespaces/{ns}/services/echo/proxy/ HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        site.proxy.url().trim_start_matches("https://"),
    );
    let mut byte = [0_u8; 1];
    // The API server's service proxy may not see the new Endpoints for a moment (503).
    let mut tls = wait::until(
        "the upgrade through the proxy is answered with 101",
        Duration::from_secs(20),
        || {
            let mut tls = site.proxy.connect_tls();
            if let Err(e) = tls.write_all(request.as_bytes()) {
                return Check::Fail(format!("cannot send the upgrade request: {e}"));
            }
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                match tls.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    other => {
                        return Check::Fail(format!(
                            "the answer ended ({other:?}) after {:?}",
                            String::from_utf8_lossy(&head)
                        ))
                    }
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            if head.starts_with("HTTP/1.1 101") {
                return Check::Done(tls);
            }
            let mut body = [0_u8; 2048];
            let n = tls.read(&mut body).unwrap_or(0);
            let answer = format!("{head}{}", String::from_utf8_lossy(&body[..n]));
            if head.starts_with("HTTP/1.1 503") {
                Check::Retry(answer)
            } else {
                Check::Fail(format!("expected 101 Switching Protocols, got:\n{answer}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n--- proxy log ---\n{}", site.proxy.log_tail(20)));

    // Bytes both ways, several times, over the one upgraded connection.
    for line in ["hello through the proxy\n", "and once more\n"] {
        tls.write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("write after the upgrade: {e}"));
        tls.flush().unwrap_or_else(|e| panic!("flush: {e}"));
        let mut got = Vec::new();
        while !got.ends_with(b"\n") {
            match tls.read(&mut byte) {
                Ok(1) => got.push(byte[0]),
                other => panic!(
                    "the upgraded connection ended ({other:?}) after {:?}",
                    String::from_utf8_lossy(&got)
                ),
            }
        }
        assert_eq!(String::from_utf8_lossy(&got), line.to_uppercase());
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(std::net::Shutdown::Both);
    drop(tls);
    let seen = server
        .join()
        .unwrap_or_else(|_| panic!("the echo server panicked"));
    assert!(
        seen.contains("Upgrade: echo"),
        "the backend did not get the upgrade request:\n{seen}"
    );
    assert!(
        !seen.contains(&token) && !seen.contains(&site.credential.token),
        "a token reached the backend:\n{seen}"
    );

    // The issuer's trail has the upgraded connection once it ended.
    let event = wait::until(
        "the audit trail has the upgraded connection",
        Duration::from_secs(20),
        || {
            let events = proxy_events(&site.issuer, &desk.person.name);
            match events
                .into_iter()
                .find(|e| field(e, "subresource") == "proxy" && field(e, "resource") == "services")
            {
                Some(e) => Check::Done(e),
                None => Check::Retry("no event yet".to_owned()),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(field(&event, "upgrade"), true, "{event:#}");
    assert_eq!(field(&event, "code"), 101, "{event:#}");
}

#[test]
fn a_token_the_proxy_refuses_is_refreshed_by_kubectls_retry_and_the_command_succeeds() {
    let site = site();
    let desk = site.person_at_desk("rio");
    desk.kubectl(&["get", "pods", "-n", &desk.view_ns])
        .assert_success();

    // The cached token with a broken signature (as after its key was withdrawn): unexpired,
    // well-formed, refused. The session stays.
    let files = desk.env.token_files();
    assert_eq!(files.len(), 1, "expected one token file: {files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap_or_else(|e| panic!("{e}"));
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let jwt = doc["access_token"].as_str().unwrap_or_default().to_owned();
    let (signed, signature) = jwt.rsplit_once('.').unwrap_or_else(|| panic!("not a JWT"));
    let tail = if signature.ends_with("AAAA") {
        "BBBB"
    } else {
        "AAAA"
    };
    let refused = format!("{signed}.{}{tail}", &signature[..signature.len() - 4]);
    doc["access_token"] = serde_json::Value::String(refused.clone());
    std::fs::write(&files[0], doc.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let resp = site
        .proxy
        .request("GET", "/api/v1/namespaces", Some(&refused), &[]);
    assert_status(&resp, 401, "Unauthorized");

    // kubectl gets the proxy's 401, runs the plugin again, which refreshes; the command works.
    desk.kubectl(&["get", "pods", "-n", &desk.view_ns])
        .assert_success();
    let now = desk.env.cached_token();
    assert_ne!(
        now.access_token, refused,
        "the refused token is still cached"
    );
    let ok = site
        .proxy
        .request("GET", "/api/v1/namespaces", Some(&now.access_token), &[]);
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[test]
fn a_grant_lets_the_person_through_the_proxy_until_it_is_revoked() {
    let site = site();
    let desk = site.person_at_desk("gus");
    let ns = format!("{}-granted", desk.person.name);
    site.control_plane.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
    ));
    let pods = ["get", "pods", "-n", ns.as_str()];
    assert_forbidden(&desk.kubectl(&pods), &desk.person);

    let out = site.issuer.cli(
        &[
            "grant",
            "add",
            "--user",
            &desk.person.name,
            "--cluster",
            CLUSTER,
            "--namespace",
            &ns,
            "--role",
            "pod-reader",
            "--for",
            "1h",
            "--reason",
            "e2e proxy story",
        ],
        None,
    );
    let id = crate::grants::grant_id(out.assert_success());
    // The reconciler binds the person by the name the proxy impersonates.
    wait::until(
        "the granted person may list pods through the proxy",
        Duration::from_secs(20),
        || {
            let out = desk.kubectl(&pods);
            if out.success() {
                Check::Done(())
            } else {
                Check::Retry(out.stderr)
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    site.issuer
        .cli(&["grant", "revoke", &id, "--reason", "done"], None)
        .assert_success();
    wait::until(
        "the revoked grant no longer lets the person through",
        Duration::from_secs(20),
        || {
            let out = desk.kubectl(&pods);
            if out.success() {
                Check::Retry("still allowed".to_owned())
            } else if out.stderr.to_lowercase().contains("forbidden") {
                Check::Done(())
            } else {
                Check::Fail(format!("failed for another reason: {out}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
