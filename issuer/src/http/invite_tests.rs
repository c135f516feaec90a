//! Handler tests of local accounts: the invitation pages (every error path), the second sign-in
//! step, `require_totp`, and account expiry at sign-in, redemption and refresh. The router is
//! driven in-process with a fake clock, through the helpers of `test_support.rs`.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use axum::http::{header, StatusCode};
use credential_shared::oauth::{OAuthErrorCode as E, TokenResponse};

use super::test_support::{
    burst, captured_logs, count, says_when, wrong_code, Reply, TestApp, USER_PASSWORD,
};
use crate::config::FileAccounts;
use crate::service::admin::{create_invitation, InviteRequest};

pub(super) const PASSWORD: &str = "a contractor's passphrase";

/// Invites `name` (account valid for `account`, link for `link`); returns the link's token.
pub(super) async fn invite(app: &TestApp, name: &str, account: Duration, link: Duration) -> String {
    let now = app.clock.now_for_tests();
    let groups = vec!["contractors".to_owned()];
    let created = create_invitation(
        app.state.store(),
        &InviteRequest {
            name,
            email: Some("c@example.com"),
            groups: &groups,
            account_expires_at: now + account,
            link_ttl: link,
        },
        now,
    )
    .await
    .unwrap();
    created.token.expose().to_owned()
}

pub(super) const DAY: Duration = Duration::from_secs(86_400);

