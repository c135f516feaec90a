//! Signing in at an upstream OpenID Connect provider: `POST /upstream/start` sends the browser
//! to the provider, `GET /upstream/callback` brings it back, and the person continues to the
//! consent page exactly as after a local sign-in.
//!
//! The `state` is stored hashed, bound to the browser session that started the login and
//! spent on first use, so a callback from another browser (login CSRF) or a replayed or
//! tampered one gets an error page. The nonce and the PKCE verifier are sealed at rest.

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use credential_shared::text::Untrusted;
use serde::Deserialize;

use super::browser::{audit_failure, current, form, limit_starts, new_session, verified};
use super::{ClientAddr, PageError, RequestId};
use crate::secrets::secret::{constant_time_eq, hash, random_token, Secret};
use crate::service::state::AppState;
use crate::store::{grant_context, login_context, AuditEvent, PendingLogin};
use crate::upstream::{authorize, token};

/// Where providers send the browser back to.
pub(super) const CALLBACK_PATH: &str = "/upstream/callback";
/// How long a person may take at the provider.
const LOGIN_TTL: time::Duration = time::Duration::minutes(10);

#[derive(Deserialize)]
pub(super) struct StartForm {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    csrf_token: String,
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.config().issuer())
}

/// The page for a provider that cannot sign people in now, naming what failed (from a closed
/// set of words, never the provider's own text).
fn unavailable(name: &str, e: &crate::upstream::Error) -> PageError {
    let (title, what) = match e {
        crate::upstream::Error::Unreachable { cause, .. } => (
            "Identity provider unreachable",
            format!(
                "The issuer cannot reach {name} right now ({}).",
                cause.describe()
            ),
        ),
        _ => (
            "Identity provider unavailable",
            format!("{name} could not sign you in: it {}.", e.describe()),
        ),
    };
    PageError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        title,
        format!("{what} Nothing is wrong with your account. Try again in a few minutes; if it keeps failing, tell your platform team (people with a local account can still sign in with it)."),
    )
}

/// `POST /upstream/start`: a new login at the chosen provider.
pub(super) async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<StartForm>, FormRejection>,
) -> Result<Response, PageError> {
    let f = form(f)?;
    let session = verified(&state, &headers, &f.csrf_token).await?;
    let Some(provider) = state.upstreams().get(&f.provider) else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Unknown identity provider",
            "That sign-in option does not exist. Go back and choose one of the buttons.",
        ));
    };
    let now = state.now();
    limit_starts(
        &state,
        &format!("upstream_start:addr:{addr}"),
        now,
        "Too many sign-ins were started from your address.",
    )
    .await?;
    let request = authorize::Request::new();
    let state_hash = hash(request.state.expose());
    let sealer = state.sealer();
    let seal = |v: &Secret, what: &str| {
        sealer
            .seal(v, &login_context(&state_hash, what))
            .map_err(|e| PageError::internal(&e))
    };
    let pending = PendingLogin {
        state_hash: state_hash.clone(),
        provider: provider.config().id.clone(),
        web_session_hash: session.id_hash.clone(),
        nonce_sealed: seal(&request.nonce, "nonce")?,
        verifier_sealed: seal(&request.verifier, "verifier")?,
        expires_at: now + LOGIN_TTL,
    };
    // The metadata is cached for an hour, so building the URL alone would send the browser
    // to a provider that is down: ask it first (a short GET of its discovery document).
    let url = match provider.probe().await {
        Ok(()) => {
            provider
                .authorization_url(&request, &redirect_uri(&state), now)
                .await
        }
        Err(e) => Err(e),
    };
    let url = match url {
        Ok(u) => u,
        Err(e) => {
            state
                .metrics()
                .upstream_failure(&provider.config().id, "sign_in_start", e.label());
            tracing::warn!(request_id = %rid, provider = %provider.config().id, cause = e.label(), error = %Untrusted::long(&e), "upstream sign-in could not start");
            return Err(unavailable(&provider.config().name, &e));
        }
    };
    state.store().create_upstream_login(&pending, now).await?;
    tracing::info!(request_id = %rid, provider = %provider.config().id, "upstream sign-in started");
    Ok(Redirect::to(url.as_str()).into_response())
}

#[derive(Deserialize)]
pub(super) struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

fn invalid_link() -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "Sign-in link not valid",
        "This sign-in response is not valid for this browser, was already used, or has expired. Go back to the start, enter your code again and choose your identity provider.",
    )
}

