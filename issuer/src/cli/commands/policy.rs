//! `policy explain`: prints which Kubernetes groups a user gets in a cluster, and why.

use crate::cli::args::PolicyCommand;
use crate::cli::output::say;
use crate::cli::Error;
use crate::config::Config;
use crate::service::admin;

/// Runs a `policy` command.
pub(super) async fn policy(config: Config, cmd: PolicyCommand) -> Result<(), Error> {
    let PolicyCommand::Explain { user, cluster } = cmd;
    if config.cluster(&cluster).is_none() {
        return Err(Error::NoSuchCluster(cluster));
    }
    let store = super::open_store(&config).await?;
    let Some(found) = store.user_by_name(&user).await? else {
        return Err(Error::NoSuchUser(user));
    };
    say(admin::explain(&config.policy, &found.username, &found.groups, &cluster).trim_end());
    Ok(())
}
