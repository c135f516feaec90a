//! The wire types that kubectl, the plugin and the issuer exchange, and nothing else.
//!
//! Every type here crosses a process boundary, so every type here is `Serialize` and/or
//! `Deserialize`; internal types elsewhere are not. Deserializers never use
//! `deny_unknown_fields`: an older plugin must keep working against a newer issuer.
//! This crate does no IO and has no async runtime, HTTP client or server in it.

pub mod api;
pub mod exec_credential;
pub mod oauth;
pub mod token_review;
