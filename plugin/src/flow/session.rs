//! One cluster's stored session, as every command that uses it sees it: its cache keys and
//! origin, finding it among the stored ones, refreshing it under the key's lock, storing it
//! (with the index of sessions kept in step) and signing in anew.

use std::io::{self, IsTerminal as _};

use credential_shared::oauth::OAuthErrorCode;

use crate::base::cancel::Cancel;
use crate::base::clock::Clock;
use crate::base::secret::Secret;
use crate::base::target::{login_command, Target};
use crate::cache::{
    Acquired, CacheKey, Entry, Index, KeyLock, Listed, Origin, TokenCache, REFRESH_WAIT,
};
use crate::error::{self, Error};
use crate::flow::device;
use crate::flow::exposed::EndExposed;
use crate::flow::handout::HandOuts;
use crate::issuer::{Endpoints, IssuerClient};

/// The cache key of a session started by hand (`login`): issuer, cluster name, client and
/// `--username`, without the API server, which only kubectl knows.
pub(crate) fn base_key(args: &Target) -> CacheKey {
    CacheKey::for_user(
        args.issuer.as_str(),
        &args.cluster,
        &args.client_id,
        args.username.as_deref(),
        None,
    )
}

/// Whether a stored session belongs to the cluster and `--username` (or its absence) `args`
/// name: what `logout`, `login` and `whoami --cluster` act on, whatever API server it was
/// adopted by. Sessions pinned to an account are left to commands naming that account.
pub(crate) fn belongs_to(listed: &Listed, args: &Target) -> bool {
    listed.origin.as_ref() == Some(&origin_of(args))
}

/// Every stored key of the cluster `args` name: its base key (even for an entry written before
/// origins were recorded) and every API-server key whose session belongs to it.
pub(crate) fn cluster_keys(cache: &TokenCache, args: &Target) -> Result<Vec<CacheKey>, Error> {
    let index = Index::open_default()?;
    let mut keys = vec![base_key(args)];
    for listed in cache.list(&index)? {
        if belongs_to(&listed, args) && !keys.contains(&listed.key) {
            keys.push(listed.key);
        }
    }
    Ok(keys)
}

/// Whose session `args` select, recorded in the entry and the index.
pub(crate) fn origin_of(args: &Target) -> Origin {
    Origin {
        issuer: args.issuer.to_string(),
        cluster: args.cluster.clone(),
        client_id: args.client_id.clone(),
        account: args.username.clone(),
    }
}

/// The error for "no usable session here": the user has to sign in.
pub(crate) fn login_required(args: &Target) -> Error {
    Error::LoginRequired {
        cluster: args.cluster.clone(),
        issuer: args.issuer.to_string(),
        login_command: login_command(args),
    }
}

/// A live access token of the cluster's session, refreshed if it is not fresh.
pub(crate) fn live_token(
    args: &Target,
    cache: &TokenCache,
    issuer: &mut LazyIssuer<'_>,
    clock: &dyn Clock,
) -> Result<(CacheKey, Entry), Error> {
    let (key, entry) = session_of_cluster(cache, args, clock.now())?;
    let entry = session_to_show(entry, args, clock.now())?;
    if entry.is_fresh(clock.now()) {
        return Ok((key, entry));
    }
    let fresh = refresh(args, cache, &key, issuer, None, clock)?;
    let fresh = fresh
        .filter(|e| e.is_fresh(clock.now()))
        .ok_or_else(|| login_required(args))?;
    Ok((key, fresh))
}

/// The cluster's session `whoami` reports on: the one `login` stored, else the live one
/// kubectl most recently adopted for an API server (`None` when there is none).
pub(crate) fn session_of_cluster(
    cache: &TokenCache,
    args: &Target,
    now: i64,
) -> Result<(CacheKey, Option<Entry>), Error> {
    let key = base_key(args);
    if let Some(entry) = cache.load(&key)?.filter(|e| e.is_alive(now)) {
        return Ok((key, Some(entry)));
    }
    let index = Index::open_default()?;
    let adopted = cache
        .list(&index)?
        .into_iter()
        .filter(|l| belongs_to(l, args) && l.entry.is_alive(now))
        .max_by_key(|l| l.entry.iat);
    Ok(match adopted {
        Some(l) => (l.key, Some(l.entry)),
        None => (key, None),
    })
}

