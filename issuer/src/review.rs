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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use credential_shared::oauth::AccessTokenClaims;
use credential_shared::text::Untrusted;
use time::OffsetDateTime;

use crate::app::AppState;
use crate::domain::review::{self, Identity, Refusal, SessionState, Target};
use crate::domain::session::SessionFacts;

/// Most entries per cache; past it, expired entries are swept and, if that is not enough, the
/// cache starts over (a burst of distinct tokens must not grow memory without bound).
const MAX_ENTRIES: usize = 100_000;

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
    /// The database cannot answer now (see [`crate::health`]): a cache miss is refused at
    /// once instead of waiting for a connection.
    #[error("the database is unavailable: {}", .0.describe())]
    DatabaseDown(crate::store::Fault),
}

/// A session as the cache holds it.
#[derive(Debug, Clone)]
struct CachedSession {
    /// `None`: no such session.
    state: Option<Arc<(SessionState, String)>>,
    fetched_at: OffsetDateTime,
}

#[derive(Debug, Default)]
struct Tokens {
    key_generation: u64,
    by_digest: HashMap<[u8; 32], Arc<AccessTokenClaims>>,
}

#[derive(Debug, Default)]
struct Sessions {
    generation: u64,
    by_id: HashMap<String, CachedSession>,
}

/// The webhook's caches; one per issuer process, in `AppState`.
#[derive(Debug, Default)]
pub struct Caches {
    tokens: Mutex<Tokens>,
    sessions: Mutex<Sessions>,
}

impl Caches {
    /// Forgets a session's state: call after revoking it.
    pub fn invalidate_session(&self, session_id: &str) {
        let mut s = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        s.generation = s.generation.wrapping_add(1);
        s.by_id.remove(session_id);
    }

    /// Forgets the state of every session of a user: call after disabling the account.
    pub fn invalidate_user(&self, user_id: &str) {
        let mut s = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        s.generation = s.generation.wrapping_add(1);
        s.by_id.retain(|_, c| {
            c.state
                .as_ref()
                .is_none_or(|state| state.0.user_id != user_id)
        });
    }

    fn cached_claims(
        &self,
        digest: &[u8; 32],
        key_generation: u64,
    ) -> Option<Arc<AccessTokenClaims>> {
        let t = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if t.key_generation != key_generation {
            return None;
        }
        t.by_digest.get(digest).cloned()
    }

    fn remember_claims(
        &self,
        digest: [u8; 32],
        claims: Arc<AccessTokenClaims>,
        key_generation: u64,
        now: OffsetDateTime,
    ) {
        let mut t = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if t.key_generation != key_generation {
            t.by_digest.clear();
            t.key_generation = key_generation;
        }
        if t.by_digest.len() >= MAX_ENTRIES {
            let now = now.unix_timestamp();
            t.by_digest.retain(|_, c| c.exp > now);
            if t.by_digest.len() >= MAX_ENTRIES {
                t.by_digest.clear();
            }
        }
        t.by_digest.insert(digest, claims);
    }

    /// The cached state of a session if younger than `ttl`, and the generation to insert with.
    fn cached_session(
        &self,
        id: &str,
        now: OffsetDateTime,
        ttl: std::time::Duration,
    ) -> (Option<CachedSession>, u64) {
        let s = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = s
            .by_id
            .get(id)
            .filter(|c| now >= c.fetched_at && now - c.fetched_at < ttl)
            .cloned();
        (hit, s.generation)
    }

    fn remember_session(&self, id: &str, entry: CachedSession, generation: u64) {
        let mut s = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        // An invalidation happened while the database was read: the read may predate it.
        if s.generation != generation {
            return;
        }
        if s.by_id.len() >= MAX_ENTRIES {
            s.by_id.clear();
        }
        s.by_id.insert(id.to_owned(), entry);
    }
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
