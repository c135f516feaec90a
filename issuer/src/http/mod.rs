//! HTTP: routes, extractors and responses. The only module that knows axum.
//!
//! Handlers translate between HTTP and the store/domain/signing modules; policy lives in
//! `domain`, persistence in `store`.

mod account_templates;
mod attempts;
mod audit_page;
mod audit_templates;
mod browser;
mod discovery;
mod error;
mod gate;
mod invite;
mod oauth;
mod pages;
mod request_templates;
mod requests;
mod second_factor;
mod templates;
mod upstream;
mod webhook;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::service::state::AppState;

pub use error::{OAuthReply, PageError};
pub use requests::notify as notify_requests;

/// Largest request body accepted: forms here are a few hundred bytes.
const MAX_BODY: usize = 16 * 1024;

/// Largest body of the token endpoint: a token exchange carries a CI platform's token, which
/// the exchange itself refuses by name over 16 KiB (`domain::workloads::MAX_SUBJECT_TOKEN`).
const MAX_TOKEN_BODY: usize = 48 * 1024;

/// The issuer's routes.
pub fn router(state: AppState) -> Router {
    use credential_shared::{api, oauth as o};
    Router::new()
        .route(o::PATH_DISCOVERY, get(discovery::openid_configuration))
        .route(o::PATH_JWKS, get(discovery::jwks))
        .route(api::PATH_CLUSTERS, get(discovery::clusters))
        .route(
            o::PATH_DEVICE_AUTHORIZATION,
            post(oauth::device_authorization),
        )
        .route(
            o::PATH_TOKEN,
            post(oauth::token).layer(axum::extract::DefaultBodyLimit::max(MAX_TOKEN_BODY)),
        )
        .route(o::PATH_REVOKE, post(oauth::revoke))
        .route(
            o::PATH_DEVICE_PAGE,
            get(pages::device_form).post(pages::device_submit),
        )
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route(
            "/login/totp",
            get(second_factor::totp_form).post(second_factor::totp_submit),
        )
        .route(
            "/invite/{token}",
            get(invite::invite_form).post(invite::invite_submit),
        )
        .route(
            "/consent",
            get(pages::consent_form).post(pages::consent_submit),
        )
        .route("/upstream/start", post(upstream::start))
        .route(upstream::CALLBACK_PATH, get(upstream::callback))
        .route("/authenticate", post(webhook::authenticate))
        .route(
            "/authenticate/{cluster}",
            post(webhook::authenticate_cluster),
        )
        .route(
            api::PATH_REQUESTS,
            get(requests::list_mine).post(requests::file),
        )
        .route(
            &format!("{}/{{id}}", api::PATH_REQUESTS),
            get(requests::get_one),
        )
        .route(
            &format!("{}/{{id}}/approve", api::PATH_REQUESTS),
            post(requests::approve_api),
        )
        .route(api::PATH_ROLES, get(requests::roles))
        .route("/requests", get(requests::page))
        .route("/requests/{id}", post(requests::decide))
        .route("/audit", get(audit_page::audit_page))
        .route("/audit/export", get(audit_page::audit_download))
        .route(discovery::PATH_CA, get(discovery::ca_certificate))
        .route("/healthz", get(discovery::healthz))
        .route("/readyz", get(discovery::readyz))
        .route("/metrics", get(discovery::metrics))
        .route("/", get(pages::index))
        .fallback(pages::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate::database_gate,
        ))
        .layer(middleware::from_fn(observe))
        .layer(middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
}

/// The `route` of a request no route matched (the fallback's 404s): one label for all of
/// them, whatever path was asked for.
const UNMATCHED: &str = "unmatched";

/// The route template that matched `req` (`/authenticate/{cluster}`, not the path asked for).
fn matched_route(req: &Request) -> Option<MatchedPath> {
    req.extensions().get::<MatchedPath>().cloned()
}

/// Times every request into `credential_issuer_http_request_duration_seconds`. The outermost
/// layer, so the time includes the database gate and the other layers. Labelled by the route
/// template, never the raw path: a path is chosen by the client, and each label value is a
/// series kept for the life of the process.
async fn measure(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = matched_route(&req);
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    state.metrics().http_request(
        route.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
        method.as_str(),
        res.status().as_u16(),
        started.elapsed(),
    );
    res
}

/// A per-request id, generated here (never taken from the client, so it cannot be used to
/// inject text into logs or audit rows).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Adds a request id, security headers and one log line per request.
async fn observe(mut req: Request, next: Next) -> Response {
    let id = crate::secrets::secret::random_token(9).expose().to_owned();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    // The matched route, not the raw URI: query strings can hold user codes.
    let route = matched_route(&req).map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    set(h, header::CACHE_CONTROL, "no-store");
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    let status = res.status().as_u16();
    let ms = round_ms(started.elapsed());
    // Token reviews come from API servers at thousands per second: a line each would cost more
    // than the review (measured in docs/benchmarks.md). Kubernetes' audit log and the webhook
    // metrics record them; failed ones are still logged here.
    if route.starts_with("/authenticate") && res.status().is_success() {
        tracing::debug!(request_id = %id, %method, route, status, ms, "request");
    } else {
        tracing::info!(request_id = %id, %method, route, status, ms, "request");
    }
    res
}

