//! The ground every handler test stands on, kept in one place so that the test files say only
//! what they check: an app on a temporary store with a fake clock, requests sent with `oneshot`
//! and their replies read (status, body, cookie, CSRF token), accounts seeded, the device flow
//! and sign-in driven, the log captured and bursts of concurrent requests sent.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use credential_shared::oauth::{
    DeviceAuthorizationResponse, OAuthError, OAuthErrorCode as E, TokenResponse,
};
use http_body_util::BodyExt as _;
use time::macros::datetime;
use tokio::sync::Barrier;
use tower::ServiceExt as _;

use crate::clock::FakeClock;
use crate::config::{Config, FileConfig, Overrides};
use crate::secrets::secret::Secret;
use crate::service::state::AppState;

/// The password of every account `TestApp::add_user` makes.
pub(crate) const USER_PASSWORD: &str = "correct horse battery";

/// The router on a temporary store, with a fake clock set to a fixed instant.
pub(crate) struct TestApp {
    pub(crate) state: AppState,
    pub(crate) clock: FakeClock,
    _db: crate::store::test_support::TestDb,
}

/// A response, read whole.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn oauth_error(&self) -> E {
        serde_json::from_str::<OAuthError>(&self.body)
            .unwrap_or_else(|e| panic!("not an OAuth error ({e}): {} {}", self.status, self.body))
            .error
    }

    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {} {}", self.status, self.body))
    }

    pub(crate) fn cookie(&self) -> Option<String> {
        self.headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
    }

    pub(crate) fn csrf(&self) -> String {
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
    pub(crate) async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub(crate) async fn with(edit: impl FnOnce(&mut FileConfig)) -> Self {
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

    pub(crate) async fn send(&self, req: Request<Body>) -> Reply {
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

    pub(crate) async fn post(
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

    pub(crate) async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut b = Request::get(path);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// `body` posted to `path` as JSON.
    pub(crate) async fn post_json(&self, path: &str, body: impl Into<Body>) -> Reply {
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    /// A call of the issuer's JSON API, with `token` as the bearer token if there is one.
    pub(crate) async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(b.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    /// `path` opened in a new browser: the page and the session cookie it set.
    pub(crate) async fn browser(&self, path: &str) -> (Reply, String) {
        let page = self.get(path, None).await;
        let cookie = page.cookie().unwrap();
        (page, cookie)
    }

    /// The device page's form sent with `user_code` and `csrf`.
    pub(crate) async fn enter_code(&self, cookie: &str, csrf: &str, user_code: &str) -> Reply {
        self.post(
            "/device",
            &[("user_code", user_code), ("csrf_token", csrf)],
            Some(cookie),
        )
        .await
    }

    /// The sign-in form sent with `user`, `password` and `csrf`.
    pub(crate) async fn sign_in_form(
        &self,
        cookie: &str,
        csrf: &str,
        user: &str,
        password: &str,
    ) -> Reply {
        self.post(
            "/login",
            &[
                ("username", user),
                ("password", password),
                ("csrf_token", csrf),
            ],
            Some(cookie),
        )
        .await
    }

    /// The sign-in page of the browser holding `cookie`, then its form sent with `user` and
    /// `password`: the reply to the form.
    pub(crate) async fn sign_in(&self, cookie: &str, user: &str, password: &str) -> Reply {
        let login = self.get("/login", Some(cookie)).await;
        self.sign_in_form(cookie, &login.csrf(), user, password)
            .await
    }

    /// `user_code` entered and `user` signed in with `password` in a new browser: the replies
    /// to the code and to the password, and the cookie the browser had before signing in.
    pub(crate) async fn code_then_password(
        &self,
        user_code: &str,
        user: &str,
        password: &str,
    ) -> (Reply, Reply, String) {
        let (page, cookie) = self.browser("/device").await;
        let entered = self.enter_code(&cookie, &page.csrf(), user_code).await;
        assert_eq!(
            entered.headers[header::LOCATION],
            "/login",
            "{}",
            entered.body
        );
        let r = self.sign_in(&cookie, user, password).await;
        (entered, r, cookie)
    }

    /// The page at `path` of the browser holding `cookie`, whose form is sent with `fields` and
    /// the page's CSRF token.
    pub(crate) async fn fill_in(&self, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Reply {
        let page = self.get(path, Some(cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let csrf = page.csrf();
        let mut form = fields.to_vec();
        form.push(("csrf_token", &csrf));
        self.post(path, &form, Some(cookie)).await
    }

    /// The consent page of the browser holding `cookie`, answered with `action`.
    pub(crate) async fn answer_consent(&self, cookie: &str, action: &str) -> Reply {
        self.fill_in("/consent", cookie, &[("action", action)])
            .await
    }

    pub(crate) async fn start(&self) -> DeviceAuthorizationResponse {
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

    pub(crate) async fn poll(&self, device_code: &str) -> Reply {
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

    pub(crate) async fn refresh(&self, rt: &str) -> Reply {
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

    /// `token` revoked the way the plugin's logout does.
    pub(crate) async fn revoke(&self, token: &str) -> Reply {
        self.post(
            "/oauth/revoke",
            &[("token", token), ("client_id", "kubectl-credential")],
            None,
        )
        .await
    }

    pub(crate) async fn add_user(&self, name: &str, groups: &[&str]) {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        crate::service::admin::add_user(
            self.state.store(),
            name,
            &groups,
            Some("x@example.com"),
            &Secret::new(USER_PASSWORD),
            self.clock.now_for_tests(),
        )
        .await
        .unwrap();
    }

    /// Enters the code, signs in and presses `action`; returns the final page.
    pub(crate) async fn decide(&self, user_code: &str, user: &str, action: &str) -> Reply {
        let (entered, r, cookie) = self
            .code_then_password(user_code, user, USER_PASSWORD)
            .await;
        assert_eq!(entered.status, StatusCode::SEE_OTHER, "{}", entered.body);
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let cookie2 = r.cookie().expect("sign-in issues a new session cookie");
        assert_ne!(cookie, cookie2, "session id must change at sign-in");
        self.answer_consent(&cookie2, action).await
    }

    pub(crate) fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// The account called `name`, which must exist.
    pub(crate) async fn user(&self, name: &str) -> crate::store::User {
        self.state
            .store()
            .user_by_name(name)
            .await
            .unwrap()
            .unwrap()
    }

    /// The names of the audit events about `subject`, oldest first.
    pub(crate) async fn events_for(&self, subject: &str) -> Vec<String> {
        self.state.store().audit_events_for(subject).await.unwrap()
    }

    /// How many audit events named `event` the store holds.
    pub(crate) async fn count_events(&self, event: &str) -> usize {
        self.state.store().count_events(event).await.unwrap()
    }
}

impl FakeClock {
    pub(crate) fn now_for_tests(&self) -> time::OffsetDateTime {
        crate::clock::Clock::now(self)
    }
}

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Logs `user` (in `groups`) in through the device flow: the tokens.
pub(crate) async fn login(app: &TestApp, user: &str, groups: &[&str]) -> TokenResponse {
    app.add_user(user, groups).await;
    let d = app.start().await;
    app.decide(&d.user_code, user, "approve").await;
    app.advance(5);
    let r = app.poll(&d.device_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

/// Logs `user` (in `dev`) in through the device flow: the tokens.
pub(crate) async fn logged_in(app: &TestApp, user: &str) -> TokenResponse {
    login(app, user, &["dev"]).await
}

/// A code that differs from the right one.
pub(crate) fn wrong_code(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// Collects everything the issuer logs, at every level.
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(pub(crate) Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

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
pub(crate) fn captured_logs() -> &'static LogBuffer {
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

/// Sends `n` requests made by `request(app, i)` at once; returns the replies in order.
pub(crate) async fn burst<F, Fut>(app: &Arc<TestApp>, n: usize, request: F) -> Vec<Reply>
where
    F: Fn(Arc<TestApp>, usize) -> Fut,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let fut = request(Arc::clone(app), i);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut replies = Vec::with_capacity(n);
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    replies
}

/// How many replies have `status`.
pub(crate) fn count(replies: &[Reply], status: StatusCode) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

/// A refusal that tells the person when to come back.
pub(crate) fn says_when(r: &Reply) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let secs: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&secs), "Retry-After {secs}");
    assert!(
        r.body.contains("Try again in"),
        "no retry time in {}",
        r.body
    );
}
