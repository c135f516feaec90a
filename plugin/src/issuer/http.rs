//! Reading the issuer's answers: JSON bodies, statuses, and the failures that mean the URL is
//! not an issuer at all (plain http to a TLS port, no discovery document) rather than an issuer
//! that refused.

use credential_shared::oauth::OAuthError;
use serde::de::DeserializeOwned;

use super::error::is_busy;
use super::tls::is_tls_error;
use super::{IssuerClient, IssuerError};

impl IssuerClient {
    pub(super) fn read_json<T: DeserializeOwned>(
        &self,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, IssuerError> {
        let response = self.check_status(url, result)?;
        response
            .into_json()
            .map_err(|source| IssuerError::Malformed {
                issuer: self.issuer().to_owned(),
                url: url.to_owned(),
                source,
            })
    }

    /// Sorts a response into success (2xx), an OAuth error (a JSON error body on 400 or 401),
    /// any other status, or a transport failure.
    pub(super) fn check_status(
        &self,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, IssuerError> {
        match result {
            Ok(response) if (200..300).contains(&response.status()) => Ok(response),
            // 1xx/3xx: with redirects off, ureq hands a redirect back as a response.
            Ok(response) => Err(IssuerError::Status {
                issuer: self.issuer().to_owned(),
                url: url.to_owned(),
                status: response.status(),
                retry_after: None,
            }),
            Err(ureq::Error::Status(status, response)) => {
                Err(self.error_answer(url, status, response, false))
            }
            Err(ureq::Error::Transport(transport)) => {
                if let Some(answer) = self.speaks_https(&transport) {
                    return Err(answer);
                }
                Err(IssuerError::Unreachable {
                    issuer: self.issuer().to_owned(),
                    tls: is_tls_error(&transport),
                    ca_given: self.ca_given,
                    source: Box::new(transport),
                })
            }
        }
    }

    /// For a plain-http issuer, a server that answered but not in HTTP: the issuer (or some
    /// other TLS server) listens there with https, and the person is told the URL to use.
    pub(super) fn speaks_https(&self, transport: &ureq::Transport) -> Option<IssuerError> {
        if !self.issuer.is_http() {
            return None;
        }
        let garbled = match transport.kind() {
            ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader => true,
            ureq::ErrorKind::Io => transport.to_string().contains("didn't end with"),
            _ => false,
        };
        if !garbled {
            return None;
        }
        // A TLS record starts with its type (alert 21, handshake 22) and version major 3;
        // ureq quotes the bytes it read.
        let text = transport.to_string();
        let tls = text.contains("[21, 3, ") || text.contains("[22, 3, ");
        Some(IssuerError::SpeaksHttps {
            issuer: self.issuer().to_owned(),
            https: format!("https{}", &self.issuer()["http".len()..]),
            tls,
        })
    }

    /// A discovery request that got an answer which is not this issuer's document: a status
    /// that says there is no such document here, or a body that is not one.
    pub(super) fn not_an_issuer(&self, url: &str, err: IssuerError) -> IssuerError {
        let missing = match &err {
            IssuerError::Status { status, .. } => matches!(status, 401 | 403 | 404 | 405),
            IssuerError::OAuth { status, .. } | IssuerError::Api { status, .. } => {
                matches!(status, 401 | 403 | 404)
            }
            IssuerError::Malformed { .. } => true,
            _ => false,
        };
        if missing {
            IssuerError::NotAnIssuer {
                issuer: self.issuer().to_owned(),
                url: url.to_owned(),
            }
        } else {
            err
        }
    }

    /// What an error status (4xx, 5xx) from `url` says, with the issuer's explanation when its
    /// body has one: the requests API's `ApiErrorBody` (when `api`), else an OAuth error on
    /// 400, 401, 429 and 5xx (a refusal, or why it cannot serve now, and its `Retry-After`),
    /// else the bare status.
    pub(super) fn error_answer(
        &self,
        url: &str,
        status: u16,
        response: ureq::Response,
        api: bool,
    ) -> IssuerError {
        let retry_after = retry_after(&response);
        // ureq bounds a body read as a string (10 MB); what is printed of it is bounded again.
        let body = response.into_string().unwrap_or_default();
        if api {
            let parsed = serde_json::from_str::<credential_shared::api::ApiErrorBody>(&body);
            match parsed {
                Ok(b) if status < 500 || !b.message.is_empty() => {
                    return IssuerError::Api {
                        issuer: self.issuer().to_owned(),
                        status,
                        message: b.message,
                    }
                }
                Err(_) if status < 500 => {
                    return IssuerError::Api {
                        issuer: self.issuer().to_owned(),
                        status,
                        message: format!("HTTP {status}"),
                    }
                }
                _ => {}
            }
        }
        if matches!(status, 400 | 401) || is_busy(status) {
            if let Ok(error) = serde_json::from_str::<OAuthError>(&body) {
                return IssuerError::OAuth {
                    issuer: self.issuer().to_owned(),
                    status,
                    error,
                    retry_after,
                };
            }
        }
        IssuerError::Status {
            issuer: self.issuer().to_owned(),
            url: url.to_owned(),
            status,
            retry_after,
        }
    }

    /// Accepts an endpoint from the discovery document only as https (or plain http when the
    /// issuer itself is a plain-http loopback URL), so that discovery cannot downgrade the
    /// requests that carry secrets.
    pub(super) fn check_endpoint(&self, endpoint: String) -> Result<String, IssuerError> {
        let ok = url::Url::parse(&endpoint).is_ok_and(|u| {
            u.scheme() == "https" || (u.scheme() == "http" && self.issuer.is_http())
        });
        if ok {
            Ok(endpoint)
        } else {
            Err(IssuerError::BadEndpoint {
                issuer: self.issuer().to_owned(),
                endpoint,
            })
        }
    }
}

/// The seconds of a `Retry-After` header in its delta-seconds form (what the issuer sends; an
/// HTTP date is not read, and counts as no header). A number too large for `u64` is `u64::MAX`:
/// callers bound the wait.
pub(super) fn retry_after(response: &ureq::Response) -> Option<u64> {
    let value = response.header("Retry-After")?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse().unwrap_or(u64::MAX))
}
