//! The commands of `credential-issuer`, one file per command family, each turning parsed
//! arguments into calls to the service layer and lines for the operator. This module owns
//! the dispatch ([`run`]), the log level each command starts tracing at ([`log_level`]) and
//! the one way commands open the store.

mod audit;
mod grants;
mod invites;
mod keys;
mod machines;
mod policy;
mod proxy;
mod reconcile;
mod reports;
mod requests;
mod serve;
mod users;

use crate::cli::args::{Command, ReportFormat};
use crate::cli::Error;
use crate::config::Config;
use crate::service::{reports as svc_reports, state};
use crate::store::Store;

/// The log level `command` starts tracing at, if it logs at all: `serve` logs what it does,
/// admin commands only warnings, and `check-config` and `keys` nothing (their output is all
/// they write).
#[must_use]
pub fn log_level(command: &Command) -> Option<&'static str> {
    match command {
        Command::Serve(_) | Command::Proxy(_) => Some("info"),
        Command::CheckConfig(_) | Command::Keys(_) => None,
        Command::User(_)
        | Command::Invite(_)
        | Command::Audit(_)
        | Command::Report(_)
        | Command::Policy(_)
        | Command::Grant(_)
        | Command::Request(_)
        | Command::Reconcile(_)
        | Command::Machine(_)
        | Command::Workload(_) => Some("warn"),
    }
}

/// Runs `command` with the loaded `config`.
pub async fn run(config: Config, command: Command) -> Result<(), Error> {
    match command {
        Command::Serve(_) => serve::serve(config).await,
        Command::Proxy(args) => proxy::proxy(config, &args.cluster).await,
        Command::CheckConfig(_) => {
            serve::check_config(&config);
            Ok(())
        }
        Command::User(cmd) => users::user(config, cmd).await,
        Command::Invite(cmd) => invites::invite(config, cmd).await,
        Command::Keys(cmd) => keys::keys(&config, &cmd).await,
        Command::Audit(cmd) => audit::audit(config, cmd).await,
        Command::Report(cmd) => reports::report(config, cmd).await,
        Command::Policy(cmd) => policy::policy(config, cmd).await,
        Command::Grant(cmd) => grants::grant(config, cmd).await,
        Command::Request(cmd) => requests::request(config, cmd).await,
        Command::Reconcile(args) => reconcile::reconcile(config, &args).await,
        Command::Machine(cmd) => machines::machine(config, cmd).await,
        Command::Workload(cmd) => machines::workload(config, cmd).await,
    }
}

/// Opens the store the config names, as the server would (creating the data directory).
async fn open_store(config: &Config) -> Result<Store, Error> {
    state::create_private_dir(&config.data_dir)?;
    Store::open(&config.database)
        .await
        .map_err(|source| Error::OpenStore {
            description: config.database_description(),
            source,
        })
}

/// The service's name for a `--format` flag of a report.
fn report_format(f: ReportFormat) -> svc_reports::Format {
    match f {
        ReportFormat::Table => svc_reports::Format::Table,
        ReportFormat::Jsonl => svc_reports::Format::Jsonl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn serve_logs_admin_commands_warn_and_keys_stay_quiet() {
        let level = |args: &[&str]| {
            let cli = crate::cli::args::Cli::try_parse_from(args)
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            log_level(&cli.command)
        };
        assert_eq!(level(&["credential-issuer", "serve"]), Some("info"));
        assert_eq!(
            level(&["credential-issuer", "proxy", "--cluster", "prod"]),
            Some("info")
        );
        assert_eq!(level(&["credential-issuer", "check-config"]), None);
        assert_eq!(level(&["credential-issuer", "keys", "list"]), None);
        assert_eq!(level(&["credential-issuer", "user", "list"]), Some("warn"));
        assert_eq!(
            level(&["credential-issuer", "reconcile", "--once"]),
            Some("warn")
        );
    }
}
