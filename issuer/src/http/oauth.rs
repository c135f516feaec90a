//! The OAuth endpoints: device authorization (RFC 8628), token (device code and refresh
//! grants), and revocation (RFC 7009).

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use credential_shared::oauth::{
    DeviceAuthorizationRequest, DeviceAuthorizationResponse, OAuthErrorCode as E,
    RevocationRequest, TokenRequest, TokenResponse, GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN,
    PATH_DEVICE_PAGE,
};
use credential_shared::text::Untrusted;
use time::OffsetDateTime;

use super::{ClientAddr, OAuthReply, RequestId};
use crate::domain::device::{poll, PollOutcome, PollState, Status};
use crate::domain::session::{liveness, Liveness, SessionFacts};
use crate::domain::{tokens, user_code};
use crate::secrets::secret::{hash, random_bytes, random_token, Secret};
use crate::service::state::AppState;
use crate::store::{AuditEvent, Presenter, RotateOutcome, Session, Successor, User};
use crate::telemetry::metrics::Failure;

fn form<T>(f: Result<Form<T>, FormRejection>) -> Result<T, OAuthReply> {
    f.map(|Form(v)| v).map_err(|e| {
        OAuthReply::bad(
            E::InvalidRequest,
            format!("malformed form body: {}", e.body_text()),
        )
    })
}

fn check_client(state: &AppState, client_id: &str) -> Result<(), OAuthReply> {
    if client_id.is_empty() {
        return Err(OAuthReply::bad(E::InvalidRequest, "client_id is required"));
    }
    if !state.config().clients.iter().any(|c| c == client_id) {
        return Err(OAuthReply::invalid_client());
    }
    Ok(())
}

