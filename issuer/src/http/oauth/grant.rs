//! `POST /oauth/token`: the grant dispatch by `grant_type` to the device code grant
//! ([`super::device`]) and the refresh grant ([`super::refresh`]).

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::response::Response;
use axum::Form;
use credential_shared::oauth::{
    OAuthErrorCode as E, TokenRequest, GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN,
};

use super::device::device_code_grant;
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
        "" => Err(OAuthReply::bad(E::InvalidRequest, "grant_type is required")),
        other => Err(OAuthReply::bad(
            E::UnsupportedGrantType,
            format!("grant_type {:?} is not supported", truncate(other)),
        )),
    }
}
