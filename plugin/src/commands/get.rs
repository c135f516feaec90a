//! `get`: print a credential for kubectl. It answers from the cache first and does nothing
//! else when it can (no network, no writes, no TLS setup); the issuer client is built only on
//! the paths that need it.

use credential_shared::text::Untrusted;

use crate::base::cancel::Cancel;
use crate::base::clock::Clock;
use crate::base::machine::MachineTarget;
use crate::base::target::{login_command, Target};
use crate::cache::{
    Acquired, Backoff, CacheKey, Entry, Hold, Index, KeyLock, TokenCache, SIGN_IN_WAIT,
};
use crate::cli;
use crate::commands::requests;
use crate::error::Error;
use crate::flow::exec::{self, ExecInfo};
use crate::flow::exposed::{end_exposed, EndExposed};
use crate::flow::handout::{Caller, HandOuts};
use crate::flow::retry;
use crate::flow::session::{
    base_key, forget, forget_handouts, login_required, origin_of, refresh, refresh_lock, remember,
    session_of_cluster, sign_in, store_or_warn, LazyIssuer,
};
use crate::issuer::{IssuerClient, IssuerError, Retry};

/// `get`: print a credential for kubectl. With `--force-refresh` the cached token is not
/// handed out even if it looks fresh (the API server rejected it): the session is refreshed.
pub(super) fn get(args: &cli::GetArgs, clock: &dyn Clock) -> Result<(), Error> {
    let cli::GetArgs {
        common,
        force_refresh,
        machine,
    } = args;
    // Machine mode never reaches the person's path: no keyring, cache, browser or prompt.
    if let Some(source) = machine.source() {
        let target = MachineTarget {
            issuer: common.issuer.clone(),
            cluster: common.cluster.clone(),
            issuer_ca: common.issuer_ca.clone(),
            source,
            token_cache_file: machine.token_cache_file.clone(),
        };
        return super::machine::get(&target, *force_refresh, clock);
    }
    let args = &Target::from(common.clone());
    let info = exec::read_exec_info()?;
    let cache = TokenCache::open(args.token_cache)?;
    let _end_exposed = EndExposed::for_args(&cache, args, clock);
    let key = get_key(args, &info);
    let found = cache.load(&key)?;
    let mut refused = false;
    let mut approved = false;
    if let Some(entry) = &found {
        if !force_refresh && entry.is_fresh(clock.now()) {
            refused = asked_again(&info, &key, entry) && still_refused(&info, entry, args, clock)?;
            approved = !refused && pending_request_approved(args, entry, clock.now());
            if !refused && !approved {
                return hand_out(&info, entry, args);
            }
        }
    }
    if approved {
        // The token is valid, but a grant has started since it was minted: refresh so that
        // its `grants` claim and groups name it (the binding already lets the old one in).
        let current = found.as_ref().map(|e| e.access_token.clone());
        let mut issuer = LazyIssuer::new(args);
        if let Ok(Some(fresh)) = refresh(args, &cache, &key, &mut issuer, current.as_ref(), clock) {
            return hand_out(&info, &fresh, args);
        }
        if let Some(entry) = &found {
            return hand_out(&info, entry, args);
        }
    }
    get_without_fresh_token(
        args,
        &info,
        &cache,
        &key,
        found.map(|e| (key.clone(), e)),
        Refresh {
            force: *force_refresh || refused,
            asked: *force_refresh,
        },
        clock,
    )
}

/// The cache key `get` uses: the base key, plus the API server and CA when kubectl says which
/// (`provideClusterInfo: true`), so that two kubeconfig clusters with the same issuer and
/// cluster name but another server or CA never share a token.
fn get_key(args: &Target, info: &ExecInfo) -> CacheKey {
    CacheKey::for_user(
        args.issuer.as_str(),
        &args.cluster,
        &args.client_id,
        args.username.as_deref(),
        info.cluster.as_ref(),
    )
}

/// Whether a request filed from here has been approved since the last check (only asked when
/// one is recorded as pending, and at most every few seconds; a slow or failing issuer is
/// ignored, the token in hand still works).
fn pending_request_approved(args: &Target, entry: &Entry, now: i64) -> bool {
    let Some(mut pending) = requests::Pending::load(args, now) else {
        return false;
    };
    if !pending.due(now) {
        return false;
    }
    pending.checked_at = now;
    let Ok(client) = IssuerClient::new(&args.issuer, args.issuer_ca.as_deref()) else {
        return false;
    };
    let mut approved = false;
    pending.ids.retain(|(id, _)| {
        match client.request_status(&entry.access_token, id, PENDING_CHECK_TIMEOUT) {
            Ok(r) if r.status == "pending" => true,
            Ok(r) => {
                approved |= r.grant_active;
                false
            }
            // Not ours any more, or the session is gone: stop asking.
            Err(IssuerError::Api {
                status: 401 | 404, ..
            }) => false,
            Err(_) => true,
        }
    });
    pending.save(args);
    approved
}

