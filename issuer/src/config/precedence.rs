//! Precedence, in one place: the command line's flags (and, through clap, their environment
//! variables, which a flag beats) are laid over the config file's values here and nowhere
//! else. Defaults come last: each section fills in what neither gave.

use std::path::PathBuf;

use super::{DatabaseUrl, FileConfig};
use crate::secrets::secret::Secret;

/// Values from the command line (and, through clap, their environment variables). `None` means
/// "not given"; they override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<DatabaseUrl>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--issuer-url`.
    pub issuer_url: Option<String>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--token-ttl`.
    pub token_ttl: Option<String>,
    /// `--session-ttl`.
    pub session_ttl: Option<String>,
    /// `--encryption-key-file`.
    pub encryption_key_file: Option<PathBuf>,
    /// `CREDENTIAL_ISSUER_ENCRYPTION_KEY` (environment only: a flag would show in `ps`).
    pub encryption_key: Option<Secret>,
}

/// Where the settings that locate the store (config file, database URL, encryption key file)
/// came from. A hint that repeats them must name the file, or the flag or environment
/// variable, that gave them, and never paste a database URL that holds a password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOrigin {
    /// `--config` (or `CREDENTIAL_ISSUER_CONFIG`): the file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// `database_url` came from `--database-url` or `CREDENTIAL_ISSUER_DATABASE_URL` rather
    /// than from the config file.
    pub database_url_overridden: bool,
    /// `encryption_key_file` came from `--encryption-key-file` or its environment variable
    /// rather than from the config file.
    pub encryption_key_file_overridden: bool,
}

/// The config file's values with the overrides laid over them, and what only an override
/// can give.
#[derive(Debug)]
pub(super) struct Layered {
    /// The file's values, each replaced by its flag (or environment variable) when given.
    pub(super) file: FileConfig,
    /// [`Overrides::encryption_key`]: no file holds it.
    pub(super) encryption_key: Option<Secret>,
    /// Which of the store's settings came from an override.
    pub(super) store_origin: StoreOrigin,
}

/// Flags and environment over the file: a value given by `o` replaces the file's.
pub(super) fn layer(mut file: FileConfig, o: &Overrides) -> Layered {
    file.listen = o.listen.clone().or(file.listen);
    file.issuer_url = o.issuer_url.clone().or(file.issuer_url);
    file.data_dir = o.data_dir.clone().or(file.data_dir);
    file.tls_cert = o.tls_cert.clone().or(file.tls_cert);
    file.tls_key = o.tls_key.clone().or(file.tls_key);
    file.token_ttl = o.token_ttl.clone().or(file.token_ttl);
    file.session_ttl = o.session_ttl.clone().or(file.session_ttl);
    file.encryption_key_file = o.encryption_key_file.clone().or(file.encryption_key_file);
    file.database_url = o.database_url.clone().or(file.database_url);
    Layered {
        file,
        encryption_key: o.encryption_key.clone(),
        store_origin: StoreOrigin {
            config_file: o.config_file.clone(),
            database_url_overridden: o.database_url.is_some(),
            encryption_key_file_overridden: o.encryption_key_file.is_some(),
        },
    }
}
