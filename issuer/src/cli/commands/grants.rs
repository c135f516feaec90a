//! `grant add`, `grant list` and `grant revoke`: time-bound grants of a role.

use credential_shared::text::Untrusted;

use crate::cli::args::GrantCommand;
use crate::cli::output::say;
use crate::cli::Error;
use crate::config::Config;
use crate::service::admin;
use crate::store::GrantFilter;

/// Runs a `grant` command.
pub(super) async fn grant(config: Config, cmd: GrantCommand) -> Result<(), Error> {
    let store = super::open_store(&config).await?;
    let now = time::OffsetDateTime::now_utc();
    match cmd {
        GrantCommand::Add(a) => {
            let new = admin::new_grant(&a.words(), now)?;
            let g = admin::add_grant(&store, &config, &new, now).await?;
            say(&format!(
                "granted {} to {} in {} until {} (grant {})",
                Untrusted::new(&g.role),
                Untrusted::new(&g.grantee),
                admin::grant_scope(&g),
                admin::format_time(g.ends_at),
                Untrusted::new(&g.id)
            ));
        }
        GrantCommand::List { user, cluster, all } => {
            let filter = GrantFilter { user, cluster, all };
            let grants = store.list_grants(&filter, now).await?;
            say(admin::grant_table(&grants, now).trim_end());
        }
        GrantCommand::Revoke { id, reason } => {
            let g = admin::revoke_grant(&store, &id, reason.as_deref(), admin::ADMIN_ACTOR, now)
                .await?;
            say(&format!(
                "revoked grant {} ({} for {}); its bindings are removed within seconds",
                Untrusted::new(&g.id),
                Untrusted::new(&g.role),
                Untrusted::new(&g.grantee)
            ));
        }
    }
    Ok(())
}
