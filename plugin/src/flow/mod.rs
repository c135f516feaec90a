//! The steps the commands are made of, each needing the cache, the issuer or both: the device
//! flow, the `ExecCredential` exchange with kubectl, recognising kubectl's retry after a 401
//! (and telling it from a client that re-runs the plugin, by asking the API server), one
//! cluster's session (find, refresh, store, sign in), ending sessions found exposed, and
//! machine mode's exchange of a CI identity or a machine key for a token.

pub(crate) mod device;
pub(crate) mod exec;
pub(crate) mod exposed;
pub(crate) mod handout;
pub(crate) mod machine;
pub(crate) mod retry;
pub(crate) mod session;
