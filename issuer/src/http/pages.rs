//! The verification pages a person uses: enter the code, sign in, approve or deny.
//!
//! Each browser gets a server-side web session (cookie `__Host-credential-session`: `Secure`,
//! `HttpOnly`, `SameSite=Lax`, stored hashed) holding the signed-in user, the device
//! authorization being approved and a CSRF token that every form must echo. Signing in
//! replaces the session id (no session fixation).

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use credential_shared::text::Untrusted;
use serde::Deserialize;

use super::attempts::{self, Counter};
use super::browser::{
    audit_failure, current, current_or_new, form, new_session, see_other, signed_in, verified,
};
use super::templates::{self, ConsentView};
use super::{ClientAddr, PageError, RequestId};
use crate::domain::device::Status;
use crate::domain::origin;
use crate::domain::user_code;
use crate::secrets::secret::{hash, Secret};
use crate::service::state::AppState;
use crate::store::{AuditEvent, WebSession};
use crate::telemetry::metrics::Failure;

pub(super) async fn index() -> Response {
    see_other("/device")
}

pub(super) async fn not_found() -> PageError {
    PageError::new(StatusCode::NOT_FOUND, "Not found", "There is no page here.")
}

#[derive(Deserialize)]
pub(super) struct DeviceQuery {
    user_code: Option<String>,
}

/// `GET /device[?user_code=...]`: the code form, prefilled from `verification_uri_complete`.
/// The person still presses Continue: a link alone never approves anything.
pub(super) async fn device_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    q: Result<Query<DeviceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let browser = current_or_new(&state, &headers, &addr).await?;
    let prefill = q
        .ok()
        .and_then(|Query(q)| q.user_code)
        .and_then(|c| user_code::normalize(&c))
        .map(|c| user_code::display(&c));
    let page = templates::device_page(
        browser.session.csrf_token.expose(),
        prefill.as_deref(),
        None,
    );
    Ok(browser.respond(Html(page)))
}

