//! Access tokens live seconds; the plugin must replace an expired one with the refresh token,
//! silently (no browser, no prompt), and rotate the refresh token as it does.

use crate::world::{wait_until_rejected, world, READERS};

#[test]
fn an_expired_token_is_refreshed_silently() {
    let world = world();
    let (_grace, laptop) = world.signed_in("grace", &[READERS]);
    laptop.kubectl(&["get", "namespaces"]).assert_success();
    let before = laptop.cached_token();

    wait_until_rejected(&before.access_token);

    laptop
        .kubectl(&["get", "namespaces"])
        .assert_success()
        .assert_stdout_contains("kube-system");
    let after = laptop.cached_token();
    assert_ne!(
        after.access_token, before.access_token,
        "the access token was not replaced"
    );
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "the refresh token was not rotated"
    );
    assert!(
        after.exp > before.exp,
        "the new token does not expire later ({} <= {})",
        after.exp,
        before.exp
    );
    assert!(
        laptop.env.browser_launches().is_empty(),
        "a refresh opened a browser"
    );
}
