//! The second sign-in step for accounts with TOTP: after a correct password the browser gets a
//! new session that is *not* signed in but waits, for a few minutes, for a code from that
//! account's authenticator app. Wrong codes are rate limited per account and per address; a
//! code is accepted once (its time step is recorded with a conditional `UPDATE`).

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use credential_shared::text::Untrusted;
use serde::Deserialize;

use super::account_templates;
use super::attempts;
use super::browser::{self, audit_failure, current, form, new_session, see_other, verified};
use super::{ClientAddr, PageError, RequestId};
use crate::secrets::totp::Verdict;
use crate::service::state::AppState;
use crate::store::{User, WebSession};
use crate::telemetry::metrics::Failure;

/// How long a browser may take between the password and the code.
const PENDING_TTL: time::Duration = time::Duration::minutes(5);

/// After a correct password of an account with TOTP: a fresh session (no fixation) waiting for
/// the code, and the code page.
pub(super) async fn begin(
    state: &AppState,
    old: &WebSession,
    user: &User,
) -> Result<Response, PageError> {
    state.store().delete_web_session(&old.id_hash).await?;
    let browser = new_session(state, None, old.device_id.clone()).await?;
    state
        .store()
        .set_web_pending(
            &browser.session.id_hash,
            Some((&user.id, state.now() + PENDING_TTL)),
        )
        .await?;
    Ok(browser.respond(see_other("/login/totp")))
}

/// The waiting session and its account, or where to go instead.
async fn pending(state: &AppState, headers: &HeaderMap) -> Result<(WebSession, User), Response> {
    let session = match current(state, headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(see_other("/login")),
        Err(e) => return Err(e.into_response()),
    };
    let user_id = match state.store().web_pending(&session.id_hash, state.now()).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "Too much time passed since you entered your password, or you did not enter it in this browser. Sign in again.",
            )
            .link_to("/login", "Sign in again")
            .into_response())
        }
        Err(e) => return Err(PageError::from(e).into_response()),
    };
    match state.store().user_by_id(&user_id).await {
        Ok(Some(u)) if u.disabled_at.is_none() && !u.is_expired(state.now()) => Ok((session, u)),
        Ok(_) => Err(see_other("/login")),
        Err(e) => Err(PageError::from(e).into_response()),
    }
}

/// `GET /login/totp`.
pub(super) async fn totp_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (session, user) = match pending(&state, &headers).await {
        Ok(x) => x,
        Err(page) => return Ok(page),
    };
    Ok(Html(account_templates::totp_page(
        session.csrf_token.expose(),
        &user.username,
        None,
    ))
    .into_response())
}

/// The code form. No `Debug`: it holds a one-time code.
#[derive(Deserialize)]
pub(super) struct TotpForm {
    #[serde(default)]
    totp_code: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /login/totp`.
pub(super) async fn totp_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<TotpForm>, FormRejection>,
) -> Result<Response, PageError> {
    let f = form(f)?;
    verified(&state, &headers, &f.csrf_token)
        .await
        .map_err(|e| e.link_to("/login", "Sign in again"))?;
    let (session, user) = match pending(&state, &headers).await {
        Ok(x) => x,
        Err(page) => return Ok(page),
    };
    let csrf = session.csrf_token.expose();
    let cfg = state.config();
    let now = state.now();
    let window = cfg.rate_limits.window;
    let limit = cfg.rate_limits.totp_failures;
    let user_key = format!("totp:user:{}", user.id);
    let addr_key = format!("totp:addr:{addr}");
    let store = state.store();
    let page = |status: StatusCode, error: &str| {
        (
            status,
            Html(account_templates::totp_page(
                csrf,
                &user.username,
                Some(error),
            )),
        )
            .into_response()
    };
    let counters = attempts::address_and_account(&addr_key, &user_key, limit);
    let reserved = match attempts::reserve(store, now, window, &counters).await? {
        Ok(r) => r,
        Err(refused) => {
            tracing::warn!(request_id = %rid, client_addr = %Untrusted::new(&addr), "second factor rate limited");
            audit_failure(
                &state,
                "login.totp_rate_limited",
                Some(&user.username),
                &addr,
                &rid,
                now,
            )
            .await;
            return attempts::refused(
                &state,
                &refused,
                "Too many wrong codes.",
                Some("Then sign in again."),
                |msg| {
                    Ok(account_templates::totp_page(
                        csrf,
                        &user.username,
                        Some(msg),
                    ))
                },
            );
        }
    };
    let verdict = match check_user_code(&state, &user, &f.totp_code).await? {
        Verdict::Valid(step) if store.use_totp_step(&user.id, step).await? => Verdict::Valid(step),
        // Another sign-in used this step between the check and the update.
        Verdict::Valid(step) => Verdict::Reused {
            wait_secs: ((step + 1) * crate::secrets::totp::STEP_SECS - now.unix_timestamp()).max(1),
        },
        other => other,
    };
    if let Verdict::Reused { wait_secs } = verdict {
        // The right code, already used (typically the one that just proved the enrolment,
        // still on the person's screen): not a guess, so it does not count as a failure, and
        // the person is told what to wait for instead of "not right".
        reserved.release(store).await?;
        tracing::info!(request_id = %rid, client_addr = %Untrusted::new(&addr), "second-factor code already used");
        return Ok(page(
            StatusCode::UNAUTHORIZED,
            &format!(
                "That code was just used, and each code works once. Wait for your app to show the next code (in about {wait_secs} seconds), then enter that one."
            ),
        ));
    }
    if verdict == Verdict::Wrong {
        tracing::info!(request_id = %rid, client_addr = %Untrusted::new(&addr), "wrong second-factor code");
        state.metrics().failure(Failure::Password);
        audit_failure(
            &state,
            "login.totp_failed",
            Some(&user.username),
            &addr,
            &rid,
            now,
        )
        .await;
        return Ok(page(
            StatusCode::UNAUTHORIZED,
            "That code is not right. Enter the code your app shows now; if it keeps failing, check that your phone's clock is right.",
        ));
    }
    reserved.release(store).await?;
    store.clear_failures(&user_key).await?;
    browser::signed_in(&state, &session, &user, &rid).await
}

/// The sealing context of an account's TOTP seed: a sealed seed copied to another row does not
/// open.
pub(super) fn user_context(user_id: &str) -> String {
    format!("totp:{user_id}")
}

/// Checks `code` against the account's second factor: valid (the time step it matches, later
/// than the last one used; the caller records it), already used, or wrong.
async fn check_user_code(state: &AppState, user: &User, code: &str) -> Result<Verdict, PageError> {
    let Some(totp) = state.store().user_totp(&user.id).await? else {
        return Ok(Verdict::Wrong);
    };
    let seed = state
        .sealer()
        .open(&totp.sealed, &user_context(&user.id))
        .map_err(|e| PageError::internal(&e))?;
    let Some(key) = crate::secrets::totp::base32_decode(seed.expose()) else {
        return Err(PageError::internal(&crate::store::Error::Corrupt {
            table: "users",
            detail: "TOTP seed is not base32".to_owned(),
        }));
    };
    Ok(crate::secrets::totp::check(
        &key,
        code,
        state.now().unix_timestamp(),
        totp.last_step,
    ))
}
