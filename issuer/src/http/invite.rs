//! `/invite/{token}`: a contractor opens the single-use link an administrator handed over, sets
//! a password and enrols a TOTP second factor. The admin never sees either.
//!
//! The TOTP seed is generated when the link is first opened and kept sealed on the invitation
//! (context `invite:<id>`), so reloading the page shows the same QR code. Accepting re-seals it
//! for the account (`totp:<user id>`) and marks the invitation used in one transaction whose
//! conditional `UPDATE` lets only one of two racing submissions win.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use credential_shared::text::Untrusted;
use serde::Deserialize;
use time::OffsetDateTime;

use super::account_templates::{self, DoneView, InviteView};
use super::attempts;
use super::browser::{current_or_new, form, verified};
use super::pages::format_time;
use super::second_factor::user_context;
use super::{ClientAddr, PageError, RequestId};
use crate::secrets::secret::{hash, Secret};
use crate::service::admin::MIN_PASSWORD_LEN;
use crate::service::state::AppState;
use crate::store::{Acceptance, AuditEvent, Invitation};
use crate::telemetry::metrics::Failure;

fn invite_context(id: &str) -> String {
    format!("invite:{id}")
}

/// Whether `token` has the shape of an invitation token (url-safe base64, bounded): anything
/// else is no invitation, and is never looked up or shown.
fn token_shaped(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The invitation behind `token` if it can still be used, or the page saying why not. Refusals
/// of a real invitation are audited.
async fn usable(
    state: &AppState,
    token: Result<Path<String>, PathRejection>,
    addr: &str,
    rid: &str,
) -> Result<(String, Invitation), PageError> {
    let not_found = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            "Invitation not found",
            "There is no invitation at this address. Check that you copied the whole link, or ask your platform team for a new one.",
        )
        .without_link()
    };
    let Ok(Path(token)) = token else {
        return Err(not_found());
    };
    if !token_shaped(&token) {
        return Err(not_found());
    }
    let Some(inv) = state
        .store()
        .invitation_by_token_hash(&hash(&token))
        .await?
    else {
        return Err(not_found());
    };
    let now = state.now();
    let refusal = if inv.used_at.is_some() {
        Some((
            "used",
            "Invitation already used",
            format!(
                "This invitation link has already been used; it works only once. If you set up your account with it, go on with `{}` and then kubectl (see the project's README). If you did not, tell your platform team at once.",
                account_templates::setup_command(
                    state.config().issuer(),
                    super::discovery::generated_ca(state).is_some()
                )
            ),
        ))
    } else if inv.revoked_at.is_some() {
        Some((
            "revoked",
            "Invitation withdrawn",
            format!(
                "Your platform team withdrew this invitation. If you still need access, ask them for a new link: they run `{}`.",
                renew_command(&inv.username)
            ),
        ))
    } else if inv.expires_at <= now {
        Some((
            "expired",
            "Invitation expired",
            format!(
                "This invitation link expired on {}. Ask your platform team for a new link: they run `{}`, and you open the link it prints.",
                format_time(inv.expires_at),
                renew_command(&inv.username)
            ),
        ))
    } else if inv.account_disabled || inv.account_expires_at.is_some_and(|e| e <= now) {
        Some((
            "account",
            "Account no longer valid",
            "The account this invitation was for has been disabled or has expired. Ask your platform team.".to_owned(),
        ))
    } else {
        None
    };
    if let Some((reason, title, message)) = refusal {
        let detail = Some(format!("{{\"reason\":{reason:?}}}"));
        audit_invite(state, "invitation.refused", &inv, addr, rid, detail, now).await;
        // `/device` is no way on from here: the person has no account to sign in with yet (or,
        // for a used link, has one and goes on with kubectl, as the message says).
        return Err(PageError::new(StatusCode::GONE, title, message).without_link());
    }
    Ok((token, inv))
}

/// The invitation's seed: the one stored, or a new one (sealed and stored first).
async fn seed_of(state: &AppState, inv: &Invitation) -> Result<Secret, PageError> {
    let ctx = invite_context(&inv.id);
    let sealed = if let Some(s) = &inv.totp_seed_sealed {
        s.clone()
    } else {
        let fresh = crate::secrets::totp::new_secret();
        let sealed = state
            .sealer()
            .seal(&fresh, &ctx)
            .map_err(|e| PageError::internal(&e))?;
        if state.store().set_invitation_seed(&inv.id, &sealed).await? {
            return Ok(fresh);
        }
        // Another request stored one first: use that.
        let stored = state
            .store()
            .invitation_by_id(&inv.id)
            .await?
            .and_then(|i| i.totp_seed_sealed);
        stored.ok_or_else(|| {
            PageError::new(
                StatusCode::GONE,
                "Invitation already used",
                "This invitation link has already been used; it works only once.",
            )
            .without_link()
        })?
    };
    state
        .sealer()
        .open(&sealed, &ctx)
        .map_err(|e| PageError::internal(&e))
}

