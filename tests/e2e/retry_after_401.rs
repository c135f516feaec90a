//! A cached token the API server refuses (here: a corrupted signature, as after a signing key
//! was withdrawn) is replaced at once: kubectl runs the plugin again after the 401 from the same
//! process, the plugin recognises that retry and refreshes exactly once, and kubectl succeeds.
//! The next kubectl, a new process, gets the new token from the cache without a refresh.
//! Refreshes are counted on the issuer's `/metrics`, so this test has an issuer and API server
//! of its own.

use std::time::Duration;

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
