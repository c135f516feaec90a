//! The session index, `{cache_dir}/kubectl-credential/index.json`: which cache key belongs to
//! which issuer, cluster and client. The keyring cannot be enumerated portably, so without this
//! file `status` and `logout --all` could not find keyring sessions. It holds no secret (mode
//! 0600 all the same) and is written only when a session is stored or removed, never on a cache
//! hit.
//!
//! Two processes storing different sessions at the same moment may each write the index from
//! the same old copy, and one addition is lost. That is tolerated rather than locked against:
//! a missing line only hides a session from `status` until its next refresh, which adds it
//! again (storing always checks that the key is listed).
//!
//! The index steers which keyring items `status` and `logout --all` act on, so it is opened
//! through [`private`](super::private) like the token files: one that is a symbolic link,
//! another user's, or writable by group or others is not read; it is reported in one line,
//! removed, and written anew with the next session stored.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::file::{ensure_dirs, sync_dir, unique_suffix, write_new_private};
use super::private::{self, Holds, Opened};
use super::{CacheError, CacheKey, Origin, Root};

/// Version of the index format.
const INDEX_VERSION: u32 = 1;
/// An index larger than this is not ours; it reads as empty.
const MAX_INDEX_BYTES: u64 = 1024 * 1024;

/// The index file.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    root: Root,
    path: PathBuf,
}

/// The stored form. Private: the file is the only boundary it crosses.
#[derive(Serialize, Deserialize)]
struct StoredIndex {
    v: u32,
    #[serde(default)]
    sessions: BTreeMap<String, StoredOrigin>,
}

#[derive(Serialize, Deserialize)]
struct StoredOrigin {
    issuer: String,
    cluster: String,
    client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

impl Index {
    /// The index under the user's cache directory. Only finds the path; reads nothing.
    pub(crate) fn open_default() -> Result<Self, CacheError> {
        Ok(Self::new(super::root()?))
    }

    /// The index `index.json` in `root`.
    pub(crate) fn new(root: Root) -> Self {
        let path = root.path().join("index.json");
        Self { root, path }
    }

    /// Every session listed. A missing, corrupt, other-version or untrusted index is empty (the
    /// next write replaces it); only an index that exists and cannot be read is an error.
    pub(crate) fn load(&self) -> Result<BTreeMap<CacheKey, Origin>, CacheError> {
        let read_error = |source| CacheError::Read {
            path: self.path.clone(),
            source,
        };
        let file = match private::open(&self.root, &self.path, Holds::Steering)
            .map_err(read_error)?
        {
            Opened::Trusted(file) => file,
            Opened::Missing => return Ok(BTreeMap::new()),
            Opened::Refused(refusal, _) => {
                let what = if refusal.is_dir {
                    "the list of keyring sessions in it is not used; fix or remove it"
                } else {
                    "the list of keyring sessions is not trusted: ignored, removed, and written anew with the next session"
                };
                private::notice(&format!("{refusal}: {what}"));
                refusal.remove();
                return Ok(BTreeMap::new());
            }
        };
        let mut bytes = Vec::new();
        file.take(MAX_INDEX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        Ok(parse(&bytes))
    }

    /// Lists `key` as `origin`; writes only when that changes the file.
    pub(crate) fn add(&self, key: &CacheKey, origin: &Origin) -> Result<(), CacheError> {
        let mut sessions = self.load()?;
        if sessions.get(key) == Some(origin) {
            return Ok(());
        }
        sessions.insert(key.clone(), origin.clone());
        self.write(&sessions)
    }

    /// Removes `keys`; writes only when one of them was listed.
    pub(crate) fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        let mut sessions = self.load()?;
        let before = sessions.len();
        sessions.retain(|k, _| !keys.contains(k));
        if sessions.len() == before {
            return Ok(());
        }
        self.write(&sessions)
    }

