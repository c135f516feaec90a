//! Handler tests of the machine grants: token exchange of a CI platform's token (a local
//! discovery and JWKS server on port 0 plays the platform, signing ES256 with a key made here)
//! and client credentials with a machine's signed assertion; refusals by name, replay under a
//! burst, and revocation reaching the webhook.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credential_shared::oauth::{AccessTokenClaims, OAuthErrorCode as E, TokenResponse};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::test_support::{burst, captured_logs, count, Reply, TestApp};
use crate::config::{FileClaimValue, FileWorkload};

/// The CI platform: an ES256 key and a server for its discovery document and JWKS.
struct Platform {
    url: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

fn new_key(rng: &SystemRandom) -> EcdsaKeyPair {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng).unwrap()
}

impl Platform {
    async fn start() -> Self {
        let rng = SystemRandom::new();
        let key = new_key(&rng);
        let point = key.public_key().as_ref().to_vec();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "ci-1", "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }]});
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/keys")});
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/keys",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, key, rng }
    }

    fn sign_with(&self, key: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
        let mut t = URL_SAFE_NO_PAD.encode(header.to_string());
        t.push('.');
        t.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = key.sign(&self.rng, t.as_bytes()).unwrap();
        t.push('.');
        t.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        t
    }

    /// A job's token: GitHub's claims, edited by `change`.
    fn token(&self, app: &TestApp, change: &Value) -> String {
        let now = app.clock.now_for_tests().unix_timestamp();
        let mut c = json!({
            "iss": self.url, "aud": "https://issuer.test", "sub": "repo:acme/deploy:environment:production",
            "repository": "acme/deploy", "ref": "refs/heads/main", "environment": "production",
            "run_id": "1234", "actor": "octocat", "sha": "abc123",
            "iat": now, "nbf": now, "exp": now + 300,
            "jti": crate::secrets::secret::random_token(12).expose(),
        });
        for (k, v) in change.as_object().unwrap() {
            c[k] = v.clone();
        }
        self.sign_with(
            &self.key,
            &json!({"alg": "ES256", "kid": "ci-1", "typ": "JWT"}),
            &c,
        )
    }
}

fn rule(platform: &Platform) -> FileWorkload {
    let one = |s: &str| FileClaimValue::One(s.to_owned());
    FileWorkload {
        name: "deploy-production".into(),
        issuer: platform.url.clone(),
        audience: "https://issuer.test".into(),
        identity: "ci:github:{repository}:{environment}".into(),
        groups: vec!["deployers".into()],
        clusters: vec!["default".into()],
        claims: [
            ("repository".to_owned(), one("acme/deploy")),
            ("ref".to_owned(), one("refs/heads/main")),
            ("environment".to_owned(), one("production")),
        ]
        .into_iter()
        .collect(),
        ..FileWorkload::default()
    }
}

async fn setup() -> (Arc<TestApp>, Platform) {
    let platform = Platform::start().await;
    let w = rule(&platform);
    let app = TestApp::with(|f| f.workloads = vec![w]).await;
    (Arc::new(app), platform)
}

async fn exchange(app: &TestApp, token: &str) -> Reply {
    app.post(
        "/oauth/token",
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", token),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("audience", "default"),
        ],
        None,
    )
    .await
}

