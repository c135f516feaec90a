//! Error responses: OAuth JSON errors for the API, HTML pages for people. 5xx bodies are
//! generic; the detail is logged once, here.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use credential_shared::oauth::{OAuthError, OAuthErrorCode};
use credential_shared::text::Untrusted;

use super::templates;
use crate::store::Fault;

/// What the client reads when the database failed it.
const DATABASE_UNAVAILABLE: &str =
    "the issuer cannot use its database right now; try again in a few seconds";

/// A response that failed for a database fault carries this in its extensions, so that
/// `database_gate` records it in [`crate::telemetry::health`] and logs it once (not once per request).
#[derive(Debug, Clone)]
pub(super) struct DatabaseFault {
    /// The kind.
    pub(super) fault: Fault,
    /// The database's words, for the log.
    pub(super) detail: String,
}

/// The `Retry-After` of a 503 `temporarily_unavailable`: what it waits for (an identity
/// provider, a database) is usually back within seconds, and a client asking again then costs
/// little.
pub(super) const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// An OAuth error response (RFC 6749 section 5.2).
#[derive(Debug)]
pub struct OAuthReply {
    status: StatusCode,
    code: OAuthErrorCode,
    description: Option<String>,
    /// Seconds for a `Retry-After` header (rate limits).
    retry_after: Option<u64>,
    /// The database fault behind a 503, for the health state.
    fault: Option<DatabaseFault>,
}

impl OAuthReply {
    /// A 400 with `code`.
    #[must_use]
    pub fn bad(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            description: Some(description.into()),
            retry_after: None,
            fault: None,
        }
    }

    /// A 400 with `code` and no description.
    #[must_use]
    pub fn code(code: OAuthErrorCode) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            description: None,
            retry_after: None,
            fault: None,
        }
    }

    /// A 429 `slow_down`: a rate limit outside the token endpoint's polling.
    #[must_use]
    pub fn too_many(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: OAuthErrorCode::SlowDown,
            description: Some(description.into()),
            retry_after: None,
            fault: None,
        }
    }

    /// A 503 `temporarily_unavailable`: try again later, nothing was spent. It carries
    /// `Retry-After: UNAVAILABLE_RETRY_AFTER_SECS`, so that clients come back soon rather than
    /// after a back-off of their own choosing (`retry_after` sets another wait).
    #[must_use]
    pub fn unavailable(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: OAuthErrorCode::TemporarilyUnavailable,
            description: Some(description.into()),
            retry_after: Some(UNAVAILABLE_RETRY_AFTER_SECS),
            fault: None,
        }
    }

    /// A 401 `invalid_client`.
    #[must_use]
    pub fn invalid_client() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: OAuthErrorCode::InvalidClient,
            description: Some("unknown client_id".into()),
            retry_after: None,
            fault: None,
        }
    }

    /// A 500 `server_error`; `err` is logged, not sent.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> Self {
        log_internal(err);
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: OAuthErrorCode::ServerError,
            description: Some("internal error; see the issuer's log".into()),
            retry_after: None,
            fault: None,
        }
    }

    /// The same refusal as a 401 (RFC 6749 section 5.2: `invalid_client` of a client that
    /// tried to authenticate).
    #[must_use]
    pub fn unauthorized(mut self) -> Self {
        self.status = StatusCode::UNAUTHORIZED;
        self
    }

    /// Adds a `Retry-After` header of `seconds`.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The code (for tests).
    #[must_use]
    pub fn error_code(&self) -> OAuthErrorCode {
        self.code
    }
}

