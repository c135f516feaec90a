//! The identity provider at fault: the real provider (`oidc-provider` on Node) behind a
//! fault-injecting proxy, stopped, frozen, slowed, answering 401/429/500/garbage, leaving the
//! ID token out of refresh answers, or rotating its key under the same key id. Sessions survive
//! what is the provider's (or the issuer's) problem, only the provider refusing the person ends
//! one, an outage is bridged by the bounded offline grace, and pages and errors name the cause.
//!
//! Each test has its own provider, proxy and issuer (no API server: what matters is what the
//! issuer's token endpoint and pages answer), so that a fault never reaches another test.

use std::time::{Duration, Instant};

use credential_shared::oauth::{
    OAuthErrorCode, TokenResponse, GRANT_DEVICE_CODE, PLUGIN_CLIENT_ID,
};
use e2e::browser::{csrf_token, form_action, path_of, Answer};
use e2e::issuer::TokenError;
use e2e::oidc_provider::Account;
use e2e::{Fault, FaultProxy, Issuer, IssuerOptions, OidcProvider, Page};

use crate::world::{issuer_listener, upstream_password, upstream_settings, CLUSTER};

/// Refreshes of sessions through this provider are refused while it cannot be asked.
const STRICT: &str = "corp";
/// The same provider with `offline_grace = "1h"`.
const GRACE: &str = "corp-grace";

/// One test's provider behind its proxy, and an issuer offering it as [`STRICT`] and [`GRACE`].
struct Setup {
    // Dropped in this order: the issuer first, then the proxy, then the provider.
    issuer: Issuer,
    proxy: FaultProxy,
    idp: OidcProvider,
}

impl Setup {
    fn start(people: &[(&str, &[&str])]) -> Self {
        let proxy = FaultProxy::start();
        let (listener, client) = issuer_listener("faults");
        let accounts: Vec<Account> = people
            .iter()
            .map(|(name, groups)| Account {
                username: (*name).to_owned(),
                password: upstream_password(name),
                email: format!("{name}@corp.example"),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            })
            .collect();
        let idp = OidcProvider::start_announcing(&client, &accounts, Some(&proxy.url()));
        proxy.set_upstream(idp.address());
        let secret_file = idp.dir().join("client-secret");
        std::fs::write(&secret_file, &client.secret)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", secret_file.display()));
        let upstream = |id: &str, grace: &str| credential_issuer::config::FileUpstream {
            offline_grace: Some(grace.to_owned()),
            ..upstream_settings(
                id,
                &format!("Corp SSO ({id})"),
                &proxy.url(),
                &client,
                &secret_file,
            )
        };
        let issuer = Issuer::start_on(
            listener,
            &IssuerOptions {
                clusters: vec![(CLUSTER.to_owned(), "kubernetes".to_owned())],
                token_ttl: "60s".to_owned(),
                upstreams: vec![upstream(STRICT, "0s"), upstream(GRACE, "1h")],
                ..IssuerOptions::default()
            },
        );
        Self { issuer, proxy, idp }
    }

    /// From a fresh device code to the provider's login form through `provider`'s button.
    fn to_provider(&self, browser: &e2e::Browser, provider: &str) -> (Page, String) {
        let device = self.issuer.device_authorization(CLUSTER);
        let login = browser.enter_user_code(&device.user_code);
        assert_eq!(path_of(&login), "/login", "{login:?}");
        let page = browser.post(
            "/upstream/start",
            &[("provider", provider), ("csrf_token", &csrf_token(&login))],
        );
        (page, device.device_code)
    }

    /// A whole sign-in of `username` through `provider`: the issuer's tokens.
    fn sign_in(&self, provider: &str, username: &str) -> TokenResponse {
        let browser = self.issuer.browser();
        let (form, device_code) = self.to_provider(&browser, provider);
        assert!(
            form.status == 200 && form.url.starts_with(&self.proxy.url()),
            "expected the provider's login form, got {form:?}"
        );
        let consent = at_provider(&browser, &form, username);
        assert_eq!(
            path_of(&consent),
            "/consent",
            "expected consent: {consent:?}"
        );
        let done = browser.answer(&consent, Answer::Approve);
        assert!(done.body.contains("approved"), "{done:?}");
        self.issuer
            .token_request(&[
                ("grant_type", GRANT_DEVICE_CODE),
                ("client_id", PLUGIN_CLIENT_ID),
                ("device_code", &device_code),
            ])
            .unwrap_or_else(|e| panic!("no tokens after approval: {e:?}"))
    }

    fn refresh(&self, tokens: &TokenResponse) -> Result<TokenResponse, TokenError> {
        self.issuer.refresh(&tokens.refresh_token)
    }
}

