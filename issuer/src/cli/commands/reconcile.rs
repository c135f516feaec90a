//! `reconcile`: one reconcile round in each configured cluster (or one), printing what it
//! changed or would change.

use credential_shared::text::Untrusted;

use crate::cli::args::ReconcileArgs;
use crate::cli::output::{print_error, say};
use crate::cli::Error;
use crate::config::Config;
use crate::kube::reconcile;
use crate::telemetry::metrics::Metrics;

/// Runs `reconcile`. A cluster that fails is reported and the others still run; the command
/// then fails. Without `--cluster`, a cluster the issuer has no access to is skipped.
pub(super) async fn reconcile(config: Config, args: &ReconcileArgs) -> Result<(), Error> {
    let store = super::open_store(&config).await?;
    let metrics = Metrics::default();
    let mut failed = false;
    for cluster in &config.clusters {
        if args.cluster.as_ref().is_some_and(|c| *c != cluster.name) {
            continue;
        }
        let ctx = reconcile::Ctx {
            roles: &config.roles,
            store: &store,
            metrics: &metrics,
            now: time::OffsetDateTime::now_utc(),
        };
        match reconcile::round(ctx, cluster, args.dry_run).await {
            Ok(report) => {
                let verb = if args.dry_run {
                    "would change"
                } else {
                    "changed"
                };
                say(&format!(
                    "cluster {}: {verb} {} object(s)",
                    Untrusted::new(&cluster.name),
                    report.changes.len()
                ));
                for c in &report.changes {
                    say(&format!("  {}", Untrusted::long(c)));
                }
                for (c, e) in &report.failed {
                    failed = true;
                    say(&format!(
                        "  FAILED {}: {}",
                        Untrusted::long(c),
                        Untrusted::long(e)
                    ));
                }
            }
            Err(e @ reconcile::RoundError::NoAccess(_)) if args.cluster.is_none() => {
                say(&format!(
                    "cluster {}: skipped ({})",
                    Untrusted::new(&cluster.name),
                    Untrusted::long(&e)
                ));
            }
            Err(e) => {
                failed = true;
                print_error(&e);
            }
        }
    }
    if failed {
        return Err(Error::Reconcile);
    }
    Ok(())
}