#[derive(Deserialize)]
pub(super) struct DeviceForm {
    #[serde(default)]
    user_code: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /device`: checks the code (rate limited per client address), then on to sign-in or
/// consent.
pub(super) async fn device_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<DeviceForm>, FormRejection>,
) -> Result<Response, PageError> {
    let f = form(f)?;
    let session = verified(&state, &headers, &f.csrf_token).await?;
    let csrf = session.csrf_token.expose();
    let cfg = state.config();
    let now = state.now();
    let key = format!("user_code:addr:{addr}");
    let window = cfg.rate_limits.window;
    let counters = [Counter {
        key: &key,
        limit: cfg.rate_limits.user_code_failures,
    }];
    let reserved = match attempts::reserve(state.store(), now, window, &counters).await? {
        Ok(r) => r,
        Err(refused) => {
            tracing::warn!(request_id = %rid, client_addr = %Untrusted::new(&addr), "user code entry rate limited");
            audit_failure(&state, "user_code.rate_limited", None, &addr, &rid, now).await;
            return attempts::refused(
                &state,
                &refused,
                "Too many wrong codes from your address.",
                None,
                |msg| Ok(templates::device_page(csrf, None, Some(msg))),
            );
        }
    };
    let device = match user_code::normalize(&f.user_code) {
        Some(code) => state.store().device_by_user_code_hash(&hash(&code)).await?,
        None => None,
    };
    let device = device.filter(|d| d.status == Status::Pending && d.expires_at > now);
    let Some(device) = device else {
        tracing::info!(request_id = %rid, client_addr = %Untrusted::new(&addr), "wrong or expired user code entered");
        state.metrics().failure(Failure::UserCode);
        audit_failure(&state, "user_code.invalid", None, &addr, &rid, now).await;
        return Ok((
            StatusCode::BAD_REQUEST,
            Html(templates::device_page(
                csrf,
                None,
                Some("That code is not valid or has expired. Check the code in your terminal, or run the command again for a new one."),
            )),
        )
            .into_response());
    };
    reserved.release(state.store()).await?;
    // A person who signed in through an upstream provider signs in there again for each code:
    // that sign-in is what hands the issuer the provider refresh token the new session is
    // re-checked with. So their browser session is replaced by a signed-out one.
    if let Some(user_id) = session.user_id.as_deref() {
        if state.store().upstream_provider_of(user_id).await?.is_some() {
            state.store().delete_web_session(&session.id_hash).await?;
            let browser = new_session(&state, None, Some(device.id.clone())).await?;
            return Ok(browser.respond(see_other("/login")));
        }
    }
    state
        .store()
        .set_web_device(&session.id_hash, Some(&device.id))
        .await?;
    Ok(see_other(if session.user_id.is_some() {
        "/consent"
    } else {
        "/login"
    }))
}

/// `GET /login`.
pub(super) async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
) -> Result<Response, PageError> {
    let browser = current_or_new(&state, &headers, &addr).await?;
    let page = templates::login_page(
        browser.session.csrf_token.expose(),
        "",
        None,
        &providers(&state),
    );
    let mut res = browser.respond(Html(page));
    if let Some(csp) = login_csp(&state) {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok(res)
}

/// The sign-in page's CSP: as everywhere, plus the upstream providers' origins in
/// `form-action`, since browsers apply it to the redirect that follows a provider's button.
fn login_csp(state: &AppState) -> Option<HeaderValue> {
    let upstreams = &state.config().upstreams;
    if upstreams.is_empty() {
        return None;
    }
    let origins: Vec<String> = upstreams
        .iter()
        .map(|u| u.issuer_url.origin().ascii_serialization())
        .collect();
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        origins.join(" ")
    ))
    .ok()
}

/// The upstream providers offered on the sign-in page: `(id, name)`.
pub(super) fn providers(state: &AppState) -> Vec<(&str, &str)> {
    state
        .config()
        .upstreams
        .iter()
        .map(|u| (u.id.as_str(), u.name.as_str()))
        .collect()
}

/// The sign-in form. Deliberately no `Debug`: it holds a password.
#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /login`: local accounts. Rate limited per account and per address; unknown accounts
/// cost the same argon2 verification as known ones.
pub(super) async fn login_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let f = form(f)?;
    let session = verified(&state, &headers, &f.csrf_token).await?;
    let csrf = session.csrf_token.expose().to_owned();
    let cfg = state.config();
    let now = state.now();
    let window = cfg.rate_limits.window;
    // No account name holds a control character, and PostgreSQL refuses text with NUL in the
    // lookup, the rate-limit key and the audit row: such characters are dropped here.
    let username: String = f
        .username
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let user_key = format!("password:user:{}", username.to_lowercase());
    let addr_key = format!("password:addr:{addr}");
    let limit = cfg.rate_limits.password_failures;
    let store = state.store();
    let counters = attempts::address_and_account(&addr_key, &user_key, limit);
    let reserved = match attempts::reserve(store, now, window, &counters).await? {
        Ok(r) => r,
        Err(refused) => {
            tracing::warn!(request_id = %rid, client_addr = %Untrusted::new(&addr), "password sign-in rate limited");
            audit_failure(
                &state,
                "login.rate_limited",
                Some(&username),
                &addr,
                &rid,
                now,
            )
            .await;
            return attempts::refused(&state, &refused, "Too many failed sign-ins.", None, |msg| {
                Ok(templates::login_page(
                    &csrf,
                    &username,
                    Some(msg),
                    &providers(&state),
                ))
            });
        }
    };
    let user = if username.is_empty() {
        None
    } else {
        store.user_by_name(&username).await?
    };
    let phc = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_password_hash().to_owned());
    let password = Secret::new(f.password);
    let matches =
        tokio::task::spawn_blocking(move || crate::secrets::password::verify(&phc, &password))
            .await
            .unwrap_or(false);
    let user = user.filter(|u| matches && u.password_hash.is_some() && u.disabled_at.is_none());
    let Some(user) = user else {
        tracing::info!(request_id = %rid, client_addr = %Untrusted::new(&addr), "password sign-in failed");
        state.metrics().failure(Failure::Password);
        audit_failure(&state, "login.failed", Some(&username), &addr, &rid, now).await;
        return Ok((
            StatusCode::UNAUTHORIZED,
            Html(templates::login_page(
                &csrf,
                &username,
                Some("Wrong username or password."),
                &providers(&state),
            )),
        )
            .into_response());
    };
    reserved.release(store).await?;
    store.clear_failures(&user_key).await?;
    if user.is_expired(now) {
        tracing::info!(request_id = %rid, client_addr = %Untrusted::new(&addr), "sign-in of an expired account refused");
        audit_failure(
            &state,
            "login.refused.expired",
            Some(&user.username),
            &addr,
            &rid,
            now,
        )
        .await;
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Account expired",
            format!(
                "Your account expired on {}. Ask your platform team to extend it or to invite you again.",
                user.expires_at.map(format_time).unwrap_or_default()
            ),
        ));
    }
    if user.totp_enrolled {
        return super::second_factor::begin(&state, &session, &user).await;
    }
    if cfg.accounts.require_totp {
        audit_failure(
            &state,
            "login.refused.no_totp",
            Some(&user.username),
            &addr,
            &rid,
            now,
        )
        .await;
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Second factor required",
            "This issuer requires a second factor (an authenticator app) and your account has none. Ask your platform team for an invitation to set one up.",
        ));
    }
    signed_in(&state, &session, &user, &rid).await
}