/// How long `get` waits for the issuer when checking a pending request.
const PENDING_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// On a cache hit: records that the calling process received this token, and says whether it
/// had received it before: kubectl's retry after a 401 (client-go runs the plugin again), or a
/// client that runs the plugin on every load (told apart by [`still_refused`]). Only for calls from a client-go program (a person running `get` twice
/// is not a retry), and only where the caller can be identified (Linux).
fn asked_again(info: &ExecInfo, key: &CacheKey, entry: &Entry) -> bool {
    if !info.from_kubectl {
        return false;
    }
    let (Some(caller), Some(handouts)) = (Caller::parent(), HandOuts::open_default()) else {
        return false;
    };
    handouts.record(&caller, key, &entry.access_token)
}

/// On a repeated call (see [`asked_again`]): whether to refresh, because the API server
/// refuses the token or cannot say, rather than hand it out again because it still accepts it
/// (a client that runs the plugin on every configuration load). The token goes to the server
/// only after the check that it is the one the issuer made it for.
#[cold]
#[inline(never)]
fn still_refused(
    info: &ExecInfo,
    entry: &Entry,
    args: &Target,
    clock: &dyn Clock,
) -> Result<bool, Error> {
    exec::check_api_server(info, entry, &args.cluster)?;
    let decision = retry::decide(
        info.cluster.as_ref(),
        entry,
        clock.now(),
        &retry::AskApiServer,
    );
    Ok(decision != retry::Repeated::HandOutAgain)
}

/// On the miss path of a `get` with cluster info: a stored session of this cluster whose token
/// the issuer made for another API server means that this kubeconfig sends the cluster's
/// requests elsewhere. That is reported as such (exit 2) rather than as "log in": a sign-in
/// would end in the same refusal.
fn check_known_api_server(args: &Target, info: &ExecInfo, cache: &TokenCache) -> Result<(), Error> {
    if info.cluster.is_none() {
        return Ok(());
    }
    let index = Index::open_default()?;
    let origin = origin_of(args);
    for listed in cache.list(&index)? {
        if listed
            .origin
            .as_ref()
            .is_some_and(|o| o.same_cluster(&origin))
        {
            exec::check_api_server(info, &listed.entry, &args.cluster)?;
        }
    }
    Ok(())
}

/// A `get` with cluster info whose own key holds nothing takes over the session `login`
/// stored under the key without an API server: moved to `key` (and so no longer there for
/// another API server), under the lock of the base key so that two API servers cannot both
/// take it. `None` when there is nothing alive to take.
fn adopt_login_session(
    args: &Target,
    info: &ExecInfo,
    cache: &TokenCache,
    key: &CacheKey,
    clock: &dyn Clock,
) -> Result<Option<Entry>, Error> {
    let base = base_key(args);
    if base == *key {
        return Ok(None);
    }
    let _lock = refresh_lock(&base, clock);
    let Some(entry) = cache.load(&base)?.filter(|e| e.is_alive(clock.now())) else {
        return Ok(None);
    };
    // A session for another API server than this kubeconfig's is not handed out here.
    exec::check_api_server(info, &entry, &args.cluster)?;
    let entry = match entry.origin {
        Some(_) => entry,
        None => entry.with_origin(origin_of(args)),
    };
    cache.store(key, &entry)?;
    remember(cache, key, &entry);
    cache.delete(&base)?;
    forget(cache, std::slice::from_ref(&base));
    Ok(Some(entry))
}

/// Prints the credential for kubectl, after checking it goes to the right API server.
fn hand_out(info: &ExecInfo, entry: &Entry, args: &Target) -> Result<(), Error> {
    exec::check_api_server(info, entry, &args.cluster)?;
    exec::print_credential(info.version, entry)
}

/// How long non-interactive calls leave the issuer alone after a failed refresh, and why: the
/// issuer's own `Retry-After` when it answered, a fixed back-off when it could not be reached.
fn hold_for(retry: Retry<'_>) -> Hold {
    match retry {
        Retry::Unreachable => Hold::Unreachable,
        Retry::Later {
            status,
            retry_after,
            description,
        } => Hold::answered(status, retry_after, description),
    }
}

/// Why `get` refreshes a token that looks fresh.
#[derive(Debug, Clone, Copy)]
struct Refresh {
    /// Refresh even a fresh token (`--force-refresh`, or kubectl's retry after a 401).
    force: bool,
    /// The person asked for it with `--force-refresh`: the back-off does not hold them off.
    asked: bool,
}

