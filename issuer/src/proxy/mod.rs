//! The impersonating proxy (`credential-issuer proxy --cluster NAME`): a TLS server in front
//! of one cluster's real API server. It authenticates each request's bearer token exactly as
//! the token-review webhook does for that cluster, refuses client-sent impersonation, and
//! forwards the request with the proxy's own credential and `Impersonate-*` headers naming
//! the caller; answers and upgraded connections (exec, attach, port-forward) stream back
//! unchanged. Every request is one `proxy.request` event in the audit trail.
//!
//! The process is a replica of the issuer's store that serves only the proxy: it follows the
//! revocation feed (so a logout or `user disable` elsewhere is refused here within seconds)
//! and reloads signing keys, but runs none of the singletons (`serve::replica_tasks`).
//!
//! - `attributes`: verb, resource, namespace and name of a request, as the API server reads
//!   them (for the audit event).
//! - `headers`: what is refused, removed and added.
//! - `forward`: the client towards the API server (pool, TLS, upgrades).
//! - `audit`: the batched writer of the events.
//! - `status`: Kubernetes `Status` bodies for the proxy's own answers.

mod attributes;
mod audit;
mod forward;
mod headers;
mod status;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use credential_shared::text::Untrusted;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{mpsc, watch};

use crate::config::{ClusterConfig, Config, KubeAccess, ProxyAudit, ProxyConfig, ProxyTls};
use crate::kube::kubeconfig::{self, Endpoint};
use crate::serve::tls::TlsFiles;
use crate::service::review::{self, Outcome};
use crate::service::state::AppState;
use audit::{Record, Slot};
pub use forward::SetupError;

/// The body type of every answer: the API server's, streamed, or the proxy's own.
type ProxyBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// How long in-flight requests and upgraded connections get to finish at shutdown.
const GRACE: Duration = Duration::from_secs(10);
/// How often an upgraded connection asks whether its session still counts.
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the audit writer gets for what is queued at shutdown.
const AUDIT_FLUSH: Duration = Duration::from_secs(10);

/// Why the proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--cluster` names no configured cluster.
    #[error("no cluster called {0:?} is configured")]
    UnknownCluster(String),
    /// The cluster has no `[clusters.proxy]` table.
    #[error("cluster {0:?} has no [clusters.proxy] table: nothing to proxy")]
    NotProxied(String),
    /// The proxy's own credential (kubeconfig or service account) cannot be read.
    #[error("cannot read the proxy's credential for cluster {cluster:?}")]
    Credential {
        /// The cluster.
        cluster: String,
        /// Why.
        #[source]
        source: crate::kube::Error,
    },
    /// No CA to trust for the API server: neither the cluster nor the kubeconfig gives one.
    #[error(
        "cluster {0:?}: no CA for the API server; set ca_file in [[clusters]] or \
         certificate-authority in the proxy's kubeconfig"
    )]
    NoCa(String),
    /// The API server connection cannot be set up.
    #[error("cluster {cluster:?}: cannot set up the connection to the API server")]
    Upstream {
        /// The cluster.
        cluster: String,
        /// Why.
        #[source]
        source: SetupError,
    },
    /// The serving certificate cannot be generated or loaded.
    #[error(transparent)]
    Tls(#[from] crate::serve::tls::Error),
    /// The listener cannot be used.
    #[error("the proxy's listener failed")]
    Listen(#[source] std::io::Error),
}

/// The `[clusters.proxy]` settings of `cluster`.
pub fn settings<'c>(config: &'c Config, cluster: &str) -> Result<&'c ProxyConfig, Error> {
    let c = config
        .cluster(cluster)
        .ok_or_else(|| Error::UnknownCluster(cluster.chars().take(64).collect()))?;
    c.proxy
        .as_ref()
        .ok_or_else(|| Error::NotProxied(c.name.clone()))
}

