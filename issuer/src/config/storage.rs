//! Where the issuer keeps its state: the database (SQLite in the data directory or a shared
//! PostgreSQL), the key that seals secrets at rest, and the signing keys (`[signing]`). They
//! are checked together because replicas sharing a database must share the keys too.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use super::{invalid, ConfigError, FileSigning};
use crate::env;
use crate::secrets::secret::Secret;
use crate::store::{redact_url, Location, PostgresOptions};

/// A database URL as the operator wrote it. It may carry a password, so `Debug` shows it
/// redacted; only [`Config::database`](super::Config::database) holds the usable value.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// PostgreSQL connections per issuer process, unless `database_max_connections` says otherwise.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

/// Where the signing keys are kept (`[signing] keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKeys {
    /// `"directory"`: files in `<data dir>/keys` (one issuer).
    Directory,
    /// `"database"`: rows of the database, sealed with `encryption_key_file`, shared by every
    /// replica.
    Database,
}

/// The key that seals secrets at rest, as given: a file, the key itself (from the
/// environment), or neither (`seal.key` in the data directory, generated on first start).
#[derive(Debug)]
pub(super) struct EncryptionKey {
    /// `encryption_key_file`.
    pub(super) file: Option<PathBuf>,
    /// `CREDENTIAL_ISSUER_ENCRYPTION_KEY`.
    pub(super) key: Option<Secret>,
}

impl EncryptionKey {
    /// The key given one way at most.
    pub(super) fn new(file: Option<PathBuf>, key: Option<Secret>) -> Result<Self, ConfigError> {
        if key.is_some() && file.is_some() {
            return Err(invalid(
                "encryption_key_file",
                format!(
                    "and {} are both set: give the key one way only",
                    env::ENCRYPTION_KEY
                ),
            ));
        }
        Ok(Self { file, key })
    }

    /// A key was given, which is what replicas need: not one each generates for itself.
    pub(super) fn explicit(&self) -> bool {
        self.file.is_some() || self.key.is_some()
    }
}

/// `database_url` and `database_max_connections`: SQLite in `data_dir` unless the URL says
/// otherwise. PostgreSQL, shared by replicas, needs an explicit encryption key.
pub(super) fn database(
    url: Option<&DatabaseUrl>,
    max_connections: Option<u32>,
    data_dir: &Path,
    explicit_key: bool,
) -> Result<Location, ConfigError> {
    let Some(DatabaseUrl(url)) = url else {
        return Ok(Location::Sqlite(data_dir.join("issuer.db")));
    };
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(invalid(
                "database_url",
                "`sqlite:` needs a file path, e.g. sqlite:///var/lib/credential-issuer/issuer.db",
            ));
        }
        return Ok(Location::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let parsed = Url::parse(url).map_err(|e| {
            invalid(
                "database_url",
                format!("{} is not a valid URL: {e}", redact_url(url)),
            )
        })?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("database_url", "the PostgreSQL URL names no host"));
        }
        if !explicit_key {
            return Err(invalid(
                "encryption_key_file",
                "is required with a PostgreSQL database: every replica must seal and open secrets \
                 with the same key. Create one with `head -c 32 /dev/urandom | base64 > FILE` \
                 and give it to every replica (a Kubernetes Secret)",
            ));
        }
        let max_connections = max_connections.unwrap_or(POSTGRES_MAX_CONNECTIONS);
        if !(2..=1000).contains(&max_connections) {
            return Err(invalid(
                "database_max_connections",
                format!("{max_connections} is outside 2..=1000"),
            ));
        }
        return Ok(Location::Postgres(PostgresOptions {
            url: url.clone(),
            max_connections,
            schema: None,
        }));
    }
    Err(invalid(
        "database_url",
        format!(
            "{} is neither postgres://USER:PASSWORD@HOST/DB nor sqlite:PATH",
            redact_url(url)
        ),
    ))
}

/// `[signing]`: where keys are kept. In the database they are sealed with the encryption key,
/// which every replica must share, so it has to be given explicitly: the `seal.key` generated
/// in one replica's data directory would differ from the next one's.
pub(super) fn signing_keys(
    signing: &FileSigning,
    explicit_key: bool,
    database: &Location,
) -> Result<SigningKeys, ConfigError> {
    let keys = match signing.keys.as_deref() {
        // Replicas on one PostgreSQL must sign with the same keys: there they live in it.
        None if matches!(database, Location::Postgres(_)) => SigningKeys::Database,
        None | Some("directory") => SigningKeys::Directory,
        Some("database") => SigningKeys::Database,
        Some(other) => {
            return Err(invalid(
                "signing.keys",
                format!("`{other}` is neither \"directory\" nor \"database\""),
            ))
        }
    };
    if keys == SigningKeys::Database && !explicit_key {
        return Err(invalid(
            "signing.keys",
            format!(
                "\"database\" seals the keys with the encryption key that every replica shares, \
                 so it needs an explicit encryption_key_file (or {} / --encryption-key-file); \
                 create one with `openssl rand -base64 32`",
                env::ENCRYPTION_KEY_FILE
            ),
        ));
    }
    Ok(keys)
}
