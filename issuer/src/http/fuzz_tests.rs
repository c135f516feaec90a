//! Property tests ("fuzzing" on the stable toolchain) of every endpoint that reads bytes from
//! anyone on the network: the token, device-authorization and revocation forms, the webhook's
//! TokenReview bodies and the tokens in them (and the JWS verifier behind it), and the forms of
//! the pages people use (`/device`, `/login`, `/login/totp`, `/consent`, invitations).
//!
//! Each request goes through `router(state).oneshot(..)` on a task of its own, with a fake clock
//! and a temporary database, as in `test_support.rs`. Every answer must come within a time
//! bound, must not be a 5xx (a malformed request is the client's fault), and must stay small
//! whatever the input's size (the body is read through a limit). Inputs are arbitrary bytes,
//! near-valid forms and documents with one part broken, and real values (a live device code,
//! refresh token, session cookie with its CSRF token, signed tokens with edited claims) mixed
//! with junk.
//!
//! `PROPTEST_CASES=N` sets the case count of every property; see docs/fuzzing.md.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use credential_shared::oauth::{AccessTokenClaims, OAuthError};
use credential_shared::token_review::TokenReviewResponse;
use http_body_util::{BodyExt as _, Limited};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestRunner;
use tower::ServiceExt as _;

use super::test_support::{logged_in, TestApp, USER_PASSWORD};
use crate::fuzz_support::{
    bytes_like, config, json_int, json_object, json_string, json_value, text, Bytes, TIME_BOUND,
};

/// Largest answer read at all (the invitation page, with its QR code, is the largest, at about
/// 30 KiB); tighter bounds per endpoint are below.
const MAX_RESPONSE: usize = 64 * 1024;
/// How much larger than the page a person first sees an answer to a form may be: no page may
/// grow with the input (a request body may be 16 KiB, a form field as long), but a page may
/// quote a little of it (the user name on the sign-in page, truncated).
const PAGE_SLACK: usize = 2 * 1024;
/// Largest answer to an API call that failed (an OAuth error, a refused review): a short
/// message that quotes at most a little of the input.
const MAX_ERROR: usize = 2048;

/// One answer, read in full through [`MAX_RESPONSE`].
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// Sends `req` from `peer` on a task of its own, so that a handler stuck in a loop cannot stop
/// the timer that reports it; fails on a hang, a panic, a 5xx or an oversized answer.
async fn send(app: &TestApp, mut req: Request<Body>, peer: SocketAddr) -> Answer {
    req.extensions_mut().insert(ConnectInfo(peer));
    let router = crate::http::router(app.state.clone());
    let task = tokio::spawn(async move {
        let res = router.oneshot(req).await.unwrap_or_else(|e| match e {});
        let (parts, body) = res.into_parts();
        let body = Limited::new(body, MAX_RESPONSE).collect().await;
        (parts, body.map(|b| b.to_bytes().to_vec()))
    });
    let (parts, body) = match tokio::time::timeout(TIME_BOUND, task).await {
        Err(elapsed) => panic!("no answer within {TIME_BOUND:?}: a hang ({elapsed})"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("the request's task failed: {e}"),
        Ok(Ok(answer)) => answer,
    };
    let body = body.unwrap_or_else(|e| panic!("answer over {MAX_RESPONSE} bytes: {e}"));
    let answer = Answer {
        status: parts.status,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body,
    };
    assert!(
        !answer.status.is_server_error(),
        "a malformed request got {}: {}",
        answer.status,
        answer.text()
    );
    answer
}

/// Runs `strategy`'s cases through `check`, which uses one app and runtime set up once by the
/// caller (a device flow, a signed-in browser and so on cost more than the cases).
fn run<S: Strategy>(
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{e}");
    }
}

/// A client address: a handful of addresses, so rate limits are both reached and not.
fn peer() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        3 => (0..8u8).prop_map(|n| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, n)), 40_000)),
        1 => any::<u32>().prop_map(|n| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(n)), 1)),
        1 => any::<u128>().prop_map(|n| SocketAddr::new(IpAddr::V6(n.into()), 1)),
    ]
}

/// A `Content-Type`: mostly the form type, in its spellings, sometimes another or none.
fn form_content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        12 => Just(Some("application/x-www-form-urlencoded".to_owned())),
        2 => select(vec![
            "application/x-www-form-urlencoded; charset=utf-8",
            "application/x-www-form-urlencoded; charset=latin1",
            "APPLICATION/X-WWW-FORM-URLENCODED",
            "application/x-www-form-urlencoded;;;",
            "application/json",
            "multipart/form-data; boundary=x",
            "text/plain",
            "",
        ])
        .prop_map(|s| Some(s.to_owned())),
        1 => Just(None),
        1 => text().prop_map(Some),
    ]
}

