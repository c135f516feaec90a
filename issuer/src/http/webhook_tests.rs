//! Handler tests of the token-review webhook: the router driven with `oneshot`, a fake clock and
//! a temporary database, tokens obtained through the real device flow.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credential_shared::oauth::AccessTokenClaims;
use credential_shared::token_review::TokenReviewResponse;

use super::test_support::{captured_logs, logged_in, TestApp};

const V1: &str = "authentication.k8s.io/v1";
const V1BETA1: &str = "authentication.k8s.io/v1beta1";
/// What kube-apiserver sends as `spec.audiences` with `--api-audiences` at its usual value.
const SA_AUDIENCE: &str = "https://kubernetes.default.svc";

fn body(version: &str, token: &str, audiences: &[&str]) -> String {
    serde_json::json!({
        "apiVersion": version,
        "kind": "TokenReview",
        "metadata": {"creationTimestamp": null},
        "spec": {"token": token, "audiences": audiences},
        "status": {"user": {}}
    })
    .to_string()
}

/// Reviews `token` at `/authenticate/default` the way a v1 API server asks.
async fn review(app: &TestApp, token: &str) -> TokenReviewResponse {
    review_at(app, "/authenticate/default", V1, token, &[SA_AUDIENCE]).await
}

async fn review_at(
    app: &TestApp,
    path: &str,
    version: &str,
    token: &str,
    audiences: &[&str],
) -> TokenReviewResponse {
    let r = app.post_json(path, body(version, token, audiences)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

#[track_caller]
fn assert_refused(r: &TokenReviewResponse, error: &str) {
    assert!(!r.status.authenticated, "expected a refusal: {r:?}");
    assert!(r.status.user.is_none(), "{r:?}");
    assert_eq!(r.status.error, error, "{r:?}");
}

/// The claims of `token` (signature not checked: the test made it).
fn claims_of(token: &str) -> AccessTokenClaims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `token`'s claims edited by `edit`, signed with the issuer's own key.
fn resigned(app: &TestApp, token: &str, edit: impl FnOnce(&mut AccessTokenClaims)) -> String {
    let mut c = claims_of(token);
    edit(&mut c);
    app.state.signer().sign(&c).unwrap()
}

#[tokio::test]
async fn valid_token_yields_the_oidc_identity_with_extra_fields() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "olga").await;
    let claims = claims_of(&t.access_token);
    let r = review(&app, &t.access_token).await;
    assert!(r.status.authenticated, "{r:?}");
    assert_eq!(r.api_version, V1);
    assert_eq!(r.kind, "TokenReview");
    let user = r.status.user.clone().unwrap();
    assert_eq!(user.username, "credential:olga");
    assert_eq!(user.uid, claims.sub);
    assert_eq!(user.groups, ["credential:dev"]);
    let extra: Vec<(&str, &[String])> = user
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(
        extra,
        [
            (
                "credential.kubectl.dev/client-id",
                &["kubectl-credential".to_owned()][..]
            ),
            (
                "credential.kubectl.dev/cluster",
                &["default".to_owned()][..]
            ),
            (
                "credential.kubectl.dev/session-id",
                &[claims.sid.unwrap()][..]
            ),
        ]
    );
    // The API server asked only for its service-account audience: no audience is claimed, so
    // it applies its own; asked for the token's audience, the answer names it.
    assert!(r.status.audiences.is_empty(), "{r:?}");
    let r = review_at(
        &app,
        "/authenticate/default",
        V1,
        &t.access_token,
        &[SA_AUDIENCE, "kubernetes"],
    )
    .await;
    assert_eq!(r.status.audiences, ["kubernetes"]);
}

#[tokio::test]
async fn v1beta1_is_answered_in_v1beta1() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "pavel").await;
    let r = review_at(&app, "/authenticate/default", V1BETA1, &t.access_token, &[]).await;
    assert!(r.status.authenticated, "{r:?}");
    assert_eq!(r.api_version, V1BETA1);
    assert_eq!(r.status.user.unwrap().username, "credential:pavel");
}

