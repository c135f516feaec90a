//! `login`: sign in now with the device flow, replacing the cluster's earlier sessions.

use crate::base::cancel::Cancel;
use crate::base::clock::Clock;
use crate::base::target::Target;
use crate::cache::TokenCache;
use crate::error::{self, Error};
use crate::flow::device;
use crate::flow::exposed::EndExposed;
use crate::flow::session::{base_key, cluster_keys, forget, forget_handouts, remember, sign_in};
use crate::issuer::IssuerClient;

/// `login`: sign in now and store the session. It replaces every session of this cluster on
/// this machine (whichever API server adopted it): those are deleted and revoked.
pub(super) fn login(args: &Target, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache)?;
    let _end_exposed = EndExposed::for_args(&cache, args, clock);
    let key = base_key(args);
    // Reading first proves the keyring answers before the person spends a minute signing in.
    let mut previous = Vec::new();
    for old_key in cluster_keys(&cache, args)? {
        if let Some(old) = cache.load(&old_key)? {
            previous.push((old_key, old));
        }
    }
    cache.prepare()?;
    let client = IssuerClient::new(&args.issuer, args.issuer_ca.as_deref())?;
    let endpoints = client.discover()?;
    let entry = sign_in(&client, &endpoints, args, clock, &Cancel::on_ctrl_c())?;
    forget_handouts(&key, clock);
    cache.store(&key, &entry)?;
    remember(&cache, &key, &entry);
    for (old_key, old) in &previous {
        if *old_key != key {
            forget_handouts(old_key, clock);
            cache.delete(old_key)?;
            forget(&cache, std::slice::from_ref(old_key));
        }
        // The new session replaces the old one here; end the old one at the issuer as well.
        let old_token = old
            .refresh_token
            .as_ref()
            .filter(|_| old.has_live_session(clock.now()));
        if let Some(old_token) = old_token {
            if let Err(err) = client.revoke(&endpoints, &args.client_id, old_token) {
                eprintln!(
                    "note: the previous session could not be revoked: {}",
                    error::report(&Error::Issuer(err))
                );
            }
        }
    }
    eprintln!("{}", device::logged_in_message(&entry, &args.cluster));
    Ok(())
}
