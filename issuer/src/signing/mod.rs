//! The keys that sign access tokens: ES256 keys on disk or in the database, their rotation,
//! the JWKS the API servers verify against, and JWS signing and verification.
//!
//! Keys come from a [`KeySource`]; only loading, creating and deleting differ between the two
//! (`directory` and `database`), the key set, the choice of the signing key (`keyset`) and
//! the retention rule (`rotation`) are shared:
//!
//! - [`KeySource::Directory`]: each key is one file, `<created unix seconds, 12 digits>-<kid>.p8`,
//!   holding raw PKCS#8 DER with mode 0600.
//! - [`KeySource::Database`]: each key is a row of `signing_keys` (`kid`, `created_at`, the DER
//!   sealed with the encryption key under a context naming the row's kid and time, so a sealed
//!   key moved to another row does not open). Every replica on the database shares them.
//!
//! Rotation is something `credential-issuer keys rotate` can do while the server runs; the
//! server notices through [`Signer::reload`] (on a timer and on SIGHUP). The newest key, by
//! (created time, kid), signs. An older key stays published, and stored, until every token it
//! signed has expired: it was superseded (the next key was created) at least `retain` ago,
//! where `retain` is the longest token lifetime. The `kid` is the key's RFC 7638 thumbprint
//! (`jwks`), checked at every load, so a file or row cannot claim another key's id.
//!
//! [`jws`] is the crate's one JWS verifier, with the algorithm allow-list given by each caller:
//! the issuer's own tokens here, and the ID tokens of upstream providers
//! (`crate::upstream::id_token`), which is why it is public.

mod database;
mod directory;
mod jwks;
pub mod jws;
mod keyset;
mod rotation;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use credential_shared::oauth::{AccessTokenClaims, Jwks};
use ring::rand::SystemRandom;
use ring::signature::KeyPair as _;
use time::OffsetDateTime;

use crate::secrets::seal::{SealError, Sealer};
use crate::store::Store;
use keyset::KeySet;

pub use directory::{list, rotate};
pub use jwks::verify;
pub use rotation::{PUBLISH_BEFORE_SIGNING, RELOAD_EVERY};

/// The JWS algorithm of every token.
const ALG: &str = "ES256";
/// JWK key type of every key.
const KTY: &str = "EC";
/// JWK curve of every key.
const CRV: &str = "P-256";

