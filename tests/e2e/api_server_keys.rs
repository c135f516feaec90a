//! Tokens are cached per API server: two kubeconfig clusters with the same issuer and cluster
//! name but another CA bundle never share a token. A `kubectl credential login` ahead of time
//! serves the first kubectl (no second device flow), `whoami --cluster` finds the session kubectl
//! took over, and `logout --cluster` ends every session of the cluster.

use base64::Engine as _;
use credential_shared::exec_credential::ApiVersion;

use crate::procs::{wait_for_code, Running};
use crate::world::{token_in, world, Laptop, LOGIN_HINT, LOGIN_TIMEOUT, READERS};

#[test]
fn another_ca_bundle_gets_its_own_session_and_logout_ends_both() {
    let world = world();
    let pia = world.new_person("pia", &[READERS]);
    let laptop = Laptop::new();
    let server = world.control_plane.server();

    // The same cluster entry again, but trusting a CA bundle with one more certificate.
    let mut bundle = std::fs::read(world.control_plane.ca_file()).unwrap_or_default();
    bundle.extend(std::fs::read(world.issuer.ca_file()).unwrap_or_default());
    let bundle_path = laptop.env.home().join("ca-bundle.crt");
    std::fs::write(&bundle_path, &bundle).unwrap_or_else(|e| panic!("{e}"));
    let version = if e2e::bins::kubectl_speaks_exec_v1() {
        ApiVersion::V1
    } else {
        ApiVersion::V1Beta1
    };
    let other = laptop.env.write_kubeconfig(
        "kubeconfig-b",
        server,
        &bundle_path,
        version,
        &laptop.plugin,
    );

    // Login ahead of time: the (non-interactive) kubectl needs no device flow of its own.
    laptop.log_in(&pia);
    laptop.kubectl(&["get", "namespaces"]).assert_success();
    assert_eq!(
        laptop.env.token_files().len(),
        1,
        "the login session was copied instead of taken over"
    );
    let first = laptop.cached_token().access_token;

    // The other entry finds no session of its own and does not get the first one's token.
    laptop
        .env
        .kubectl(&other, &["get", "namespaces"])
        .assert_failure()
        .assert_stderr_contains(LOGIN_HINT);

    // It signs in for itself, as kubectl runs the plugin for it in a terminal.
    let info = serde_json::json!({
        "apiVersion": version.as_str(),
        "kind": "ExecCredential",
        "spec": {
            "interactive": true,
            "cluster": {
                "server": server,
                "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(&bundle),
            },
        },
    })
    .to_string();
    let mut args = laptop.plugin.for_subcommand("get");
    args.push("--no-browser".to_owned());
    let running = Running::start(&laptop.env, &args, Some(&info));
    let code = wait_for_code(&[&running]);
    let _ = world.browser().approve(&code, &pia.name, &pia.password);
    let done = running.finish(LOGIN_TIMEOUT);
    assert!(done.status.success(), "get failed: {}", done.stderr);
    let second = token_in(&done.stdout);
    assert_ne!(second, first, "the two API server entries share a token");

    // Both work, each with its own session; kubectl agrees with the plugin on the key.
    laptop.kubectl(&["get", "namespaces"]).assert_success();
    laptop
        .env
        .kubectl(&other, &["get", "namespaces"])
        .assert_success();
    assert_eq!(laptop.env.token_files().len(), 2);

    // `whoami --cluster` finds a session although none is stored under the login key.
    laptop
        .plugin("whoami")
        .assert_success()
        .assert_stdout_contains(&pia.name);

    // `logout --cluster` ends both; neither entry works afterwards.
    laptop
        .plugin("logout")
        .assert_success()
        .assert_stderr_contains("Logged out of cluster");
    assert!(
        laptop.env.token_files().is_empty(),
        "logout left sessions: {:?}",
        laptop.env.token_files()
    );
    laptop
        .kubectl(&["get", "namespaces"])
        .assert_failure()
        .assert_stderr_contains(LOGIN_HINT);
    laptop
        .env
        .kubectl(&other, &["get", "namespaces"])
        .assert_failure()
        .assert_stderr_contains(LOGIN_HINT);
}