/// `POST /oauth/device_authorization`.
pub(super) async fn device_authorization(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<DeviceAuthorizationRequest>, FormRejection>,
) -> Result<Json<DeviceAuthorizationResponse>, OAuthReply> {
    let req = form(f)?;
    check_client(&state, &req.client_id)?;
    let cfg = state.config();
    if req.cluster.is_empty() {
        return Err(OAuthReply::bad(E::InvalidRequest, "cluster is required"));
    }
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

/// `POST /oauth/token`.
pub(super) async fn token(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Response, OAuthReply> {
    let req = form(f)?;
    match req.grant_type.as_str() {
        GRANT_DEVICE_CODE => device_code_grant(&state, &addr, &rid, &req).await,
        GRANT_REFRESH_TOKEN => refresh_grant(&state, &addr, &rid, &req).await,
        "" => Err(OAuthReply::bad(E::InvalidRequest, "grant_type is required")),
        other => Err(OAuthReply::bad(
            E::UnsupportedGrantType,
            format!("grant_type {:?} is not supported", truncate(other)),
        )),
    }
}

async fn device_code_grant(
    state: &AppState,
    addr: &str,
    rid: &str,
    req: &TokenRequest,
) -> Result<Response, OAuthReply> {
    check_client(state, &req.client_id)?;
    let Some(code) = req.device_code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(OAuthReply::bad(
            E::InvalidRequest,
            "device_code is required",
        ));
    };
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

async fn refresh_grant(
    state: &AppState,
    addr: &str,
    rid: &str,
    req: &TokenRequest,
) -> Result<Response, OAuthReply> {
    check_client(state, &req.client_id)?;
    let Some(presented) = req.refresh_token.as_deref().filter(|c| !c.is_empty()) else {
        return Err(OAuthReply::bad(
            E::InvalidRequest,
            "refresh_token is required",
        ));
    };
    let store = state.store();
    // Sessions from an upstream provider are recognisable by their token's prefix, so the
    // local-account fast path below stays one statement.
    let upstream = presented.starts_with(UPSTREAM_REFRESH_PREFIX);
    let unchecked_since = if upstream {
        upstream_recheck(state, addr, rid, presented, &req.client_id, state.now()).await?
    } else {
        None
    };
    // Read the clock after the provider answered (which may take up to its timeout): the new
    // token's lifetime starts when it is minted, not when the request came in.
    let now = state.now();
    let next = new_refresh_token(upstream);
    // What the new token will carry, from the account as it is now, so that the rotating
    // statement records it in the refresh's audit row (a token the rotation refuses is never
    // minted, and its row never written).
    let presented_hash = hash(presented);
    let mut planned = match store.session_by_refresh(&presented_hash).await? {
        Some((s, u)) => Some(contents(state, &u, &s, now).await?),
        None => None,
    };
    if let (Some(c), Some(since)) = (planned.as_mut(), unchecked_since) {
        mark_unchecked(c, since);
    }
    let by = Presenter {
        client_id: &req.client_id,
        client_addr: addr,
        request_id: rid,
        token_detail: planned.as_ref().map_or("{}", |c| c.detail.as_str()),
    };
    let sealed = state
        .sealer()
        .seal(&next, &crate::store::successor_context(&presented_hash))
        .map_err(|e| OAuthReply::internal(&e))?;
    let successor = Successor {
        hash: &hash(next.expose()),
        sealed: &sealed,
        retry_grace: state.config().refresh_retry_grace,
    };
    let (session, user) = match store
        .rotate_refresh(&presented_hash, successor, now, by)
        .await?
    {
        RotateOutcome::Rotated(s, u) => (s, u),
        RotateOutcome::Retried {
            session,
            user,
            successor_sealed,
        } => {
            return retried(
                state,
                addr,
                rid,
                &presented_hash,
                &session,
                &user,
                successor_sealed.expose(),
                now,
            )
            .await;
        }
        RotateOutcome::Unknown => {
            state.metrics().failure(Failure::RefreshRefused);
            return Err(OAuthReply::bad(E::InvalidGrant, "unknown refresh token"));
        }
        RotateOutcome::Reused {
            session_id,
            user_id,
        } => {
            state.review_caches().invalidate_session(&session_id);
            tracing::warn!(request_id = %rid, session_id, user_id, client_addr = %Untrusted::new(&addr), "refresh token reused; session revoked");
            state.metrics().failure(Failure::RefreshReuse);
            let e = AuditEvent {
                event: "session.revoked.reuse",
                actor: Some("system".into()),
                subject: Some(user_id),
                client_addr: Some(addr.to_owned()),
                request_id: Some(rid.to_owned()),
                detail: Some(format!("{{\"session\":{session_id:?}}}")),
                ..AuditEvent::default()
            };
            if let Err(err) = store.audit(&e, now).await {
                tracing::error!(error = %err, "audit write failed");
            }
            return Err(OAuthReply::bad(
                E::InvalidGrant,
                "refresh token was already used; the session has been revoked",
            ));
        }
        RotateOutcome::Refused(s) => {
            state.metrics().failure(Failure::RefreshRefused);
            return Err(refused(state, &s, &req.client_id, now).await);
        }
    };
    // The rotation already checked the session and the account in the same statement.
    // The token carries what the audit row says; `planned` is missing only if the token was
    // rotated between the read and the rotation, which the rotation would have refused.
    let contents = if let Some(c) = planned {
        c
    } else {
        let mut c = contents(state, &user, &session, now).await?;
        if let Some(since) = unchecked_since {
            mark_unchecked(&mut c, since);
        }
        c
    };
    let reply = mint(state, &user, &session, &next, &contents, now)?;
    state.metrics().refresh();
    Ok(reply)
}

/// A refresh presented again moments after its rotation (the answer was lost): the same
/// successor refresh token and a new access token, audited as `refresh.retried`.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; each value is needed"
)]
async fn retried(
    state: &AppState,
    addr: &str,
    rid: &str,
    presented_hash: &str,
    session: &Session,
    user: &User,
    successor_sealed: &str,
    now: OffsetDateTime,
) -> Result<Response, OAuthReply> {
    let successor = state
        .sealer()
        .open(
            successor_sealed,
            &crate::store::successor_context(presented_hash),
        )
        .map_err(|e| OAuthReply::internal(&e))?;
    let contents = contents(state, user, session, now).await?;
    let reply = mint(state, user, session, &successor, &contents, now)?;
    tracing::info!(request_id = %rid, session_id = %session.id, client_addr = %Untrusted::new(addr), "refresh retried within the grace; same successor handed out");
    let e = AuditEvent {
        event: "refresh.retried",
        actor: Some("system".into()),
        subject: Some(user.id.clone()),
        cluster: Some(session.cluster.clone()),
        client_addr: Some(addr.to_owned()),
        request_id: Some(rid.to_owned()),
        detail: Some(format!("{{\"session\":{:?}}}", session.id)),
        ..AuditEvent::default()
    };
    // No token without its audit row: if the row cannot be written, nothing is handed out.
    state.store().audit(&e, now).await?;
    state.metrics().refresh_retried();
    Ok(reply)
}

