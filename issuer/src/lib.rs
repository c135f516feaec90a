//! credential-issuer as a library: everything the binary does, testable without a process.
//!
//! `main.rs` parses the command line and calls [`cli::commands::run`]; tests build a
//! [`service::state::AppState`] and drive [`http::router`] or [`serve::serve`] directly.

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod env;
#[cfg(test)]
mod fuzz_support;
pub mod http;
pub mod kube;
pub mod secrets;
pub mod serve;
pub mod service;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod upstream;
