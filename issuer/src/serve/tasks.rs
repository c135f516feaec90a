//! The server's background loops: key reloads and purges, the webhook caches' revocation
//! feed, the database probe behind `/readyz`, WAL checkpoints, the audit sealer and the grant
//! reconciler's schedule. They belong to [`super::serve`], which starts them with the state and
//! the leader lease and aborts them at shutdown; the leader-only ones check the lease first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use credential_shared::text::Untrusted;

use super::leader::{self, Leader};
use crate::domain::cluster::ClusterConfig;
use crate::kube::reconcile;
use crate::service::state::AppState;

/// Periodic work: reload signing keys (also at once on SIGHUP), purge expired rows.
pub(super) async fn upkeep(state: AppState) {
    let mut tick = tokio::time::interval(super::KEY_RELOAD_EVERY);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        {
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {},
                () = hangup => tracing::info!("SIGHUP: reloading signing keys"),
            }
        }
        #[cfg(not(unix))]
        tick.tick().await;
        match state.signer().reload(state.now()).await {
            Ok(true) => tracing::info!(kid = %state.signer().active_kid(), "signing keys reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "signing keys reload failed; keeping the current keys");
            }
        }
        if let Err(e) = state.store().purge_expired(state.now()).await {
            tracing::warn!(error = %e, "purging expired rows failed");
        }
        let grace_over = state.now() - state.config().refresh_retry_grace;
        if let Err(e) = state.store().forget_successors(grace_over).await {
            tracing::warn!(error = %e, "forgetting sealed refresh successors failed");
        }
        match crate::service::requests::expire(state.store(), state.now()).await {
            Ok(notices) => crate::http::notify_requests(&state, notices),
            Err(e) => tracing::warn!(error = %e, "expiring access requests failed"),
        }
    }
}

/// Reloads the signing keys every [`super::KEY_RELOAD_EVERY`]: what a process that only
/// verifies tokens (the proxy) needs of [`upkeep`], whose purges belong to the servers.
pub(super) async fn key_reloads(state: AppState) {
    let mut tick = tokio::time::interval(super::KEY_RELOAD_EVERY);
    loop {
        tick.tick().await;
        match state.signer().reload(state.now()).await {
            Ok(true) => tracing::info!(kid = %state.signer().active_kid(), "signing keys reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "signing keys reload failed; keeping the current keys");
            }
        }
    }
}

/// How often the webhook caches learn of revocations made by other processes.
const REVOCATION_FEED_EVERY: Duration = Duration::from_secs(1);
/// How far back each look reaches: revocation times come from the clocks of the processes that
/// revoked (another replica's may be a little behind ours), and looking twice is harmless.
const REVOCATION_FEED_OVERLAP: time::Duration = time::Duration::seconds(10);

/// Drops from this process's webhook caches every session that another process (a replica,
/// the admin CLI) revoked and every account it disabled, within a second: a review of such a
/// token then reads the database and is refused, instead of waiting for `webhook_cache_ttl`.
pub(super) async fn revocation_feed(state: AppState) {
    let mut tick = tokio::time::interval(REVOCATION_FEED_EVERY);
    let mut since = state.now() - REVOCATION_FEED_OVERLAP;
    loop {
        tick.tick().await;
        let now = state.now();
        match state.store().revoked_since(since).await {
            Ok((sessions, users)) => {
                for id in &sessions {
                    state.review_caches().invalidate_session(id);
                }
                for id in &users {
                    state.review_caches().invalidate_user(id);
                }
                since = now - REVOCATION_FEED_OVERLAP;
            }
            // Keep `since`: the next look covers this one's window too.
            Err(e) => tracing::warn!(error = %e, "reading revocations failed"),
        }
    }
}

/// Keeps [`crate::telemetry::health`] fresh: reads and a one-row write every second, each bounded by the
/// same second, so that `/readyz` answers from memory and a fault is seen (and its end too)
/// within a second whether or not requests are coming in.
pub(super) async fn probe_database(state: AppState, leader: Arc<Leader>) {
    let mut tick = tokio::time::interval(crate::telemetry::health::PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = state.now();
        let probe = state.store().probe(leader.holder(), now);
        let (fault, detail) =
            match tokio::time::timeout(crate::telemetry::health::PROBE_EVERY, probe).await {
                Ok(Ok(())) => {
                    if let Some(t) = state.health().recovered() {
                        let down_s = (state.now() - t.since).whole_seconds();
                        tracing::warn!(
                            fault = t.fault.describe(),
                            down_s,
                            "the database is healthy again"
                        );
                    }
                    continue;
                }
                Ok(Err(e)) => (
                    e.fault().unwrap_or(crate::store::Fault::Io),
                    crate::store::cause_chain(&e),
                ),
                Err(_) => {
                    let named = tokio::time::timeout(
                        crate::telemetry::health::PROBE_EVERY / 2,
                        state.store().diagnose(),
                    )
                    .await;
                    named.ok().flatten().unwrap_or_else(|| {
                        (
                            crate::store::Fault::TimedOut,
                            format!(
                                "no answer within {} ms",
                                crate::telemetry::health::PROBE_EVERY.as_millis()
                            ),
                        )
                    })
                }
            };
        if state.health().report(fault, now) {
            tracing::error!(
                fault = fault.describe(),
                error = %credential_shared::text::Untrusted::long(&detail),
                "database fault: requests that need the database are answered 503 until it passes"
            );
        }
    }
}

