//! Entry point of `kubectl-credential`: parse the arguments, run, report an error once.

mod base;
mod cache;
mod cli;
mod commands;
mod error;
mod exit;
mod flow;
#[cfg(test)]
mod fuzz_tests;
mod issuer;
mod kubeconfig;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return exit::exit_after_clap_error(&err),
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::from(exit::EXIT_OK),
        Err(err) => {
            let text = error::report(&err);
            if !flow::handout::told_this_caller(err.repeat_topic().unwrap_or(&text)) {
                eprintln!("error: {text}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
