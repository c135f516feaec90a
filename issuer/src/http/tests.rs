//! Handler tests: the router driven in-process with `oneshot` (no socket), a fake clock and a
//! temporary database. Every RFC 8628 error path is here.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use axum::http::{header, StatusCode};
use credential_shared::oauth::{Jwks, OAuthErrorCode as E, TokenResponse};

use super::test_support::{captured_logs, logged_in, TestApp, USER_PASSWORD};

/// The OAuth error of a poll with `device_code`.
async fn poll_error(app: &TestApp, device_code: &str) -> E {
    app.poll(device_code).await.oauth_error()
}

/// A refresh with `rt` is refused as `invalid_grant`.
async fn assert_refresh_refused(app: &TestApp, rt: &str) {
    assert_eq!(refresh_error(app, rt).await, E::InvalidGrant);
}

/// The OAuth error of a refresh with `rt`.
async fn refresh_error(app: &TestApp, rt: &str) -> E {
    app.refresh(rt).await.oauth_error()
}

#[tokio::test]
async fn device_authorization_response_follows_rfc8628() {
    let app = TestApp::new().await;
    let d = app.start().await;
    let code = d.user_code.replace('-', "");
    assert_eq!(d.user_code.len(), 9);
    assert_eq!(&d.user_code[4..5], "-");
    assert!(code
        .bytes()
        .all(|b| crate::domain::user_code::ALPHABET.contains(&b)));
    assert_eq!(d.verification_uri, "https://issuer.test/device");
    assert_eq!(
        d.verification_uri_complete,
        format!("https://issuer.test/device?user_code={}", d.user_code)
    );
    assert_eq!((d.expires_in, d.interval), (600, 5));
    assert!(d.device_code.len() >= 43);
}

/// A form's fields, as `TestApp::post` sends them.
type Form<'a> = &'a [(&'a str, &'a str)];

#[tokio::test]
async fn device_authorization_rejects_bad_requests() {
    let app = TestApp::new().await;
    let cases: [(Form<'_>, StatusCode, E); 4] = [
        (
            &[("cluster", "default")],
            StatusCode::BAD_REQUEST,
            E::InvalidRequest,
        ),
        (
            &[("client_id", "evil"), ("cluster", "default")],
            StatusCode::UNAUTHORIZED,
            E::InvalidClient,
        ),
        (
            &[("client_id", "kubectl-credential")],
            StatusCode::BAD_REQUEST,
            E::InvalidRequest,
        ),
        (
            &[("client_id", "kubectl-credential"), ("cluster", "nope")],
            StatusCode::BAD_REQUEST,
            E::InvalidScope,
        ),
    ];
    for (form, status, code) in cases {
        let r = app.post("/oauth/device_authorization", form, None).await;
        assert_eq!(
            (r.status, r.oauth_error()),
            (status, code),
            "{form:?}: {}",
            r.body
        );
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    }
}

#[tokio::test]
async fn token_endpoint_error_paths() {
    let app = TestApp::new().await;
    let r = app
        .post("/oauth/token", &[("grant_type", "password")], None)
        .await;
    assert_eq!(r.oauth_error(), E::UnsupportedGrantType);
    let r = app
        .post("/oauth/token", &[("client_id", "kubectl-credential")], None)
        .await;
    assert_eq!(r.oauth_error(), E::InvalidRequest);
    let r = app
        .post(
            "/oauth/token",
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", "kubectl-credential"),
            ],
            None,
        )
        .await;
    assert_eq!(r.oauth_error(), E::InvalidRequest);
    let r = app.poll("not-a-real-code").await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (StatusCode::BAD_REQUEST, E::InvalidGrant)
    );
    let d = app.start().await;
    let r = app
        .post(
            "/oauth/token",
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &d.device_code),
                ("client_id", "someone-else"),
            ],
            None,
        )
        .await;
    assert_eq!(r.oauth_error(), E::InvalidClient);
}

