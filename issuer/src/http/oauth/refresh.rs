//! The refresh-token grant of `POST /oauth/token`: one rotating statement per refresh, the
//! retry of a lost answer, the refusals, and for an upstream provider's sessions the re-check
//! of the person there (with its offline grace).

use axum::response::Response;
use credential_shared::oauth::{OAuthErrorCode as E, TokenRequest};
use credential_shared::text::Untrusted;
use time::OffsetDateTime;

use super::token::{contents, mint, new_refresh_token, Contents, UPSTREAM_REFRESH_PREFIX};
use super::{check_client, required};
use crate::domain::session::{liveness, Liveness, SessionFacts};
use crate::http::OAuthReply;
use crate::secrets::secret::hash;
use crate::service::state::AppState;
use crate::store::{AuditEvent, Presenter, RotateOutcome, Session, Successor, User};
use crate::telemetry::metrics::{Failure, RefreshKind};

/// The refresh-token grant (RFC 6749 section 6), timed into
/// `credential_issuer_refresh_duration_seconds` whatever its outcome.
pub(super) async fn refresh_grant(
    state: &AppState,
    addr: &str,
    rid: &str,
    req: &TokenRequest,
) -> Result<Response, OAuthReply> {
    let started = std::time::Instant::now();
    let reply = rotate(state, addr, rid, req).await;
    // The same test as `rotate`'s: an upstream session's refresh waits for its provider, so
    // the two kinds are told apart rather than averaged.
    let upstream = req
        .refresh_token
        .as_deref()
        .is_some_and(|t| t.starts_with(UPSTREAM_REFRESH_PREFIX));
    let kind = if upstream {
        RefreshKind::Upstream
    } else {
        RefreshKind::Local
    };
    state.metrics().refresh_duration(kind, started.elapsed());
    reply
}

/// Rotates the presented refresh token and mints the successor's access token.
async fn rotate(
    state: &AppState,
    addr: &str,
    rid: &str,
    req: &TokenRequest,
) -> Result<Response, OAuthReply> {
    check_client(state, &req.client_id)?;
    let presented = required(req.refresh_token.as_deref(), "refresh_token")?;
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