fn at_provider(browser: &e2e::Browser, form: &Page, username: &str) -> Page {
    let action = form_action(form, "/interaction/", "/login");
    browser.post_absolute(
        &action,
        &[
            ("username", username),
            ("password", &upstream_password(username)),
        ],
    )
}

fn claims(tokens: &TokenResponse) -> serde_json::Value {
    let payload = tokens
        .access_token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT"));
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
        .unwrap_or_else(|e| panic!("bad JWT payload: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("bad JWT payload: {e}"))
}

/// A refresh refused for now: 503 `temporarily_unavailable` whose description has `words`.
#[track_caller]
fn assert_unavailable(result: &Result<TokenResponse, TokenError>, words: &str) {
    match result {
        Err(e) => {
            assert_eq!(e.status, 503, "{e:?}");
            assert_eq!(
                e.code(),
                Some(OAuthErrorCode::TemporarilyUnavailable),
                "{e:?}"
            );
            assert!(e.body.contains(words), "expected {words:?} in {}", e.body);
        }
        Ok(t) => panic!("expected 503 ({words}), got tokens {:?}", claims(t)),
    }
}

/// Stopped, frozen or slow: a strict session gets a 503 naming the cause and stays; a session
/// under the offline grace keeps refreshing with tokens (and audit rows) saying since when the
/// person was not re-checked; local accounts are not affected; after the outage the next
/// refresh re-checks at the provider again.
#[test]
fn an_outage_fails_strict_refreshes_with_the_cause_and_bridges_graced_ones() {
    let s = Setup::start(&[("oncall", &["eng-sre"]), ("dev", &["eng-web"])]);
    let strict = s.sign_in(STRICT, "dev");
    let graced = s.sign_in(GRACE, "oncall");
    let signed_in_at = claims(&graced)["iat"].as_i64().unwrap_or_default();
    s.issuer
        .add_user("local-oncall", &["k8s-admins"], "local password 1");

    s.proxy.set(Fault::Refuse);
    let t = Instant::now();
    let refused = s.refresh(&strict);
    let refused_in = t.elapsed();
    assert_unavailable(&refused, "connection refused");
    let t = Instant::now();
    let bridged = s
        .refresh(&graced)
        .unwrap_or_else(|e| panic!("the offline grace did not bridge the outage: {e:?}"));
    let bridged_in = t.elapsed();
    let c = claims(&bridged);
    let checked_at = c["upstream_checked_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("a token on the grace is not marked: {c}"));
    assert!(
        (checked_at - signed_in_at).abs() <= 5,
        "checked at {checked_at}, signed in at {signed_in_at}"
    );
    let audit = s.issuer.cli(&["audit", "export"], None);
    audit.assert_success();
    assert!(
        audit.stdout.contains("upstream_not_rechecked_since"),
        "the refresh's audit row does not say the person was not re-checked:\n{}",
        audit.stdout
    );
    // Local accounts (break-glass people) sign in as always.
    let local = s
        .issuer
        .login_over_http(CLUSTER, "local-oncall", "local password 1");
    assert!(claims(&local)["groups"].to_string().contains("k8s-admins"));

    // Frozen: no answer within the client's timeout; the issuer answers others meanwhile.
    s.proxy.set(Fault::Freeze);
    let t = Instant::now();
    let frozen = s.refresh(&strict);
    let frozen_in = t.elapsed();
    assert_unavailable(&frozen, "no answer in time");
    let graced_frozen = s
        .refresh(&bridged)
        .unwrap_or_else(|e| panic!("the grace did not bridge a frozen provider: {e:?}"));
    assert!(claims(&graced_frozen)["upstream_checked_at"].is_i64());

    // Slow but within the timeout: refreshes work, re-checked.
    s.proxy.set(Fault::Delay(Duration::from_secs(2)));
    let t = Instant::now();
    let slow = s
        .refresh(&strict)
        .unwrap_or_else(|e| panic!("a slow provider failed the refresh: {e:?}"));
    let slow_in = t.elapsed();
    assert!(claims(&slow)["upstream_checked_at"].is_null());

    // Back: the graced session is re-checked and its tokens are unmarked again.
    s.proxy.set(Fault::Forward);
    let back = s
        .refresh(&graced_frozen)
        .unwrap_or_else(|e| panic!("no refresh after the outage: {e:?}"));
    assert!(
        claims(&back)["upstream_checked_at"].is_null(),
        "{}",
        claims(&back)
    );
    let metrics = s.issuer.browser().get("/metrics").body;
    for line in [
        r#"credential_issuer_upstream_failures_total{provider="corp",operation="refresh",cause="connection_refused"} 1"#,
        r#"credential_issuer_upstream_failures_total{provider="corp",operation="refresh",cause="timeout"} 1"#,
        r#"credential_issuer_upstream_offline_grace_refreshes_total{provider="corp-grace"} 2"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    eprintln!(
        "idp_faults: refused → 503 in {refused_in:?}; on the grace → 200 in {bridged_in:?}; frozen → 503 in {frozen_in:?}; 2 s slower → 200 in {slow_in:?}"
    );
}

/// 401 `invalid_client` (the issuer's client secret expired), 429, 500 and garbage are the
/// provider's or the issuer's problem: the refresh fails with the cause named, the session
/// stays, and it refreshes once the provider answers properly. Only `invalid_grant` (here: the
/// person disabled at the provider) ends it.
#[test]
fn answers_that_are_not_about_the_person_keep_the_session() {
    let s = Setup::start(&[("fay", &["eng-web"])]);
    let mut tokens = s.sign_in(STRICT, "fay");
    let cases = [
        (
            401,
            r#"{"error":"invalid_client","error_description":"client secret expired"}"#,
            "client secret may have expired",
        ),
        (
            429,
            r#"{"error":"too_many_requests"}"#,
            "rate limiting the issuer",
        ),
        (500, r#"{"error":"server_error"}"#, "answered HTTP 500"),
        (
            200,
            "<html>this is not JSON</html>",
            "answer the issuer cannot read",
        ),
        (
            400,
            r#"{"error":"temporarily_unavailable"}"#,
            "OAuth error temporarily_unavailable",
        ),
    ];
    for (status, body, words) in cases {
        s.proxy.set(Fault::TokenAnswer {
            status,
            body: body.to_owned(),
        });
        assert_unavailable(&s.refresh(&tokens), words);
        // The session is kept: the same refresh token works once the provider is fine.
        s.proxy.set(Fault::Forward);
        tokens = s
            .refresh(&tokens)
            .unwrap_or_else(|e| panic!("HTTP {status} {body} ended the session: {e:?}"));
    }
    s.idp.set_disabled("fay", true);
    let ended = s.refresh(&tokens);
    let e = ended
        .err()
        .unwrap_or_else(|| panic!("a disabled person still refreshes"));
    assert_eq!(e.code(), Some(OAuthErrorCode::InvalidGrant), "{e:?}");
}

/// A provider that leaves the ID token out of refresh answers (OpenID Connect Core 12.2): the
/// person is read from userinfo, so the refresh works and group changes are still followed.
#[test]
fn a_refresh_answer_without_an_id_token_reads_the_person_from_userinfo() {
    let s = Setup::start(&[("gus", &["eng-web", "sales"])]);
    let tokens = s.sign_in(STRICT, "gus");
    assert!(claims(&tokens)["groups"].to_string().contains("eng-web"));
    s.proxy.set(Fault::StripIdTokenOnRefresh);
    s.idp.set_groups("gus", &["sales"]);
    let refreshed = s
        .refresh(&tokens)
        .unwrap_or_else(|e| panic!("a refresh without id_token failed: {e:?}"));
    let c = claims(&refreshed);
    assert!(!c["groups"].to_string().contains("eng-web"), "{c}");
    assert!(c["upstream_checked_at"].is_null(), "{c}");
}

/// The provider rotates its signing key but keeps the key id: the next sign-in refetches the
/// keys once the signature fails and goes through, and refreshes go on.
#[test]
fn a_key_rotated_under_the_same_kid_does_not_break_sign_ins() {
    let s = Setup::start(&[("hal", &["eng-web"]), ("ida", &["eng-web"])]);
    let first = s.sign_in(STRICT, "hal");
    s.idp.rotate_key_keeping_kid();
    let second = s.sign_in(STRICT, "ida");
    assert!(claims(&second)["groups"].to_string().contains("eng-web"));
    s.refresh(&first)
        .unwrap_or_else(|e| panic!("refresh after the key rotation failed: {e:?}"));
}

/// A new sign-in while the provider is down gets a page that says so, instead of a redirect
/// to the dead provider.
#[test]
fn a_sign_in_during_an_outage_gets_a_page_saying_the_provider_is_unreachable() {
    let s = Setup::start(&[("jo", &["eng-web"])]);
    // The issuer has the provider's metadata cached from an earlier sign-in.
    let _ = s.sign_in(STRICT, "jo");
    s.proxy.set(Fault::Refuse);
    let browser = s.issuer.browser();
    let (page, _) = s.to_provider(&browser, STRICT);
    assert_eq!(page.status, 503, "{page:?}");
    assert!(
        page.url.starts_with(s.issuer.url()),
        "the browser was sent away: {page:?}"
    );
    assert!(
        page.body.contains("Identity provider unreachable")
            && page.body.contains("connection refused"),
        "{}",
        page.body
    );
}
