//! The issuer's own API, called with the person's access token: the clusters it serves (for
//! `setup`), the roles one may request, and access requests.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{IssuerClient, IssuerError};
use crate::base::secret::Secret;

impl IssuerClient {
    /// The issuer's public list of clusters (for `setup`).
    pub(crate) fn clusters(&self) -> Result<credential_shared::api::ClusterList, IssuerError> {
        let url = format!("{}{}", self.issuer, credential_shared::api::PATH_CLUSTERS);
        let result = self
            .agent
            .get(&url)
            .set("Accept", "application/json")
            .call();
        self.read_json(&url, result)
    }

    /// Files an access request with the caller's access token.
    pub(crate) fn file_request(
        &self,
        token: &Secret,
        body: &credential_shared::api::NewAccessRequest,
    ) -> Result<credential_shared::api::AccessRequestInfo, IssuerError> {
        let url = format!("{}{}", self.issuer, credential_shared::api::PATH_REQUESTS);
        let result = self
            .agent
            .post(&url)
            .set("Accept", "application/json")
            .set("Authorization", &format!("Bearer {}", token.expose()))
            .send_json(body);
        self.read_api(&url, result)
    }

    /// The roles the caller may request on the token's cluster.
    pub(crate) fn roles(
        &self,
        token: &Secret,
    ) -> Result<credential_shared::api::RoleList, IssuerError> {
        self.get_api(credential_shared::api::PATH_ROLES, token)
    }

    /// The caller's access requests.
    pub(crate) fn my_requests(
        &self,
        token: &Secret,
    ) -> Result<credential_shared::api::AccessRequestList, IssuerError> {
        self.get_api(credential_shared::api::PATH_REQUESTS, token)
    }

    /// `GET path` of the requests API with the caller's access token.
    pub(super) fn get_api<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &Secret,
    ) -> Result<T, IssuerError> {
        let url = format!("{}{path}", self.issuer);
        let result = self
            .agent
            .get(&url)
            .set("Accept", "application/json")
            .set("Authorization", &format!("Bearer {}", token.expose()))
            .call();
        self.read_api(&url, result)
    }

    /// One of the caller's requests, waiting at most `timeout` (a `get` checking a pending
    /// request must not hold kubectl up).
    pub(crate) fn request_status(
        &self,
        token: &Secret,
        id: &str,
        timeout: Duration,
    ) -> Result<credential_shared::api::AccessRequestInfo, IssuerError> {
        let id: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
        let url = format!(
            "{}{}/{id}",
            self.issuer,
            credential_shared::api::PATH_REQUESTS
        );
        let result = self
            .agent
            .get(&url)
            .timeout(timeout)
            .set("Accept", "application/json")
            .set("Authorization", &format!("Bearer {}", token.expose()))
            .call();
        self.read_api(&url, result)
    }

    /// Like `read_json`, for the requests API, whose errors are `ApiErrorBody`s.
    pub(super) fn read_api<T: DeserializeOwned>(
        &self,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, IssuerError> {
        match result {
            Err(ureq::Error::Status(status, response)) => {
                Err(self.error_answer(url, status, response, true))
            }
            other => self.read_json(url, other),
        }
    }
}
