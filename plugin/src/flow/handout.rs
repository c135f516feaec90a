//! Telling kubectl's retry after a 401 apart from an ordinary call, so that a token the API
//! server refuses is replaced at once instead of being handed back until it expires.
//!
//! client-go (kubectl, k9s, helm, Lens) keeps the credential in its process; when the API
//! server answers 401 it runs the plugin again from the same process. So on a cache hit the
//! plugin records a marker: "this caller received this token for this key". If the same caller
//! asks again for the same key while the same token is cached, it was probably refused; but
//! some clients (the official Python client) run the plugin on every configuration load, so
//! `get` asks the API server first (`retry`) and refreshes (once: the new token gets no marker
//! until it is handed out by a cache hit) unless the server still accepts the token.
//!
//! The caller is the parent process, named by its pid and its start time (from
//! `/proc/<ppid>/stat`, so a reused pid is another caller) and the boot id. That is Linux
//! only; elsewhere there is no caller and `get` keeps handing out the cached token until it
//! expires (`--force-refresh` remains the way out).
//!
//! Markers are empty files in a private directory: `$XDG_RUNTIME_DIR/kubectl-credential/`
//! (a per-user tmpfs), else `kubectl-credential-<uid>/` in the temporary directory, used only
//! if it is a directory of ours that nobody else can enter. Their names are a hash, so they
//! show neither the token nor the caller. Recording one is a single exclusive create; the
//! cache hit writes nothing else. Markers are removed off the hit path: a key's markers when
//! it gets a new token (they name the old one), and any marker older than a day.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ring::digest;

use crate::base::env;
use crate::base::secret::Secret;
use crate::cache::CacheKey;

/// Lower-case hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";
/// Domain separation for the marker hash.
const MARKER_DOMAIN: &[u8] = b"kubectl-credential hand-out marker v1";
/// Markers older than this are removed whatever their key (a token lives far less).
const MAX_MARKER_AGE: Duration = Duration::from_secs(24 * 3600);
/// Domain separation for the hash of an error already shown to a caller.
const TOLD_DOMAIN: &[u8] = b"kubectl-credential told marker v1";
/// Prefix of those markers' names (never a key's hex prefix: `-` is not a hex digit).
const TOLD_PREFIX: &str = "told-";
/// How long one caller is spared an error it was already shown: longer than a kubectl
/// command's discovery retries, short enough that a long-lived caller (k9s, an IDE) shows a
/// lasting failure again now and then.
pub(crate) const TOLD_WINDOW: Duration = Duration::from_secs(60);
/// How far a marker's file time may be ahead of `now` and still count as just written.
const FILE_TIME_SLACK: Duration = Duration::from_secs(1);
/// Hex digits of the key at the start of a marker's name (so a key's markers can be found).
const KEY_PREFIX_LEN: usize = 16;

/// The process that ran the plugin: on Linux, kubectl (or k9s, helm...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// Boot id, parent pid and the parent's start time in clock ticks since boot.
    id: String,
}

impl Caller {
    /// The parent process, if it can be identified: not on this platform.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn parent() -> Option<Self> {
        None
    }

    /// The parent process, if it can be identified (a parent other than init).
    #[cfg(target_os = "linux")]
    pub(crate) fn parent() -> Option<Self> {
        let ppid = std::os::unix::process::parent_id();
        if ppid <= 1 {
            return None;
        }
        let proc_stat = fs::read_to_string(format!("/proc/{ppid}/stat")).ok()?;
        let start = start_time(&proc_stat)?;
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        Some(Self::from_parts(boot.trim(), ppid, start))
    }

    /// A caller from its parts (tests name their own).
    #[cfg_attr(
        not(target_os = "linux"),
        allow(dead_code, reason = "callers are identified on Linux only")
    )]
    pub(crate) fn from_parts(boot: &str, pid: u32, start: u64) -> Self {
        Self {
            id: format!("{boot}:{pid}:{start}"),
        }
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time). The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so counting starts after the last `)`.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "callers are identified on Linux only")
)]
fn start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The marker directory.
#[derive(Debug, Clone)]
pub(crate) struct HandOuts {
    dir: PathBuf,
}