/// The proxy's serving certificate: the operator's files, or a leaf for the proxy URL's host
/// (and the local names) signed by the issuer's generated CA in the data directory.
pub fn tls_files(config: &Config, cluster: &str) -> Result<TlsFiles, Error> {
    let p = settings(config, cluster)?;
    match &p.tls {
        ProxyTls::Files { cert, key, .. } => Ok(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: None,
        }),
        ProxyTls::Generated => {
            let mut hosts = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if let Some(h) = p.url.host_str() {
                let h = h.trim_start_matches('[').trim_end_matches(']').to_owned();
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
            Ok(crate::serve::tls::ensure_generated_leaf(
                &config.tls_dir(),
                &hosts,
                &format!("proxy-{cluster}"),
            )?)
        }
    }
}

/// The rustls server configuration of the proxy's listener: `files` (re-read when they
/// change), ALPN `h2` and `http/1.1`.
pub fn server_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, Error> {
    let base = crate::serve::tls::server_config(&files.cert, &files.key)?;
    let mut config = (*base).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The API server and the proxy's credential for it: the proxy's kubeconfig (or service
/// account), with the cluster's own `server` and CA when the cluster names them.
fn endpoint(cluster: &ClusterConfig, access: &KubeAccess) -> Result<Endpoint, Error> {
    let credential = |source| Error::Credential {
        cluster: cluster.name.clone(),
        source,
    };
    let mut e = match access {
        KubeAccess::Kubeconfig(path) => kubeconfig::load(path).map_err(credential)?,
        KubeAccess::InCluster => kubeconfig::in_cluster().map_err(credential)?,
    };
    if let Some(server) = &cluster.server {
        e.server = server.clone();
    }
    if let Some(data) = &cluster.certificate_authority_data {
        use base64::Engine as _;
        // Validated as base64 of a PEM file when the config was loaded.
        if let Ok(pem) = base64::engine::general_purpose::STANDARD.decode(data.trim()) {
            e.ca_pem = Some(pem);
        }
    }
    if e.ca_pem.is_none() {
        return Err(Error::NoCa(cluster.name.clone()));
    }
    Ok(e)
}

/// What every request of one proxy shares.
struct Shared {
    state: AppState,
    cluster: String,
    impersonate_uid: bool,
    upstream: Arc<forward::Upstream>,
    audit: audit::Sink,
    /// Turns `true` at shutdown: upgraded connections get [`GRACE`] to end.
    stopping: watch::Receiver<bool>,
    /// Held by every connection and upgraded stream; shutdown waits until all are dropped.
    drain: mpsc::Sender<()>,
}

/// Runs the proxy for `cluster` on `listener` (bound already: `127.0.0.1:0` in tests) with
/// the serving configuration `tls`, until `shutdown` completes; then stops accepting, lets
/// requests and upgraded connections finish for up to [`GRACE`], and writes the audit events
/// still queued.
pub async fn run(
    listener: std::net::TcpListener,
    state: AppState,
    cluster: &str,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let config = state.config();
    let settings = settings(config, cluster)?.clone();
    let cluster_config = config
        .cluster(cluster)
        .ok_or_else(|| Error::UnknownCluster(cluster.to_owned()))?;
    let endpoint = endpoint(cluster_config, &settings.upstream)?;
    let upstream = forward::Upstream::new(&endpoint).map_err(|source| Error::Upstream {
        cluster: cluster.to_owned(),
        source,
    })?;
    listener.set_nonblocking(true).map_err(Error::Listen)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(Error::Listen)?;
    let addr = listener.local_addr().map_err(Error::Listen)?;

    let _replica = crate::serve::replica_tasks(&state);
    let shared_upstream = Arc::new(upstream);
    let token_reloads = AbortOnDrop(tokio::spawn(reload_token(
        Arc::clone(&shared_upstream),
        cluster_config.clone(),
        settings.upstream.clone(),
    )));
    let (sink, writer) = match settings.audit {
        ProxyAudit::Metadata => {
            let (sink, writer) = audit::start(state.store().clone());
            (sink, Some(writer))
        }
        ProxyAudit::None => (audit::Sink::disabled(), None),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    let server = shared_upstream.server().to_owned();
    let shared = Arc::new(Shared {
        state: state.clone(),
        cluster: cluster.to_owned(),
        impersonate_uid: settings.impersonate_uid,
        upstream: shared_upstream,
        audit: sink,
        stopping: stop_rx.clone(),
        drain: drain_tx.clone(),
    });
    // The end-to-end harness reads the port from this line: keep its shape.
    tracing::info!(
        cluster = %cluster,
        "proxy for cluster {cluster} listening on https://{addr} (forwarding to {})",
        Untrusted::new(&server)
    );

    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            Arc::clone(&shared),
            acceptor.clone(),
            tcp,
            peer,
            stop_rx.clone(),
        ));
    }
    tracing::info!("proxy shutting down; finishing in-flight requests");
    drop(listener);
    let _ = stop_tx.send(true);
    drop(shared);
    drop(drain_tx);
    // Every connection and upgraded stream holds a sender: `None` once all have ended.
    if tokio::time::timeout(GRACE + Duration::from_secs(2), drain_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("proxy connections still open after the grace period; closing them");
    }
    if let Some(w) = writer {
        w.finish(AUDIT_FLUSH).await;
    }
    drop(token_reloads);
    Ok(())
}