#[tokio::test]
async fn pending_then_slow_down_raises_interval_by_five_seconds() {
    let app = TestApp::new().await;
    let d = app.start().await;
    assert_eq!(
        poll_error(&app, &d.device_code).await,
        E::AuthorizationPending
    );
    app.advance(2);
    assert_eq!(poll_error(&app, &d.device_code).await, E::SlowDown);
    // The interval is now 10 s: 6 s later is still too fast.
    app.advance(6);
    assert_eq!(poll_error(&app, &d.device_code).await, E::SlowDown);
    // ... and now 15 s.
    app.advance(15);
    assert_eq!(
        poll_error(&app, &d.device_code).await,
        E::AuthorizationPending
    );
}

#[tokio::test]
async fn expired_device_code_is_expired_token() {
    let app = TestApp::new().await;
    let d = app.start().await;
    app.advance(601);
    assert_eq!(poll_error(&app, &d.device_code).await, E::ExpiredToken);
    // The page refuses the expired code too.
    let (page, cookie) = app.browser("/device").await;
    let r = app.enter_code(&cookie, &page.csrf(), &d.user_code).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn denied_is_access_denied() {
    let app = TestApp::new().await;
    app.add_user("dana", &["dev"]).await;
    let d = app.start().await;
    let done = app.decide(&d.user_code, "dana", "deny").await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("denied"), "{}", done.body);
    app.advance(5);
    assert_eq!(poll_error(&app, &d.device_code).await, E::AccessDenied);
}