impl HandOuts {
    /// `$XDG_RUNTIME_DIR/kubectl-credential`, else `kubectl-credential-<uid>` in the temporary
    /// directory. Only finds the path.
    pub(crate) fn open_default() -> Option<Self> {
        if let Some(runtime) = env::var_os(env::XDG_RUNTIME_DIR).filter(|d| !d.is_empty()) {
            return Some(Self::new(
                PathBuf::from(runtime).join(crate::cache::SERVICE),
            ));
        }
        let uid = own_uid()?;
        Some(Self::new(
            env::temp_dir().join(format!("{}-{uid}", crate::cache::SERVICE)),
        ))
    }

    /// Markers in `dir`.
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn marker(&self, caller: &Caller, key: &CacheKey, token: &Secret) -> PathBuf {
        let token_hash = digest::digest(&digest::SHA256, token.expose().as_bytes());
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(MARKER_DOMAIN);
        for part in [caller.id.as_bytes(), key.as_hex().as_bytes()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        ctx.update(&token_hash.as_ref()[..16]);
        let mut name = String::with_capacity(KEY_PREFIX_LEN + 33);
        name.push_str(&key.as_hex()[..KEY_PREFIX_LEN]);
        name.push('-');
        for byte in &ctx.finish().as_ref()[..16] {
            name.push(char::from(HEX[usize::from(byte >> 4)]));
            name.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        self.dir.join(name)
    }

    /// Records that `caller` received `token` for `key`; whether it had received it before
    /// (then the token was refused). One exclusive create; any failure counts as "first time",
    /// which is what the plugin did before markers existed.
    pub(crate) fn record(&self, caller: &Caller, key: &CacheKey, token: &Secret) -> bool {
        let path = self.marker(caller, key, token);
        match create_new(&path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.is_private(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = self.ensure_dir().and_then(|()| create_new(&path));
                false
            }
            Ok(()) | Err(_) => false,
        }
    }

    /// Whether `caller` was shown `message` less than [`TOLD_WINDOW`] ago; if not, records that
    /// it is being shown now. kubectl runs the plugin several times for one command (API
    /// discovery, then the request), and each run failing the same way would print the same
    /// error again: only the first prints it. Any failure to tell counts as "not told", so the
    /// error is printed.
    pub(crate) fn told_before(&self, caller: &Caller, message: &str, now: SystemTime) -> bool {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(TOLD_DOMAIN);
        for part in [caller.id.as_bytes(), message.as_bytes()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut name = String::from(TOLD_PREFIX);
        for byte in &ctx.finish().as_ref()[..16] {
            name.push(char::from(HEX[usize::from(byte >> 4)]));
            name.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        let path = self.dir.join(name);
        match create_new(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = self.ensure_dir().and_then(|()| create_new(&path));
                false
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && self.is_private() => {
                let recent = fs::symlink_metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| match now.duration_since(t) {
                        Ok(age) => Some(age),
                        // A marker written just after `now` was read carries a later time
                        // (and file times tick on the kernel's coarse clock): just written.
                        Err(e) if e.duration() < FILE_TIME_SLACK => Some(Duration::ZERO),
                        Err(_) => None,
                    })
                    .is_some_and(|age| age < TOLD_WINDOW);
                if !recent {
                    // Told long ago (or the clock moved): tell again, from now on.
                    let _ = fs::remove_file(&path).and_then(|()| create_new(&path));
                }
                recent
            }
            Ok(()) | Err(_) => false,
        }
    }

    /// Removes `key`'s markers (they name a token that is being replaced) and every marker
    /// older than a day. Never on a cache hit; failures change nothing that matters.
    pub(crate) fn prune(&self, key: &CacheKey, now: SystemTime) {
        if !self.is_private() {
            return;
        }
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        let prefix = &key.as_hex()[..KEY_PREFIX_LEN];
        for item in dir.filter_map(Result::ok) {
            let name = item.file_name();
            let ours = name.to_str().is_some_and(|n| n.starts_with(prefix));
            let old = item
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > MAX_MARKER_AGE);
            if ours || old {
                let _ = fs::remove_file(item.path());
            }
        }
    }

    /// Whether the directory is ours alone: a directory (not a link) owned by this user that
    /// nobody else can enter. In a shared temporary directory somebody else could have made it
    /// first, to plant or remove markers.
    fn is_private(&self) -> bool {
        is_private_dir(&self.dir)
    }

    fn ensure_dir(&self) -> io::Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.dir)
    }

