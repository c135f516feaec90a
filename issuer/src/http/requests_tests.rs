//! Handler tests of access requests: the plugin's API (bearer tokens from the real device
//! flow) and the approvals page (real sign-in, CSRF), with a fake clock and a temporary
//! database.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use axum::http::{header, StatusCode};
use credential_shared::api::{AccessRequestInfo, AccessRequestList, ApiErrorBody};
use credential_shared::oauth::{Jwks, TokenResponse};

use super::test_support::{burst, count, login, Reply, TestApp, USER_PASSWORD};
use crate::config::{FileConfig, FileRequests, FileRole};

fn policy(f: &mut FileConfig) {
    f.roles = vec![
        FileRole {
            name: "prod-exec".into(),
            cluster_role: Some("edit".into()),
            max_duration: Some("2h".into()),
            requestable: true,
            approvers: vec!["sre-leads".into()],
            reason_required: true,
            ..FileRole::default()
        },
        FileRole {
            name: "glass".into(),
            cluster_role: Some("admin".into()),
            max_duration: Some("1h".into()),
            requestable: true,
            break_glass: true,
            self_approve: true,
            ..FileRole::default()
        },
    ];
    f.requests = Some(FileRequests {
        file_limit: Some(3),
        ..FileRequests::default()
    });
}

