//! The proxy's audit events: one `proxy.request` row per request (refusals included) in the
//! issuer's hash-chained trail, written by one task in batches of one transaction each.
//!
//! Events are never dropped. A request reserves its place in a bounded queue before it is
//! answered; when the writer falls behind (a slow or unreachable database), requests wait for
//! a place instead of going unrecorded. The reservation is held while the answer streams (a
//! watch holds its place for hours), so the queue's size also bounds the requests in flight.
//! At shutdown the writer drains the queue and writes it before the process exits.

use std::net::SocketAddr;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::attributes::Attributes;
use crate::domain::review::{Identity, EXTRA_GRANT_IDS, EXTRA_SESSION_ID, PREFIX};
use crate::store::{AuditEvent, Store};

/// The event's name.
pub(super) const ACTION: &str = "proxy.request";
/// Places in the queue: requests in flight plus events not yet written.
const QUEUE: usize = 16_384;
/// Most events written in one transaction.
const BATCH: usize = 500;
/// How long a failed write waits before it is tried again, at most.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often the writer tries the final batch at shutdown before giving up on it.
const FINAL_ATTEMPTS: u32 = 5;

type Queued = (AuditEvent, OffsetDateTime);

/// What one request did, filled in as it is answered.
#[derive(Debug, Clone)]
pub(super) struct Record {
    /// When it arrived (the state's clock).
    pub(super) at: OffsetDateTime,
    /// The cluster proxied.
    pub(super) cluster: String,
    /// Where it came from.
    pub(super) client: SocketAddr,
    /// What it asked for.
    pub(super) attributes: Attributes,
    /// The caller's user name (without the `credential:` prefix) once the token was accepted.
    pub(super) actor: Option<String>,
    /// The caller's user id.
    pub(super) subject: Option<String>,
    /// The token's session.
    pub(super) session_id: Option<String>,
    /// The grants the token carried (comma-separated ids).
    pub(super) grant_ids: Option<String>,
    /// Why the proxy refused it, when it did (never a secret).
    pub(super) refusal: Option<String>,
    /// Whether the connection was upgraded (exec, attach, port-forward).
    pub(super) upgrade: bool,
}

impl Record {
    /// A request that arrived at `at` from `client`.
    pub(super) fn new(
        at: OffsetDateTime,
        cluster: &str,
        client: SocketAddr,
        attributes: Attributes,
    ) -> Self {
        Self {
            at,
            cluster: cluster.to_owned(),
            client,
            attributes,
            actor: None,
            subject: None,
            session_id: None,
            grant_ids: None,
            refusal: None,
            upgrade: false,
        }
    }

    /// Who the accepted token names.
    pub(super) fn caller(&mut self, identity: &Identity) {
        let name = identity
            .username
            .strip_prefix(PREFIX)
            .unwrap_or(&identity.username);
        self.actor = Some(name.to_owned());
        self.subject = Some(identity.uid.clone());
        let extra = |key: &str| {
            identity
                .extra
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        };
        self.session_id = extra(EXTRA_SESSION_ID);
        self.grant_ids = extra(EXTRA_GRANT_IDS);
    }

