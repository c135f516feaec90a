//! What each subcommand does, step by step. `get` answers from the cache first and does
//! nothing else when it can (no network, no writes, no TLS setup); the issuer client is built
//! only on the paths that need it.

use std::io::{self, IsTerminal as _, Write};
use std::path::Path;

use credential_shared::oauth::OAuthErrorCode;

use crate::cache::{
    Acquired, Backoff, CacheKey, Entry, Hold, Index, KeyLock, Listed, Origin, TokenCache,
    REFRESH_WAIT, SIGN_IN_WAIT,
};
use crate::base::cancel::Cancel;
use crate::base::target::{IssuerUrl, Target, TokenCacheKind};
use crate::cli::{self, Cli, Command, GetArgs, LogoutArgs, StatusArgs};
use crate::base::clock::{Clock, SystemClock};
use crate::device_flow;
use crate::error::{self, Error};
use crate::exec::{self, ExecInfo};
use crate::handout::{Caller, HandOuts};
use crate::issuer::{Endpoints, IssuerClient, IssuerError, Retry};
use crate::requests;
use crate::base::secret::Secret;
use crate::show;
use credential_shared::text::Untrusted;

/// Runs one subcommand.
pub(crate) fn run(cli: Cli) -> Result<(), Error> {
    let clock = SystemClock;
    match cli.command {
        Command::Get(args) => get(&args, &clock),
        Command::Login(args) => login(&args.into(), &clock),
        Command::Logout(args) => match args.single() {
            Some(single) => logout(&single.resolve()?, &clock),
            None => logout_all(&args, &clock),
        },
        Command::Whoami(args) => whoami(&args.common.resolve()?, args.refresh, &clock),
        Command::Status(args) => status(&args, &clock),
        Command::Setup(args) => setup(&args, &clock),
        Command::Request(args) => request(&args, &args.common.resolve()?, &clock),
        Command::Requests(args) => list_requests(&args.resolve()?, &clock),
        Command::Roles(args) => list_roles(&args.resolve()?, &clock),
    }
}

/// Whether the kubectl command that ran this call was already shown the error `text` by an
/// earlier call (within [`crate::handout::TOLD_WINDOW`]): then it is not printed again, so
/// that one kubectl command shows one plugin error among its own, however often it ran the
/// plugin. Only for calls from client-go (`KUBERNETES_EXEC_INFO` set), whose parent is the
/// kubectl process; a person running the plugin by hand always reads the error.
pub(crate) fn told_this_caller(text: &str) -> bool {
    let from_kubectl =
        crate::base::env::var_os(crate::base::env::KUBERNETES_EXEC_INFO).is_some_and(|v| !v.is_empty());
    if !from_kubectl {
        return false;
    }
    let (Some(caller), Some(handouts)) = (Caller::parent(), HandOuts::open_default()) else {
        return false;
    };
    // The same failure of the same exec entry for the same person: the arguments and the
    // home directory are part of what was told, so that another entry's error (or another
    // account's, run by the same parent) is still printed.
    let mut told = String::from(text);
    for part in std::env::args_os().chain(crate::base::env::var_os(crate::base::env::HOME)) {
        told.push('\0');
        told.push_str(&part.to_string_lossy());
    }
    handouts.told_before(&caller, &told, std::time::SystemTime::now())
}

