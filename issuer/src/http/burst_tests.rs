//! Handler tests of every limit and single-use thing under a burst of concurrent requests: at
//! most the limit is ever checked, a right guess after the limit is refused, the person is
//! told when to try again, and of racing spenders exactly one wins. The requests start
//! together (a barrier) on a multi-threaded runtime; the same tests run on PostgreSQL with
//! `CREDENTIAL_TEST_STORE=postgres`.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;

use axum::http::{header, StatusCode};
use credential_shared::oauth::{OAuthErrorCode as E, TokenResponse};

use super::test_support::{burst, count, logged_in, says_when, Reply, TestApp, USER_PASSWORD};
use crate::config::FileRateLimits;

fn limits(edit: impl FnOnce(&mut FileRateLimits)) -> impl FnOnce(&mut crate::config::FileConfig) {
    move |f| {
        let mut l = FileRateLimits {
            window: Some("120s".into()),
            ..FileRateLimits::default()
        };
        edit(&mut l);
        f.rate_limits = Some(l);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_user_codes_gets_at_most_the_limit_checked() {
    let app = Arc::new(TestApp::with(limits(|l| l.user_code_failures = Some(10))).await);
    let d = app.start().await;
    let (page, cookie) = app.browser("/device").await;
    let csrf = page.csrf();
    let replies = burst(&app, 300, |app, i| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        async move {
            // Distinct wrong codes, as a guesser would send.
            let code = format!("BBBB-{i:04}").replace('0', "C").replace('1', "D");
            app.enter_code(&cookie, &csrf, &code).await
        }
    })
    .await;
    let checked = app.count_events("user_code.invalid").await;
    assert_eq!(checked, 10, "user codes checked in a burst of 300");
    assert_eq!(count(&replies, StatusCode::BAD_REQUEST), 10);
    assert_eq!(count(&replies, StatusCode::TOO_MANY_REQUESTS), 290);
    // The right code, after the limit, is refused too, and the page says when to come back.
    let r = app.enter_code(&cookie, &csrf, &d.user_code).await;
    says_when(&r);
    app.advance(121);
    let r = app.enter_code(&cookie, &csrf, &d.user_code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_passwords_gets_at_most_the_limit_checked() {
    let app = Arc::new(TestApp::with(limits(|l| l.password_failures = Some(5))).await);
    app.add_user("jane", &[]).await;
    let (page, cookie) = app.browser("/login").await;
    let csrf = page.csrf();
    let replies = burst(&app, 60, |app, i| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        async move {
            let guess = format!("guess {i}");
            app.sign_in_form(&cookie, &csrf, "jane", &guess).await
        }
    })
    .await;
    let checked = app.count_events("login.failed").await;
    assert_eq!(checked, 5, "passwords checked in a burst of 60");
    assert_eq!(count(&replies, StatusCode::UNAUTHORIZED), 5);
    assert_eq!(count(&replies, StatusCode::TOO_MANY_REQUESTS), 55);
    let r = app
        .sign_in_form(&cookie, &csrf, "jane", USER_PASSWORD)
        .await;
    says_when(&r);
    assert!(r.body.contains("Too many failed sign-ins"), "{}", r.body);
}

/// Guesses spread over many accounts from one address stop at the address's limit (four times
/// the per-account one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_many_accounts_stops_at_the_address_limit() {
    let app = Arc::new(TestApp::with(limits(|l| l.password_failures = Some(5))).await);
    let (page, cookie) = app.browser("/login").await;
    let csrf = page.csrf();
    let replies = burst(&app, 80, |app, i| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        async move {
            let user = format!("user{i}");
            app.sign_in_form(&cookie, &csrf, &user, "guess").await
        }
    })
    .await;
    assert_eq!(count(&replies, StatusCode::UNAUTHORIZED), 20);
    assert_eq!(count(&replies, StatusCode::TOO_MANY_REQUESTS), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_device_authorizations_stops_at_the_limit() {
    let app = Arc::new(TestApp::with(limits(|l| l.device_authorizations = Some(20))).await);
    let replies = burst(&app, 80, |app, _| async move {
        app.post(
            "/oauth/device_authorization",
            &[("client_id", "kubectl-credential"), ("cluster", "default")],
            None,
        )
        .await
    })
    .await;
    assert_eq!(count(&replies, StatusCode::OK), 20);
    let refused: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(refused.len(), 60);
    assert!(refused[0].headers.contains_key(header::RETRY_AFTER));
}

/// Concurrent polls of one device code within one interval: one is in time, the others are
/// told to slow down (RFC 8628 section 3.5); an approved code is redeemed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_polls_is_answered_in_time_once_and_redeemed_once() {
    let app = Arc::new(TestApp::new().await);
    app.add_user("pia", &[]).await;
    let d = app.start().await;
    let code = d.device_code.clone();
    let replies = burst(&app, 50, |app, _| {
        let code = code.clone();
        async move { app.poll(&code).await }
    })
    .await;
    let errors: Vec<E> = replies.iter().map(Reply::oauth_error).collect();
    assert_eq!(
        errors
            .iter()
            .filter(|e| **e == E::AuthorizationPending)
            .count(),
        1
    );
    assert_eq!(errors.iter().filter(|e| **e == E::SlowDown).count(), 49);

    let r = app.decide(&d.user_code, "pia", "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Each early poll added 5 s to the interval: 5 + 49 * 5.
    app.advance(250);
    let replies = burst(&app, 50, |app, _| {
        let code = code.clone();
        async move { app.poll(&code).await }
    })
    .await;
    assert_eq!(count(&replies, StatusCode::OK), 1, "tokens issued once");
    // And never again, however it is asked.
    app.advance(300);
    let r = app.poll(&code).await;
    assert_ne!(r.status, StatusCode::OK);
}

/// Of a burst of refreshes with one refresh token exactly one rotates it; the others, within
/// the retry grace, get the same successor back (none of them is taken as reuse).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_refreshes_rotates_once() {
    let app = Arc::new(TestApp::new().await);
    let t = logged_in(&app, "rae").await;
    let rt = t.refresh_token.clone();
    let replies = burst(&app, 50, |app, _| {
        let rt = rt.clone();
        async move { app.refresh(&rt).await }
    })
    .await;
    assert_eq!(count(&replies, StatusCode::OK), 50);
    let successors: std::collections::BTreeSet<String> = replies
        .iter()
        .map(|r| r.json::<TokenResponse>().refresh_token)
        .collect();
    assert_eq!(successors.len(), 1, "one rotation of one refresh token");
    assert_eq!(app.count_events("refresh").await, 1);
    assert_eq!(app.count_events("refresh.retried").await, 49);
}

/// New browser sessions (rows in the database) opened at once from one address stop at twice
/// the device-authorization limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_new_browser_sessions_stops_at_the_limit() {
    let app = Arc::new(TestApp::with(limits(|l| l.device_authorizations = Some(10))).await);
    let replies = burst(
        &app,
        100,
        |app, _| async move { app.get("/device", None).await },
    )
    .await;
    assert_eq!(count(&replies, StatusCode::OK), 20);
    assert_eq!(count(&replies, StatusCode::TOO_MANY_REQUESTS), 80);
    let refused = replies
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    assert!(refused.body.contains("Try again in"), "{}", refused.body);
}