impl IntoResponse for OAuthReply {
    fn into_response(self) -> Response {
        let body = OAuthError {
            error: self.code,
            error_description: self.description,
        };
        let mut res = (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(body),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if let Some(f) = self.fault {
            res.extensions_mut().insert(f);
        }
        res
    }
}

impl OAuthReply {
    /// A 503 `temporarily_unavailable` for a database fault, with `Retry-After`.
    pub(super) fn database(fault: Option<DatabaseFault>) -> Self {
        let mut reply = Self::unavailable(DATABASE_UNAVAILABLE);
        reply.fault = fault;
        reply
    }
}

/// The fault of a store error the database is to blame for (answered 503), with its causes.
fn database_fault(e: &crate::store::Error) -> Option<DatabaseFault> {
    e.fault().map(|fault| DatabaseFault {
        fault,
        detail: crate::store::cause_chain(e),
    })
}

impl From<crate::store::Error> for OAuthReply {
    fn from(e: crate::store::Error) -> Self {
        database_fault(&e).map_or_else(|| Self::internal(&e), |f| Self::database(Some(f)))
    }
}

impl From<crate::signing::Error> for OAuthReply {
    fn from(e: crate::signing::Error) -> Self {
        Self::internal(&e)
    }
}

/// An error page for a person.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
    /// Where the page's one link goes and what it says; `None`: no link (the message says
    /// what to do). Default: "Start again" at `/device`, the start of a sign-in.
    link: Option<(String, &'static str)>,
    /// The database fault behind a 503, for the health state and `Retry-After`.
    fault: Option<DatabaseFault>,
}

impl PageError {
    /// A page with `status`, a title and a message (plain text; escaped when rendered).
    #[must_use]
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
            link: Some(("/device".to_owned(), "Start again")),
            fault: None,
        }
    }

    /// The same page with its link to `href` saying `label` (a path on this issuer).
    #[must_use]
    pub(super) fn link_to(mut self, href: impl Into<String>, label: &'static str) -> Self {
        self.link = Some((href.into(), label));
        self
    }

    /// The same page without a link: for pages where starting a sign-in is no way on (a
    /// contractor's invitation: they have no device code yet).
    #[must_use]
    pub(super) fn without_link(mut self) -> Self {
        self.link = None;
        self
    }

    /// A 503 page for a database fault: nothing is wrong with what the person did.
    pub(super) fn database(fault: Option<DatabaseFault>) -> Self {
        let mut page = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The issuer cannot reach its database right now. Nothing you entered was lost: \
             wait a few seconds and try again (reload this page, or go back and send the form \
             again). If it keeps failing, tell your platform team.",
        );
        page.fault = fault;
        page
    }

    /// A 500 page; `err` is logged, not shown.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> Self {
        log_internal(err);
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The issuer could not complete this request. Try again; if it keeps failing, tell your platform team.",
        )
    }

    /// The CSRF check failed.
    #[must_use]
    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form is no longer valid (it may have been opened in another window, or your session ended). Go back to the start and try again.",
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Html(templates::error_page(
                self.title,
                &self.message,
                self.link
                    .as_ref()
                    .map(|(href, label)| (href.as_str(), *label)),
            )),
        )
            .into_response();
        if let Some(f) = self.fault {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
            );
            res.extensions_mut().insert(f);
        }
        res
    }
}

impl From<crate::store::Error> for PageError {
    fn from(e: crate::store::Error) -> Self {
        database_fault(&e).map_or_else(|| Self::internal(&e), |f| Self::database(Some(f)))
    }
}

fn log_internal(err: &(dyn std::error::Error + 'static)) {
    let chain = crate::store::cause_chain(err);
    tracing::error!(error = %Untrusted::long(&chain), "internal error");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporarily_unavailable_tells_clients_when_to_come_back() {
        let res =
            OAuthReply::unavailable("the identity provider cannot be reached").into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after = res
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        assert_eq!(retry_after, Some("5"));
        let res = OAuthReply::unavailable("busy")
            .retry_after(30)
            .into_response();
        let retry_after = res
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        assert_eq!(retry_after, Some("30"));
        let res = OAuthReply::bad(OAuthErrorCode::InvalidGrant, "no").into_response();
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
    }
}
