//! `credential-issuer keys rotate` while the issuer serves: the running issuer picks the new key
//! up by itself, signs new tokens with it, and keeps publishing the old one, so tokens signed
//! before keep working at the API server until they expire, and tokens signed after are
//! accepted at once (the API server refetches the uncacheable JWKS for an unknown `kid`).

use std::time::Duration;

use base64::Engine as _;
use credential_shared::oauth::Jwks;
use e2e::wait::{self, Check};

use crate::world::{world, READERS};

/// The `kid` in a JWT's header.
fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap_or_else(|e| panic!("the token header is not base64url: {e}"));
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the token header is not JSON: {e}"));
    v["kid"].as_str().unwrap_or_default().to_owned()
}

/// The key ids the issuer publishes now.
fn published_kids() -> Vec<String> {
    let issuer = &world().issuer;
    let agent = e2e::http::agent(issuer.ca_file());
    let resp = e2e::http::response(
        agent
            .get(&format!("{}/openid/v1/jwks", issuer.url()))
            .call(),
    )
    .unwrap_or_else(|e| panic!("JWKS: {e}"));
    let jwks: Jwks = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("JWKS is not JSON ({e}): {}", resp.body));
    jwks.keys.into_iter().map(|k| k.kid).collect()
}

/// The API server lists namespaces for `token`; `why` is what a refusal means.
#[track_caller]
fn assert_lists_namespaces(token: &str, why: &str) {
    let resp = world()
        .control_plane
        .get_with_token("/api/v1/namespaces", token);
    assert_eq!(resp.status, 200, "{why}: {}", resp.body);
}

#[test]
fn rotated_keys_sign_new_tokens_while_old_tokens_keep_working() {
    let world = world();
    let (_kim, laptop) = world.signed_in("kim", &[READERS]);
    // A token minted just now, so that it is still valid when it is checked below.
    let before = world
        .issuer
        .refresh(&laptop.cached_token().refresh_token)
        .unwrap_or_else(|e| panic!("refresh failed: {e:?}"));
    let old_kid = kid(&before.access_token);
    assert!(
        published_kids().contains(&old_kid),
        "the signing key is not published"
    );

    world.issuer.rotate_keys();
    // What an operator does to apply a rotation at once; without it the issuer notices the
    // new key file within its 10 s reload interval. The in-process issuer of this test binary
    // has had its SIGHUP handler installed since it started.
    let pid = std::process::id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap_or_else(|e| panic!("kill -HUP: {e}"));
    assert!(hup.success(), "kill -HUP {pid} failed");
    let kids = wait::until(
        "the issuer publishes the rotated key",
        Duration::from_secs(5),
        || {
            let kids = published_kids();
            if kids.len() >= 2 && kids.contains(&old_kid) {
                Check::Done(kids)
            } else {
                Check::Retry(format!("published: {kids:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // A token signed with the old key (issued before the rotation) still works.
    assert_lists_namespaces(
        &before.access_token,
        "the old token was refused after rotation",
    );

    // New tokens are signed with the new key, and the API server accepts them at once.
    let fresh = world
        .issuer
        .refresh(&before.refresh_token)
        .unwrap_or_else(|e| panic!("refresh after rotation failed: {e:?}"));
    let new_kid = kid(&fresh.access_token);
    assert_ne!(
        new_kid, old_kid,
        "new tokens are still signed with the old key"
    );
    assert!(
        kids.contains(&new_kid),
        "the new key {new_kid} is not in the JWKS {kids:?}"
    );
    assert_lists_namespaces(
        &fresh.access_token,
        "a token signed with the new key was refused",
    );
}
