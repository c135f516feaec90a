//! Serving: TLS, the listener, graceful shutdown, background upkeep, the leader lease and the
//! tasks it gates, and an in-process runner for tests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;

use crate::app::{AppState, StartError};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, TlsSource};
use crate::tls::TlsFiles;

/// How long in-flight requests get to finish on shutdown.
const GRACE: Duration = Duration::from_secs(10);
/// How often the signing keys are re-read (so `keys rotate`, from the CLI or on another
/// replica, needs no restart). Shorter than any token lifetime.
pub const KEY_RELOAD_EVERY: Duration = Duration::from_secs(10);

/// The TLS files to serve: the operator's, or generated ones for the issuer's host.
pub fn tls_files(config: &Config) -> Result<TlsFiles, StartError> {
    match &config.tls {
        TlsSource::Files { cert, key } => Ok(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: None,
        }),
        TlsSource::Generated => {
            let mut hosts = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if let Some(h) = config.issuer_url.host_str() {
                let h = h.trim_start_matches('[').trim_end_matches(']').to_owned();
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
            Ok(crate::tls::ensure_generated(&config.tls_dir(), &hosts)?)
        }
    }
}

/// Serves the issuer on `listener` until `shutdown` completes, then drains for up to
/// [`GRACE`].
pub async fn serve(
    listener: std::net::TcpListener,
    state: AppState,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let upkeep = tokio::spawn(upkeep(state.clone()));
    let checkpoints = tokio::spawn(checkpoints(state.clone()));
    let probe = tokio::spawn(probe_database(state.clone()));
    // The lease decides which replica runs the audit sealer and the reconciler.
    let lease = tokio::spawn(crate::leader::run(state.clone()));
    let revocations = tokio::spawn(revocation_feed(state.clone()));
    let audit = tokio::spawn(seal_audit(state.clone()));
    let reconciler = tokio::spawn(crate::kube::reconcile::run(state.clone()));
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down; finishing in-flight requests");
        h.graceful_shutdown(Some(GRACE));
    });
    let state_for_exit = state.clone();
    let app = crate::http::router(state);
    let result = axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(tls))
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await;
    upkeep.abort();
    checkpoints.abort();
    probe.abort();
    revocations.abort();
    lease.abort();
    audit.abort();
    reconciler.abort();
    // Wait until the leader-only tasks are gone before the lease is given up, so that no
    // work of theirs overlaps with a successor's.
    let _ = audit.await;
    let _ = reconciler.await;
    // Seal what the last requests wrote, so a clean stop leaves no unsealed tail. Like an
    // admin command's, this seal is safe next to the leader's (see `Store::seal_audit`).
    seal_pending(&state_for_exit).await;
    state_for_exit
        .leader()
        .release(state_for_exit.store())
        .await;
    result
}

/// Periodic work: reload signing keys (also at once on SIGHUP), purge expired rows.
async fn upkeep(state: AppState) {
    let mut tick = tokio::time::interval(KEY_RELOAD_EVERY);
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
        match crate::requests::expire(state.store(), state.now()).await {
            Ok(notices) => crate::http::notify_requests(&state, notices),
            Err(e) => tracing::warn!(error = %e, "expiring access requests failed"),
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
async fn revocation_feed(state: AppState) {
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

/// Keeps [`crate::health`] fresh: reads and a one-row write every second, each bounded by the
/// same second, so that `/readyz` answers from memory and a fault is seen (and its end too)
/// within a second whether or not requests are coming in.
async fn probe_database(state: AppState) {
    let mut tick = tokio::time::interval(crate::health::PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = state.now();
        let probe = state.store().probe(state.leader().holder(), now);
        let (fault, detail) = match tokio::time::timeout(crate::health::PROBE_EVERY, probe).await {
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
                let named =
                    tokio::time::timeout(crate::health::PROBE_EVERY / 2, state.store().diagnose())
                        .await;
                named.ok().flatten().unwrap_or_else(|| {
                    (
                        crate::store::Fault::TimedOut,
                        format!(
                            "no answer within {} ms",
                            crate::health::PROBE_EVERY.as_millis()
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
async fn checkpoints(state: AppState) {
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
async fn seal_audit(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_head_log = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if !state.leader().is_leader() {
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

async fn seal_pending(state: &AppState) {
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

/// An issuer running on its own thread and runtime, for tests and embedding. Dropping it shuts
/// the server down and waits for the thread.
#[derive(Debug)]
pub struct BackgroundIssuer {
    url: String,
    ca: Option<PathBuf>,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundIssuer {
    /// Starts the issuer on an already bound `listener` (bind `127.0.0.1:0` first: no port
    /// race) with the system clock. Returns once the state is open and the server is about to
    /// accept.
    pub fn spawn(listener: std::net::TcpListener, config: Config) -> Result<Self, StartError> {
        Self::spawn_with_clock(listener, config, Arc::new(SystemClock))
    }

    /// As [`Self::spawn`], with a clock of the caller's choosing.
    pub fn spawn_with_clock(
        listener: std::net::TcpListener,
        config: Config,
        clock: SharedClock,
    ) -> Result<Self, StartError> {
        let url = config.issuer().to_owned();
        let files = tls_files(&config)?;
        let tls = crate::tls::server_config(&files.cert, &files.key)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let state = runtime.block_on(AppState::open(config, clock))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("credential-issuer".into())
            .spawn(move || {
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                if let Err(e) = runtime.block_on(serve(listener, st, tls, shutdown)) {
                    tracing::error!(error = %e, "background issuer stopped with an error");
                }
            })
            .map_err(StartError::Runtime)?;
        Ok(Self {
            url,
            ca: files.ca,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The issuer URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The generated CA to trust, when the certificate was generated.
    #[must_use]
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The server's state (its store, signer and config), for assertions in tests.
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }
}

impl Drop for BackgroundIssuer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
