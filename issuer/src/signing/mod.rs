//! The keys that sign access tokens: ES256 keys on disk or in the database, their rotation,
//! the JWKS the API servers verify against, and JWS signing and verification.
//!
//! Keys come from a [`KeySource`]; only loading, creating and deleting differ between the two,
//! the key set, the choice of the signing key and the retention rule are shared:
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
//! where `retain` is the longest token lifetime. The `kid` is the key's RFC 7638 thumbprint,
//! checked at every load, so a file or row cannot claim another key's id.

mod jws;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use credential_shared::oauth::{AccessTokenClaims, Jwk, Jwks};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use time::OffsetDateTime;

use crate::secrets::seal::{SealError, Sealer};
use crate::secrets::secret::Secret;
use crate::store::{Store, StoredSigningKey};

pub use jws::verify;

/// How often the signing keys are re-read (so `keys rotate`, from the CLI or on another
/// replica, needs no restart). Shorter than any token lifetime.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The JWS algorithm of every token.
const ALG: &str = "ES256";
/// JWK key type of every key.
const KTY: &str = "EC";
/// JWK curve of every key.
const CRV: &str = "P-256";
/// Extension of key files; other files in the directory are ignored.
const KEY_EXTENSION: &str = ".p8";

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
            Self::Database { store, sealer } => rotate_database(store, sealer, now, retain).await,
        }
    }

    /// The stored keys, oldest first. Every key is read and checked (decrypted, in the
    /// database), so a damaged one shows up here rather than at the next start.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        match self {
            Self::Directory(dir) => list(dir),
            Self::Database { store, sealer } => {
                let rows = store.signing_keys().await.map_err(Error::Database)?;
                let rng = SystemRandom::new();
                rows.iter()
                    .map(|row| open_stored(row, sealer, &rng).map(|k| k.info))
                    .collect()
            }
        }
    }
}

/// A loaded key. Deliberately not `Debug`: it holds the private key.
struct Key {
    info: KeyInfo,
    pair: EcdsaKeyPair,
    jwk: Jwk,
}

/// The keys of a source at one moment. Keeping the active key apart makes "there is at least
/// one key" a property of the type.
struct KeySet {
    /// Superseded keys, oldest first.
    previous: Vec<Key>,
    /// The newest key whose time has come, the one that signs.
    active: Key,
    /// Keys created for a time still to come, oldest first: published (and accepted) already,
    /// signing from their created time (see [`PUBLISH_BEFORE_SIGNING`]).
    upcoming: Vec<Key>,
}

impl KeySet {
    /// The set of `keys` (oldest first) at `now`; `None` when there is none. The first key
    /// signs even if it was stamped in the future (there is nothing else to sign with).
    fn from_keys(mut keys: Vec<Key>, now: OffsetDateTime) -> Option<Self> {
        let mut upcoming = Vec::new();
        while keys.len() > 1 && keys.last().is_some_and(|k| k.info.created_at > now) {
            upcoming.extend(keys.pop());
        }
        upcoming.reverse();
        let active = keys.pop()?;
        Some(Self {
            previous: keys,
            active,
            upcoming,
        })
    }

    fn infos(&self) -> impl Iterator<Item = &KeyInfo> {
        self.previous
            .iter()
            .chain(std::iter::once(&self.active))
            .chain(&self.upcoming)
            .map(|k| &k.info)
    }

    /// Whether an upcoming key's time has come by `now` (the set must be rebuilt).
    fn due(&self, now: OffsetDateTime) -> bool {
        self.upcoming
            .first()
            .is_some_and(|k| k.info.created_at <= now)
    }
}