/// The QR code of `uri` as an inline `<svg>` element.
fn qr_svg(uri: &Secret) -> Result<String, PageError> {
    let code = qrcode::QrCode::new(uri.expose().as_bytes()).map_err(|_| {
        PageError::internal(&crate::store::Error::Corrupt {
            table: "invitations",
            detail: "the otpauth URI does not fit a QR code".to_owned(),
        })
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .build();
    // Inline in HTML: drop the XML declaration.
    Ok(svg
        .find("<svg")
        .map_or_else(String::new, |i| svg[i..].to_owned()))
}

/// What the operator runs to give `username` a new link (the `invite renew` subcommand).
fn renew_command(username: &str) -> String {
    format!("credential-issuer invite renew {username}")
}

fn render(
    state: &AppState,
    token: &str,
    inv: &Invitation,
    seed: &Secret,
    csrf: &str,
    error: Option<&str>,
    password: Option<&str>,
) -> Result<String, PageError> {
    let host = state
        .config()
        .issuer_url
        .host_str()
        .unwrap_or("kubectl-credential");
    let uri = crate::secrets::totp::otpauth_uri(host, &inv.username, seed);
    let account_expires = inv.account_expires_at.map(format_time);
    Ok(account_templates::invite_page(
        csrf,
        &InviteView {
            username: &inv.username,
            action: &format!("/invite/{token}"),
            qr_svg: maud::PreEscaped(&qr_svg(&uri)?),
            secret_base32: seed.expose(),
            link_expires: &format_time(inv.expires_at),
            account_expires: account_expires.as_deref(),
            min_password_len: MIN_PASSWORD_LEN,
            password,
        },
        error,
    ))
}

/// `GET /invite/{token}`.
pub(super) async fn invite_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    token: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let (token, inv) = usable(&state, token, &addr, &rid).await?;
    let browser = current_or_new(&state, &headers, &addr).await?;
    let seed = seed_of(&state, &inv).await?;
    let page = render(
        &state,
        &token,
        &inv,
        &seed,
        browser.session.csrf_token.expose(),
        None,
        None,
    )?;
    Ok(browser.respond(Html(page)))
}

/// The invitation form. No `Debug`: it holds a password and a code.
#[derive(Deserialize)]
pub(super) struct InviteForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    #[serde(default)]
    totp_code: String,
    #[serde(default)]
    csrf_token: String,
}

/// What is wrong with a new password, in words for the person.
fn password_problem(password: &str, confirm: &str, username: &str) -> Option<&'static str> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        Some("The password must be at least 12 characters long.")
    } else if !crate::secrets::secret::constant_time_eq(password, confirm) {
        Some("The two passwords do not match.")
    } else if password.trim().eq_ignore_ascii_case(username) {
        Some("The password must not be your username.")
    } else {
        None
    }
}