/// How often the proxy's credential is read again (the kubelet rotates a service account's
/// token file well before it expires).
const TOKEN_RELOAD_EVERY: Duration = Duration::from_secs(60);

/// Reads the proxy's kubeconfig (or service account) again every [`TOKEN_RELOAD_EVERY`] and
/// uses a changed token. A client certificate is read once, at start.
async fn reload_token(
    upstream: Arc<forward::Upstream>,
    cluster: ClusterConfig,
    access: KubeAccess,
) {
    let mut tick = tokio::time::interval(TOKEN_RELOAD_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (c, a) = (cluster.clone(), access.clone());
        let read = tokio::task::spawn_blocking(move || endpoint(&c, &a)).await;
        match read {
            Ok(Ok(Endpoint {
                auth: kubeconfig::Auth::Token(token),
                ..
            })) => match upstream.set_token(&token) {
                Ok(true) => {
                    tracing::info!(cluster = %cluster.name, "the proxy's token was reloaded");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the proxy's new token cannot be used; keeping the current one");
                }
            },
            Ok(Err(e)) => tracing::warn!(
                error = %Untrusted::long(&e),
                "reading the proxy's credential again failed; keeping the current one"
            ),
            // A client certificate (read once), or the blocking task was cancelled.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One client connection: TLS, then HTTP/1.1 (with upgrades) or HTTP/2 as ALPN chose.
async fn connection(
    shared: Arc<Shared>,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let _drain = shared.drain.clone();
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %Untrusted::new(&e), %peer, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let svc_shared = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&svc_shared);
        async move { Ok::<_, Infallible>(handle(shared, req, peer).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %Untrusted::long(&e), %peer, "proxy connection ended with an error");
            }
        }
        () = stopped(stop.clone()) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(GRACE, conn.as_mut()).await;
        }
    }
}