/// How far in the future `keys rotate` stamps a new key kept in the database: every replica
/// loads keys every [`RELOAD_EVERY`], so by the time any of them signs with
/// the new key, every replica has published it for at least one reload interval, and an API
/// server that meets the new `kid` and fetches the JWKS again finds it whichever replica
/// answers. (With a directory, one process rotates and reloads: the key signs at once.)
pub const PUBLISH_BEFORE_SIGNING: std::time::Duration = std::time::Duration::from_secs(20);

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
        create_dir(keys_dir)?;
        let rng = SystemRandom::new();
        let mut infos = scan(keys_dir)?;
        if infos.is_empty() {
            let (info, path) = write_new_key(keys_dir, unix_seconds(now), &rng)?;
            tracing::info!(
                kid = %info.kid,
                path = %path.display(),
                "created first signing key"
            );
            // Scan again rather than use `info`: another process may have raced us to it.
            infos = scan(keys_dir)?;
        }
        let keys = load_set(keys_dir, &infos, &rng, now)?;
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
        let mut rows = store.signing_keys().await.map_err(Error::Database)?;
        if rows.is_empty() {
            let (info, blob) = new_sealed_key(sealer, unix_seconds(now), &rng)?;
            let inserted = store
                .insert_first_signing_key(&info.kid, info.created_at, &blob)
                .await
                .map_err(Error::Database)?;
            if inserted {
                tracing::info!(kid = %info.kid, "created first signing key in the database");
            }
            rows = store.signing_keys().await.map_err(Error::Database)?;
        }
        let keys = open_rows(&rows, sealer, &rng, now)?;
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
        let superseded_at = keys
            .previous
            .iter()
            .skip(1)
            .chain(std::iter::once(&keys.active))
            .map(|k| k.info.created_at);
        let mut published: Vec<(&Key, OffsetDateTime)> =
            keys.previous.iter().zip(superseded_at).collect();
        published.retain(|(_, superseded_at)| !is_retired(*superseded_at, now, retain));
        Jwks {
            keys: std::iter::once(&keys.active)
                .chain(published.into_iter().rev().map(|(k, _)| k))
                .chain(&keys.upcoming)
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    /// Re-reads the key source; `Ok(true)` if the key set changed. Run on a timer and on
    /// SIGHUP, so that `keys rotate` from the CLI or another replica is picked up without a
    /// restart.
    ///
    /// On error the current keys stay in use: a bad file dropped into the directory, or a
    /// damaged row, must not stop a running issuer from signing.
    pub async fn reload(&self, now: OffsetDateTime) -> Result<bool, Error> {
        // Names and rows carry the kid, which is derived from the key and checked when it is
        // loaded, so an equal list of (kid, created) means equal keys and nothing is read or
        // decrypted.
        let keys = match &self.source {
            KeySource::Directory(dir) => {
                let infos = scan(dir)?;
                let current = self.current();
                if current.infos().eq(infos.iter()) && !current.due(now) {
                    return Ok(false);
                }
                load_set(dir, &infos, &self.rng, now)?
            }
            KeySource::Database { store, sealer } => {
                let rows = store.signing_keys().await.map_err(Error::Database)?;
                let current = self.current();
                let unchanged = current
                    .infos()
                    .map(|i| (i.kid.as_str(), i.created_at))
                    .eq(rows.iter().map(|r| (r.kid.as_str(), r.created_at)));
                if unchanged && !current.due(now) {
                    return Ok(false);
                }
                open_rows(&rows, sealer, &self.rng, now)?
            }
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
        jws::verify_with(token, |kid| {
            if keys.active.info.kid == kid {
                return Ok(keys.active.pair.public_key().as_ref());
            }
            // Another replica may sign with it already (its reload came first).
            if let Some(k) = keys.upcoming.iter().find(|k| k.info.kid == kid) {
                return Ok(k.pair.public_key().as_ref());
            }
            let superseded_at = keys
                .previous
                .iter()
                .skip(1)
                .chain(std::iter::once(&keys.active))
                .map(|k| k.info.created_at);
            keys.previous
                .iter()
                .zip(superseded_at)
                .find(|(k, _)| k.info.kid == kid)
                .filter(|(_, superseded_at)| !is_retired(*superseded_at, now, retain))
                .map(|(k, _)| k.pair.public_key().as_ref())
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

/// Adds a new key, which becomes the active one, and deletes key files superseded at least
/// `retain` ago. Returns the new key.
///
/// The new key is stamped at least one second after the newest existing key, so that it sorts
/// last (and so is active) even when two rotations happen within the same second.
pub fn rotate(
    keys_dir: &Path,
    now: OffsetDateTime,
    retain: std::time::Duration,
) -> Result<KeyInfo, Error> {
    create_dir(keys_dir)?;
    let mut infos = scan(keys_dir)?;
    let (new, path) = write_new_key(keys_dir, next_created(&infos, now), &SystemRandom::new())?;
    tracing::info!(kid = %new.kid, path = %path.display(), "created signing key");
    infos.push(new.clone());
    for old in retired(&infos, now, retain) {
        // Keys from `scan` always have a file.
        let Some(path) = &old.path else { continue };
        match fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(
                    kid = %old.kid,
                    path = %path.display(),
                    "deleted retired signing key"
                );
            }
            // A concurrent rotation got there first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::RemoveKey {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
    Ok(new)
}

/// [`rotate`] for keys in the database.
async fn rotate_database(
    store: &Store,
    sealer: &Sealer,
    now: OffsetDateTime,
    retain: std::time::Duration,
) -> Result<KeyInfo, Error> {
    let rows = store.signing_keys().await.map_err(Error::Database)?;
    let mut infos: Vec<KeyInfo> = rows.iter().map(row_info).collect();
    let publish_first = now + PUBLISH_BEFORE_SIGNING;
    let (new, blob) = new_sealed_key(
        sealer,
        next_created(&infos, publish_first),
        &SystemRandom::new(),
    )?;
    store
        .insert_signing_key(&new.kid, new.created_at, &blob)
        .await
        .map_err(Error::Database)?;
    tracing::info!(kid = %new.kid, "created signing key in the database");
    infos.push(new.clone());
    for old in retired(&infos, now, retain) {
        // `false`: a concurrent rotation got there first.
        if store
            .delete_signing_key(&old.kid)
            .await
            .map_err(Error::Database)?
        {
            tracing::info!(kid = %old.kid, "deleted retired signing key from the database");
        }
    }
    Ok(new)
}

/// The created time of a new key: now, but at least one second after the newest key, so that
/// it sorts last (and so is active) even when two rotations happen within the same second.
fn next_created(infos: &[KeyInfo], now: OffsetDateTime) -> i64 {
    match infos.last() {
        Some(newest) => unix_seconds(now).max(newest.created_at.unix_timestamp().saturating_add(1)),
        None => unix_seconds(now),
    }
}

/// The keys (of `infos`, oldest first) that [`is_retired`]: no longer published, so deleted.
fn retired(
    infos: &[KeyInfo],
    now: OffsetDateTime,
    retain: std::time::Duration,
) -> impl Iterator<Item = &KeyInfo> {
    infos.windows(2).filter_map(move |pair| match pair {
        [old, next] if is_retired(next.created_at, now, retain) => Some(old),
        _ => None,
    })
}

/// The keys on disk, oldest first. Every file is read and checked, so a corrupt key shows up
/// here rather than at the next start.
pub fn list(keys_dir: &Path) -> Result<Vec<KeyInfo>, Error> {
    let infos = scan(keys_dir)?;
    let rng = SystemRandom::new();
    for info in &infos {
        load_key(info, &rng)?;
    }
    Ok(infos)
}

/// Whether a key superseded at `superseded_at` can no longer have signed an unexpired token.
/// One rule for both publishing and deleting, so that a key file exists exactly as long as the
/// key may be published.
fn is_retired(
    superseded_at: OffsetDateTime,
    now: OffsetDateTime,
    retain: std::time::Duration,
) -> bool {
    now - superseded_at >= retain
}

fn unix_seconds(t: OffsetDateTime) -> i64 {
    // Key file names have no sign; a clock before 1970 is not worth an error of its own.
    t.unix_timestamp().max(0)
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    crate::secrets::private_file::create_private_dir(dir).map_err(|source| Error::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

/// The key files in `dir`, ordered by creation time and then file name, without reading them.
fn scan(dir: &Path) -> Result<Vec<KeyInfo>, Error> {
    let read_dir_error = |source| Error::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let mut infos = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let entry = entry.map_err(read_dir_error)?;
        let name = entry.file_name();
        // Not ours: other files, temporary files (dot-prefixed), non-UTF-8 names.
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(KEY_EXTENSION) {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, as in a mounted Kubernetes Secret.
        let metadata = fs::metadata(&path).map_err(|source| Error::ReadKey {
            path: path.clone(),
            source,
        })?;
        if !metadata.is_file() {
            continue;
        }
        let Some((created_at, kid)) = parse_file_name(name) else {
            return Err(Error::BadFileName { path });
        };
        infos.push(KeyInfo {
            kid,
            created_at,
            path: Some(path),
        });
    }
    infos.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.path.cmp(&b.path))
    });
    Ok(infos)
}

/// Parses `<unix seconds>-<kid>.p8`.
fn parse_file_name(name: &str) -> Option<(OffsetDateTime, String)> {
    let (seconds, kid) = name.strip_suffix(KEY_EXTENSION)?.split_once('-')?;
    if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let is_base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if kid.is_empty() || !kid.bytes().all(is_base64url) {
        return None;
    }
    let created_at = OffsetDateTime::from_unix_timestamp(seconds.parse().ok()?).ok()?;
    Some((created_at, kid.to_owned()))
}

fn load_set(
    dir: &Path,
    infos: &[KeyInfo],
    rng: &SystemRandom,
    now: OffsetDateTime,
) -> Result<KeySet, Error> {
    let keys = infos
        .iter()
        .map(|info| load_key(info, rng))
        .collect::<Result<Vec<_>, _>>()?;
    KeySet::from_keys(keys, now).ok_or_else(|| Error::NoKeys {
        path: dir.to_owned(),
    })
}

fn load_key(info: &KeyInfo, rng: &SystemRandom) -> Result<Key, Error> {
    // Keys from `scan` always have a file.
    let path = info.path.clone().unwrap_or_default();
    let der = fs::read(&path).map_err(|source| Error::ReadKey {
        path: path.clone(),
        source,
    })?;
    key_from_der(info, &der, rng).map_err(|problem| match problem {
        KeyProblem::Invalid(reason) => Error::InvalidKey { path, reason },
        KeyProblem::KidMismatch(kid) => Error::KidMismatch { path, kid },
    })
}

/// What is wrong with a stored key's bytes; the caller names the file or row.
enum KeyProblem {
    /// Not an ECDSA P-256 PKCS#8 key (`ring`'s reason).
    Invalid(String),
    /// A valid key, whose kid (given) is not the stored one.
    KidMismatch(String),
}

/// Parses PKCS#8 DER and checks that the key is the one `info` names.
fn key_from_der(info: &KeyInfo, der: &[u8], rng: &SystemRandom) -> Result<Key, KeyProblem> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, rng)
        .map_err(|e| KeyProblem::Invalid(e.to_string()))?;
    let jwk = jwk_of(&pair)
        .ok_or_else(|| KeyProblem::Invalid("unexpected public key encoding".into()))?;
    if jwk.kid != info.kid {
        return Err(KeyProblem::KidMismatch(jwk.kid));
    }
    Ok(Key {
        info: info.clone(),
        pair,
        jwk,
    })
}

/// A new key: its PKCS#8 DER and its kid.
fn generate(rng: &SystemRandom) -> Result<(ring::pkcs8::Document, String), Error> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|_| Error::KeyGeneration)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .map_err(|_| Error::KeyGeneration)?;
    let kid = jwk_of(&pair).ok_or(Error::KeyGeneration)?.kid;
    Ok((pkcs8, kid))
}

