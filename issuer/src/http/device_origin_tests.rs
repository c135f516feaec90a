//! Device approvals that resist phishing (RFC 8628 section 5.4): the consent page says who is
//! asking, from where, since when and with which program; it warns when the code was requested
//! from another address than the approving browser's, and then approves only with an explicit
//! confirmation; `[device_flow] allowed_networks` refuses device authorizations from elsewhere.
//!
//! `TestApp` sends every request from 192.0.2.7; the requests from other addresses here are
//! sent through [`from`], which gives the router another peer address.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use credential_shared::oauth::{DeviceAuthorizationResponse, OAuthError, OAuthErrorCode as E};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::test_support::{enc, Reply, TestApp, USER_PASSWORD};
use crate::config::{Config, ConfigError, FileConfig, FileDeviceFlow, Overrides};
use crate::domain::user_code;
use crate::secrets::secret::hash;
use crate::store::Device;

/// The address every `TestApp` request comes from: the person's browser.
const BROWSER: &str = "192.0.2.7";

/// `req` sent from `peer` (`ADDRESS:PORT`).
async fn from(app: &TestApp, peer: &str, mut req: Request<Body>) -> Reply {
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    let res = crate::http::router(app.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

/// A device authorization from `peer` with `user_agent` as its raw `User-Agent` bytes.
async fn authorize_from(app: &TestApp, peer: &str, user_agent: Option<&[u8]>) -> Reply {
    let mut b = Request::post("/oauth/device_authorization")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(ua) = user_agent {
        b = b.header(
            header::USER_AGENT,
            header::HeaderValue::from_bytes(ua).unwrap(),
        );
    }
    let body = format!("client_id={}&cluster=default", enc("kubectl-credential"));
    from(app, peer, b.body(Body::from(body)).unwrap()).await
}

/// A flow started from `peer`: the codes.
async fn start_from(app: &TestApp, peer: &str, user_agent: &str) -> DeviceAuthorizationResponse {
    let r = authorize_from(app, peer, Some(user_agent.as_bytes())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

/// The stored authorization of `user_code`.
async fn device(app: &TestApp, user_code: &str) -> Device {
    let code = user_code::normalize(user_code).unwrap();
    app.state
        .store()
        .device_by_user_code_hash(&hash(&code))
        .await
        .unwrap()
        .unwrap()
}

/// `kim` enters `user_code` and signs in, in the browser at [`BROWSER`]: the consent page and
/// the browser's cookie.
async fn consent_of(app: &TestApp, user_code: &str) -> (Reply, String) {
    app.add_user("kim", &["dev"]).await;
    let (_, signed_in, _) = app
        .code_then_password(user_code, "kim", USER_PASSWORD)
        .await;
    let cookie = signed_in.cookie().unwrap();
    let consent = app.get("/consent", Some(&cookie)).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    (consent, cookie)
}

/// The consent form posted with `fields` and the page's CSRF token.
async fn submit(app: &TestApp, consent: &Reply, cookie: &str, fields: &[(&str, &str)]) -> Reply {
    let csrf = consent.csrf();
    let mut form = fields.to_vec();
    form.push(("csrf_token", &csrf));
    app.post("/consent", &form, Some(cookie)).await
}

fn has_warning(page: &str) -> bool {
    page.contains(r#"role="alert""#) || page.contains("confirm_origin")
}

#[tokio::test]
async fn the_device_row_keeps_the_requesting_address_user_agent_and_time() {
    let app = TestApp::new().await;
    let d = start_from(&app, "198.51.100.9:40000", "kubectl-credential/0.1 (linux)").await;
    let row = device(&app, &d.user_code).await;
    assert_eq!(row.client_addr, "198.51.100.9");
    assert_eq!(
        row.user_agent.as_deref(),
        Some("kubectl-credential/0.1 (linux)")
    );
    assert_eq!(row.created_at, app.clock.now_for_tests());
    // No User-Agent: none stored. A huge one: cut to 256 characters.
    let r = authorize_from(&app, "198.51.100.9:40001", None).await;
    let none: DeviceAuthorizationResponse = r.json();
    assert_eq!(device(&app, &none.user_code).await.user_agent, None);
    let long = "x".repeat(4000);
    let d = start_from(&app, "198.51.100.9:40002", &long).await;
    let kept = device(&app, &d.user_code).await.user_agent.unwrap();
    assert_eq!(kept, "x".repeat(256));
}

#[tokio::test]
async fn the_consent_page_shows_address_age_and_user_agent_escaped() {
    let app = TestApp::new().await;
    // Markup, a quote, a bidi override (sent as UTF-8 bytes, which HTTP carries as obs-text)
    // and bytes that are not UTF-8.
    let ua = "<script>alert(1)</script>\"' \u{202e}lmth.exe";
    let mut raw = ua.as_bytes().to_vec();
    raw.extend_from_slice(b" \xff");
    let r = authorize_from(&app, "198.51.100.9:40000", Some(&raw)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let d: DeviceAuthorizationResponse = r.json();
    app.advance(125);
    let (consent, _) = consent_of(&app, &d.user_code).await;
    let page = &consent.body;
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        !page.contains('\u{202e}'),
        "a bidi override reached the page raw"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;' \\u{202e}lmth.exe \u{fffd}"),
        "{page}"
    );
    for want in [
        "198.51.100.9",
        "2 minutes ago",
        "2026-11-25 12:00:00 UTC",
        "kubectl-credential",
        "default",
        "as you (groups dev)",
        "for up to 12h",
        "only approve a code you started yourself in your own terminal just now",
    ] {
        assert!(page.contains(want), "consent page lacks {want}: {page}");
    }
}

#[tokio::test]
async fn no_warning_when_the_browser_is_where_the_code_was_requested() {
    let app = TestApp::new().await;
    let d = app.start().await;
    app.advance(20);
    let (consent, cookie) = consent_of(&app, &d.user_code).await;
    assert!(!has_warning(&consent.body), "{}", consent.body);
    assert!(consent.body.contains("20 seconds ago"), "{}", consent.body);
    let done = submit(&app, &consent, &cookie, &[("action", "approve")]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Access approved"), "{}", done.body);
}

#[tokio::test]
async fn an_ipv4_mapped_address_is_the_same_address() {
    let app = TestApp::new().await;
    let d = start_from(&app, "[::ffff:192.0.2.7]:40000", "kubectl-credential/0.1").await;
    let (consent, cookie) = consent_of(&app, &d.user_code).await;
    assert!(!has_warning(&consent.body), "{}", consent.body);
    let done = submit(&app, &consent, &cookie, &[("action", "approve")]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
}

#[tokio::test]
async fn another_address_warns_and_approving_needs_the_confirmation() {
    let app = TestApp::new().await;
    let d = start_from(&app, "198.51.100.9:40000", "kubectl-credential/0.1").await;
    let (consent, cookie) = consent_of(&app, &d.user_code).await;
    let page = &consent.body;
    assert!(
        page.contains(r#"<div class="danger" role="alert" id="origin-warning">"#),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<strong>198.51.100.9</strong>, but this browser is at <strong>{BROWSER}</strong>"
        )),
        "{page}"
    );
    assert!(
        page.contains("approving would sign them in, as you"),
        "{page}"
    );
    assert!(
        page.contains(r#"<input type="checkbox" name="confirm_origin" value="yes">"#),
        "{page}"
    );
    // Approve without the box ticked, or with another value: the page again, with the error,
    // and nothing decided.
    for fields in [
        vec![("action", "approve")],
        vec![("action", "approve"), ("confirm_origin", "")],
        vec![("action", "approve"), ("confirm_origin", "on")],
        vec![("action", "approve"), ("confirm_origin", "YES")],
    ] {
        let again = submit(&app, &consent, &cookie, &fields).await;
        assert_eq!(
            again.status,
            StatusCode::BAD_REQUEST,
            "{fields:?}: {}",
            again.body
        );
        assert!(
            again
                .body
                .contains("This code was requested from 198.51.100.9, not from this browser"),
            "{}",
            again.body
        );
        assert!(again.body.contains("origin-warning"), "{}", again.body);
        // Past the poll interval, so that the poll is answered in time.
        app.advance(6);
        assert_eq!(
            app.poll(&d.device_code).await.oauth_error(),
            E::AuthorizationPending,
            "{fields:?} decided the request"
        );
    }
    // A form without the CSRF token is refused as before, box or not.
    let forged = app
        .post(
            "/consent",
            &[("action", "approve"), ("confirm_origin", "yes")],
            Some(&cookie),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    let done = submit(
        &app,
        &consent,
        &cookie,
        &[("action", "approve"), ("confirm_origin", "yes")],
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Access approved"), "{}", done.body);
    app.advance(5);
    let r = app.poll(&d.device_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.count_events("device.approved").await, 1);
}

#[tokio::test]
async fn denying_a_code_from_another_address_needs_no_confirmation() {
    let app = TestApp::new().await;
    let d = start_from(&app, "198.51.100.9:40000", "kubectl-credential/0.1").await;
    let (consent, cookie) = consent_of(&app, &d.user_code).await;
    let done = submit(&app, &consent, &cookie, &[("action", "deny")]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Access denied"), "{}", done.body);
    app.advance(5);
    assert_eq!(
        app.poll(&d.device_code).await.oauth_error(),
        E::AccessDenied
    );
}

fn networks(list: &[&str]) -> impl FnOnce(&mut FileConfig) + use<> {
    let allowed_networks: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    move |f: &mut FileConfig| {
        f.device_flow = Some(FileDeviceFlow { allowed_networks });
    }
}

#[tokio::test]
async fn allowed_networks_refuse_device_authorization_from_elsewhere() {
    let app = TestApp::with(networks(&[
        "10.0.0.0/8",
        "198.51.100.0/24",
        "2001:db8::/32",
    ]))
    .await;
    let r = authorize_from(&app, "192.0.2.7:40000", Some(b"kubectl-credential/0.1")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let e: OAuthError = r.json();
    assert_eq!(e.error, E::UnauthorizedClient);
    let says = e.error_description.unwrap_or_default();
    assert!(
        says.contains("device sign-in is not allowed from this network (192.0.2.7)")
            && says.contains("VPN")
            && says.contains("allowed_networks"),
        "{says}"
    );
    assert_eq!(app.count_events("device.refused.network").await, 1);
    for peer in [
        "198.51.100.9:40000",
        "10.1.2.3:40000",
        "[::ffff:10.1.2.3]:40000",
        "[2001:db8::7]:40000",
    ] {
        let r = authorize_from(&app, peer, None).await;
        assert_eq!(r.status, StatusCode::OK, "{peer}: {}", r.body);
    }
    for peer in [
        "[::ffff:192.0.2.7]:40000",
        "[2001:db9::7]:40000",
        "11.0.0.1:1",
    ] {
        let r = authorize_from(&app, peer, None).await;
        assert_eq!(r.oauth_error(), E::UnauthorizedClient, "{peer}");
    }
    // The pages and the token endpoint are not what the list guards.
    assert_eq!(app.get("/device", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refusals_from_outside_count_against_the_flood_limit() {
    let app = TestApp::with(|f| {
        networks(&["10.0.0.0/8"])(f);
        f.rate_limits = Some(crate::config::FileRateLimits {
            device_authorizations: Some(3),
            ..Default::default()
        });
    })
    .await;
    for _ in 0..3 {
        let r = authorize_from(&app, "192.0.2.7:1", None).await;
        assert_eq!(r.oauth_error(), E::UnauthorizedClient);
    }
    let r = authorize_from(&app, "192.0.2.7:1", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(app.count_events("device.refused.network").await, 3);
}

/// The configuration built from `toml`, as the server would load it.
fn config(toml: &str) -> Result<Config, ConfigError> {
    let file: FileConfig = toml::from_str(toml).map_err(|e| ConfigError::Parse {
        path: "test.toml".into(),
        message: e.to_string(),
    })?;
    let o = Overrides {
        data_dir: Some("/nonexistent/test".into()),
        issuer_url: Some("https://issuer.test".into()),
        ..Overrides::default()
    };
    Config::from_parts(file, &o, || None)
}

#[test]
fn allowed_networks_are_checked_at_start_naming_the_bad_entry() {
    let ok = config("[device_flow]\nallowed_networks = [\"10.0.0.0/8\", \"192.168.0.0/16\", \"127.0.0.1/32\", \"::1\"]\n")
        .unwrap();
    assert_eq!(ok.device_allowed_networks.0.len(), 4);
    assert!(config("").unwrap().device_allowed_networks.0.is_empty());
    assert!(config("[device_flow]\n")
        .unwrap()
        .device_allowed_networks
        .0
        .is_empty());
    for (toml, field, says) in [
        (
            "[device_flow]\nallowed_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
            "device_flow.allowed_networks[1]",
            "at most 32",
        ),
        (
            "[device_flow]\nallowed_networks = [\"corp.example\"]\n",
            "device_flow.allowed_networks[0]",
            "`corp.example` is not a network",
        ),
        (
            "[device_flow]\nallowed_networks = [\"10.1.2.3/8\"]\n",
            "device_flow.allowed_networks[0]",
            "the network is `10.0.0.0/8`",
        ),
        (
            "[device_flow]\nallowed_networks = [\"\"]\n",
            "device_flow.allowed_networks[0]",
            "is not a network",
        ),
    ] {
        match config(toml) {
            Err(ConfigError::Invalid { field: f, message }) => {
                assert_eq!(f, field, "{toml}");
                assert!(message.contains(says), "{toml}: {message}");
            }
            other => panic!("{toml}: {other:?}"),
        }
    }
    for bad in [
        "[device_flow]\nallowed_network = []\n",
        "[device_flow]\nallowed_networks = \"10.0.0.0/8\"\n",
        "[device_flow]\nallowed_networks = [8]\n",
    ] {
        assert!(
            matches!(config(bad), Err(ConfigError::Parse { .. })),
            "{bad} parsed"
        );
    }
}