#[tokio::test]
async fn approved_device_code_yields_a_verifiable_token_once() {
    let app = TestApp::new().await;
    app.add_user("alice", &["dev", "ops"]).await;
    let d = app.start().await;
    // Lower case without the dash is accepted.
    let typed = d.user_code.replace('-', "").to_lowercase();
    let done = app.decide(&typed, "alice", "approve").await;
    assert!(done.body.contains("approved"), "{}", done.body);
    app.advance(5);
    let r = app.poll(&d.device_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let t: TokenResponse = r.json();
    assert_eq!((t.token_type.as_str(), t.expires_in), ("Bearer", 300));
    let jwks: Jwks = app.get("/openid/v1/jwks", None).await.json();
    let claims = crate::signing::verify(&jwks, &t.access_token).unwrap();
    assert_eq!(claims.iss, "https://issuer.test");
    assert_eq!(claims.aud, "kubernetes");
    assert_eq!(claims.preferred_username, "alice");
    assert_eq!(claims.groups, ["dev", "ops"]);
    assert_eq!(claims.email.as_deref(), Some("x@example.com"));
    assert_eq!(claims.exp - claims.iat, 300);
    assert!(claims.sub.starts_with("u-"));
    // Single use.
    app.advance(5);
    assert_eq!(poll_error(&app, &d.device_code).await, E::InvalidGrant);
    // The trail has the approval and the login.
    let events = app.events_for(&claims.sub).await;
    assert_eq!(events, ["device.approved", "login"]);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = TestApp::new().await;
    let t0 = logged_in(&app, "erin").await;
    app.advance(60);
    let r = app.refresh(&t0.refresh_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let t1: TokenResponse = r.json();
    assert_ne!(t1.refresh_token, t0.refresh_token);
    assert_ne!(t1.access_token, t0.access_token);
    // Replay of the spent token after the retry grace (10 s): refused, and the session dies.
    app.advance(11);
    let r = app.refresh(&t0.refresh_token).await;
    assert_eq!(r.oauth_error(), E::InvalidGrant);
    assert!(r.body.contains("revoked"), "{}", r.body);
    assert_refresh_refused(&app, &t1.refresh_token).await;
}

/// A client whose answer was lost presents the previous token again: within the grace it gets
/// the same successor (and a new access token); the session lives on. Once the successor was
/// used, or after the grace, the previous token is reuse again and ends the session.
#[tokio::test]
async fn a_retried_refresh_gets_the_same_successor_within_the_grace() {
    let app = TestApp::new().await;
    let t0 = logged_in(&app, "ruth").await;
    app.advance(60);
    let t1: TokenResponse = app.refresh(&t0.refresh_token).await.json();
    app.advance(3);
    let r = app.refresh(&t0.refresh_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let again: TokenResponse = r.json();
    assert_eq!(again.refresh_token, t1.refresh_token, "the same successor");
    assert!(!again.access_token.is_empty());
    assert_eq!(app.count_events("refresh.retried").await, 1);
    // The successor still works, and rotates.
    let t2: TokenResponse = app.refresh(&t1.refresh_token).await.json();
    assert_ne!(t2.refresh_token, t1.refresh_token);
    // The first token now is reuse (its successor was used): the session ends.
    let r = app.refresh(&t0.refresh_token).await;
    assert_eq!(r.oauth_error(), E::InvalidGrant, "{}", r.body);
    assert_refresh_refused(&app, &t2.refresh_token).await;

    // With the grace over, a retry is reuse too; so it is once the upkeep has forgotten the
    // sealed successor (which leaves the current token stored only as a hash again).
    let u0 = logged_in(&app, "saul").await;
    let u1: TokenResponse = app.refresh(&u0.refresh_token).await.json();
    app.advance(11);
    let now = app.clock.now_for_tests();
    let forgotten = app
        .state
        .store()
        .forget_successors(now - app.state.config().refresh_retry_grace)
        .await
        .unwrap();
    assert!(forgotten >= 1, "the upkeep forgot no successor");
    assert_refresh_refused(&app, &u0.refresh_token).await;
    assert_refresh_refused(&app, &u1.refresh_token).await;
}

/// `refresh_retry_grace = "0s"` turns the grace off: every second presentation is reuse.
#[tokio::test]
async fn no_retry_grace_means_every_second_presentation_is_reuse() {
    let app = TestApp::with(|f| f.refresh_retry_grace = Some("0s".into())).await;
    let t0 = logged_in(&app, "tess").await;
    let t1: TokenResponse = app.refresh(&t0.refresh_token).await.json();
    assert_refresh_refused(&app, &t0.refresh_token).await;
    assert_refresh_refused(&app, &t1.refresh_token).await;
}

#[tokio::test]
async fn refresh_fails_after_session_end_and_for_disabled_users() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "fred").await;
    crate::service::admin::disable_user(app.state.store(), "fred", app.clock.now_for_tests())
        .await
        .unwrap();
    assert_refresh_refused(&app, &t.refresh_token).await;

    let t = logged_in(&app, "gina").await;
    app.advance(12 * 3600);
    let r = app.refresh(&t.refresh_token).await;
    assert_eq!(r.oauth_error(), E::InvalidGrant);
    assert!(r.body.contains("expired"), "{}", r.body);
}

#[tokio::test]
async fn revoke_ends_the_session_and_never_reveals_token_validity() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "hank").await;
    let form = |tok: &'static str| vec![("token", tok), ("client_id", "kubectl-credential")];
    let r = app
        .post("/oauth/revoke", &form("unknown-token"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.revoke(&t.refresh_token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_refresh_refused(&app, &t.refresh_token).await;
}

#[tokio::test]
async fn tokens_carry_the_grants_in_force_at_minting() {
    use crate::domain::grants::{Grant, Grantee};
    let app = TestApp::with(|f| {
        f.roles = vec![crate::config::FileRole {
            name: "viewer".into(),
            cluster_role: Some("view".into()),
            ..crate::config::FileRole::default()
        }];
    })
    .await;
    let t0 = logged_in(&app, "jane").await;
    let jwks: Jwks = app.get("/openid/v1/jwks", None).await.json();
    let claims = crate::signing::verify(&jwks, &t0.access_token).unwrap();
    assert!(claims.grants.is_empty(), "{:?}", claims.grants);
    let now = app.clock.now_for_tests();
    let grant = |grantee: Grantee, namespaces: &[&str], minutes: i64| Grant {
        id: crate::service::admin::grant_id(),
        grantee,
        cluster: "default".into(),
        namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
        role: "viewer".into(),
        starts_at: now,
        ends_at: now + time::Duration::minutes(minutes),
        reason: None,
        created_by: "admin-cli".into(),
        approved_by: None,
        request_id: None,
        revoked_at: None,
        revoked_by: None,
    };
    let (store, config) = (app.state.store(), app.state.config());
    let add = |g: Grant| async move {
        crate::service::admin::add_grant(store, config, &g, now)
            .await
            .unwrap()
    };
    let mine = add(grant(Grantee::User("jane".into()), &["web"], 30)).await;
    let team = add(grant(Grantee::Group("dev".into()), &[], 90)).await;
    let other = add(grant(Grantee::Group("ops".into()), &[], 90)).await;
    app.advance(60);
    let t1: TokenResponse = app.refresh(&t0.refresh_token).await.json();
    let claims = crate::signing::verify(&jwks, &t1.access_token).unwrap();
    let mut want = vec![mine.id.clone(), team.id.clone()];
    want.sort();
    assert_eq!(claims.grants, want, "not {}", other.id);
    assert_eq!(claims.groups, ["dev", "grant:viewer", "grant:viewer:web"]);
    // Jane's own grant has ended an hour later; the team's is still in force.
    app.advance(3600);
    let t2: TokenResponse = app.refresh(&t1.refresh_token).await.json();
    let claims = crate::signing::verify(&jwks, &t2.access_token).unwrap();
    assert_eq!(claims.grants, [team.id]);
    assert_eq!(claims.groups, ["dev", "grant:viewer"]);
}

#[tokio::test]
async fn token_lifetime_is_capped_by_the_session() {
    let app = TestApp::with(|f| {
        f.token_ttl = Some("10m".into());
        f.session_ttl = Some("10m".into());
    })
    .await;
    let t0 = logged_in(&app, "ivan").await;
    assert_eq!(t0.expires_in, 600);
    app.advance(480);
    let t1: TokenResponse = app.refresh(&t0.refresh_token).await.json();
    assert_eq!(t1.expires_in, 120, "a token must not outlive its session");
}

#[tokio::test]
async fn pages_set_hardened_cookies_and_headers() {
    let app = TestApp::new().await;
    let r = app.get("/device?user_code=wdjb-mjht", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    for attr in [
        "__Host-credential-session=",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
    ] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(
        r.body.contains(r#"value="WDJB-MJHT""#),
        "prefilled code: {}",
        r.body
    );
    assert_eq!(r.headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(r.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(r.body.contains(r#"name="user_code""#));
    let login = app.get("/login", None).await;
    assert!(login.body.contains(r#"name="username""#) && login.body.contains(r#"name="password""#));
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let app = TestApp::new().await;
    let d = app.start().await;
    let (_, cookie) = app.browser("/device").await;
    let r = app
        .post("/device", &[("user_code", &d.user_code)], Some(&cookie))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.enter_code(&cookie, "forged", &d.user_code).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A token from another browser's session does not work with this cookie.
    let other = app.get("/device", None).await;
    let r = app.enter_code(&cookie, &other.csrf(), &d.user_code).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post(
            "/consent",
            &[("action", "approve"), ("csrf_token", "x")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn wrong_user_codes_are_rate_limited_per_address() {
    let app = TestApp::with(|f| {
        f.rate_limits = Some(crate::config::FileRateLimits {
            user_code_failures: Some(3),
            window: Some("60s".into()),
            ..Default::default()
        });
    })
    .await;
    let d = app.start().await;
    let (page, cookie) = app.browser("/device").await;
    let csrf = page.csrf();
    for _ in 0..3 {
        let r = app.enter_code(&cookie, &csrf, "BBBB-BBBB").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // Even the right code is refused while limited: guessing cannot continue.
    let r = app.enter_code(&cookie, &csrf, &d.user_code).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    app.advance(61);
    let r = app.enter_code(&cookie, &csrf, &d.user_code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_rate_limited() {
    let app = TestApp::new().await;
    app.add_user("jane", &[]).await;
    let (page, cookie) = app.browser("/login").await;
    let csrf = page.csrf();
    for _ in 0..5 {
        let r = app.sign_in_form(&cookie, &csrf, "jane", "guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body.contains("Wrong username or password"));
    }
    let r = app
        .sign_in_form(&cookie, &csrf, "jane", USER_PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Unknown accounts get the same answer as wrong passwords.
    let r = app.sign_in_form(&cookie, &csrf, "nobody", "x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn consent_page_names_cluster_client_and_origin() {
    let app = TestApp::new().await;
    app.add_user("kim", &[]).await;
    let d = app.start().await;
    let (_, r, _) = app
        .code_then_password(&d.user_code, "kim", USER_PASSWORD)
        .await;
    let cookie = r.cookie().unwrap();
    let consent = app.get("/consent", Some(&cookie)).await;
    for want in [
        "default",
        "kubectl-credential",
        "192.0.2.7",
        "2026-11-25 12:00:00 UTC",
        r#"name="action" value="approve""#,
        r#"name="action" value="deny""#,
    ] {
        assert!(
            consent.body.contains(want),
            "consent page lacks {want}: {}",
            consent.body
        );
    }
}

#[tokio::test]
async fn discovery_matches_what_kube_apiserver_needs() {
    let app = TestApp::new().await;
    let doc: credential_shared::oauth::DiscoveryDocument = app
        .get("/.well-known/openid-configuration", None)
        .await
        .json();
    assert_eq!(doc.issuer, "https://issuer.test");
    assert_eq!(doc.jwks_uri, "https://issuer.test/openid/v1/jwks");
    assert_eq!(doc.id_token_signing_alg_values_supported, ["ES256"]);
    assert_eq!(
        doc.device_authorization_endpoint.as_deref(),
        Some("https://issuer.test/oauth/device_authorization")
    );
    let jwks: Jwks = app.get("/openid/v1/jwks", None).await.json();
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(
        (jwks.keys[0].kty.as_str(), jwks.keys[0].alg.as_str()),
        ("EC", "ES256")
    );
    assert_eq!(app.get("/healthz", None).await.body, "ok");
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
    let clusters: credential_shared::api::ClusterList =
        app.get("/api/v1/clusters", None).await.json();
    assert_eq!(clusters.clusters[0].audience, "kubernetes");
}

#[tokio::test]
async fn no_secret_ever_reaches_the_log() {
    let logs = captured_logs();
    let app = TestApp::new().await;
    app.add_user("lena", &["dev"]).await;
    // A wrong password, a wrong code, a full login, a refresh, a replay and a logout.
    let (page, cookie) = app.browser("/login").await;
    app.sign_in_form(&cookie, &page.csrf(), "lena", "wrong-password-123")
        .await;
    let d = app.start().await;
    app.get(&format!("/device?user_code={}", d.user_code), None)
        .await;
    app.decide(&d.user_code, "lena", "approve").await;
    app.advance(5);
    let t: TokenResponse = app.poll(&d.device_code).await.json();
    let t2: TokenResponse = app.refresh(&t.refresh_token).await.json();
    app.refresh(&t.refresh_token).await;
    app.revoke(&t2.refresh_token).await;

    let text = logs.text();
    assert!(
        text.contains("device login completed"),
        "the flow was logged: {text}"
    );
    for secret in [
        d.device_code.as_str(),
        d.user_code.as_str(),
        &d.user_code.replace('-', ""),
        t.access_token.as_str(),
        t.refresh_token.as_str(),
        t2.access_token.as_str(),
        t2.refresh_token.as_str(),
        "correct horse battery",
        "wrong-password-123",
        page.csrf().as_str(),
        cookie.split('=').nth(1).unwrap(),
    ] {
        assert!(!text.contains(secret), "a secret reached the log: {secret}");
    }
}

#[tokio::test]
async fn metrics_count_logins_refreshes_and_failures() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "mona").await;
    app.refresh(&t.refresh_token).await;
    app.advance(11);
    app.refresh(&t.refresh_token).await; // reuse, after the retry grace
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK);
    for line in [
        "credential_issuer_device_authorizations_total 1",
        "credential_issuer_logins_total 1",
        "credential_issuer_refreshes_total 1",
        "credential_issuer_tokens_issued_total 2",
        "credential_issuer_failures_total{reason=\"refresh_reuse\"} 1",
    ] {
        assert!(r.body.contains(line), "missing {line:?} in\n{}", r.body);
    }
}

#[tokio::test]
async fn device_authorizations_are_limited_per_address() {
    let app = TestApp::with(|f| {
        f.rate_limits = Some(crate::config::FileRateLimits {
            device_authorizations: Some(3),
            window: Some("60s".into()),
            ..Default::default()
        });
    })
    .await;
    for _ in 0..3 {
        app.start().await;
    }
    let form = [("client_id", "kubectl-credential"), ("cluster", "default")];
    let r = app.post("/oauth/device_authorization", &form, None).await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (StatusCode::TOO_MANY_REQUESTS, E::SlowDown)
    );
    app.advance(61);
    let r = app.post("/oauth/device_authorization", &form, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn new_browser_sessions_are_limited_per_address() {
    let app = TestApp::with(|f| {
        f.rate_limits = Some(crate::config::FileRateLimits {
            device_authorizations: Some(2),
            window: Some("60s".into()),
            ..Default::default()
        });
    })
    .await;
    let first = app.get("/device", None).await;
    let cookie = first.cookie().unwrap();
    for _ in 0..3 {
        assert_eq!(app.get("/device", None).await.status, StatusCode::OK);
    }
    // Five cookie-less visits: the fifth new session is one too many.
    assert_eq!(
        app.get("/login", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A browser that already has a session is not affected.
    assert_eq!(
        app.get("/device", Some(&cookie)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_policy_maps_local_accounts_groups_into_the_token() {
    let app = TestApp::with(|f| {
        let rule = |group: &str, k: &[&str], deny: bool| crate::config::FileRule {
            group: group.into(),
            kubernetes_groups: k.iter().map(|s| (*s).to_owned()).collect(),
            clusters: None,
            deny,
        };
        f.policy = Some(crate::config::FilePolicy {
            rules: vec![
                rule("ops", &[], true),
                rule("k8s-*", &[], false),
                rule("dev", &["developers"], false),
            ],
        });
    })
    .await;
    app.add_user("alice", &["dev", "ops", "k8s-readers", "sales"])
        .await;
    let d = app.start().await;
    app.decide(&d.user_code, "alice", "approve").await;
    app.advance(5);
    let t: TokenResponse = app.poll(&d.device_code).await.json();
    let jwks: Jwks = app.get("/openid/v1/jwks", None).await.json();
    let claims = crate::signing::verify(&jwks, &t.access_token).unwrap();
    assert_eq!(claims.groups, ["developers", "k8s-readers"]);
}

#[tokio::test]
async fn upstream_pages_refuse_forged_foreign_and_unreachable_logins() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret");
    std::fs::write(&secret, "client-secret").unwrap();
    let app = TestApp::with(|f| {
        f.upstreams = vec![crate::config::FileUpstream {
            id: "corp".into(),
            name: Some("Corp SSO".into()),
            // The discard port: nothing answers there.
            issuer_url: "http://127.0.0.1:9".into(),
            client_id: "issuer".into(),
            client_secret_file: Some(secret.clone()),
            ..crate::config::FileUpstream::default()
        }];
    })
    .await;
    let (login, cookie) = app.browser("/login").await;
    assert!(
        login.body.contains(r#"action="/upstream/start""#)
            && login.body.contains(r#"name="provider" value="corp""#)
            && login.body.contains("Sign in with Corp SSO"),
        "{}",
        login.body
    );
    let csp = login.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9;"),
        "{csp}"
    );
    // Without the CSRF token: refused (no login CSRF through a cross-site POST).
    let r = app
        .post("/upstream/start", &[("provider", "corp")], Some(&cookie))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // The provider cannot be reached: a clear page, and nothing stored.
    let r = app
        .post(
            "/upstream/start",
            &[("provider", "corp"), ("csrf_token", &login.csrf())],
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(
        r.body
            .contains("cannot reach Corp SSO right now (connection refused)"),
        "{}",
        r.body
    );
    // A callback without the browser session, with a forged state, or with another
    // browser's state gets the same clear page; the foreign state is spent by the attempt.
    let r = app.get("/upstream/callback?state=s&code=c", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Session expired"), "{}", r.body);
    let r = app
        .get("/upstream/callback?state=forged&code=c", Some(&cookie))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Sign-in link not valid"), "{}", r.body);
    let now = app.clock.now_for_tests();
    let pending = crate::store::PendingLogin {
        state_hash: crate::secrets::secret::hash("other-browsers-state"),
        provider: "corp".into(),
        web_session_hash: crate::secrets::secret::hash("another browser"),
        nonce_sealed: "x".into(),
        verifier_sealed: "y".into(),
        expires_at: now + time::Duration::minutes(10),
    };
    app.state
        .store()
        .create_upstream_login(&pending, now)
        .await
        .unwrap();
    let r = app
        .get(
            "/upstream/callback?state=other-browsers-state&code=c",
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Sign-in link not valid"), "{}", r.body);
    assert!(app
        .state
        .store()
        .take_upstream_login(&pending.state_hash, now)
        .await
        .unwrap()
        .is_none());
}
