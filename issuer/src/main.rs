//! `credential-issuer`: parses the command line, loads the config, starts the async runtime
//! and tracing, and hands the command to the library (`cli::commands`); an error is printed
//! once, with its causes, and the process exits with a failure.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use credential_issuer::cli::args::Cli;
use credential_issuer::cli::{commands, output};
use credential_issuer::config::Config;
use credential_issuer::telemetry::logging;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&e);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.overrides()).context("invalid configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let Some(level) = commands::log_level(&cli.command) {
        logging::init(level);
    }
    runtime.block_on(commands::run(config, cli.command))?;
    Ok(())
}
