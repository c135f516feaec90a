//! `whoami`: who the stored session signs in as, and when its token and the session expire.

use crate::base::clock::Clock;
use crate::base::target::Target;
use crate::cache::TokenCache;
use crate::commands::show;
use crate::error::Error;
use crate::flow::exposed::EndExposed;
use crate::flow::session::{refresh, session_of_cluster, session_to_show, LazyIssuer};

/// `whoami`: who the stored session is, from the cache alone unless `--refresh` asks for a
/// refresh first (through the same locked path as `get`).
pub(super) fn whoami(common: &Target, refresh_first: bool, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(common.token_cache)?;
    let _end_exposed = EndExposed::for_args(&cache, common, clock);
    let (key, mut entry) = session_of_cluster(&cache, common, clock.now())?;
    if refresh_first {
        let current = entry
            .as_ref()
            .filter(|e| e.has_live_session(clock.now()))
            .map(|e| e.access_token.clone());
        if let Some(current) = current {
            let mut issuer = LazyIssuer::new(common);
            entry = refresh(common, &cache, &key, &mut issuer, Some(&current), clock)?;
        }
    }
    let entry = session_to_show(entry, common, clock.now())?;
    show::print(&show::whoami(&entry, common, clock.now()))
}
