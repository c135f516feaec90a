//! The keys that sign access tokens: ES256 keys on disk, their rotation, the JWKS the API
//! servers verify against, and JWS signing and verification.
//!
//! Each key is one file, `<created unix seconds, 12 digits>-<kid>.p8`, holding raw PKCS#8 DER
//! with mode 0600. Rotation is therefore a file operation that `credential-issuer keys rotate`
//! can do while the server runs; the server notices through [`Signer::reload`] (on a timer and
//! on SIGHUP). The newest key signs. An older key stays published, and on disk, until every
//! token it signed has expired: it was superseded (the next key was created) at least `retain`
//! ago, where `retain` is the longest token lifetime. The `kid` is the key's RFC 7638 thumbprint,
//! so it is derived from the key and a file cannot claim another key's id.

pub(crate) mod atomic_file;
mod jws;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credential_shared::oauth::{AccessTokenClaims, Jwk, Jwks};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use time::OffsetDateTime;

pub use jws::verify;

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

/// A key file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The RFC 7638 thumbprint, the `kid` of tokens it signs.
    pub kid: String,
    /// When the key was added (whole seconds, from the file name).
    pub created_at: OffsetDateTime,
    /// The file.
    pub path: PathBuf,
}

/// A loaded key. Deliberately not `Debug`: it holds the private key.
struct Key {
    info: KeyInfo,
    pair: EcdsaKeyPair,
    jwk: Jwk,
}

/// The keys of a directory at one moment. Keeping the active key apart makes "there is at least
/// one key" a property of the type.
struct KeySet {
    /// Superseded keys, oldest first.
    previous: Vec<Key>,
    /// The newest key, the one that signs.
    active: Key,
}

impl KeySet {
    fn infos(&self) -> impl Iterator<Item = &KeyInfo> {
        self.previous
            .iter()
            .chain(std::iter::once(&self.active))
            .map(|k| &k.info)
    }
}

