//! credential-issuer as a library: everything the binary does, testable without a process.
//!
//! `main.rs` parses the command line and calls into here; tests build a
//! [`service::state::AppState`] and drive [`http::router`] or [`serve::serve`] directly. The
//! modules are layers, bottom first: `clock`, `env`, `secrets` < `domain` < `store` <
//! `telemetry`, `signing` < `upstream`, `kube` < `config` < `service` < `http` < `serve` < `cli`;
//! a module uses only its own layer and the ones below (ARCHITECTURE.md, "Layers").

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod env;
#[cfg(test)]
mod fuzz_support;
pub mod http;
pub mod kube;
pub mod proxy;
pub mod secrets;
pub mod serve;
pub mod service;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod upstream;
