//! The keys-directory source: one file per key, `<created unix seconds, 12 digits>-<kid>.p8`,
//! holding raw PKCS#8 DER with mode 0600, in a directory of mode 0700 (`<data dir>/keys`).
//!
//! Files are written with [`crate::secrets::private_file`], the shared crash-safe writer, so a
//! half-written key never appears under a key's name. Only loading, creating and deleting live
//! here; which key signs and which are published is [`super::keyset`]'s.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use time::OffsetDateTime;

use super::keyset::{generate, key_from_der, Key, KeyProblem, KeySet};
use super::rotation::{next_created, retired, unix_seconds};
use super::{Error, KeyInfo};

/// Extension of key files; other files in the directory are ignored.
const KEY_EXTENSION: &str = ".p8";

/// The key set of `keys_dir`; creates the directory (mode 0700) and a first key (file mode
/// 0600) if there is none.
pub(super) fn open(
    keys_dir: &Path,
    rng: &SystemRandom,
    now: OffsetDateTime,
) -> Result<KeySet, Error> {
    create_dir(keys_dir)?;
    let mut infos = scan(keys_dir)?;
    if infos.is_empty() {
        let (info, path) = write_new_key(keys_dir, unix_seconds(now), rng)?;
        tracing::info!(
            kid = %info.kid,
            path = %path.display(),
            "created first signing key"
        );
        // Scan again rather than use `info`: another process may have raced us to it.
        infos = scan(keys_dir)?;
    }
    load_set(keys_dir, &infos, rng, now)
}

/// The key set of `keys_dir` if it differs from `current`; `None` if not.
///
/// File names carry the kid, which is derived from the key and checked when it is loaded, so
/// an equal list of (kid, created) means equal keys and no file is read.
pub(super) fn reload(
    keys_dir: &Path,
    current: &KeySet,
    rng: &SystemRandom,
    now: OffsetDateTime,
) -> Result<Option<KeySet>, Error> {
    let infos = scan(keys_dir)?;
    if current.infos().eq(infos.iter()) && !current.due(now) {
        return Ok(None);
    }
    load_set(keys_dir, &infos, rng, now).map(Some)
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