fn claims_of(token: &str) -> AccessTokenClaims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_matching_job_gets_a_short_token_for_its_cluster_and_an_audit_row() {
    let (app, ci) = setup().await;
    let r = exchange(&app, &ci.token(&app, &json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    let t: TokenResponse = r.json();
    assert_eq!(t.expires_in, 300);
    let c = claims_of(&t.access_token);
    assert_eq!(c.preferred_username, "ci:github:acme/deploy:production");
    assert_eq!(c.groups, ["deployers"]);
    assert_eq!(c.cluster.as_deref(), Some("default"));
    let rows = app.events_for(&c.sub).await;
    assert!(rows.iter().any(|e| e == "exchange"), "{rows:?}");
    let filter = crate::store::AuditFilter {
        event: Some("exchange".into()),
        ..crate::store::AuditFilter::default()
    };
    let rows = app.state.store().audit_page(0, 10, &filter).await.unwrap();
    assert_eq!(rows.len(), 1, "one exchange row");
    let row = &rows[0].facts;
    assert_eq!(
        row.actor.as_deref(),
        Some("ci:github:acme/deploy:production")
    );
    let detail = row.detail.clone().unwrap();
    assert!(
        detail.contains("\"workload\":\"deploy-production\""),
        "{detail}"
    );
    for fact in [
        "\"run_id\":\"1234\"",
        "\"actor\":\"octocat\"",
        "\"sha\":\"abc123\"",
    ] {
        assert!(detail.contains(fact), "{detail}");
    }
}

/// Each refusal names its check, and none echoes the token.
#[tokio::test]
async fn every_bad_token_is_refused_by_name() {
    let (app, ci) = setup().await;
    let now = app.clock.now_for_tests().unix_timestamp();
    let other = new_key(&ci.rng);
    let good = ci.token(&app, &json!({}));
    let unknown_key = {
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(good.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        ci.sign_with(&other, &json!({"alg": "ES256", "kid": "ci-2"}), &claims)
    };
    let alg_none = {
        let mut parts: Vec<&str> = good.split('.').collect();
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        parts[0] = &h;
        format!("{}.{}.", parts[0], parts[1])
    };
    let hs256 = {
        let payload = good.split('.').nth(1).unwrap();
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"ci-1"}"#);
        let input = format!("{h}.{payload}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"{\"keys\":[]}");
        let tag = ring::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let cases: Vec<(String, E, &str)> = vec![
        (
            ci.token(&app, &json!({"repository": "evil/deploy"})),
            E::InvalidGrant,
            "\"repository\" does not match",
        ),
        (
            ci.token(&app, &json!({"ref": "refs/heads/feature"})),
            E::InvalidGrant,
            "\"ref\" does not match",
        ),
        (
            ci.token(&app, &json!({"environment": "staging"})),
            E::InvalidGrant,
            "\"environment\" does not match",
        ),
        (
            ci.token(&app, &json!({"aud": "https://elsewhere"})),
            E::InvalidGrant,
            "audience",
        ),
        (
            ci.token(&app, &json!({"exp": now - 120, "iat": now - 600})),
            E::InvalidGrant,
            "expired",
        ),
        (
            ci.token(&app, &json!({"iat": now - 7200})),
            E::InvalidGrant,
            "too old",
        ),
        (
            ci.token(&app, &json!({"iss": "https://gitlab.com"})),
            E::InvalidGrant,
            "issuer",
        ),
        (
            ci.token(&app, &json!({"big": "x".repeat(20_000)})),
            E::InvalidGrant,
            "too large",
        ),
        (
            unknown_key,
            E::InvalidGrant,
            "key its issuer does not publish",
        ),
        (alg_none, E::InvalidGrant, "algorithm"),
        (hs256, E::InvalidGrant, "algorithm"),
        ("not-a-jwt".to_owned(), E::InvalidGrant, "well-formed"),
    ];
    for (token, code, words) in cases {
        let r = exchange(&app, &token).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{words}: {}", r.body);
        assert_eq!(r.oauth_error(), code, "{words}: {}", r.body);
        let description = r.json::<Value>()["error_description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(description.contains(words), "{words}: {description}");
        assert!(!r.body.contains(&token), "the token was echoed: {}", r.body);
        assert!(
            !r.body.contains("evil") && !r.body.contains("staging"),
            "{}",
            r.body
        );
    }
    // Genuine tokens that were refused are evidence (someone tried); forgeries are not rows,
    // or anyone could fill the trail.
    let filter = crate::store::AuditFilter {
        event: Some("exchange.refused".into()),
        ..crate::store::AuditFilter::default()
    };
    let rows = app.state.store().audit_page(0, 50, &filter).await.unwrap();
    let reasons: Vec<String> = rows
        .iter()
        .map(|r| r.facts.detail.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        rows.len(),
        6,
        "repository, ref, environment, audience, expired, too old: {reasons:#?}"
    );
    let evil = reasons
        .iter()
        .find(|d| d.contains(r#"claim \"repository\" does not match"#))
        .unwrap_or_else(|| panic!("no row for the other repository: {reasons:#?}"));
    assert!(evil.contains("\"repository\":\"evil/deploy\""), "{evil}");
    assert!(evil.contains("\"issuer\":"), "{evil}");
    assert!(
        reasons.iter().all(|d| !d.contains(&good)),
        "a token in the trail"
    );
    // The target: an unknown cluster, or none.
    let t = ci.token(&app, &json!({}));
    let r = app
        .post(
            "/oauth/token",
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", &t),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ("audience", "prod"),
            ],
            None,
        )
        .await;
    assert_eq!(r.oauth_error(), E::InvalidTarget, "{}", r.body);
    assert!(r.body.contains("cluster"), "{}", r.body);
    let logs = captured_logs().text();
    assert!(
        !logs.contains(&t) && !logs.contains(&good),
        "a token reached the log"
    );
}

/// Of a burst of exchanges of one token, exactly one gets a token.
#[tokio::test]
async fn a_token_is_exchanged_once_even_in_a_burst() {
    let (app, ci) = setup().await;
    let token = Arc::new(ci.token(&app, &json!({})));
    let replies = burst(&app, 8, |app, _| {
        let token = Arc::clone(&token);
        async move { exchange(&app, &token).await }
    })
    .await;
    assert_eq!(
        count(&replies, StatusCode::OK),
        1,
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let refused = replies.iter().find(|r| r.status != StatusCode::OK).unwrap();
    assert!(refused.body.contains("already used"), "{}", refused.body);
}

/// `workload disable` stops new tokens and the webhook refuses the ones out.
#[tokio::test]
async fn a_disabled_workload_gets_nothing_and_its_tokens_stop() {
    let (app, ci) = setup().await;
    let r = exchange(&app, &ci.token(&app, &json!({}))).await;
    let t: TokenResponse = r.json();
    let review = |token: String| {
        let app = Arc::clone(&app);
        async move {
            let body = json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token, "audiences": ["https://kubernetes.default.svc"]},
            });
            let r = app
                .post_json("/authenticate/default", body.to_string())
                .await;
            let v: Value = serde_json::from_str(&r.body).unwrap();
            v["status"]["authenticated"].as_bool().unwrap_or(false)
        }
    };
    assert!(review(t.access_token.clone()).await);
    let now = app.clock.now_for_tests();
    crate::service::admin::disable_workload(
        app.state.store(),
        app.state.config(),
        "deploy-production",
        now,
    )
    .await
    .unwrap();
    // This process's cache learns of it through the revocation feed; here, after its TTL.
    app.advance(10);
    assert!(
        !review(t.access_token).await,
        "a disabled workload's token still passes"
    );
    let r = exchange(&app, &ci.token(&app, &json!({}))).await;
    assert_eq!(r.oauth_error(), E::InvalidGrant, "{}", r.body);
    assert!(r.body.contains("disabled"), "{}", r.body);
}

/// A registered machine signs in with its key; a replayed, unsigned or foreign assertion and a
/// disabled machine are refused.
#[tokio::test]
async fn a_machine_proves_its_key() {
    let (app, ci) = setup().await;
    let key = new_key(&ci.rng);
    let der = [
        &[
            0x30u8, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ][..],
        key.public_key().as_ref(),
    ]
    .concat();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    let now = app.clock.now_for_tests();
    crate::service::admin::add_machine(
        app.state.store(),
        app.state.config(),
        &crate::service::admin::MachineRequest {
            name: "nightly",
            public_key_pem: &pem,
            groups: &["backup".to_owned()],
            clusters: &["default".to_owned()],
            until: "30d",
        },
        now,
    )
    .await
    .unwrap();
    let t = now.unix_timestamp();
    let assertion = |key: &EcdsaKeyPair, jti: &str| {
        ci.sign_with(
            key,
            &json!({"alg": "ES256", "typ": "JWT"}),
            &json!({"iss": "nightly", "sub": "nightly", "aud": "https://issuer.test/oauth/token",
                    "iat": t, "exp": t + 60, "jti": jti}),
        )
    };
    let ask = |a: String| {
        let app = Arc::clone(&app);
        async move {
            app.post(
                "/oauth/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "nightly"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a),
                    ("audience", "default"),
                ],
                None,
            )
            .await
        }
    };
    let first = assertion(&key, "jti-0000000000000001");
    let r = ask(first.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c = claims_of(&r.json::<TokenResponse>().access_token);
    assert_eq!(c.preferred_username, "machine:nightly");
    assert_eq!(c.groups, ["backup"]);
    let again = ask(first).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
    assert!(again.body.contains("already used"), "{}", again.body);
    let foreign = ask(assertion(&new_key(&ci.rng), "jti-0000000000000002")).await;
    assert_eq!(foreign.oauth_error(), E::InvalidClient, "{}", foreign.body);
    assert!(foreign.body.contains("signature"), "{}", foreign.body);
    crate::service::admin::disable_machine(app.state.store(), "nightly", now)
        .await
        .unwrap();
    let off = ask(assertion(&key, "jti-0000000000000003")).await;
    assert_eq!(off.oauth_error(), E::InvalidGrant, "{}", off.body);
    assert!(off.body.contains("disabled"), "{}", off.body);
}
