//! `kubectl credential setup`: from the issuer's cluster list to a kubeconfig whose contexts run
//! the plugin, merged into the user's existing kubeconfig (`KUBECONFIG` honoured) without
//! touching anything else, with a backup, and idempotent.

use std::path::Path;
use std::time::Duration;

use e2e::{Issuer, IssuerOptions, UserEnv};

use crate::procs::OwnIssuer;
use crate::world::{world, AUDIENCE, CLUSTER, LOGIN_HINT};

const UNRELATED: &str = "apiVersion: v1
kind: Config
current-context: kind
clusters:
- name: kind
  cluster:
    server: https://127.0.0.1:1
users:
- name: kind-admin
  user:
    token: keep-me
contexts:
- name: kind
  context:
    cluster: kind
    user: kind-admin
    namespace: dev
";

fn backups(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".backup-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn setup_merges_working_exec_contexts_into_the_kubeconfig_once() {
    let world = world();
    // An issuer whose cluster list publishes the world's API server and CA.
    let issuer = Issuer::start(&IssuerOptions {
        clusters: vec![(CLUSTER.to_owned(), AUDIENCE.to_owned())],
        api_server: Some(world.api_server()),
        ..IssuerOptions::default()
    });
    let env = UserEnv::new();
    let kube_dir = env.home().join("custom");
    std::fs::create_dir_all(&kube_dir).unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = kube_dir.join("config.yaml");
    std::fs::write(&kubeconfig, UNRELATED).unwrap_or_else(|e| panic!("{e}"));

    let plugin = e2e::bins::kubectl_credential();
    let setup = || {
        let mut cmd = env.command(&plugin);
        cmd.env("KUBECONFIG", &kubeconfig).args([
            "setup",
            "--issuer",
            issuer.url(),
            "--issuer-ca",
            &issuer.ca_file().to_string_lossy(),
            "--token-cache",
            "file",
            "--command",
            &plugin.to_string_lossy(),
        ]);
        e2e::process::run(&mut cmd, None, Duration::from_secs(30))
    };
    let first = setup();
    first.assert_success().assert_stderr_contains("backup");
    // The suggestion is something anyone who can sign in may run, not a listing that most
    // people (a contractor with one namespace) are forbidden.
    first.assert_stderr_contains(&format!(
        "Try: kubectl --context {CLUSTER} auth can-i --list"
    ));
    assert!(
        !first.stderr.contains("get namespaces"),
        "setup suggested a command most people may not run: {first}"
    );

    let written = std::fs::read_to_string(&kubeconfig).unwrap_or_else(|e| panic!("{e}"));
    let saved = backups(&kube_dir);
    assert_eq!(saved.len(), 1, "one backup expected: {saved:?}");
    assert_eq!(
        std::fs::read_to_string(kube_dir.join(&saved[0])).unwrap_or_default(),
        UNRELATED,
        "the backup is not the original file"
    );

    // The unrelated entries are intact, and the current context is still theirs.
    let view = |jsonpath: &str| {
        let out = world.control_plane.kubectl_admin(
            &[
                "config",
                "view",
                "--raw",
                "--kubeconfig",
                &kubeconfig.to_string_lossy(),
                "-o",
                &format!("jsonpath={jsonpath}"),
            ],
            None,
        );
        out.assert_success();
        out.stdout.trim().to_owned()
    };
    assert_eq!(view("{.current-context}"), "kind");
    assert_eq!(
        view("{.users[?(@.name==\"kind-admin\")].user.token}"),
        "keep-me"
    );
    assert_eq!(
        view("{.contexts[?(@.name==\"kind\")].context.namespace}"),
        "dev"
    );
    // Ours: a context per cluster, an exec user with no secret.
    assert_eq!(
        view(&format!(
            "{{.contexts[?(@.name==\"{CLUSTER}\")].context.user}}"
        )),
        format!("{CLUSTER}-credential")
    );
    assert_eq!(
        view(&format!(
            "{{.clusters[?(@.name==\"{CLUSTER}\")].cluster.server}}"
        )),
        world.control_plane.server()
    );
    let exec = format!("{{.users[?(@.name==\"{CLUSTER}-credential\")].user.exec");
    assert_eq!(view(&format!("{exec}.interactiveMode}}")), "IfAvailable");
    assert_eq!(view(&format!("{exec}.provideClusterInfo}}")), "true");
    assert!(!view(&format!("{exec}.installHint}}")).is_empty());
    assert_eq!(
        written.matches("token:").count(),
        1,
        "a secret was written:\n{written}"
    );

    // Running it again changes nothing and keeps no second backup.
    setup()
        .assert_success()
        .assert_stderr_contains("up to date");
    assert_eq!(
        std::fs::read_to_string(&kubeconfig).unwrap_or_default(),
        written
    );
    assert_eq!(backups(&kube_dir).len(), 1);

    // The context really runs the plugin against this issuer: without a session and without
    // a terminal, kubectl reports the plugin's login hint.
    let mut cmd = env.command(&e2e::bins::kubectl());
    cmd.args([
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
        "--context",
        CLUSTER,
        "get",
        "namespaces",
    ]);
    let out = e2e::process::run(&mut cmd, None, Duration::from_secs(30));
    out.assert_failure()
        .assert_stderr_contains(LOGIN_HINT)
        .assert_stderr_contains(issuer.url());
}

/// A kubeconfig that points the cluster at another API server than the issuer configured for
/// it (a mistake, or a planted kubeconfig harvesting tokens) gets no token.
#[test]
fn a_token_is_only_handed_to_the_clusters_own_api_server() {
    let world = world();
    let own = OwnIssuer::with_api_server("rita", world);
    let env = UserEnv::new();
    let plugin = own.plugin_args(own.issuer.ca_file().to_owned());
    own.log_in(&env, &plugin);

    let get_for = |server: &str| {
        let info = serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "spec": { "interactive": false, "cluster": { "server": server } },
        })
        .to_string();
        env.plugin_as_kubectl_would(&plugin.for_subcommand("get"), &info)
    };
    get_for(world.control_plane.server()).assert_success();
    let out = get_for("https://collector.example:6443");
    out.assert_code(2)
        .assert_stderr_contains("collector.example")
        .assert_stderr_contains(world.control_plane.server());
    assert!(out.stdout.is_empty(), "a token was handed out: {out}");
}
