//! `--token-cache-file`: machine mode's only storage, one file the CI job names for itself
//! (never the keyring, never the person's cache directory). It holds one token, with the key of
//! what it was issued for (issuer, cluster, source, API server), and is reused until 30 s before
//! the token expires. Created 0600 without following a link; an existing file that others can
//! read or that is not ours is refused, not used.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use credential_shared::exec_credential::ExecCluster;
use ring::digest;
use serde::{Deserialize, Serialize};

use super::private::{self, Holds, Opened};
use super::{CacheError, Entry, HEX};
use crate::base::secret::Secret;

/// A cached token is not reused in its last 30 seconds.
pub(crate) const REUSE_MARGIN_SECS: i64 = 30;
/// Largest token cache file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Domain separation for the key hash.
const KEY_DOMAIN: &[u8] = b"kubectl-credential machine token file v1";

/// What the cached token was issued for: SHA-256 (hex) over the issuer, cluster, source and
/// the API server kubectl named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MachineKeyId(String);

impl MachineKeyId {
    /// The key of a token for `cluster` at `issuer` obtained through `source` (its
    /// [`cache_name`](crate::base::machine::MachineSource::cache_name)), for the API server
    /// kubectl is about to call (when it says).
    pub(crate) fn new(
        issuer: &str,
        cluster: &str,
        source: &str,
        api_server: Option<&ExecCluster>,
    ) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(KEY_DOMAIN);
        let server = api_server.map(|c| c.server.trim_end_matches('/'));
        let ca = api_server.and_then(|c| c.certificate_authority_data.as_deref());
        for field in [Some(issuer), Some(cluster), Some(source), server, ca] {
            match field {
                None => ctx.update(&[0]),
                Some(v) => {
                    ctx.update(&[1]);
                    ctx.update(&(v.len() as u64).to_be_bytes());
                    ctx.update(v.as_bytes());
                }
            }
        }
        let mut hex = String::with_capacity(64);
        for byte in ctx.finish().as_ref() {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(hex)
    }
}

/// The file's content.
#[derive(Serialize, Deserialize)]
struct Stored {
    v: u32,
    key: String,
    access_token: String,
    iat: i64,
    exp: i64,
    #[serde(default)]
    username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_server: Option<String>,
}

/// The `--token-cache-file` of one machine-mode `get`.
#[derive(Debug, Clone)]
pub(crate) struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// The file at `path` (nothing is opened yet).
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    /// The token stored for `key`, if there is one that may still be handed out at `now`
    /// (fresh, and more than 30 s before its expiry). A file of another key, or one that does
    /// not parse, is a miss (the next store overwrites it); a refused file is an error.
    pub(crate) fn load(&self, key: &MachineKeyId, now: i64) -> Result<Option<Entry>, CacheError> {
        let file = match private::open_named(&self.path, Holds::Secret) {
            Ok(Opened::Trusted(file)) => file,
            Ok(Opened::Missing) => return Ok(None),
            Ok(Opened::Refused(refusal, _)) => return Err(CacheError::Unsafe(refusal)),
            Err(source) => {
                return Err(CacheError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| CacheError::Read {
                path: self.path.clone(),
                source,
            })?;
        let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) else {
            return Ok(None);
        };
        if stored.v != 1 || stored.key != key.0 || stored.access_token.is_empty() {
            return Ok(None);
        }
        let entry = Entry {
            access_token: Secret::new(stored.access_token),
            iat: stored.iat,
            exp: stored.exp,
            refresh_token: None,
            session_expires_at: None,
            username: stored.username,
            origin: None,
            api_server: stored.api_server,
        };
        let reusable = entry.is_fresh(now) && now < entry.exp.saturating_sub(REUSE_MARGIN_SECS);
        Ok(reusable.then_some(entry))
    }

    /// Stores `entry` for `key`, replacing what the file held.
    pub(crate) fn store(&self, key: &MachineKeyId, entry: &Entry) -> Result<(), CacheError> {
        let stored = Stored {
            v: 1,
            key: key.0.clone(),
            access_token: entry.access_token.expose().to_owned(),
            iat: entry.iat,
            exp: entry.exp,
            username: entry.username.clone(),
            api_server: entry.api_server.clone(),
        };
        let write_error = |source| CacheError::Write {
            path: self.path.clone(),
            source,
        };
        let json = serde_json::to_vec(&stored).map_err(|e| write_error(e.into()))?;
        match private::write_named(&self.path, &json, true) {
            Ok(None) => Ok(()),
            Ok(Some(refusal)) => Err(CacheError::Unsafe(refusal)),
            Err(source) => Err(write_error(source)),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt as _};

    use super::*;
    use crate::cache::tests::entry;

    fn key(cluster: &str) -> MachineKeyId {
        MachineKeyId::new(
            "https://i.example",
            cluster,
            "identity github-actions ",
            None,
        )
    }

    #[test]
    fn a_token_is_reused_until_30_s_before_it_expires_and_only_for_its_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("token.json");
        let file = TokenFile::new(&path);
        assert!(file
            .load(&key("prod"), 1000)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
        let stored = entry(1000, 1300);
        file.store(&key("prod"), &stored)
            .unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains("refresh"), "{text}");
        let hit = file
            .load(&key("prod"), 1200)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hit.map(|e| e.access_token),
            Some(stored.access_token.clone())
        );
        // 5 minutes: the margin before expiry is 60 s, which covers the 30 s.
        assert!(file
            .load(&key("prod"), 1240)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
        assert!(file
            .load(&key("staging"), 1200)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
        // A short token (100 s: a 20 s margin): the 30 s rule is what ends its reuse.
        file.store(&key("prod"), &entry(1000, 1100))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(file
            .load(&key("prod"), 1069)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some());
        assert!(file
            .load(&key("prod"), 1071)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
        // Garbage is a miss, and is overwritten.
        std::fs::write(&path, "{not json").unwrap_or_else(|e| panic!("{e}"));
        assert!(file
            .load(&key("prod"), 1200)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
        file.store(&key("prod"), &stored)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(file
            .load(&key("prod"), 1200)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some());
    }

    #[test]
    fn a_file_others_can_read_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("token.json");
        let file = TokenFile::new(&path);
        file.store(&key("prod"), &entry(1000, 1300))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            file.load(&key("prod"), 1100),
            Err(CacheError::Unsafe(_))
        ));
        assert!(matches!(
            file.store(&key("prod"), &entry(1000, 1300)),
            Err(CacheError::Unsafe(_))
        ));
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "x").unwrap_or_else(|e| panic!("{e}"));
        let link = dir.path().join("link.json");
        symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        let linked = TokenFile::new(&link);
        assert!(matches!(
            linked.load(&key("prod"), 1100),
            Err(CacheError::Unsafe(_))
        ));
        assert!(matches!(
            linked.store(&key("prod"), &entry(1000, 1300)),
            Err(CacheError::Unsafe(_))
        ));
        assert_eq!(std::fs::read_to_string(&target).unwrap_or_default(), "x");
    }
}
