//! The command line's error: what a command can fail with, wrapping the errors of the layers
//! below. The binary prints it once, with its causes (`{:#}`), and exits with a failure.

use std::net::SocketAddr;

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `serve` cannot bind its address.
    #[error("cannot listen on {addr} (set --listen)")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server's state, its TLS files or the data directory could not be set up.
    #[error(transparent)]
    Start(#[from] crate::service::state::StartError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::serve::tls::Error),
    /// The server stopped with an error.
    #[error("server failed")]
    Serve(#[source] std::io::Error),
    /// The database named by the config could not be opened.
    #[error("cannot open the database ({description})")]
    OpenStore {
        /// The database, as the config describes it (without a password).
        description: String,
        /// Why.
        #[source]
        source: crate::store::Error,
    },
    /// A query failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A file named on the command line could not be read.
    #[error("cannot read {}", .path.display())]
    ReadFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An administrative operation failed.
    #[error(transparent)]
    Admin(#[from] crate::service::admin::Error),
    /// Deciding an access request failed.
    #[error(transparent)]
    Request(#[from] crate::service::requests::Error),
    /// With `[signing] keys = "database"`, the keys could not be opened.
    #[error("cannot open the signing keys in the database")]
    KeySource(#[source] crate::service::admin::Error),
    /// `policy explain` names a cluster the config does not have.
    #[error("no cluster called {0:?} is configured")]
    NoSuchCluster(String),
    /// `policy explain` names a user the store does not have.
    #[error("no user called {0:?}")]
    NoSuchUser(String),
    /// `audit access` was given an empty or backward window.
    #[error("--until must be after --since")]
    EmptyWindow,
    /// `user add` could not read the password from the terminal.
    #[error("cannot read the password")]
    PromptPassword(#[source] std::io::Error),
    /// `user add` was given two different passwords.
    #[error("the passwords do not match")]
    PasswordsDiffer,
    /// `user add` could not read the password from stdin.
    #[error("cannot read the password from stdin")]
    ReadPassword(#[source] std::io::Error),
    /// A report could not be written to stdout.
    #[error("cannot write the report")]
    WriteReport(#[source] std::io::Error),
    /// `reconcile` failed in at least one cluster (each failure was printed as it happened).
    #[error("the reconcile round did not complete")]
    Reconcile,
    /// `proxy` cannot bind the address of `[clusters.proxy] listen`.
    #[error("cannot listen on {addr} (set listen in [clusters.proxy])")]
    ProxyListen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The impersonating proxy could not start or stopped with an error.
    #[error(transparent)]
    Proxy(#[from] crate::proxy::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the binary prints (`{:#}` through anyhow): the error, then each cause after `: `.
    fn chain(e: &Error) -> String {
        let mut out = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            out = format!("{out}: {c}");
            cause = c.source();
        }
        out
    }

    /// The chains must read as the `.context(...)` chains they replaced did.
    #[test]
    fn messages_chain_their_causes() {
        let e = Error::Listen {
            addr: "127.0.0.1:8443".parse().unwrap_or_else(|e| panic!("{e}")),
            source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use"),
        };
        assert_eq!(
            chain(&e),
            "cannot listen on 127.0.0.1:8443 (set --listen): address in use"
        );
        let e = Error::KeySource(crate::service::admin::Error::LinkTtl("x".into()));
        assert_eq!(
            chain(&e),
            "cannot open the signing keys in the database: invalid --link-ttl \"x\": give a \
             duration like 24h or 30m"
        );
        let e = Error::Admin(crate::service::admin::Error::WeakPassword);
        assert_eq!(chain(&e), "the password must be at least 12 characters");
    }
}
