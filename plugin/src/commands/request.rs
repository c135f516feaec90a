//! `request` and `requests`: file an access request (and wait for its decision), and list
//! the person's requests.

use credential_shared::text::Untrusted;

use crate::base::cancel::Cancel;
use crate::base::clock::Clock;
use crate::base::target::Target;
use crate::cache::TokenCache;
use crate::cli;
use crate::commands::{requests, show};
use crate::error::Error;
use crate::flow::exposed::EndExposed;
use crate::flow::session::{live_token, refresh, with_live_token, LazyIssuer};

/// `request`: file an access request; with `--wait`, wait for the decision and refresh.
pub(super) fn request(
    args: &cli::RequestArgs,
    common: &Target,
    clock: &dyn Clock,
) -> Result<(), Error> {
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

/// How often `request --wait` asks.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// `requests`: the person's requests.
pub(super) fn list_requests(args: &Target, clock: &dyn Clock) -> Result<(), Error> {
    with_live_token(args, clock, |client, token| {
        let list = client.my_requests(token)?;
        show::print(&requests::table(&list.requests))
    })
}
