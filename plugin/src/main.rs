//! Entry point of `kubectl-credential`: parse the arguments, run, report an error once.

mod app;
mod base;
mod cache;
mod cli;
mod device_flow;
mod error;
mod exec;
mod exit;
#[cfg(test)]
mod fuzz_tests;
mod handout;
mod issuer;
mod kubeconfig;
mod requests;
mod roles;
mod show;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return exit::exit_after_clap_error(&err),
    };
    match app::run(cli) {
        Ok(()) => ExitCode::from(exit::EXIT_OK),
        Err(err) => {
            let text = error::report(&err);
            if !app::told_this_caller(err.repeat_topic().unwrap_or(&text)) {
                eprintln!("error: {text}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
