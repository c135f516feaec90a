//! A cached token the API server refuses (here: a corrupted signature, as after a signing key
//! was withdrawn) is replaced at once: kubectl runs the plugin again after the 401 from the same
//! process, the plugin recognises the repeated call, asks the API server whether it accepts the
//! token (a `SelfSubjectAccessReview`), hears 401, refreshes exactly once, and kubectl succeeds.
//! The next kubectl, a new process, gets the new token from the cache without a refresh.
//!
//! The official Python client also calls again from the same process, on every
//! `load_kube_config`, with a token that still works: there the API server accepts it and the
//! plugin hands the same token out again, so six loads in one process use one token and cause
//! no refresh. The same holds when its kubeconfig names the CA by file (the client passes the
//! path; the plugin reads it as kubectl would, so both share the session). With a token the
//! server refuses, the same repeated call refreshes: the server's answer decides, not the
//! caller.
//!
//! Refreshes are counted on the issuer's `/metrics`, so each test has an issuer and API server
//! of its own.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::python_client::{self, Load};
use e2e::{TokenCache, UserEnv};
use serde_json::Value;

use crate::procs::metric;
use crate::world::{World, LOGIN_TIMEOUT, READERS};

const REFRESHES: &str = "credential_issuer_refreshes_total";

/// The token file's JSON, with `edit` applied to it (mode kept: the file is replaced in place).
fn edit_token_file(env: &UserEnv, edit: impl FnOnce(&mut Value)) -> Value {
    let files = env.token_files();
    assert_eq!(files.len(), 1, "expected one token file: {files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap_or_else(|e| panic!("{e}"));
    let mut doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    edit(&mut doc);
    std::fs::write(&files[0], doc.to_string()).unwrap_or_else(|e| panic!("{e}"));
    doc
}

/// The JWT with the last characters of its signature changed: well-formed, still unexpired,
/// refused by the API server.
fn corrupt_signature(jwt: &str) -> String {
    let (rest, signature) = jwt.rsplit_once('.').unwrap_or_else(|| panic!("not a JWT"));
    let head = &signature[..signature.len() - 4];
    let tail = if signature.ends_with("AAAA") {
        "BBBB"
    } else {
        "AAAA"
    };
    format!("{rest}.{head}{tail}")
}

#[test]
fn a_refused_token_is_refreshed_once_and_kubectl_succeeds() {
    // Tokens that live 10 minutes: nothing in this test expires by itself.
    let world = World::start_own(Duration::from_secs(600));
    let rita = world.new_person("rita", &[READERS]);
    let env = UserEnv::new();
    let plugin = world.plugin_args(TokenCache::File);
    let kubeconfig = world.kubeconfig(&env, &plugin);
    let login = env.start_login(&plugin);
    let _ = world
        .browser()
        .approve(login.user_code(), &rita.name, &rita.password);
    login.finish(LOGIN_TIMEOUT).assert_success();
    env.kubectl(&kubeconfig, &["get", "namespaces"])
        .assert_success();

    // Replace the cached token by one the API server refuses; keep the session.
    let mut refused = String::new();
    let mut refresh_token = String::new();
    edit_token_file(&env, |doc| {
        refused = corrupt_signature(doc["access_token"].as_str().unwrap_or_default());
        refresh_token = doc["refresh_token"].as_str().unwrap_or_default().to_owned();
        doc["access_token"] = Value::String(refused.clone());
    });
    assert!(
        !refresh_token.is_empty(),
        "the session has no refresh token"
    );
    let status = world.control_plane.get_with_token("/api", &refused).status;
    assert_eq!(status, 401, "the API server accepted a corrupted token");

    let before = metric(&world.issuer, REFRESHES);
    let out = env.kubectl(&kubeconfig, &["get", "namespaces"]);
    out.assert_success().assert_stdout_contains("default");
    assert_eq!(
        metric(&world.issuer, REFRESHES) - before,
        1,
        "kubectl's retry after the 401 must refresh exactly once: {out}"
    );
    let now_cached = env.cached_token();
    assert_ne!(
        now_cached.access_token, refused,
        "the refused token is still cached"
    );
    assert_ne!(
        now_cached.refresh_token, refresh_token,
        "no refresh happened"
    );

    // A new kubectl process: the new token, no further refresh.
    env.kubectl(&kubeconfig, &["get", "namespaces"])
        .assert_success();
    env.kubectl(&kubeconfig, &["get", "namespaces"])
        .assert_success();
    assert_eq!(
        metric(&world.issuer, REFRESHES) - before,
        1,
        "kubectl processes with an accepted cached token must not refresh"
    );
    assert_eq!(env.cached_token().access_token, now_cached.access_token);
}

/// The distinct bearer tokens (their hashes) the Python client sent in `loads`.
fn distinct_tokens(loads: &[Load]) -> BTreeSet<String> {
    loads
        .iter()
        .filter_map(|l| l.token_sha256.clone())
        .collect()
}

#[test]
fn the_python_client_loading_the_kubeconfig_again_and_again_keeps_one_token() {
    let world = World::start_own(Duration::from_secs(600));
    let env = UserEnv::new();
    // Before anything else: a missing client fails here, with the install command.
    python_client::require(&env);
    let pia = world.new_person("pia", &[READERS]);
    let plugin = world.plugin_args(TokenCache::File);
    // The CA as data, as `kubectl credential setup` writes it: the Python client passes the
    // kubeconfig's cluster to the plugin as written. The CA as a file comes later.
    let ca_file_kubeconfig = world.kubeconfig(&env, &plugin);
    let kubeconfig = python_client::with_ca_data(&ca_file_kubeconfig);
    let login = env.start_login(&plugin);
    let _ = world
        .browser()
        .approve(login.user_code(), &pia.name, &pia.password);
    login.finish(LOGIN_TIMEOUT).assert_success();

    // Six loads one second apart in one process, all while the first token is valid.
    let before = metric(&world.issuer, REFRESHES);
    let cached = env.cached_token();
    let (out, loads) = python_client::load_and_list(&env, &kubeconfig, 6, Duration::from_secs(1));
    for load in &loads {
        assert!(
            load.client_version.starts_with(python_client::MAJOR),
            "{load:?}"
        );
        assert_eq!(
            load.status,
            Some(200),
            "load {} failed: {load:?}\n{out}",
            load.load
        );
        assert!(load.namespaces.iter().any(|n| n == "default"), "{load:?}");
    }
    assert_eq!(
        distinct_tokens(&loads).len(),
        1,
        "six loads of a valid token must use one token: {loads:?}"
    );
    assert_eq!(
        metric(&world.issuer, REFRESHES) - before,
        0,
        "loads with a token the API server accepts must not refresh: {out}"
    );
    assert_eq!(
        env.cached_token().access_token,
        cached.access_token,
        "the cached token was replaced"
    );

    // The same kubeconfig with the CA named by file (as minikube writes one): the Python
    // client sends the path, the plugin reads the file as kubectl would, so the session is the
    // same one (kubectl's too), and a repeated call can still be asked about.
    let (out, file_loads) =
        python_client::load_and_list(&env, &ca_file_kubeconfig, 3, Duration::from_secs(1));
    for load in &file_loads {
        assert_eq!(
            load.status,
            Some(200),
            "load {} failed: {load:?}\n{out}",
            load.load
        );
    }
    assert_eq!(
        distinct_tokens(&file_loads),
        distinct_tokens(&loads),
        "a CA file must find the same session and token: {file_loads:?}"
    );
    env.kubectl(&ca_file_kubeconfig, &["get", "namespaces"])
        .assert_success();
    assert_eq!(
        metric(&world.issuer, REFRESHES) - before,
        0,
        "a CA file must not make the plugin refresh: {out}"
    );
    assert_eq!(
        env.token_files().len(),
        1,
        "one session for both forms of the CA"
    );

    // The same repeated call with a token the API server refuses (a corrupted signature, as
    // after its signing key was withdrawn): the first load hands it out (nothing can tell
    // yet, and this client does not retry a 401), the next one, asked again, refreshes.
    let mut refused = String::new();
    edit_token_file(&env, |doc| {
        refused = corrupt_signature(doc["access_token"].as_str().unwrap_or_default());
        doc["access_token"] = Value::String(refused.clone());
    });
    let status = world.control_plane.get_with_token("/api", &refused).status;
    assert_eq!(status, 401, "the API server accepted a corrupted token");
    let before = metric(&world.issuer, REFRESHES);
    let (out, loads) = python_client::load_and_list(&env, &kubeconfig, 4, Duration::from_secs(1));
    assert_eq!(loads[0].status, Some(401), "{loads:?}\n{out}");
    for load in &loads[1..] {
        assert_eq!(
            load.status,
            Some(200),
            "load {} failed: {load:?}\n{out}",
            load.load
        );
    }
    assert_eq!(
        metric(&world.issuer, REFRESHES) - before,
        1,
        "the repeated call with a refused token must refresh once, then keep the new one: {out}"
    );
    assert_eq!(
        distinct_tokens(&loads).len(),
        2,
        "the refused token, then one new token: {loads:?}"
    );
    let now_cached = env.cached_token();
    assert_ne!(
        now_cached.access_token, refused,
        "the refused token is still cached"
    );
}