/// `setup`: fetch the issuer's clusters and merge exec entries for them into a kubeconfig.
fn setup(args: &cli::SetupArgs, clock: &dyn Clock) -> Result<(), Error> {
    use crate::kubeconfig::setup::{self, ExecSettings, Written};
    let client = IssuerClient::new(&args.issuer, args.issuer_ca.as_deref())?;
    // Discovery first: a URL that is not an issuer's (an API server's, say) is named as such.
    client.discover()?;
    let list = client.clusters()?;
    let home = crate::base::env::home_dir();
    let Some(path) = setup::target_path(
        args.output.as_deref(),
        crate::base::env::var_os(crate::base::env::KUBECONFIG).as_deref(),
        home.as_deref(),
    ) else {
        return Err(setup::SetupError::Io {
            action: "find a home directory for",
            path: "~/.kube/config".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        }
        .into());
    };
    // The kubeconfig is used from other directories: record an absolute CA path.
    let issuer_ca = args
        .issuer_ca
        .as_ref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    let exec = ExecSettings {
        command: args.command.clone(),
        issuer: args.issuer.as_str().to_owned(),
        issuer_ca,
        file_cache: args.token_cache == Some(crate::base::target::TokenCacheKind::File),
    };
    let before = setup::read(&path)?;
    let (doc, skipped) = setup::merge(before.clone(), &path, &list, &exec)?;
    for name in &skipped {
        eprintln!(
            "note: skipped cluster \"{}\": the issuer does not publish its API server URL",
            Untrusted::new(name)
        );
    }
    match setup::write(&path, before.as_ref(), &doc, clock.now())? {
        Written::Unchanged => {
            eprintln!("{} is already up to date.", Untrusted::long(path.display()));
        }
        Written::Created => eprintln!("Wrote {}.", Untrusted::long(path.display())),
        Written::Updated { backup } => eprintln!(
            "Updated {} (previous version kept as {}).",
            Untrusted::long(path.display()),
            Untrusted::long(backup.display())
        ),
    }
    let names: Vec<&str> = list
        .clusters
        .iter()
        .filter(|c| c.server.is_some())
        .map(|c| c.name.as_str())
        .collect();
    // What the person may do depends on their grants, which setup does not know: asking the
    // API server what is allowed works for everyone who can sign in.
    eprintln!(
        "Contexts: {}. Try: kubectl --context {} auth can-i --list (what you may do there; \
         add --namespace NAME for a namespace your grants name)",
        Untrusted::long(names.join(", ")),
        Untrusted::new(names.first().copied().unwrap_or_default())
    );
    Ok(())
}

