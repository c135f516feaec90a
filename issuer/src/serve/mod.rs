//! Serving: TLS, the listener, graceful shutdown, background upkeep, the leader lease and the
//! tasks it gates, and an in-process runner for tests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, TlsSource};
use crate::serve::tls::TlsFiles;
use crate::service::state::{AppState, StartError};
use leader::Leader;

pub mod leader;
mod tasks;
pub mod tls;

/// How long in-flight requests get to finish on shutdown.
const GRACE: Duration = Duration::from_secs(10);
pub use crate::signing::RELOAD_EVERY as KEY_RELOAD_EVERY;

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
            Ok(crate::serve::tls::ensure_generated(
                &config.tls_dir(),
                &hosts,
            )?)
        }
    }
}

/// Serves the issuer on `listener` until `shutdown` completes, then drains for up to
/// `GRACE`.
pub async fn serve(
    listener: std::net::TcpListener,
    state: AppState,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    // The lease decides which replica runs the audit sealer and the reconciler; it belongs
    // to this server, not to the state the handlers share.
    let leader = Arc::new(Leader::new(
        leader::holder_id(),
        leader::Timing::new(state.config().leader_lease),
    ));
    let upkeep = tokio::spawn(tasks::upkeep(state.clone()));
    let checkpoints = tokio::spawn(tasks::checkpoints(state.clone()));
    let probe = tokio::spawn(tasks::probe_database(state.clone(), Arc::clone(&leader)));
    let lease = tokio::spawn(leader::run(state.clone(), Arc::clone(&leader)));
    let revocations = tokio::spawn(tasks::revocation_feed(state.clone()));
    let audit = tokio::spawn(tasks::seal_audit(state.clone(), Arc::clone(&leader)));
    let reconciler = tokio::spawn(tasks::reconcile(state.clone(), Arc::clone(&leader)));
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
    tasks::seal_pending(&state_for_exit).await;
    leader.release(state_for_exit.store()).await;
    result
}

/// The background loops of a process that reviews tokens from the same store without serving
/// the issuer (the impersonating proxy): signing-key reloads, the revocation feed (so a
/// logout, `user disable` or a grant's end elsewhere is refused here within seconds) and the
/// database probe behind the fail-fast health state. Never the singletons: no leader lease,
/// reconciler, audit sealer, purges or checkpoints; those belong to the `serve` replicas.
/// The loops stop when the value is dropped.
#[must_use = "the loops stop when the value is dropped"]
pub fn replica_tasks(state: &AppState) -> ReplicaTasks {
    // The probe writes one row per process, named by a holder id; this process never takes
    // the lease (no `leader::run`), so it never counts as the leader.
    let leader = Arc::new(Leader::new(
        leader::holder_id(),
        leader::Timing::new(state.config().leader_lease),
    ));
    ReplicaTasks(vec![
        tokio::spawn(tasks::key_reloads(state.clone())),
        tokio::spawn(tasks::revocation_feed(state.clone())),
        tokio::spawn(tasks::probe_database(state.clone(), leader)),
    ])
}

/// The loops [`replica_tasks`] started; dropping this aborts them.
#[derive(Debug)]
pub struct ReplicaTasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for ReplicaTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
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
        let tls = crate::serve::tls::server_config(&files.cert, &files.key)?;
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