    /// The row: the answer's `code`, how long it took, and the bytes sent back (and, for an
    /// upgraded connection, the bytes sent to the API server).
    fn event(self, outcome: Outcome) -> Queued {
        let a = &self.attributes;
        let detail = serde_json::json!({
            "verb": a.verb,
            "api_group": a.api_group,
            "api_version": a.api_version,
            "resource": a.resource,
            "subresource": a.subresource,
            "name": a.name,
            "path": a.non_resource_path,
            "code": outcome.code,
            "duration_ms": outcome.duration_ms,
            "response_bytes": outcome.response_bytes,
            "request_bytes": outcome.request_bytes,
            "upgrade": self.upgrade,
            "session_id": self.session_id,
            "grant_ids": self.grant_ids,
            "incomplete": outcome.incomplete,
        });
        let event = AuditEvent {
            event: ACTION,
            actor: self.actor,
            subject: self.subject,
            cluster: Some(self.cluster),
            namespace: (!a.namespace.is_empty()).then(|| a.namespace.clone()),
            reason: self.refusal,
            client_addr: Some(self.client.ip().to_string()),
            detail: Some(detail.to_string()),
            ..AuditEvent::default()
        };
        (event, self.at)
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Outcome {
    /// The HTTP status answered (101 for an upgraded connection).
    pub(super) code: u16,
    /// From arrival to the last byte (for an upgrade: to the connection's end).
    pub(super) duration_ms: u64,
    /// Body bytes sent back to the caller.
    pub(super) response_bytes: u64,
    /// For an upgraded connection, bytes sent to the API server.
    pub(super) request_bytes: Option<u64>,
    /// The answer or connection ended before it was complete (the caller went away, the API
    /// server cut it, the proxy stopped).
    pub(super) incomplete: bool,
}

/// Where requests send their events; cheap to clone. Without auditing (`audit = "none"`) it
/// holds nothing and records nothing.
#[derive(Debug, Clone)]
pub(super) struct Sink {
    tx: Option<mpsc::Sender<Queued>>,
}

/// A reserved place in the queue: recording into it never waits and never fails.
#[derive(Debug)]
pub(super) struct Slot(Option<mpsc::OwnedPermit<Queued>>);

impl Sink {
    /// A sink that records nothing.
    pub(super) fn disabled() -> Self {
        Self { tx: None }
    }

    /// Reserves a place, waiting while the queue is full (back-pressure).
    pub(super) async fn reserve(&self) -> Slot {
        match &self.tx {
            // Fails only once the writer is gone (the proxy is stopping); nothing is then
            // written anyway.
            Some(tx) => Slot(tx.clone().reserve_owned().await.ok()),
            None => Slot(None),
        }
    }
}

impl Slot {
    /// Queues the event of `record` ending with `outcome`.
    pub(super) fn record(self, record: Record, outcome: Outcome) {
        if let Some(permit) = self.0 {
            permit.send(record.event(outcome));
        }
    }
}

/// The writer task: stop it with [`Writer::finish`], which writes what is queued.
#[derive(Debug)]
pub(super) struct Writer {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the writer on `store`; the sink feeds it.
pub(super) fn start(store: Store) -> (Sink, Writer) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(write_loop(store, rx, stopped));
    (Sink { tx: Some(tx) }, Writer { stop, task })
}

impl Writer {
    /// Writes every event queued so far, waiting at most `within`; then the writer stops.
    pub(super) async fn finish(self, within: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(within, self.task).await.is_err() {
            tracing::error!("proxy audit events could not be written before shutdown");
        }
    }
}

async fn write_loop(
    store: Store,
    mut rx: mpsc::Receiver<Queued>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                write(&store, &mut batch, None).await;
            }
            _ = &mut stopped => {
                rx.close();
                while let Ok(e) = rx.try_recv() {
                    batch.push(e);
                    if batch.len() >= BATCH {
                        write(&store, &mut batch, Some(FINAL_ATTEMPTS)).await;
                    }
                }
                write(&store, &mut batch, Some(FINAL_ATTEMPTS)).await;
                return;
            }
        }
    }
    write(&store, &mut batch, Some(FINAL_ATTEMPTS)).await;
}

/// Writes `batch` in one transaction, trying again after a failure (a passing fault: a busy
/// or unreachable database) until it is written, or `attempts` times at shutdown.
async fn write(store: &Store, batch: &mut Vec<Queued>, attempts: Option<u32>) {
    if batch.is_empty() {
        return;
    }
    let mut wait = Duration::from_millis(100);
    let mut tried = 0;
    loop {
        tried += 1;
        match store.audit_batch(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) if attempts.is_some_and(|n| tried >= n) => {
                tracing::error!(
                    error = %crate::store::cause_chain(&e),
                    events = batch.len(),
                    "proxy audit events lost: the database did not take them at shutdown"
                );
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(
                    error = %crate::store::cause_chain(&e),
                    events = batch.len(),
                    "writing proxy audit events failed; retrying (requests wait meanwhile)"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}
