//! `POST /oauth/token`: the grant dispatch by `grant_type` to the device code grant
//! ([`super::device`]), the refresh grant ([`super::refresh`]) and the machine grants
//! ([`super::machine`]).

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::response::Response;
use axum::Form;
use credential_shared::oauth::{
    OAuthErrorCode as E, TokenRequest, GRANT_CLIENT_CREDENTIALS, GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN, GRANT_TOKEN_EXCHANGE,
};

use super::device::device_code_grant;
use super::machine::{client_credentials, token_exchange};
use super::refresh::refresh_grant;
use super::{form, truncate};
use crate::http::{ClientAddr, OAuthReply, RequestId};
use crate::service::state::AppState;

/// `POST /oauth/token`.
pub(in crate::http) async fn token(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Response, OAuthReply> {
    let req = form(f)?;
    match req.grant_type.as_str() {
        GRANT_DEVICE_CODE => device_code_grant(&state, &addr, &rid, &req).await,
        GRANT_REFRESH_TOKEN => refresh_grant(&state, &addr, &rid, &req).await,
        GRANT_TOKEN_EXCHANGE => token_exchange(&state, &addr, &rid, &req).await,
        GRANT_CLIENT_CREDENTIALS => client_credentials(&state, &addr, &rid, &req).await,
        "" => Err(OAuthReply::bad(E::InvalidRequest, "grant_type is required")),
        other => Err(OAuthReply::bad(
            E::UnsupportedGrantType,
            format!("grant_type {:?} is not supported", truncate(other)),
        )),
    }
}
