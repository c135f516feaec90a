//! The OAuth side of the issuer: device authorization (RFC 8628), polling the token endpoint,
//! the refresh grant and revocation (RFC 7009), and the machine grants (token exchange, RFC
//! 8693; client credentials with a signed assertion, RFC 7523), all as form posts.

use credential_shared::oauth::{
    DeviceAuthorizationRequest, DeviceAuthorizationResponse, RevocationRequest, TokenRequest,
    TokenResponse, CLIENT_ASSERTION_JWT_BEARER, GRANT_CLIENT_CREDENTIALS, GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN, GRANT_TOKEN_EXCHANGE, PLUGIN_CLIENT_ID, TOKEN_TYPE_JWT,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Endpoints, IssuerClient, IssuerError};
use crate::base::secret::Secret;

impl IssuerClient {
    /// Starts the device flow for `cluster`.
    pub(crate) fn authorize_device(
        &self,
        endpoints: &Endpoints,
        client_id: &str,
        cluster: &str,
    ) -> Result<DeviceAuthorizationResponse, IssuerError> {
        let form = DeviceAuthorizationRequest {
            client_id: client_id.to_owned(),
            scope: None,
            cluster: cluster.to_owned(),
        };
        self.post_form(&endpoints.device_authorization, &form)
    }

    /// One poll of the token endpoint with the device code. `authorization_pending` and
    /// `slow_down` come back as [`IssuerError::OAuth`], for the caller to keep polling.
    pub(crate) fn poll_device(
        &self,
        endpoints: &Endpoints,
        client_id: &str,
        device_code: &Secret,
    ) -> Result<TokenResponse, IssuerError> {
        let form = TokenRequest {
            grant_type: GRANT_DEVICE_CODE.to_owned(),
            client_id: client_id.to_owned(),
            device_code: Some(device_code.expose().to_owned()),
            ..TokenRequest::default()
        };
        self.post_form(&endpoints.token, &form)
    }

    /// Exchanges a refresh token for a new access token and a new refresh token (the presented
    /// one is spent).
    pub(crate) fn refresh(
        &self,
        endpoints: &Endpoints,
        client_id: &str,
        refresh_token: &Secret,
    ) -> Result<TokenResponse, IssuerError> {
        let form = TokenRequest {
            grant_type: GRANT_REFRESH_TOKEN.to_owned(),
            client_id: client_id.to_owned(),
            device_code: None,
            refresh_token: Some(refresh_token.expose().to_owned()),
            ..TokenRequest::default()
        };
        self.post_form(&endpoints.token, &form)
    }

    /// Exchanges a CI platform's identity token for a token for `cluster` (RFC 8693). The answer
    /// has no refresh token: the next call exchanges again.
    pub(crate) fn exchange(
        &self,
        endpoints: &Endpoints,
        subject_token: &Secret,
        cluster: &str,
    ) -> Result<TokenResponse, IssuerError> {
        let form = TokenRequest {
            grant_type: GRANT_TOKEN_EXCHANGE.to_owned(),
            client_id: PLUGIN_CLIENT_ID.to_owned(),
            subject_token: Some(subject_token.expose().to_owned()),
            subject_token_type: Some(TOKEN_TYPE_JWT.to_owned()),
            audience: Some(cluster.to_owned()),
            ..TokenRequest::default()
        };
        self.post_form(&endpoints.token, &form)
    }

    /// Asks for a token for `cluster` as the registered `machine`, proved by its signed
    /// `assertion` (client credentials, RFC 7523 client authentication).
    pub(crate) fn client_credentials(
        &self,
        endpoints: &Endpoints,
        machine: &str,
        assertion: &Secret,
        cluster: &str,
    ) -> Result<TokenResponse, IssuerError> {
        let form = TokenRequest {
            grant_type: GRANT_CLIENT_CREDENTIALS.to_owned(),
            client_id: machine.to_owned(),
            client_assertion_type: Some(CLIENT_ASSERTION_JWT_BEARER.to_owned()),
            client_assertion: Some(assertion.expose().to_owned()),
            audience: Some(cluster.to_owned()),
            ..TokenRequest::default()
        };
        self.post_form(&endpoints.token, &form)
    }

    /// Revokes a refresh token, and with it the session (RFC 7009).
    pub(crate) fn revoke(
        &self,
        endpoints: &Endpoints,
        client_id: &str,
        refresh_token: &Secret,
    ) -> Result<(), IssuerError> {
        let form = RevocationRequest {
            token: refresh_token.expose().to_owned(),
            token_type_hint: Some("refresh_token".to_owned()),
            client_id: client_id.to_owned(),
        };
        let url = &endpoints.revocation;
        let result = self.send_form(url, &form)?;
        self.check_status(url, result).map(drop)
    }

    pub(super) fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &impl Serialize,
    ) -> Result<T, IssuerError> {
        let result = self.send_form(url, form)?;
        self.read_json(url, result)
    }

    pub(super) fn send_form(
        &self,
        url: &str,
        form: &impl Serialize,
    ) -> Result<Result<ureq::Response, ureq::Error>, IssuerError> {
        let body = serde_urlencoded::to_string(form).map_err(IssuerError::Encode)?;
        Ok(self
            .agent
            .post(url)
            .set("Content-Type", "application/x-www-form-urlencoded")
            .set("Accept", "application/json")
            .send_string(&body))
    }
}
