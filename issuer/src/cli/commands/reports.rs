//! `report stale`: people and grants in force whose access was not used for a number of days.

use crate::cli::args::ReportCommand;
use crate::cli::output::print_report;
use crate::cli::Error;
use crate::config::Config;
use crate::service::reports;

/// Runs a `report` command.
pub(super) async fn report(config: Config, cmd: ReportCommand) -> Result<(), Error> {
    let store = super::open_store(&config).await?;
    match cmd {
        ReportCommand::Stale { days, format } => {
            let now = time::OffsetDateTime::now_utc();
            let r = reports::stale(&store, days, now).await?;
            print_report(&reports::render_stale(
                &r,
                days,
                super::report_format(format),
            ))
        }
    }
}
