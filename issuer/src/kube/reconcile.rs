//! The grant reconciler: makes the managed RBAC objects of each cluster match the grants in
//! force. One round lists the managed objects (label selector), computes the difference with
//! what the active grants need, applies it, and reports every change (a log line, an audit
//! row per binding created or removed, a metric). The server runs rounds per cluster every
//! `reconcile_interval`, at once after a grant change (in this process: a notify; from the
//! admin CLI: the store's grants epoch, polled every second), and at the next grant start or
//! end. The reconciler never touches an object without the managed-by label. Of several
//! replicas only the leader ([`crate::serve::leader`]) runs rounds; one that becomes leader runs
//! them at once.

use std::sync::Arc;
use std::time::Duration;

use credential_shared::text::Untrusted;
use time::OffsetDateTime;

use super::client::Client;
use super::{kubeconfig, objects, Error};
use crate::domain::cluster::{ClusterConfig, KubeAccess, RoleConfig};
use crate::domain::grants::{self, Binding, Change, Grant};
use crate::store::{AuditEvent, Store};
use crate::telemetry::metrics::Metrics;

/// How often the server looks for grant changes made by other processes.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// What a round needs.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The roles grants refer to (`[[roles]]`).
    pub roles: &'a [RoleConfig],
    /// The store (grants, audit).
    pub store: &'a Store,
    /// Counters.
    pub metrics: &'a Metrics,
    /// Now.
    pub now: OffsetDateTime,
}

/// What one round did.
#[derive(Debug, Default)]
pub struct Report {
    /// Changes made (or, in a dry run, that would be made).
    pub changes: Vec<Change>,
    /// Changes that failed, with the reason.
    pub failed: Vec<(Change, String)>,
    /// The next grant start or end in this cluster: look again then.
    pub next_boundary: Option<OffsetDateTime>,
}

/// Why a cluster was not reconciled at all.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// The cluster has no `kubeconfig` or `in_cluster` setting.
    #[error(
        "cluster `{0}` has no kubeconfig or in_cluster setting; grants are not made real there"
    )]
    NoAccess(String),
    /// Its kubeconfig file does not exist (yet): skipped.
    #[error("cluster `{cluster}`: kubeconfig {path} does not exist; skipped")]
    MissingKubeconfig {
        /// Cluster.
        cluster: String,
        /// The file.
        path: std::path::PathBuf,
    },
    /// Anything else.
    #[error("cluster `{cluster}`: {source}")]
    Failed {
        /// Cluster.
        cluster: String,
        /// Why.
        #[source]
        source: Error,
    },
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Join(e.to_string()))?
}

pub(super) fn connect(cluster: &ClusterConfig) -> Result<Client, RoundError> {
    let failed = |source| RoundError::Failed {
        cluster: cluster.name.clone(),
        source,
    };
    let endpoint = match &cluster.access {
        None => return Err(RoundError::NoAccess(cluster.name.clone())),
        Some(KubeAccess::Kubeconfig(path)) => {
            if !path.exists() {
                return Err(RoundError::MissingKubeconfig {
                    cluster: cluster.name.clone(),
                    path: path.clone(),
                });
            }
            kubeconfig::load(path).map_err(failed)?
        }
        Some(KubeAccess::InCluster) => kubeconfig::in_cluster().map_err(failed)?,
    };
    Client::new(&endpoint).map_err(failed)
}

/// One round for `cluster`. With `dry_run` nothing is changed; the report lists what would be.
pub async fn round(
    ctx: Ctx<'_>,
    cluster: &ClusterConfig,
    dry_run: bool,
) -> Result<Report, RoundError> {
    let failed = |source| RoundError::Failed {
        cluster: cluster.name.clone(),
        source,
    };
    let client = connect(cluster)?;
    let current = ctx
        .store
        .current_grants_for_cluster(&cluster.name, ctx.now)
        .await
        .map_err(|e| failed(e.into()))?;
    let active: Vec<Grant> = current
        .iter()
        .filter(|g| g.is_active(ctx.now))
        .cloned()
        .collect();
    let desired = grants::desired(&active, ctx.roles);
    let c = client.clone();
    let actual = blocking(move || {
        Ok(objects::actual(
            c.list(&objects::cluster_roles_list())?,
            c.list(&objects::cluster_role_bindings_list())?,
            c.list(&objects::role_bindings_list())?,
        ))
    })
    .await
    .map_err(failed)?;
    let mut report = Report {
        next_boundary: grants::next_boundary(&current, ctx.now),
        ..Report::default()
    };
    for change in grants::diff(&desired, &actual) {
        if dry_run {
            report.changes.push(change);
            continue;
        }
        let c = client.clone();
        let ch = change.clone();
        match blocking(move || apply(&c, &ch)).await {
            Ok(()) => {
                tracing::info!(cluster = %cluster.name, action = change.action(), object = %Untrusted::new(change.object()), "reconciler changed an object");
                ctx.metrics
                    .reconciler_change(&cluster.name, change.action());
                audit(ctx, &cluster.name, &change, &current).await;
                report.changes.push(change);
            }
            Err(e) => {
                tracing::warn!(cluster = %cluster.name, action = change.action(), object = %Untrusted::new(change.object()), error = %Untrusted::long(&e), "reconciler change failed");
                ctx.metrics.reconciler_error(&cluster.name);
                report.failed.push((change, e.to_string()));
            }
        }
    }
    Ok(report)
}

