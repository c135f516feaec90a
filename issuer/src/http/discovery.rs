//! Public documents: OpenID discovery and JWKS (what kube-apiserver's `--oidc-issuer-url`
//! fetches), the cluster list, the generated CA certificate (`/ca.crt`), and health probes.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use credential_shared::api::{ClusterInfo, ClusterList};
use credential_shared::oauth::{
    DiscoveryDocument, GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN, PATH_DEVICE_AUTHORIZATION,
    PATH_DEVICE_PAGE, PATH_JWKS, PATH_REVOKE, PATH_TOKEN,
};

use crate::service::state::AppState;

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
            .map(|c| match &c.proxy {
                // A proxied cluster is reached through its proxy: its URL and the CA of the
                // proxy's certificate, never the real API server's.
                Some(p) => ClusterInfo {
                    name: c.name.clone(),
                    server: c.published_server(),
                    certificate_authority_data: proxy_ca(&state, &p.tls),
                    audience: c.audience.clone(),
                },
                None => ClusterInfo {
                    name: c.name.clone(),
                    // As written in the config: `Url` adds a trailing slash to a bare host.
                    server: c.published_server(),
                    certificate_authority_data: c.certificate_authority_data.clone(),
                    audience: c.audience.clone(),
                },
            })
            .collect(),
    };
    ([(header::CACHE_CONTROL, PUBLIC_CACHE)], Json(list))
}

/// The CA a proxied cluster's kubeconfig trusts (base64 PEM): the operator's, or the issuer's
/// generated local CA, which signs the proxy's generated certificate (read per request, like
/// `/ca.crt`, so a CA generated after this process started is published too).
fn proxy_ca(state: &AppState, tls: &crate::config::ProxyTls) -> Option<String> {
    use base64::Engine as _;
    match tls {
        crate::config::ProxyTls::Files { ca_data, .. } => Some(ca_data.clone()),
        crate::config::ProxyTls::Generated => {
            std::fs::read(state.config().tls_dir().join("ca.crt"))
                .ok()
                .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem))
        }
    }
}

/// Where the issuer's generated CA certificate is served. Only a CA the issuer generated
/// itself is offered: an operator's chain is theirs to publish (and may not be a private CA).
pub(super) const PATH_CA: &str = "/ca.crt";

/// The CA certificate a person must trust to reach this issuer, when the issuer generated it
/// (`None` with the operator's own certificate, or when the file cannot be read).
pub(super) fn generated_ca(state: &AppState) -> Option<Vec<u8>> {
    let config = state.config();
    if config.tls != crate::config::TlsSource::Generated {
        return None;
    }
    // Public data (a CA certificate, never its key); read per request so a regenerated CA
    // is served without a restart.
    std::fs::read(config.tls_dir().join("ca.crt")).ok()
}

/// `GET /ca.crt`: the generated CA certificate (PEM), which the invitation's "Account ready"
/// page offers for `kubectl credential setup --issuer-ca`. 404 when the issuer serves the
/// operator's certificate.
pub(super) async fn ca_certificate(State(state): State<AppState>) -> axum::response::Response {
    match generated_ca(&state) {
        Some(pem) => (
            [
                (header::CONTENT_TYPE, "application/x-pem-file"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"credential-issuer-ca.crt\"",
                ),
            ],
            pem,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this issuer serves its operator's certificate; ask your platform team for its CA\n",
        )
            .into_response(),
    }
}

pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// Ready while the database answered the last probe (within a second), from memory: a probe
/// with a one-second timeout gets its answer at once even while the database hangs. The body
/// says what is wrong and since when.
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.health().trouble() {
        None => (StatusCode::OK, "ok".to_owned()),
        Some(t) => {
            let since = t
                .since
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let for_s = (state.now() - t.since).whole_seconds();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: {} (since {since}, {for_s} s ago); see the issuer's log\n",
                    t.fault.describe()
                ),
            )
        }
    }
}

pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let metrics = state.metrics();
    metrics.set_database_up(state.health().trouble().is_none());
    (
        [(
            header::CONTENT_TYPE,
            crate::telemetry::metrics::CONTENT_TYPE,
        )],
        metrics.render(),
    )
}
