//! The `credential-issuer` command line: its arguments ([`args`]), the commands behind them
//! ([`commands`]), what they print ([`output`], and [`banner`] for `serve`) and the error they
//! fail with ([`Error`]). The top of the crate: it may use every layer below.

pub mod args;
pub mod banner;
pub mod commands;
mod error;
pub mod output;

pub use error::Error;