#[tokio::test]
async fn expired_token_is_refused() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "quinn").await;
    assert!(review(&app, &t.access_token).await.status.authenticated);
    // The default token lifetime is 5 minutes; at `exp` the token is over (and the verified
    // token cache does not keep it alive).
    app.advance(t.expires_in);
    assert_refused(&review(&app, &t.access_token).await, "token expired");
}

#[tokio::test]
async fn token_for_another_audience_or_cluster_is_refused() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "rosa").await;
    let other_aud = resigned(&app, &t.access_token, |c| c.aud = "staging".into());
    assert_refused(
        &review(&app, &other_aud).await,
        "token is for another cluster",
    );
    let other_cluster = resigned(&app, &t.access_token, |c| {
        c.cluster = Some("staging".into());
    });
    assert_refused(
        &review(&app, &other_cluster).await,
        "token is for another cluster",
    );

    // Without a cluster in the path the API server's audiences decide: its service-account
    // audience alone names no cluster, so the token is refused; listing "kubernetes" works.
    let r = review_at(&app, "/authenticate", V1, &t.access_token, &[SA_AUDIENCE]).await;
    assert_refused(&r, "token is for another cluster");
    let r = review_at(&app, "/authenticate", V1, &t.access_token, &[]).await;
    assert_refused(&r, "token is for another cluster");
    let r = review_at(&app, "/authenticate", V1, &t.access_token, &["kubernetes"]).await;
    assert!(r.status.authenticated, "{r:?}");
    assert_eq!(r.status.audiences, ["kubernetes"]);

    // A path naming a cluster the issuer does not know is the operator's mistake: 404.
    let r = app
        .post_json("/authenticate/nope", body(V1, &t.access_token, &[]))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(r.body.contains("unknown cluster \"nope\""), "{}", r.body);
}

#[tokio::test]
async fn token_from_another_issuer_is_refused() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "sven").await;
    let forged = resigned(&app, &t.access_token, |c| {
        c.iss = "https://evil.test".into();
    });
    assert_refused(&review(&app, &forged).await, "token is from another issuer");
}

#[tokio::test]
async fn bad_signatures_and_garbage_are_invalid_tokens() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "tara").await;
    // Someone promotes themselves: the payload changes, the signature no longer fits.
    let mut c = claims_of(&t.access_token);
    c.groups = vec!["admins".into()];
    let parts: Vec<&str> = t.access_token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_refused(&review(&app, &tampered).await, "invalid token");
    // Signed by a key this issuer never had.
    let dir = tempfile::tempdir().unwrap();
    let other = crate::signing::Signer::open(dir.path(), app.clock.now_for_tests()).unwrap();
    let foreign = other.sign(&claims_of(&t.access_token)).unwrap();
    assert_refused(&review(&app, &foreign).await, "invalid token");
    for garbage in ["x", "a.b.c", "Bearer abc"] {
        assert_refused(&review(&app, garbage).await, "invalid token");
    }
}