/// How a form value is written on the wire.
fn encode(value: &str, how: u8) -> String {
    match how {
        // As a browser does.
        0..=3 => url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        // Not encoded at all (`&`, `=`, `%` and `+` keep their meaning).
        4 => value.to_owned(),
        // Every byte escaped.
        5 => value.bytes().fold(String::new(), |mut out, b| {
            let _ = write!(out, "%{b:02X}");
            out
        }),
        // Broken escapes around it.
        6 => format!("%{value}%z%"),
        // Bytes that are not UTF-8 once decoded.
        _ => format!(
            "{}%FF%FE%C0%80",
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
        ),
    }
}

/// An urlencoded form with these fields, in the three modes of `json_object`: plausible, one
/// field wrong, or chaos (fields left out, given twice, unknown, separators doubled).
fn form(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
    let n = fields.len();
    let names: Vec<&'static str> = fields.iter().map(|(name, _)| *name).collect();
    let plausible: Vec<BoxedStrategy<String>> = fields.into_iter().map(|(_, s)| s).collect();
    let junk: Vec<BoxedStrategy<String>> = (0..n).map(|_| text().boxed()).collect();
    (
        plausible,
        junk,
        prop::collection::vec((0..4u8, 0..8u8), n),
        prop_oneof![2 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)],
        any::<prop::sample::Index>(),
        (text(), text()),
        any::<bool>(),
    )
        .prop_map(
            move |(plausible, junk, choices, mode, broken, extra, twice)| {
                let broken = broken.index(n.max(1));
                let mut pairs = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let (choice, how) = choices[i];
                    let choice = match mode {
                        1 if i == broken => choice % 2,
                        0 | 1 => 2,
                        _ => choice,
                    };
                    let how = if mode == 2 { how } else { 0 };
                    match choice {
                        0 => {}
                        1 => pairs.push(format!("{name}={}", encode(&junk[i], how))),
                        _ => pairs.push(format!("{name}={}", encode(&plausible[i], how))),
                    }
                }
                if mode == 2 {
                    if twice {
                        if let Some(first) = pairs.first().cloned() {
                            pairs.push(first);
                        }
                    }
                    pairs.push(format!("{}={}", encode(&extra.0, 0), encode(&extra.1, 4)));
                    pairs.push(String::new());
                }
                pairs.join("&")
            },
        )
        .boxed()
}

fn one_of(values: Vec<String>) -> BoxedStrategy<String> {
    prop_oneof![4 => select(values), 1 => text()].boxed()
}

fn form_request(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    cookie: Option<&str>,
    body: Vec<u8>,
) -> Option<Request<Body>> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, HeaderValue::from_str(ct).ok()?);
    }
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, HeaderValue::from_str(c).ok()?);
    }
    b.body(Body::from(body)).ok()
}

// ---------------------------------------------------------------------------------------------
// The OAuth endpoints.

#[derive(Debug, Clone)]
struct OAuthCase {
    path: &'static str,
    content_type: Option<String>,
    body: Bytes,
    peer: SocketAddr,
}