/// Why a key could not be loaded, created or used, or a token not verified.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key directory could not be created.
    #[error("cannot create key directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The key directory could not be listed.
    #[error("cannot read key directory {}", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A key file could not be read.
    #[error("cannot read signing key {}", path.display())]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A new key file could not be written.
    #[error("cannot write signing key {}", path.display())]
    WriteKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A key file that no published key needs any more could not be deleted.
    #[error("cannot delete retired signing key {}", path.display())]
    RemoveKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A `.p8` file whose name is not `<unix seconds>-<kid>.p8`. It is an error rather than
    /// ignored so that a key the operator put there is not silently left unused.
    #[error("signing key file {} is not named <unix seconds>-<kid>.p8", path.display())]
    BadFileName {
        /// The file.
        path: PathBuf,
    },
    /// A key file that does not hold an ECDSA P-256 PKCS#8 key. `ring`'s rejection carries no
    /// `std::error::Error` (without its `std` feature), so its reason is kept as text; it never
    /// contains key material.
    #[error("signing key {} is not a valid ECDSA P-256 PKCS#8 key ({reason})", path.display())]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// `ring`'s reason.
        reason: String,
    },
    /// The kid in a key file's name is not the thumbprint of the key in it: the file was renamed
    /// or overwritten.
    #[error(
        "signing key {} does not match the kid in its file name (its kid is {kid})",
        path.display()
    )]
    KidMismatch {
        /// The file.
        path: PathBuf,
        /// The key's real kid.
        kid: String,
    },
    /// The key directory holds no key (on reload; [`Signer::open`] creates one).
    #[error("no signing key in {}", path.display())]
    NoKeys {
        /// The directory.
        path: PathBuf,
    },
    /// The database could not be read or written (database key source).
    #[error("cannot read or write the signing keys in the database")]
    Database(#[source] crate::store::Error),
    /// A key row does not open with the encryption key: it was altered, copied from another
    /// row, or sealed with another encryption key (the cause says which).
    #[error("cannot decrypt signing key {kid} from the database")]
    Unseal {
        /// The row's kid.
        kid: String,
        /// Why (never key material).
        #[source]
        source: SealError,
    },
    /// A key row opens but does not hold an ECDSA P-256 PKCS#8 key. `reason` is `ring`'s, and
    /// never contains key material.
    #[error("signing key {kid} in the database is not a valid ECDSA P-256 PKCS#8 key ({reason})")]
    InvalidStoredKey {
        /// The row's kid.
        kid: String,
        /// `ring`'s reason.
        reason: String,
    },
    /// A key row holds another key than its kid names.
    #[error("signing key {kid} in the database holds another key (its kid is {actual})")]
    StoredKidMismatch {
        /// The row's kid.
        kid: String,
        /// The key's real kid.
        actual: String,
    },
    /// The database holds no signing key (on reload; [`Signer::open_source`] creates one).
    #[error("no signing key in the database")]
    NoStoredKeys,
    /// A new key could not be sealed for the database.
    #[error("cannot encrypt a new signing key")]
    Seal(#[source] SealError),
    /// The system random number generator failed while generating a key.
    #[error("cannot generate a signing key: the system random number generator failed")]
    KeyGeneration,
    /// Signing failed; `ring` does not say why (in practice, the random number generator).
    #[error("cannot sign the token")]
    Sign,
    /// The token header or claims could not be serialized.
    #[error("cannot serialize the token")]
    SerializeClaims(#[source] serde_json::Error),
    /// Verification: the token is not a well-formed compact JWS.
    #[error("token is malformed: {reason}")]
    MalformedToken {
        /// What is wrong.
        reason: &'static str,
    },
    /// Verification: a token part is not base64url without padding.
    #[error("token {part} is not base64url")]
    Base64 {
        /// `header`, `payload` or `signature`.
        part: &'static str,
        /// The cause.
        #[source]
        source: base64::DecodeError,
    },
    /// Verification: the header is not JSON.
    #[error("token header is not JSON")]
    InvalidHeader(#[source] serde_json::Error),
    /// Verification: the header's `alg` is not `ES256` (this includes `none`).
    #[error("token algorithm {0:?} is not ES256")]
    UnsupportedAlgorithm(String),
    /// Verification: no key in the key set has the token's `kid`.
    #[error("token key id {0:?} is not in the key set")]
    UnknownKid(String),
    /// Verification: the key with the token's `kid` is not an EC P-256 key.
    #[error("key {0:?} in the key set is not an EC P-256 key")]
    InvalidJwk(String),
    /// Verification: the signature does not match.
    #[error("token signature is invalid")]
    BadSignature,
    /// Verification: the signature is good but the payload is not access token claims.
    #[error("token claims are invalid")]
    InvalidClaims(#[source] serde_json::Error),
}

impl From<jws::Error> for Error {
    // The wording of each verification failure, as this module has always reported it.
    fn from(e: jws::Error) -> Self {
        match e {
            jws::Error::NotThreeParts => Self::MalformedToken {
                reason: "not three dot-separated parts",
            },
            jws::Error::Base64 { part, source } => Self::Base64 { part, source },
            jws::Error::HeaderNotJson(source) => Self::InvalidHeader(source),
            jws::Error::HeaderNotObject => Self::MalformedToken {
                reason: "header is not a JSON object",
            },
            jws::Error::Algorithm(alg) => Self::UnsupportedAlgorithm(alg),
            jws::Error::CriticalHeader => Self::MalformedToken {
                reason: "header has critical extensions",
            },
            // Neither comes from this module's key lookups, which name the kid they miss and
            // only ever return P-256 keys for ES256; kept total rather than a panic.
            jws::Error::UnknownKey => Self::UnknownKid(String::new()),
            jws::Error::KeyMismatch | jws::Error::BadSignature => Self::BadSignature,
            jws::Error::Payload(source) => Self::InvalidClaims(source),
        }
    }
}

/// The issuer's tokens always name their key: a header without a `kid` is malformed.
fn required_kid(kid: Option<&str>) -> Result<&str, Error> {
    kid.ok_or(Error::MalformedToken {
        reason: "header has no kid",
    })
}

/// A stored key: a file on disk or a row in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The RFC 7638 thumbprint, the `kid` of tokens it signs.
    pub kid: String,
    /// When the key was added (whole seconds, from the file name or the row).
    pub created_at: OffsetDateTime,
    /// The file; `None` for a key in the database.
    pub path: Option<PathBuf>,
}

/// Where the signing keys are kept.
#[derive(Clone)]
pub enum KeySource {
    /// One file per key in this directory (`<data dir>/keys`): a single issuer.
    Directory(PathBuf),
    /// Rows of `signing_keys`, sealed with `sealer`: shared by every replica on the database.
    Database {
        /// The database.
        store: Store,
        /// The encryption key every replica shares (`encryption_key_file`).
        sealer: Arc<Sealer>,
    },
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(dir) => f.debug_tuple("Directory").field(dir).finish(),
            Self::Database { sealer, .. } => f
                .debug_struct("Database")
                .field("encryption_key_id", &sealer.key_id())
                .finish_non_exhaustive(),
        }
    }
}

impl fmt::Display for KeySource {
    // What an operator reads in the start banner.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(dir) => write!(f, "{}", dir.display()),
            Self::Database { sealer, .. } => {
                write!(f, "in the database, encrypted with key {}", sealer.key_id())
            }
        }
    }
}

