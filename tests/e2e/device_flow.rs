//! The main story: a person logs in through the device flow in a browser, and the API server
//! then authorizes them by the groups the issuer put in their token.

use e2e::browser::{path_of, Answer};
use e2e::plugin::exit;

use crate::world::{assert_forbidden, world, Laptop, CLUSTER, LOGIN_TIMEOUT, READERS, TOKEN_TTL};

#[test]
fn a_reader_logs_in_through_the_pages_and_may_list_namespaces_but_not_read_secrets() {
    let world = world();
    let alice = world.new_person("alice", &[READERS]);
    let laptop = Laptop::new();

    // Alice starts the login; the plugin prints a code and waits.
    let login = laptop.env.start_login(&laptop.plugin);
    // She opens the device page, types the code, signs in, and sees what she is approving.
    let browser = world.browser();
    let consent = browser.reach_consent(login.user_code(), &alice.name, &alice.password);
    assert!(
        consent.body.contains(CLUSTER),
        "the consent page does not name the cluster:\n{}",
        consent.body
    );
    assert!(
        consent.body.contains("127.0.0.1"),
        "the consent page does not show the client's address:\n{}",
        consent.body
    );
    let done = browser.answer(&consent, Answer::Approve);
    assert!(
        done.body.to_lowercase().contains("approved"),
        "no confirmation after approving: {done:?}"
    );
    login.finish(LOGIN_TIMEOUT).assert_success();
    assert!(
        laptop.env.browser_launches().is_empty(),
        "--no-browser opened a browser"
    );

    // The cache holds her short-lived token, privately.
    let cached = laptop.cached_token();
    assert_eq!(cached.v, 1);
    assert_eq!(cached.username.as_deref(), Some(alice.name.as_str()));
    // The groups are in the token, not stored a second time next to it.
    let raw: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&laptop.env.token_files()[0]).unwrap_or_default(),
    )
    .unwrap_or_default();
    assert!(
        raw.get("groups").is_none() && raw.get("v").is_some(),
        "groups stored next to the token: {raw}"
    );
    let payload = cached.access_token.split('.').nth(1).unwrap_or_default();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(claims["groups"], serde_json::json!([READERS]));
    let lifetime = cached.exp - cached.iat;
    assert!(
        lifetime > 0 && lifetime <= i64::try_from(TOKEN_TTL.as_secs()).unwrap_or(i64::MAX),
        "token lifetime {lifetime}s"
    );

    // kubectl now works for what RBAC grants her group, and only for that.
    laptop
        .kubectl(&["get", "namespaces"])
        .assert_success()
        .assert_stdout_contains("kube-system");
    assert_forbidden(
        &laptop.kubectl(&["get", "secrets", "-n", "kube-system"]),
        &alice,
    );
}

#[test]
fn a_person_without_a_role_binding_is_authenticated_but_forbidden() {
    let world = world();
    let (bob, laptop) = world.signed_in("bob", &[]);
    assert_forbidden(&laptop.kubectl(&["get", "namespaces"]), &bob);
}

#[test]
fn signing_in_first_skips_the_login_page_for_the_next_code() {
    let world = world();
    let erin = world.new_person("erin", &[READERS]);
    let laptop = Laptop::new();
    let browser = world.browser();

    let first = laptop.env.start_login(&laptop.plugin);
    let _ = browser.approve(first.user_code(), &erin.name, &erin.password);
    first.finish(LOGIN_TIMEOUT).assert_success();

    // Same browser, second device (say, a second cluster shell): already signed in.
    let second_laptop = Laptop::new();
    let second = second_laptop.env.start_login(&second_laptop.plugin);
    let page = browser.enter_user_code(second.user_code());
    assert_eq!(
        path_of(&page),
        "/consent",
        "a signed-in browser should go straight to consent: {page:?}"
    );
    let _ = browser.answer(&page, Answer::Approve);
    second.finish(LOGIN_TIMEOUT).assert_code(exit::OK);
    second_laptop
        .kubectl(&["get", "namespaces"])
        .assert_success();
}