/// The entry `whoami` reports on: one that is still of some use, else "log in".
pub(crate) fn session_to_show(
    entry: Option<Entry>,
    args: &Target,
    now: i64,
) -> Result<Entry, Error> {
    entry
        .filter(|e| e.is_alive(now))
        .ok_or_else(|| login_required(args))
}

/// Runs the device flow on stderr and records whose session the result is.
pub(crate) fn sign_in(
    client: &IssuerClient,
    endpoints: &Endpoints,
    args: &Target,
    clock: &dyn Clock,
    cancel: &Cancel,
) -> Result<Entry, Error> {
    let terminal = io::stderr().is_terminal();
    let entry = device::sign_in(
        client,
        endpoints,
        args,
        clock,
        &mut io::stderr(),
        terminal,
        cancel,
    )?;
    if let Some(expected) = &args.username {
        if entry.username != *expected {
            // Somebody else approved (another account in the browser, or a phished code):
            // never cache that session for this entry, and end it at the issuer.
            if let Some(token) = &entry.refresh_token {
                let _ = client.revoke(endpoints, &args.client_id, token);
            }
            return Err(Error::WrongAccount {
                expected: expected.clone(),
                signed_in: entry.username.clone(),
            });
        }
    }
    Ok(entry.with_origin(origin_of(args)))
}

