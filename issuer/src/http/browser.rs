//! The browser side of the sign-in pages: the web session behind the
//! `__Host-credential-session` cookie (created, found, verified against its CSRF token),
//! the local pages a sign-in may return to, and the end of a sign-in (a fresh session id, the
//! next page) shared by the password step (`pages`) and the second factor (`second_factor`).

use axum::extract::rejection::FormRejection;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use credential_shared::text::Untrusted;
use time::OffsetDateTime;

use super::attempts;
use super::templates;
use super::PageError;
use crate::secrets::secret::{constant_time_eq, hash, random_token, Secret};
use crate::service::state::AppState;
use crate::store::{AuditEvent, WebSession};
use crate::telemetry::metrics::Failure;

/// Name of the browser-session cookie. The `__Host-` prefix makes browsers refuse it unless it
/// is `Secure`, has `Path=/` and no `Domain`, so a sibling host cannot plant one.
pub(super) const COOKIE: &str = "__Host-credential-session";

/// Lifetime of a browser session.
const WEB_SESSION_TTL: time::Duration = time::Duration::minutes(30);

/// A web session and, when it was just created, the `Set-Cookie` value to send.
pub(super) struct Browser {
    pub(super) session: WebSession,
    set_cookie: Option<HeaderValue>,
}

impl Browser {
    /// Adds the cookie (if new) to a response.
    pub(super) fn respond(self, res: impl IntoResponse) -> Response {
        let mut res = res.into_response();
        if let Some(c) = self.set_cookie {
            res.headers_mut().append(header::SET_COOKIE, c);
        }
        res
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

fn set_cookie(value: &Secret) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        value.expose(),
        WEB_SESSION_TTL.whole_seconds()
    ))
    .ok()
}

pub(super) async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<WebSession>, PageError> {
    match cookie_value(headers) {
        Some(v) if !v.is_empty() && v.len() <= 128 => {
            Ok(state.store().web_session(&hash(v), state.now()).await?)
        }
        _ => Ok(None),
    }
}

pub(super) async fn new_session(
    state: &AppState,
    user_id: Option<String>,
    device_id: Option<String>,
) -> Result<Browser, PageError> {
    let id = random_token(32);
    let now = state.now();
    let session = WebSession {
        id_hash: hash(id.expose()),
        csrf_token: random_token(24),
        user_id,
        device_id,
        expires_at: now + WEB_SESSION_TTL,
    };
    state.store().create_web_session(&session, now).await?;
    Ok(Browser {
        session,
        set_cookie: set_cookie(&id),
    })
}

/// The browser's session, or a new one. New sessions are rows in the database, so each client
/// address may start only so many per window (twice the device-authorization limit: a person
/// opens the page about once per sign-in).
pub(super) async fn current_or_new(
    state: &AppState,
    headers: &HeaderMap,
    addr: &str,
) -> Result<Browser, PageError> {
    if let Some(session) = current(state, headers).await? {
        return Ok(Browser {
            session,
            set_cookie: None,
        });
    }
    limit_starts(
        state,
        &format!("web_session:addr:{addr}"),
        state.now(),
        "Too many sign-in pages were opened from your address.",
    )
    .await?;
    new_session(state, None, None).await
}

/// Counts one start of a sign-in from a client address under `key`, which may start twice
/// the device-authorization limit per window; over it, a 429 page saying `too_many` and when
/// to try again.
pub(super) async fn limit_starts(
    state: &AppState,
    key: &str,
    now: OffsetDateTime,
    too_many: &str,
) -> Result<(), PageError> {
    let limits = &state.config().rate_limits;
    let started = state
        .store()
        .reserve_attempt(
            key,
            now,
            limits.window,
            limits.device_authorizations.saturating_mul(2),
        )
        .await?;
    if !started.allowed {
        state.metrics().failure(Failure::RateLimited);
        return Err(PageError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            format!("{too_many} {}", attempts::try_again(&started)),
        ));
    }
    Ok(())
}

/// The session of a form post, if its CSRF token matches.
pub(super) async fn verified(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<WebSession, PageError> {
    let session = current(state, headers).await?.ok_or_else(PageError::csrf)?;
    if csrf.is_empty() || !constant_time_eq(csrf, session.csrf_token.expose()) {
        return Err(PageError::csrf());
    }
    Ok(session)
}

pub(super) fn form<T>(f: Result<Form<T>, FormRejection>) -> Result<T, PageError> {
    f.map(|Form(v)| v).map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "The form was incomplete. Go back and try again.",
        )
    })
}

/// The pages that need a signed-in person and that a sign-in sends the browser back to.
const RETURN_PAGES: &[&str] = &["/audit", "/requests"];

/// Whether `p` is a path a sign-in may send a browser back to: one of [`RETURN_PAGES`] with an
/// optional query, nothing that a browser could read as another host (no scheme, no `//`).
pub(super) fn is_return_path(p: &str) -> bool {
    let page = p.split_once('?').map_or(p, |(page, _)| page);
    RETURN_PAGES.contains(&page)
        && p.len() <= 2048
        // Visible ASCII only (a header value), and no backslash some browsers read as `/`.
        && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// The answer to a browser that is not signed in on a page that needs it: the sign-in page,
/// remembering `back` (if it is a [return path](is_return_path), else `fallback`) so that the
/// sign-in ends there.
pub(super) async fn sign_in_then(
    state: &AppState,
    headers: &HeaderMap,
    addr: &str,
    back: &str,
    fallback: &'static str,
) -> Result<Response, PageError> {
    let browser = current_or_new(state, headers, addr).await?;
    let back = if is_return_path(back) { back } else { fallback };
    state
        .store()
        .set_web_return_to(&browser.session.id_hash, Some(back))
        .await?;
    Ok(browser.respond(see_other("/login")))
}

pub(super) fn see_other(to: &'static str) -> Response {
    Redirect::to(to).into_response()
}

/// Ends the password (and second-factor) steps: a fresh session id for the signed-in browser
/// (no fixation; the old one is gone), then on to consent if a device is waiting.
pub(super) async fn signed_in(
    state: &AppState,
    session: &WebSession,
    user: &crate::store::User,
    rid: &str,
) -> Result<Response, PageError> {
    let back = state.store().web_return_to(&session.id_hash).await?;
    state.store().delete_web_session(&session.id_hash).await?;
    let browser = new_session(state, Some(user.id.clone()), session.device_id.clone()).await?;
    tracing::info!(request_id = %rid, user = %Untrusted::new(&user.username), "signed in");
    let next = next_page(&browser, back.as_deref(), &user.username);
    Ok(browser.respond(next))
}

/// Where a browser goes once signed in: to consent when a device waits, else back to the page
/// that sent it to sign in (a local path, see [`is_return_path`]), else a "signed in" page.
pub(super) fn next_page(browser: &Browser, back: Option<&str>, username: &str) -> Response {
    if browser.session.device_id.is_some() {
        see_other("/consent")
    } else if let Some(path) = back.filter(|p| is_return_path(p)) {
        Redirect::to(path).into_response()
    } else {
        Html(templates::signed_in_page(username)).into_response()
    }
}

pub(super) async fn audit_failure(
    state: &AppState,
    event: &'static str,
    username: Option<&str>,
    addr: &str,
    rid: &str,
    now: OffsetDateTime,
) {
    let e = AuditEvent {
        event,
        actor: username.map(str::to_owned),
        client_addr: Some(addr.to_owned()),
        request_id: Some(rid.to_owned()),
        ..AuditEvent::default()
    };
    if let Err(err) = state.store().audit(&e, now).await {
        tracing::error!(error = %err, "audit write failed");
    }
}
