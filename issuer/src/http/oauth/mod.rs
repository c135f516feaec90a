//! The OAuth endpoints: device authorization (RFC 8628, [`device`]), token (the device code
//! and refresh grants, [`token`], [`device`], [`refresh`]), and revocation (RFC 7009,
//! [`revoke`]). One file per endpoint or grant, so that each reads top to bottom like the
//! RFC section it implements; what they share (the form, the client check) is here.

mod device;
mod grant;
mod machine;
mod refresh;
mod revoke;
mod token;

use axum::extract::rejection::FormRejection;
use axum::Form;
use credential_shared::oauth::OAuthErrorCode as E;

use super::OAuthReply;
use crate::service::state::AppState;

pub(super) use device::device_authorization;
pub(super) use grant::token;
pub(super) use revoke::revoke;

fn form<T>(f: Result<Form<T>, FormRejection>) -> Result<T, OAuthReply> {
    f.map(|Form(v)| v).map_err(|e| {
        OAuthReply::bad(
            E::InvalidRequest,
            format!("malformed form body: {}", e.body_text()),
        )
    })
}

/// A form field the request must carry, or the `invalid_request` refusal naming it.
fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, OAuthReply> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthReply::bad(E::InvalidRequest, format!("{name} is required")))
}

fn check_client(state: &AppState, client_id: &str) -> Result<(), OAuthReply> {
    required(Some(client_id), "client_id")?;
    if !state.config().clients.iter().any(|c| c == client_id) {
        return Err(OAuthReply::invalid_client());
    }
    Ok(())
}

/// Keeps echoed client input short in error descriptions.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