/// `POST /oauth/token`, `/oauth/device_authorization` and `/oauth/revoke` with any body and
/// content type answer 200 or an OAuth error (RFC 6749 section 5.2) of at most [`MAX_ERROR`]
/// bytes; never a 5xx, never late.
#[test]
fn oauth_forms_are_answered_with_oauth_errors() {
    let rt = runtime();
    let (app, device_code, refresh) = rt.block_on(async {
        let app = TestApp::new().await;
        let tokens = logged_in(&app, "fuzz").await;
        let d = app.start().await;
        (app, d.device_code, tokens.refresh_token)
    });
    let client = || one_of(vec!["kubectl-credential".to_owned()]);
    let token_form = form(vec![
        (
            "grant_type",
            one_of(vec![
                credential_shared::oauth::GRANT_DEVICE_CODE.to_owned(),
                credential_shared::oauth::GRANT_REFRESH_TOKEN.to_owned(),
            ]),
        ),
        ("client_id", client()),
        ("device_code", one_of(vec![device_code.clone()])),
        (
            "refresh_token",
            one_of(vec![
                refresh.clone(),
                format!("up.{refresh}"),
                "up.".to_owned(),
            ]),
        ),
    ]);
    let device_form = form(vec![
        ("client_id", client()),
        ("cluster", one_of(vec!["default".to_owned()])),
        ("scope", text().boxed()),
    ]);
    let revoke_form = form(vec![
        ("token", one_of(vec![refresh, device_code])),
        ("token_type_hint", one_of(vec!["refresh_token".to_owned()])),
        ("client_id", client()),
    ]);
    let case = prop_oneof![
        2 => (Just("/oauth/token"), bytes_like(token_form)),
        1 => (Just("/oauth/device_authorization"), bytes_like(device_form)),
        1 => (Just("/oauth/revoke"), bytes_like(revoke_form)),
    ];
    let strategy =
        (case, form_content_type(), peer()).prop_map(|((path, body), ct, peer)| OAuthCase {
            path,
            content_type: ct,
            body,
            peer,
        });
    run(1000, strategy, |c| {
        let Some(req) = form_request(
            Method::POST,
            c.path,
            c.content_type.as_deref(),
            None,
            c.body.0.clone(),
        ) else {
            return Ok(());
        };
        let a = rt.block_on(send(&app, req, c.peer));
        if a.status.is_success() {
            if c.path != "/oauth/revoke" {
                let _: serde_json::Value = serde_json::from_slice(&a.body)
                    .unwrap_or_else(|e| panic!("a 200 that is not JSON ({e}): {}", a.text()));
            }
        } else {
            let e: Result<OAuthError, _> = serde_json::from_slice(&a.body);
            prop_assert!(
                e.is_ok(),
                "{} is not an OAuth error: {}",
                a.status,
                a.text()
            );
            prop_assert!(
                a.body.len() <= MAX_ERROR,
                "{} bytes: {}",
                a.body.len(),
                a.text()
            );
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// The webhook and the tokens it verifies.

/// How a case's token is made: the live token, that token's claims edited and signed again with
/// the issuer's own key, or any JWT-shaped text.
#[derive(Debug, Clone)]
enum TokenChoice {
    Live,
    Resigned(Box<ClaimsEdit>),
    Forged(String),
}

/// An edit of an optional claim.
#[derive(Debug, Clone, Default)]
enum OptionalClaim {
    #[default]
    Keep,
    Remove,
    Set(String),
}

impl OptionalClaim {
    fn apply(&self, slot: &mut Option<String>) {
        match self {
            Self::Keep => {}
            Self::Remove => *slot = None,
            Self::Set(v) => *slot = Some(v.clone()),
        }
    }
}

fn optional_claim(plausible: Vec<String>) -> impl Strategy<Value = OptionalClaim> {
    prop_oneof![
        7 => Just(OptionalClaim::Keep),
        1 => Just(OptionalClaim::Remove),
        2 => one_of(plausible).prop_map(OptionalClaim::Set),
    ]
}

/// Edits of a live token's claims; `None` keeps the claim.
#[derive(Debug, Clone, Default)]
struct ClaimsEdit {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<String>,
    iat: Option<i64>,
    nbf: Option<i64>,
    exp: Option<i64>,
    username: Option<String>,
    groups: Option<Vec<String>>,
    cluster: OptionalClaim,
    sid: OptionalClaim,
    grants: Option<Vec<String>>,
}

impl ClaimsEdit {
    fn apply(&self, c: &mut AccessTokenClaims) {
        let set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                slot.clone_from(v);
            }
        };
        set(&mut c.iss, &self.iss);
        set(&mut c.sub, &self.sub);
        set(&mut c.aud, &self.aud);
        set(&mut c.preferred_username, &self.username);
        c.iat = self.iat.unwrap_or(c.iat);
        c.nbf = self.nbf.unwrap_or(c.nbf);
        c.exp = self.exp.unwrap_or(c.exp);
        if let Some(g) = &self.groups {
            c.groups.clone_from(g);
        }
        self.cluster.apply(&mut c.cluster);
        self.sid.apply(&mut c.sid);
        if let Some(g) = &self.grants {
            c.grants.clone_from(g);
        }
    }
}

/// A time near the app's clock, or an extreme one.
fn claim_time(now: i64) -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => (-600..600i64).prop_map(move |d| now + d),
        1 => select(vec![i64::MIN, i64::MAX, 0, -1, 253_402_300_800]),
        1 => any::<i64>(),
    ]
}