/// Refreshes the session stored under `key`, holding the refresh lock so that concurrent `get`s
/// do not spend the same single-use refresh token twice. `Ok(None)` when there is no session
/// left (the issuer said `invalid_grant`, and the entry is deleted).
///
/// `rejected` is a token the caller will not use even though it looks fresh (the API server
/// refused it, or the person asked for a refresh); a fresh token other than that one, which
/// another process stored while this one waited for the lock, is taken as is.
pub(crate) fn refresh(
    args: &Target,
    cache: &TokenCache,
    key: &CacheKey,
    issuer: &mut LazyIssuer<'_>,
    rejected: Option<&Secret>,
    clock: &dyn Clock,
) -> Result<Option<Entry>, Error> {
    // Past the wait the refresh goes ahead unlocked, as it would on a machine without locks.
    let _lock = refresh_lock(key, clock);
    // Read again under the lock: another process may have refreshed (or deleted) it meanwhile.
    let Some(entry) = cache.load(key)? else {
        return Ok(None);
    };
    if !needs_refresh(&entry, rejected, clock.now()) {
        return Ok(Some(entry));
    }
    let Some(refresh_token) = entry
        .refresh_token
        .as_ref()
        .filter(|_| entry.has_live_session(clock.now()))
    else {
        return Ok(None);
    };
    let (client, endpoints) = issuer.connect()?;
    match client.refresh(endpoints, &args.client_id, refresh_token) {
        Ok(response) => {
            let fresh = Entry::from_token_response(response, entry.session_expires_at, clock.now())
                .map_err(|source| Error::MalformedToken {
                    issuer: args.issuer.to_string(),
                    source,
                })?
                .with_origin(origin_of(args));
            forget_handouts(key, clock);
            store_or_warn(cache, key, &fresh);
            Ok(Some(fresh))
        }
        Err(err) if err.oauth_code() == Some(OAuthErrorCode::InvalidGrant) => {
            // Revoked, expired, reused or the user disabled: this entry will never work again.
            cache.delete(key)?;
            forget(cache, std::slice::from_ref(key));
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// Whether the stored `entry` has to be refreshed: it is not fresh, or it still holds the
/// token the caller rejected.
pub(crate) fn needs_refresh(entry: &Entry, rejected: Option<&Secret>, now: i64) -> bool {
    !entry.is_fresh(now) || rejected.is_some_and(|token| *token == entry.access_token)
}

/// Stores a session `get` already has in hand. If that fails the token is still handed to
/// kubectl (it is valid), and the user is told that the session was not kept.
pub(crate) fn store_or_warn(cache: &TokenCache, key: &CacheKey, entry: &Entry) {
    match cache.store(key, entry) {
        Ok(()) => remember(cache, key, entry),
        Err(err) => eprintln!(
            "warning: the session could not be saved, so the next command will need a new sign-in: {}",
            error::report(&Error::Cache(err))
        ),
    }
}

/// Lists a stored session in the index (keyring backend only: files are found by listing their
/// directory). Only on the paths that store a session, never on a cache hit; a failure is a
/// warning, as the session itself is stored.
pub(crate) fn remember(cache: &TokenCache, key: &CacheKey, entry: &Entry) {
    let Some(origin) = entry.origin.as_ref().filter(|_| cache.needs_index()) else {
        return;
    };
    if let Err(err) = Index::open_default().and_then(|index| index.add(key, origin)) {
        eprintln!(
            "warning: the list of sessions could not be updated, so `status` and `logout --all` \
             miss this session until its next refresh: {}",
            error::report(&Error::Cache(err))
        );
    }
}

/// Removes deleted sessions from the index (keyring backend only); a failure is a warning.
pub(crate) fn forget(cache: &TokenCache, keys: &[CacheKey]) {
    if !cache.needs_index() || keys.is_empty() {
        return;
    }
    if let Err(err) = Index::open_default().and_then(|index| index.remove(keys)) {
        eprintln!(
            "warning: the list of sessions could not be updated: {}",
            error::report(&Error::Cache(err))
        );
    }
}

/// Forgets which callers received `key`'s token, as it is being replaced (off the hit path).
pub(crate) fn forget_handouts(key: &CacheKey, clock: &dyn Clock) {
    if let Some(handouts) = HandOuts::open_default() {
        let now = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(clock.now()).unwrap_or(0));
        handouts.prune(key, now);
    }
}

/// The issuer client and its endpoints, built and discovered on first use only.
pub(crate) struct LazyIssuer<'a> {
    args: &'a Target,
    connected: Option<(IssuerClient, Endpoints)>,
}

impl<'a> LazyIssuer<'a> {
    pub(crate) fn new(args: &'a Target) -> Self {
        Self {
            args,
            connected: None,
        }
    }

    pub(crate) fn connect(&mut self) -> Result<(&IssuerClient, &Endpoints), Error> {
        let connected = if let Some(connected) = self.connected.take() {
            connected
        } else {
            let client = IssuerClient::new(&self.args.issuer, self.args.issuer_ca.as_deref())?;
            let endpoints = client.discover()?;
            (client, endpoints)
        };
        let (client, endpoints) = self.connected.insert(connected);
        Ok((client, endpoints))
    }
}

/// Holds `key`'s refresh lock, waiting for it at most [`REFRESH_WAIT`] (or `None` where there
/// are no locks). Past the wait the caller goes ahead unlocked, as on a machine without locks.
pub(crate) fn refresh_lock(key: &CacheKey, clock: &dyn Clock) -> Option<Acquired> {
    KeyLock::default_root().map(|root| {
        KeyLock::acquire(
            &root,
            key,
            REFRESH_WAIT,
            clock,
            &mut || {},
            &Cancel::default(),
        )
    })
}

/// Runs `call` with the issuer and a live access token of the cluster's session (refreshed if
/// need be): what the commands that read the issuer's API with the person's token share.
pub(crate) fn with_live_token(
    args: &Target,
    clock: &dyn Clock,
    call: impl FnOnce(&IssuerClient, &Secret) -> Result<(), Error>,
) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache)?;
    let _end_exposed = EndExposed::for_args(&cache, args, clock);
    let mut issuer = LazyIssuer::new(args);
    let (_, entry) = live_token(args, &cache, &mut issuer, clock)?;
    let (client, _) = issuer.connect()?;
    call(client, &entry.access_token)
}