/// `get` when the cache had no fresh token: refresh the session, or sign in, or give up.
#[cold]
#[inline(never)]
fn get_without_fresh_token(
    args: &Target,
    info: &ExecInfo,
    cache: &TokenCache,
    exact: &CacheKey,
    found: Option<(CacheKey, Entry)>,
    refresh_how: Refresh,
    clock: &dyn Clock,
) -> Result<(), Error> {
    let force_refresh = refresh_how.force;
    // Local mistakes first: a missing or unusable --issuer-ca is the person's to fix, and must
    // not hide behind a back-off from an earlier outage.
    if let Some(ca) = &args.issuer_ca {
        crate::issuer::check_ca(ca)?;
    }
    let mut issuer = LazyIssuer::new(args);
    let found = if let Some(found) = found {
        Some(found)
    } else {
        let adopted = adopt_login_session(args, info, cache, exact, clock)?;
        if adopted.is_none() {
            check_known_api_server(args, info, cache)?;
        }
        match adopted {
            Some(e) => Some((exact.clone(), e)),
            // Without cluster info (`get` run by hand, or a kubeconfig without
            // `provideClusterInfo`), the session kubectl adopted for an API server is still
            // this cluster's session: use it rather than asking for another sign-in.
            None if *exact == base_key(args) => match session_of_cluster(cache, args, clock.now())?
            {
                (key, Some(entry)) => Some((key, entry)),
                (_, None) => None,
            },
            None => None,
        }
    };
    if let Some((key, entry)) = found {
        if !force_refresh && entry.is_fresh(clock.now()) {
            return hand_out(info, &entry, args);
        }
        if entry.has_live_session(clock.now()) {
            let backoff = Backoff::for_key(&key);
            // A person at the terminal, or one who asked for a refresh, is not held off.
            if !info.interactive && !refresh_how.asked {
                if let Some(held) = backoff.as_ref().and_then(|b| b.active(clock.now())) {
                    return Err(Error::BackingOff {
                        issuer: args.issuer.to_string(),
                        retry_in: held.until - clock.now(),
                        hold: held.hold,
                        login_command: login_command(args),
                    });
                }
            }
            let rejected = force_refresh.then_some(&entry.access_token);
            match refresh(args, cache, &key, &mut issuer, rejected, clock) {
                Ok(Some(entry)) => {
                    if let Some(b) = &backoff {
                        b.clear();
                    }
                    return hand_out(info, &entry, args);
                }
                Ok(None) => {}
                Err(Error::Issuer(e)) if e.is_transient() => {
                    if let (Some(b), Some(hold)) = (&backoff, e.retry().map(hold_for)) {
                        b.record(clock.now(), &hold);
                    }
                    return Err(Error::Issuer(e));
                }
                Err(e) => return Err(e),
            }
            if info.interactive {
                eprintln!(
                    "The session for cluster \"{}\" has ended; sign in again.",
                    Untrusted::new(&args.cluster)
                );
            }
        }
    }
    // A session found exposed is ended at its issuer before the person is sent to sign in again.
    end_exposed(
        cache,
        Some((&args.issuer, &args.client_id)),
        args.issuer_ca.as_deref(),
        clock.now(),
    );
    // A keyring that cannot store a session (locked) must be reported as such: "log in" would
    // send the person through a sign-in whose result cannot be kept.
    cache.prepare()?;
    if !info.interactive {
        return Err(login_required(args));
    }
    // From here on a person is waiting: Ctrl-C ends the wait cleanly (exit 130).
    let cancel = Cancel::on_ctrl_c();
    // One sign-in per key: parallel kubectl commands wait for the first one's device flow and
    // then use its session, instead of each opening a browser tab.
    let acquired = match KeyLock::default_root() {
        Some(root) => KeyLock::acquire(
            &root,
            exact,
            SIGN_IN_WAIT,
            clock,
            &mut || {
                eprintln!(
                "Another kubectl-credential is signing in to cluster \"{}\"; waiting for it to finish...",
                Untrusted::new(&args.cluster)
            );
            },
            &cancel,
        ),
        None => Acquired::Unavailable,
    };
    let _held = match acquired {
        Acquired::TimedOut(path) => {
            return Err(Error::SignInBusy {
                cluster: args.cluster.clone(),
                lock: path,
            })
        }
        Acquired::Cancelled => return Err(Error::Cancelled),
        Acquired::Free(lock) | Acquired::AfterWaiting(lock) => Some(lock),
        Acquired::Unavailable => None,
    };
    // Read again under the lock: another process may have just signed in.
    if let Some(entry) = cache.load(exact)? {
        if entry.is_fresh(clock.now()) {
            return hand_out(info, &entry, args);
        }
    }
    let (client, endpoints) = issuer.connect()?;
    let entry = sign_in(client, endpoints, args, clock, &cancel)?;
    forget_handouts(exact, clock);
    store_or_warn(cache, exact, &entry);
    eprintln!(
        "Signed in as {} to cluster \"{}\".",
        Untrusted::new(&entry.username),
        Untrusted::new(&args.cluster)
    );
    hand_out(info, &entry, args)
}
