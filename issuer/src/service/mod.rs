//! The issuer's use cases, shared by the HTTP handlers and the admin command line: the state
//! opened once at start ([`state`]), administration ([`admin`]), access requests
//! ([`requests`]), token review ([`review`]), reports ([`reports`]) and notifications
//! ([`notify`]). Rules live in `domain`, SQL in `store`; nothing here speaks HTTP.

pub mod admin;
pub mod machines;
pub mod notify;
pub mod reports;
pub mod requests;
pub mod review;
pub mod state;
