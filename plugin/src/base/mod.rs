//! The building blocks every other module uses and that use nothing of the plugin themselves:
//! secrets, time, terminal escaping, Ctrl-C, the environment, the claims of a token and the
//! plain values the command line names (issuer URL, cluster, token cache).

pub(crate) mod cancel;
pub(crate) mod clock;
pub(crate) mod env;
pub(crate) mod jwt;
pub(crate) mod machine;
pub(crate) mod secret;
pub(crate) mod target;
pub(crate) mod term;
