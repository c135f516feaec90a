//! credential-issuer as a library: everything the binary does, testable without a process.
//!
//! `main.rs` parses the command line and calls into here; tests build an [`app::AppState`]
//! and drive [`http::router`] or [`server::serve`] directly.

pub mod admin;
pub mod app;
pub mod banner;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
#[cfg(test)]
mod fuzz_support;
pub mod health;
pub mod http;
pub mod kube;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod password;
pub mod reports;
pub mod requests;
pub mod review;
pub mod seal;
pub mod secret;
pub mod server;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod totp;
pub mod upstream;