#[cfg(test)]
pub(crate) mod tests {
    use credential_shared::oauth::PLUGIN_CLIENT_ID;

    use super::*;
    use crate::base::target::TokenCacheKind;
    use crate::exit::EXIT_LOGIN_REQUIRED;

    pub(crate) const NOW: i64 = 1_767_225_600;

    pub(crate) fn entry(exp: i64, refresh: Option<&str>, session: Option<i64>) -> Entry {
        Entry {
            access_token: Secret::new(format!("AT-{exp}")),
            iat: exp - 300,
            exp,
            refresh_token: refresh.map(|r| Secret::new(r.to_owned())),
            session_expires_at: session,
            username: "alice".to_owned(),
            origin: None,
            api_server: None,
        }
    }

    pub(crate) fn args(cluster: &str) -> Target {
        Target {
            issuer: crate::base::target::normalize_issuer("https://issuer.example")
                .unwrap_or_else(|e| panic!("{e}")),
            cluster: cluster.to_owned(),
            issuer_ca: None,
            token_cache: TokenCacheKind::File,
            no_browser: true,
            client_id: PLUGIN_CLIENT_ID.to_owned(),
            username: None,
        }
    }

    #[test]
    fn a_rejected_token_is_refreshed_unless_someone_replaced_it() {
        let stored = entry(NOW + 300, Some("RT"), None);
        assert!(!needs_refresh(&stored, None, NOW));
        assert!(needs_refresh(&stored, None, NOW + 300));
        // `--force-refresh` with the token still stored: refresh although it looks fresh.
        assert!(needs_refresh(&stored, Some(&stored.access_token), NOW));
        // Another process replaced it while we waited for the lock: take the new one.
        let other = Secret::new("AT-old".to_owned());
        assert!(!needs_refresh(&stored, Some(&other), NOW));
    }

    #[test]
    fn whoami_needs_a_token_or_a_session_that_is_still_of_use() {
        let shown = |e: Option<Entry>| session_to_show(e, &args("prod"), NOW).map(|_| ());
        assert!(shown(Some(entry(NOW + 10, None, None))).is_ok());
        assert!(shown(Some(entry(NOW - 10, Some("RT"), Some(NOW + 10)))).is_ok());
        for dead in [
            None,
            Some(entry(NOW - 10, None, None)),
            Some(entry(NOW - 10, Some("RT"), Some(NOW - 1))),
        ] {
            let err = shown(dead).err().unwrap_or_else(|| panic!("shown"));
            assert_eq!(err.exit_code(), EXIT_LOGIN_REQUIRED);
            assert!(error::report(&err).contains(
                "run: kubectl credential login --issuer https://issuer.example --cluster prod"
            ));
        }
    }

    #[test]
    fn login_and_logout_act_on_the_sessions_of_their_cluster_and_account_only() {
        let listed = |cluster: &str, account: Option<&str>| {
            let mut a = args(cluster);
            a.username = account.map(str::to_owned);
            Listed {
                key: base_key(&a),
                entry: entry(NOW + 60, Some("RT"), None),
                origin: Some(origin_of(&a)),
            }
        };
        let prod = args("prod");
        let mut prod_admin = args("prod");
        prod_admin.username = Some("admin".to_owned());
        // A session kubectl took over for an API server has another key, the same origin.
        let mut adopted = listed("prod", None);
        adopted.key = CacheKey::new("https://issuer.example", "prod", PLUGIN_CLIENT_ID, None);
        assert!(belongs_to(&adopted, &prod));
        assert!(belongs_to(&listed("prod", None), &prod));
        assert!(!belongs_to(&listed("prod", Some("admin")), &prod));
        assert!(belongs_to(&listed("prod", Some("admin")), &prod_admin));
        assert!(!belongs_to(&listed("prod", None), &prod_admin));
        assert!(!belongs_to(&listed("dev", None), &prod));
        // Written before origins were recorded: only its own (base) key finds it.
        let mut legacy = listed("prod", None);
        legacy.origin = None;
        assert!(!belongs_to(&legacy, &prod));
    }
}
