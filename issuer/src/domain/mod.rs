//! Pure policy: user codes, device-flow decisions, session liveness, token claims, names, group
//! mapping, grants, the audit hash chain, and the rules of a webhook token review.
//!
//! Nothing here does IO or reads the clock: callers pass `now` and random bytes in, which makes
//! every rule a table-driven unit test.

pub mod access;
pub mod audit_chain;
pub mod cluster;
pub mod device;
pub mod grants;
pub mod identity;
pub mod names;
pub mod origin;
pub mod policy;
pub mod requests;
pub mod review;
pub mod session;
pub mod tokens;
pub mod user_code;
pub mod workloads;