/// One request: authenticate, refuse impersonation, forward, stream the answer back, record.
async fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let upgrade = headers::upgrade(req.headers());
    let attributes = attributes::parse(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        upgrade == Ok(true),
    );
    let mut record = Record::new(shared.state.now(), &shared.cluster, peer, attributes);
    record.upgrade = upgrade == Ok(true);
    // Back-pressure: wait here, before any work, while the audit writer is behind.
    let slot = shared.audit.reserve().await;

    let Some(token) = headers::bearer(req.headers()) else {
        return refuse(
            slot,
            record,
            started,
            StatusCode::UNAUTHORIZED,
            status::UNAUTHORIZED,
            "the credential proxy needs a bearer token from kubectl-credential: run `kubectl credential login`",
        );
    };
    let identity = match review::review(&shared.state, Some(&shared.cluster), token, &[]).await {
        Ok(Outcome::Authenticated { identity, .. }) => identity,
        Ok(Outcome::Refused(why)) => {
            let message = format!("the credential proxy refused the token: {}", why.reason());
            return refuse(
                slot,
                record,
                started,
                StatusCode::UNAUTHORIZED,
                status::UNAUTHORIZED,
                &message,
            );
        }
        Err(review::Error::DatabaseDown(fault)) => {
            let message = format!(
                "the issuer's database is unavailable ({}); retry",
                fault.describe()
            );
            return refuse(
                slot,
                record,
                started,
                StatusCode::SERVICE_UNAVAILABLE,
                status::SERVICE_UNAVAILABLE,
                &message,
            );
        }
        Err(e) => {
            tracing::error!(error = %Untrusted::long(&e), "proxy token review failed");
            return refuse(
                slot,
                record,
                started,
                StatusCode::SERVICE_UNAVAILABLE,
                status::SERVICE_UNAVAILABLE,
                "the credential proxy cannot check tokens now; retry",
            );
        }
    };
    record.caller(&identity);
    if let Some(name) = headers::impersonation(req.headers()) {
        tracing::info!(header = %Untrusted::new(name), cluster = %shared.cluster, "client impersonation refused");
        return refuse(
            slot,
            record,
            started,
            StatusCode::FORBIDDEN,
            status::FORBIDDEN,
            "impersonation headers are not accepted through the credential proxy",
        );
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(message) => {
            return refuse(
                slot,
                record,
                started,
                StatusCode::BAD_REQUEST,
                status::BAD_REQUEST,
                message,
            );
        }
    };
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let long_lived = record.attributes.verb == "watch" || follows(req.uri().query());
    let (mut parts, body) = req.into_parts();
    headers::strip_request(&mut parts.headers, upgrade);
    if let Err(e) = headers::impersonate(&mut parts.headers, &identity, shared.impersonate_uid) {
        // The issuer made this identity: not the caller's fault, and never sent half-made.
        tracing::error!(error = %e, "proxy: the identity cannot be impersonated");
        let message = e.to_string();
        return refuse(
            slot,
            record,
            started,
            StatusCode::INTERNAL_SERVER_ERROR,
            status::INTERNAL_ERROR,
            &message,
        );
    }
    let out = Request::from_parts(parts, http_body_util::BodyExt::boxed(body));
    let answer = match client_upgrade {
        Some(_) => shared.upstream.send_upgrade(out).await,
        None => shared.upstream.send(out).await,
    };
    let mut res = match answer {
        Ok(res) => res,
        Err(e) => {
            tracing::warn!(error = %Untrusted::long(&e), server = %shared.upstream.server(), "forwarding to the API server failed");
            let (code, reason) = match e {
                forward::Error::Connect(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, status::SERVICE_UNAVAILABLE)
                }
                forward::Error::Exchange(_) => (StatusCode::BAD_GATEWAY, status::INTERNAL_ERROR),
            };
            let message = format!("the credential proxy could not reach the API server: {e}");
            return refuse(slot, record, started, code, reason, &message);
        }
    };
    if let Some(client_upgrade) = client_upgrade {
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream_upgrade = hyper::upgrade::on(&mut res);
            let (parts, _) = res.into_parts();
            let session = identity
                .extra
                .iter()
                .find(|(k, _)| *k == crate::domain::review::EXTRA_SESSION_ID)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            tokio::spawn(splice(
                Arc::clone(&shared),
                client_upgrade,
                upstream_upgrade,
                slot,
                record,
                (started, session),
            ));
            return Response::from_parts(parts, status::full(Bytes::new()));
        }
    }
    let (mut parts, body) = res.into_parts();
    headers::strip_response(&mut parts.headers);
    let code = parts.status.as_u16();
    Response::from_parts(
        parts,
        http_body_util::BodyExt::boxed(Metered {
            inner: http_body_util::BodyExt::boxed(body),
            bytes: 0,
            code,
            done: Some((slot, record, started)),
            // A watch or a followed log ends when shutdown begins, as the API server ends
            // them at its own shutdown (clients start them again, elsewhere); a short answer
            // gets the grace period.
            cut: long_lived.then(|| -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
                Box::pin(stopped(shared.stopping.clone()))
            }),
            ended: false,
        }),
    )
}

/// Whether the query asks to follow a log (`follow=true`): an answer that lasts.
fn follows(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            matches!(
                pair,
                "follow=true" | "follow=1" | "follow=True" | "follow=TRUE"
            )
        })
    })
}