/// Prefix of the refresh tokens of sessions whose person is re-checked at an upstream provider.
/// (Tokens are base64url, which has no `.`, so the prefix cannot occur in a local token.)
const UPSTREAM_REFRESH_PREFIX: &str = "up.";

fn new_refresh_token(upstream: bool) -> Secret {
    let t = random_token(32);
    if upstream {
        Secret::new(format!("{UPSTREAM_REFRESH_PREFIX}{}", t.expose()))
    } else {
        t
    }
}

/// Before an upstream session's refresh token is rotated: refresh at the provider and take the
/// person's groups from its answer. A provider that refuses the person (`invalid_grant`) ends
/// the session. Any other failure (unreachable, frozen, slow, server errors, the issuer's own
/// client refused, rate limiting, a malformed answer, an ID token that does not verify) is
/// the provider's or the issuer's problem: within the provider's `offline_grace` since the
/// last successful check the refresh goes on without it (`Ok(Some(checked_at))`, the token
/// and its audit row marked), after that it fails this refresh only
/// (`temporarily_unavailable`, naming the cause), and as the issuer's own token was not spent
/// yet the client can simply retry. Anything else about the token (unknown, spent, session
/// ended) is left to the rotation, which answers it.
async fn upstream_recheck(
    state: &AppState,
    addr: &str,
    rid: &str,
    presented: &str,
    client_id: &str,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, OAuthReply> {
    let store = state.store();
    let presented_hash = hash(presented);
    let Some(up) = store.upstream_session_by_refresh(&presented_hash).await? else {
        return Ok(None);
    };
    let live = up.session.revoked_at.is_none()
        && up.session.expires_at > now
        && up.session.client_id == client_id
        && up.user.disabled_at.is_none();
    if !live {
        return Ok(None);
    }
    let up = &up;
    let presented_hash = &presented_hash;
    let refused = |reason: &'static str| async move {
        if let Err(e) = store.revoke_by_refresh(presented_hash, reason, now).await {
            return OAuthReply::from(e);
        }
        let e = AuditEvent {
            event: "session.revoked.upstream",
            actor: Some("system".into()),
            subject: Some(up.user.id.clone()),
            cluster: Some(up.session.cluster.clone()),
            client_addr: Some(addr.to_owned()),
            request_id: Some(rid.to_owned()),
            detail: Some(format!(
                "{{\"session\":{:?},\"provider\":{:?}}}",
                up.session.id, up.provider
            )),
            ..AuditEvent::default()
        };
        if let Err(err) = store.audit(&e, now).await {
            tracing::error!(error = %err, "audit write failed");
        }
        state.metrics().failure(Failure::RefreshRefused);
        OAuthReply::bad(
            E::InvalidGrant,
            "your identity provider no longer accepts this sign-in; log in again",
        )
    };
    let Some(provider) = state.upstreams().get(&up.provider) else {
        return Err(refused("upstream.removed").await);
    };
    let context = crate::store::session_context(&up.session.id);
    let rt = state
        .sealer()
        .open(&up.refresh_sealed, &context)
        .map_err(|e| OAuthReply::internal(&e))?;
    match provider.refresh(&rt, up.subject.as_deref(), now).await {
        Ok((identity, tokens)) => {
            // Without an ID token or userinfo (OpenID Connect Core 12.2), the provider still
            // accepted the grant: the person is there, and the stored claims stand.
            if let Some(identity) = &identity {
                store
                    .set_upstream_groups(&up.user.id, &identity.groups)
                    .await?;
            }
            if let Some(rotated) = tokens.refresh_token {
                let sealed = state
                    .sealer()
                    .seal(&rotated, &context)
                    .map_err(|e| OAuthReply::internal(&e))?;
                store
                    .put_upstream_session(&up.session.id, &up.provider, &sealed, now)
                    .await?;
            } else {
                store.mark_upstream_checked(&up.session.id, now).await?;
            }
            tracing::info!(request_id = %rid, user = %Untrusted::new(&up.user.username), provider = %up.provider, claims_from = if identity.is_some() { "provider" } else { "stored" }, "person re-checked upstream");
            Ok(None)
        }
        Err(e) if e.ends_session() => {
            state
                .metrics()
                .upstream_failure(&up.provider, "refresh", e.label());
            tracing::info!(request_id = %rid, user = %Untrusted::new(&up.user.username), provider = %up.provider, cause = e.label(), error = %Untrusted::long(&e), "upstream refused the refresh; session revoked");
            Err(refused("upstream.refused").await)
        }
        Err(e) => {
            state
                .metrics()
                .upstream_failure(&up.provider, "refresh", e.label());
            let grace = provider.config().offline_grace;
            let unchecked_for = now - up.checked_at;
            if offline_grace_applies(grace, unchecked_for) {
                state.metrics().upstream_grace(&up.provider);
                tracing::warn!(request_id = %rid, user = %Untrusted::new(&up.user.username), provider = %up.provider, cause = e.label(), error = %Untrusted::long(&e), checked_at = %up.checked_at, "identity provider failed; refresh allowed on the offline grace, person not re-checked");
                return Ok(Some(up.checked_at));
            }
            tracing::error!(request_id = %rid, user = %Untrusted::new(&up.user.username), provider = %up.provider, cause = e.label(), error = %Untrusted::long(&e), checked_at = %up.checked_at, "identity provider failed during refresh; session kept, refresh refused for now");
            Err(OAuthReply::unavailable(format!(
                "the identity provider {} {}; your session is kept, try again shortly",
                up.provider,
                e.describe()
            )))
        }
    }
}

