//! The database gate: while [`crate::telemetry::health`] knows the database cannot answer, requests that
//! need it are refused at once with 503 and `Retry-After` (each would otherwise wait out the
//! pool's timeout), and every response that met a database fault is recorded there.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::error::DatabaseFault;
use super::{OAuthReply, PageError};
use crate::service::state::AppState;

/// Routes answered from memory (or, for token reviews, from caches first), which keep working
/// while the database is down.
fn needs_no_database(path: &str) -> bool {
    use credential_shared::{api, oauth as o};
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | o::PATH_DISCOVERY | o::PATH_JWKS | api::PATH_CLUSTERS
    ) || path == "/authenticate"
        || path.starts_with("/authenticate/")
}

/// Whether the client of `path` reads OAuth JSON rather than a page.
fn speaks_json(path: &str) -> bool {
    path.starts_with("/oauth/") || path.starts_with("/api/")
}

/// The middleware (see the module's comment).
pub(super) async fn database_gate(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if !needs_no_database(&path) && state.health().fail_fast().is_some() {
        return if speaks_json(&path) {
            OAuthReply::database(None).into_response()
        } else {
            PageError::database(None).into_response()
        };
    }
    let res = next.run(req).await;
    if let Some(f) = res.extensions().get::<DatabaseFault>() {
        if state.health().report(f.fault, state.now()) {
            tracing::error!(
                fault = f.fault.describe(),
                error = %credential_shared::text::Untrusted::long(&f.detail),
                "database fault: requests that need the database are answered 503 until it passes"
            );
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_served_without_the_database() {
        for p in [
            "/healthz",
            "/readyz",
            "/openid/v1/jwks",
            "/authenticate",
            "/authenticate/prod",
        ] {
            assert!(needs_no_database(p), "{p}");
        }
        for p in [
            "/oauth/token",
            "/device",
            "/login",
            "/api/v1/requests",
            "/authenticatex",
        ] {
            assert!(!needs_no_database(p), "{p}");
        }
    }
}
