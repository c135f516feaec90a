//! The `credential-issuer` command line: its arguments ([`args`]) and the text `serve`
//! prints at start ([`banner`]). The top of the crate: it may use every layer below.

pub mod args;
pub mod banner;