/// Whether a refresh may go through without the provider's answer: the grace is on and the
/// person was confirmed there less than `grace` ago.
fn offline_grace_applies(grace: std::time::Duration, unchecked_for: time::Duration) -> bool {
    !grace.is_zero() && unchecked_for >= time::Duration::ZERO && unchecked_for < grace
}

/// Records in a token's audit detail that the person was not re-checked since `checked_at`.
fn mark_unchecked(contents: &mut Contents, checked_at: OffsetDateTime) {
    if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str(&contents.detail) {
        let since = checked_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| checked_at.unix_timestamp().to_string());
        m.insert(
            "upstream_not_rechecked_since".into(),
            serde_json::Value::String(since),
        );
        contents.detail = serde_json::Value::Object(m).to_string();
    }
    contents.upstream_checked_at = Some(checked_at);
}

/// Why a current refresh token was refused.
async fn refused(
    state: &AppState,
    session: &Session,
    client_id: &str,
    now: OffsetDateTime,
) -> OAuthReply {
    if session.client_id != client_id {
        return OAuthReply::bad(
            E::InvalidGrant,
            "refresh token was issued to another client",
        );
    }
    let user = match state.store().user_by_id(&session.user_id).await {
        Ok(u) => u,
        Err(e) => return e.into(),
    };
    let facts = SessionFacts {
        expires_at: session.expires_at,
        revoked_at: session.revoked_at,
        user_disabled_at: user.as_ref().map_or(Some(now), |u| u.disabled_at),
        user_expires_at: user.as_ref().and_then(|u| u.expires_at),
    };
    match liveness(facts, now) {
        Liveness::Expired => OAuthReply::bad(E::InvalidGrant, "the session expired; log in again"),
        Liveness::Revoked => {
            OAuthReply::bad(E::InvalidGrant, "the session was revoked; log in again")
        }
        Liveness::UserDisabled => OAuthReply::bad(E::InvalidGrant, "the account is disabled"),
        Liveness::AccountExpired => {
            if let Some(u) = &user {
                let e = AuditEvent {
                    event: "refresh.refused.expired",
                    actor: Some("system".into()),
                    subject: Some(u.id.clone()),
                    cluster: Some(session.cluster.clone()),
                    ..AuditEvent::default()
                };
                if let Err(err) = state.store().audit(&e, now).await {
                    tracing::error!(error = %err, "audit write failed");
                }
            }
            OAuthReply::bad(E::InvalidGrant, "the account has expired")
        }
        Liveness::Live => OAuthReply::bad(E::InvalidGrant, "refresh token refused"),
    }
}