    /// Replaces the file atomically (0600 temporary file renamed over it), creating the
    /// directory with mode 0700 if needed.
    fn write(&self, sessions: &BTreeMap<CacheKey, Origin>) -> Result<(), CacheError> {
        let error = |source| CacheError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.root.path();
        ensure_dirs(&self.root, dir)?;
        let stored = StoredIndex {
            v: INDEX_VERSION,
            sessions: sessions
                .iter()
                .map(|(key, o)| {
                    let origin = StoredOrigin {
                        issuer: o.issuer.clone(),
                        cluster: o.cluster.clone(),
                        client_id: o.client_id.clone(),
                        account: o.account.clone(),
                    };
                    (key.as_hex().to_owned(), origin)
                })
                .collect(),
        };
        // Serializing strings cannot fail.
        let json = serde_json::to_string_pretty(&stored).unwrap_or_default();
        let tmp = dir.join(format!(
            ".index.{}.{}.tmp",
            std::process::id(),
            unique_suffix()
        ));
        let result =
            write_new_private(&tmp, json.as_bytes()).and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(source) = result {
            let _ = fs::remove_file(&tmp);
            return Err(error(source));
        }
        sync_dir(dir);
        Ok(())
    }
}

/// Reads the stored form, keeping only well-formed keys.
fn parse(bytes: &[u8]) -> BTreeMap<CacheKey, Origin> {
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return BTreeMap::new();
    }
    let Ok(stored) = serde_json::from_slice::<StoredIndex>(bytes) else {
        return BTreeMap::new();
    };
    if stored.v != INDEX_VERSION {
        return BTreeMap::new();
    }
    stored
        .sessions
        .into_iter()
        .filter_map(|(hex, o)| {
            let origin = Origin {
                issuer: o.issuer,
                cluster: o.cluster,
                client_id: o.client_id,
                account: o.account,
            };
            Some((CacheKey::from_hex(&hex)?, origin))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::SERVICE;
    use super::*;

    fn origin(cluster: &str) -> Origin {
        Origin {
            issuer: "https://issuer.example".to_owned(),
            cluster: cluster.to_owned(),
            client_id: "kubectl-credential".to_owned(),
            account: None,
        }
    }

    fn key(cluster: &str) -> CacheKey {
        CacheKey::new(
            "https://issuer.example",
            cluster,
            "kubectl-credential",
            None,
        )
    }

    fn modified(index: &Index) -> Option<std::time::SystemTime> {
        fs::metadata(&index.path).and_then(|m| m.modified()).ok()
    }

    #[test]
    fn adds_and_removes_sessions_in_a_private_file() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let index = Index::new(Root::new(tmp.path(), SERVICE));
        assert!(index.load().unwrap_or_else(|e| panic!("{e}")).is_empty());
        // Removing from a missing index writes nothing.
        index
            .remove(&[key("prod")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(modified(&index).is_none());

        for cluster in ["prod", "dev"] {
            index
                .add(&key(cluster), &origin(cluster))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let listed = index.load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listed.len(), 2);
        assert_eq!(listed.get(&key("prod")), Some(&origin("prod")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&index.path).map_or(0, |m| m.permissions().mode() & 0o777);
            assert_eq!(mode, 0o600);
        }
        let text = fs::read_to_string(&index.path).unwrap_or_default();
        assert!(text.contains("\"cluster\": \"prod\""), "{text}");

        index
            .remove(&[key("prod"), key("gone")])
            .unwrap_or_else(|e| panic!("{e}"));
        let listed = index.load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listed.keys().collect::<Vec<_>>(), [&key("dev")]);
    }

    #[test]
    fn adding_what_is_listed_does_not_rewrite() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let index = Index::new(Root::new(tmp.path(), SERVICE));
        index
            .add(&key("prod"), &origin("prod"))
            .unwrap_or_else(|e| panic!("{e}"));
        // Replace the file by a marker with the same meaning: an unchanged add leaves it.
        let text = fs::read_to_string(&index.path).unwrap_or_default();
        fs::write(&index.path, format!("{text}\n")).unwrap_or_else(|e| panic!("{e}"));
        index
            .add(&key("prod"), &origin("prod"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(fs::read_to_string(&index.path)
            .unwrap_or_default()
            .ends_with("}\n"));
    }

    #[test]
    fn corrupt_or_foreign_indexes_read_as_empty() {
        let good = format!(
            r#"{{"v":1,"sessions":{{"{}":{{"issuer":"https://i","cluster":"c","client_id":"k"}}}}}}"#,
            key("c").as_hex()
        );
        assert_eq!(parse(good.as_bytes()).len(), 1);
        for bad in [
            String::new(),
            "{".to_owned(),
            good.replace("\"v\":1", "\"v\":2"),
            good.replace(key("c").as_hex(), "../../etc/passwd"),
        ] {
            assert!(parse(bad.as_bytes()).is_empty(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn an_index_others_could_change_is_ignored_and_replaced() {
        use std::os::unix::fs::{symlink, MetadataExt as _, PermissionsExt as _};
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let index = Index::new(Root::new(tmp.path(), SERVICE));
        let planted = tmp.path().join("planted.json");
        let make = |how: &str| {
            let _ = fs::remove_file(&index.path);
            index
                .add(&key("prod"), &origin("prod"))
                .unwrap_or_else(|e| panic!("{e}"));
            match how {
                "world-writable" => {
                    fs::set_permissions(&index.path, fs::Permissions::from_mode(0o666))
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                "another user's" => {
                    std::os::unix::fs::lchown(&index.path, Some(65_534), None).unwrap_or_else(
                        |e| {
                            panic!(
                                "cannot chown the index to uid 65534 (run the tests as root): {e}"
                            )
                        },
                    );
                }
                _ => {
                    fs::rename(&index.path, &planted).unwrap_or_else(|e| panic!("{e}"));
                    symlink(&planted, &index.path).unwrap_or_else(|e| panic!("{e}"));
                }
            }
        };
        for how in ["world-writable", "another user's", "a symbolic link"] {
            make(how);
            assert!(
                index.load().unwrap_or_else(|e| panic!("{e}")).is_empty(),
                "{how}: an untrusted index was read"
            );
            assert!(
                fs::symlink_metadata(&index.path).is_err(),
                "{how}: not removed"
            );
            // The next session stored writes a fresh, private index.
            index
                .add(&key("dev"), &origin("dev"))
                .unwrap_or_else(|e| panic!("{e}"));
            let listed = index.load().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(listed.keys().collect::<Vec<_>>(), [&key("dev")], "{how}");
            let meta = fs::symlink_metadata(&index.path).unwrap_or_else(|e| panic!("{e}"));
            assert!(meta.is_file() && meta.mode() & 0o777 == 0o600, "{how}");
        }
        assert!(planted.exists(), "the link's target was touched");
        // Readable by others is fine: the index holds no secret.
        fs::set_permissions(&index.path, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(index.load().map(|l| l.len()).ok(), Some(1));
    }
}