/// The invitation page, opened in a new browser: (page, cookie, base32 secret).
pub(super) async fn open(app: &TestApp, token: &str) -> (Reply, String, String) {
    let page = app.get(&format!("/invite/{token}"), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let cookie = page
        .cookie()
        .expect("the invitation page starts a browser session");
    let secret = secret_on(&page);
    (page, cookie, secret)
}

fn secret_on(page: &Reply) -> String {
    let marker = r#"<code id="totp-secret">"#;
    let start = page.body.find(marker).expect("no secret on the page") + marker.len();
    page.body[start..].split('<').next().unwrap().to_owned()
}

/// The code of `secret` at the fake clock's time plus `steps` time steps.
fn code(app: &TestApp, secret: &str, steps: i64) -> String {
    let key = crate::secrets::totp::base32_decode(secret).unwrap();
    crate::secrets::totp::code_at(
        &key,
        app.clock.now_for_tests().unix_timestamp() + steps * crate::secrets::totp::STEP_SECS,
    )
}

async fn submit(
    app: &TestApp,
    token: &str,
    cookie: &str,
    csrf: &str,
    fields: (&str, &str, &str),
) -> Reply {
    app.post(
        &format!("/invite/{token}"),
        &[
            ("password", fields.0),
            ("password_confirm", fields.1),
            ("totp_code", fields.2),
            ("csrf_token", csrf),
        ],
        Some(cookie),
    )
    .await
}

/// The invitation form sent with `PASSWORD` twice and `code`.
async fn accept(app: &TestApp, token: &str, cookie: &str, csrf: &str, code: &str) -> Reply {
    submit(app, token, cookie, csrf, (PASSWORD, PASSWORD, code)).await
}

/// Invites and accepts; returns the base32 secret the person enrolled.
pub(super) async fn enrolled(app: &TestApp, name: &str, account: Duration) -> String {
    let token = invite(app, name, account, DAY).await;
    let (page, cookie, secret) = open(app, &token).await;
    let c = code(app, &secret, 0);
    let r = accept(app, &token, &cookie, &page.csrf(), &c).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    secret
}

/// Enters `user_code` and the password in a new browser; returns the reply to the password
/// and the cookie it set.
pub(super) async fn password_step(app: &TestApp, user_code: &str, name: &str) -> (Reply, String) {
    let (_, r, cookie) = app.code_then_password(user_code, name, PASSWORD).await;
    let cookie = r.cookie().unwrap_or(cookie);
    (r, cookie)
}

/// The second step with `code`.
async fn code_step(app: &TestApp, cookie: &str, code: &str) -> Reply {
    app.fill_in("/login/totp", cookie, &[("totp_code", code)])
        .await
}

/// A whole device login of an enrolled person, with the code `steps` ahead: the tokens.
async fn log_in(app: &TestApp, name: &str, secret: &str, steps: i64) -> TokenResponse {
    let d = app.start().await;
    let (r, cookie) = password_step(app, &d.user_code, name).await;
    assert_eq!(r.headers[header::LOCATION], "/login/totp", "{}", r.body);
    let r = code_step(app, &cookie, &code(app, secret, steps)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/consent");
    let signed_in = r.cookie().expect("a new session id once signed in");
    let done = app.answer_consent(&signed_in, "approve").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    app.advance(5);
    let r = app.poll(&d.device_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn an_invitation_sets_password_and_second_factor_exactly_once() {
    let app = TestApp::new().await;
    let token = invite(&app, "carol", DAY * 30, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    assert!(page.body.contains("<svg"), "no QR code: {}", page.body);
    assert!(page.body.contains("carol"));
    assert_eq!(secret.len(), 32);
    // Reloading shows the same seed (it was stored, sealed, when first opened).
    let (_, _, again) = open(&app, &token).await;
    assert_eq!(again, secret);

    let c = code(&app, &secret, 0);
    let r = accept(&app, &token, &cookie, &page.csrf(), &c).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Account ready"), "{}", r.body);

    let user = app.user("carol").await;
    assert!(user.totp_enrolled);
    assert!(crate::secrets::password::verify(
        user.password_hash.as_deref().unwrap(),
        &crate::secrets::secret::Secret::new(PASSWORD)
    ));

    // The link works once: reopening or resubmitting it says so.
    let reopened = app.get(&format!("/invite/{token}"), None).await;
    assert_eq!(reopened.status, StatusCode::GONE);
    assert!(
        reopened.body.contains("already been used"),
        "{}",
        reopened.body
    );
    let resubmitted = accept(&app, &token, &cookie, &page.csrf(), &c).await;
    assert_eq!(resubmitted.status, StatusCode::GONE, "{}", resubmitted.body);

    // Neither the link's token nor the seed is stored in the clear.
    let dir = app.state.config().data_dir.clone();
    for f in ["issuer.db", "issuer.db-wal"] {
        let bytes = std::fs::read(dir.join(f)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&token), "{f} holds the invitation token");
        assert!(!text.contains(&secret), "{f} holds the TOTP seed");
    }
    let events = app.events_for("carol").await;
    assert_eq!(
        events,
        [
            "invitation.created",
            "invitation.used",
            "invitation.refused",
            "invitation.refused"
        ]
    );
}

#[tokio::test]
async fn unknown_expired_and_withdrawn_links_each_have_a_page() {
    let app = TestApp::new().await;
    let unknown = app.get("/invite/no-such-invitation", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.body.contains("Invitation not found"),
        "{}",
        unknown.body
    );
    let odd = app.get("/invite/%3Cscript%3E", None).await;
    assert_eq!(odd.status, StatusCode::NOT_FOUND);

    let token = invite(&app, "dave", DAY * 30, Duration::from_secs(600)).await;
    let (page, cookie, secret) = open(&app, &token).await;
    app.advance(600);
    let expired = app.get(&format!("/invite/{token}"), None).await;
    assert_eq!(expired.status, StatusCode::GONE);
    assert!(expired.body.contains("expired"), "{}", expired.body);
    assert!(
        expired
            .body
            .contains("they run `credential-issuer invite renew dave`"),
        "the page names what the operator runs: {}",
        expired.body
    );
    // Submitting the form opened before the end is refused as well.
    let c = code(&app, &secret, 0);
    let late = accept(&app, &token, &cookie, &page.csrf(), &c).await;
    assert_eq!(late.status, StatusCode::GONE, "{}", late.body);

    let token = invite(&app, "erin", DAY * 30, DAY).await;
    crate::service::admin::revoke_invitations(app.state.store(), "erin", app.clock.now_for_tests())
        .await
        .unwrap();
    let withdrawn = app.get(&format!("/invite/{token}"), None).await;
    assert_eq!(withdrawn.status, StatusCode::GONE);
    assert!(withdrawn.body.contains("withdrew"), "{}", withdrawn.body);
    assert!(
        withdrawn.body.contains("invite renew erin"),
        "{}",
        withdrawn.body
    );
    let token = invite(&app, "fay", DAY * 30, DAY).await;
    crate::service::admin::disable_user(app.state.store(), "fay", app.clock.now_for_tests())
        .await
        .unwrap();
    let disabled = app.get(&format!("/invite/{token}"), None).await;
    assert_eq!(disabled.status, StatusCode::GONE);
    assert!(
        disabled.body.contains("no longer valid"),
        "{}",
        disabled.body
    );
    for r in [&unknown, &expired, &withdrawn, &disabled] {
        assert!(!r.body.contains("panicked") && r.body.contains("<html"));
        // A contractor has no device code: "Start again" at /device would be a dead end.
        assert!(!r.body.contains(r#"href="/device""#), "{}", r.body);
    }
}

#[tokio::test]
async fn the_invitation_form_checks_passwords_and_csrf() {
    let app = TestApp::new().await;
    let token = invite(&app, "frank", DAY, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    let csrf = page.csrf();
    let c = code(&app, &secret, 0);
    let cases = [
        (("short", "short"), "at least 12"),
        ((PASSWORD, "another passphrase"), "do not match"),
        (("FRANK", "FRANK"), "at least 12"),
    ];
    for ((a, b), message) in cases {
        let r = submit(&app, &token, &cookie, &csrf, (a, b, &c)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{a:?}: {}", r.body);
        assert!(r.body.contains(message), "{a:?}: {}", r.body);
        assert_eq!(
            secret_on(&r),
            secret,
            "the form comes back with the same seed"
        );
    }
    // A username of 12+ characters cannot be its own password.
    let token2 = invite(&app, "frank-the-contractor", DAY, DAY).await;
    let (page2, cookie2, secret2) = open(&app, &token2).await;
    let c2 = code(&app, &secret2, 0);
    let same = "frank-the-contractor";
    let r = submit(&app, &token2, &cookie2, &page2.csrf(), (same, same, &c2)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("not be your username"), "{}", r.body);

    let forged = accept(&app, &token, &cookie, "wrong", &c).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let no_cookie = app
        .post(
            &format!("/invite/{token}"),
            &[("password", PASSWORD), ("csrf_token", &csrf)],
            None,
        )
        .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);
    // None of that used the invitation up.
    let r = accept(&app, &token, &cookie, &csrf, &c).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn wrong_codes_on_an_invitation_are_refused_then_rate_limited() {
    let app = TestApp::with(|f| {
        f.rate_limits = Some(crate::config::FileRateLimits {
            totp_failures: Some(3),
            ..Default::default()
        });
    })
    .await;
    let token = invite(&app, "gina", DAY, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    let csrf = page.csrf();
    let right = code(&app, &secret, 0);
    let wrong = wrong_code(&right);
    for _ in 0..3 {
        let r = accept(&app, &token, &cookie, &csrf, wrong).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(r.body.contains("code is not right"), "{}", r.body);
    }
    // Past the limit even the right code is refused, with a page that says to wait.
    let r = accept(&app, &token, &cookie, &csrf, &right).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("Too many wrong codes"));
    // After the window the invitation still works.
    app.advance(15 * 60);
    let right = code(&app, &secret, 0);
    let r = accept(&app, &token, &cookie, &csrf, &right).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let events = app.events_for("gina").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "invitation.totp_failed")
            .count(),
        3
    );
    assert!(events.contains(&"invitation.rate_limited".to_owned()));
}

#[tokio::test]
async fn sign_in_asks_for_the_code_after_the_password_and_refuses_replay() {
    let app = TestApp::new().await;
    let secret = enrolled(&app, "hank", DAY * 30).await;

    let d = app.start().await;
    let (r, cookie) = password_step(&app, &d.user_code, "hank").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/login/totp");
    // The password alone does not sign in.
    let consent = app.get("/consent", Some(&cookie)).await;
    assert_eq!(consent.headers[header::LOCATION], "/login");
    // The enrolment code's time step was used: the same code is refused (replay).
    // The person is told it was used and how long until the next code, not "not right".
    let replay = code_step(&app, &cookie, &code(&app, &secret, 0)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.body);
    let now = app.clock.now_for_tests().unix_timestamp();
    let left = crate::secrets::totp::STEP_SECS - now.rem_euclid(crate::secrets::totp::STEP_SECS);
    assert!(
        replay.body.contains("That code was just used")
            && replay.body.contains(&format!("in about {left} seconds")),
        "{}",
        replay.body
    );
    assert!(!replay.body.contains("not right"), "{}", replay.body);
    let wrong = code_step(&app, &cookie, "12345x").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.body.contains("That code is not right"),
        "{}",
        wrong.body
    );
    assert!(!wrong.body.contains("just used"), "{}", wrong.body);
    // The next step's code works (one step of skew).
    let ok = code_step(&app, &cookie, &code(&app, &secret, 1)).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.headers[header::LOCATION], "/consent");
    let signed_in = ok.cookie().unwrap();
    assert_ne!(signed_in, cookie, "session id must change at sign-in");
    let consent = app.get("/consent", Some(&signed_in)).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(consent.body.contains("default") && consent.body.contains("kubectl-credential"));
    // The waiting session is gone.
    let stale = app.get("/login/totp", Some(&cookie)).await;
    assert_eq!(stale.headers[header::LOCATION], "/login");

    // A second login needs a later code still, then tokens come out.
    app.advance(60);
    let tokens = log_in(&app, "hank", &secret, 0).await;
    assert!(!tokens.access_token.is_empty());
}

#[tokio::test]
async fn wrong_codes_at_sign_in_are_rate_limited_per_account() {
    let app = TestApp::new().await;
    let secret = enrolled(&app, "ivy", DAY * 30).await;
    let d = app.start().await;
    let (_, cookie) = password_step(&app, &d.user_code, "ivy").await;
    let right = code(&app, &secret, 1);
    let wrong = wrong_code(&right);
    for _ in 0..5 {
        let r = code_step(&app, &cookie, wrong).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    let r = code_step(&app, &cookie, &right).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("Too many wrong codes"));
}

#[tokio::test]
async fn the_second_step_expires() {
    let app = TestApp::new().await;
    enrolled(&app, "jack", DAY * 30).await;
    let d = app.start().await;
    let (_, cookie) = password_step(&app, &d.user_code, "jack").await;
    app.advance(6 * 60);
    let page = app.get("/login/totp", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("Sign in again"), "{}", page.body);
    assert!(page.body.contains(r#"href="/login""#), "{}", page.body);
}

#[tokio::test]
async fn require_totp_refuses_password_only_accounts() {
    let app = TestApp::with(|f| {
        f.accounts = Some(FileAccounts {
            require_totp: Some(true),
            ..FileAccounts::default()
        });
    })
    .await;
    app.add_user("kim", &["dev"]).await;
    let (login, cookie) = app.browser("/login").await;
    let r = app
        .sign_in_form(&cookie, &login.csrf(), "kim", USER_PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("invitation"), "{}", r.body);
    // Accounts with a second factor still sign in.
    let secret = enrolled(&app, "lee", DAY).await;
    app.advance(30);
    let tokens = log_in(&app, "lee", &secret, 0).await;
    assert!(!tokens.refresh_token.is_empty());
}

#[tokio::test]
async fn an_expired_account_cannot_redeem_sign_in_or_refresh() {
    let app = TestApp::new().await;
    let secret = enrolled(&app, "max", Duration::from_secs(600)).await;
    app.advance(30);
    let tokens = log_in(&app, "max", &secret, 0).await;

    // A device approved just before the end is not redeemed after it.
    app.advance(60);
    let d = app.start().await;
    let (_, cookie) = password_step(&app, &d.user_code, "max").await;
    let r = code_step(&app, &cookie, &code(&app, &secret, 0)).await;
    let signed_in = r.cookie().unwrap();
    app.answer_consent(&signed_in, "approve").await;
    app.advance(540);
    let r = app.poll(&d.device_code).await;
    assert_eq!(r.oauth_error(), E::AccessDenied, "{}", r.body);
    assert!(r.body.contains("expired"), "{}", r.body);

    // Refresh is refused (the fast path's WHERE clause), and says why.
    let r = app.refresh(&tokens.refresh_token).await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (StatusCode::BAD_REQUEST, E::InvalidGrant)
    );
    assert!(r.body.contains("account has expired"), "{}", r.body);

    // Signing in is refused with a page saying so.
    let d = app.start().await;
    let (r, _) = password_step(&app, &d.user_code, "max").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("Account expired"), "{}", r.body);

    let user = app.user("max").await;
    let events = app.events_for(&user.id).await;
    assert!(
        events.contains(&"refresh.refused.expired".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"login.refused.expired".to_owned()),
        "{events:?}"
    );
}

#[tokio::test]
async fn tokens_never_outlive_the_account() {
    let app = TestApp::new().await;
    let secret = enrolled(&app, "ned", Duration::from_secs(120)).await;
    app.advance(30);
    let tokens = log_in(&app, "ned", &secret, 0).await;
    // Token TTL is 5 minutes, but the account ends 2 minutes after the invitation.
    assert!(tokens.expires_in <= 90, "expires_in {}", tokens.expires_in);
}

#[tokio::test]
async fn no_invitation_secret_reaches_the_log() {
    let logs = captured_logs();
    let app = TestApp::new().await;
    let token = invite(&app, "olga", DAY, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    let right = code(&app, &secret, 0);
    let wrong = wrong_code(&right);
    accept(&app, &token, &cookie, &page.csrf(), wrong).await;
    accept(&app, &token, &cookie, &page.csrf(), &right).await;
    app.advance(30);
    let signed_in_code = code(&app, &secret, 0);
    let d = app.start().await;
    let (_, cookie2) = password_step(&app, &d.user_code, "olga").await;
    code_step(&app, &cookie2, wrong).await;
    code_step(&app, &cookie2, &signed_in_code).await;

    let text = logs.text();
    assert!(
        text.contains("invitation accepted"),
        "the flow was logged: {text}"
    );
    // (Six-digit codes are left out: they occur by chance inside logged numbers.)
    for s in [token.as_str(), secret.as_str(), PASSWORD] {
        assert!(!text.contains(s), "a secret reached the log: {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_codes_at_sign_in_gets_at_most_the_limit_checked() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let secret = enrolled(&app, "iris", DAY * 30).await;
    app.advance(60);
    let d = app.start().await;
    let (_, cookie) = password_step(&app, &d.user_code, "iris").await;
    let page = app.get("/login/totp", Some(&cookie)).await;
    let csrf = page.csrf();
    let right = code(&app, &secret, 0);
    let wrong = wrong_code(&right);
    let replies = burst(&app, 100, |app, _| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        async move {
            app.post(
                "/login/totp",
                &[("totp_code", wrong), ("csrf_token", &csrf)],
                Some(&cookie),
            )
            .await
        }
    })
    .await;
    let checked = app.count_events("login.totp_failed").await;
    assert_eq!(checked, 5, "codes checked in a burst of 100");
    assert_eq!(count(&replies, StatusCode::UNAUTHORIZED), 5);
    assert_eq!(count(&replies, StatusCode::TOO_MANY_REQUESTS), 95);
    let r = code_step(&app, &cookie, &right).await;
    says_when(&r);
}

/// The same right code sent twice at once (two browsers of one person, or a stolen code raced
/// against its owner) is accepted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_code_sent_twice_at_once_is_accepted_once() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let secret = enrolled(&app, "jude", DAY * 30).await;
    app.advance(60);
    // As many browsers as the per-account limit (5), so that none is refused for the limit.
    let mut browsers = Vec::new();
    for _ in 0..5 {
        let d = app.start().await;
        let (_, cookie) = password_step(&app, &d.user_code, "jude").await;
        let page = app.get("/login/totp", Some(&cookie)).await;
        browsers.push((cookie, page.csrf()));
    }
    let right = code(&app, &secret, 0);
    let replies = burst(&app, browsers.len(), |app, i| {
        let (cookie, csrf) = browsers[i].clone();
        let right = right.clone();
        async move {
            app.post(
                "/login/totp",
                &[("totp_code", &right), ("csrf_token", &csrf)],
                Some(&cookie),
            )
            .await
        }
    })
    .await;
    assert_eq!(count(&replies, StatusCode::SEE_OTHER), 1, "accepted once");
    assert_eq!(
        count(&replies, StatusCode::UNAUTHORIZED),
        browsers.len() - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_codes_on_an_invitation_gets_at_most_the_limit_checked() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let token = invite(&app, "kurt", DAY, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    let csrf = page.csrf();
    let right = code(&app, &secret, 0);
    let wrong = wrong_code(&right);
    let replies = burst(&app, 60, |app, _| {
        let (token, cookie, csrf) = (token.clone(), cookie.clone(), csrf.clone());
        async move { accept(&app, &token, &cookie, &csrf, wrong).await }
    })
    .await;
    let events = app.events_for("kurt").await;
    let checked = events
        .iter()
        .filter(|e| *e == "invitation.totp_failed")
        .count();
    assert_eq!(checked, 5, "codes checked in a burst of 60");
    assert_eq!(count(&replies, StatusCode::BAD_REQUEST), 5);
    assert_eq!(count(&replies, StatusCode::TOO_MANY_REQUESTS), 55);
    let r = accept(&app, &token, &cookie, &csrf, &right).await;
    says_when(&r);
}

/// An invitation link submitted right by several browsers at once sets the account up once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invitation_submitted_at_once_is_used_once() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let token = invite(&app, "lena", DAY, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    let csrf = page.csrf();
    let right = code(&app, &secret, 0);
    let replies = burst(&app, 4, |app, _| {
        let (token, cookie, csrf, right) =
            (token.clone(), cookie.clone(), csrf.clone(), right.clone());
        async move { accept(&app, &token, &cookie, &csrf, &right).await }
    })
    .await;
    assert_eq!(count(&replies, StatusCode::OK), 1, "used once");
    assert_eq!(count(&replies, StatusCode::GONE), 3);
    let events = app.events_for("lena").await;
    assert_eq!(events.iter().filter(|e| *e == "invitation.used").count(), 1);
}

#[tokio::test]
async fn account_ready_says_how_to_install_set_up_and_go_on() {
    let app = TestApp::new().await;
    // As `serve` does without operator TLS files: the issuer generates its CA.
    let dir = app.state.config().tls_dir();
    let files = crate::serve::tls::ensure_generated(&dir, &["issuer.test".to_owned()]).unwrap();
    let token = invite(&app, "kate", DAY * 30, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    let c = code(&app, &secret, 0);
    let done = accept(&app, &token, &cookie, &page.csrf(), &c).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let body = &done.body;
    assert!(body.contains("Account ready"), "{body}");
    assert!(
        body.contains("install-plugin.sh"),
        "no install step: {body}"
    );
    assert!(
        body.contains(
            r#"<code id="setup-command">kubectl credential setup --issuer https://issuer.test --issuer-ca ~/.kube/credential-issuer-ca.crt</code>"#
        ),
        "the exact setup line: {body}"
    );
    assert!(body.contains(r#"href="/ca.crt""#), "{body}");
    assert!(
        body.contains("kubectl --context default get namespaces"),
        "{body}"
    );
    assert!(
        !body.contains("run <code>kubectl credential login</code>"),
        "{body}"
    );
    // The CA offered is the one that signed the serving certificate, and only the certificate.
    let ca = app.get("/ca.crt", None).await;
    assert_eq!(ca.status, StatusCode::OK, "{}", ca.body);
    let pem = std::fs::read_to_string(files.ca.unwrap()).unwrap();
    assert_eq!(ca.body, pem);
    assert!(!ca.body.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn with_the_operators_certificate_no_ca_is_offered() {
    let app = TestApp::new().await;
    // No generated CA (as with operator TLS files, where `/ca.crt` is not served).
    assert_eq!(app.get("/ca.crt", None).await.status, StatusCode::NOT_FOUND);
    let token = invite(&app, "lena", DAY * 30, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    let c = code(&app, &secret, 0);
    let done = accept(&app, &token, &cookie, &page.csrf(), &c).await;
    assert!(
        done.body.contains(
            r#"<code id="setup-command">kubectl credential setup --issuer https://issuer.test</code>"#
        ),
        "{}",
        done.body
    );
    assert!(!done.body.contains("ca.crt"), "{}", done.body);
}

#[tokio::test]
async fn a_wrong_code_on_the_invitation_keeps_the_password() {
    let app = TestApp::new().await;
    let token = invite(&app, "mona", DAY * 30, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    let right = code(&app, &secret, 0);
    let r = accept(&app, &token, &cookie, &page.csrf(), wrong_code(&right)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let kept = format!(r#"value="{}""#, super::templates::escape(PASSWORD));
    assert_eq!(
        r.body.matches(&kept).count(),
        2,
        "both password fields keep what was typed: {}",
        r.body
    );
    // The kept form is sent as it is and works.
    let ok = accept(&app, &token, &cookie, &r.csrf(), &right).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // A password problem is not given back.
    let token = invite(&app, "nina", DAY * 30, DAY).await;
    let (page, cookie, secret) = open(&app, &token).await;
    let c = code(&app, &secret, 0);
    let r = submit(
        &app,
        &token,
        &cookie,
        &page.csrf(),
        (PASSWORD, "something else!", &c),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(!r.body.contains("value=\"a contractor"), "{}", r.body);
}

#[tokio::test]
async fn an_expired_or_withdrawn_invitation_is_renewed_by_the_operator() {
    let app = TestApp::new().await;
    let old = invite(&app, "olga", DAY * 30, DAY).await;
    let now = app.clock.now_for_tests();
    crate::service::admin::revoke_invitations(app.state.store(), "olga", now)
        .await
        .unwrap();
    // `invite create` again says what to run instead of a bare "already exists".
    let groups = vec!["contractors".to_owned()];
    let again = create_invitation(
        app.state.store(),
        &InviteRequest {
            name: "olga",
            email: None,
            groups: &groups,
            account_expires_at: now + DAY,
            link_ttl: DAY,
        },
        now,
    )
    .await
    .unwrap_err();
    assert!(again.to_string().contains("invite renew olga"), "{again}");
    let renewed = crate::service::admin::renew_invitation(app.state.store(), "olga", DAY, now)
        .await
        .unwrap();
    let new = renewed.token.expose().to_owned();
    assert_eq!(
        app.get(&format!("/invite/{old}"), None).await.status,
        StatusCode::GONE
    );
    let (page, cookie, secret) = open(&app, &new).await;
    let c = code(&app, &secret, 0);
    let done = accept(&app, &new, &cookie, &page.csrf(), &c).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    // Once set up there is nothing to renew.
    let err = crate::service::admin::renew_invitation(app.state.store(), "olga", DAY, now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, crate::service::admin::Error::NotRenewable(_)),
        "{err}"
    );
    let events = app.events_for("olga").await;
    assert_eq!(
        events,
        [
            "invitation.created",
            "invitation.revoked",
            "invitation.renewed",
            "invitation.refused",
            "invitation.used"
        ]
    );
}

/// A stale invitation form links back to its invitation, but only a path shaped like an
/// invitation token is put in that link: any other path (here 2,000 `<`, which escaping would
/// make four times longer) links to the start, so the page never echoes or grows with the
/// requester's path.
#[tokio::test]
async fn a_stale_form_links_back_only_to_a_token_shaped_path() {
    let app = TestApp::new().await;
    let form = [
        ("password", "x"),
        ("password_confirm", "x"),
        ("csrf_token", "stale"),
    ];
    let shaped = app.post("/invite/AbC-d_9", &form, None).await;
    assert!(
        shaped.body.contains("href=\"/invite/AbC-d_9\""),
        "{}",
        shaped.body
    );
    let hostile = format!("/invite/{}", "%3C".repeat(2_000));
    let page = app.post(&hostile, &form, None).await;
    let text = &page.body;
    assert!(text.contains("href=\"/\""), "{text}");
    assert!(!text.contains("&lt;"), "the path is echoed: {text}");
    assert!(text.len() < 4_000, "{} bytes", text.len());
}