/// Signs access tokens with the newest key of a directory and publishes the JWKS.
///
/// The key set sits behind a lock so that [`Signer::reload`] works through `&self` on a shared
/// `Signer`; readers clone the `Arc` and release the lock before signing.
pub struct Signer {
    dir: PathBuf,
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
            .field("dir", &self.dir)
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
            let info = write_new_key(keys_dir, unix_seconds(now), &rng)?;
            tracing::info!(
                kid = %info.kid,
                path = %info.path.display(),
                "created first signing key"
            );
            // Scan again rather than use `info`: another process may have raced us to it.
            infos = scan(keys_dir)?;
        }
        let keys = load_set(keys_dir, &infos, &rng)?;
        Ok(Self {
            dir: keys_dir.to_owned(),
            keys: RwLock::new(Arc::new(keys)),
            rng,
            generation: AtomicU64::new(0),
        })
    }

    /// Signs `claims` as a compact JWS with header `{"alg":"ES256","typ":"JWT","kid":...}`,
    /// using the newest key.
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, Error> {
        let keys = self.current();
        jws::encode(&keys.active.pair, &keys.active.info.kid, claims, &self.rng)
    }

    /// The keys to publish: the active key first, then every older key superseded less than
    /// `retain` ago (a key is superseded when the next newer key is created). `retain` is the
    /// longest token lifetime, so every unexpired token stays verifiable.
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
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    /// Re-reads the directory; `Ok(true)` if the key set changed. Run on a timer and on SIGHUP,
    /// so that `keys rotate` from the CLI is picked up without a restart.
    ///
    /// On error the current keys stay in use: a bad file dropped into the directory must not
    /// stop a running issuer from signing.
    pub fn reload(&self) -> Result<bool, Error> {
        let infos = scan(&self.dir)?;
        // File names contain the kid, which is derived from the content, so equal names mean
        // equal keys and nothing needs to be read.
        if self.current().infos().eq(infos.iter()) {
            return Ok(false);
        }
        let keys = load_set(&self.dir, &infos, &self.rng)?;
        // Debug only: the caller logs the change once, with its own context.
        tracing::debug!(
            active_kid = %keys.active.info.kid,
            keys = infos.len(),
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
    let created = match infos.last() {
        Some(newest) => unix_seconds(now).max(newest.created_at.unix_timestamp().saturating_add(1)),
        None => unix_seconds(now),
    };
    let new = write_new_key(keys_dir, created, &SystemRandom::new())?;
    tracing::info!(kid = %new.kid, path = %new.path.display(), "created signing key");
    infos.push(new.clone());
    for pair in infos.windows(2) {
        let [old, next] = pair else { continue };
        if is_retired(next.created_at, now, retain) {
            match fs::remove_file(&old.path) {
                Ok(()) => {
                    tracing::info!(
                        kid = %old.kid,
                        path = %old.path.display(),
                        "deleted retired signing key"
                    );
                }
                // A concurrent rotation got there first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::RemoveKey {
                        path: old.path.clone(),
                        source,
                    })
                }
            }
        }
    }
    Ok(new)
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
    atomic_file::create_private_dir(dir).map_err(|source| Error::CreateDir {
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
            path,
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

fn load_set(dir: &Path, infos: &[KeyInfo], rng: &SystemRandom) -> Result<KeySet, Error> {
    let mut keys = infos
        .iter()
        .map(|info| load_key(info, rng))
        .collect::<Result<Vec<_>, _>>()?;
    let active = keys.pop().ok_or_else(|| Error::NoKeys {
        path: dir.to_owned(),
    })?;
    Ok(KeySet {
        previous: keys,
        active,
    })
}

fn load_key(info: &KeyInfo, rng: &SystemRandom) -> Result<Key, Error> {
    let der = fs::read(&info.path).map_err(|source| Error::ReadKey {
        path: info.path.clone(),
        source,
    })?;
    let invalid = |reason: String| Error::InvalidKey {
        path: info.path.clone(),
        reason,
    };
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, rng)
        .map_err(|e| invalid(e.to_string()))?;
    let jwk = jwk_of(&pair).ok_or_else(|| invalid("unexpected public key encoding".into()))?;
    if jwk.kid != info.kid {
        return Err(Error::KidMismatch {
            path: info.path.clone(),
            kid: jwk.kid,
        });
    }
    Ok(Key {
        info: info.clone(),
        pair,
        jwk,
    })
}

/// Generates a key and writes it as `<created>-<kid>.p8`.
fn write_new_key(dir: &Path, created: i64, rng: &SystemRandom) -> Result<KeyInfo, Error> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|_| Error::KeyGeneration)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .map_err(|_| Error::KeyGeneration)?;
    let kid = jwk_of(&pair).ok_or(Error::KeyGeneration)?.kid;
    let created_at =
        OffsetDateTime::from_unix_timestamp(created).map_err(|_| Error::KeyGeneration)?;
    // The kid in the name makes names unique, so a new key never replaces an existing file.
    let path = dir.join(format!("{created:012}-{kid}{KEY_EXTENSION}"));
    atomic_file::write(&path, pkcs8.as_ref(), atomic_file::PRIVATE_FILE_MODE).map_err(
        |source| Error::WriteKey {
            path: path.clone(),
            source,
        },
    )?;
    Ok(KeyInfo {
        kid,
        created_at,
        path,
    })
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
    const HOUR: Duration = Duration::from_secs(3600);

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            grants: Vec::new(),
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

    #[test]
    fn rotate_activates_the_new_key_and_retires_the_old_one_after_retain() {
        let tmp = tempdir();
        let dir = tmp.path();
        let signer = open(dir, T0);
        let first = signer.active_kid();
        let old_token = signer
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));

        let t1 = T0 + Duration::from_secs(60);
        let second = rotate_ok(dir, t1);
        assert!(signer.reload().unwrap_or_else(|e| panic!("reload: {e}")));
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

    #[test]
    fn signer_verifies_with_its_loaded_keys_including_retained_old_ones() {
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
        assert!(signer.reload().unwrap_or_else(|e| panic!("reload: {e}")));
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

    #[test]
    fn reload_picks_up_a_rotation_by_another_process() {
        let tmp = tempdir();
        let dir = tmp.path().join("keys");
        let signer = open(&dir, T0);
        assert!(!signer.reload().unwrap_or_else(|e| panic!("reload: {e}")));

        let new = rotate_ok(&dir, T0 + HOUR);
        assert!(signer.reload().unwrap_or_else(|e| panic!("reload: {e}")));
        assert_eq!(signer.active_kid(), new.kid);
        assert!(!signer.reload().unwrap_or_else(|e| panic!("reload: {e}")));

        let token = signer
            .sign(&claims())
            .unwrap_or_else(|e| panic!("sign: {e}"));
        let [header, ..] = parts(&token);
        assert_eq!(b64_json(header)["kid"], new.kid.as_str());
        assert!(verify(&signer.jwks(T0 + HOUR, HOUR), &token).is_ok());
    }

    #[test]
    fn rotations_within_one_second_stay_ordered() {
        let tmp = tempdir();
        let dir = tmp.path();
        let signer = open(dir, T0);
        let a = rotate_ok(dir, T0);
        let b = rotate_ok(dir, T0);
        assert!(b.created_at > a.created_at && a.created_at > T0);
        let on_disk = list(dir).unwrap_or_else(|e| panic!("list: {e}"));
        assert_eq!(on_disk.len(), 3);
        assert_eq!(on_disk.last().map(|k| &k.kid), Some(&b.kid));
        assert!(signer.reload().unwrap_or_else(|e| panic!("reload: {e}")));
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
            assert_eq!(mode(&key.path), 0o600, "{}", key.path.display());
            let name = key
                .path
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
            .map(|k| fs::read(&k.path).unwrap_or_default())
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

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_it() {
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
            .reload()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&corrupt.display().to_string()), "{err}");
        assert!(signer.sign(&claims()).is_ok());
        let err = list(dir).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(&corrupt.display().to_string()), "{err}");

        // A real key under another key's name, and a badly named key, are errors too.
        fs::remove_file(&corrupt).unwrap_or_else(|e| panic!("rm: {e}"));
        let real = list(dir).unwrap_or_default().remove(0).path;
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
}