/// `GET /upstream/callback`.
pub(super) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    q: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let now = state.now();
    let Ok(Query(q)) = q else {
        return Err(invalid_link());
    };
    let Some(session) = current(&state, &headers).await? else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Session expired",
            "Your browser session with the issuer ended (or cookies are blocked). Go back to the start and enter your code again.",
        ));
    };
    let Some(st) = q.state.filter(|s| !s.is_empty() && s.len() <= 128) else {
        return Err(invalid_link());
    };
    // Spent here whatever happens next: a state is good for one callback.
    let login = state.store().take_upstream_login(&hash(&st), now).await?;
    let Some(login) = login.filter(|l| constant_time_eq(&l.web_session_hash, &session.id_hash))
    else {
        tracing::warn!(request_id = %rid, client_addr = %Untrusted::new(&addr), "upstream callback with an unknown, spent or foreign state");
        audit_failure(&state, "login.upstream.bad_state", None, &addr, &rid, now).await;
        return Err(invalid_link());
    };
    let Some(provider) = state.upstreams().get(&login.provider) else {
        return Err(invalid_link());
    };
    let name = provider.config().name.clone();
    // RFC 9207: a provider that names itself in the response must be the one this login went
    // to (mix-up defence; the ID token's `iss` is checked against it as well).
    let expected_iss = provider.config().issuer_url.as_str().trim_end_matches('/');
    if q.iss
        .as_deref()
        .is_some_and(|iss| iss.trim_end_matches('/') != expected_iss)
    {
        audit_failure(&state, "login.upstream.mix_up", None, &addr, &rid, now).await;
        return Err(invalid_link());
    }
    if let Some(error) = q.error {
        // Only a short, plain code is echoed; the provider's description is not shown.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        audit_failure(&state, "login.upstream.refused", None, &addr, &rid, now).await;
        let message = if code == "access_denied" {
            format!("{name} did not sign you in (access denied). If you cancelled, go back to the start and try again; otherwise ask your platform team whether you may use this cluster.")
        } else {
            format!("{name} reported an error ({code}). Go back to the start and try again.")
        };
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Sign-in refused by your identity provider",
            message,
        ));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return Err(invalid_link());
    };
    let open = |sealed: &str, what: &str| {
        state
            .sealer()
            .open(sealed, &login_context(&login.state_hash, what))
            .map_err(|e| PageError::internal(&e))
    };
    let nonce = open(&login.nonce_sealed, "nonce")?;
    let verifier = open(&login.verifier_sealed, "verifier")?;
    let exchanged = provider
        .exchange(
            &Secret::new(code),
            &verifier,
            &nonce,
            &redirect_uri(&state),
            now,
        )
        .await;
    let (identity, tokens) = match exchanged {
        Ok(x) => x,
        // Only `invalid_grant` means the code itself was refused (expired, used, not ours).
        Err(e) if e.ends_session() => {
            state
                .metrics()
                .upstream_failure(&login.provider, "sign_in", e.label());
            tracing::warn!(request_id = %rid, provider = %login.provider, cause = e.label(), error = %Untrusted::long(&e), "upstream sign-in refused");
            audit_failure(&state, "login.upstream.failed", None, &addr, &rid, now).await;
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Sign-in could not be completed",
                format!("{name} did not confirm your sign-in (the code may have expired or been used). Go back to the start and try again."),
            ));
        }
        Err(e) => {
            state
                .metrics()
                .upstream_failure(&login.provider, "sign_in", e.label());
            tracing::error!(request_id = %rid, provider = %login.provider, cause = e.label(), error = %Untrusted::long(&e), "upstream sign-in failed");
            audit_failure(&state, "login.upstream.failed", None, &addr, &rid, now).await;
            return Err(unavailable(&name, &e));
        }
    };
    if !token::email_allowed(provider.config(), &identity) {
        audit_failure(
            &state,
            "login.upstream.domain_refused",
            Some(&identity.username),
            &addr,
            &rid,
            now,
        )
        .await;
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Account not allowed",
            format!(
                "You signed in at {name} as {}, but this issuer accepts only accounts of {}. Sign out there and sign in with your work account.",
                identity.email.as_deref().unwrap_or(&identity.username),
                provider.config().allowed_email_domains.join(", ")
            ),
        ));
    }
    let new_id = random_token(12).expose().to_owned();
    let user = match state
        .store()
        .sign_in_upstream(&login.provider, &identity, &new_id, now)
        .await
    {
        Ok(u) => u,
        Err(crate::store::Error::Conflict(_)) => {
            audit_failure(
                &state,
                "login.upstream.name_taken",
                Some(&identity.username),
                &addr,
                &rid,
                now,
            )
            .await;
            return Err(PageError::new(
                StatusCode::CONFLICT,
                "Name already taken",
                format!("The issuer already has a different account called {}. Ask your platform team to resolve it.", identity.username),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if user.disabled_at.is_some() {
        audit_failure(
            &state,
            "login.failed",
            Some(&user.username),
            &addr,
            &rid,
            now,
        )
        .await;
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Account disabled",
            "Your account is disabled at this issuer. Ask your platform team.",
        ));
    }
    if let (Some(refresh), Some(device_id)) = (&tokens.refresh_token, &session.device_id) {
        let sealed = state
            .sealer()
            .seal(refresh, &grant_context(device_id))
            .map_err(|e| PageError::internal(&e))?;
        state
            .store()
            .put_upstream_grant(device_id, &login.provider, &sealed)
            .await?;
    }
    let e = AuditEvent {
        event: "login.upstream",
        actor: Some(user.username.clone()),
        subject: Some(user.id.clone()),
        client_addr: Some(addr),
        request_id: Some(rid.clone()),
        detail: Some(format!("{{\"provider\":{:?}}}", login.provider)),
        ..AuditEvent::default()
    };
    if let Err(err) = state.store().audit(&e, now).await {
        tracing::error!(error = %err, "audit write failed");
    }
    // A fresh session id for the signed-in browser (no fixation).
    let back = state.store().web_return_to(&session.id_hash).await?;
    state.store().delete_web_session(&session.id_hash).await?;
    let browser = new_session(&state, Some(user.id.clone()), session.device_id.clone()).await?;
    tracing::info!(request_id = %rid, user = %Untrusted::new(&user.username), provider = %login.provider, "signed in upstream");
    let next = super::browser::next_page(&browser, back.as_deref(), &user.username);
    Ok(browser.respond(next))
}