fn apply(c: &Client, change: &Change) -> Result<(), Error> {
    let put = |b: &Binding| match b.namespace {
        Some(_) => c.replace(&objects::binding_path(b), &objects::role_binding(b)),
        None => c.replace(&objects::binding_path(b), &objects::cluster_role_binding(b)),
    };
    let post = |b: &Binding| match b.namespace {
        Some(_) => c.create(&objects::binding_collection(b), &objects::role_binding(b)),
        None => c.create(
            &objects::binding_collection(b),
            &objects::cluster_role_binding(b),
        ),
    };
    match change {
        Change::CreateRole(r) => c.create(
            &objects::cluster_roles_collection(),
            &objects::cluster_role(r),
        ),
        Change::UpdateRole(r) => c.replace(
            &objects::cluster_role_path(&r.name),
            &objects::cluster_role(r),
        ),
        Change::DeleteRole(name) => c.delete(&objects::cluster_role_path(name)),
        Change::Create(b) => post(b),
        Change::Update(b) => put(b),
        Change::Recreate(b) => {
            c.delete(&objects::binding_path(b))?;
            post(b)
        }
        Change::Delete(b) => c.delete(&objects::binding_path(b)),
    }
}

/// An audit row for a binding created or removed (role objects are policy, not access).
async fn audit(ctx: Ctx<'_>, cluster: &str, change: &Change, grants: &[Grant]) {
    let (event, binding) = match change {
        Change::Create(b) | Change::Recreate(b) => ("binding.created", b),
        Change::Update(b) => ("binding.repaired", b),
        Change::Delete(b) => ("binding.removed", b),
        _ => return,
    };
    let grant = binding
        .grant_id
        .as_ref()
        .and_then(|id| grants.iter().find(|g| &g.id == id));
    let subject = grant.map_or_else(
        || {
            binding
                .subjects
                .first()
                .map(|s| s.name.clone())
                .unwrap_or_default()
        },
        |g| g.grantee.to_string(),
    );
    let detail = serde_json::json!({
        "object": binding.describe(),
        "namespace": binding.namespace,
        "cluster_role": binding.cluster_role,
        "grant_id": binding.grant_id,
        "role": grant.map(|g| g.role.clone()),
        "reason": grant.and_then(|g| g.reason.clone()),
        "approver": grant.and_then(|g| g.approved_by.clone()),
    });
    let event = AuditEvent {
        event,
        actor: Some("reconciler".into()),
        subject: Some(subject),
        cluster: Some(cluster.to_owned()),
        namespace: binding.namespace.clone(),
        role: grant.map(|g| g.role.clone()),
        reason: grant.and_then(|g| g.reason.clone()),
        approver: grant.and_then(|g| g.approved_by.clone()),
        request_id: grant.and_then(|g| g.request_id.clone()),
        detail: Some(detail.to_string()),
        ..AuditEvent::default()
    };
    if let Err(e) = ctx.store.audit(&event, ctx.now).await {
        tracing::error!(error = %e, "cannot record a reconciler audit event");
    }
}

/// Wakes the reconciler at once (after a grant change made in this process).
#[derive(Debug, Clone, Default)]
pub struct Wakeup(Arc<tokio::sync::Notify>);

impl Wakeup {
    /// What the reconciler loop waits on.
    #[must_use]
    pub fn waiter(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.0)
    }

    /// Asks for a round in every cluster now.
    pub fn grants_changed(&self) {
        self.0.notify_one();
    }
}

/// How long to wait before retrying a cluster whose round failed (its kubeconfig may appear at
/// any moment).
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// When one cluster's next round is due: at the end of its interval, at the next grant start
/// or end, or soon after a failure. Pure, so that the timing rules are unit-tested.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    due: Option<OffsetDateTime>,
    boundary: Option<OffsetDateTime>,
    failing: bool,
}

impl Schedule {
    /// Whether a round should run at `now` (`force`: grants changed).
    #[must_use]
    pub fn is_due(&self, now: OffsetDateTime, force: bool) -> bool {
        force || self.due.is_none_or(|t| now >= t) || self.boundary.is_some_and(|t| now >= t)
    }

    /// A round at `now` succeeded; the next is due after `interval`, or at `next_boundary` if
    /// that is sooner.
    pub fn succeeded(
        &mut self,
        now: OffsetDateTime,
        interval: Duration,
        next_boundary: Option<OffsetDateTime>,
    ) {
        self.due = Some(now + grants::span(interval));
        self.boundary = next_boundary;
        self.failing = false;
    }

    /// A round at `now` failed; retry after [`RETRY_AFTER`]. Returns whether this is the first
    /// failure since a success (worth a warning; the following ones are only counted).
    pub fn failed(&mut self, now: OffsetDateTime) -> bool {
        self.due = Some(now + grants::span(RETRY_AFTER));
        !std::mem::replace(&mut self.failing, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rounds_come_at_the_interval_at_grant_boundaries_and_soon_after_failures() {
        let t0 = datetime!(2026-06-01 12:00 UTC);
        let at = |secs: i64| t0 + time::Duration::seconds(secs);
        let mut s = Schedule::default();
        assert!(s.is_due(t0, false), "the first round runs at once");
        // A grant ends 5 s from now; the interval is 30 s.
        s.succeeded(t0, Duration::from_secs(30), Some(at(5)));
        assert!(!s.is_due(at(4), false));
        assert!(s.is_due(at(4), true), "a grant change forces a round");
        assert!(s.is_due(at(5), false), "the grant's end wakes the loop");
        s.succeeded(at(5), Duration::from_secs(30), None);
        assert!(!s.is_due(at(34), false));
        assert!(s.is_due(at(35), false), "the interval");
        assert!(s.failed(at(35)), "the first failure is worth a warning");
        assert!(!s.failed(at(37)), "the next ones are only counted");
        assert!(!s.is_due(at(38), false));
        assert!(s.is_due(at(39), false), "retried after RETRY_AFTER");
        s.succeeded(at(39), Duration::from_secs(30), None);
        assert!(s.failed(at(69)), "a failure after a success warns again");
    }
}