/// `POST /invite/{token}`.
pub(super) async fn invite_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    token: Result<Path<String>, PathRejection>,
    f: Result<Form<InviteForm>, FormRejection>,
) -> Result<Response, PageError> {
    let f = form(f)?;
    // A stale form (another tab, an ended session) starts again at the invitation itself.
    // Only a token of the shape invitations have goes into the link: the path is the
    // requester's, and a page must not echo (and grow with) whatever it holds.
    let again_at = match &token {
        Ok(Path(t)) if token_shaped(t) => format!("/invite/{t}"),
        _ => "/".to_owned(),
    };
    let session = verified(&state, &headers, &f.csrf_token)
        .await
        .map_err(|e| e.link_to(again_at, "Open the invitation again"))?;
    let csrf = session.csrf_token.expose();
    let (token, inv) = usable(&state, token, &addr, &rid).await?;
    let cfg = state.config();
    let now = state.now();
    let window = cfg.rate_limits.window;
    let limit = cfg.rate_limits.totp_failures;
    let inv_key = format!("totp:invite:{}", inv.id);
    let addr_key = format!("totp:addr:{addr}");
    let store = state.store();
    let seed = seed_of(&state, &inv).await?;
    let again =
        |status: StatusCode, error: &str, password: Option<&str>| -> Result<Response, PageError> {
            Ok((
                status,
                Html(render(
                    &state,
                    &token,
                    &inv,
                    &seed,
                    csrf,
                    Some(error),
                    password,
                )?),
            )
                .into_response())
        };
    // The trail of this submission: each of its outcomes is one event about the invitation.
    let audit = |event: &'static str| audit_invite(&state, event, &inv, &addr, &rid, None, now);
    let counters = attempts::address_and_account(&addr_key, &inv_key, limit);
    let reserved = match attempts::reserve(store, now, window, &counters).await? {
        Ok(r) => r,
        Err(refused) => {
            tracing::warn!(request_id = %rid, client_addr = %Untrusted::new(&addr), "invitation code entry rate limited");
            audit("invitation.rate_limited").await;
            return attempts::refused(
                &state,
                &refused,
                "Too many wrong codes.",
                Some("Check that your phone's clock is right."),
                |msg| render(&state, &token, &inv, &seed, csrf, Some(msg), None),
            );
        }
    };
    if let Some(problem) = password_problem(&f.password, &f.password_confirm, &inv.username) {
        // Not a guess: the code was not checked.
        reserved.release(store).await?;
        return again(StatusCode::BAD_REQUEST, problem, None);
    }
    let key = crate::secrets::totp::base32_decode(seed.expose()).unwrap_or_default();
    let Some(step) = crate::secrets::totp::verify(&key, &f.totp_code, now.unix_timestamp(), None)
    else {
        tracing::info!(request_id = %rid, client_addr = %Untrusted::new(&addr), "wrong code on an invitation");
        state.metrics().failure(Failure::Password);
        audit("invitation.totp_failed").await;
        // The password was fine: give it back in both fields, so a mistyped code costs only
        // the code. It goes only to the browser that just sent it, in the answer to its own
        // POST, over TLS and with `Cache-Control: no-store` (as every page); never to a log.
        // Asking for the password again instead would make the person retype a long
        // passphrase for a six-digit typo, which invites a weaker one.
        return again(
            StatusCode::BAD_REQUEST,
            "That code is not right. Scan the QR code again (or type the key), then enter the code your app shows now. Your password is kept.",
            Some(&f.password),
        );
    };
    let password = Secret::new(f.password);
    let phc = tokio::task::spawn_blocking(move || crate::secrets::password::hash(&password))
        .await
        .map_err(|e| crate::secrets::password::Error::from_join(&e))
        .and_then(|r| r)
        .map_err(|e| PageError::internal(&e))?;
    let sealed = state
        .sealer()
        .seal(&seed, &user_context(&inv.user_id))
        .map_err(|e| PageError::internal(&e))?;
    let accepted = store
        .accept_invitation(
            &inv,
            &Acceptance {
                password_hash: &phc,
                totp_sealed: &sealed,
                totp_step: step,
            },
            now,
        )
        .await?;
    if !accepted {
        return Err(PageError::new(
            StatusCode::GONE,
            "Invitation already used",
            "This invitation link has already been used; it works only once.",
        )
        .without_link());
    }
    reserved.release(store).await?;
    store.clear_failures(&inv_key).await?;
    audit("invitation.used").await;
    tracing::info!(request_id = %rid, user = %Untrusted::new(&inv.username), "invitation accepted");
    let ca = super::discovery::generated_ca(&state).map(|_| super::discovery::PATH_CA);
    let clusters: Vec<&str> = cfg.clusters.iter().map(|c| c.name.as_str()).collect();
    Ok(Html(account_templates::invite_done_page(&DoneView {
        username: &inv.username,
        issuer: cfg.issuer(),
        ca_path: ca,
        clusters: &clusters,
    }))
    .into_response())
}

/// An audit row about an invitation; its subject is the account name (as for
/// `invitation.created`).
async fn audit_invite(
    state: &AppState,
    event: &'static str,
    inv: &Invitation,
    addr: &str,
    rid: &str,
    detail: Option<String>,
    now: OffsetDateTime,
) {
    let e = AuditEvent {
        event,
        subject: Some(inv.username.clone()),
        client_addr: Some(addr.to_owned()),
        request_id: Some(rid.to_owned()),
        detail,
        ..AuditEvent::default()
    };
    if let Err(err) = state.store().audit(&e, now).await {
        tracing::error!(error = %err, "audit write failed");
    }
}
