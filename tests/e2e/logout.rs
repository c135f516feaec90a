//! After `logout` the session is over on the issuer and on the machine; kubectl, which cannot
//! talk to the person, must fail at once with the login hint instead of starting a login.

use std::time::Duration;

use credential_shared::exec_credential::ApiVersion;
use credential_shared::oauth::OAuthErrorCode;

use crate::world::{assert_login_required, world, Laptop, LOGIN_HINT, READERS};

#[test]
fn after_logout_non_interactive_calls_ask_for_a_login_and_open_no_browser() {
    let world = world();
    let ivan = world.new_person("ivan", &[READERS]);
    let laptop = Laptop::new();
    laptop.log_in(&ivan);
    laptop.kubectl(&["get", "namespaces"]).assert_success();
    let refresh_token = laptop.cached_token().refresh_token;

    laptop.plugin("logout").assert_success();
    assert!(
        laptop.env.token_files().is_empty(),
        "logout left token files: {:?}",
        laptop.env.token_files()
    );
    let revoked = world
        .issuer
        .refresh(&refresh_token)
        .err()
        .unwrap_or_else(|| panic!("logout did not end the session"));
    assert_eq!(
        revoked.code(),
        Some(OAuthErrorCode::InvalidGrant),
        "{revoked:?}"
    );

    // The plugin as kubectl runs it without a terminal: exit 3, quickly, with the hint.
    let out = laptop.get_credential(ApiVersion::V1);
    assert_login_required(&out);
    assert!(
        out.stdout.is_empty(),
        "nothing but an ExecCredential may go to stdout: {out}"
    );
    assert!(
        out.elapsed < Duration::from_secs(10),
        "a non-interactive call must fail fast: {out}"
    );

    // And kubectl passes the hint on.
    laptop
        .kubectl(&["get", "namespaces"])
        .assert_failure()
        .assert_stderr_contains(LOGIN_HINT);
    assert!(
        laptop.env.browser_launches().is_empty(),
        "a non-interactive call opened a browser: {:?}",
        laptop.env.browser_launches()
    );
}