fn claims_edit(now: i64, sid: String, sub: String) -> impl Strategy<Value = ClaimsEdit> {
    let maybe = |s: BoxedStrategy<String>| prop::option::weighted(0.3, s);
    (
        (
            maybe(one_of(vec![
                "https://issuer.test".to_owned(),
                "https://issuer.test/".to_owned(),
            ])),
            maybe(one_of(vec![sub, String::new()])),
            maybe(one_of(vec!["kubernetes".to_owned(), "default".to_owned()])),
            prop::option::weighted(0.3, claim_time(now)),
            prop::option::weighted(0.3, claim_time(now)),
            prop::option::weighted(0.3, claim_time(now)),
        ),
        (
            maybe(text().boxed()),
            prop::option::weighted(0.2, prop::collection::vec(text(), 0..40)),
            optional_claim(vec!["default".to_owned(), "other".to_owned()]),
            optional_claim(vec![sid, String::new()]),
            prop::option::weighted(0.2, prop::collection::vec(text(), 0..8)),
        ),
    )
        .prop_map(
            |((iss, sub, aud, iat, nbf, exp), (username, groups, cluster, sid, grants))| {
                ClaimsEdit {
                    iss,
                    sub,
                    aud,
                    iat,
                    nbf,
                    exp,
                    username,
                    groups,
                    cluster,
                    sid,
                    grants,
                }
            },
        )
}

/// base64url of `json` (or junk in the base64 alphabets).
fn b64(json: BoxedStrategy<String>) -> BoxedStrategy<String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    prop_oneof![
        4 => json.clone().prop_map(|j| URL_SAFE_NO_PAD.encode(j)),
        1 => json.clone().prop_map(|j| URL_SAFE.encode(j)),
        1 => json.prop_map(|j| STANDARD.encode(j)),
        1 => "[A-Za-z0-9_=+/.!-]{0,64}",
    ]
    .boxed()
}

/// JWT-shaped text signed by nobody: the header names the issuer's key (or another, or none),
/// `ES256` (or `none`, `HS256`, ...), sometimes `crit`; the payload is claims-like JSON; the
/// signature is 64 random bytes, other lengths, or junk.
fn forged_token(kid: String) -> BoxedStrategy<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let header = json_object(vec![
        (
            "alg",
            json_string(
                select(vec!["ES256", "none", "HS256", "RS256", "es256", "ES256 "])
                    .prop_map(str::to_owned),
            ),
        ),
        ("typ", json_string(Just("JWT".to_owned()))),
        ("kid", json_string(one_of(vec![kid]))),
        ("crit", Just("[\"exp\"]".to_owned()).boxed()),
    ]);
    let time = json_int(0..=4_000_000_000);
    let claims = json_object(vec![
        (
            "iss",
            json_string(one_of(vec!["https://issuer.test".to_owned()])),
        ),
        ("sub", json_string(text())),
        ("aud", json_string(one_of(vec!["kubernetes".to_owned()]))),
        ("iat", time.clone()),
        ("nbf", time.clone()),
        ("exp", time),
        ("jti", json_string(text())),
        ("preferred_username", json_string(text())),
        (
            "groups",
            prop::collection::vec(text(), 0..8)
                .prop_map(|g| serde_json::Value::from(g).to_string())
                .boxed(),
        ),
        ("sid", json_string(text())),
    ]);
    let signature = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 64).prop_map(|s| URL_SAFE_NO_PAD.encode(s)),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|s| URL_SAFE_NO_PAD.encode(s)),
        1 => "[A-Za-z0-9_=+/-]{0,100}",
    ];
    prop_oneof![
        6 => (b64(header.clone()), b64(claims.clone()), signature)
            .prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        1 => (b64(header), b64(claims)).prop_map(|(h, p)| format!("{h}.{p}.")),
        1 => prop::collection::vec("[A-Za-z0-9_-]{0,20}", 0..6).prop_map(|p| p.join(".")),
        1 => text(),
    ]
    .boxed()
}

/// The placeholder a case's TokenReview body carries where its token goes.
const TOKEN_SLOT: &str = "\"@@token@@\"";