/// The session's user and pending device, or the page to show instead.
async fn consent_context(
    state: &AppState,
    session: &WebSession,
) -> Result<(crate::store::User, crate::store::Device), Response> {
    let Some(user_id) = session.user_id.as_deref() else {
        return Err(see_other("/login"));
    };
    let user = match state.store().user_by_id(user_id).await {
        Ok(Some(u)) if u.disabled_at.is_none() && !u.is_expired(state.now()) => u,
        Ok(_) => return Err(see_other("/login")),
        Err(e) => return Err(PageError::from(e).into_response()),
    };
    let device = match session.device_id.as_deref() {
        Some(id) => state.store().device_by_id(id).await,
        None => Ok(None),
    };
    match device {
        Ok(Some(d)) if d.status == Status::Pending && d.expires_at > state.now() => Ok((user, d)),
        Ok(_) => Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "No request to approve",
            "There is no pending sign-in request in this browser, or it has expired. Run the command in your terminal again and enter the new code.",
        )
        .into_response()),
        Err(e) => Err(PageError::from(e).into_response()),
    }
}

pub(super) use crate::clock::format_utc as format_time;

/// `GET /consent`.
pub(super) async fn consent_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
) -> Result<Response, PageError> {
    let Some(session) = current(&state, &headers).await? else {
        return Ok(see_other("/device"));
    };
    let (user, device) = match consent_context(&state, &session).await {
        Ok(x) => x,
        Err(page) => return Ok(page),
    };
    let page = consent_html(&state, &session, &user, &device, &addr, None);
    Ok(Html(page).into_response())
}

/// The consent page for `device`, seen by `user` in the browser at `browser_addr`.
fn consent_html(
    state: &AppState,
    session: &WebSession,
    user: &crate::store::User,
    device: &crate::store::Device,
    browser_addr: &str,
    error: Option<&str>,
) -> String {
    let cfg = state.config();
    let now = state.now();
    let groups = cfg.policy.map(&user.groups, &device.cluster).groups();
    // Controls, bidi overrides and zero-width characters are made visible before the template
    // escapes the markup: a user agent must not be able to make the page read otherwise.
    let user_agent = device
        .user_agent
        .as_deref()
        .map(|ua| credential_shared::text::escape(ua, credential_shared::text::LONG));
    let elapsed = std::time::Duration::try_from(now - device.created_at).unwrap_or_default();
    let view = ConsentView {
        username: &user.username,
        groups: &groups,
        cluster: &device.cluster,
        client_id: &device.client_id,
        client_addr: &device.client_addr,
        browser_addr,
        addresses_differ: origin::compare(&device.client_addr, browser_addr)
            == origin::Origin::Different,
        user_agent: user_agent.as_deref(),
        requested_at: &format_time(device.created_at),
        requested_ago: &origin::age(elapsed),
        session_lifetime: &crate::domain::requests::format_duration(cfg.session_ttl),
        expires_in_minutes: ((device.expires_at - now).whole_seconds() + 59) / 60,
        error,
    };
    templates::consent_page(session.csrf_token.expose(), &view)
}