/// The cache key of a session started by hand (`login`): issuer, cluster name, client and
/// `--username`, without the API server, which only kubectl knows.
fn base_key(args: &Target) -> CacheKey {
    CacheKey::for_user(
        args.issuer.as_str(),
        &args.cluster,
        &args.client_id,
        args.username.as_deref(),
        None,
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

/// Whether a stored session belongs to the cluster and `--username` (or its absence) `args`
/// name: what `logout`, `login` and `whoami --cluster` act on, whatever API server it was
/// adopted by. Sessions pinned to an account are left to commands naming that account.
fn belongs_to(listed: &Listed, args: &Target) -> bool {
    listed.origin.as_ref() == Some(&origin_of(args))
}

/// Every stored key of the cluster `args` name: its base key (even for an entry written before
/// origins were recorded) and every API-server key whose session belongs to it.
fn cluster_keys(cache: &TokenCache, args: &Target) -> Result<Vec<CacheKey>, Error> {
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
fn origin_of(args: &Target) -> Origin {
    Origin {
        issuer: args.issuer.to_string(),
        cluster: args.cluster.clone(),
        client_id: args.client_id.clone(),
        account: args.username.clone(),
    }
}

/// The error for "no usable session here": the user has to sign in.
fn login_required(args: &Target) -> Error {
    Error::LoginRequired {
        cluster: args.cluster.clone(),
        issuer: args.issuer.to_string(),
        login_command: crate::base::target::login_command(args),
    }
}

/// How long ending an exposed session at its issuer may take, per request (discovery, then
/// revocation): it is a courtesy, and a person or kubectl is waiting.
const EXPOSED_REVOKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Ends at their issuer the sessions whose cache files others could read (their refresh tokens
/// count as exposed; the files are already gone). Best effort and bounded: a failure is one
/// note, as the session cannot be used from here any more either way. An entry that does not
/// record its issuer is ended at `fallback` (the issuer and client of the command's own key).
fn end_exposed(
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
            Some(o) => crate::base::target::normalize_issuer(&o.issuer)
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
struct EndExposed<'a> {
    cache: &'a TokenCache,
    fallback: Option<(&'a IssuerUrl, &'a str)>,
    ca: Option<&'a Path>,
    clock: &'a dyn Clock,
}

impl<'a> EndExposed<'a> {
    /// For a command acting for `args`' issuer and client.
    fn for_args(cache: &'a TokenCache, args: &'a Target, clock: &'a dyn Clock) -> Self {
        Self {
            cache,
            fallback: Some((&args.issuer, &args.client_id)),
            ca: args.issuer_ca.as_deref(),
            clock,
        }
    }

    /// Ends them now (before a sign-in or an answer that should not wait).
    fn now(&self) {
        end_exposed(self.cache, self.fallback, self.ca, self.clock.now());
    }
}

impl Drop for EndExposed<'_> {
    fn drop(&mut self) {
        self.now();
    }
}

/// `get`: print a credential for kubectl. With `--force-refresh` the cached token is not
/// handed out even if it looks fresh (the API server rejected it): the session is refreshed.
fn get(args: &GetArgs, clock: &dyn Clock) -> Result<(), Error> {
    let GetArgs {
        common,
        force_refresh,
    } = args;
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
            refused = asked_again(&info, &key, entry);
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
/// How often `request --wait` asks.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// A live access token of the cluster's session, refreshed if it is not fresh.
fn live_token(
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

/// `request`: file an access request; with `--wait`, wait for the decision and refresh.
fn request(args: &cli::RequestArgs, common: &Target, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(common.token_cache)?;
    let _end_exposed = EndExposed::for_args(&cache, common, clock);
    let mut issuer = LazyIssuer::new(common);
    let (key, entry) = live_token(common, &cache, &mut issuer, clock)?;
    let body = credential_shared::api::NewAccessRequest {
        cluster: common.cluster.clone(),
        role: args.role.clone(),
        namespaces: args.namespaces.clone(),
        reason: args.reason.clone(),
        duration_secs: args.duration,
    };
    let (client, _) = issuer.connect()?;
    let mut r = client.file_request(&entry.access_token, &body)?;
    let now = clock.now();
    if r.status == "pending" {
        let mut pending = requests::Pending::load(common, now).unwrap_or_default();
        pending.ids.push((r.id.clone(), now));
        pending.save(common);
        if args.wait {
            eprintln!(
                "request {} filed; waiting for an approver (Ctrl-C stops waiting, the request stays)",
                Untrusted::new(&r.id)
            );
            let cancel = Cancel::on_ctrl_c();
            while r.status == "pending" {
                if cancel.requested() {
                    return Err(Error::Cancelled);
                }
                clock.sleep(WAIT_POLL);
                let (client, _) = issuer.connect()?;
                r = client.request_status(&entry.access_token, &r.id, WAIT_POLL * 5)?;
            }
        }
    }
    let done = r.status != "pending";
    if done {
        let mut pending = requests::Pending::load(common, now).unwrap_or_default();
        pending.ids.retain(|(id, _)| *id != r.id);
        pending.save(common);
    }
    if r.status == "approved" && r.grant_active {
        // The grant is in force: a token that names it, without a new login.
        let current = entry.access_token.clone();
        refresh(common, &cache, &key, &mut issuer, Some(&current), clock)?;
    }
    show::print(&requests::describe(&r, clock.now()))?;
    if done && r.status != "approved" {
        return Err(Error::RequestNotApproved {
            id: r.id,
            status: r.status,
            comment: r.comment,
        });
    }
    if r.status == "pending" {
        eprintln!(
            "waiting for an approver; `kubectl credential requests` shows where it stands, and kubectl picks up the grant once it is approved"
        );
    }
    Ok(())
}

/// `requests`: the person's requests.
fn list_requests(args: &Target, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache)?;
    let _end_exposed = EndExposed::for_args(&cache, args, clock);
    let mut issuer = LazyIssuer::new(args);
    let (_, entry) = live_token(args, &cache, &mut issuer, clock)?;
    let (client, _) = issuer.connect()?;
    let list = client.my_requests(&entry.access_token)?;
    show::print(&requests::table(&list.requests))
}

/// `roles`: what `request --role` accepts on the session's cluster.
fn list_roles(args: &Target, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache)?;
    let _end_exposed = EndExposed::for_args(&cache, args, clock);
    let mut issuer = LazyIssuer::new(args);
    let (_, entry) = live_token(args, &cache, &mut issuer, clock)?;
    let (client, _) = issuer.connect()?;
    let list = client.roles(&entry.access_token)?;
    show::print(&crate::roles::table(&list))
}

/// On a cache hit: records that the calling process received this token, and says whether it
/// had received it before, which means the API server refused it (client-go runs the plugin
/// again after a 401). Only for calls from a client-go program (a person running `get` twice
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

/// Forgets which callers received `key`'s token, as it is being replaced (off the hit path).
fn forget_handouts(key: &CacheKey, clock: &dyn Clock) {
    if let Some(handouts) = HandOuts::open_default() {
        let now = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(clock.now()).unwrap_or(0));
        handouts.prune(key, now);
    }
}

/// On the miss path of a `get` with cluster info: a stored session of this cluster whose token
/// the issuer made for another API server means that this kubeconfig sends the cluster's
/// requests elsewhere. That is reported as such (exit 2) rather than as "log in": a sign-in
/// would end in the same refusal.
fn check_known_api_server(
    args: &Target,
    info: &ExecInfo,
    cache: &TokenCache,
) -> Result<(), Error> {
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
    let _lock = KeyLock::default_root().map(|root| {
        KeyLock::acquire(
            &root,
            &base,
            REFRESH_WAIT,
            clock,
            &mut || {},
            &Cancel::default(),
        )
    });
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
                        login_command: crate::base::target::login_command(args),
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

/// Runs the device flow on stderr and records whose session the result is.
fn sign_in(
    client: &IssuerClient,
    endpoints: &Endpoints,
    args: &Target,
    clock: &dyn Clock,
    cancel: &Cancel,
) -> Result<Entry, Error> {
    let terminal = io::stderr().is_terminal();
    let entry = device_flow::sign_in(
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
fn refresh(
    args: &Target,
    cache: &TokenCache,
    key: &CacheKey,
    issuer: &mut LazyIssuer<'_>,
    rejected: Option<&Secret>,
    clock: &dyn Clock,
) -> Result<Option<Entry>, Error> {
    // Past the wait the refresh goes ahead unlocked, as it would on a machine without locks.
    let _lock = KeyLock::default_root().map(|root| {
        KeyLock::acquire(
            &root,
            key,
            REFRESH_WAIT,
            clock,
            &mut || {},
            &Cancel::default(),
        )
    });
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
fn needs_refresh(entry: &Entry, rejected: Option<&Secret>, now: i64) -> bool {
    !entry.is_fresh(now) || rejected.is_some_and(|token| *token == entry.access_token)
}

/// Stores a session `get` already has in hand. If that fails the token is still handed to
/// kubectl (it is valid), and the user is told that the session was not kept.
fn store_or_warn(cache: &TokenCache, key: &CacheKey, entry: &Entry) {
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
fn remember(cache: &TokenCache, key: &CacheKey, entry: &Entry) {
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
fn forget(cache: &TokenCache, keys: &[CacheKey]) {
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

/// `login`: sign in now and store the session. It replaces every session of this cluster on
/// this machine (whichever API server adopted it): those are deleted and revoked.
fn login(args: &Target, clock: &dyn Clock) -> Result<(), Error> {
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
    eprintln!("{}", device_flow::logged_in_message(&entry, &args.cluster));
    Ok(())
}

/// `logout`: revoke the cluster's sessions at the issuer (the one `login` stored and every one
/// kubectl adopted for an API server), then delete them locally whatever the issuer said.
fn logout(args: &Target, clock: &dyn Clock) -> Result<(), Error> {
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
fn logout_all(args: &LogoutArgs, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache.unwrap_or(crate::base::target::TokenCacheKind::Keyring))?;
    let _end_exposed = EndExposed {
        cache: &cache,
        fallback: None,
        ca: args.issuer_ca.as_deref(),
        clock,
    };
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
            .and_then(|o| crate::base::target::normalize_issuer(&o.issuer).ok().map(|url| (url, o)));
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

/// `whoami`: who the stored session is, from the cache alone unless `--refresh` asks for a
/// refresh first (through the same locked path as `get`).
fn whoami(common: &Target, refresh_first: bool, clock: &dyn Clock) -> Result<(), Error> {
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

/// The cluster's session `whoami` reports on: the one `login` stored, else the live one
/// kubectl most recently adopted for an API server (`None` when there is none).
fn session_of_cluster(
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
fn session_to_show(entry: Option<Entry>, args: &Target, now: i64) -> Result<Entry, Error> {
    entry
        .filter(|e| e.is_alive(now))
        .ok_or_else(|| login_required(args))
}

/// `status`: one line per stored session.
fn status(args: &StatusArgs, clock: &dyn Clock) -> Result<(), Error> {
    let cache = TokenCache::open(args.token_cache)?;
    let _end_exposed = EndExposed {
        cache: &cache,
        fallback: None,
        ca: None,
        clock,
    };
    let index = Index::open_default()?;
    let listed = cache.list(&index)?;
    let kind = match args.token_cache {
        TokenCacheKind::Keyring => "keyring",
        TokenCacheKind::File => "file",
    };
    show::print(&show::status(&listed, clock.now(), kind))
}

/// The issuer client and its endpoints, built and discovered on first use only.
struct LazyIssuer<'a> {
    args: &'a Target,
    connected: Option<(IssuerClient, Endpoints)>,
}

impl<'a> LazyIssuer<'a> {
    fn new(args: &'a Target) -> Self {
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

#[cfg(test)]
mod tests {
    use credential_shared::oauth::PLUGIN_CLIENT_ID;

    use super::*;
    use crate::cache::{FileStore, Root};
    use crate::exit::{EXIT_ISSUER, EXIT_LOGIN_REQUIRED};
    use crate::issuer::IssuerError;

    const NOW: i64 = 1_767_225_600;

    fn entry(exp: i64, refresh: Option<&str>, session: Option<i64>) -> Entry {
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

    fn args(cluster: &str) -> Target {
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