fn review_body() -> BoxedStrategy<String> {
    let audiences = prop::collection::vec(
        one_of(vec![
            "https://kubernetes.default.svc".to_owned(),
            "kubernetes".to_owned(),
        ]),
        0..4,
    )
    .prop_map(|a| serde_json::Value::from(a).to_string())
    .boxed();
    let spec = json_object(vec![
        ("token", Just(TOKEN_SLOT.to_owned()).boxed()),
        ("audiences", audiences),
    ]);
    json_object(vec![
        (
            "apiVersion",
            json_string(one_of(vec![
                "authentication.k8s.io/v1".to_owned(),
                "authentication.k8s.io/v1beta1".to_owned(),
            ])),
        ),
        ("kind", json_string(one_of(vec!["TokenReview".to_owned()]))),
        (
            "metadata",
            Just("{\"creationTimestamp\":null}".to_owned()).boxed(),
        ),
        ("spec", spec),
        ("status", json_value().boxed()),
    ])
}

fn review_path() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("/authenticate/default".to_owned()),
        2 => Just("/authenticate".to_owned()),
        1 => text().prop_map(|t| format!("/authenticate/{}", url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>())),
        1 => select(vec!["/authenticate/%FF%FE", "/authenticate/", "/authenticate/default/x", "/authenticate/%00"])
            .prop_map(str::to_owned),
    ]
}

#[derive(Debug, Clone)]
struct ReviewCase {
    path: String,
    body: Bytes,
    token: TokenChoice,
    json_type: bool,
}

/// `POST /authenticate[/cluster]` with any body: 200 with a TokenReview, or a short 4xx. A
/// token is accepted only if it is one the issuer signed whose claims pass every check (issuer,
/// time window, audience, cluster, live session of its subject); the live token sent on the
/// cluster's path in a well-formed review is accepted.
#[test]
fn token_reviews_accept_only_tokens_the_issuer_would() {
    let rt = runtime();
    let (app, live) = rt.block_on(async {
        let app = TestApp::new().await;
        let tokens = logged_in(&app, "fuzz").await;
        (app, tokens.access_token)
    });
    let live_claims = decode(&live);
    let now = app.clock.now_for_tests().unix_timestamp();
    let kid = app.state.signer().active_kid();
    let token = prop_oneof![
        2 => Just(TokenChoice::Live),
        4 => claims_edit(now, live_claims.sid.clone().unwrap_or_default(), live_claims.sub.clone())
            .prop_map(|e| TokenChoice::Resigned(Box::new(e))),
        3 => forged_token(kid).prop_map(TokenChoice::Forged),
    ];
    let strategy = (
        review_path(),
        bytes_like(review_body()),
        token,
        prop::bool::weighted(0.9),
    )
        .prop_map(|(path, body, token, json_type)| ReviewCase {
            path,
            body,
            token,
            json_type,
        });
    run(1000, strategy, |c| {
        let (token, claims) = match &c.token {
            TokenChoice::Live => (live.clone(), Some(live_claims.clone())),
            TokenChoice::Resigned(edit) => {
                let mut claims = live_claims.clone();
                edit.apply(&mut claims);
                let token = app
                    .state
                    .signer()
                    .sign(&claims)
                    .unwrap_or_else(|e| panic!("sign: {e}"));
                (token, Some(claims))
            }
            TokenChoice::Forged(t) => (t.clone(), None),
        };
        let slot = serde_json::Value::String(token.clone()).to_string();
        let body = replace_bytes(&c.body, TOKEN_SLOT.as_bytes(), slot.as_bytes());
        let ct = c.json_type.then_some("application/json");
        let Some(req) = form_request(Method::POST, &c.path, ct, None, body) else {
            return Ok(());
        };
        let a = rt.block_on(send(&app, req, SocketAddr::from(([10, 0, 0, 1], 1))));
        if a.status != StatusCode::OK {
            prop_assert!(a.status.is_client_error(), "{}", a.status);
            prop_assert!(
                a.body.len() <= MAX_ERROR,
                "{} bytes: {}",
                a.body.len(),
                a.text()
            );
            return Ok(());
        }
        let r: TokenReviewResponse = serde_json::from_slice(&a.body)
            .unwrap_or_else(|e| panic!("a 200 that is no TokenReview ({e}): {}", a.text()));
        if !r.status.authenticated {
            prop_assert!(r.status.user.is_none());
            prop_assert!(
                a.body.len() <= MAX_ERROR,
                "{} bytes: {}",
                a.body.len(),
                a.text()
            );
            let well_formed = matches!(c.token, TokenChoice::Live)
                && c.path == "/authenticate/default"
                && c.body.0 == review_doc(TOKEN_SLOT).into_bytes();
            prop_assert!(
                !well_formed,
                "the live token was refused: {}",
                r.status.error
            );
            return Ok(());
        }
        let Some(claims) = claims else {
            panic!("a token nobody signed was accepted: {token:?}");
        };
        prop_assert_eq!(&claims.iss, "https://issuer.test");
        prop_assert!(now < claims.exp && claims.nbf <= now + 5, "{claims:?}");
        prop_assert_eq!(&claims.aud, "kubernetes");
        prop_assert!(claims.cluster.as_deref().is_none_or(|c| c == "default"));
        prop_assert_eq!(&claims.sid, &live_claims.sid);
        prop_assert_eq!(&claims.sub, &live_claims.sub);
        prop_assert!(!a.content_type.is_empty());
        Ok(())
    });
}