/// The proxy's own answer `code` (a refusal, or the API server out of reach), and its event,
/// whose `reason` is the message.
fn refuse(
    slot: Slot,
    mut record: Record,
    started: Instant,
    code: StatusCode,
    reason: &'static str,
    message: &str,
) -> Response<ProxyBody> {
    record.refusal = Some(message.to_owned());
    let res = status::status(code, reason, message);
    slot.record(
        record,
        audit::Outcome {
            code: code.as_u16(),
            duration_ms: millis(started),
            response_bytes: res.body().size_hint().exact().unwrap_or(0),
            ..audit::Outcome::default()
        },
    );
    res
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Completes once shutdown has begun.
async fn stopped(mut stop: watch::Receiver<bool>) {
    // Not kept: a `watch::Ref` must not be held across an await.
    let _ = stop.wait_for(|s| *s).await;
}

/// An upgraded connection: once both sides have switched, bytes are copied both ways until
/// both have closed (a half-close is passed on), [`GRACE`] after shutdown began, or when its
/// session stops counting (a logout, a disabled account: the stream is cut, not left open
/// until the person ends it; an ended token alone does not cut it).
async fn splice(
    shared: Arc<Shared>,
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    slot: Slot,
    record: Record,
    (started, session): (Instant, String),
) {
    let _drain = shared.drain.clone();
    let mut outcome = audit::Outcome {
        code: StatusCode::SWITCHING_PROTOCOLS.as_u16(),
        ..audit::Outcome::default()
    };
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            let stopping = shared.stopping.clone();
            let grace_over = async move {
                stopped(stopping).await;
                tokio::time::sleep(GRACE).await;
            };
            tokio::select! {
                copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                    Ok((to_upstream, to_client)) => {
                        outcome.request_bytes = Some(to_upstream);
                        outcome.response_bytes = to_client;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "upgraded proxy connection ended with an error");
                        outcome.incomplete = true;
                    }
                },
                () = grace_over => outcome.incomplete = true,
                why = session_ends(&shared.state, &session) => {
                    tracing::info!(cluster = %shared.cluster, reason = why, "an upgraded proxy connection was cut: its session ended");
                    outcome.incomplete = true;
                }
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "a side of the upgraded proxy connection never switched");
            outcome.incomplete = true;
        }
    }
    outcome.duration_ms = millis(started);
    slot.record(record, outcome);
}

/// Completes when the session `sid` is ended by someone (with the reason's label): a logout
/// or revocation, a disabled account, an account past its end. Never while the database
/// cannot say (a fault does not cut a person's shell), and not for a session that merely
/// reached its end: a machine identity's session is as long as its token, and a CI job's
/// `kubectl exec` may outlast that, as it may on an API server that checks the token once.
async fn session_ends(state: &AppState, sid: &str) -> &'static str {
    use crate::domain::session::Liveness;
    loop {
        tokio::time::sleep(SESSION_CHECK_EVERY).await;
        match review::session_liveness(state, sid).await {
            Ok(None | Some(Liveness::Live | Liveness::Expired)) | Err(_) => {}
            Ok(Some(Liveness::Revoked)) => return "session revoked",
            Ok(Some(Liveness::UserDisabled)) => return "account disabled",
            Ok(Some(Liveness::AccountExpired)) => return "account expired",
        }
    }
}

/// The API server's answer body, streamed through as it comes, counted; its audit event is
/// recorded when it ends, or when the caller goes away (dropped).
struct Metered {
    inner: ProxyBody,
    bytes: u64,
    code: u16,
    done: Option<(Slot, Record, Instant)>,
    /// For a long-lived answer: completes when shutdown begins, which ends the answer.
    cut: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
    /// Ended by `cut`.
    ended: bool,
}

impl Metered {
    fn finish(&mut self, incomplete: bool) {
        if let Some((slot, record, started)) = self.done.take() {
            slot.record(
                record,
                audit::Outcome {
                    code: self.code,
                    duration_ms: millis(started),
                    response_bytes: self.bytes,
                    request_bytes: None,
                    incomplete,
                },
            );
        }
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(cut) = this.cut.as_mut() {
            if cut.as_mut().poll(cx).is_ready() {
                this.cut = None;
                this.ended = true;
                this.finish(true);
                return Poll::Ready(None);
            }
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(true),
            Poll::Ready(None) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // Dropped before its end: the caller went away (or the answer had no body to poll).
        let complete = !self.ended && self.inner.is_end_stream();
        self.finish(!complete);
    }
}