impl KeySource {
    /// Adds a new key, which becomes the active one, and deletes the keys superseded at least
    /// `retain` ago. Returns the new key. What `keys rotate` does.
    pub async fn rotate(
        &self,
        now: OffsetDateTime,
        retain: std::time::Duration,
    ) -> Result<KeyInfo, Error> {
        match self {
            Self::Directory(dir) => rotate(dir, now, retain),
            Self::Database { store, sealer } => database::rotate(store, sealer, now, retain).await,
        }
    }

    /// The stored keys, oldest first. Every key is read and checked (decrypted, in the
    /// database), so a damaged one shows up here rather than at the next start.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        match self {
            Self::Directory(dir) => list(dir),
            Self::Database { store, sealer } => database::list(store, sealer).await,
        }
    }
}

/// Signs access tokens with the newest key of a [`KeySource`] and publishes the JWKS.
///
/// The key set sits behind a lock so that [`Signer::reload`] works through `&self` on a shared
/// `Signer`; readers clone the `Arc` and release the lock before signing.
pub struct Signer {
    source: KeySource,
    keys: RwLock<Arc<KeySet>>,
    rng: SystemRandom,
    /// Bumped whenever the key set changes, so that caches of verified tokens can drop what a
    /// removed key verified.
    generation: AtomicU64,
}

impl fmt::Debug for Signer {
    // Written by hand so that no key material can reach a log line: only ids are printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.current();
        let kids: Vec<&str> = keys.infos().map(|i| i.kid.as_str()).collect();
        f.debug_struct("Signer")
            .field("source", &self.source)
            .field("active_kid", &keys.active.info.kid)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads every key in `keys_dir`; creates the directory (mode 0700) and a first key (file
    /// mode 0600) if there is none.
    pub fn open(keys_dir: &Path, now: OffsetDateTime) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let keys = directory::open(keys_dir, &rng, now)?;
        Ok(Self::with(
            KeySource::Directory(keys_dir.to_owned()),
            keys,
            rng,
        ))
    }

