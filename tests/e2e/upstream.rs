//! Access follows identity: a person signs in at the company's identity provider (a real
//! OpenID provider, `oidc-provider` on Node), the issuer maps the groups it reports through the
//! policy into the token, the API server applies RBAC to the mapped groups, and what the
//! provider says later (a group removed, the person disabled) takes effect at the next refresh.

use credential_shared::exec_credential::ApiVersion;
use e2e::browser::{csrf_token, form_action, path_of, Answer};
use e2e::{Browser, Page};

use crate::world::{
    assert_login_required, upstream_password, world, Laptop, CLUSTER, ENGINEERS, LOGIN_TIMEOUT,
    PREFIX, UPSTREAM, UPSTREAM_DOMAIN, UPSTREAM_DOMAIN_ONLY,
};

/// Lets the mapped group `credential:upstream-engineers` list namespaces (the role the world
/// defines for readers), and nothing else.
pub(crate) fn engineers_rbac() -> String {
    crate::world::ns_reader_binding(
        "ns-reader-upstream-engineers",
        "credential:upstream-engineers",
    )
}

/// From the user code to the provider's login form, through the button of `provider`.
fn to_provider(browser: &Browser, user_code: &str, provider: &str) -> Page {
    let login = browser.enter_user_code(user_code);
    assert_eq!(
        path_of(&login),
        "/login",
        "expected the sign-in page: {login:?}"
    );
    assert!(
        login
            .body
            .contains(&format!(r#"name="provider" value="{provider}""#)),
        "the sign-in page offers no button for {provider}:\n{}",
        login.body
    );
    let at_idp = browser.post(
        "/upstream/start",
        &[("provider", provider), ("csrf_token", &csrf_token(&login))],
    );
    let idp = world().idp.url();
    assert!(
        at_idp.status == 200 && at_idp.url.starts_with(idp),
        "expected the provider's login form at {idp}, got {at_idp:?}"
    );
    at_idp
}

/// Fills in the provider's login form; returns the page the browser ends on (back at the
/// issuer).
fn sign_in_at_provider(browser: &Browser, form: &Page, username: &str) -> Page {
    let action = form_action(form, "/interaction/", "/login");
    browser.post_absolute(
        &action,
        &[
            ("username", username),
            ("password", &upstream_password(username)),
        ],
    )
}

/// Whether `page` is a clear error page: the status, the words, and no trace of internals.
fn assert_clear_page(page: &Page, status: u16, words: &str) {
    assert_eq!(page.status, status, "unexpected status: {page:?}");
    assert!(page.body.contains(words), "expected {words:?} on {page:?}");
    for internal in ["panicked", "RUST_BACKTRACE", "src/", "Error {"] {
        assert!(
            !page.body.contains(internal),
            "internals on the page: {page:?}"
        );
    }
}

fn force_refresh(laptop: &Laptop) -> e2e::Outcome {
    let mut args = laptop.plugin.for_subcommand("get");
    args.push("--force-refresh".to_owned());
    laptop
        .env
        .plugin_as_kubectl_would(&args, &e2e::plugin::exec_info(ApiVersion::V1Beta1, false))
}

fn assert_forbidden_for(out: &e2e::Outcome, kube_user: &str) {
    out.assert_failure();
    assert!(
        out.stderr.to_lowercase().contains("forbidden") && out.stderr.contains(kube_user),
        "expected Forbidden for {kube_user}, but {out}"
    );
}

#[test]
fn groups_come_from_the_provider_through_the_policy_and_follow_it_at_each_refresh() {
    let world = world();
    world.control_plane.apply(&engineers_rbac());
    let laptop = Laptop::new();
    let login = laptop.env.start_login(&laptop.plugin);
    let browser = world.browser();
    let form = to_provider(&browser, login.user_code(), UPSTREAM);
    let consent = sign_in_at_provider(&browser, &form, "ann");
    assert_eq!(
        path_of(&consent),
        "/consent",
        "expected consent: {consent:?}"
    );
    assert!(
        consent.body.contains(CLUSTER) && consent.body.contains("kubectl-credential"),
        "the consent page does not name the cluster and client: {}",
        consent.body
    );
    let done = browser.answer(&consent, Answer::Approve);
    assert!(done.body.contains("approved"), "{done:?}");
    login.finish(LOGIN_TIMEOUT).assert_success();

    // Another code in the same browser goes through the provider again (each upstream session
    // needs its own provider refresh token), not straight to the consent page.
    let second = world.issuer.device_authorization(CLUSTER);
    let page = browser.enter_user_code(&second.user_code);
    assert_eq!(path_of(&page), "/login", "{page:?}");

    // The provider says eng-web and sales; the policy makes eng-web the mapped group and
    // drops sales (no rule): the token carries the mapping, not the raw groups.
    let cached = laptop.cached_token();
    assert_eq!(cached.username.as_deref(), Some("ann@corp.example"));
    assert_eq!(cached.groups, vec![ENGINEERS.to_owned()]);
    let kube_user = format!("{PREFIX}ann@corp.example");
    laptop
        .kubectl(&["get", "namespaces"])
        .assert_success()
        .assert_stdout_contains("kube-system");
    assert_forbidden_for(
        &laptop.kubectl(&["get", "secrets", "-n", "kube-system"]),
        &kube_user,
    );

    // Removed from the group at the provider: the next refresh carries no group, and the API
    // server forbids what the group allowed.
    world.idp.set_groups("ann", &["sales"]);
    force_refresh(&laptop).assert_success();
    let refreshed = laptop.cached_token();
    assert_ne!(refreshed.access_token, cached.access_token);
    assert!(refreshed.groups.is_empty(), "{refreshed:?}");
    assert_forbidden_for(&laptop.kubectl(&["get", "namespaces"]), &kube_user);

    // Disabled at the provider: it refuses the refresh, the issuer ends the session, and the
    // plugin (not interactive) asks for a new login.
    world.idp.set_disabled("ann", true);
    assert_login_required(&force_refresh(&laptop));
    let again = world.issuer.refresh(&refreshed.refresh_token);
    assert!(
        again.is_err(),
        "the session still refreshes after the provider refused: {again:?}"
    );
}

#[test]
fn a_tampered_state_and_a_provider_error_get_clear_pages() {
    let world = world();
    let device = world.issuer.device_authorization(CLUSTER);
    let browser = world.browser();
    let _form = to_provider(&browser, &device.user_code, UPSTREAM);

    // A callback whose state this browser never got (forged, or another browser's).
    let forged = browser.get("/upstream/callback?state=forged-state&code=whatever");
    assert_clear_page(&forged, 400, "Sign-in link not valid");

    // The person cancels at the provider, which answers error=access_denied.
    let login = browser.get("/login");
    let form = browser.post(
        "/upstream/start",
        &[("provider", UPSTREAM), ("csrf_token", &csrf_token(&login))],
    );
    let cancel = form_action(&form, "/interaction/", "/abort");
    let refused = browser.post_absolute(&cancel, &[]);
    assert_eq!(path_of(&refused), "/upstream/callback", "{refused:?}");
    assert_clear_page(&refused, 403, "access denied");

    // A state is good once: replaying the provider's answer gets the invalid-link page.
    let replay = browser.get_absolute(&refused.url);
    assert_clear_page(&replay, 400, "Sign-in link not valid");
}

#[test]
fn an_upstream_limited_to_a_domain_refuses_other_domains() {
    let world = world();
    let device = world.issuer.device_authorization(CLUSTER);
    let browser = world.browser();
    let form = to_provider(&browser, &device.user_code, UPSTREAM_DOMAIN_ONLY);
    let page = sign_in_at_provider(&browser, &form, "eve");
    assert_clear_page(&page, 403, "Account not allowed");
    assert!(page.body.contains(UPSTREAM_DOMAIN), "{page:?}");
    // Nothing was approved: the device code is still waiting.
    let poll = world.issuer.token_request(&[
        ("grant_type", credential_shared::oauth::GRANT_DEVICE_CODE),
        ("client_id", credential_shared::oauth::PLUGIN_CLIENT_ID),
        ("device_code", device.device_code.as_str()),
    ]);
    assert_eq!(
        poll.err().and_then(|e| e.code()),
        Some(credential_shared::oauth::OAuthErrorCode::AuthorizationPending)
    );
}