/// A duration in milliseconds rounded to the microsecond (`ms=0.031`, not
/// `ms=0.030527000000000002`): an integer divided once, so the float prints as the decimal.
fn round_ms(elapsed: std::time::Duration) -> f64 {
    // Microseconds stay below 2^53 for 285 years, so the conversion is exact.
    #[expect(clippy::cast_precision_loss, reason = "exact below 2^53 microseconds")]
    let us = elapsed.as_micros() as f64;
    us / 1000.0
}

/// The address of the peer, for rate limits, audit rows and the consent page. The issuer does
/// not trust `X-Forwarded-For`: behind a proxy every request would share the proxy's address,
/// which errs on the side of stricter limits.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self("none".to_owned())))
    }
}

#[cfg(test)]
mod audit_page_tests;
#[cfg(test)]
mod burst_tests;
#[cfg(test)]
mod device_origin_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod invite_tests;
#[cfg(test)]
mod machine_tests;
#[cfg(test)]
mod requests_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod webhook_tests;

#[cfg(test)]
mod metrics_tests {
    //! The request-duration histogram as `/metrics` shows it, through the whole router.

    use super::test_support::TestApp;

    /// The `_count` line of one label set of `credential_issuer_http_request_duration_seconds`.
    fn count(route: &str, status_class: &str) -> String {
        format!(
            "credential_issuer_http_request_duration_seconds_count{{route=\"{route}\",method=\"GET\",status_class=\"{status_class}\"}}"
        )
    }

    #[tokio::test]
    async fn requests_are_timed_by_route_template() {
        let app = TestApp::new().await;
        app.get("/healthz", None).await;
        // Two paths of one route: one series, named by the template, and the tokens in the
        // paths are nowhere in the text.
        app.get("/invite/first-secret-token", None).await;
        app.get("/invite/second-secret-token", None).await;
        let text = app.get("/metrics", None).await.body;
        assert!(
            text.contains("# TYPE credential_issuer_http_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 1\n", count("/healthz", "2xx"))),
            "{text}"
        );
        assert!(
            text.contains(
                "credential_issuer_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status_class=\"2xx\",le=\"+Inf\"} 1\n"
            ),
            "{text}"
        );
        let invites = text
            .lines()
            .filter(|l| l.contains("_count{route=\"/invite/{token}\""))
            .map(|l| l.rsplit(' ').next().unwrap_or_default())
            .collect::<Vec<_>>();
        assert_eq!(invites.iter().filter(|c| **c == "2").count(), 1, "{text}");
        assert!(!text.contains("secret-token"), "{text}");
        // The `/metrics` request itself is counted once it was answered.
        let text = app.get("/metrics", None).await.body;
        assert!(
            text.contains(&format!("{} 1\n", count("/metrics", "2xx"))),
            "{text}"
        );
    }

    #[tokio::test]
    async fn refresh_grants_are_timed_by_kind_of_session() {
        let app = TestApp::new().await;
        let t = super::test_support::logged_in(&app, "mona").await;
        app.refresh(&t.refresh_token).await;
        app.refresh("not-a-token").await;
        let text = app.get("/metrics", None).await.body;
        assert!(
            text.contains(
                "credential_issuer_refresh_duration_seconds_count{session=\"local\"} 2\n"
            ),
            "{text}"
        );
        assert!(!text.contains("session=\"upstream\""), "{text}");
    }

    #[tokio::test]
    async fn unknown_paths_share_one_label() {
        let app = TestApp::new().await;
        for path in [
            "/no/such/page-1",
            "/no/such/page-2",
            "/.env",
            "/wp-login.php",
        ] {
            app.get(path, None).await;
        }
        let text = app.get("/metrics", None).await.body;
        assert!(
            text.contains(&format!("{} 4\n", count("unmatched", "4xx"))),
            "{text}"
        );
        for path in ["page-1", "page-2", ".env", "wp-login"] {
            assert!(!text.contains(path), "{path} became a label:\n{text}");
        }
    }
}

#[cfg(test)]
mod latency_tests {
    use std::time::Duration;

    #[test]
    fn latencies_are_rounded_to_the_microsecond() {
        for (elapsed, printed) in [
            (Duration::from_nanos(30_527), "0.03"),
            (Duration::from_nanos(31_999), "0.031"),
            (Duration::from_micros(1_234_567), "1234.567"),
            (Duration::ZERO, "0.0"),
        ] {
            assert_eq!(format!("{:?}", super::round_ms(elapsed)), printed);
        }
    }
}
