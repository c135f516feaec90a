//! `logout` and `logout --all`: revoke sessions at their issuer, then delete them locally
//! whatever the issuer said.

use std::io::{self, Write};
use std::path::Path;

use credential_shared::text::Untrusted;

use crate::base::clock::Clock;
use crate::base::secret::Secret;
use crate::base::target::{normalize_issuer, IssuerUrl, Target, TokenCacheKind};
use crate::cache::{CacheKey, Index, Listed, TokenCache};
use crate::cli;
use crate::error::{self, Error};
use crate::flow::exposed::EndExposed;
use crate::flow::session::{cluster_keys, forget, forget_handouts, LazyIssuer};
use crate::issuer::IssuerClient;

/// `logout`: revoke the cluster's sessions at the issuer (the one `login` stored and every one
/// kubectl adopted for an API server), then delete them locally whatever the issuer said.
pub(super) fn logout(args: &Target, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache)?;
    let _end_exposed = EndExposed::for_args(&cache, args, clock);
    let mut issuer = LazyIssuer::new(args);
    let mut deleted = false;
    let mut not_revoked = None;
    for key in cluster_keys(&cache, args)? {
        let entry = cache.load(&key)?;
        let live_token = entry
            .as_ref()
            .filter(|e| e.has_live_session(clock.now()))
            .and_then(|e| e.refresh_token.as_ref());
        if let Some(token) = live_token {
            let revoked = issuer.connect().and_then(|(client, endpoints)| {
                Ok(client.revoke(endpoints, &args.client_id, token)?)
            });
            if let Err(err) = revoked {
                not_revoked.get_or_insert(err);
            }
        }
        deleted |= cache.delete(&key)?;
        forget(&cache, std::slice::from_ref(&key));
        forget_handouts(&key, clock);
    }
    match not_revoked {
        Some(Error::Issuer(err)) => return Err(Error::RevokeFailed(err)),
        Some(err) => return Err(err),
        None => {}
    }
    if deleted {
        eprintln!(
            "Logged out of cluster \"{}\" at {}.",
            Untrusted::new(&args.cluster),
            args.issuer
        );
    } else {
        eprintln!(
            "No session stored for cluster \"{}\" at {}; nothing to do.",
            Untrusted::new(&args.cluster),
            args.issuer
        );
    }
    Ok(())
}

/// `logout --all`: end every stored session of the chosen backend, each revoked at its issuer
/// (with `--issuer-ca` trusted for all of them, if given) and deleted locally.
pub(super) fn logout_all(args: &cli::LogoutArgs, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache.unwrap_or(TokenCacheKind::Keyring))?;
    let _end_exposed = EndExposed::for_any_issuer(&cache, args.issuer_ca.as_deref(), clock);
    let index = Index::open_default()?;
    let ca = args.issuer_ca.as_deref();
    end_every_session(
        &cache,
        &index,
        clock.now(),
        &mut |issuer, client_id, token| revoke_at(issuer, ca, client_id, token),
        &mut io::stderr(),
    )
}

/// Revokes `token` at `issuer`.
fn revoke_at(
    issuer: &IssuerUrl,
    ca: Option<&Path>,
    client_id: &str,
    token: &Secret,
) -> Result<(), Error> {
    let client = IssuerClient::new(issuer, ca)?;
    let endpoints = client.discover()?;
    client.revoke(&endpoints, client_id, token)?;
    Ok(())
}