/// Generates a key and writes it as `<created>-<kid>.p8`; returns it and its file.
fn write_new_key(
    dir: &Path,
    created: i64,
    rng: &SystemRandom,
) -> Result<(KeyInfo, PathBuf), Error> {
    let (pkcs8, kid) = generate(rng)?;
    let created_at =
        OffsetDateTime::from_unix_timestamp(created).map_err(|_| Error::KeyGeneration)?;
    // The kid in the name makes names unique, so a new key never replaces an existing file.
    let path = dir.join(format!("{created:012}-{kid}{KEY_EXTENSION}"));
    crate::secrets::private_file::write(
        &path,
        pkcs8.as_ref(),
        crate::secrets::private_file::PRIVATE_FILE_MODE,
    )
    .map_err(|source| Error::WriteKey {
        path: path.clone(),
        source,
    })?;
    let info = KeyInfo {
        kid,
        created_at,
        path: Some(path.clone()),
    };
    Ok((info, path))
}

/// The context a key row is sealed under: its kid and created time, so that a sealed key
/// copied into another row (or given another time, which would change which key signs) does
/// not open.
fn key_context(kid: &str, created_at: OffsetDateTime) -> String {
    format!("signing-key:{kid}:{}", created_at.unix_timestamp())
}

/// Generates a key for the database: its info and its sealed PKCS#8 DER (the sealed text's
/// bytes; the DER is base64-encoded first because sealed values are text).
fn new_sealed_key(
    sealer: &Sealer,
    created: i64,
    rng: &SystemRandom,
) -> Result<(KeyInfo, Vec<u8>), Error> {
    let (pkcs8, kid) = generate(rng)?;
    let created_at =
        OffsetDateTime::from_unix_timestamp(created).map_err(|_| Error::KeyGeneration)?;
    let plain = Secret::new(STANDARD.encode(pkcs8.as_ref()));
    let text = sealer
        .seal(&plain, &key_context(&kid, created_at))
        .map_err(Error::Seal)?;
    let info = KeyInfo {
        kid,
        created_at,
        path: None,
    };
    Ok((info, text.into_bytes()))
}