/// A well-formed v1 review of the token in `slot` (JSON text), as kube-apiserver sends it.
fn review_doc(slot: &str) -> String {
    format!(
        "{{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{{\"token\":{slot}}}}}"
    )
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// The claims of a token the test holds (signature not checked).
fn decode(token: &str) -> AccessTokenClaims {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let json = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
    serde_json::from_slice(&json).unwrap_or_else(|e| panic!("claims: {e}"))
}

/// The JWS verifier, called directly (many more cases than through HTTP): a token nobody
/// signed is refused, and the error names the part that failed in a short message that never
/// holds the token.
#[test]
fn the_verifier_refuses_forged_tokens_with_short_errors() {
    let rt = runtime();
    let app = rt.block_on(TestApp::new());
    let kid = app.state.signer().active_kid();
    let now = app.clock.now_for_tests();
    let retain = app.state.config().key_retention();
    run(4096, forged_token(kid), |token| {
        let signer = app.state.clone();
        let t = token.clone();
        let result = crate::fuzz_support::bounded(move || {
            signer
                .signer()
                .verify(&t, now, retain)
                .map_err(|e| error_chain(&e))
        });
        let Err(message) = result else {
            panic!("a forged token verified: {token:?}");
        };
        // 64 characters of the header at most, each at most 10 bytes once escaped.
        prop_assert!(message.len() <= 1024, "{} bytes: {message}", message.len());
        if token.len() > 80 {
            prop_assert!(!message.contains(&token), "{message}");
        }
        Ok(())
    });
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The verification pages.

/// What the page fuzzing starts from: a browser at each step of a sign-in, with its CSRF token,
/// and the codes and links a person would have.
struct Browsers {
    /// Signed out, `/device` open.
    fresh: (String, String),
    /// Signed in, a device waiting for consent.
    consent: (String, String),
    /// Past the password, the second factor asked for.
    totp: (String, String),
    /// An invitation's page open.
    invite: (String, String),
    /// The size of the largest page seen (the invitation's).
    largest_page: usize,
    invite_token: String,
    user_code: String,
}

async fn browsers(app: &TestApp) -> Browsers {
    use super::invite_tests::{enrolled, invite, open, password_step, DAY, PASSWORD};
    let csrf_of = |body: &str| {
        let marker = r#"name="csrf_token" value=""#;
        body.split_once(marker)
            .and_then(|(_, rest)| rest.split('"').next())
            .unwrap_or_default()
            .to_owned()
    };
    let fresh = app.get("/device", None).await;
    let fresh = (fresh.cookie().unwrap_or_default(), csrf_of(&fresh.body));

    app.add_user("fuzz", &["dev"]).await;
    let d = app.start().await;
    let page = app.get("/device", None).await;
    let cookie = page.cookie().unwrap_or_default();
    app.enter_code(&cookie, &csrf_of(&page.body), &d.user_code)
        .await;
    let login = app.get("/login", Some(&cookie)).await;
    let r = app
        .sign_in_form(&cookie, &csrf_of(&login.body), "fuzz", USER_PASSWORD)
        .await;
    let signed_in = r.cookie().unwrap_or_default();
    let consent = app.get("/consent", Some(&signed_in)).await;
    let consent = (signed_in, csrf_of(&consent.body));

    let _ = enrolled(app, "fuzzotp", DAY).await;
    let d2 = app.start().await;
    let (_, pending) = password_step(app, &d2.user_code, "fuzzotp").await;
    let totp = app.get("/login/totp", Some(&pending)).await;
    let totp = (pending, csrf_of(&totp.body));

    let invite_token = invite(app, "fuzzinv", DAY, DAY).await;
    let (page, cookie, _) = open(app, &invite_token).await;
    let invite = (cookie, csrf_of(&page.body));
    let largest_page = page.body.len();
    let _ = PASSWORD;

    let d3 = app.start().await;
    Browsers {
        fresh,
        consent,
        totp,
        invite,
        largest_page,
        invite_token,
        user_code: d3.user_code,
    }
}

#[derive(Debug, Clone)]
struct PageCase {
    method: Method,
    path: String,
    cookie: Option<String>,
    content_type: Option<String>,
    body: Bytes,
    peer: SocketAddr,
}

/// A `Cookie` header: the session the form belongs to, another browser's, a stranger's, an
/// oversized one, several.
fn cookie(own: &str, sessions: Vec<String>) -> impl Strategy<Value = Option<String>> {
    let name = super::browser::COOKIE;
    prop_oneof![
        12 => Just(Some(own.to_owned())),
        2 => select(sessions.clone()).prop_map(Some),
        1 => Just(None),
        1 => text().prop_map(move |t| Some(format!("{name}={t}"))),
        1 => (select(sessions), text()).prop_map(move |(s, t)| Some(format!("a=b; {name}=; {t}; {s}"))),
        1 => (129..300usize).prop_map(move |n| Some(format!("{name}={}", "A".repeat(n)))),
    ]
}

/// The forms of `/device`, `/login`, `/login/totp`, `/consent` and the invitation pages, with
/// any body, cookie and content type: a page or a redirect, never a 5xx, never an answer
/// larger than the biggest page.
#[test]
fn verification_pages_answer_any_form_with_a_page() {
    let rt = runtime();
    let app = rt.block_on(TestApp::new());
    let b = rt.block_on(browsers(&app));
    let csrf = |own: &str| {
        let others = vec![
            b.fresh.1.clone(),
            b.consent.1.clone(),
            b.totp.1.clone(),
            b.invite.1.clone(),
        ];
        prop_oneof![6 => Just(own.to_owned()), 1 => select(others), 1 => text()].boxed()
    };
    let device = form(vec![
        (
            "user_code",
            one_of(vec![
                b.user_code.clone(),
                b.user_code.to_lowercase().replace('-', " "),
            ]),
        ),
        ("csrf_token", csrf(&b.fresh.1)),
    ]);
    let login = form(vec![
        (
            "username",
            one_of(vec![
                "fuzz".to_owned(),
                "FUZZ ".to_owned(),
                "fuzzotp".to_owned(),
            ]),
        ),
        (
            "password",
            one_of(vec!["correct horse battery".to_owned(), "wrong".to_owned()]),
        ),
        ("csrf_token", csrf(&b.fresh.1)),
    ]);
    let totp = form(vec![
        (
            "totp_code",
            prop_oneof![3 => "[0-9]{6}", 1 => "[0-9 ]{0,12}", 1 => text()].boxed(),
        ),
        ("csrf_token", csrf(&b.totp.1)),
    ]);
    let consent = form(vec![
        (
            "action",
            one_of(vec!["approve".to_owned(), "deny".to_owned()]),
        ),
        ("csrf_token", csrf(&b.consent.1)),
    ]);
    let password = || {
        one_of(vec![
            "a contractor's passphrase".to_owned(),
            "short".to_owned(),
        ])
    };
    let invite = form(vec![
        ("password", password()),
        ("password_confirm", password()),
        (
            "totp_code",
            prop_oneof![3 => "[0-9]{6}", 1 => text()].boxed(),
        ),
        ("csrf_token", csrf(&b.invite.1)),
    ]);
    let invite_path = prop_oneof![
        4 => Just(format!("/invite/{}", b.invite_token)),
        1 => text().prop_map(|t| format!("/invite/{}", url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>())),
        1 => select(vec!["/invite/%FF", "/invite/", "/invite/a/b", "/invite/%2E%2E"]).prop_map(str::to_owned),
    ];
    let sessions = vec![
        b.fresh.0.clone(),
        b.consent.0.clone(),
        b.totp.0.clone(),
        b.invite.0.clone(),
    ];
    let post = |path: BoxedStrategy<String>, body: BoxedStrategy<String>, own: &str| {
        (
            Just(Method::POST),
            path,
            bytes_like(body),
            cookie(own, sessions.clone()),
        )
            .boxed()
    };
    let get = |path: BoxedStrategy<String>, own: &str| {
        (
            Just(Method::GET),
            path,
            Just(Bytes(Vec::new())),
            cookie(own, sessions.clone()),
        )
            .boxed()
    };
    let fixed = |p: &str| Just(p.to_owned()).boxed();
    let route = prop_oneof![
        2 => post(fixed("/device"), device, &b.fresh.0),
        2 => post(fixed("/login"), login, &b.fresh.0),
        2 => post(fixed("/login/totp"), totp, &b.totp.0),
        2 => post(fixed("/consent"), consent, &b.consent.0),
        2 => post(invite_path.clone().boxed(), invite, &b.invite.0),
        1 => get(invite_path.boxed(), &b.invite.0),
        1 => get(
            text()
                .prop_map(|t| format!("/device?user_code={}", url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()))
                .boxed(),
            &b.fresh.0,
        ),
    ];
    let strategy = (route, form_content_type(), peer()).prop_map(
        |((method, path, body, cookie), content_type, peer)| PageCase {
            method,
            path,
            cookie,
            content_type,
            body,
            peer,
        },
    );
    run(600, strategy, |c| {
        let Some(req) = form_request(
            c.method.clone(),
            &c.path,
            c.content_type.as_deref(),
            c.cookie.as_deref(),
            c.body.0.clone(),
        ) else {
            return Ok(());
        };
        let a = rt.block_on(send(&app, req, c.peer));
        prop_assert!(
            a.body.len() <= b.largest_page + PAGE_SLACK,
            "{} bytes, the largest page is {}: {}",
            a.body.len(),
            b.largest_page,
            a.text()
        );
        if a.status.is_redirection() {
            prop_assert!(a.body.len() <= MAX_ERROR);
        } else {
            prop_assert!(
                a.content_type.starts_with("text/html"),
                "{}: {}",
                a.content_type,
                a.text()
            );
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Regression tests: what the properties above found, each the shrunk input that failed. They run
// on SQLite and, with `CREDENTIAL_TEST_STORE=postgres`, on PostgreSQL, where both were 500s.

/// Found by `oauth_forms_are_answered_with_oauth_errors` on PostgreSQL: a `scope` holding NUL
/// was stored with the device code, PostgreSQL refused the text, and the client got a 500. Any
/// scope was stored, up to the 16 KiB body limit.
#[tokio::test]
async fn a_scope_outside_rfc_6749_is_invalid_scope_not_a_server_error() {
    let app = TestApp::new().await;
    let start = |scope: String| {
        let app = &app;
        async move {
            let form = [
                ("client_id", "kubectl-credential"),
                ("cluster", "default"),
                ("scope", scope.as_str()),
            ];
            app.post("/oauth/device_authorization", &form, None).await
        }
    };
    for bad in [
        "\0".to_owned(),
        "a\"b".to_owned(),
        "a  b".to_owned(),
        "x".repeat(1025),
    ] {
        let r = start(bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.body);
        assert_eq!(
            r.oauth_error(),
            credential_shared::oauth::OAuthErrorCode::InvalidScope
        );
    }
    let r = start("openid groups".to_owned()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Found by `verification_pages_answer_any_form_with_a_page` on PostgreSQL: a user name with
/// NUL in it reached the account lookup and the rate-limit key, PostgreSQL refused the text,
/// and the person got a 500 page instead of "wrong username or password".
#[tokio::test]
async fn a_user_name_with_control_characters_is_a_failed_sign_in() {
    let app = TestApp::new().await;
    app.add_user("fuzz", &["dev"]).await;
    let page = app.get("/login", None).await;
    let cookie = page.cookie().unwrap_or_default();
    let r = app
        .sign_in_form(&cookie, &page.csrf(), "fu\0zz\u{1b}", "wrong")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body.contains("Wrong username or password"), "{}", r.body);
}

/// Found by `token_reviews_accept_only_tokens_the_issuer_would` on PostgreSQL: a token signed
/// with the issuer's key whose `sid` held NUL reached the session lookup, PostgreSQL refused the
/// text, and the API server got a 500. (The issuer never mints such a token; the claim check now
/// refuses any `sid` that is not a session id.)
#[tokio::test]
async fn a_signed_token_with_an_impossible_session_id_is_refused_not_a_server_error() {
    let app = TestApp::new().await;
    let live = logged_in(&app, "fuzz").await.access_token;
    let mut claims = decode(&live);
    claims.sid = Some("\0".to_owned());
    let token = app
        .state
        .signer()
        .sign(&claims)
        .unwrap_or_else(|e| panic!("{e}"));
    let slot = serde_json::Value::String(token).to_string();
    let r = app
        .post_json("/authenticate/default", review_doc(&slot))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let review: TokenReviewResponse = r.json();
    assert!(!review.status.authenticated);
    assert_eq!(review.status.error, "token has no session");
}