    /// The directory, for tests.
    #[cfg(test)]
    fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(unix)]
fn is_private_dir(dir: &Path) -> bool {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return false;
    };
    // Permission bits for the group and for others.
    let shared = meta.permissions().mode() & 0o077;
    meta.is_dir() && Some(meta.uid()) == own_uid() && shared == 0
}

#[cfg(not(unix))]
fn is_private_dir(_dir: &Path) -> bool {
    false
}

/// This process's effective user id (the owner its files get).
#[cfg(unix)]
#[expect(
    clippy::unnecessary_wraps,
    reason = "the same signature as on platforms without user ids"
)]
fn own_uid() -> Option<u32> {
    Some(crate::cache::euid())
}

#[cfg(not(unix))]
fn own_uid() -> Option<u32> {
    None
}

/// Creates an empty private file at `path`, failing if it exists.
fn create_new(path: &Path) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// Whether the kubectl command that ran this call was already shown the error `text` by an
/// earlier call (within [`TOLD_WINDOW`]): then it is not printed again, so
/// that one kubectl command shows one plugin error among its own, however often it ran the
/// plugin. Only for calls from client-go (`KUBERNETES_EXEC_INFO` set), whose parent is the
/// kubectl process; a person running the plugin by hand always reads the error.
pub(crate) fn told_this_caller(text: &str) -> bool {
    let from_kubectl = env::var_os(env::KUBERNETES_EXEC_INFO).is_some_and(|v| !v.is_empty());
    if !from_kubectl {
        return false;
    }
    let (Some(caller), Some(handouts)) = (Caller::parent(), HandOuts::open_default()) else {
        return false;
    };
    // The same failure of the same exec entry for the same person: the arguments and the
    // home directory are part of what was told, so that another entry's error (or another
    // account's, run by the same parent) is still printed.
    let mut told = String::from(text);
    for part in std::env::args_os().chain(env::var_os(env::HOME)) {
        told.push('\0');
        told.push_str(&part.to_string_lossy());
    }
    handouts.told_before(&caller, &told, std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(cluster: &str) -> CacheKey {
        CacheKey::new("https://i", cluster, "kubectl-credential", None)
    }

    fn private_dir() -> (tempfile::TempDir, HandOuts) {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let handouts = HandOuts::new(tmp.path().join("markers"));
        (tmp, handouts)
    }

    #[test]
    fn reads_the_start_time_after_the_command_name() {
        // A command name with spaces and parentheses must not shift the fields.
        let stat = "4242 (my (odd) kubectl) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 123 4 18446744073709551615";
        assert_eq!(start_time(stat), Some(987_654));
        assert_eq!(start_time("4242 (x) S 1"), None);
        assert_eq!(start_time("no parenthesis"), None);
        if cfg!(target_os = "linux") {
            // The test runner has a parent with a start time.
            assert!(Caller::parent().is_some());
        }
    }

    #[test]
    fn an_error_is_told_once_per_caller_and_again_after_the_window() {
        let (_tmp, handouts) = private_dir();
        let kubectl = Caller::from_parts("boot", 100, 5000);
        let next_kubectl = Caller::from_parts("boot", 101, 5001);
        let now = SystemTime::now();
        let told = |caller: &Caller, message: &str, at: SystemTime| {
            handouts.told_before(caller, message, at)
        };
        assert!(!told(&kubectl, "unreachable", now), "first time: printed");
        assert!(
            told(&kubectl, "unreachable", now),
            "the same command again: spared"
        );
        assert!(
            !told(&kubectl, "login required", now),
            "another error: printed"
        );
        assert!(
            !told(&next_kubectl, "unreachable", now),
            "the next kubectl command: printed"
        );
        let later = now + TOLD_WINDOW + Duration::from_secs(1);
        assert!(
            !told(&kubectl, "unreachable", later),
            "a long-lived caller is told again after the window"
        );
    }

    #[test]
    fn a_marker_a_moment_ahead_of_now_counts_as_just_written() {
        let (_tmp, handouts) = private_dir();
        let kubectl = Caller::from_parts("boot", 100, 5000);
        let now = SystemTime::now();
        assert!(!handouts.told_before(&kubectl, "unreachable", now));
        // The marker's time is after a `now` read a moment before it was written.
        let a_moment_before = now - Duration::from_millis(500);
        assert!(
            handouts.told_before(&kubectl, "unreachable", a_moment_before),
            "a marker just written is recent, whatever the clocks' granularity"
        );
        let clock_moved_back = now - FILE_TIME_SLACK - Duration::from_secs(5);
        assert!(
            !handouts.told_before(&kubectl, "unreachable", clock_moved_back),
            "a marker from the future (the clock moved back): told again"
        );
    }

    #[test]
    fn the_same_caller_asking_again_for_the_same_token_is_a_retry() {
        let (_tmp, handouts) = private_dir();
        let kubectl = Caller::from_parts("boot", 100, 5000);
        let token = Secret::new("T1".to_owned());
        assert!(
            !handouts.record(&kubectl, &key("prod"), &token),
            "first ask"
        );
        assert!(
            handouts.record(&kubectl, &key("prod"), &token),
            "asked again"
        );
        assert!(handouts.record(&kubectl, &key("prod"), &token), "and again");

        // Another process, the same pid reused later, another key or another token: first asks.
        let other = [
            (Caller::from_parts("boot", 101, 5000), key("prod"), "T1"),
            (Caller::from_parts("boot", 100, 9000), key("prod"), "T1"),
            (Caller::from_parts("boot2", 100, 5000), key("prod"), "T1"),
            (kubectl.clone(), key("dev"), "T1"),
            (kubectl.clone(), key("prod"), "T2"),
        ];
        for (caller, key, token) in other {
            assert!(
                !handouts.record(&caller, &key, &Secret::new(token.to_owned())),
                "{caller:?} {token}"
            );
        }
        // Names show neither the token nor the caller.
        for item in fs::read_dir(handouts.dir()).into_iter().flatten().flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            assert!(!name.contains("T1") && !name.contains("5000"), "{name}");
            assert_eq!(name.len(), KEY_PREFIX_LEN + 33, "{name}");
        }
    }

    #[test]
    fn pruning_removes_the_keys_markers_and_old_ones_only() {
        let (_tmp, handouts) = private_dir();
        let kubectl = Caller::from_parts("boot", 100, 5000);
        let token = Secret::new("T1".to_owned());
        assert!(!handouts.record(&kubectl, &key("prod"), &token));
        assert!(!handouts.record(&kubectl, &key("dev"), &token));
        handouts.prune(&key("prod"), SystemTime::now());
        // prod's marker is gone (a new token is coming); dev's stays.
        assert!(!handouts.record(&kubectl, &key("prod"), &token));
        assert!(handouts.record(&kubectl, &key("dev"), &token));
        // A day later everything is old.
        handouts.prune(
            &key("other"),
            SystemTime::now() + MAX_MARKER_AGE + Duration::from_secs(60),
        );
        assert_eq!(fs::read_dir(handouts.dir()).map_or(99, Iterator::count), 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_enter_is_not_trusted() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_tmp, handouts) = private_dir();
        let kubectl = Caller::from_parts("boot", 100, 5000);
        let token = Secret::new("T1".to_owned());
        assert!(!handouts.record(&kubectl, &key("prod"), &token));
        let mode = fs::metadata(handouts.dir()).map_or(0, |m| m.permissions().mode() & 0o777);
        assert_eq!(mode, 0o700);
        // Somebody made it world-writable (or made it first): its markers mean nothing.
        fs::set_permissions(handouts.dir(), fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!handouts.record(&kubectl, &key("prod"), &token));
    }
}