fn row_info(row: &StoredSigningKey) -> KeyInfo {
    KeyInfo {
        kid: row.kid.clone(),
        created_at: row.created_at,
        path: None,
    }
}

/// Decrypts and checks one key row.
fn open_stored(row: &StoredSigningKey, sealer: &Sealer, rng: &SystemRandom) -> Result<Key, Error> {
    let unseal = |source| Error::Unseal {
        kid: row.kid.clone(),
        source,
    };
    let text = std::str::from_utf8(&row.sealed_key).map_err(|_| unseal(SealError::Corrupt))?;
    let plain = sealer
        .open(text, &key_context(&row.kid, row.created_at))
        .map_err(unseal)?;
    let der = STANDARD
        .decode(plain.expose())
        .map_err(|_| unseal(SealError::Corrupt))?;
    drop(plain);
    key_from_der(&row_info(row), &der, rng).map_err(|problem| match problem {
        KeyProblem::Invalid(reason) => Error::InvalidStoredKey {
            kid: row.kid.clone(),
            reason,
        },
        KeyProblem::KidMismatch(actual) => Error::StoredKidMismatch {
            kid: row.kid.clone(),
            actual,
        },
    })
}

/// The key set of the rows (oldest first), each decrypted and checked.
fn open_rows(
    rows: &[StoredSigningKey],
    sealer: &Sealer,
    rng: &SystemRandom,
    now: OffsetDateTime,
) -> Result<KeySet, Error> {
    let keys = rows
        .iter()
        .map(|row| open_stored(row, sealer, rng))
        .collect::<Result<Vec<_>, _>>()?;
    KeySet::from_keys(keys, now).ok_or(Error::NoStoredKeys)
}

