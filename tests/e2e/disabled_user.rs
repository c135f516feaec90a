//! Disabling an account must end its sessions: the refresh token stops working at once, and
//! kubectl fails with the login hint as soon as the last access token has expired.

use crate::world::{refused_refresh, wait_until_rejected, world, READERS};

#[test]
fn a_disabled_person_gets_no_new_tokens() {
    let world = world();
    let (judy, laptop) = world.signed_in("judy", &[READERS]);
    laptop.kubectl(&["get", "namespaces"]).assert_success();
    let cached = laptop.cached_token();

    world.issuer.disable_user(&judy.name);

    let refused = refused_refresh(
        &world.issuer,
        &cached.refresh_token,
        "a disabled person got a new token",
    );
    assert_eq!(refused.status, 400, "{refused:?}");

    // The last access token is a signed JWT the API server accepts until it expires.
    wait_until_rejected(&cached.access_token);
    laptop.assert_kubectl_asks_for_login();
}
