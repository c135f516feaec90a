//! Webhook token authentication beyond HTTP: verifying a token with the issuer's own keys,
//! finding out whether its session still counts, and the two caches that keep a review off the
//! database and off ECDSA for tokens seen before (the API server calls this on its critical
//! path).
//!
//! - Verified tokens are cached by SHA-256 digest until their `exp`; the cache is dropped when
//!   the signing key set changes. A hit skips signature verification and JSON parsing.
//! - Session states are cached by session id for `webhook_cache_ttl`. Every revocation this
//!   process makes (logout, refresh-token reuse) invalidates the entry at once; revocations made
//!   elsewhere (the `user disable` CLI, another replica) reach it within about a second through
//!   the server's revocation feed (`Store::revoked_since`), and within the TTL at worst. A
//!   generation counter keeps a read that raced an invalidation from re-inserting the old state.

use std::sync::Arc;

use credential_shared::oauth::AccessTokenClaims;
use credential_shared::text::Untrusted;
use time::OffsetDateTime;

use crate::service::state::AppState;
use caches::CachedSession;
pub use caches::Caches;

pub mod caches;
use crate::domain::review::{self, Identity, Refusal, SessionState, Target};
use crate::domain::session::SessionFacts;

/// The verdict of a review.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The token is valid and its session live.
    Authenticated {
        /// Who.
        identity: Identity,
        /// `status.audiences`.
        audiences: Vec<String>,
    },
    /// Not accepted, and why.
    Refused(Refusal),
}

/// Why a review could not be made at all (as opposed to a refused token).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path names a cluster the issuer does not know: the API server's webhook kubeconfig
    /// is wrong.
    #[error("unknown cluster {0:?}")]
    UnknownCluster(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The database cannot answer now (see [`crate::telemetry::health`]): a cache miss is refused at
    /// once instead of waiting for a connection.
    #[error("the database is unavailable: {}", .0.describe())]
    DatabaseDown(crate::store::Fault),
}

/// Reviews `token` for `cluster` (from the webhook path) or, without one, for the audiences the
/// API server sent.
pub async fn review(
    state: &AppState,
    cluster: Option<&str>,
    token: &str,
    audiences: &[String],
) -> Result<Outcome, Error> {
    let cfg = state.config();
    let by_path = match cluster {
        Some(name) => Some(
            cfg.cluster(name)
                .ok_or_else(|| Error::UnknownCluster(name.chars().take(64).collect()))?,
        ),
        None => None,
    };
    let now = state.now();
    let Some(claims) = verified_claims(state, token, now) else {
        return Ok(Outcome::Refused(Refusal::InvalidToken));
    };
    let target = if let Some(c) = by_path {
        Target {
            cluster: &c.name,
            audience: &c.audience,
        }
    } else {
        // Without a cluster in the path the API server must say which audience it wants
        // (`--api-audiences`); a token for any configured cluster would pass otherwise.
        let wanted = audiences.iter().any(|a| *a == claims.aud);
        let found = cfg.clusters.iter().find(|c| {
            c.audience == claims.aud && claims.cluster.as_deref().is_none_or(|n| n == c.name)
        });
        match found {
            Some(c) if wanted => Target {
                cluster: &c.name,
                audience: &c.audience,
            },
            _ => return Ok(Outcome::Refused(Refusal::WrongAudience)),
        }
    };
    if let Err(r) = review::check_claims(&claims, cfg.issuer(), target, now) {
        return Ok(Outcome::Refused(r));
    }
    let sid = claims.sid.as_deref().unwrap_or_default();
    let session = session_state(state, sid, now).await?;
    let s = session.as_deref();
    if let Err(r) = review::check_session(&claims, s.map(|(s, _)| s), target, now) {
        return Ok(Outcome::Refused(r));
    }
    let client_id = s.map_or("", |(_, c)| c.as_str());
    // A workload's tokens stop with its rule: removed from the configuration or switched off
    // there (`workload disable` reaches them through the account, like a person's).
    if let Some(name) = client_id.strip_prefix(crate::domain::workloads::ACCOUNT_PREFIX) {
        if cfg.workload(name).is_none_or(|w| !w.enabled) {
            return Ok(Outcome::Refused(Refusal::UserDisabled));
        }
    }
    Ok(Outcome::Authenticated {
        identity: review::identity(&claims, target, client_id),
        audiences: review::granted_audiences(audiences, &claims.aud),
    })
}

