//! Kubernetes: the only module that knows Kubernetes API types. It reads kubeconfigs
//! (`kubeconfig`), talks to an API server (`client`), translates the domain's managed objects
//! to and from RBAC API objects (`objects`), and runs the grant reconciler (`reconcile`).

pub mod bindings;
pub mod client;
pub mod kubeconfig;
pub mod objects;
pub mod reconcile;

use std::path::PathBuf;

/// A Kubernetes error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kubeconfig, token or CA file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig does not describe a usable connection.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a secret).
        message: String,
    },
    /// The TLS settings (CA, client certificate) are unusable.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The API server could not be reached.
    #[error("{method} {path}: {message}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// API path.
        path: String,
        /// The transport's message.
        message: String,
    },
    /// The API server refused a request.
    #[error("{method} {path}: HTTP {status}: {message}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// API path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The `message` of the Kubernetes Status body.
        message: String,
    },
    /// A response body was not the expected JSON.
    #[error("{path}: unexpected response: {message}")]
    Decode {
        /// API path.
        path: String,
        /// Parser message.
        message: String,
    },
    /// The store failed during a reconcile round.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A blocking API call task did not finish.
    #[error("an API call task failed: {0}")]
    Join(String),
}
