//! Time-bound grants made real in the cluster: `credential-issuer grant add` (the real binary,
//! on the World's data directory) makes the running issuer's reconciler create a `RoleBinding`
//! within seconds, drift is repaired, and revocation, expiry and disabling the person remove
//! the binding, so that access ends at once and not when the last token expires.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use e2e::wait::{self, Check};
use e2e::ControlPlane;

use crate::world::{assert_forbidden, unique, world, Laptop, Person, CLUSTER};

/// The `[[roles]]` of the World's issuer.
pub(crate) const ROLES: &str = r#"
[[roles]]
name = "pod-reader"
rules = [{ api_groups = [""], resources = ["pods"], verbs = ["get", "list"] }]
max_duration = "2h"
"#;

/// The reconciler's identity in the cluster: a client certificate with this common name, bound
/// by `install/reconciler-rbac.yaml`.
const RECONCILER: &str = "credential-issuer-reconciler";

/// Gives the issuer's grant reconciler its own identity in `cp`, with exactly the permissions
/// of `install/reconciler-rbac.yaml` (so a permission missing there fails these tests): a client
/// certificate signed by the control plane's CA, in a kubeconfig written to `kubeconfig` with
/// the certificate and key inline and the CA as a file.
pub(crate) fn give_the_reconciler_access(cp: &ControlPlane, kubeconfig: &Path) {
    let rbac = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../install/reconciler-rbac.yaml");
    let manifest = std::fs::read_to_string(&rbac)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", rbac.display()));
    cp.apply(&manifest);
    let pki = cp.run_dir().join("pki");
    let dir = kubeconfig.parent().unwrap_or_else(|| Path::new("."));
    let (key, csr, crt) = (
        dir.join("reconciler.key"),
        dir.join("reconciler.csr"),
        dir.join("reconciler.crt"),
    );
    let openssl = e2e::process::require("openssl", "apt-get install -y openssl");
    let run = |cmd: &mut Command| {
        e2e::process::run(cmd, None, Duration::from_secs(30)).assert_success();
    };
    run(Command::new(&openssl)
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", &format!("/CN={RECONCILER}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    // Extensions make it an X.509 v3 certificate; rustls (webpki) refuses v1 certificates.
    let ext = dir.join("reconciler.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", ext.display()));
    run(Command::new(&openssl)
        .args(["x509", "-req", "-days", "1", "-sha256", "-CAcreateserial"])
        .arg("-extfile")
        .arg(&ext)
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(pki.join("ca.crt"))
        .arg("-CAkey")
        .arg(pki.join("ca.key"))
        .arg("-CAserial")
        .arg(dir.join("reconciler.srl"))
        .arg("-out")
        .arg(&crt));
    let inline = |path: &Path| {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: reconciler
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: reconciler
  context:
    cluster: envtest
    user: reconciler
current-context: reconciler
",
        server = cp.server(),
        ca = cp.ca_file().display(),
        cert = inline(&crt),
        key = inline(&key),
    );
    for f in [&key, &csr, &crt, &ext] {
        let _ = std::fs::remove_file(f);
    }
    std::fs::write(kubeconfig, text)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", kubeconfig.display()));
}

/// How long the reconciler may take to act on a change (it polls every second).
const WITHIN: Duration = Duration::from_secs(20);

fn create_namespace(name: &str) {
    world()
        .control_plane
        .kubectl_admin(&["create", "namespace", name], None)
        .assert_success();
}

/// `grant add` with the real CLI; returns the grant id it printed.
fn grant(person: &Person, namespace: &str, length: &str) -> String {
    let out = world().issuer.cli(
        &[
            "grant",
            "add",
            "--user",
            &person.name,
            "--cluster",
            CLUSTER,
            "--namespace",
            namespace,
            "--role",
            "pod-reader",
            "--for",
            length,
            "--reason",
            "e2e test",
        ],
        None,
    );
    grant_id(out.assert_success())
}

