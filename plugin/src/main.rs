//! Entry point of `kubectl-credential`: parse the arguments, run, report an error once.
//!
//! The modules form layers, and a module imports only from layers below its own:
//!
//! 1. `base` (secrets, time, terminal text, Ctrl-C, the environment, token claims, the
//!    session's plain values): imports nothing of the plugin.
//! 2. `kubeconfig`, `cache`, `issuer`, and `cli` (argument parsing only): `base`.
//! 3. `error`: `base`, `kubeconfig`, `cache`, `issuer`.
//! 4. `flow` (steps the commands share): `base`, `cache`, `issuer`, `error`; `exit` (exit
//!    codes): `base`, `kubeconfig`, `issuer`, `error`.
//! 5. `commands`: everything below except `exit`.
//! 6. this file: `cli`, `commands`, `error`, `exit`, `flow`.

mod base;
mod cache;
mod cli;
mod commands;
mod error;
mod exit;
mod flow;
mod issuer;
mod kubeconfig;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse().and_then(cli::Cli::checked) {
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

#[cfg(test)]
mod fuzz_tests;
