//! The wire types that kubectl, the plugin and the issuer exchange, and the one function that
//! makes outside text safe to print ([`text`]), which both binaries need.
//!
//! Every type in the wire modules crosses a process boundary, so each is `Serialize` and/or
//! `Deserialize`; internal types elsewhere are not. Deserializers never use
//! `deny_unknown_fields`: an older plugin must keep working against a newer issuer.
//! `text` is pure string handling, here so that both binaries share its rules.
//! This crate does no IO and has no async runtime, HTTP client or server in it.

pub mod api;
pub mod exec_credential;
pub mod oauth;
pub mod text;
pub mod token_review;
