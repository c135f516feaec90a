//! The token cache: which entry belongs to which issuer, cluster, client and API server, what an
//! entry holds, and the two places entries live (the OS keyring, or private files).
//!
//! An entry is a small versioned JSON document:
//! `{"v":1,"access_token":..,"iat":..,"exp":..,"refresh_token":..,"session_expires_at":..,"username":..,"issuer":..,"cluster":..,"client_id":..}`.
//! The groups are not stored: the access token carries them, and a long group list stored
//! twice would make the entry too large for one Windows credential (see `keyring`). Older
//! entries that still hold a `groups` list read as before (the list is ignored).
//! `issuer`, `cluster` and `client_id` (the [`Origin`]) were added later and are optional: an
//! entry written before them still reads, and `status` shows `?` for what it does not know.
//! `iat` and `exp` are on the local clock (receipt time and receipt time plus the token's
//! lifetime), so a skewed clock cannot make every token look expired. Anything that does not
//! parse as version 1 is a miss, never a crash: the next sign-in overwrites it.
//!
//! Keys: `get` called by kubectl with `provideClusterInfo: true` uses a key that also covers the
//! API server URL and CA (`spec.cluster.server`, `certificate-authority-data`), so two
//! kubeconfig entries that share an issuer and cluster name but point at different API servers
//! (or trust different CA bundles) never share a token. `login` is run by hand, knows no API
//! server, and stores under the key without it; the first `get` with cluster info that finds
//! nothing under its own key adopts that session (moves it to its key, under the lock of the
//! key without server), so a login ahead of time serves kubectl and still belongs to one API
//! server. `logout`/`whoami --cluster` find a cluster's sessions by their recorded origin.

mod backoff;
mod file;
mod index;
mod keyring;
mod lock;
mod machine;
mod private;

use std::path::PathBuf;

use credential_shared::exec_credential::ExecCluster;
use credential_shared::oauth::TokenResponse;
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::base::env;
use crate::base::jwt::{self, JwtError};
use crate::base::secret::Secret;
use crate::base::target::TokenCacheKind;

pub(crate) use self::backoff::{Backoff, Hold, MAX_WAIT_SECS};
pub(crate) use self::file::{read_steering, remove_private, replace_private, FileStore, Loaded};
pub(crate) use self::index::Index;
pub(crate) use self::keyring::KeyringStore;
pub(crate) use self::lock::{Acquired, KeyLock, REFRESH_WAIT, SIGN_IN_WAIT};
pub(crate) use self::machine::{MachineKeyId, TokenFile};
#[cfg(unix)]
pub(crate) use self::private::euid;
pub(crate) use self::private::Root;
pub(crate) use self::private::{open_named, read_public, write_named, Holds, Opened};

/// The keyring service name and the cache directory name.
pub(crate) const SERVICE: &str = "kubectl-credential";
/// Version of the entry format this build reads and writes.
const ENTRY_VERSION: u32 = 1;
/// Longest safety margin before expiry at which a token is no longer handed out.
pub(crate) const MAX_MARGIN_SECS: i64 = 60;
/// Domain separation for the key hash: a different format must never collide with this one.
const KEY_DOMAIN: &[u8] = b"kubectl-credential cache key v1";

