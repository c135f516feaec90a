//! `POST /oauth/revoke` (RFC 7009): a client ends its session (logout).

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Form;
use credential_shared::oauth::RevocationRequest;

use super::{check_client, form, required};
use crate::http::{ClientAddr, OAuthReply, RequestId};
use crate::secrets::secret::hash;
use crate::service::state::AppState;
use crate::store::AuditEvent;

/// `POST /oauth/revoke` (RFC 7009): ends the session of a refresh token. Answers 200 for
/// unknown tokens too, as the RFC requires, so it cannot be used to probe tokens.
pub(in crate::http) async fn revoke(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<RevocationRequest>, FormRejection>,
) -> Result<StatusCode, OAuthReply> {
    let req = form(f)?;
    check_client(&state, &req.client_id)?;
    required(Some(req.token.as_str()), "token")?;
    let now = state.now();
    if let Some((session_id, user_id)) = state
        .store()
        .revoke_by_refresh(&hash(&req.token), "logout", now)
        .await?
    {
        state.review_caches().invalidate_session(&session_id);
        tracing::info!(request_id = %rid, session_id, "session revoked by client");
        state.metrics().revocation();
        let e = AuditEvent {
            event: "logout",
            subject: Some(user_id),
            client_addr: Some(addr),
            request_id: Some(rid),
            detail: Some(format!("{{\"session\":{session_id:?}}}")),
            ..AuditEvent::default()
        };
        if let Err(err) = state.store().audit(&e, now).await {
            tracing::error!(error = %err, "audit write failed");
        }
    }
    Ok(StatusCode::OK)
}
