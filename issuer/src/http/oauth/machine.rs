//! The machine grants of `POST /oauth/token`: token exchange (RFC 8693) of a CI platform's
//! identity token, and client credentials with a machine's signed assertion (RFC 7523). The
//! rules are in `service::machines`; this maps its answer to the wire, with no refresh token.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use credential_shared::oauth::{OAuthErrorCode as E, TokenRequest, TokenResponse, TOKEN_TYPE_JWT};
use credential_shared::text::Untrusted;

use crate::http::OAuthReply;
use crate::service::machines::{self, Caller, ClientCredentials, Error, Exchange, Minted};
use crate::service::state::AppState;

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`.
pub(super) async fn token_exchange(
    state: &AppState,
    addr: &str,
    rid: &str,
    req: &TokenRequest,
) -> Result<Response, OAuthReply> {
    let ask = Exchange {
        subject_token: req.subject_token.as_deref(),
        subject_token_type: req.subject_token_type.as_deref(),
        requested_token_type: req.requested_token_type.as_deref(),
        audience: req.audience.as_deref(),
        resource: req.resource.as_deref(),
    };
    let caller = Caller {
        addr,
        request_id: rid,
    };
    answer(
        machines::exchange(state, ask, caller).await,
        "token exchange",
    )
}

/// `grant_type=client_credentials`.
pub(super) async fn client_credentials(
    state: &AppState,
    addr: &str,
    rid: &str,
    req: &TokenRequest,
) -> Result<Response, OAuthReply> {
    let ask = ClientCredentials {
        client_id: &req.client_id,
        assertion_type: req.client_assertion_type.as_deref(),
        assertion: req.client_assertion.as_deref(),
        audience: req.audience.as_deref(),
        resource: req.resource.as_deref(),
    };
    let caller = Caller {
        addr,
        request_id: rid,
    };
    answer(
        machines::client_credentials(state, ask, caller).await,
        "client credentials",
    )
}

fn answer(result: Result<Minted, Error>, grant: &'static str) -> Result<Response, OAuthReply> {
    match result {
        Ok(m) => {
            tracing::info!(
                grant,
                username = %Untrusted::new(&m.claims.preferred_username),
                cluster = m.claims.cluster.as_deref().unwrap_or_default(),
                session = m.claims.sid.as_deref().unwrap_or_default(),
                "machine token issued"
            );
            let body = TokenResponse {
                access_token: m.token.expose().to_owned(),
                token_type: "Bearer".into(),
                expires_in: u64::try_from(m.claims.exp - m.claims.iat).unwrap_or(0),
                refresh_token: String::new(),
                session_expires_at: None,
                api_server: m.api_server,
                issued_token_type: Some(TOKEN_TYPE_JWT.to_owned()),
            };
            Ok((
                StatusCode::OK,
                [
                    (axum::http::header::CACHE_CONTROL, "no-store"),
                    (axum::http::header::PRAGMA, "no-cache"),
                ],
                Json(body),
            )
                .into_response())
        }
        Err(Error::Refused { code, description }) => {
            tracing::info!(grant, error = code.as_str(), reason = %Untrusted::long(&description), "machine token refused");
            let reply = OAuthReply::bad(code, description);
            Err(if code == E::InvalidClient {
                reply.unauthorized()
            } else {
                reply
            })
        }
        Err(Error::Keys(e)) => {
            tracing::warn!(grant, error = %Untrusted::long(&e), "machine token: workload issuer keys unavailable");
            Err(OAuthReply::unavailable(
                "the workload issuer's signing keys could not be fetched; try again shortly",
            ))
        }
        Err(Error::Store(e)) => Err(e.into()),
        Err(Error::Signing(e)) => Err(e.into()),
    }
}