/// The claims of a token this issuer signed, from the cache or by verifying it.
fn verified_claims(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
) -> Option<Arc<AccessTokenClaims>> {
    let caches = state.review_caches();
    let signer = state.signer();
    let generation = signer.generation();
    let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .try_into()
        .ok()?;
    if let Some(c) = caches.cached_claims(&digest, generation) {
        return Some(c);
    }
    match signer.verify(token, now, state.config().key_retention()) {
        Ok(claims) => {
            let claims = Arc::new(claims);
            // Expired tokens are refused by the claim check and not worth a slot.
            if claims.exp > now.unix_timestamp() {
                caches.remember_claims(digest, Arc::clone(&claims), generation, now);
            }
            Some(claims)
        }
        Err(e) => {
            // The error names the part that failed, never the token.
            tracing::debug!(error = %Untrusted::long(&e), "token review: token not verified");
            None
        }
    }
}

/// How the session `sid` stands now (`None`: unknown), from the same cache as reviews. The
/// proxy asks this about an upgraded connection (exec, attach, port-forward) that outlives the
/// token it was opened with: the stream lasts as long as its session, and ends within the
/// revocation feed's delay of a logout, a disabled account or a revoked session.
pub async fn session_liveness(
    state: &AppState,
    sid: &str,
) -> Result<Option<crate::domain::session::Liveness>, Error> {
    let now = state.now();
    Ok(session_state(state, sid, now)
        .await?
        .map(|s| crate::domain::session::liveness(s.0.facts, now)))
}

/// The session's state and client id, from the cache or the database.
async fn session_state(
    state: &AppState,
    sid: &str,
    now: OffsetDateTime,
) -> Result<Option<Arc<(SessionState, String)>>, Error> {
    let caches = state.review_caches();
    let ttl = state.config().webhook_cache_ttl;
    let (hit, generation) = caches.cached_session(sid, now, ttl);
    if let Some(hit) = hit {
        return Ok(hit.state);
    }
    if let Some(t) = state.health().fail_fast() {
        return Err(Error::DatabaseDown(t.fault));
    }
    let row = state.store().session_with_owner(sid).await?;
    let fresh = row.map(|(s, owner)| {
        Arc::new((
            SessionState {
                user_id: s.user_id,
                cluster: s.cluster,
                facts: SessionFacts {
                    expires_at: s.expires_at,
                    revoked_at: s.revoked_at,
                    // An account that is gone counts as disabled.
                    user_disabled_at: owner.map_or(Some(now), |o| o.disabled_at),
                    user_expires_at: owner.and_then(|o| o.expires_at),
                },
            },
            s.client_id,
        ))
    });
    if !ttl.is_zero() {
        caches.remember_session(
            sid,
            CachedSession {
                state: fresh.clone(),
                fetched_at: now,
            },
            generation,
        );
    }
    Ok(fresh)
}

/// Authenticates a person calling the issuer's own API with their access token (`Bearer`):
/// the same checks as a token review for the cluster the token names (signature, issuer, time
/// window, audience, live session, account not disabled). `None`: refused; the caller answers
/// 401 without saying more.
pub async fn authenticate_bearer(
    state: &AppState,
    token: &str,
) -> Result<Option<Arc<AccessTokenClaims>>, Error> {
    let now = state.now();
    let Some(claims) = verified_claims(state, token, now) else {
        return Ok(None);
    };
    let cfg = state.config();
    let found = cfg.clusters.iter().find(|c| {
        c.audience == claims.aud && claims.cluster.as_deref().is_none_or(|n| n == c.name)
    });
    let Some(c) = found else {
        return Ok(None);
    };
    let target = Target {
        cluster: &c.name,
        audience: &c.audience,
    };
    if review::check_claims(&claims, cfg.issuer(), target, now).is_err() {
        return Ok(None);
    }
    let sid = claims.sid.as_deref().unwrap_or_default();
    let session = session_state(state, sid, now).await?;
    if review::check_session(&claims, session.as_deref().map(|(s, _)| s), target, now).is_err() {
        return Ok(None);
    }
    Ok(Some(claims))
}