#[tokio::test]
async fn logout_is_seen_at_once_and_other_processes_revocations_within_the_cache_ttl() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "ulla").await;
    // Cached now.
    assert!(review(&app, &t.access_token).await.status.authenticated);
    let r = app.revoke(&t.refresh_token).await;
    assert_eq!(r.status, StatusCode::OK);
    // Same instant: the revocation invalidated the cached state in-process.
    assert_refused(&review(&app, &t.access_token).await, "session revoked");

    // A revocation written by another process (here: straight to the database) is not seen
    // while the cached state is younger than webhook_cache_ttl (5 s), and is seen after.
    let t = logged_in(&app, "ulla2").await;
    assert!(review(&app, &t.access_token).await.status.authenticated);
    let revoked = app
        .state
        .store()
        .revoke_by_refresh(
            &crate::secrets::secret::hash(&t.refresh_token),
            "test",
            app.clock.now_for_tests(),
        )
        .await
        .unwrap();
    assert!(revoked.is_some());
    app.advance(4);
    assert!(
        review(&app, &t.access_token).await.status.authenticated,
        "within the cache TTL the cached state answers (no database read)"
    );
    app.advance(1);
    assert_refused(&review(&app, &t.access_token).await, "session revoked");
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_session_for_the_webhook_too() {
    let app = TestApp::new().await;
    let t = logged_in(&app, "vera").await;
    assert!(review(&app, &t.access_token).await.status.authenticated);
    assert_eq!(app.refresh(&t.refresh_token).await.status, StatusCode::OK);
    // The spent refresh token again, after the retry grace: the session dies, and the
    // webhook knows at once.
    app.advance(11);
    assert_eq!(
        app.refresh(&t.refresh_token).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_refused(&review(&app, &t.access_token).await, "session revoked");
}

#[tokio::test]
async fn disabled_user_is_refused_within_the_cache_ttl() {
    let app = TestApp::with(|f| f.webhook_cache_ttl = Some("2s".into())).await;
    let t = logged_in(&app, "wanda").await;
    assert!(review(&app, &t.access_token).await.status.authenticated);
    // `credential-issuer user disable` runs in another process: this one learns it when its
    // cached state is older than the TTL.
    crate::service::admin::disable_user(app.state.store(), "wanda", app.clock.now_for_tests())
        .await
        .unwrap();
    app.advance(2);
    assert_refused(&review(&app, &t.access_token).await, "account disabled");
}

#[tokio::test]
async fn malformed_requests_are_400_with_a_reason_and_never_echo_the_token() {
    let app = TestApp::new().await;
    let secret_token = "eyJzZWNyZXQtdG9rZW4tdmFsdWU";
    for (body, want) in [
        ("not json".to_owned(), "not valid JSON"),
        (r#"{"apiVersion":"#.to_owned(), "truncated JSON"),
        (
            format!(
                r#"{{"apiVersion":"{V1}","kind":"TokenReview","spec":{{"token":"{secret_token}","audiences":"{secret_token}"}}}}"#
            ),
            "fields of the wrong type",
        ),
        (
            format!(r#"{{"apiVersion":{{"t":"{secret_token}"}},"kind":"TokenReview"}}"#),
            "fields of the wrong type",
        ),
        (
            body("authentication.k8s.io/v2", secret_token, &[]),
            "unsupported apiVersion \"authentication.k8s.io/v2\"",
        ),
        (
            body(V1, secret_token, &[]).replace("TokenReview", "SubjectAccessReview"),
            "kind must be TokenReview",
        ),
        (body(V1, "", &[]), "spec.token is empty"),
    ] {
        let r = app.post_json("/authenticate/default", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert!(
            r.body.contains(want),
            "{body}: want {want:?} in {:?}",
            r.body
        );
        assert!(
            !r.body.contains(secret_token),
            "the token was echoed: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_parsing() {
    let app = TestApp::new().await;
    let huge = body(V1, &"a".repeat(64 * 1024), &[]);
    let r = app.post_json("/authenticate/default", huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
}

#[tokio::test]
async fn metrics_count_reviews_by_result_and_the_log_never_has_the_token() {
    let logs = captured_logs();
    let app = TestApp::new().await;
    let t = logged_in(&app, "xena").await;
    review(&app, &t.access_token).await;
    review(&app, &t.access_token).await;
    review(&app, "garbage").await;
    app.post_json("/authenticate/default", "{").await;
    let text = app.get("/metrics", None).await.body;
    for line in [
        "credential_issuer_webhook_requests_total{result=\"authenticated\"} 2",
        "credential_issuer_webhook_requests_total{result=\"invalid_token\"} 1",
        "credential_issuer_webhook_requests_total{result=\"bad_request\"} 1",
        "credential_issuer_webhook_duration_seconds_count 4",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let logged = logs.text();
    assert!(
        logged.contains("/authenticate/{cluster}"),
        "the reviews were logged"
    );
    assert!(!logged.contains(&t.access_token), "a token reached the log");
}
