//! `status`: one line per stored session of the chosen token cache.

use crate::base::clock::Clock;
use crate::base::target::TokenCacheKind;
use crate::cache::{Index, TokenCache};
use crate::cli;
use crate::commands::show;
use crate::error::Error;
use crate::flow::exposed::EndExposed;

/// `status`: one line per stored session.
pub(super) fn status(args: &cli::StatusArgs, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache)?;
    let _end_exposed = EndExposed::for_any_issuer(&cache, None, clock);
    let index = Index::open_default()?;
    let listed = cache.list(&index)?;
    let kind = match args.token_cache {
        TokenCacheKind::Keyring => "keyring",
        TokenCacheKind::File => "file",
    };
    show::print(&show::status(&listed, clock.now(), kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{FileStore, Root};
    use crate::flow::session::tests::{args, entry, NOW};
    use crate::flow::session::{base_key, origin_of};

    #[test]
    fn stored_entries_carry_their_origin_for_status() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = TokenCache::File(FileStore::new(Root::new(tmp.path(), crate::cache::SERVICE)));
        let index = Index::new(Root::new(tmp.path(), crate::cache::SERVICE));
        let a = args("prod");
        let e = entry(NOW + 60, Some("RT"), None).with_origin(origin_of(&a));
        cache
            .store(&base_key(&a), &e)
            .unwrap_or_else(|e| panic!("{e}"));
        let listed = cache.list(&index).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, base_key(&a));
        assert_eq!(listed[0].origin, Some(origin_of(&a)));
        let text = show::status(&listed, NOW, "file");
        assert!(
            text.contains("prod     https://issuer.example  alice"),
            "{text}"
        );
    }
}