/// Moves the SQLite write-ahead log into the database every second, off the write path.
pub(super) async fn checkpoints(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(e) = state.store().checkpoint().await {
            tracing::warn!(error = %e, "database checkpoint failed");
        }
    }
}

/// How often the audit trail's head is logged: a copy outside the database, against which
/// `audit verify --expect-head` detects events cut off the end.
const AUDIT_HEAD_LOG_EVERY: Duration = Duration::from_secs(600);

/// Links new audit events into the hash chain every second (they are written by handlers and
/// by database triggers, so they are chained here, in order, rather than at insert time).
/// Only the leader does; the other replicas' events are sealed by it.
pub(super) async fn seal_audit(state: AppState, leader: Arc<Leader>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_head_log = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if !leader.is_leader() {
            continue;
        }
        seal_pending(&state).await;
        if last_head_log.elapsed() >= AUDIT_HEAD_LOG_EVERY {
            last_head_log = tokio::time::Instant::now();
            match state.store().audit_head().await {
                Ok(Some((seq, hash))) => {
                    tracing::info!(head = %format!("{seq}:{hash}"), "audit chain head");
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading the audit chain head failed"),
            }
        }
    }
}

pub(super) async fn seal_pending(state: &AppState) {
    // Bounded per tick, so a flood of events cannot keep this task busy forever; what is
    // left is sealed in the next second.
    for _ in 0..100 {
        match state.store().seal_audit(crate::store::SEAL_BATCH).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "sealing audit events failed; will retry");
                break;
            }
        }
    }
}

/// The reconciler loop of a running server; runs until aborted. Rounds run only while this
/// replica is the leader.
pub(super) async fn reconcile(state: AppState, leader: Arc<Leader>) {
    let clusters: Vec<ClusterConfig> = state
        .config()
        .clusters
        .iter()
        .filter(|c| c.access.is_some())
        .cloned()
        .collect();
    if clusters.is_empty() {
        return;
    }
    let wakeup = state.reconcile_wakeup().waiter();
    let mut lease = leader.subscribe();
    let mut was_leader = false;
    let mut epoch = None;
    let mut schedules: HashMap<String, reconcile::Schedule> = HashMap::new();
    loop {
        let mut force = tokio::select! {
            () = wakeup.notified() => true,
            () = tokio::time::sleep(reconcile::POLL_EVERY) => false,
            // Wakes when this replica takes the lease (and at each renewal, which is cheap).
            changed = lease.changed() => {
                if changed.is_err() {
                    // The sender lives as long as the state: not reached while serving.
                    return;
                }
                false
            }
        };
        match leader::turn(was_leader, leader.is_leader()) {
            leader::Turn::Skip => {
                was_leader = false;
                continue;
            }
            leader::Turn::Begin => {
                // The previous leader may have stopped mid-way: look at every cluster now.
                was_leader = true;
                force = true;
            }
            leader::Turn::Continue => {}
        }
        match state.store().grants_epoch().await {
            Ok(now_epoch) => {
                if epoch != Some(now_epoch) {
                    force = true;
                    epoch = Some(now_epoch);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the grants epoch"),
        }
        for cluster in &clusters {
            let now = state.now();
            let schedule = schedules.entry(cluster.name.clone()).or_default();
            if !schedule.is_due(now, force) {
                continue;
            }
            let ctx = reconcile::Ctx {
                roles: &state.config().roles,
                store: state.store(),
                metrics: state.metrics(),
                now,
            };
            match reconcile::round(ctx, cluster, false).await {
                Ok(report) => {
                    schedule.succeeded(now, cluster.reconcile_interval, report.next_boundary);
                }
                Err(e) => {
                    state.metrics().reconciler_error(&cluster.name);
                    if schedule.failed(now) {
                        tracing::warn!(error = %Untrusted::long(&e), "grant reconciler round failed");
                    }
                }
            }
        }
    }
}