/// The public JWK of a key, with its RFC 7638 thumbprint as `kid`. `None` if the public key is
/// not an uncompressed P-256 point, which `ring` never produces for this algorithm.
fn jwk_of(pair: &EcdsaKeyPair) -> Option<Jwk> {
    let [0x04, point @ ..] = pair.public_key().as_ref() else {
        return None;
    };
    if point.len() != 64 {
        return None;
    }
    let (x, y) = point.split_at(32);
    let x = URL_SAFE_NO_PAD.encode(x);
    let y = URL_SAFE_NO_PAD.encode(y);
    // RFC 7638 section 3.2: the required members only, in lexicographic order, no whitespace.
    // Every value is plain ASCII without characters JSON escapes, so formatting is exact.
    let canonical = format!(r#"{{"crv":"{CRV}","kty":"{KTY}","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ));
    Some(Jwk {
        kty: KTY.to_owned(),
        crv: CRV.to_owned(),
        x,
        y,
        kid,
        use_: "sig".to_owned(),
        alg: ALG.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
    /// After every time these tests stamp a key with: every key's time has come.
    const LATER: OffsetDateTime = time::macros::datetime!(2100-01-01 00:00 UTC);
    const HOUR: Duration = Duration::from_secs(3600);

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            grants: Vec::new(),
            upstream_checked_at: None,
            iss: "https://issuer.test".into(),
            sub: "user-1".into(),
            aud: "prod".into(),
            iat: 1_735_689_600,
            nbf: 1_735_689_600,
            exp: 1_735_690_200,
            jti: "jti-1".into(),
            preferred_username: "alice".into(),
            email: Some("alice@example.test".into()),
            groups: vec!["admins".into()],
            cluster: Some("prod".into()),
            sid: None,
        }
    }

    fn json(claims: &AccessTokenClaims) -> serde_json::Value {
        serde_json::to_value(claims).unwrap_or_else(|e| panic!("claims to json: {e}"))
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn open(dir: &Path, now: OffsetDateTime) -> Signer {
        Signer::open(dir, now).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
    }

    fn rotate_ok(dir: &Path, now: OffsetDateTime) -> KeyInfo {
        rotate(dir, now, HOUR).unwrap_or_else(|e| panic!("rotate: {e}"))
    }

    fn file(key: &KeyInfo) -> &Path {
        key.path
            .as_deref()
            .unwrap_or_else(|| panic!("key {} has no file", key.kid))
    }

    fn kids(jwks: &Jwks) -> Vec<&str> {
        jwks.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    fn b64_json(part: &str) -> serde_json::Value {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .unwrap_or_else(|e| panic!("base64 {part}: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("json {part}: {e}"))
    }

    fn parts(token: &str) -> [&str; 3] {
        let parts: Vec<&str> = token.split('.').collect();
        parts
            .try_into()
            .unwrap_or_else(|p| panic!("not three parts: {p:?}"))
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let tmp = tempdir();
        let signer = open(&tmp.path().join("keys"), T0);
        let token = signer
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));

        let [header, _, signature] = parts(&token);
        assert_eq!(
            b64_json(header),
            serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": signer.active_kid()})
        );
        // JWS wants the fixed r || s encoding, not DER.
        assert_eq!(
            URL_SAFE_NO_PAD.decode(signature).map(|s| s.len()).ok(),
            Some(64)
        );

        let jwks = signer.jwks(T0, HOUR);
        let got = verify(&jwks, &token).unwrap_or_else(|e| panic!("verify: {e}"));
        assert_eq!(json(&got), json(&claims()));
    }

    #[test]
    fn jwk_is_p256_with_rfc7638_thumbprint_as_kid() {
        let tmp = tempdir();
        let signer = open(tmp.path(), T0);
        let jwks = signer.jwks(T0, HOUR);
        let [jwk] = jwks.keys.as_slice() else {
            panic!("expected one key, got {jwks:?}")
        };
        assert_eq!(
            (
                jwk.kty.as_str(),
                jwk.crv.as_str(),
                jwk.alg.as_str(),
                jwk.use_.as_str()
            ),
            ("EC", "P-256", "ES256", "sig")
        );
        for coordinate in [&jwk.x, &jwk.y] {
            assert_eq!(
                URL_SAFE_NO_PAD.decode(coordinate).map(|c| c.len()).ok(),
                Some(32)
            );
        }
        let canonical = serde_json::json!({"crv": jwk.crv, "kty": jwk.kty, "x": jwk.x, "y": jwk.y});
        // serde_json's map is ordered by key, which is the order RFC 7638 wants.
        let canonical = serde_json::to_string(&canonical).unwrap_or_default();
        let thumbprint = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        assert_eq!(jwk.kid, URL_SAFE_NO_PAD.encode(thumbprint));
        assert_eq!(jwk.kid.len(), 43, "full SHA-256, not truncated");
        assert_eq!(jwk.kid, signer.active_kid());
    }

    #[test]
    fn verify_rejects_tampering_unknown_kids_and_other_algorithms() {
        let tmp = tempdir();
        let signer = open(&tmp.path().join("a"), T0);
        let jwks = signer.jwks(T0, HOUR);
        let token = signer
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));
        let [header, _, signature] = parts(&token);

        let mut forged = claims();
        forged.groups = vec!["system:masters".into()];
        let forged_payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
        let tampered = format!("{header}.{forged_payload}.{signature}");
        assert!(matches!(verify(&jwks, &tampered), Err(Error::BadSignature)));

        let other = open(&tmp.path().join("b"), T0);
        let other_token = other
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));
        let err = verify(&jwks, &other_token);
        assert!(
            matches!(&err, Err(Error::UnknownKid(k)) if *k == other.active_kid()),
            "{err:?}"
        );

        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap_or_default());
        for alg in ["none", "HS256", "RS256", "ES384"] {
            let header = URL_SAFE_NO_PAD.encode(
                serde_json::json!({"alg": alg, "typ": "JWT", "kid": signer.active_kid()})
                    .to_string(),
            );
            for sig in ["", signature] {
                let token = format!("{header}.{payload}.{sig}");
                let err = verify(&jwks, &token);
                assert!(
                    matches!(&err, Err(Error::UnsupportedAlgorithm(a)) if a == alg),
                    "alg {alg}: {err:?}"
                );
            }
        }

        for malformed in ["", "a.b", "a.b.c.d", &format!("{token}.")] {
            assert!(verify(&jwks, malformed).is_err(), "{malformed:?} accepted");
        }
        // Padding is not base64url as JWS defines it.
        assert!(matches!(
            verify(&jwks, &format!("{token}=")),
            Err(Error::Base64 {
                part: "signature",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn rotate_activates_the_new_key_and_retires_the_old_one_after_retain() {
        let tmp = tempdir();
        let dir = tmp.path();
        let signer = open(dir, T0);
        let first = signer.active_kid();
        let old_token = signer
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));

        let t1 = T0 + Duration::from_secs(60);
        let second = rotate_ok(dir, t1);
        assert!(signer
            .reload(LATER)
            .await
            .unwrap_or_else(|e| panic!("reload: {e}")));
        assert_eq!(signer.active_kid(), second.kid);
        assert_ne!(second.kid, first);

        // Within `retain` of the rotation both keys are published, active first, and a token
        // signed by the old key still verifies.
        let jwks = signer.jwks(t1 + HOUR - Duration::from_secs(1), HOUR);
        assert_eq!(kids(&jwks), [second.kid.as_str(), first.as_str()]);
        assert!(verify(&jwks, &old_token).is_ok());
        // Once `retain` has passed, the old key is gone.
        let jwks = signer.jwks(t1 + HOUR, HOUR);
        assert_eq!(kids(&jwks), [second.kid.as_str()]);
        assert!(matches!(
            verify(&jwks, &old_token),
            Err(Error::UnknownKid(_))
        ));

        // A rotation within `retain` keeps the superseded key's file; a later one deletes the
        // files of keys retired by then.
        let third = rotate_ok(dir, t1 + Duration::from_secs(60));
        let on_disk: Vec<String> = list(dir)
            .unwrap_or_else(|e| panic!("list: {e}"))
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(
            on_disk,
            [first.clone(), second.kid.clone(), third.kid.clone()]
        );
        let fourth = rotate_ok(dir, t1 + Duration::from_secs(60) + HOUR);
        let on_disk: Vec<String> = list(dir)
            .unwrap_or_else(|e| panic!("list: {e}"))
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(on_disk, [third.kid.clone(), fourth.kid.clone()]);
    }

    #[tokio::test]
    async fn signer_verifies_with_its_loaded_keys_including_retained_old_ones() {
        let tmp = tempdir();
        let dir = tmp.path();
        let signer = open(dir, T0);
        let old_token = signer
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));
        let got = signer
            .verify(&old_token, T0, HOUR)
            .unwrap_or_else(|e| panic!("verify: {e}"));
        assert_eq!(json(&got), json(&claims()));

        let t1 = T0 + Duration::from_secs(60);
        rotate_ok(dir, t1);
        assert!(signer
            .reload(LATER)
            .await
            .unwrap_or_else(|e| panic!("reload: {e}")));
        let new_token = signer
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));
        // The superseded key verifies for `retain` after the rotation, then no more.
        let late = t1 + HOUR - Duration::from_secs(1);
        assert!(signer.verify(&old_token, late, HOUR).is_ok());
        assert!(matches!(
            signer.verify(&old_token, t1 + HOUR, HOUR),
            Err(Error::UnknownKid(_))
        ));
        assert!(signer.verify(&new_token, t1 + HOUR, HOUR).is_ok());

        // Another issuer's token and a tampered one are refused.
        let other = open(&tmp.path().join("other"), T0);
        let foreign = other
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));
        assert!(matches!(
            signer.verify(&foreign, t1, HOUR),
            Err(Error::UnknownKid(_))
        ));
        let [header, _, signature] = parts(&new_token);
        let mut forged = claims();
        forged.preferred_username = "admin".into();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
        assert!(matches!(
            signer.verify(&format!("{header}.{forged}.{signature}"), t1, HOUR),
            Err(Error::BadSignature)
        ));
    }

    #[tokio::test]
    async fn reload_picks_up_a_rotation_by_another_process() {
        let tmp = tempdir();
        let dir = tmp.path().join("keys");
        let signer = open(&dir, T0);
        assert!(!signer
            .reload(LATER)
            .await
            .unwrap_or_else(|e| panic!("reload: {e}")));

        let new = rotate_ok(&dir, T0 + HOUR);
        assert!(signer
            .reload(LATER)
            .await
            .unwrap_or_else(|e| panic!("reload: {e}")));
        assert_eq!(signer.active_kid(), new.kid);
        assert!(!signer
            .reload(LATER)
            .await
            .unwrap_or_else(|e| panic!("reload: {e}")));

        let token = signer
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));
        let [header, ..] = parts(&token);
        assert_eq!(b64_json(header)["kid"], new.kid.as_str());
        assert!(verify(&signer.jwks(T0 + HOUR, HOUR), &token).is_ok());
    }

    #[tokio::test]
    async fn rotations_within_one_second_stay_ordered() {
        let tmp = tempdir();
        let dir = tmp.path();
        let signer = open(dir, T0);
        let a = rotate_ok(dir, T0);
        let b = rotate_ok(dir, T0);
        assert!(b.created_at > a.created_at && a.created_at > T0);
        let on_disk = list(dir).unwrap_or_else(|e| panic!("list: {e}"));
        assert_eq!(on_disk.len(), 3);
        assert_eq!(on_disk.last().map(|k| &k.kid), Some(&b.kid));
        assert!(signer
            .reload(LATER)
            .await
            .unwrap_or_else(|e| panic!("reload: {e}")));
        assert_eq!(signer.active_kid(), b.kid);
    }

    #[test]
    fn open_reuses_existing_keys_and_ignores_unrelated_files() {
        let tmp = tempdir();
        let dir = tmp.path();
        let first = open(dir, T0).active_kid();
        for (name, contents) in [("README", "hello"), (".x.p8.0123.tmp", "half a key")] {
            fs::write(dir.join(name), contents).unwrap_or_else(|e| panic!("write {name}: {e}"));
        }
        fs::create_dir(dir.join("sub.p8")).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let again = open(dir, T0 + HOUR);
        assert_eq!(again.active_kid(), first);
        assert_eq!(list(dir).map(|l| l.len()).ok(), Some(1));
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempdir();
        let dir = tmp.path().join("keys");
        let _signer = open(&dir, T0);
        rotate_ok(&dir, T0 + HOUR);
        let mode = |p: &Path| {
            let metadata = fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
            metadata.permissions().mode() & 0o777
        };
        assert_eq!(mode(&dir), 0o700);
        let keys = list(&dir).unwrap_or_else(|e| panic!("list: {e}"));
        assert_eq!(keys.len(), 2);
        for key in keys {
            let path = file(&key);
            assert_eq!(mode(path), 0o600, "{}", path.display());
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            assert_eq!(
                name,
                format!("{:012}-{}.p8", key.created_at.unix_timestamp(), key.kid)
            );
        }
    }

    #[test]
    fn debug_prints_no_key_material() {
        let tmp = tempdir();
        let signer = open(tmp.path(), T0);
        let debug = format!("{signer:?}");
        assert!(debug.contains(&signer.active_kid()), "{debug}");
        let keys = list(tmp.path()).unwrap_or_else(|e| panic!("list: {e}"));
        let der = keys
            .first()
            .map(|k| fs::read(file(k)).unwrap_or_default())
            .unwrap_or_default();
        assert!(der.len() > 100, "key file is PKCS#8 DER");
        let hex = der.iter().fold(String::new(), |mut hex, b| {
            let _ = std::fmt::Write::write_fmt(&mut hex, format_args!("{b:02x}"));
            hex
        });
        let standard = base64::engine::general_purpose::STANDARD.encode(&der);
        let bytes = format!("{:?}", &der[..]);
        let inner = bytes.trim_start_matches('[').trim_end_matches(']');
        for encoded in [
            hex.as_str(),
            &standard,
            &URL_SAFE_NO_PAD.encode(&der),
            inner,
        ] {
            assert!(!debug.contains(encoded), "{debug}");
        }
    }

    #[tokio::test]
    async fn a_corrupt_key_file_is_an_error_naming_it() {
        let tmp = tempdir();
        let dir = tmp.path();
        let signer = open(dir, T0);
        let corrupt = dir.join("000000000001-AAAA.p8");
        fs::write(&corrupt, b"not a key").unwrap_or_else(|e| panic!("write: {e}"));

        let err = Signer::open(dir, T0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&corrupt.display().to_string()), "{err}");
        // A running signer keeps its keys when a reload fails.
        let err = signer
            .reload(LATER)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&corrupt.display().to_string()), "{err}");
        assert!(signer.sign(&claims()).is_ok());
        let err = list(dir).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(&corrupt.display().to_string()), "{err}");

        // A real key under another key's name, and a badly named key, are errors too.
        fs::remove_file(&corrupt).unwrap_or_else(|e| panic!("rm: {e}"));
        let real = file(&list(dir).unwrap_or_default().remove(0)).to_owned();
        for name in ["000000000001-AAAA.p8", "mykey.p8"] {
            let path = dir.join(name);
            fs::copy(&real, &path).unwrap_or_else(|e| panic!("cp: {e}"));
            let err = Signer::open(dir, T0)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(&path.display().to_string()), "{err}");
            fs::remove_file(&path).unwrap_or_else(|e| panic!("rm: {e}"));
        }
    }

    #[test]
    fn signer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Signer>();
    }

    // Keys in the database.

    fn database(store: &Store, key: u8) -> KeySource {
        KeySource::Database {
            store: store.clone(),
            sealer: Arc::new(Sealer::from_key(&[key; 32])),
        }
    }

    async fn open_db(source: &KeySource, now: OffsetDateTime) -> Signer {
        Signer::open_source(source.clone(), now)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"))
    }

    async fn rows(store: &Store) -> Vec<StoredSigningKey> {
        store
            .signing_keys()
            .await
            .unwrap_or_else(|e| panic!("rows: {e}"))
    }

    fn config(dir: &Path) -> crate::config::Config {
        crate::config::Config::from_parts(
            crate::config::FileConfig::default(),
            &crate::config::Overrides::default(),
            || Some(dir.to_owned()),
        )
        .unwrap_or_else(|e| panic!("config: {e}"))
    }

    #[tokio::test]
    async fn two_signers_on_one_database_see_a_rotation_by_the_cli() {
        let (store, dir) = crate::store::test_support::temp_store().await;
        let source = database(&store, 7);
        let a = open_db(&source, T0).await;
        let b = open_db(&source, T0).await;
        assert_eq!(a.active_kid(), b.active_kid());
        assert_eq!(rows(&store).await.len(), 1, "one first key, not one each");
        assert!(!dir.path().join("keys").exists(), "no key files");
        let old_token = a.sign(&claims()).unwrap_or_else(|e| panic!("sign: {e}"));
        let (gen_a, gen_b) = (a.generation(), b.generation());

        let config = config(dir.path());
        let t1 = T0 + Duration::from_secs(60);
        let new = crate::service::admin::rotate_keys(&source, &config, t1)
            .await
            .unwrap_or_else(|e| panic!("rotate: {e}"));
        assert_eq!(new.path, None);
        for signer in [&a, &b] {
            assert!(signer
                .reload(LATER)
                .await
                .unwrap_or_else(|e| panic!("reload: {e}")));
            assert_eq!(signer.active_kid(), new.kid);
            assert!(!signer
                .reload(LATER)
                .await
                .unwrap_or_else(|e| panic!("reload: {e}")));
        }
        assert_ne!(a.generation(), gen_a, "the webhook's token cache drops");
        assert_ne!(b.generation(), gen_b);

        let retain = config.key_retention();
        let jwks = |s: &Signer| serde_json::to_value(s.jwks(t1, retain)).unwrap_or_default();
        assert_eq!(jwks(&a), jwks(&b));
        assert_eq!(
            kids(&a.jwks(t1, retain)).len(),
            2,
            "the old key stays published"
        );
        let new_token = b.sign(&claims()).unwrap_or_else(|e| panic!("sign: {e}"));
        for token in [&old_token, &new_token] {
            assert!(a.verify(token, t1, retain).is_ok());
            assert!(b.verify(token, t1, retain).is_ok());
        }

        let listed = crate::service::admin::list_keys(&source)
            .await
            .unwrap_or_else(|e| panic!("list: {e}"));
        let listed: Vec<&str> = listed.iter().map(|k| k.kid.as_str()).collect();
        let old_kid = kids(&a.jwks(t1, retain))[1].to_owned();
        assert_eq!(listed, [old_kid.as_str(), new.kid.as_str()]);

        // A rotation once `retain` has passed since the new key began to sign deletes the
        // retired key's row.
        let newest = crate::service::admin::rotate_keys(
            &source,
            &config,
            t1 + PUBLISH_BEFORE_SIGNING + retain,
        )
        .await
        .unwrap_or_else(|e| panic!("rotate: {e}"));
        let left: Vec<String> = rows(&store).await.into_iter().map(|r| r.kid).collect();
        assert_eq!(left, [new.kid.clone(), newest.kid.clone()]);
        assert!(a
            .reload(LATER)
            .await
            .unwrap_or_else(|e| panic!("reload: {e}")));
        assert_eq!(a.active_kid(), newest.kid);
    }

    /// Replicas reload at different moments: a rotated key is published by every replica
    /// before any of them signs with it, and every replica accepts it meanwhile.
    #[tokio::test]
    async fn a_rotated_database_key_is_published_before_it_signs() {
        let (store, dir) = crate::store::test_support::temp_store().await;
        let source = database(&store, 7);
        let (early, late) = (open_db(&source, T0).await, open_db(&source, T0).await);
        let old = early.active_kid();
        let config = config(dir.path());
        let retain = config.key_retention();
        let t1 = T0 + HOUR;
        let new = crate::service::admin::rotate_keys(&source, &config, t1)
            .await
            .unwrap_or_else(|e| panic!("rotate: {e}"));
        // Both reload right after the rotation: they publish the new key, still sign with the old.
        for s in [&early, &late] {
            assert!(s.reload(t1).await.unwrap_or_else(|e| panic!("reload: {e}")));
            assert_eq!(s.active_kid(), old);
            assert!(kids(&s.jwks(t1, retain)).contains(&new.kid.as_str()));
        }
        // `early` reloads once the new key's time has come and signs with it; `late` has not
        // reloaded yet, still signs with the old key, and accepts tokens of the new one.
        let due = t1 + PUBLISH_BEFORE_SIGNING;
        assert!(early
            .reload(due)
            .await
            .unwrap_or_else(|e| panic!("reload: {e}")));
        assert_eq!(early.active_kid(), new.kid);
        let token = early
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));
        assert_eq!(late.active_kid(), old);
        assert!(late.verify(&token, due, retain).is_ok());
        // Nothing changes before the time (no rebuild on every reload), then `late` switches.
        assert!(!late
            .reload(t1 + Duration::from_secs(1))
            .await
            .unwrap_or(true));
        assert!(late
            .reload(due)
            .await
            .unwrap_or_else(|e| panic!("reload: {e}")));
        assert_eq!(late.active_kid(), new.kid);
    }

    /// Asserts that loading fails for key `kid` with an error saying so, which shows no key
    /// material, and that a running signer keeps its keys.
    async fn assert_refused(source: &KeySource, running: &Signer, kid: &str, secrets: &[String]) {
        let err = Signer::open_source(source.clone(), T0)
            .await
            .err()
            .unwrap_or_else(|| panic!("a damaged key row was accepted"));
        let text = format!("{err} / {:?} / {:?}", std::error::Error::source(&err), err);
        assert!(text.contains(kid), "{text}");
        assert!(text.contains("database"), "{text}");
        for secret in secrets {
            assert!(!text.contains(secret.as_str()), "key material in {text}");
        }
        // A running signer read these rows before, when they were sound: the same kids and
        // times are not decrypted again, and it keeps signing.
        assert!(matches!(running.reload(LATER).await, Ok(false)));
        assert!(running.sign(&claims()).is_ok(), "keeps signing");
        assert!(source.list().await.is_err(), "keys list shows it too");
    }

    #[tokio::test]
    async fn a_tampered_or_moved_key_row_is_refused() {
        let (store, _dir) = crate::store::test_support::temp_store().await;
        let source = database(&store, 7);
        let signer = open_db(&source, T0).await;
        source
            .rotate(T0 + HOUR, HOUR)
            .await
            .unwrap_or_else(|e| panic!("rotate: {e}"));
        let original = rows(&store).await;
        let [a, b] = original.as_slice() else {
            panic!("expected two keys, got {original:?}")
        };
        let sealer = Sealer::from_key(&[7; 32]);
        let der_b64 = |row: &StoredSigningKey| {
            let text = std::str::from_utf8(&row.sealed_key).unwrap_or_default();
            sealer
                .open(text, &key_context(&row.kid, row.created_at))
                .map_or_else(|e| panic!("open: {e}"), |s| s.expose().to_owned())
        };
        // What must never appear in an error: the sealed text, and the key in the encodings a
        // careless message might use.
        let mut secrets = Vec::new();
        for row in [a, b] {
            let der = STANDARD.decode(der_b64(row)).unwrap_or_default();
            assert!(der.len() > 100);
            secrets.push(String::from_utf8_lossy(&row.sealed_key).into_owned());
            secrets.push(der_b64(row));
            secrets.push(URL_SAFE_NO_PAD.encode(&der));
            secrets.push(crate::secrets::secret::hex(&der));
        }
        assert!(signer.reload(LATER).await.unwrap_or_else(|e| panic!("{e}")));

        // One byte altered.
        let mut altered = a.sealed_key.clone();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        store
            .set_sealed_signing_key_for_tests(&a.kid, &altered)
            .await;
        assert_refused(&source, &signer, &a.kid, &secrets).await;

        // b's sealed key copied into a's row.
        store
            .set_sealed_signing_key_for_tests(&a.kid, &b.sealed_key)
            .await;
        assert_refused(&source, &signer, &a.kid, &secrets).await;

        // b's key sealed for a's row (by someone holding the encryption key): the kid check.
        let forged = sealer
            .seal(&Secret::new(der_b64(b)), &key_context(&a.kid, a.created_at))
            .unwrap_or_else(|e| panic!("seal: {e}"));
        store
            .set_sealed_signing_key_for_tests(&a.kid, forged.as_bytes())
            .await;
        assert_refused(&source, &signer, &a.kid, &secrets).await;
        let err = source.list().await.err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains(&b.kid)),
            "{err:?}"
        );

        // Restored, every row opens again; under another encryption key none does, and the
        // error says to restore the key file.
        store
            .set_sealed_signing_key_for_tests(&a.kid, &a.sealed_key)
            .await;
        assert!(source.list().await.is_ok());
        let err = Signer::open_source(database(&store, 8), T0).await.err();
        let chain = err
            .as_ref()
            .and_then(|e| std::error::Error::source(e))
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            chain.contains("restore the old encryption key file"),
            "{chain}"
        );
    }

    #[tokio::test]
    async fn replicas_starting_together_sign_with_the_same_first_key() {
        let (store, dir) = crate::store::test_support::temp_store().await;
        // A second store on the same file: another process, with its own connections.
        let other = dir.open().await.unwrap_or_else(|e| panic!("open: {e}"));
        let (one, two) = (database(&store, 7), database(&other, 7));
        let (a, b) = tokio::join!(
            Signer::open_source(one.clone(), T0),
            Signer::open_source(two.clone(), T0)
        );
        let (a, b) = (
            a.unwrap_or_else(|e| panic!("open: {e}")),
            b.unwrap_or_else(|e| panic!("open: {e}")),
        );
        assert_eq!(a.active_kid(), b.active_kid());
        assert_eq!(rows(&store).await.len(), 1);

        // Should two keys of the same second ever be in the table (written by hand, or by two
        // rotations at once), every replica still picks the same one.
        let (store, _dir) = crate::store::test_support::temp_store().await;
        let source = database(&store, 7);
        let KeySource::Database { sealer, .. } = &source else {
            unreachable!()
        };
        let rng = SystemRandom::new();
        let mut kids = Vec::new();
        for _ in 0..2 {
            let (info, sealed) = new_sealed_key(sealer, T0.unix_timestamp(), &rng)
                .unwrap_or_else(|e| panic!("key: {e}"));
            store
                .insert_signing_key(&info.kid, info.created_at, &sealed)
                .await
                .unwrap_or_else(|e| panic!("insert: {e}"));
            kids.push(info.kid);
        }
        kids.sort();
        let a = open_db(&source, T0).await;
        let b = open_db(&database(&store, 7), T0).await;
        assert_eq!(a.active_kid(), kids[1]);
        assert_eq!(b.active_kid(), kids[1]);
    }
}