/// What stands in `... (grant ID)` at the end of `stdout`, or nothing.
pub(crate) fn printed_grant_id(stdout: &str) -> String {
    stdout
        .rsplit("(grant ")
        .next()
        .and_then(|s| s.split(')').next())
        .unwrap_or_default()
        .to_owned()
}

/// The grant id that `grant add` printed: `... (grant ID)`.
pub(crate) fn grant_id(out: &e2e::Outcome) -> String {
    let id = printed_grant_id(&out.stdout);
    assert!(
        id.len() == 10 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "no grant id in {out}"
    );
    id
}

/// `kubectl get rolebinding NAME -n NS -o json` as admin: the object, or `None` if absent.
fn binding(namespace: &str, name: &str) -> Option<serde_json::Value> {
    admin_get(&["get", "rolebinding", name, "-n", namespace, "-o", "json"])
}

/// `kubectl ARGS` as admin, a `get -o json`: the object, or `None` if it is absent.
fn admin_get(args: &[&str]) -> Option<serde_json::Value> {
    let out = world().control_plane.kubectl_admin(args, None);
    if out.success() {
        Some(
            serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("bad kubectl output ({e}): {out}")),
        )
    } else {
        assert!(out.stderr.contains("NotFound"), "kubectl failed: {out}");
        None
    }
}

