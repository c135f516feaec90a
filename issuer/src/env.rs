//! The names of the environment variables the issuer reads, in one place: the ones
//! configuration reads once at start, and the few lower layers read themselves (the pod's
//! Kubernetes service address, its host name, the log filter).

/// Path of the TOML config file.
pub const CONFIG: &str = "CREDENTIAL_ISSUER_CONFIG";
/// Directory of the database, keys and generated TLS material.
pub const DATA_DIR: &str = "CREDENTIAL_ISSUER_DATA_DIR";
/// Socket address to listen on, e.g. `127.0.0.1:8443`.
pub const LISTEN: &str = "CREDENTIAL_ISSUER_LISTEN";
/// Public https URL of the issuer (the `iss` claim).
pub const ISSUER_URL: &str = "CREDENTIAL_ISSUER_URL";
/// PEM certificate chain to serve instead of the generated one.
pub const TLS_CERT: &str = "CREDENTIAL_ISSUER_TLS_CERT";
/// PEM private key of `TLS_CERT`.
pub const TLS_KEY: &str = "CREDENTIAL_ISSUER_TLS_KEY";
/// Access token lifetime, e.g. `5m`.
pub const TOKEN_TTL: &str = "CREDENTIAL_ISSUER_TOKEN_TTL";
/// Session (refresh) lifetime, e.g. `12h`.
pub const SESSION_TTL: &str = "CREDENTIAL_ISSUER_SESSION_TTL";
/// Log filter, as for every tracing program.
pub const RUST_LOG: &str = "RUST_LOG";
/// File holding the 32-byte key that encrypts secrets at rest (raw or base64).
pub const ENCRYPTION_KEY_FILE: &str = "CREDENTIAL_ISSUER_ENCRYPTION_KEY_FILE";
/// The 32-byte key itself, base64 (instead of `ENCRYPTION_KEY_FILE`; e.g. from a Secret).
pub const ENCRYPTION_KEY: &str = "CREDENTIAL_ISSUER_ENCRYPTION_KEY";
/// `postgres://user:password@host/db` for a shared PostgreSQL (several replicas); unset:
/// SQLite in the data directory.
pub const DATABASE_URL: &str = "CREDENTIAL_ISSUER_DATABASE_URL";
/// `json` for JSON logs, anything else for text.
pub const LOG_FORMAT: &str = "CREDENTIAL_ISSUER_LOG_FORMAT";
/// Set (to anything but the empty string): no colours in the text log even on a terminal
/// (<https://no-color.org>). Without a terminal there are none anyway.
pub const NO_COLOR: &str = "NO_COLOR";
/// Set by Kubernetes in every pod: the API server's address (`in_cluster = true`).
pub const KUBERNETES_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
/// Set by Kubernetes in every pod: the API server's port (`in_cluster = true`).
pub const KUBERNETES_SERVICE_PORT: &str = "KUBERNETES_SERVICE_PORT";
/// Set by Kubernetes in every pod (the pod's name): names this replica in the leader
/// lease; without it, the kernel's host name does.
pub const HOSTNAME: &str = "HOSTNAME";