/// What `logout --all` does, with revocation as a parameter so that it is tested without a
/// network: every session is deleted whatever its issuer says; each one whose live session
/// could not be revoked is reported on `ui` and counted in the error.
fn end_every_session(
    cache: &TokenCache,
    index: &Index,
    now: i64,
    revoke: &mut dyn FnMut(&IssuerUrl, &str, &Secret) -> Result<(), Error>,
    ui: &mut dyn Write,
) -> Result<(), Error> {
    // Keys the index listed before we started, to drop those whose item is already gone too.
    let indexed: Vec<CacheKey> = if cache.needs_index() {
        index.load()?.into_keys().collect()
    } else {
        Vec::new()
    };
    let listed = cache.list(index)?;
    let mut not_revoked = 0;
    let mut deleted = Vec::with_capacity(listed.len());
    for Listed { key, entry, origin } in &listed {
        let name = match origin {
            Some(o) => format!(
                "cluster \"{}\" at {}",
                Untrusted::new(&o.cluster),
                Untrusted::new(&o.issuer)
            ),
            None => "a session of an unknown issuer (stored by an older version)".to_owned(),
        };
        let live = entry
            .refresh_token
            .as_ref()
            .filter(|_| entry.has_live_session(now));
        let issuer = origin
            .as_ref()
            .and_then(|o| normalize_issuer(&o.issuer).ok().map(|url| (url, o)));
        let revoked = match (live, &issuer) {
            (None, _) => Ok(()),
            (Some(token), Some((url, o))) => revoke(url, &o.client_id, token).map_err(Some),
            (Some(_), None) => Err(None),
        };
        cache.delete(key)?;
        deleted.push(key.clone());
        let _ = match revoked {
            Ok(()) => writeln!(ui, "Logged out of {name}."),
            Err(why) => {
                not_revoked += 1;
                let why = why.map_or_else(
                    || "its issuer is not known".to_owned(),
                    |e| error::report(&e),
                );
                writeln!(
                    ui,
                    "Deleted {name} locally, but it could not be revoked: {why}"
                )
            }
        };
    }
    if cache.needs_index() {
        deleted.extend(indexed);
        index.remove(&deleted)?;
    }
    if listed.is_empty() {
        let _ = writeln!(ui, "No sessions stored; nothing to do.");
    }
    if not_revoked > 0 {
        return Err(Error::SomeNotRevoked { count: not_revoked });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use credential_shared::oauth::PLUGIN_CLIENT_ID;

    use super::*;
    use crate::cache::Entry;
    use crate::cache::{FileStore, Root};
    use crate::exit::EXIT_ISSUER;
    use crate::flow::session::tests::{args, entry, NOW};
    use crate::flow::session::{base_key, origin_of};
    use crate::issuer::IssuerError;

    #[test]
    fn logout_all_revokes_live_sessions_and_deletes_everything() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = TokenCache::File(FileStore::new(Root::new(tmp.path(), crate::cache::SERVICE)));
        let index = Index::new(Root::new(tmp.path(), crate::cache::SERVICE));
        let store = |cluster: &str, e: Entry, with_origin: bool| {
            let a = args(cluster);
            let e = if with_origin {
                e.with_origin(origin_of(&a))
            } else {
                e
            };
            cache
                .store(&base_key(&a), &e)
                .unwrap_or_else(|e| panic!("{e}"));
        };
        store(
            "prod",
            entry(NOW + 60, Some("RT-prod"), Some(NOW + 600)),
            true,
        );
        store(
            "dev",
            entry(NOW + 60, Some("RT-dev"), Some(NOW + 600)),
            true,
        );
        // Session over: nothing to revoke.
        store("old", entry(NOW - 60, Some("RT-old"), Some(NOW - 1)), true);
        // Written by an older version: no issuer to revoke at.
        store("legacy", entry(NOW + 60, Some("RT-legacy"), None), false);

        let mut revoked = Vec::new();
        let mut ui = Vec::new();
        let result = end_every_session(
            &cache,
            &index,
            NOW,
            &mut |issuer, client_id, token| {
                revoked.push((
                    issuer.to_string(),
                    client_id.to_owned(),
                    token.expose().to_owned(),
                ));
                if token.expose() == "RT-dev" {
                    Err(Error::Issuer(IssuerError::Status {
                        issuer: issuer.to_string(),
                        url: format!("{issuer}/oauth/revoke"),
                        status: 503,
                        retry_after: None,
                    }))
                } else {
                    Ok(())
                }
            },
            &mut ui,
        );
        revoked.sort();
        assert_eq!(
            revoked,
            [
                (
                    "https://issuer.example".to_owned(),
                    PLUGIN_CLIENT_ID.to_owned(),
                    "RT-dev".to_owned()
                ),
                (
                    "https://issuer.example".to_owned(),
                    PLUGIN_CLIENT_ID.to_owned(),
                    "RT-prod".to_owned()
                ),
            ]
        );
        let err = result.err().unwrap_or_else(|| panic!("all revoked"));
        assert_eq!(err.exit_code(), EXIT_ISSUER);
        assert!(matches!(err, Error::SomeNotRevoked { count: 2 }), "{err:?}");
        let ui = String::from_utf8_lossy(&ui);
        assert!(
            ui.contains("Logged out of cluster \"prod\" at https://issuer.example.\n"),
            "{ui}"
        );
        assert!(
            ui.contains("Logged out of cluster \"old\" at https://issuer.example.\n"),
            "{ui}"
        );
        assert!(ui.contains("Deleted cluster \"dev\" at https://issuer.example locally, but it could not be revoked"), "{ui}");
        assert!(ui.contains("Deleted a session of an unknown issuer (stored by an older version) locally, but it could not be revoked: its issuer is not known"), "{ui}");
        assert!(!ui.contains("RT-"), "{ui}");
        assert!(cache
            .list(&index)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());

        // Nothing left: a second run says so and succeeds.
        let mut ui = Vec::new();
        end_every_session(&cache, &index, NOW, &mut |_, _, _| Ok(()), &mut ui)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&ui),
            "No sessions stored; nothing to do.\n"
        );
    }
}
