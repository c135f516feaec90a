//! What each subcommand does, step by step. `get` answers from the cache first and does
//! nothing else when it can (no network, no writes, no TLS setup); the issuer client is built
//! only on the paths that need it.

use std::io;

use credential_shared::oauth::OAuthErrorCode;

use crate::cache::{CacheKey, Entry, RefreshLock, TokenCache};
use crate::cli::{self, Cli, Command, CommonArgs};
use crate::clock::{Clock, SystemClock};
use crate::device_flow;
use crate::error::{self, Error};
use crate::exec::{self, ExecInfo};
use crate::issuer::{Endpoints, IssuerClient};

/// Runs one subcommand.
pub(crate) fn run(cli: Cli) -> Result<(), Error> {
    let clock = SystemClock;
    match cli.command {
        Command::Get(args) => get(&args, &clock),
        Command::Login(args) => login(&args, &clock),
        Command::Logout(args) => logout(&args, &clock),
    }
}

/// The cache key of a session: issuer, cluster name and client. `get`, `login` and `logout`
/// must agree on it, so it does not include what only kubectl knows (the API server and CA
/// from `spec.cluster`): a session started by `login` serves kubectl, and `logout` clears a
/// session that an interactive `get` started.
fn base_key(args: &CommonArgs) -> CacheKey {
    CacheKey::new(args.issuer.as_str(), &args.cluster, &args.client_id, None)
}

/// `get`: print a credential for kubectl.
fn get(args: &CommonArgs, clock: &dyn Clock) -> Result<(), Error> {
    let info = exec::read_exec_info()?;
    let cache = TokenCache::open(args.token_cache)?;
    let key = base_key(args);
    let found = cache.load(&key)?;
    if let Some(entry) = &found {
        if entry.is_fresh(clock.now()) {
            return exec::print_credential(info.version, entry);
        }
    }
    get_without_fresh_token(
        args,
        &info,
        &cache,
        &key,
        found.map(|e| (key.clone(), e)),
        clock,
    )
}

/// `get` when the cache had no fresh token: refresh the session, or sign in, or give up.
#[cold]
#[inline(never)]
fn get_without_fresh_token(
    args: &CommonArgs,
    info: &ExecInfo,
    cache: &TokenCache,
    exact: &CacheKey,
    found: Option<(CacheKey, Entry)>,
    clock: &dyn Clock,
) -> Result<(), Error> {
    let mut issuer = LazyIssuer::new(args);
    if let Some((key, entry)) = found {
        if entry.has_live_session(clock.now()) {
            if let Some(entry) = refresh(args, cache, &key, &mut issuer, clock)? {
                return exec::print_credential(info.version, &entry);
            }
            if info.interactive {
                eprintln!(
                    "The session for cluster \"{}\" has ended; sign in again.",
                    args.cluster
                );
            }
        }
    }
    if !info.interactive {
        return Err(Error::LoginRequired {
            cluster: args.cluster.clone(),
            issuer: args.issuer.to_string(),
            login_command: cli::login_command(args),
        });
    }
    let (client, endpoints) = issuer.connect()?;
    let entry = device_flow::sign_in(client, endpoints, args, clock, &mut io::stderr())?;
    store_or_warn(cache, exact, &entry);
    eprintln!(
        "Signed in as {} to cluster \"{}\".",
        crate::term::printable(&entry.username),
        args.cluster
    );
    exec::print_credential(info.version, &entry)
}

/// Refreshes the session stored under `key`, holding the refresh lock so that concurrent `get`s
/// do not spend the same single-use refresh token twice. `Ok(None)` when there is no session
/// left (the issuer said `invalid_grant`, and the entry is deleted).
fn refresh(
    args: &CommonArgs,
    cache: &TokenCache,
    key: &CacheKey,
    issuer: &mut LazyIssuer<'_>,
    clock: &dyn Clock,
) -> Result<Option<Entry>, Error> {
    let _lock = RefreshLock::acquire_default(key, clock);
    // Read again under the lock: another process may have refreshed (or deleted) it meanwhile.
    let Some(entry) = cache.load(key)? else {
        return Ok(None);
    };
    if entry.is_fresh(clock.now()) {
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
                })?;
            store_or_warn(cache, key, &fresh);
            Ok(Some(fresh))
        }
        Err(err) if err.oauth_code() == Some(OAuthErrorCode::InvalidGrant) => {
            // Revoked, expired, reused or the user disabled: this entry will never work again.
            cache.delete(key)?;
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// Stores a session `get` already has in hand. If that fails the token is still handed to
/// kubectl (it is valid), and the user is told that the session was not kept.
fn store_or_warn(cache: &TokenCache, key: &CacheKey, entry: &Entry) {
    if let Err(err) = cache.store(key, entry) {
        eprintln!(
            "warning: the session could not be saved, so the next command will need a new sign-in: {}",
            error::report(&Error::Cache(err))
        );
    }
}

/// `login`: sign in now and store the session.
fn login(args: &CommonArgs, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache)?;
    let key = base_key(args);
    // Reading first proves the keyring answers before the person spends a minute signing in.
    let previous = cache.load(&key)?;
    cache.prepare()?;
    let client = IssuerClient::new(&args.issuer, args.issuer_ca.as_deref())?;
    let endpoints = client.discover()?;
    let entry = device_flow::sign_in(&client, &endpoints, args, clock, &mut io::stderr())?;
    cache.store(&key, &entry)?;
    // The new session replaces the old one here; end the old one at the issuer as well.
    let old_token = previous
        .as_ref()
        .filter(|old| old.has_live_session(clock.now()))
        .and_then(|old| old.refresh_token.as_ref());
    if let Some(old_token) = old_token {
        if let Err(err) = client.revoke(&endpoints, &args.client_id, old_token) {
            eprintln!(
                "note: the previous session could not be revoked: {}",
                error::report(&Error::Issuer(err))
            );
        }
    }
    eprintln!("{}", device_flow::logged_in_message(&entry, &args.cluster));
    Ok(())
}

/// `logout`: revoke the session at the issuer, then delete it locally whatever the issuer said.
fn logout(args: &CommonArgs, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache)?;
    let key = base_key(args);
    let entry = cache.load(&key)?;
    let live_token = entry
        .as_ref()
        .filter(|e| e.has_live_session(clock.now()))
        .and_then(|e| e.refresh_token.as_ref());
    let revoked = match live_token {
        Some(token) => {
            IssuerClient::new(&args.issuer, args.issuer_ca.as_deref()).and_then(|client| {
                let endpoints = client.discover()?;
                client.revoke(&endpoints, &args.client_id, token)
            })
        }
        None => Ok(()),
    };
    let deleted = cache.delete(&key)?;
    revoked.map_err(Error::RevokeFailed)?;
    if deleted {
        eprintln!(
            "Logged out of cluster \"{}\" at {}.",
            args.cluster, args.issuer
        );
    } else {
        eprintln!(
            "No session stored for cluster \"{}\" at {}; nothing to do.",
            args.cluster, args.issuer
        );
    }
    Ok(())
}

/// The issuer client and its endpoints, built and discovered on first use only.
struct LazyIssuer<'a> {
    args: &'a CommonArgs,
    connected: Option<(IssuerClient, Endpoints)>,
}

impl<'a> LazyIssuer<'a> {
    fn new(args: &'a CommonArgs) -> Self {
        Self {
            args,
            connected: None,
        }
    }

    fn connect(&mut self) -> Result<(&IssuerClient, &Endpoints), Error> {
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
