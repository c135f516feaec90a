//! `POST /authenticate/{cluster}` (and `POST /authenticate`): Kubernetes webhook token
//! authentication. The API server posts a `TokenReview` (v1 or v1beta1) with the bearer token it
//! was shown; the answer, in the same version, says who that is or why not.
//!
//! The cluster comes from the path because the API server sends only its own `--api-audiences`
//! (usually the service-account issuer), which says nothing about which cluster is asking. The
//! path without a cluster accepts a token only for an audience the API server lists in
//! `spec.audiences`. See docs/operations.md, "Webhook mode".

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use credential_shared::text::Untrusted;
use credential_shared::token_review::{
    TokenReviewRequest, TokenReviewResponse, TokenReviewStatus, UserInfo, API_VERSION_V1,
    API_VERSION_V1BETA1, KIND,
};

use crate::service::review::{self, Outcome};
use crate::service::state::AppState;

/// `POST /authenticate`.
pub(super) async fn authenticate(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, None, body).await
}

/// `POST /authenticate/{cluster}`.
pub(super) async fn authenticate_cluster(
    State(state): State<AppState>,
    Path(cluster): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, Some(&cluster), body).await
}

async fn answer(
    state: &AppState,
    cluster: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let (result, response) = match body {
        Ok(body) => match parse(&body) {
            Ok(req) => reviewed(state, cluster, req).await,
            Err(message) => ("bad_request", plain(StatusCode::BAD_REQUEST, message)),
        },
        // Too large (413) or unreadable: the rejection's text says which and holds no content.
        Err(rejection) => (
            "bad_request",
            plain(rejection.status(), rejection.body_text()),
        ),
    };
    state.metrics().review(result, started.elapsed());
    response
}

/// The answer to an API server when the database cannot answer: 503, so that it retries.
fn unavailable(fault: crate::store::Fault) -> Response {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the issuer's database is unavailable ({}); retry",
            fault.describe()
        ),
    )
}

async fn reviewed(
    state: &AppState,
    cluster: Option<&str>,
    req: TokenReviewRequest,
) -> (&'static str, Response) {
    let outcome = review::review(state, cluster, &req.spec.token, &req.spec.audiences).await;
    let (result, status) = match outcome {
        Ok(Outcome::Authenticated {
            identity,
            audiences,
        }) => (
            "authenticated",
            TokenReviewStatus {
                authenticated: true,
                user: Some(UserInfo {
                    username: identity.username,
                    uid: identity.uid,
                    groups: identity.groups,
                    extra: identity
                        .extra
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), vec![v]))
                        .collect(),
                }),
                audiences,
                error: String::new(),
            },
        ),
        Ok(Outcome::Refused(why)) => {
            tracing::debug!(reason = why.label(), "token review refused");
            (
                why.label(),
                TokenReviewStatus {
                    error: why.reason().to_owned(),
                    ..TokenReviewStatus::default()
                },
            )
        }
        Err(review::Error::UnknownCluster(name)) => {
            let message = format!(
                "unknown cluster \"{}\": the path must name a cluster of the issuer's config",
                Untrusted::new(&name)
            );
            return ("bad_request", plain(StatusCode::NOT_FOUND, message));
        }
        Err(review::Error::DatabaseDown(fault)) => {
            // A cache miss while the database cannot answer: at once, not after the pool's
            // timeout (the health state already logged the fault).
            return ("error", unavailable(fault));
        }
        Err(review::Error::Store(e)) if e.fault().is_some() => {
            tracing::warn!(error = %Untrusted::long(&crate::store::cause_chain(&e)), "token review failed: database fault");
            return (
                "error",
                unavailable(e.fault().unwrap_or(crate::store::Fault::Unreachable)),
            );
        }
        Err(review::Error::Store(e)) => {
            tracing::error!(error = %e, "token review failed");
            return (
                "error",
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                ),
            );
        }
    };
    let body = TokenReviewResponse {
        api_version: req.api_version,
        kind: KIND.to_owned(),
        status,
    };
    (result, Json(body).into_response())
}

/// Parses the body. The message says what is wrong without quoting the body: serde's own
/// messages can quote values, and the token is one of them.
fn parse(body: &[u8]) -> Result<TokenReviewRequest, String> {
    let req: TokenReviewRequest = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Io | serde_json::error::Category::Syntax => {
                "not valid JSON"
            }
            serde_json::error::Category::Data => "fields of the wrong type",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        format!(
            "malformed TokenReview: {what} at line {} column {}",
            e.line(),
            e.column()
        )
    })?;
    if req.kind != KIND {
        return Err(format!(
            "malformed TokenReview: kind must be {KIND}, not {:?}",
            truncate(&req.kind)
        ));
    }
    if req.api_version != API_VERSION_V1 && req.api_version != API_VERSION_V1BETA1 {
        return Err(format!(
            "unsupported apiVersion {:?}: use {API_VERSION_V1} or {API_VERSION_V1BETA1}",
            truncate(&req.api_version)
        ));
    }
    if req.spec.token.is_empty() {
        return Err("malformed TokenReview: spec.token is empty".to_owned());
    }
    Ok(req)
}

fn plain(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
