//! The two caches that keep a token review off the database and off ECDSA for tokens seen
//! before: verified tokens, and session states (with a generation counter so that a read that
//! raced an invalidation cannot re-insert the old state). One per process, in the state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use credential_shared::oauth::AccessTokenClaims;
use time::OffsetDateTime;

use crate::domain::review::SessionState;

/// Most entries per cache; past it, expired entries are swept and, if that is not enough, the
/// cache starts over (a burst of distinct tokens must not grow memory without bound).
const MAX_ENTRIES: usize = 100_000;

/// A session as the cache holds it.
#[derive(Debug, Clone)]
pub(super) struct CachedSession {
    /// `None`: no such session.
    pub(super) state: Option<Arc<(SessionState, String)>>,
    pub(super) fetched_at: OffsetDateTime,
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

    pub(super) fn cached_claims(
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

    pub(super) fn remember_claims(
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
    pub(super) fn cached_session(
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

    pub(super) fn remember_session(&self, id: &str, entry: CachedSession, generation: u64) {
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
