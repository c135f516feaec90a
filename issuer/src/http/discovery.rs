//! Public documents: OpenID discovery and JWKS (what kube-apiserver's `--oidc-issuer-url`
//! fetches), the cluster list, and health probes.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use credential_shared::api::{ClusterInfo, ClusterList};
use credential_shared::oauth::{
    DiscoveryDocument, GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN, PATH_DEVICE_AUTHORIZATION,
    PATH_DEVICE_PAGE, PATH_JWKS, PATH_REVOKE, PATH_TOKEN,
};

use crate::app::AppState;

/// How long API servers and plugins may cache the public documents.
const PUBLIC_CACHE: &str = "public, max-age=60";

pub(super) async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    let base = state.config().issuer();
    let doc = DiscoveryDocument {
        issuer: base.to_owned(),
        device_authorization_endpoint: Some(format!("{base}{PATH_DEVICE_AUTHORIZATION}")),
        token_endpoint: format!("{base}{PATH_TOKEN}"),
        revocation_endpoint: Some(format!("{base}{PATH_REVOKE}")),
        jwks_uri: format!("{base}{PATH_JWKS}"),
        authorization_endpoint: Some(format!("{base}{PATH_DEVICE_PAGE}")),
        grant_types_supported: vec![GRANT_DEVICE_CODE.into(), GRANT_REFRESH_TOKEN.into()],
        id_token_signing_alg_values_supported: vec!["ES256".into()],
        response_types_supported: vec!["id_token".into()],
        subject_types_supported: vec!["public".into()],
        claims_supported: [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "preferred_username",
            "email",
            "groups",
        ]
        .map(String::from)
        .to_vec(),
    };
    ([(header::CACHE_CONTROL, PUBLIC_CACHE)], Json(doc))
}

/// The JWKS is served uncacheable on purpose: kube-apiserver (go-oidc v2) refetches keys for an
/// unknown `kid` only once its cached copy has expired, so a `max-age` here would make API
/// servers refuse tokens signed with a freshly rotated key for that long.
pub(super) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let set = state
        .signer()
        .jwks(state.now(), state.config().key_retention());
    ([(header::CACHE_CONTROL, "no-cache")], Json(set))
}

pub(super) async fn clusters(State(state): State<AppState>) -> impl IntoResponse {
    let cfg = state.config();
    let list = ClusterList {
        issuer: cfg.issuer().to_owned(),
        clusters: cfg
            .clusters
            .iter()
            .map(|c| ClusterInfo {
                name: c.name.clone(),
                // As written in the config: `Url` adds a trailing slash to a bare host.
                server: c
                    .server
                    .as_ref()
                    .map(|u| u.as_str().trim_end_matches('/').to_owned()),
                certificate_authority_data: c.certificate_authority_data.clone(),
                audience: c.audience.clone(),
            })
            .collect(),
    };
    ([(header::CACHE_CONTROL, PUBLIC_CACHE)], Json(list))
}

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.store().ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed: database");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}
