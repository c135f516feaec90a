//! RFC 8628's two halves on the issuer's side: `POST /oauth/device_authorization` starts a
//! sign-in (a device code for the client, a user code for the person), and the device-code
//! grant of `POST /oauth/token` answers the client's polls until the person decided.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::{Form, Json};
use credential_shared::oauth::{
    DeviceAuthorizationRequest, DeviceAuthorizationResponse, OAuthErrorCode as E, TokenRequest,
    PATH_DEVICE_PAGE,
};
use credential_shared::text::Untrusted;
use time::OffsetDateTime;

use super::token::{audit_login, contents, mint, new_refresh_token};
use super::{check_client, form, required, truncate};
use crate::domain::device::{poll, PollOutcome, PollState, Status};
use crate::domain::origin;
use crate::domain::user_code;
use crate::http::{ClientAddr, OAuthReply, RequestId};
use crate::secrets::secret::{hash, random_bytes, random_token};
use crate::service::state::AppState;
use crate::store::{AuditEvent, Session, User};
use crate::telemetry::metrics::Failure;

/// `POST /oauth/device_authorization`. Keeps the requesting address, the client's
/// `User-Agent` and the time with the code, for the consent page; refuses addresses outside
/// `[device_flow] allowed_networks` when the operator set it.
pub(in crate::http) async fn device_authorization(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    headers: HeaderMap,
    f: Result<Form<DeviceAuthorizationRequest>, FormRejection>,
) -> Result<Json<DeviceAuthorizationResponse>, OAuthReply> {
    let req = form(f)?;
    check_client(&state, &req.client_id)?;
    let cfg = state.config();
    required(Some(req.cluster.as_str()), "cluster")?;
    if cfg.cluster(&req.cluster).is_none() {
        return Err(OAuthReply::bad(
            E::InvalidScope,
            format!("unknown cluster {:?}", truncate(&req.cluster)),
        ));
    }
    if req.scope.as_deref().is_some_and(|s| !is_scope(s)) {
        return Err(OAuthReply::bad(
            E::InvalidScope,
            "scope must be space-separated tokens of visible ASCII (RFC 6749 section 3.3)",
        ));
    }
    let now = state.now();
    let key = format!("device_auth:addr:{addr}");
    let started = state
        .store()
        .reserve_attempt(
            &key,
            now,
            cfg.rate_limits.window,
            cfg.rate_limits.device_authorizations,
        )
        .await?;
    if !started.allowed {
        tracing::warn!(request_id = %rid, client_addr = %Untrusted::new(&addr), "device authorization rate limited");
        state.metrics().failure(Failure::RateLimited);
        let secs = started.retry_after.as_secs();
        return Err(OAuthReply::too_many(format!(
            "too many sign-ins started from this address; try again in {secs} s"
        ))
        .retry_after(secs));
    }
    // After the flood limit's reservation, so that refusals (and their audit rows) from one
    // address are bounded by it like any other attempt.
    if !cfg.device_allowed_networks.allows(&addr) {
        refuse_network(&state, &req.cluster, &addr, &rid, now).await;
        return Err(OAuthReply::bad(
            E::UnauthorizedClient,
            format!(
                "device sign-in is not allowed from this network ({}); connect from the company network or VPN and try again, or ask your platform team to add your network to [device_flow] allowed_networks",
                truncate(&addr)
            ),
        ));
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| origin::bound_user_agent(v.as_bytes()));
    let expires_at = now + cfg.device_code_ttl;
    let interval = i64::try_from(cfg.poll_interval.as_secs()).unwrap_or(5);
    // A user-code collision is astronomically rare; retry a few times rather than fail.
    for _ in 0..4 {
        let device_code = random_token(32);
        let Some(code) = user_code::from_random(&random_bytes(32)) else {
            continue;
        };
        let new = crate::store::NewDevice {
            id: random_token(12).expose().to_owned(),
            device_code_hash: hash(device_code.expose()),
            user_code_hash: hash(&code),
            client_id: req.client_id.clone(),
            cluster: req.cluster.clone(),
            scope: req.scope.clone(),
            client_addr: addr.clone(),
            user_agent: user_agent.clone(),
            expires_at,
            interval_secs: interval,
        };
        match state.store().create_device(&new, now).await {
            Ok(()) => {}
            Err(crate::store::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
        state.metrics().device_authorization();
        tracing::info!(request_id = %rid, cluster = %Untrusted::new(&req.cluster), client_addr = %Untrusted::new(&addr), "device authorization started");
        let base = cfg.issuer();
        let display = user_code::display(&code);
        return Ok(Json(DeviceAuthorizationResponse {
            device_code: device_code.expose().to_owned(),
            verification_uri: format!("{base}{PATH_DEVICE_PAGE}"),
            verification_uri_complete: format!("{base}{PATH_DEVICE_PAGE}?user_code={display}"),
            user_code: display,
            expires_in: cfg.device_code_ttl.as_secs(),
            interval: cfg.poll_interval.as_secs(),
        }));
    }
    Err(OAuthReply::bad(
        E::TemporarilyUnavailable,
        "could not allocate a user code; retry",
    ))
}

/// The device-code grant (RFC 8628 section 3.4): pending, slow down, denied, expired, or the
/// tokens of a new session.
pub(super) async fn device_code_grant(
    state: &AppState,
    addr: &str,
    rid: &str,
    req: &TokenRequest,
) -> Result<Response, OAuthReply> {
    check_client(state, &req.client_id)?;
    let code = required(req.device_code.as_deref(), "device_code")?;
    let store = state.store();
    let Some(device) = store.device_by_code_hash(&hash(code)).await? else {
        return Err(OAuthReply::bad(E::InvalidGrant, "unknown device_code"));
    };
    if device.client_id != req.client_id {
        return Err(OAuthReply::bad(
            E::InvalidGrant,
            "device_code was issued to another client",
        ));
    }
    let now = state.now();
    let too_early = if matches!(device.status, Status::Consumed) || now >= device.expires_at {
        None
    } else {
        store.claim_poll(&device.id, now).await?
    };
    let outcome = poll(
        PollState {
            status: device.status,
            expires_at: device.expires_at,
            too_early,
        },
        now,
    );
    match outcome {
        PollOutcome::Pending => Err(OAuthReply::code(E::AuthorizationPending)),
        PollOutcome::SlowDown { .. } => Err(OAuthReply::code(E::SlowDown)),
        PollOutcome::Denied => {
            state.metrics().failure(Failure::Denied);
            Err(OAuthReply::bad(E::AccessDenied, "the sign-in was denied"))
        }
        PollOutcome::Expired => Err(OAuthReply::bad(
            E::ExpiredToken,
            "the device code expired; start again",
        )),
        PollOutcome::AlreadyUsed => Err(OAuthReply::bad(
            E::InvalidGrant,
            "device_code was already used",
        )),
        PollOutcome::Issue => {
            if !store.consume_device(&device.id).await? {
                return Err(OAuthReply::bad(
                    E::InvalidGrant,
                    "device_code was already used",
                ));
            }
            let user = match device.user_id.as_deref() {
                Some(id) => store.user_by_id(id).await?,
                None => None,
            };
            let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
                return Err(OAuthReply::bad(E::AccessDenied, "the account is disabled"));
            };
            if user.is_expired(now) {
                audit(
                    state,
                    "login.refused.expired",
                    &user,
                    &device.cluster,
                    addr,
                    rid,
                    now,
                )
                .await;
                return Err(OAuthReply::bad(E::AccessDenied, "the account has expired"));
            }
            let session = Session {
                id: random_token(12).expose().to_owned(),
                user_id: user.id.clone(),
                client_id: device.client_id.clone(),
                cluster: device.cluster.clone(),
                created_at: now,
                expires_at: now + state.config().session_ttl,
                revoked_at: None,
            };
            // A sign-in through an upstream provider left the provider's refresh token for this
            // device; the session keeps it so that every refresh re-checks the person there.
            let grant = store.take_upstream_grant(&device.id).await?;
            let refresh = new_refresh_token(grant.is_some());
            store
                .create_session(&session, &hash(refresh.expose()))
                .await?;
            if let Some((provider, sealed)) = grant {
                let seal = state.sealer();
                let reseal = seal
                    .open(&sealed, &crate::store::grant_context(&device.id))
                    .and_then(|rt| seal.seal(&rt, &crate::store::session_context(&session.id)));
                match reseal {
                    Ok(for_session) => {
                        store
                            .put_upstream_session(&session.id, &provider, &for_session, now)
                            .await?;
                    }
                    Err(e) => return Err(OAuthReply::internal(&e)),
                }
            }
            let contents = contents(state, &user, &session, now).await?;
            let reply = mint(state, &user, &session, &refresh, &contents, now)?;
            audit_login(state, &user, &session.cluster, addr, rid, &contents, now).await?;
            state.metrics().login();
            tracing::info!(request_id = %rid, user = %Untrusted::new(&user.username), cluster = %Untrusted::new(&session.cluster), "device login completed");
            Ok(reply)
        }
    }
}

/// A device authorization from outside `[device_flow] allowed_networks`: a log line and an
/// audit row (`device.refused.network`).
async fn refuse_network(
    state: &AppState,
    cluster: &str,
    addr: &str,
    rid: &str,
    now: OffsetDateTime,
) {
    tracing::warn!(request_id = %rid, client_addr = %Untrusted::new(addr), cluster = %Untrusted::new(cluster), "device authorization from outside the allowed networks refused");
    let e = AuditEvent {
        event: "device.refused.network",
        cluster: Some(cluster.to_owned()),
        client_addr: Some(addr.to_owned()),
        request_id: Some(rid.to_owned()),
        ..AuditEvent::default()
    };
    if let Err(err) = state.store().audit(&e, now).await {
        tracing::error!(error = %err, "audit write failed");
    }
}

async fn audit(
    state: &AppState,
    event: &'static str,
    user: &User,
    cluster: &str,
    addr: &str,
    rid: &str,
    now: OffsetDateTime,
) {
    let e = AuditEvent {
        event,
        actor: Some(user.username.clone()),
        subject: Some(user.id.clone()),
        cluster: Some(cluster.to_owned()),
        client_addr: Some(addr.to_owned()),
        request_id: Some(rid.to_owned()),
        ..AuditEvent::default()
    };
    if let Err(err) = state.store().audit(&e, now).await {
        tracing::error!(error = %err, "audit write failed");
    }
}

/// Longest `scope` a device authorization stores (the plugin sends none).
const MAX_SCOPE: usize = 1024;

/// Whether `scope` is what RFC 6749 section 3.3 allows (`scope-token *( SP scope-token )`, a
/// token being visible ASCII but `"` and `\`), and short. The scope is stored with the device
/// code, and PostgreSQL refuses text holding NUL, so anything else is the client's error.
fn is_scope(scope: &str) -> bool {
    scope.len() <= MAX_SCOPE
        && scope.split(' ').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        })
}
