//! Handler tests: the router driven in-process with `oneshot` (no socket), a fake clock and a
//! temporary database. Every RFC 8628 error path is here.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use credential_shared::oauth::{
    DeviceAuthorizationResponse, Jwks, OAuthError, OAuthErrorCode as E, TokenResponse,
};
use http_body_util::BodyExt as _;
use time::macros::datetime;
use tower::ServiceExt as _;

use crate::clock::FakeClock;
use crate::config::{Config, FileConfig, Overrides};
use crate::secrets::secret::Secret;
use crate::service::state::AppState;

pub(super) struct TestApp {
    pub(super) state: AppState,
    pub(super) clock: FakeClock,
    _db: crate::store::test_support::TestDb,
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: axum::http::HeaderMap,
    pub(super) body: String,
}

impl Reply {
    pub(super) fn oauth_error(&self) -> E {
        serde_json::from_str::<OAuthError>(&self.body)
            .unwrap_or_else(|e| panic!("not an OAuth error ({e}): {} {}", self.status, self.body))
            .error
    }

    pub(super) fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {} {}", self.status, self.body))
    }

    pub(super) fn cookie(&self) -> Option<String> {
        self.headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
    }

    pub(super) fn csrf(&self) -> String {
        let marker = r#"name="csrf_token" value=""#;
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf in {}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

impl TestApp {
    pub(super) async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub(super) async fn with(edit: impl FnOnce(&mut FileConfig)) -> Self {
        let (store, db) = crate::store::test_support::temp_store().await;
        let mut file = FileConfig::default();
        edit(&mut file);
        let o = Overrides {
            data_dir: Some(db.path().to_owned()),
            issuer_url: Some("https://issuer.test".into()),
            ..Overrides::default()
        };
        let config = Config::from_parts(file, &o, || None).unwrap();
        let clock = FakeClock::new(datetime!(2026-11-25 12:00 UTC));
        let state = AppState::with_store(config, store, Arc::new(clock.clone()))
            .await
            .unwrap();
        Self {
            state,
            clock,
            _db: db,
        }
    }

    pub(super) async fn send(&self, req: Request<Body>) -> Reply {
        let mut req = req;
        req.extensions_mut()
            .insert(ConnectInfo("192.0.2.7:5555".parse::<SocketAddr>().unwrap()));
        let res = crate::http::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
            .unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(super) async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        cookie: Option<&str>,
    ) -> Reply {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut b =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    pub(super) async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut b = Request::get(path);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    pub(super) async fn start(&self) -> DeviceAuthorizationResponse {
        let r = self
            .post(
                "/oauth/device_authorization",
                &[("client_id", "kubectl-credential"), ("cluster", "default")],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()
    }

    pub(super) async fn poll(&self, device_code: &str) -> Reply {
        self.post(
            "/oauth/token",
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
                ("client_id", "kubectl-credential"),
            ],
            None,
        )
        .await
    }

    pub(super) async fn refresh(&self, rt: &str) -> Reply {
        self.post(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", "kubectl-credential"),
            ],
            None,
        )
        .await
    }

    pub(super) async fn add_user(&self, name: &str, groups: &[&str]) {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        crate::service::admin::add_user(
            self.state.store(),
            name,
            &groups,
            Some("x@example.com"),
            &Secret::new("correct horse battery"),
            self.clock.now_for_tests(),
        )
        .await
        .unwrap();
    }

    /// Enters the code, signs in and presses `action`; returns the final page.
    pub(super) async fn decide(&self, user_code: &str, user: &str, action: &str) -> Reply {
        let page = self.get("/device", None).await;
        let cookie = page.cookie().unwrap();
        let r = self
            .post(
                "/device",
                &[("user_code", user_code), ("csrf_token", &page.csrf())],
                Some(&cookie),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.headers[header::LOCATION], "/login");
        let login = self.get("/login", Some(&cookie)).await;
        let r = self
            .post(
                "/login",
                &[
                    ("username", user),
                    ("password", "correct horse battery"),
                    ("csrf_token", &login.csrf()),
                ],
                Some(&cookie),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let cookie2 = r.cookie().expect("sign-in issues a new session cookie");
        assert_ne!(cookie, cookie2, "session id must change at sign-in");
        let consent = self.get("/consent", Some(&cookie2)).await;
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
        self.post(
            "/consent",
            &[("action", action), ("csrf_token", &consent.csrf())],
            Some(&cookie2),
        )
        .await
    }

    pub(super) fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

impl FakeClock {
    pub(super) fn now_for_tests(&self) -> time::OffsetDateTime {
        crate::clock::Clock::now(self)
    }
}

pub(super) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
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

#[tokio::test]
async fn device_authorization_rejects_bad_requests() {
    let app = TestApp::new().await;
    let check = |form: Vec<(&'static str, &'static str)>, status: StatusCode, code: E| {
        let app = &app;
        async move {
            let r = app.post("/oauth/device_authorization", &form, None).await;
            assert_eq!(
                (r.status, r.oauth_error()),
                (status, code),
                "{form:?}: {}",
                r.body
            );
            assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
        }
    };
    check(
        vec![("cluster", "default")],
        StatusCode::BAD_REQUEST,
        E::InvalidRequest,
    )
    .await;
    check(
        vec![("client_id", "evil"), ("cluster", "default")],
        StatusCode::UNAUTHORIZED,
        E::InvalidClient,
    )
    .await;
    check(
        vec![("client_id", "kubectl-credential")],
        StatusCode::BAD_REQUEST,
        E::InvalidRequest,
    )
    .await;
    check(
        vec![("client_id", "kubectl-credential"), ("cluster", "nope")],
        StatusCode::BAD_REQUEST,
        E::InvalidScope,
    )
    .await;
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
        app.poll(&d.device_code).await.oauth_error(),
        E::AuthorizationPending
    );
    app.advance(2);
    assert_eq!(app.poll(&d.device_code).await.oauth_error(), E::SlowDown);
    // The interval is now 10 s: 6 s later is still too fast.
    app.advance(6);
    assert_eq!(app.poll(&d.device_code).await.oauth_error(), E::SlowDown);
    // ... and now 15 s.
    app.advance(15);
    assert_eq!(
        app.poll(&d.device_code).await.oauth_error(),
        E::AuthorizationPending
    );
}

#[tokio::test]
async fn expired_device_code_is_expired_token() {
    let app = TestApp::new().await;
    let d = app.start().await;
    app.advance(601);
    assert_eq!(
        app.poll(&d.device_code).await.oauth_error(),
        E::ExpiredToken
    );
    // The page refuses the expired code too.
    let page = app.get("/device", None).await;
    let cookie = page.cookie().unwrap();
    let r = app
        .post(
            "/device",
            &[("user_code", &d.user_code), ("csrf_token", &page.csrf())],
            Some(&cookie),
        )
        .await;
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
    assert_eq!(
        app.poll(&d.device_code).await.oauth_error(),
        E::AccessDenied
    );
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
    assert_eq!(
        app.poll(&d.device_code).await.oauth_error(),
        E::InvalidGrant
    );
    // The trail has the approval and the login.
    let events = app
        .state
        .store()
        .audit_events_for(&claims.sub)
        .await
        .unwrap();
    assert_eq!(events, ["device.approved", "login"]);
}

pub(super) async fn logged_in(app: &TestApp, user: &str) -> TokenResponse {
    app.add_user(user, &["dev"]).await;
    let d = app.start().await;
    app.decide(&d.user_code, user, "approve").await;
    app.advance(5);
    let r = app.poll(&d.device_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
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
    assert_eq!(
        app.refresh(&t1.refresh_token).await.oauth_error(),
        E::InvalidGrant
    );
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
    let events = app
        .state
        .store()
        .count_events("refresh.retried")
        .await
        .unwrap();
    assert_eq!(events, 1);
    // The successor still works, and rotates.
    let t2: TokenResponse = app.refresh(&t1.refresh_token).await.json();
    assert_ne!(t2.refresh_token, t1.refresh_token);
    // The first token now is reuse (its successor was used): the session ends.
    let r = app.refresh(&t0.refresh_token).await;
    assert_eq!(r.oauth_error(), E::InvalidGrant, "{}", r.body);
    assert_eq!(
        app.refresh(&t2.refresh_token).await.oauth_error(),
        E::InvalidGrant
    );

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
    assert_eq!(
        app.refresh(&u0.refresh_token).await.oauth_error(),
        E::InvalidGrant
    );
    assert_eq!(
        app.refresh(&u1.refresh_token).await.oauth_error(),
        E::InvalidGrant
    );
}

/// `refresh_retry_grace = "0s"` turns the grace off: every second presentation is reuse.
#[tokio::test]
async fn no_retry_grace_means_every_second_presentation_is_reuse() {
    let app = TestApp::with(|f| f.refresh_retry_grace = Some("0s".into())).await;
    let t0 = logged_in(&app, "tess").await;
    let t1: TokenResponse = app.refresh(&t0.refresh_token).await.json();
    assert_eq!(
        app.refresh(&t0.refresh_token).await.oauth_error(),
        E::InvalidGrant
    );
    assert_eq!(
        app.refresh(&t1.refresh_token).await.oauth_error(),
        E::InvalidGrant
    );
}

#[tokio::test]
async fn refresh_fails_after_session_end_and_for_disabled_users() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "fred").await;
    crate::service::admin::disable_user(app.state.store(), "fred", app.clock.now_for_tests())
        .await
        .unwrap();
    assert_eq!(
        app.refresh(&t.refresh_token).await.oauth_error(),
        E::InvalidGrant
    );

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
    let r = app
        .post(
            "/oauth/revoke",
            &[
                ("token", &t.refresh_token),
                ("client_id", "kubectl-credential"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.refresh(&t.refresh_token).await.oauth_error(),
        E::InvalidGrant
    );
}

#[tokio::test]
async fn tokens_carry_the_grants_in_force_at_minting() {
    use crate::domain::grants::{Grantee, NewGrant};
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
    let grant = |grantee: Grantee, namespaces: &[&str], minutes: i64| NewGrant {
        grantee,
        cluster: "default".into(),
        namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
        role: "viewer".into(),
        starts_at: now,
        ends_at: now + time::Duration::minutes(minutes),
        reason: None,
        approved_by: None,
        request_id: None,
    };
    let (store, config) = (app.state.store(), app.state.config());
    let mine = crate::service::admin::add_grant(
        store,
        config,
        &grant(Grantee::User("jane".into()), &["web"], 30),
        "admin-cli",
        now,
    )
    .await
    .unwrap();
    let team = crate::service::admin::add_grant(
        store,
        config,
        &grant(Grantee::Group("dev".into()), &[], 90),
        "admin-cli",
        now,
    )
    .await
    .unwrap();
    let other = crate::service::admin::add_grant(
        store,
        config,
        &grant(Grantee::Group("ops".into()), &[], 90),
        "admin-cli",
        now,
    )
    .await
    .unwrap();
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
    let page = app.get("/device", None).await;
    let cookie = page.cookie().unwrap();
    let r = app
        .post("/device", &[("user_code", &d.user_code)], Some(&cookie))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post(
            "/device",
            &[("user_code", &d.user_code), ("csrf_token", "forged")],
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A token from another browser's session does not work with this cookie.
    let other = app.get("/device", None).await;
    let r = app
        .post(
            "/device",
            &[("user_code", &d.user_code), ("csrf_token", &other.csrf())],
            Some(&cookie),
        )
        .await;
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
    let page = app.get("/device", None).await;
    let cookie = page.cookie().unwrap();
    let csrf = page.csrf();
    for _ in 0..3 {
        let r = app
            .post(
                "/device",
                &[("user_code", "BBBB-BBBB"), ("csrf_token", &csrf)],
                Some(&cookie),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // Even the right code is refused while limited: guessing cannot continue.
    let r = app
        .post(
            "/device",
            &[("user_code", &d.user_code), ("csrf_token", &csrf)],
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    app.advance(61);
    let r = app
        .post(
            "/device",
            &[("user_code", &d.user_code), ("csrf_token", &csrf)],
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_rate_limited() {
    let app = TestApp::new().await;
    app.add_user("jane", &[]).await;
    let page = app.get("/login", None).await;
    let cookie = page.cookie().unwrap();
    let csrf = page.csrf();
    for _ in 0..5 {
        let r = app
            .post(
                "/login",
                &[
                    ("username", "jane"),
                    ("password", "guess"),
                    ("csrf_token", &csrf),
                ],
                Some(&cookie),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body.contains("Wrong username or password"));
    }
    let r = app
        .post(
            "/login",
            &[
                ("username", "jane"),
                ("password", "correct horse battery"),
                ("csrf_token", &csrf),
            ],
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Unknown accounts get the same answer as wrong passwords.
    let r = app
        .post(
            "/login",
            &[
                ("username", "nobody"),
                ("password", "x"),
                ("csrf_token", &csrf),
            ],
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn consent_page_names_cluster_client_and_origin() {
    let app = TestApp::new().await;
    app.add_user("kim", &[]).await;
    let d = app.start().await;
    let page = app.get("/device", None).await;
    let cookie = page.cookie().unwrap();
    app.post(
        "/device",
        &[("user_code", &d.user_code), ("csrf_token", &page.csrf())],
        Some(&cookie),
    )
    .await;
    let login = app.get("/login", Some(&cookie)).await;
    let r = app
        .post(
            "/login",
            &[
                ("username", "kim"),
                ("password", "correct horse battery"),
                ("csrf_token", &login.csrf()),
            ],
            Some(&cookie),
        )
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

/// Collects everything the issuer logs, at every level.
#[derive(Clone, Default)]
pub(super) struct LogBuffer(pub(super) Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every log line of this test binary, from a global subscriber at TRACE level. (A scoped,
/// thread-local subscriber would miss events: tracing caches per-callsite interest globally, and
/// tests running in parallel without a subscriber would turn callsites off.)
pub(super) fn captured_logs() -> &'static LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

#[tokio::test]
async fn no_secret_ever_reaches_the_log() {
    let logs = captured_logs();
    let app = TestApp::new().await;
    app.add_user("lena", &["dev"]).await;
    // A wrong password, a wrong code, a full login, a refresh, a replay and a logout.
    let page = app.get("/login", None).await;
    let cookie = page.cookie().unwrap();
    app.post(
        "/login",
        &[
            ("username", "lena"),
            ("password", "wrong-password-123"),
            ("csrf_token", &page.csrf()),
        ],
        Some(&cookie),
    )
    .await;
    let d = app.start().await;
    app.get(&format!("/device?user_code={}", d.user_code), None)
        .await;
    app.decide(&d.user_code, "lena", "approve").await;
    app.advance(5);
    let t: TokenResponse = app.poll(&d.device_code).await.json();
    let t2: TokenResponse = app.refresh(&t.refresh_token).await.json();
    app.refresh(&t.refresh_token).await;
    app.post(
        "/oauth/revoke",
        &[
            ("token", &t2.refresh_token),
            ("client_id", "kubectl-credential"),
        ],
        None,
    )
    .await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
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
    let login = app.get("/login", None).await;
    let cookie = login.cookie().unwrap();
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