/// Why the cache could not be used. Every variant ends the run with exit code 6.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    /// The keyring is locked, absent (no D-Bus session, no Secret Service) or refused access.
    #[error("the OS keyring is unavailable")]
    KeyringUnavailable(#[source] ::keyring::Error),
    /// Neither `XDG_CACHE_HOME` nor `HOME` gives a cache directory.
    #[error("no cache directory: set HOME or XDG_CACHE_HOME")]
    NoCacheDir,
    /// A cache file exists but cannot be read.
    #[error("cannot read the token cache file {}", crate::base::term::path(path))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cache directory or a file in it cannot be written.
    #[error("cannot write the token cache in {}", crate::base::term::path(path))]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory on the way to the cache is not ours alone (another user's, or writable by
    /// others), so no session is kept there.
    #[error("{0}: no session is kept there; fix it or remove it")]
    Unsafe(#[source] private::Refusal),
}

/// `{cache_dir}/kubectl-credential`, the directory the plugin makes for itself in the user's
/// cache directory (`XDG_CACHE_HOME`, else `~/.cache`, on Linux): the token files, the index,
/// locks, backoff and pending-request records are in it. Only finds the path.
pub(crate) fn root() -> Result<Root, CacheError> {
    let base = env::cache_dir().ok_or(CacheError::NoCacheDir)?;
    Ok(Root::new(base, SERVICE))
}

/// Identifies one cache entry: SHA-256 over a length-prefixed encoding of everything that
/// decides which token is right. Hex, so it is a valid file name and keyring account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CacheKey(String);

impl CacheKey {
    /// The key for `issuer` (normalized, no trailing slash), `cluster` and `client_id`, and the
    /// API server when kubectl told us which (`spec.cluster`).
    pub(crate) fn new(
        issuer: &str,
        cluster: &str,
        client_id: &str,
        api_server: Option<&ExecCluster>,
    ) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(KEY_DOMAIN);
        let mut field = |value: Option<&str>| match value {
            None => ctx.update(&[0]),
            Some(v) => {
                ctx.update(&[1]);
                ctx.update(&(v.len() as u64).to_be_bytes());
                ctx.update(v.as_bytes());
            }
        };
        field(Some(issuer.trim_end_matches('/')));
        field(Some(cluster));
        field(Some(client_id));
        field(api_server.map(|c| c.server.trim_end_matches('/')));
        field(api_server.and_then(|c| c.certificate_authority_data.as_deref()));
        let hash = ctx.finish();
        let mut hex = String::with_capacity(64);
        for byte in hash.as_ref() {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(hex)
    }

    /// The key of a session that must belong to `username` (`--username`); without one, the
    /// same as [`CacheKey::new`] (so that existing sessions keep their keys).
    pub(crate) fn for_user(
        issuer: &str,
        cluster: &str,
        client_id: &str,
        username: Option<&str>,
        api_server: Option<&ExecCluster>,
    ) -> Self {
        let base = Self::new(issuer, cluster, client_id, api_server);
        let Some(user) = username else {
            return base;
        };
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(KEY_DOMAIN);
        ctx.update(b"user");
        ctx.update(base.0.as_bytes());
        ctx.update(&(user.len() as u64).to_be_bytes());
        ctx.update(user.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in ctx.finish().as_ref() {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(hex)
    }

    /// Lower-case hex of the hash.
    pub(crate) fn as_hex(&self) -> &str {
        &self.0
    }

    /// A key read back from a file name or the index: exactly 64 lower-case hex digits, so
    /// that nothing else (`..`, a path) can pose as a key.
    pub(crate) fn from_hex(hex: &str) -> Option<Self> {
        let valid = hex.len() == 64 && hex.bytes().all(|b| HEX.contains(&b));
        valid.then(|| Self(hex.to_owned()))
    }
}

/// Which issuer, cluster and OAuth client a session belongs to: what the cache key hashes,
/// kept in the clear (none of it is secret) so that `status` and `logout --all` can name and
/// revoke sessions whose key they cannot reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The normalized issuer URL.
    pub(crate) issuer: String,
    /// The cluster name.
    pub(crate) cluster: String,
    /// The OAuth client id.
    pub(crate) client_id: String,
    /// The account the session is pinned to (`--username`), if any: `login`/`logout` without
    /// `--username` leave such sessions alone, as their keys do.
    pub(crate) account: Option<String>,
}

impl Origin {
    /// Whether `other` is a session of the same issuer, cluster and client (any account).
    pub(crate) fn same_cluster(&self, other: &Self) -> bool {
        self.issuer == other.issuer
            && self.cluster == other.cluster
            && self.client_id == other.client_id
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One cached session. `Debug` shows no token (they are [`Secret`]s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The bearer token for the API server.
    pub(crate) access_token: Secret,
    /// When it was received (local clock, Unix seconds).
    pub(crate) iat: i64,
    /// When it expires (local clock, Unix seconds).
    pub(crate) exp: i64,
    /// The single-use refresh token, if the issuer gave one.
    pub(crate) refresh_token: Option<Secret>,
    /// When the session (and so any refresh token) ends, if the issuer said.
    pub(crate) session_expires_at: Option<i64>,
    /// `preferred_username` of the token, for messages.
    pub(crate) username: String,
    /// Whose session this is; `None` in entries written before it was recorded.
    pub(crate) origin: Option<Origin>,
    /// The API server the issuer configured for this cluster, when it said.
    pub(crate) api_server: Option<String>,
}

impl Entry {
    /// Builds an entry from a token response received at `now`. The lifetime is `expires_in`,
    /// capped by the token's own `exp - iat`; the times are then placed on the local clock.
    /// `previous_session_end` is kept when a refresh response does not repeat it.
    pub(crate) fn from_token_response(
        response: TokenResponse,
        previous_session_end: Option<i64>,
        now: i64,
    ) -> Result<Self, JwtError> {
        let claims = jwt::decode_claims(&response.access_token)?;
        let mut lifetime = i64::try_from(response.expires_in).unwrap_or(i64::MAX);
        let claimed = claims.exp.saturating_sub(claims.iat);
        if claimed > 0 {
            lifetime = lifetime.min(claimed);
        }
        Ok(Self {
            access_token: Secret::new(response.access_token),
            iat: now,
            exp: now.saturating_add(lifetime),
            refresh_token: Some(response.refresh_token)
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            session_expires_at: response.session_expires_at.or(previous_session_end),
            username: claims.preferred_username,
            origin: None,
            api_server: response.api_server,
        })
    }

    /// The same entry, recording whose session it is.
    #[must_use]
    pub(crate) fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    /// `groups` of the token, read from the token itself (for `whoami`; never on a cache hit).
    /// Empty when the token is not a JWT with groups.
    pub(crate) fn groups(&self) -> Vec<String> {
        jwt::decode_claims(self.access_token.expose())
            .map(|c| c.groups)
            .unwrap_or_default()
    }

    /// Whether anything in the entry is still of use at `now`: a token that has not expired,
    /// or a session that can be refreshed.
    pub(crate) fn is_alive(&self, now: i64) -> bool {
        now < self.exp || self.has_live_session(now)
    }

    /// How long before `exp` the token stops being handed out: a fifth of its lifetime, at
    /// most a minute, so a short-lived token is still usable for most of its life and kubectl
    /// never sends one that expires in flight.
    pub(crate) fn margin(&self) -> i64 {
        let lifetime = self.exp.saturating_sub(self.iat).max(0);
        (lifetime / 5).min(MAX_MARGIN_SECS)
    }

    /// The moment the token stops being handed out (and the `expirationTimestamp` for kubectl).
    pub(crate) fn refresh_at(&self) -> i64 {
        self.exp.saturating_sub(self.margin())
    }

    /// Whether the access token can be handed to kubectl at `now`.
    pub(crate) fn is_fresh(&self, now: i64) -> bool {
        now < self.refresh_at()
    }

    /// Whether a refresh can be tried at `now`: a refresh token and a session that has not
    /// ended (an issuer that does not say when the session ends is asked).
    pub(crate) fn has_live_session(&self, now: i64) -> bool {
        self.refresh_token.is_some() && self.session_expires_at.is_none_or(|end| now < end)
    }

    /// Parses a stored entry; `None` for anything that is not a well-formed version 1 entry.
    fn parse(raw: &str) -> Option<Self> {
        let stored: StoredEntry = serde_json::from_str(raw).ok()?;
        if stored.v != ENTRY_VERSION || stored.access_token.is_empty() {
            return None;
        }
        Some(Self {
            access_token: Secret::new(stored.access_token),
            iat: stored.iat,
            exp: stored.exp,
            refresh_token: stored
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            session_expires_at: stored.session_expires_at,
            username: stored.username,
            origin: match (stored.issuer, stored.cluster, stored.client_id) {
                (Some(issuer), Some(cluster), Some(client_id)) => Some(Origin {
                    issuer,
                    cluster,
                    client_id,
                    account: stored.account,
                }),
                _ => None,
            },
            api_server: stored.api_server,
        })
    }

    /// The stored form.
    fn to_json(&self) -> String {
        let stored = StoredEntryRef {
            v: ENTRY_VERSION,
            access_token: self.access_token.expose(),
            iat: self.iat,
            exp: self.exp,
            refresh_token: self.refresh_token.as_ref().map(Secret::expose),
            session_expires_at: self.session_expires_at,
            username: &self.username,
            issuer: self.origin.as_ref().map(|o| o.issuer.as_str()),
            cluster: self.origin.as_ref().map(|o| o.cluster.as_str()),
            client_id: self.origin.as_ref().map(|o| o.client_id.as_str()),
            account: self.origin.as_ref().and_then(|o| o.account.as_deref()),
            api_server: self.api_server.as_deref(),
        };
        // Serializing strings and integers cannot fail.
        serde_json::to_string(&stored).unwrap_or_default()
    }
}

/// The on-disk (in-keyring) format, read side. Private: the cache is the only boundary it
/// crosses. No `Debug`, as it holds tokens in plain strings.
#[derive(Deserialize)]
struct StoredEntry {
    v: u32,
    access_token: String,
    iat: i64,
    exp: i64,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    session_expires_at: Option<i64>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    api_server: Option<String>,
}

/// The on-disk format, write side (borrows, so writing copies no token).
#[derive(Serialize)]
struct StoredEntryRef<'a> {
    v: u32,
    access_token: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_expires_at: Option<i64>,
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_server: Option<&'a str>,
}

/// One session found by [`TokenCache::list`].
#[derive(Debug)]
pub(crate) struct Listed {
    /// Where it is stored.
    pub(crate) key: CacheKey,
    /// What is stored.
    pub(crate) entry: Entry,
    /// Whose it is, when the entry or the index says.
    pub(crate) origin: Option<Origin>,
}

/// The configured cache backend.
#[derive(Debug)]
pub(crate) enum TokenCache {
    /// The OS keyring.
    Keyring(KeyringStore),
    /// Private files.
    File(FileStore),
}

impl TokenCache {
    /// Opens the backend `kind`. Touches nothing yet (the file backend only finds its directory).
    pub(crate) fn open(kind: TokenCacheKind) -> Result<Self, CacheError> {
        Ok(match kind {
            TokenCacheKind::Keyring => Self::Keyring(KeyringStore::default()),
            TokenCacheKind::File => Self::File(FileStore::open_default()?),
        })
    }

    /// The entry under `key`; `Ok(None)` when absent or unreadable as an entry. A file entry
    /// that is not private (readable by others, another user's, a symbolic link) is never
    /// returned: it is reported, removed, and a session others could read is kept for
    /// [`TokenCache::take_exposed`].
    pub(crate) fn load(&self, key: &CacheKey) -> Result<Option<Entry>, CacheError> {
        let raw = match self {
            Self::Keyring(store) => store.load(key)?,
            Self::File(store) => match store.load(key)? {
                Loaded::Missing => None,
                Loaded::Found(raw) => raw,
                Loaded::Refused { refusal, content } => {
                    store.refuse(&refusal, content.as_deref().and_then(Entry::parse));
                    None
                }
            },
        };
        Ok(raw.as_deref().and_then(Entry::parse))
    }

    /// The sessions whose files others could read, found since the last call: the caller ends
    /// them at their issuer (their refresh tokens count as exposed). Empty on a cache hit.
    pub(crate) fn take_exposed(&self) -> Vec<Entry> {
        match self {
            Self::Keyring(_) => Vec::new(),
            Self::File(store) => store.take_exposed(),
        }
    }

    /// Stores `entry` under `key`, replacing what was there.
    pub(crate) fn store(&self, key: &CacheKey, entry: &Entry) -> Result<(), CacheError> {
        let json = entry.to_json();
        match self {
            Self::Keyring(store) => store.store(key, &json),
            Self::File(store) => store.store(key, &json),
        }
    }

    /// Deletes the entry under `key`; whether there was one.
    pub(crate) fn delete(&self, key: &CacheKey) -> Result<bool, CacheError> {
        match self {
            Self::Keyring(store) => store.delete(key),
            Self::File(store) => store.delete(key),
        }
    }

    /// Whether this backend needs the [`Index`] to find its sessions again (the keyring cannot
    /// be enumerated portably; the file backend lists its directory).
    pub(crate) fn needs_index(&self) -> bool {
        matches!(self, Self::Keyring(_))
    }

    /// Every session this backend holds, each with its origin (from the entry, else from the
    /// index), in key order. The file backend scans its directory; the keyring's sessions are
    /// the keys in `index` whose item still exists.
    pub(crate) fn list(&self, index: &Index) -> Result<Vec<Listed>, CacheError> {
        let known = index.load()?;
        let keys = match self {
            Self::Keyring(_) => known.keys().cloned().collect(),
            Self::File(store) => store.keys()?,
        };
        let mut listed = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(entry) = self.load(&key)? else {
                continue;
            };
            let origin = entry.origin.clone().or_else(|| known.get(&key).cloned());
            listed.push(Listed { key, entry, origin });
        }
        Ok(listed)
    }

    /// Checks, before a person spends a minute signing in (or before `get` reports "log in"),
    /// that a session could be stored: the file backend creates its directory; the keyring
    /// stores and deletes a probe item, which fails on a locked or read-only keyring. Only the
    /// paths without a usable session call this, never a cached hit.
    pub(crate) fn prepare(&self) -> Result<(), CacheError> {
        match self {
            Self::Keyring(store) => store.probe_writable(),
            Self::File(store) => store.ensure_dir(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::jwt::tests::token;

    fn cluster(server: &str, ca: Option<&str>) -> ExecCluster {
        ExecCluster {
            server: server.to_owned(),
            certificate_authority_data: ca.map(str::to_owned),
            tls_server_name: None,
        }
    }

    pub(crate) fn entry(iat: i64, exp: i64) -> Entry {
        Entry {
            access_token: Secret::new("AT-secret".to_owned()),
            iat,
            exp,
            refresh_token: Some(Secret::new("RT-secret".to_owned())),
            session_expires_at: Some(exp + 3600),
            username: "alice".to_owned(),
            origin: None,
            api_server: None,
        }
    }

    #[test]
    fn keys_separate_everything_that_selects_a_token() {
        let api = cluster("https://api:6443", Some("Q0E="));
        let base = CacheKey::new("https://i", "prod", "kubectl-credential", Some(&api));
        let variants = [
            CacheKey::new("https://j", "prod", "kubectl-credential", Some(&api)),
            CacheKey::new("https://i", "prod2", "kubectl-credential", Some(&api)),
            CacheKey::new("https://i", "prod", "other-client", Some(&api)),
            CacheKey::new(
                "https://i",
                "prod",
                "kubectl-credential",
                Some(&cluster("https://api2:6443", Some("Q0E="))),
            ),
            CacheKey::new(
                "https://i",
                "prod",
                "kubectl-credential",
                Some(&cluster("https://api:6443", Some("Q0F="))),
            ),
            CacheKey::new(
                "https://i",
                "prod",
                "kubectl-credential",
                Some(&cluster("https://api:6443", None)),
            ),
            CacheKey::new("https://i", "prod", "kubectl-credential", None),
            // Length prefixes: moving a character between fields changes the key.
            CacheKey::new("https://ip", "rod", "kubectl-credential", Some(&api)),
        ];
        for (i, other) in variants.iter().enumerate() {
            assert_ne!(&base, other, "variant {i}");
        }
        // The trailing slash is not significant; the result is 64 lower-case hex digits.
        let user =
            |name, api| CacheKey::for_user("https://i", "prod", "kubectl-credential", name, api);
        let alice = user(Some("alice"), None);
        let bob = user(Some("bob"), None);
        let nobody = user(None, None);
        assert_ne!(alice, bob);
        assert_ne!(alice, nobody);
        assert_eq!(
            nobody,
            CacheKey::new("https://i", "prod", "kubectl-credential", None)
        );
        // The API server separates sessions of one user too, and without a user the key is
        // the plain API-server key.
        assert_ne!(user(Some("alice"), Some(&api)), alice);
        assert_ne!(
            user(Some("alice"), Some(&api)),
            user(Some("bob"), Some(&api))
        );
        assert_eq!(user(None, Some(&api)), base);
        // The keys of sessions stored before API servers were part of them are unchanged.
        insta::assert_snapshot!(nobody.as_hex(), @"aa904036e46a8117f024f2ccbf87f8001f8d6928ef203d03c9dbf22653a26171");
        insta::assert_snapshot!(alice.as_hex(), @"8b3702b6222931b3084ce0cd4f8770d5771f01c8f8d6705fc5efae4fedcb39a5");
        // A trailing slash on the server is not significant; another URL form is.
        let slash = cluster("https://api:6443/", Some("Q0E="));
        assert_eq!(
            CacheKey::new("https://i", "prod", "kubectl-credential", Some(&slash)),
            base
        );
        let by_name = cluster("https://localhost:6443", Some("Q0E="));
        assert_ne!(
            CacheKey::new("https://i", "prod", "kubectl-credential", Some(&by_name)),
            base
        );
        let again = CacheKey::new("https://i/", "prod", "kubectl-credential", Some(&api));
        assert_eq!(base, again);
        assert_eq!(base.as_hex().len(), 64);
        assert!(base
            .as_hex()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn margin_is_a_fifth_of_the_lifetime_at_most_a_minute() {
        // (lifetime, margin)
        for (lifetime, margin) in [(3600, 60), (300, 60), (100, 20), (10, 2), (0, 0), (-5, 0)] {
            let e = entry(1000, 1000 + lifetime);
            assert_eq!(e.margin(), margin, "lifetime {lifetime}");
            assert_eq!(e.refresh_at(), 1000 + lifetime - margin);
        }
        let e = entry(1000, 1000 + 3600);
        assert!(e.is_fresh(1000));
        assert!(e.is_fresh(1000 + 3600 - 61));
        assert!(!e.is_fresh(1000 + 3600 - 60));
        assert!(!e.is_fresh(1000 + 3600));
    }

    #[test]
    fn session_liveness() {
        let mut e = entry(0, 100);
        assert!(e.has_live_session(3699));
        assert!(!e.has_live_session(3700));
        e.session_expires_at = None;
        assert!(e.has_live_session(i64::MAX));
        e.refresh_token = None;
        assert!(!e.has_live_session(0));
    }

    #[test]
    fn entries_round_trip_compactly() {
        let e = entry(1000, 1900);
        let json = e.to_json();
        insta::assert_snapshot!(json, @r#"{"v":1,"access_token":"AT-secret","iat":1000,"exp":1900,"refresh_token":"RT-secret","session_expires_at":5500,"username":"alice"}"#);
        assert_eq!(Entry::parse(&json), Some(e));
    }

    #[test]
    fn origin_is_stored_and_old_entries_without_it_still_read() {
        let origin = Origin {
            issuer: "https://issuer.example".to_owned(),
            cluster: "prod".to_owned(),
            client_id: "kubectl-credential".to_owned(),
            account: None,
        };
        let e = entry(1000, 1900).with_origin(origin.clone());
        let json = e.to_json();
        insta::assert_snapshot!(json, @r#"{"v":1,"access_token":"AT-secret","iat":1000,"exp":1900,"refresh_token":"RT-secret","session_expires_at":5500,"username":"alice","issuer":"https://issuer.example","cluster":"prod","client_id":"kubectl-credential"}"#);
        assert_eq!(Entry::parse(&json), Some(e));
        // A session pinned to an account records it.
        let pinned = entry(1000, 1900).with_origin(Origin {
            account: Some("admin".to_owned()),
            ..origin
        });
        assert!(pinned.to_json().contains(r#","account":"admin""#));
        assert_eq!(Entry::parse(&pinned.to_json()), Some(pinned));
        // The format of the first release: no origin fields.
        let old = entry(1000, 1900).to_json();
        assert!(!old.contains("issuer"));
        assert_eq!(Entry::parse(&old).and_then(|e| e.origin), None);
        // A partial origin is no origin.
        let partial = json.replace(",\"client_id\":\"kubectl-credential\"", "");
        assert_eq!(Entry::parse(&partial).and_then(|e| e.origin), None);
    }

    #[test]
    fn keys_read_back_from_hex_only_when_well_formed() {
        let key = CacheKey::new("https://i", "prod", "kubectl-credential", None);
        assert_eq!(CacheKey::from_hex(key.as_hex()), Some(key.clone()));
        for bad in ["", "../x", &key.as_hex().to_uppercase(), &key.as_hex()[1..]] {
            assert_eq!(CacheKey::from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn alive_means_a_usable_token_or_a_refreshable_session() {
        let mut e = entry(0, 100);
        assert!(e.is_alive(99));
        assert!(e.is_alive(3699));
        assert!(!e.is_alive(3700));
        e.refresh_token = None;
        assert!(e.is_alive(99) && !e.is_alive(100));
    }

    #[test]
    fn corrupt_truncated_or_other_version_entries_are_misses() {
        let good = entry(1000, 1900).to_json();
        let cases = [
            String::new(),
            "null".to_owned(),
            "{".to_owned(),
            good[..good.len() / 2].to_owned(),
            good.replace("\"v\":1", "\"v\":2"),
            good.replace("\"v\":1,", ""),
            good.replace("\"exp\":1900", "\"exp\":\"soon\""),
            good.replace("AT-secret", ""),
            "\u{0}\u{1}binary".to_owned(),
        ];
        for raw in cases {
            assert_eq!(Entry::parse(&raw), None, "{raw:?}");
        }
        // Unknown fields from a newer minor writer are tolerated.
        let extra = good.replace("\"v\":1,", "\"v\":1,\"new\":true,");
        assert!(Entry::parse(&extra).is_some());
    }

    #[test]
    fn debug_never_shows_tokens() {
        let e = entry(1000, 1900);
        let debug = format!("{e:?}");
        assert!(
            !debug.contains("AT-secret") && !debug.contains("RT-secret"),
            "{debug}"
        );
        assert!(debug.contains("alice"));
    }

    #[test]
    fn entry_from_token_response_uses_local_time_and_shortest_lifetime() {
        // The token claims 600 s, the response says 900: trust the shorter.
        let response = TokenResponse {
            access_token: token(5_000, 5_600, "alice", &["dev", "ops"]),
            token_type: "Bearer".to_owned(),
            expires_in: 900,
            refresh_token: "RT-2".to_owned(),
            session_expires_at: None,
            api_server: None,
            issued_token_type: None,
        };
        // Local clock far from the issuer's: times are placed on the local clock.
        let e = Entry::from_token_response(response, Some(99_999), 1_000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((e.iat, e.exp), (1_000, 1_600));
        assert_eq!(e.session_expires_at, Some(99_999));
        assert_eq!(e.refresh_token.as_ref().map(Secret::expose), Some("RT-2"));
        assert_eq!((e.username.as_str(), e.groups().len()), ("alice", 2));
        assert!(
            !e.to_json().contains("groups"),
            "groups are read from the token"
        );

        let opaque = TokenResponse {
            access_token: "not-a-jwt".to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: 900,
            refresh_token: String::new(),
            session_expires_at: None,
            api_server: None,
            issued_token_type: None,
        };
        assert!(Entry::from_token_response(opaque, None, 0).is_err());
    }

    #[cfg(unix)]
    mod file_permissions {
        use std::fs;
        use std::os::unix::fs::{symlink, MetadataExt as _, PermissionsExt as _};
        use std::path::PathBuf;

        use super::super::*;
        use super::entry;

        fn store() -> (tempfile::TempDir, TokenCache, CacheKey, PathBuf) {
            let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let store = FileStore::new(Root::new(tmp.path(), SERVICE));
            let key = CacheKey::new("https://i", "prod", "kubectl-credential", None);
            let path = store.path(&key);
            let cache = TokenCache::File(store);
            cache
                .store(&key, &entry(1000, 1900))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                cache.load(&key).ok().flatten().is_some(),
                "stored entry not read"
            );
            (tmp, cache, key, path)
        }

        fn gone(path: &std::path::Path) -> bool {
            fs::symlink_metadata(path).is_err()
        }

        #[test]
        fn an_entry_others_can_read_is_not_used_but_removed_and_its_session_kept_for_ending() {
            let (_tmp, cache, key, path) = store();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                cache.load(&key).ok(),
                Some(None),
                "an exposed entry was used"
            );
            assert!(gone(&path), "the exposed entry was not removed");
            let exposed = cache.take_exposed();
            assert_eq!(exposed.len(), 1);
            assert_eq!(
                exposed[0].refresh_token.as_ref().map(Secret::expose),
                Some("RT-secret")
            );
            assert!(cache.take_exposed().is_empty(), "ended twice");
            // The next sign-in stores a private entry again.
            cache
                .store(&key, &entry(1000, 1900))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(fs::metadata(&path).map_or(0, |m| m.mode() & 0o777), 0o600);
            assert!(cache.load(&key).ok().flatten().is_some());
        }

        #[test]
        fn an_entry_of_another_user_is_removed_unread() {
            let (_tmp, cache, key, path) = store();
            std::os::unix::fs::lchown(&path, Some(65_534), None).unwrap_or_else(|e| {
                panic!("cannot chown the entry to uid 65534 (run the tests as root): {e}")
            });
            assert_eq!(cache.load(&key).ok(), Some(None));
            assert!(gone(&path));
            assert!(
                cache.take_exposed().is_empty(),
                "another user's file was read"
            );
        }

        #[test]
        fn a_link_planted_for_an_entry_is_removed_and_its_target_left() {
            let (tmp, cache, key, path) = store();
            // A valid, private entry elsewhere: the link must still not be followed.
            let target = tmp.path().join("planted.json");
            fs::rename(&path, &target).unwrap_or_else(|e| panic!("{e}"));
            symlink(&target, &path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cache.load(&key).ok(), Some(None), "the link was followed");
            assert!(gone(&path), "the link was not removed");
            assert!(target.exists(), "the link's target was touched");
            assert!(cache.take_exposed().is_empty());
        }

        #[test]
        fn a_linked_token_directory_is_not_followed_for_reading_listing_or_writing() {
            let (tmp, cache, key, path) = store();
            let dir = path.parent().map(ToOwned::to_owned).unwrap_or_default();
            let elsewhere = tmp.path().join("elsewhere");
            fs::rename(&dir, &elsewhere).unwrap_or_else(|e| panic!("{e}"));
            symlink(&elsewhere, &dir).unwrap_or_else(|e| panic!("{e}"));
            let index = Index::new(Root::new(tmp.path(), SERVICE));
            assert!(cache
                .list(&index)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty());
            symlink(&elsewhere, &dir).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cache.load(&key).ok(), Some(None));
            assert!(!fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()));
            cache
                .store(&key, &entry(1000, 1900))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()));
            assert!(cache.load(&key).ok().flatten().is_some());
        }

        #[test]
        fn a_token_directory_others_can_list_is_tightened_and_still_used() {
            let (_tmp, cache, key, path) = store();
            let dir = path.parent().map(ToOwned::to_owned).unwrap_or_default();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(cache.load(&key).ok().flatten().is_some());
            assert_eq!(fs::metadata(&dir).map_or(0, |m| m.mode() & 0o777), 0o700);
        }
    }
}