#[derive(Deserialize)]
pub(super) struct ConsentForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    csrf_token: String,
    /// `yes` when the person ticked "I started this sign-in myself on ADDRESS"
    /// ([`templates::CONFIRM_ORIGIN`]); asked for only when the addresses differ.
    #[serde(default)]
    confirm_origin: Option<String>,
}

/// The Approve/Deny button of a decision form: `true` for approve.
pub(super) fn approves(action: &str) -> Result<bool, PageError> {
    match action {
        "approve" => Ok(true),
        "deny" => Ok(false),
        _ => Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "Choose Approve or Deny.",
        )),
    }
}

/// `POST /consent`: approve or deny.
pub(super) async fn consent_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<ConsentForm>, FormRejection>,
) -> Result<Response, PageError> {
    let f = form(f)?;
    let session = verified(&state, &headers, &f.csrf_token).await?;
    let approve = approves(&f.action)?;
    let (user, device) = match consent_context(&state, &session).await {
        Ok(x) => x,
        Err(page) => return Ok(page),
    };
    let now = state.now();
    let elsewhere = origin::compare(&device.client_addr, &addr) == origin::Origin::Different;
    if approve && elsewhere && f.confirm_origin.as_deref() != Some("yes") {
        tracing::info!(request_id = %rid, client_addr = %Untrusted::new(&addr), requested_from = %Untrusted::new(&device.client_addr), "approval from another address without the confirmation");
        let msg = format!(
            "This code was requested from {}, not from this browser's address. To approve it, tick \"I started this sign-in myself on {}\" first; if you did not start it, press Deny.",
            device.client_addr, device.client_addr
        );
        let page = consent_html(&state, &session, &user, &device, &addr, Some(&msg));
        return Ok((StatusCode::BAD_REQUEST, Html(page)).into_response());
    }
    let decided = state
        .store()
        .decide_device(&device.id, &user.id, approve, now)
        .await?;
    state.store().set_web_device(&session.id_hash, None).await?;
    if !decided {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            "Already decided",
            "This request was already approved, denied or has expired.",
        ));
    }
    let e = AuditEvent {
        event: if approve {
            "device.approved"
        } else {
            "device.denied"
        },
        actor: Some(user.username.clone()),
        subject: Some(user.id.clone()),
        cluster: Some(device.cluster.clone()),
        client_addr: Some(addr),
        request_id: Some(rid.clone()),
        detail: Some(
            serde_json::json!({
                "requested_from": device.client_addr,
                "other_address": elsewhere,
            })
            .to_string(),
        ),
        ..AuditEvent::default()
    };
    if let Err(err) = state.store().audit(&e, now).await {
        tracing::error!(error = %err, "audit write failed");
    }
    tracing::info!(request_id = %rid, user = %Untrusted::new(&user.username), cluster = %Untrusted::new(&device.cluster), approve, "device authorization decided");
    Ok(Html(templates::done_page(approve, &device.cluster)).into_response())
}

#[cfg(test)]
mod tests {
    use super::super::browser::is_return_path;

    #[test]
    fn only_local_pages_that_need_sign_in_are_return_paths() {
        for good in [
            "/audit",
            "/audit?person=alice&cluster=prod",
            "/requests",
            "/requests?x=1",
        ] {
            assert!(is_return_path(good), "{good}");
        }
        for bad in [
            "//evil.example/audit",
            "https://evil.example/",
            "https://evil.example/requests",
            "http:/requests",
            "/\\evil.example/requests",
            "/auditx",
            "/requestsx",
            "/requests/../evil",
            "/consent",
            "/login",
            "",
            "/audit?\r\nx",
            "/audit?a b",
            "/audit?\\x",
            "/audit?é",
        ] {
            assert!(!is_return_path(bad), "{bad}");
        }
    }
}