/// What a token for `user` in a cluster will carry: the policy's groups, the grants in force
/// (as groups and the `grants` claim), and the `detail` JSON of its `login` or `refresh` audit
/// row (`{"session": .., "groups": [..], "grants": [..]}`), which `audit access` reads to say
/// which groups reached a cluster. Computed before a refresh's rotation, whose statement
/// writes that row.
struct Contents {
    groups: Vec<String>,
    grants: Vec<crate::domain::grants::Grant>,
    detail: String,
    /// Set when the token goes out on an upstream's offline grace: the last check there.
    upstream_checked_at: Option<OffsetDateTime>,
}

async fn contents(
    state: &AppState,
    user: &User,
    session: &Session,
    now: OffsetDateTime,
) -> Result<Contents, OAuthReply> {
    let cfg = state.config();
    // The policy decides which Kubernetes groups the person's groups become in this cluster.
    let mut groups = cfg.policy.map(&user.groups, &session.cluster).groups();
    // Grants in force now become groups and the `grants` claim (issue 5).
    let grants = state
        .store()
        .active_grants_for(&user.username, &user.groups, &session.cluster, now)
        .await?;
    let mut ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut all = groups.clone();
    all.extend(
        grants
            .iter()
            .flat_map(crate::domain::grants::Grant::token_groups),
    );
    all.sort();
    all.dedup();
    let detail =
        serde_json::json!({ "session": session.id, "groups": all, "grants": ids }).to_string();
    groups.sort();
    Ok(Contents {
        groups,
        grants,
        detail,
        upstream_checked_at: None,
    })
}