/// Signs `user` in on the web (no device waiting); returns the session cookie.
async fn web_sign_in(app: &TestApp, user: &str) -> String {
    let (page, cookie) = app.browser("/login").await;
    let r = app
        .sign_in_form(&cookie, &page.csrf(), user, USER_PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.cookie().unwrap()
}

/// A filing of an access request through the plugin's API.
async fn file(app: &TestApp, token: Option<&str>, body: &str) -> Reply {
    app.api("POST", "/api/v1/requests", token, body).await
}

/// The approvals page's form at `path` sent with (action, comment).
async fn decide_on_page(
    app: &TestApp,
    path: &str,
    cookie: &str,
    csrf: &str,
    (action, comment): (&str, &str),
) -> Reply {
    app.post(
        path,
        &[
            ("action", action),
            ("comment", comment),
            ("csrf_token", csrf),
        ],
        Some(cookie),
    )
    .await
}

fn filing(role: &str, reason: &str, secs: u64) -> String {
    serde_json::json!({
        "cluster": "default",
        "role": role,
        "namespaces": ["payments"],
        "reason": reason,
        "duration_secs": secs,
    })
    .to_string()
}

#[tokio::test]
async fn the_api_wants_a_live_token_and_never_echoes_it() {
    let app = TestApp::with(policy).await;
    let r = app.api("GET", "/api/v1/requests", None, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let bogus = "eyJhbGciOiJFUzI1NiJ9.e30.c2lnbmF0dXJlLXNlY3JldC10b2tlbg";
    let r = file(&app, Some(bogus), &filing("prod-exec", "x", 60)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.body.contains(bogus), "{}", r.body);
    assert_eq!(r.json::<ApiErrorBody>().error, "unauthorized");
    // A logged-out session's token is refused too.
    let t = login(&app, "alice", &["dev"]).await;
    let ok = app
        .api("GET", "/api/v1/requests", Some(&t.access_token), "")
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let revoke = app.revoke(&t.refresh_token).await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.body);
    let r = app
        .api("GET", "/api/v1/requests", Some(&t.access_token), "")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test]
async fn filings_follow_the_policy_and_are_rate_limited() {
    let app = TestApp::with(policy).await;
    let t = login(&app, "alice", &["dev"]).await;
    let tok = Some(t.access_token.as_str());
    let r = file(&app, tok, &filing("prod-exec", "", 60)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("requires a reason"), "{}", r.body);
    let r = file(&app, tok, &filing("prod-exec", "x", 3 * 3600)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // The limit reads as the config file wrote it (`2h`), not as a number of seconds.
    let refused = r.json::<ApiErrorBody>().message;
    assert!(refused.contains("at most 2h"), "{refused}");
    assert!(!refused.contains("7200"), "{refused}");
    // The third filing this window is within the limit (3), the fourth is not.
    let r = file(&app, tok, &filing("prod-exec", "x", 60)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = file(&app, tok, &filing("prod-exec", "x", 60)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
}

#[tokio::test]
async fn the_requester_never_approves_and_another_approver_starts_the_grant() {
    let app = TestApp::with(policy).await;
    // Alice is herself in the approvers group: still not for her own request.
    let alice = login(&app, "alice", &["dev", "sre-leads"]).await;
    let r = file(
        &app,
        Some(&alice.access_token),
        &filing("prod-exec", "OOM in payment-service", 1800),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let filed: AccessRequestInfo = r.json();
    assert_eq!(filed.status, "pending");
    let path = format!("/api/v1/requests/{}/approve", filed.id);
    let r = app.api("POST", &path, Some(&alice.access_token), "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("your own request"), "{}", r.body);

    // On the page her request is listed without a form, and a forged post is refused.
    let alice_web = web_sign_in(&app, "alice").await;
    let page = app.get("/requests", Some(&alice_web)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Your own request"), "{}", page.body);
    assert!(!page
        .body
        .contains(&format!("action=\"/requests/{}\"", filed.id)));
    let form_path = format!("/requests/{}", filed.id);
    let csrf = app.get("/login", Some(&alice_web)).await.csrf();
    let r = app
        .post(
            &form_path,
            &[("action", "approve"), ("csrf_token", &csrf)],
            Some(&alice_web),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // Bob approves on the page; without the CSRF token nothing happens.
    app.add_user("bob", &["sre-leads"]).await;
    let bob_web = web_sign_in(&app, "bob").await;
    let page = app.get("/requests", Some(&bob_web)).await;
    assert!(
        page.body.contains("OOM in payment-service"),
        "{}",
        page.body
    );
    let r = app
        .post(&form_path, &[("action", "approve")], Some(&bob_web))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = decide_on_page(&app, &form_path, &bob_web, &page.csrf(), ("approve", "go")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("approved"), "{}", r.body);
    // A second decision loses.
    let r = decide_on_page(&app, &form_path, &bob_web, &page.csrf(), ("deny", "no")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        r.body.contains(r#"href="/requests""#),
        "back to the list: {}",
        r.body
    );

    let mine: AccessRequestList = app
        .api("GET", "/api/v1/requests", Some(&alice.access_token), "")
        .await
        .json();
    let got = &mine.requests[0];
    assert_eq!(got.status, "approved");
    assert_eq!(got.decided_by.as_deref(), Some("bob"));
    assert!(got.grant_active);
    let now = app.clock.now_for_tests().unix_timestamp();
    assert_eq!(got.grant_ends_at, Some(now + 1800));
    // The next refresh carries the grant, without a new login.
    let t: TokenResponse = app.refresh(&alice.refresh_token).await.json();
    let jwks: Jwks = app.get("/openid/v1/jwks", None).await.json();
    let claims = crate::signing::verify(&jwks, &t.access_token).unwrap();
    assert_eq!(claims.grants, [got.grant_id.clone().unwrap()]);
    assert!(claims
        .groups
        .contains(&"grant:prod-exec:payments".to_owned()));
    let events = app.events_for("user:alice").await;
    assert_eq!(
        events,
        ["request.filed", "request.approved", "grant.created"]
    );
}

#[tokio::test]
async fn break_glass_is_approved_at_once_with_an_alert() {
    let app = TestApp::with(policy).await;
    let t = login(&app, "alice", &["dev"]).await;
    let body = serde_json::json!({
        "cluster": "default", "role": "glass", "reason": "outage", "duration_secs": 600
    })
    .to_string();
    let r = file(&app, Some(&t.access_token), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let got: AccessRequestInfo = r.json();
    assert_eq!(got.status, "approved");
    assert_eq!(got.decided_by.as_deref(), Some("alice"));
    assert!(got.grant_active);
    let metrics = app.get("/metrics", None).await.body;
    assert!(
        metrics.contains("credential_issuer_break_glass_total 1"),
        "{metrics}"
    );
    let events = app.events_for("user:alice").await;
    assert_eq!(
        events,
        [
            "request.filed",
            "request.approved",
            "grant.created",
            "request.break_glass"
        ]
    );
}

#[tokio::test]
async fn undecided_requests_expire_and_a_denial_needs_a_comment() {
    let app = TestApp::with(policy).await;
    let t = login(&app, "alice", &["dev"]).await;
    let tok = Some(t.access_token.as_str());
    let filed: AccessRequestInfo = file(&app, tok, &filing("prod-exec", "x", 60)).await.json();
    app.add_user("bob", &["sre-leads"]).await;
    let bob = web_sign_in(&app, "bob").await;
    let page = app.get("/requests", Some(&bob)).await;
    let form_path = format!("/requests/{}", filed.id);
    let r = app
        .post(
            &form_path,
            &[("action", "deny"), ("csrf_token", &page.csrf())],
            Some(&bob),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("comment"), "{}", r.body);
    // An hour later (the default pending_ttl) nobody decided: it is recorded as expired.
    app.advance(3600);
    let expired = crate::service::requests::expire(app.state.store(), app.clock.now_for_tests())
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].0, crate::service::notify::Kind::Expired);
    let t: TokenResponse = app.refresh(&t.refresh_token).await.json();
    let tok = Some(t.access_token.as_str());
    let got: AccessRequestInfo = app
        .api("GET", &format!("/api/v1/requests/{}", filed.id), tok, "")
        .await
        .json();
    assert_eq!(got.status, "expired");
    let events = app.events_for("user:alice").await;
    assert_eq!(events, ["request.filed", "request.expired"]);
    // Someone else's request is not found through the API.
    let other = login(&app, "carol", &["dev"]).await;
    let r = app
        .api(
            "GET",
            &format!("/api/v1/requests/{}", filed.id),
            Some(&other.access_token),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}

#[tokio::test]
async fn an_unreachable_chat_hook_is_counted_and_never_fails_the_request() {
    let app = TestApp::with(|f| {
        policy(f);
        // Port 1 on loopback: connection refused at once.
        f.notifications = Some(crate::config::FileNotifications {
            webhook_url: Some("http://127.0.0.1:1/hook".into()),
            webhook_secret_file: None,
        });
    })
    .await;
    let t = login(&app, "alice", &["dev"]).await;
    let r = file(&app, Some(&t.access_token), &filing("prod-exec", "x", 60)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let filed: AccessRequestInfo = r.json();
    let stored = app.state.store().request(&filed.id).await.unwrap().unwrap();
    // The same delivery the handler started in the background, awaited here.
    let notifier = crate::service::notify::Notifier::new(
        app.state.config().notifications.clone(),
        app.state.config().issuer(),
    );
    notifier
        .send(
            crate::service::notify::Kind::Filed,
            &stored,
            Some(app.state.clone()),
        )
        .unwrap()
        .await
        .unwrap();
    let metrics = app.get("/metrics", None).await.body;
    assert!(
        !metrics.contains("credential_issuer_notification_failures_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("credential_issuer_notifications_sent_total 0"),
        "{metrics}"
    );
}

/// A burst of filings stops at the per-person limit (3 in `policy`) on any replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_filings_stops_at_the_limit() {
    let app = std::sync::Arc::new(TestApp::with(policy).await);
    let t = login(&app, "bo", &["dev"]).await;
    let tok = t.access_token.clone();
    let replies = burst(&app, 50, |app, _| {
        let tok = tok.clone();
        async move { file(&app, Some(&tok), &filing("prod-exec", "incident 42", 60)).await }
    })
    .await;
    assert_eq!(count(&replies, StatusCode::CREATED), 3);
    assert_eq!(count(&replies, StatusCode::TOO_MANY_REQUESTS), 47);
}

/// A person who opens `/requests` without being signed in signs in and lands back on it, not
/// on the "run `kubectl credential login`" page.
#[tokio::test]
async fn signing_in_from_the_approvals_page_returns_to_it() {
    let app = TestApp::with(policy).await;
    app.add_user("bob", &["sre-leads"]).await;
    let r = app.get("/requests", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/login");
    let cookie = r.cookie().expect("a browser session for the sign-in");
    let r = app.sign_in(&cookie, "bob", USER_PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/requests");
    let bob = r.cookie().expect("a fresh session after sign-in");
    let page = app.get("/requests", Some(&bob)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Access requests"), "{}", page.body);
    assert!(page.body.contains("bob"), "{}", page.body);
}

/// A return target that is not one of the issuer's own pages is never followed, even if it
/// reached the session's row.
#[tokio::test]
async fn a_return_target_on_another_host_is_refused() {
    let app = TestApp::with(policy).await;
    app.add_user("bob", &["sre-leads"]).await;
    for evil in [
        "https://evil.example/requests",
        "//evil.example/requests",
        "/\\evil.example",
    ] {
        let r = app.get("/requests", None).await;
        let cookie = r.cookie().unwrap();
        let hash = crate::secrets::secret::hash(cookie.split_once('=').unwrap().1);
        app.state
            .store()
            .set_web_return_to(&hash, Some(evil))
            .await
            .unwrap();
        let r = app.sign_in(&cookie, "bob", USER_PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{evil}: {}", r.body);
        assert!(!r.headers.contains_key(header::LOCATION), "{evil}");
    }
}

/// Before asking, a person sees which roles they may ask for, for how long at most and who
/// approves: from the plugin's token (`GET /api/v1/roles`) and on the page.
#[tokio::test]
async fn the_roles_one_may_request_are_listed_with_their_limits() {
    use credential_shared::api::{RoleList, PATH_ROLES};
    let app = TestApp::with(|f| {
        policy(f);
        f.roles.push(FileRole {
            name: "viewer".into(),
            cluster_role: Some("view".into()),
            ..FileRole::default()
        });
    })
    .await;
    let r = app.api("GET", PATH_ROLES, None, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let t = login(&app, "alice", &["dev"]).await;
    let r = app.api("GET", PATH_ROLES, Some(&t.access_token), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list: RoleList = r.json();
    assert_eq!(list.cluster.as_deref(), Some("default"));
    let names: Vec<&str> = list.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["prod-exec", "glass"],
        "not the unrequestable viewer"
    );
    let exec = &list.roles[0];
    assert_eq!(exec.max_duration, "2h");
    assert_eq!(exec.max_duration_secs, 7200);
    assert!(exec.needs_approval && exec.reason_required && !exec.break_glass);
    assert_eq!(exec.approvers, ["sre-leads"]);
    let glass = &list.roles[1];
    assert_eq!(glass.max_duration, "1h");
    assert!(!glass.needs_approval && glass.break_glass);

    let web = web_sign_in(&app, "alice").await;
    let page = app.get("/requests", Some(&web)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let roles = &page.body[page.body.find(r#"id="roles""#).expect("a roles section")..];
    assert!(roles.contains(r#"id="role-prod-exec""#), "{roles}");
    assert!(roles.contains("<td>2h</td>"), "{roles}");
    assert!(roles.contains("a member of sre-leads"), "{roles}");
    assert!(roles.contains(r#"id="role-glass""#), "{roles}");
    assert!(roles.contains("approved at once"), "{roles}");
    assert!(!roles.contains("role-viewer"), "{roles}");
}
