//! After `logout` the session is over on the issuer and on the machine; kubectl, which cannot
//! talk to the person, must fail at once with the login hint instead of starting a login.

use credential_shared::exec_credential::ApiVersion;

use crate::world::{assert_login_required_at_once, refused_refresh, world, READERS};

#[test]
fn after_logout_non_interactive_calls_ask_for_a_login_and_open_no_browser() {
    let world = world();
    let (_ivan, laptop) = world.signed_in("ivan", &[READERS]);
    laptop.kubectl(&["get", "namespaces"]).assert_success();
    let refresh_token = laptop.cached_token().refresh_token;

    laptop.plugin("logout").assert_success();
    assert!(
        laptop.env.token_files().is_empty(),
        "logout left token files: {:?}",
        laptop.env.token_files()
    );
    refused_refresh(
        &world.issuer,
        &refresh_token,
        "logout did not end the session",
    );

    // The plugin as kubectl runs it without a terminal: exit 3, quickly, with the hint.
    let out = laptop.get_credential(ApiVersion::V1);
    assert_login_required_at_once(&out);

    // And kubectl passes the hint on.
    laptop.assert_kubectl_asks_for_login();
}