fn wait_for_binding(namespace: &str, name: &str, what: &str) -> serde_json::Value {
    wait::until(what, WITHIN, || match binding(namespace, name) {
        Some(b) => Check::Done(b),
        None => Check::Retry(format!("no RoleBinding {namespace}/{name}")),
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", reconciler_diagnosis()))
}

/// What a dry-run round says, for failure messages: the in-process issuer's log is not shown.
fn reconciler_diagnosis() -> String {
    let out = world().issuer.cli(
        &["reconcile", "--once", "--dry-run", "--cluster", CLUSTER],
        None,
    );
    format!("`credential-issuer reconcile --once --dry-run` says: {out}")
}

fn wait_for_no_binding(namespace: &str, name: &str, what: &str) {
    wait::until(what, WITHIN, || match binding(namespace, name) {
        Some(_) => Check::Retry(format!("RoleBinding {namespace}/{name} still exists")),
        None => Check::Done(()),
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

pub(crate) fn binding_name(id: &str) -> String {
    format!("credential-grant-{id}")
}

/// The `exp` claim of a `JWT` (not verified: the API server does that).
fn expiry(jwt: &str) -> i64 {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_else(|e| panic!("token payload: {e}"));
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("token claims: {e}"));
    claims["exp"]
        .as_i64()
        .unwrap_or_else(|| panic!("no exp in {claims}"))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[test]
fn a_grant_opens_a_namespace_and_revocation_closes_it_at_once() {
    let world = world();
    let kim = world.new_person("kim", &[]);
    let (granted_ns, other_ns) = (unique("grants-a"), unique("grants-b"));
    create_namespace(&granted_ns);
    create_namespace(&other_ns);
    let laptop = Laptop::new();
    laptop.log_in(&kim);
    assert_forbidden(&laptop.kubectl(&["get", "pods", "-n", &granted_ns]), &kim);

    let id = grant(&kim, &granted_ns, "1h");
    let name = binding_name(&id);
    let b = wait_for_binding(
        &granted_ns,
        &name,
        "the reconciler creates the grant's RoleBinding",
    );
    assert_eq!(
        b["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "credential-issuer"
    );
    assert_eq!(
        b["metadata"]["labels"]["credential.kubectl.dev/grant-id"],
        id.as_str()
    );
    assert_eq!(b["roleRef"]["name"], "credential:role:pod-reader");
    assert_eq!(b["subjects"][0]["name"], kim.kube_username().as_str());

    wait::until("kim can list pods in the granted namespace", WITHIN, || {
        let out = laptop.kubectl(&["get", "pods", "-n", &granted_ns]);
        if out.success() {
            Check::Done(())
        } else {
            Check::Retry(out.stderr.clone())
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_forbidden(&laptop.kubectl(&["get", "pods", "-n", &other_ns]), &kim);
    assert!(
        world
            .issuer
            .cli(&["grant", "list", "--user", &kim.name], None)
            .assert_success()
            .stdout
            .contains(&id),
        "grant list does not show {id}"
    );

    // An operator can look at what a round would do; with the server reconciling, the cluster
    // is in the desired state or about to be.
    world
        .issuer
        .cli(
            &["reconcile", "--once", "--dry-run", "--cluster", CLUSTER],
            None,
        )
        .assert_success()
        .assert_stdout_contains(&format!("cluster {CLUSTER}: would change"));

    // Drift: a binding deleted by hand comes back.
    world
        .control_plane
        .kubectl_admin(&["delete", "rolebinding", &name, "-n", &granted_ns], None)
        .assert_success();
    wait_for_binding(
        &granted_ns,
        &name,
        "the reconciler restores a deleted binding",
    );

    // Drift: a binding edited by hand is put back.
    world
        .control_plane
        .kubectl_admin(
            &[
                "patch",
                "rolebinding",
                &name,
                "-n",
                &granted_ns,
                "--type=json",
                r#"-p=[{"op":"replace","path":"/subjects/0/name","value":"credential:mallory"}]"#,
            ],
            None,
        )
        .assert_success();
    wait::until("the reconciler repairs an edited binding", WITHIN, || {
        let b = binding(&granted_ns, &name);
        let subject = b.as_ref().map(|b| b["subjects"][0]["name"].clone());
        if subject.as_ref().and_then(|s| s.as_str()) == Some(kim.kube_username().as_str()) {
            Check::Done(())
        } else {
            Check::Retry(format!("subject is {subject:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", reconciler_diagnosis()));

    // Drift: a managed binding without a grant goes; a binding without the label stays, even
    // with a name like ours (the round that removes the stray one has seen it too).
    let lookalike = format!(
        r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding",
            "metadata":{{"name":"credential-grant-0000000000","namespace":"{granted_ns}"}},
            "roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"}},
            "subjects":[{{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"credential:someone"}}]}}"#
    );
    world.control_plane.apply(&lookalike);
    let stray = format!(
        r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding",
            "metadata":{{"name":"stray","namespace":"{granted_ns}",
              "labels":{{"app.kubernetes.io/managed-by":"credential-issuer"}}}},
            "roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"}},
            "subjects":[{{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"credential:mallory"}}]}}"#
    );
    world.control_plane.apply(&stray);
    wait_for_no_binding(
        &granted_ns,
        "stray",
        "the reconciler removes a managed binding with no grant",
    );
    assert!(
        binding(&granted_ns, "credential-grant-0000000000").is_some(),
        "the reconciler deleted a binding without its label"
    );

    // What it did is counted at /metrics.
    let metrics = e2e::http::response(
        e2e::http::agent(world.issuer.ca_file())
            .get(&format!("{}/metrics", world.issuer.url()))
            .call(),
    )
    .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    for line in [
        format!("credential_reconciler_changes_total{{cluster=\"{CLUSTER}\",action=\"create\"}}"),
        format!("credential_reconciler_changes_total{{cluster=\"{CLUSTER}\",action=\"delete\"}}"),
    ] {
        assert!(
            metrics.body.contains(&line),
            "no {line} in\n{}",
            metrics.body
        );
    }

    // Revocation: the same, still unexpired token is refused at once.
    let tokens = world
        .issuer
        .login_over_http(CLUSTER, &kim.name, &kim.password);
    let token = tokens.access_token;
    let pods = format!("/api/v1/namespaces/{granted_ns}/pods");
    let before = world.control_plane.get_with_token(&pods, &token);
    assert_eq!(
        before.status, 200,
        "the fresh token should list pods: {before:?}"
    );
    world
        .issuer
        .cli(&["grant", "revoke", &id, "--reason", "done"], None)
        .assert_success();
    wait_for_no_binding(&granted_ns, &name, "revocation removes the binding");
    wait::until("the API server forbids the same token", WITHIN, || {
        let resp = world.control_plane.get_with_token(&pods, &token);
        match resp.status {
            403 => Check::Done(()),
            200 => Check::Retry("still allowed".into()),
            other => Check::Fail(format!("unexpected status {other}: {}", resp.body)),
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        expiry(&token) > unix_now(),
        "the token expired before the check, so it proves nothing about revocation"
    );
}

#[test]
fn a_grant_ends_by_itself() {
    let world = world();
    let lee = world.new_person("lee", &[]);
    let ns = unique("grants-short");
    create_namespace(&ns);
    let id = grant(&lee, &ns, "5s");
    let name = binding_name(&id);
    wait_for_binding(
        &ns,
        &name,
        "the reconciler creates the 5-second grant's RoleBinding",
    );
    wait_for_no_binding(
        &ns,
        &name,
        "the binding of a 5-second grant disappears by itself",
    );
    let events = world
        .issuer
        .cli(&["grant", "list", "--user", &lee.name, "--all"], None);
    events.assert_success().assert_stdout_contains("ended");
}

#[test]
fn disabling_a_person_removes_their_bindings() {
    let world = world();
    let max = world.new_person("max", &[]);
    let ns = unique("grants-disable");
    create_namespace(&ns);
    let id = grant(&max, &ns, "1h");
    let name = binding_name(&id);
    wait_for_binding(&ns, &name, "the reconciler creates the grant's RoleBinding");
    world.issuer.disable_user(&max.name);
    wait_for_no_binding(&ns, &name, "disabling the person removes the binding");
}

/// `kubectl get clusterrolebinding NAME -o json` as admin: the object, or `None` if absent.
fn cluster_binding(name: &str) -> Option<serde_json::Value> {
    admin_get(&["get", "clusterrolebinding", name, "-o", "json"])
}

#[test]
fn a_cluster_wide_grant_to_a_group_binds_the_group() {
    let world = world();
    // A group the World's policy passes through (`k8s-*`): the managed binding names the group
    // as it appears in tokens.
    let crew = unique("k8s-crew");
    let nia = world.new_person("nia", &[&crew]);
    let ns = unique("grants-group");
    create_namespace(&ns);
    let tokens = world
        .issuer
        .login_over_http(CLUSTER, &nia.name, &nia.password);
    let pods = format!("/api/v1/namespaces/{ns}/pods");
    let before = world
        .control_plane
        .get_with_token(&pods, &tokens.access_token);
    assert_eq!(before.status, 403, "no grant yet, but {before:?}");

    let out = world.issuer.cli(
        &[
            "grant",
            "add",
            "--group",
            &crew,
            "--cluster",
            CLUSTER,
            "--role",
            "pod-reader",
            "--for",
            "1h",
        ],
        None,
    );
    let id = grant_id(out.assert_success().assert_stdout_contains("cluster-wide"));
    let name = binding_name(&id);
    let b = wait::until(
        "the reconciler creates the ClusterRoleBinding",
        WITHIN,
        || match cluster_binding(&name) {
            Some(b) => Check::Done(b),
            None => Check::Retry(format!("no ClusterRoleBinding {name}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b["subjects"][0]["kind"], "Group");
    assert_eq!(
        b["subjects"][0]["name"],
        format!("credential:{crew}").as_str()
    );
    wait::until("the group's member may list pods", WITHIN, || {
        let resp = world
            .control_plane
            .get_with_token(&pods, &tokens.access_token);
        match resp.status {
            200 => Check::Done(()),
            403 => Check::Retry("still forbidden".into()),
            other => Check::Fail(format!("unexpected status {other}: {}", resp.body)),
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));

    world
        .issuer
        .cli(&["grant", "revoke", &id], None)
        .assert_success();
    wait::until(
        "revocation removes the ClusterRoleBinding",
        WITHIN,
        || match cluster_binding(&name) {
            Some(_) => Check::Retry(format!("ClusterRoleBinding {name} still exists")),
            None => Check::Done(()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
