//! Sessions whose cache files others could read: the cache drops them, and this ends them at
//! their issuer too, once a command is done with its cache (never on a cache hit's path).

use std::path::Path;

use crate::base::clock::Clock;
use crate::base::target::{normalize_issuer, IssuerUrl, Target};
use crate::cache::TokenCache;
use crate::error::{self, Error};
use crate::issuer::IssuerClient;

/// How long ending an exposed session at its issuer may take, per request (discovery, then
/// revocation): it is a courtesy, and a person or kubectl is waiting.
const EXPOSED_REVOKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Ends at their issuer the sessions whose cache files others could read (their refresh tokens
/// count as exposed; the files are already gone). Best effort and bounded: a failure is one
/// note, as the session cannot be used from here any more either way. An entry that does not
/// record its issuer is ended at `fallback` (the issuer and client of the command's own key).
pub(crate) fn end_exposed(
    cache: &TokenCache,
    fallback: Option<(&IssuerUrl, &str)>,
    ca: Option<&Path>,
    now: i64,
) {
    for entry in cache.take_exposed() {
        let Some(token) = entry
            .refresh_token
            .as_ref()
            .filter(|_| entry.has_live_session(now))
        else {
            continue;
        };
        let target = match &entry.origin {
            Some(o) => normalize_issuer(&o.issuer)
                .ok()
                .map(|url| (url, o.client_id.clone())),
            None => fallback.map(|(url, client)| (url.clone(), client.to_owned())),
        };
        let Some((issuer, client_id)) = target else {
            continue;
        };
        let ended = IssuerClient::with_timeouts(
            &issuer,
            ca,
            EXPOSED_REVOKE_TIMEOUT,
            EXPOSED_REVOKE_TIMEOUT,
        )
        .and_then(|client| {
            let endpoints = client.discover()?;
            client.revoke(&endpoints, &client_id, token)
        });
        if let Err(err) = ended {
            eprintln!(
                "note: the exposed session could not be ended at {}, so it stays valid there until it expires: {}",
                credential_shared::text::Untrusted::new(issuer.as_str()),
                error::report(&Error::Issuer(err))
            );
        }
    }
}

/// Runs [`end_exposed`] when a command is done with its cache, however it returns, for the
/// exposed sessions no earlier call ended. On a cache hit there are none: no network call.
pub(crate) struct EndExposed<'a> {
    cache: &'a TokenCache,
    fallback: Option<(&'a IssuerUrl, &'a str)>,
    ca: Option<&'a Path>,
    clock: &'a dyn Clock,
}

impl<'a> EndExposed<'a> {
    /// For a command acting for `args`' issuer and client.
    pub(crate) fn for_args(cache: &'a TokenCache, args: &'a Target, clock: &'a dyn Clock) -> Self {
        Self {
            cache,
            fallback: Some((&args.issuer, &args.client_id)),
            ca: args.issuer_ca.as_deref(),
            clock,
        }
    }

    /// For a command acting for no one issuer (`status`, `logout --all`): an entry that does
    /// not record its issuer is left alone; `ca` is trusted for every issuer.
    pub(crate) fn for_any_issuer(
        cache: &'a TokenCache,
        ca: Option<&'a Path>,
        clock: &'a dyn Clock,
    ) -> Self {
        Self {
            cache,
            fallback: None,
            ca,
            clock,
        }
    }

    /// Ends them now (before a sign-in or an answer that should not wait).
    pub(crate) fn now(&self) {
        end_exposed(self.cache, self.fallback, self.ca, self.clock.now());
    }
}

impl Drop for EndExposed<'_> {
    fn drop(&mut self) {
        self.now();
    }
}