    /// Loads every key of `source`, creating a first key if there is none (for a directory,
    /// as [`Signer::open`]).
    ///
    /// In the database, replicas starting together must not each sign with a "first" key of
    /// their own: the first key is inserted only into an empty table, and the table is read
    /// again afterwards, so every replica signs with what the table holds (its newest key by
    /// created time, then kid), whoever inserted it.
    pub async fn open_source(source: KeySource, now: OffsetDateTime) -> Result<Self, Error> {
        let (store, sealer) = match &source {
            KeySource::Directory(dir) => return Self::open(dir, now),
            KeySource::Database { store, sealer } => (store, sealer),
        };
        let rng = SystemRandom::new();
        let keys = database::open(store, sealer, &rng, now).await?;
        Ok(Self::with(source, keys, rng))
    }

    fn with(source: KeySource, keys: KeySet, rng: SystemRandom) -> Self {
        Self {
            source,
            keys: RwLock::new(Arc::new(keys)),
            rng,
            generation: AtomicU64::new(0),
        }
    }

    /// Where the keys come from.
    #[must_use]
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Signs `claims` as a compact JWS with header `{"alg":"ES256","typ":"JWT","kid":...}`,
    /// using the newest key.
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, Error> {
        let keys = self.current();
        jws::encode(&keys.active.pair, &keys.active.info.kid, claims, &self.rng)
    }

    /// The keys to publish: the active key first, then every older key superseded less than
    /// `retain` ago (a key is superseded when the next newer key is created), then the upcoming
    /// keys. `retain` is the longest token lifetime, so every unexpired token stays verifiable.
    #[must_use]
    pub fn jwks(&self, now: OffsetDateTime, retain: std::time::Duration) -> Jwks {
        let keys = self.current();
        Jwks {
            keys: keys.published(now, retain).map(|k| k.jwk.clone()).collect(),
        }
    }

    /// Re-reads the key source; `Ok(true)` if the key set changed. Run on a timer and on
    /// SIGHUP, so that `keys rotate` from the CLI or another replica is picked up without a
    /// restart.
    ///
    /// On error the current keys stay in use: a bad file dropped into the directory, or a
    /// damaged row, must not stop a running issuer from signing.
    pub async fn reload(&self, now: OffsetDateTime) -> Result<bool, Error> {
        let current = self.current();
        let changed = match &self.source {
            KeySource::Directory(dir) => directory::reload(dir, &current, &self.rng, now)?,
            KeySource::Database { store, sealer } => {
                database::reload(store, sealer, &current, &self.rng, now).await?
            }
        };
        let Some(keys) = changed else {
            return Ok(false);
        };
        // Debug only: the caller logs the change once, with its own context.
        tracing::debug!(
            active_kid = %keys.active.info.kid,
            keys = keys.previous.len() + 1 + keys.upcoming.len(),
            "signing key set changed"
        );
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(true)
    }

    /// Verifies a token signed by one of this issuer's keys, with no JWKS round trip: the key
    /// is looked up by kid among the loaded keys, and only a key that is still published (the
    /// active key, or an older one superseded less than `retain` ago, as in [`Signer::jwks`])
    /// is accepted. Checks the algorithm and the signature only; the caller checks the claims.
    pub fn verify(
        &self,
        token: &str,
        now: OffsetDateTime,
        retain: std::time::Duration,
    ) -> Result<AccessTokenClaims, Error> {
        let keys = self.current();
        jws::verify(token, &[jws::Algorithm::Es256], |_, kid| {
            let kid = required_kid(kid)?;
            // Upcoming keys are accepted too: another replica may sign with one already (its
            // reload came first).
            keys.published(now, retain)
                .find(|k| k.info.kid == kid)
                .map(|k| jws::PublicKey::P256(k.pair.public_key().as_ref()))
                .ok_or_else(|| Error::UnknownKid(jws::quote(kid)))
        })
    }

    /// Changes whenever [`Signer::reload`] changes the key set.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The kid of the key that signs now.
    #[must_use]
    pub fn active_kid(&self) -> String {
        self.current().active.info.kid.clone()
    }

    fn current(&self) -> Arc<KeySet> {
        // The lock only guards an `Arc` swap, so a poisoned lock still holds a consistent value.
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests;