/// Signs an access token for `user` in `session` carrying `contents` and builds the token
/// response.
fn mint(
    state: &AppState,
    user: &User,
    session: &Session,
    refresh: &Secret,
    contents: &Contents,
    now: OffsetDateTime,
) -> Result<Response, OAuthReply> {
    let cfg = state.config();
    let Some(cluster) = cfg.cluster(&session.cluster) else {
        // The cluster was removed from the config after the session began.
        return Err(OAuthReply::bad(
            E::InvalidGrant,
            "the cluster of this session is no longer configured",
        ));
    };
    let jti = random_token(16);
    let mut claims = tokens::access_claims(
        &tokens::Subject {
            user_id: &user.id,
            username: &user.username,
            email: user.email.as_deref(),
            groups: &contents.groups,
        },
        tokens::Minting {
            issuer: cfg.issuer(),
            cluster: &cluster.name,
            audience: &cluster.audience,
            session_id: &session.id,
            jti: jti.expose(),
            now,
            ttl: cfg.token_ttl,
            // A token never outlives its session, nor its account.
            session_expires_at: user
                .expires_at
                .map_or(session.expires_at, |e| e.min(session.expires_at)),
        },
    );
    tokens::add_grants(&mut claims, &contents.grants);
    claims.upstream_checked_at = contents
        .upstream_checked_at
        .map(OffsetDateTime::unix_timestamp);
    let jwt = state.signer().sign(&claims)?;
    let body = TokenResponse {
        access_token: jwt,
        token_type: "Bearer".into(),
        expires_in: u64::try_from(claims.exp - claims.iat).unwrap_or(0),
        refresh_token: refresh.expose().to_owned(),
        session_expires_at: Some(session.expires_at.unix_timestamp()),
        api_server: cluster
            .server
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned()),
    };
    Ok((
        StatusCode::OK,
        [(axum::http::header::PRAGMA, "no-cache")],
        Json(body),
    )
        .into_response())
}

/// The audit row of a login's token: who, which cluster, from where, and the groups and
/// grants the token carries. No token is handed out without it: if the row cannot be written
/// the request fails. (A refresh's row is written by the rotating statement.)
async fn audit_login(
    state: &AppState,
    user: &User,
    cluster: &str,
    addr: &str,
    rid: &str,
    contents: &Contents,
    now: OffsetDateTime,
) -> Result<(), OAuthReply> {
    let e = AuditEvent {
        event: "login",
        actor: Some(user.username.clone()),
        subject: Some(user.id.clone()),
        cluster: Some(cluster.to_owned()),
        client_addr: Some(addr.to_owned()),
        request_id: Some(rid.to_owned()),
        detail: Some(contents.detail.clone()),
        ..AuditEvent::default()
    };
    state.store().audit(&e, now).await?;
    Ok(())
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

/// `POST /oauth/revoke` (RFC 7009): ends the session of a refresh token. Answers 200 for
/// unknown tokens too, as the RFC requires, so it cannot be used to probe tokens.
pub(super) async fn revoke(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<RevocationRequest>, FormRejection>,
) -> Result<StatusCode, OAuthReply> {
    let req = form(f)?;
    check_client(&state, &req.client_id)?;
    if req.token.is_empty() {
        return Err(OAuthReply::bad(E::InvalidRequest, "token is required"));
    }
    let now = state.now();
    if let Some((session_id, user_id)) = state
        .store()
        .revoke_by_refresh(&hash(&req.token), "logout", now)
        .await?
    {
        state.review_caches().invalidate_session(&session_id);
        tracing::info!(request_id = %rid, session_id, "session revoked by client");
        state.metrics().revocation();
        let e = AuditEvent {
            event: "logout",
            subject: Some(user_id),
            client_addr: Some(addr),
            request_id: Some(rid),
            detail: Some(format!("{{\"session\":{session_id:?}}}")),
            ..AuditEvent::default()
        };
        if let Err(err) = state.store().audit(&e, now).await {
            tracing::error!(error = %err, "audit write failed");
        }
    }
    Ok(StatusCode::OK)
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

/// Keeps echoed client input short in error descriptions.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_grace_is_bounded_by_the_last_check() {
        let hour = std::time::Duration::from_secs(3600);
        assert!(offline_grace_applies(hour, time::Duration::minutes(5)));
        assert!(offline_grace_applies(hour, time::Duration::minutes(59)));
        assert!(!offline_grace_applies(hour, time::Duration::minutes(60)));
        // Off when zero; a check in the future (clock skew between replicas) is not trusted.
        assert!(!offline_grace_applies(
            std::time::Duration::ZERO,
            time::Duration::seconds(1)
        ));
        assert!(!offline_grace_applies(hour, time::Duration::seconds(-5)));
    }
}
