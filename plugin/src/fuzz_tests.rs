//! Property tests ("fuzzing" on the stable toolchain) of every parser in the plugin that reads
//! bytes someone else may have written: `KUBERNETES_EXEC_INFO`, the token cache (file and
//! keyring backends, entries, the index), backoff and pending-request records, the claims of an
//! access token, and the kubeconfig `setup` merges into. Each property says: no panic, an
//! answer within a time bound, and what the answer may be. Inputs are both arbitrary bytes and
//! near-valid documents with one part broken (huge numbers, deep nesting, long or odd text).
//!
//! `PROPTEST_CASES=N` sets the case count of every property (the defaults below keep the whole
//! file to a few seconds in `cargo test`); see docs/fuzzing.md for long runs.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credential_shared::api::{ClusterInfo, ClusterList};
use proptest::prelude::*;
use proptest::sample::{select, Index};

use crate::cache::{CacheKey, Index as SessionIndex, KeyringStore, TokenCache};
use crate::commands::requests::Pending;
use crate::kubeconfig::setup::{self, ExecSettings};

/// The configuration of one property: `default` cases unless `PROPTEST_CASES` says otherwise.
/// No failure files are written: a failure prints its shrunk input, which becomes a named
/// regression test.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Longest any one parse may take. Generous (debug build, two cores shared with a full test
/// run); a parser that loops or backtracks on some input misses it by far.
const TIME_BOUND: Duration = Duration::from_secs(10);

/// Runs `f` on another thread and fails if it takes longer than [`TIME_BOUND`], so that a hang
/// is a failure with the input named rather than a stuck test run. A panic in `f` is passed
/// on as it was, for proptest to shrink.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIME_BOUND) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("the parser's thread ended without an answer"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("no answer within {TIME_BOUND:?}: a hang")
        }
    }
}

/// An entry as a sign-in at `iat` leaves it.
fn entry(iat: i64, exp: i64) -> crate::cache::Entry {
    crate::cache::Entry {
        access_token: crate::base::secret::Secret::new("AT".to_owned()),
        iat,
        exp,
        refresh_token: Some(crate::base::secret::Secret::new("RT".to_owned())),
        session_expires_at: Some(exp.saturating_add(3600)),
        username: "alice".to_owned(),
        origin: None,
        api_server: None,
    }
}

/// The arguments of `whoami --issuer https://issuer.example --cluster prod`.
fn common_args() -> crate::base::target::Target {
    use clap::Parser as _;
    let cli = crate::cli::Cli::try_parse_from([
        "kubectl-credential",
        "whoami",
        "--issuer",
        "https://issuer.example",
        "--cluster",
        "prod",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let crate::cli::Command::Whoami(crate::cli::WhoamiArgs { common, .. }) = cli.command else {
        panic!("not whoami")
    };
    common.resolve().unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------------
// Generators.

/// Text as an attacker writes it: any characters, identifiers, control and bidi characters,
/// escapes, and sometimes very long runs.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        3 => "[a-zA-Z0-9._:/@-]{0,40}",
        1 => (any::<char>(), 0..20_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        2 => select(vec![
            "", "\u{0}", "\u{1b}[2J", "\u{202e}", "\u{feff}", "\\", "\"", "'", "%00", "%ff", "\r\n",
            "é", "\u{10ffff}", "..", "../../etc/passwd", "~", "*", "&a", "!!binary", "<<",
        ])
        .prop_map(str::to_owned),
    ]
}

/// One JSON value as text: every kind, numbers no integer type holds, strings with escapes and
/// lone surrogates, and nesting far beyond any parser's recursion limit.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "null", "true", "false", "0", "-0", "1", "-1", "0.5", "1e400", "-1e400", "1E+2",
            "18446744073709551616", "-9223372036854775809", "9223372036854775807",
            "-9223372036854775808", "4294967296", "99999999999999999999999999999999",
            "\"\"", "\"\\ud800\"", "\"\\u0000\"", "\"\\uDFFF\\uD800\"", "[]", "{}", "[1,2", "{\"a\"",
        ])
        .prop_map(str::to_owned),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:e}")),
        3 => text().prop_map(|s| serde_json::Value::String(s).to_string()),
        1 => (1..3000usize, select(vec![("[", "]"), ("{\"a\":", "}"), ("[{\"b\":", "}]")]))
            .prop_map(|(n, (open, close))| format!("{}1{}", open.repeat(n), close.repeat(n))),
        1 => prop::collection::vec(text(), 0..8)
            .prop_map(|v| serde_json::Value::from(v).to_string()),
    ]
}

/// A JSON object with these fields. Two in five documents are plausible throughout, two in five
/// have exactly one field left out or given an arbitrary value, and the rest are chaos: any
/// field left out, arbitrary or plausible, a field given twice, a field nobody knows.
fn json_object(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
    let names: Vec<&'static str> = fields.iter().map(|(name, _)| *name).collect();
    let n = names.len();
    let plausible: Vec<BoxedStrategy<String>> = fields.into_iter().map(|(_, s)| s).collect();
    let arbitrary: Vec<BoxedStrategy<String>> = (0..n).map(|_| json_value().boxed()).collect();
    let extra = (text(), json_value());
    (
        plausible,
        arbitrary,
        prop::collection::vec(0..4u8, n),
        prop_oneof![2 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)],
        any::<Index>(),
        extra,
        any::<bool>(),
    )
        .prop_map(
            move |(plausible, arbitrary, choices, mode, broken, extra, twice)| {
                let broken = broken.index(n.max(1));
                let mut pairs: Vec<(String, String)> = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let choice = match mode {
                        1 if i == broken => choices[i] % 2,
                        0 | 1 => 2,
                        _ => choices[i],
                    };
                    match choice {
                        0 => {}
                        1 => pairs.push(((*name).to_owned(), arbitrary[i].clone())),
                        _ => pairs.push(((*name).to_owned(), plausible[i].clone())),
                    }
                }
                if mode == 2 {
                    if twice {
                        if let Some(first) = pairs.first().cloned() {
                            pairs.push(first);
                        }
                    } else {
                        pairs.push(extra);
                    }
                }
                let body: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.clone())))
                    .collect();
                format!("{{{}}}", body.join(","))
            },
        )
        .boxed()
}

fn json_string(s: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    s.prop_map(|s| serde_json::Value::String(s).to_string())
        .boxed()
}

fn json_int(range: std::ops::RangeInclusive<i64>) -> BoxedStrategy<String> {
    prop_oneof![
        3 => range.prop_map(|n| n.to_string()),
        1 => select(vec![i64::MIN, i64::MAX, 0, -1]).prop_map(|n| n.to_string()),
    ]
    .boxed()
}

/// `seed` with a few bytes flipped, inserted or removed, or cut short.
fn mutated(seed: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<u8>> {
    (
        seed,
        prop::collection::vec((any::<Index>(), any::<u8>(), 0..4u8), 0..6),
    )
        .prop_map(|(seed, ops)| {
            let mut b = seed.into_bytes();
            for (i, byte, op) in ops {
                match op {
                    0 if !b.is_empty() => {
                        let at = i.index(b.len());
                        b[at] = byte;
                    }
                    1 => b.insert(i.index(b.len() + 1), byte),
                    2 if !b.is_empty() => {
                        b.remove(i.index(b.len()));
                    }
                    _ => b.truncate(i.index(b.len() + 1)),
                }
            }
            b
        })
}

/// Bytes that print as an escaped byte string when a property fails.
#[derive(Clone)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Bytes: arbitrary, near-valid `seed` documents, or valid ones.
fn bytes_like(seed: BoxedStrategy<String>) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        3 => mutated(seed.clone()),
        6 => seed.prop_map(String::into_bytes),
    ]
    .prop_map(Bytes)
}

/// A time the plugin's clock can read: from 1970 to the year 9999.
fn now() -> impl Strategy<Value = i64> {
    0..=253_402_300_799i64
}

// ---------------------------------------------------------------------------------------------
// KUBERNETES_EXEC_INFO.

fn exec_info_doc() -> BoxedStrategy<String> {
    let version = json_string(prop_oneof![
        4 => select(vec![
            "client.authentication.k8s.io/v1",
            "client.authentication.k8s.io/v1beta1",
            "client.authentication.k8s.io/v1alpha1",
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ]);
    let cluster = json_object(vec![
        ("server", json_string(text())),
        ("certificate-authority-data", json_string(text())),
        ("tls-server-name", json_string(text())),
        ("insecure-skip-tls-verify", Just("true".to_owned()).boxed()),
        ("config", json_value().boxed()),
    ]);
    let spec = json_object(vec![
        (
            "interactive",
            select(vec!["true", "false"])
                .prop_map(str::to_owned)
                .boxed(),
        ),
        ("cluster", cluster),
    ]);
    json_object(vec![
        ("kind", json_string(Just("ExecCredential".to_owned()))),
        ("apiVersion", version),
        ("spec", spec),
    ])
}

proptest! {
    #![proptest_config(config(512))]

    /// Whatever kubectl (or whoever sets the environment) puts in `KUBERNETES_EXEC_INFO`, the
    /// plugin answers with a usage error or a request it can serve, and what it reads from it
    /// (the API server and its CA) flows into the cache key and the API-server check safely.
    #[test]
    fn exec_info_is_parsed_or_refused(raw in bytes_like(exec_info_doc()), tty in any::<bool>()) {
        bounded(move || {
            let raw = OsStr::from_bytes(&raw);
            let Ok(info) = crate::flow::exec::parse_exec_info(Some(raw), || tty) else {
                return;
            };
            let text = raw.to_str().unwrap_or_else(|| panic!("accepted non-UTF-8 {raw:?}"));
            if text.trim().is_empty() {
                assert!(!info.from_kubectl);
            } else {
                assert!(info.from_kubectl);
            }
            let key = CacheKey::new("https://i", "c", "k", info.cluster.as_ref());
            assert_eq!(key.as_hex().len(), 64);
            let mut entry = entry(0, 100);
            entry.api_server = Some("https://api.example:6443".to_owned());
            let _ = crate::flow::exec::check_api_server(&info, &entry, "c");
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The claims of an access token (read, not verified, for `whoami` and the cache).

/// base64url text of `json`, with or without padding, sometimes with characters of the other
/// alphabet or garbage.
fn b64(json: BoxedStrategy<String>) -> BoxedStrategy<String> {
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    prop_oneof![
        4 => json.clone().prop_map(|j| URL_SAFE_NO_PAD.encode(j)),
        1 => json.clone().prop_map(|j| URL_SAFE.encode(j)),
        1 => json.prop_map(|j| base64::engine::general_purpose::STANDARD.encode(j)),
        1 => "[A-Za-z0-9_=+/.!-]{0,64}",
    ]
    .boxed()
}

fn claims_doc() -> BoxedStrategy<String> {
    let time = json_int(0..=4_000_000_000);
    json_object(vec![
        ("iss", json_string(text())),
        ("sub", json_string(text())),
        ("aud", json_string(text())),
        ("iat", time.clone()),
        ("nbf", time.clone()),
        ("exp", time),
        ("jti", json_string(text())),
        ("preferred_username", json_string(text())),
        ("email", json_string(text())),
        (
            "groups",
            prop::collection::vec(text(), 0..20)
                .prop_map(|g| serde_json::Value::from(g).to_string())
                .boxed(),
        ),
        ("cluster", json_string(text())),
        ("sid", json_string(text())),
        (
            "grants",
            prop::collection::vec(text(), 0..4)
                .prop_map(|g| serde_json::Value::from(g).to_string())
                .boxed(),
        ),
    ])
}

/// A token in JWT shape: three parts (sometimes two or four), each base64url of JSON.
pub(crate) fn jwt_like() -> BoxedStrategy<String> {
    let header = json_object(vec![
        ("alg", json_string(Just("ES256".to_owned()))),
        ("typ", json_string(Just("JWT".to_owned()))),
        ("kid", json_string(text())),
    ]);
    prop_oneof![
        6 => (b64(header.clone()), b64(claims_doc()), "[A-Za-z0-9_-]{0,90}")
            .prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        1 => (b64(header), b64(claims_doc())).prop_map(|(h, p)| format!("{h}.{p}")),
        1 => prop::collection::vec("[A-Za-z0-9_-]{0,20}", 0..6).prop_map(|p| p.join(".")),
        1 => text(),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(512))]

    /// Any token, however shaped, decodes to claims or to an error that says which part is
    /// wrong, and the report `whoami` prints from it is built.
    #[test]
    fn token_claims_are_decoded_or_refused(token in jwt_like(), now in now()) {
        bounded(move || {
            let decoded = crate::base::jwt::decode_claims(&token);
            if let Ok(claims) = &decoded {
                assert_eq!(token.split('.').count(), 3);
                let _ = (claims.exp.saturating_sub(claims.iat), &claims.groups);
            }
            let mut entry = entry(now, now.saturating_add(300));
            entry.access_token = crate::base::secret::Secret::new(token);
            let _ = entry.groups();
            let args = common_args();
            let _ = crate::commands::show::whoami(&entry, &args, now);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The token cache.

fn entry_doc() -> BoxedStrategy<String> {
    let time = json_int(-10_000_000_000..=300_000_000_000);
    json_object(vec![
        (
            "v",
            prop_oneof![4 => Just("1".to_owned()), 1 => json_value()].boxed(),
        ),
        ("access_token", json_string(text())),
        ("iat", time.clone()),
        ("exp", time.clone()),
        ("refresh_token", json_string(text())),
        ("session_expires_at", time),
        ("username", json_string(text())),
        ("issuer", json_string(text())),
        ("cluster", json_string(text())),
        ("client_id", json_string(text())),
        ("account", json_string(text())),
        ("api_server", json_string(text())),
        (
            "groups",
            prop::collection::vec(text(), 0..8)
                .prop_map(|g| serde_json::Value::from(g).to_string())
                .boxed(),
        ),
    ])
}

/// Everything the plugin does with an entry it loaded: hand it to kubectl, decide whether to
/// refresh, and show it.
fn use_entry(entry: &crate::cache::Entry, now: i64) {
    let _ = (entry.is_fresh(now), entry.is_alive(now), entry.margin());
    let _ = entry.has_live_session(now);
    let mut out = Vec::new();
    let version = credential_shared::exec_credential::ApiVersion::V1;
    if crate::flow::exec::write_credential(&mut out, version, entry).is_ok() {
        let doc: serde_json::Value = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("the ExecCredential is not JSON: {e}"));
        assert_eq!(out.split(|b| *b == b'\n').count(), 2, "one line");
        assert!(doc["status"]["token"].is_string());
    }
    let args = common_args();
    let _ = crate::commands::show::whoami(entry, &args, now);
}

/// A private directory (0700, as the plugin makes them) at `path`, with its parents.
fn private_dir(path: &std::path::Path) {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Writes `bytes` to a new file of mode 0600 (as the plugin writes cache files).
fn write_private(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The plugin's cache root in a temporary directory.
fn cache_root(dir: &tempfile::TempDir) -> crate::cache::Root {
    crate::cache::Root::new(dir.path(), "kubectl-credential")
}

proptest! {
    #![proptest_config(config(256))]

    /// A cache file with any content is a miss or an entry; an entry is usable in every way
    /// the plugin uses one, and storing it and reading it back gives the same entry.
    #[test]
    fn file_cache_entries_are_read_or_missed(raw in bytes_like(entry_doc()), now in now()) {
        bounded(move || {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let key = CacheKey::new("https://i", "c", "k", None);
            let root = cache_root(&dir);
            let tokens = root.path().join("tokens");
            private_dir(&tokens);
            write_private(&tokens.join(format!("{}.json", key.as_hex())), &raw);
            let cache = TokenCache::File(crate::cache::FileStore::new(root));
            let loaded = cache.load(&key).unwrap_or_else(|e| panic!("{e}"));
            let Some(entry) = loaded else { return };
            assert!(!entry.access_token.expose().is_empty());
            use_entry(&entry, now);
            cache.store(&key, &entry).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cache.load(&key).ok().flatten(), Some(entry));
        });
    }

    /// The session index, whatever it holds, lists only well-formed keys (never a path), and
    /// `status` over the file backend works with it.
    #[test]
    fn the_index_reads_as_sessions_or_empty(raw in bytes_like(index_doc()), now in now()) {
        bounded(move || {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let root = cache_root(&dir);
            private_dir(root.path());
            write_private(&root.path().join("index.json"), &raw);
            let index = SessionIndex::new(cache_root(&dir));
            let listed = index.load().unwrap_or_else(|e| panic!("{e}"));
            for key in listed.keys() {
                assert_eq!(CacheKey::from_hex(key.as_hex()).as_ref(), Some(key));
            }
            let cache = TokenCache::File(crate::cache::FileStore::new(cache_root(&dir)));
            for (key, _) in listed.iter().take(3) {
                let entry = entry(now, now.saturating_add(60));
                cache.store(key, &entry).unwrap_or_else(|e| panic!("{e}"));
            }
            let sessions = cache.list(&index).unwrap_or_else(|e| panic!("{e}"));
            let _ = crate::commands::show::status(&sessions, now, "file");
        });
    }

    /// A backoff record with any content is no backoff or one that ends within what its kind
    /// allows (`BACKOFF_SECS` for an unreachable issuer, the wait asked for, never more than
    /// `MAX_WAIT_SECS`), with an explanation that is one bounded, escaped line: a record
    /// cannot keep the plugin away from the issuer for long, nor reach the terminal raw.
    #[test]
    fn backoff_records_never_hold_back_for_long(record in backoff_record(), now in now()) {
        bounded(move || {
            let raw = record.bytes(now);
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let key = CacheKey::new("https://i", "c", "k", None);
            let root = cache_root(&dir);
            let records = root.path().join("backoff");
            private_dir(&records);
            write_private(&records.join(key.as_hex()), &raw);
            let backoff = crate::cache::Backoff::new(root, &key);
            if let Some(held) = backoff.active(now) {
                let until = held.until;
                match held.hold {
                    crate::cache::Hold::Unreachable => {
                        assert!(until > now && until - now <= 30 /* BACKOFF_SECS */);
                    }
                    crate::cache::Hold::Answered { wait, reason, .. } => {
                        assert!(wait <= 300 /* MAX_WAIT_SECS */);
                        assert!(until > now && until - now <= i64::try_from(wait).unwrap_or(0));
                        if let Some(reason) = reason {
                            assert!(!reason.chars().any(char::is_control), "{reason:?}");
                            assert!(reason.chars().count() <= 200 + 32, "{reason:?}");
                        }
                    }
                }
            }
        });
    }

    /// Keyring items with any content (a value, or a split value's header and parts, complete
    /// or not) read as the value or as a miss, after reading a bounded number of items.
    #[test]
    fn keyring_items_read_as_a_value_or_a_miss(
        head in keyring_head(),
        parts in prop::collection::vec(
            prop_oneof![
                1 => Just(None),
                4 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
                4 => text().prop_map(|t| Some(t.into_bytes())),
            ],
            0..40,
        ),
    ) {
        bounded(move || {
            let key = CacheKey::new("https://i", "c", "k", None);
            let items = Arc::new(Mutex::new(MockItems::default()));
            {
                let mut items = lock(&items);
                let digest = String::from_utf8_lossy(&head)
                    .split(' ')
                    .nth(4)
                    .unwrap_or_default()
                    .to_owned();
                items.secrets.insert(key.as_hex().to_owned(), head.clone());
                for (i, part) in parts.into_iter().enumerate() {
                    if let Some(part) = part {
                        let account = format!("{}~{digest}~{}", key.as_hex(), i + 1);
                        items.secrets.insert(account, part);
                    }
                }
            }
            let store = mock_keyring(&items);
            let loaded = store.load(&key).unwrap_or_else(|e| panic!("{e}"));
            let reads = lock(&items).reads;
            assert!(reads <= 1 + 32, "{reads} keyring reads for one value");
            if let Some(value) = loaded {
                if !value.starts_with("kubectl-credential chunks v1 ") {
                    assert_eq!(value.as_bytes(), &head[..]);
                }
            }
        });
    }
}

fn index_doc() -> BoxedStrategy<String> {
    let key = prop_oneof![
        3 => any::<[u8; 32]>().prop_map(|b| b.iter().fold(String::new(), |mut hex, x| {
            let _ = write!(hex, "{x:02x}");
            hex
        })),
        1 => text(),
    ];
    let origin = json_object(vec![
        ("issuer", json_string(text())),
        ("cluster", json_string(text())),
        ("client_id", json_string(text())),
        ("account", json_string(text())),
    ]);
    let sessions = prop::collection::vec((key, origin), 0..4).prop_map(|pairs| {
        let body: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k)))
            .collect();
        format!("{{{}}}", body.join(","))
    });
    json_object(vec![
        (
            "v",
            prop_oneof![4 => Just("1".to_owned()), 1 => json_value()].boxed(),
        ),
        ("sessions", sessions.boxed()),
    ])
}

/// A backoff record: a time near `now` (written as `record` writes it, or with spaces, signs
/// and other spellings), then a kind line as `record` writes it or not and an explanation;
/// or anything else.
#[derive(Debug, Clone)]
enum BackoffRecord {
    Near {
        offset: i64,
        spelling: u8,
        kind: String,
        reason: String,
    },
    Raw(Bytes),
}

fn backoff_record() -> impl Strategy<Value = BackoffRecord> {
    let raw = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        select(vec!["", "-", "+5", "1e9", "99999999999999999999", "0x10"]).prop_map(str::to_owned),
        text(),
    ]
    .boxed();
    prop_oneof![
        3 => (-400..400i64, 0..4u8, backoff_kind(), text()).prop_map(|(offset, spelling, kind, reason)| {
            BackoffRecord::Near { offset, spelling, kind, reason }
        }),
        2 => bytes_like(raw).prop_map(BackoffRecord::Raw),
    ]
}

/// The kind line of a backoff record: none (the first releases), as `record` writes it, or
/// near that.
fn backoff_kind() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        1 => Just("unreachable".to_owned()),
        3 => (any::<u16>(), 0..400u64, 0..3u8)
            .prop_map(|(status, wait, asked)| format!("answered {status} {wait} {asked}")),
        1 => text(),
    ]
}

impl BackoffRecord {
    fn bytes(&self, now: i64) -> Vec<u8> {
        match self {
            Self::Near {
                offset,
                spelling,
                kind,
                reason,
            } => {
                let t = now.saturating_add(*offset);
                let time = match spelling {
                    0 => t.to_string(),
                    1 => format!(" {t}"),
                    2 => format!("+{t}"),
                    _ => format!("{t}.0"),
                };
                if kind.is_empty() {
                    time.into_bytes()
                } else {
                    format!("{time}\n{kind}\n{reason}\n").into_bytes()
                }
            }
            Self::Raw(b) => b.0.clone(),
        }
    }
}

fn keyring_head() -> impl Strategy<Value = Vec<u8>> {
    let digest = prop_oneof![
        3 => "[0-9a-f]{16}",
        1 => "[0-9A-Fa-z]{0,20}",
    ];
    let parts = prop_oneof![
        3 => (0usize..40).prop_map(|n| n.to_string()),
        1 => select(vec!["+2", "02", "-1", "18446744073709551616", "9999999999", " 2"])
            .prop_map(str::to_owned),
    ];
    prop_oneof![
        4 => (parts, digest).prop_map(|(n, d)| format!("kubectl-credential chunks v1 {n} {d}").into_bytes()),
        2 => entry_doc().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..128),
    ]
}

/// Keyring items of the mock, and how many reads it served.
#[derive(Debug, Default)]
struct MockItems {
    secrets: BTreeMap<String, Vec<u8>>,
    reads: usize,
}

fn lock(items: &Mutex<MockItems>) -> std::sync::MutexGuard<'_, MockItems> {
    items
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One item of the mock keyring.
#[derive(Debug)]
struct MockItem {
    account: String,
    items: Arc<Mutex<MockItems>>,
}

impl keyring::credential::CredentialApi for MockItem {
    fn set_secret(&self, secret: &[u8]) -> keyring::Result<()> {
        lock(&self.items)
            .secrets
            .insert(self.account.clone(), secret.to_vec());
        Ok(())
    }

    fn get_secret(&self) -> keyring::Result<Vec<u8>> {
        let mut items = lock(&self.items);
        items.reads += 1;
        items
            .secrets
            .get(&self.account)
            .cloned()
            .ok_or(keyring::Error::NoEntry)
    }

    fn delete_credential(&self) -> keyring::Result<()> {
        lock(&self.items)
            .secrets
            .remove(&self.account)
            .map(|_| ())
            .ok_or(keyring::Error::NoEntry)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn mock_keyring(items: &Arc<Mutex<MockItems>>) -> KeyringStore {
    let items = Arc::clone(items);
    KeyringStore::with_opener(move |account| {
        Ok(keyring::Entry::new_with_credential(Box::new(MockItem {
            account: account.to_owned(),
            items: Arc::clone(&items),
        })))
    })
}

// ---------------------------------------------------------------------------------------------
// Pending-request records.

fn pending_doc() -> BoxedStrategy<String> {
    let id = prop_oneof![3 => "[0-9a-f]{10}", 1 => text()];
    let pair = (id, json_int(-300_000_000_000..=300_000_000_000))
        .prop_map(|(id, at)| format!("[{},{at}]", serde_json::Value::String(id)));
    let ids = prop_oneof![
        4 => prop::collection::vec(pair, 0..8).prop_map(|p| format!("[{}]", p.join(","))),
        1 => (1..5000usize).prop_map(|n| format!("[{}]", vec!["[\"4f2a9c01de\",1767225600]"; n].join(","))),
        1 => json_value(),
    ];
    json_object(vec![
        ("ids", ids.boxed()),
        ("checked_at", json_int(-300_000_000_000..=300_000_000_000)),
    ])
}

proptest! {
    #![proptest_config(config(512))]

    /// A pending-request record with any content is none, or a short list of ids the issuer
    /// could have given: `get` asks about each (on kubectl's path, with a timeout), so the list
    /// is bounded, and deciding whether to ask cannot overflow whatever the times say.
    #[test]
    fn pending_records_are_short_and_well_formed(raw in bytes_like(pending_doc()), now in now()) {
        bounded(move || {
            let Some(p) = Pending::parse(&raw, now) else { return };
            assert!(p.ids.len() <= 32, "{} ids", p.ids.len());
            for (id, _) in &p.ids {
                assert!(!id.is_empty() && id.len() <= 64);
                assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id:?}");
            }
            let _ = p.due(now);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The kubeconfig `setup` merges into.

fn yaml_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9._:/-]{0,20}",
        2 => text().prop_map(|t| serde_json::Value::String(t).to_string()),
        1 => select(vec![
            "~", "null", "true", "no", "0x1f", "1e400", ".nan", "-.inf", "''", "\"\"", "!!binary aGk=",
            "!custom x", "*undefined", "&a x", "[1, 2", "{a: 1", "|\n  block", ">-\n  folded", "? complex",
            "18446744073709551616", "2001-12-14t21:59:43.10-05:00", "<<: {a: 1}",
        ])
        .prop_map(str::to_owned),
    ]
}

/// A kubeconfig-like YAML document: the keys `setup` looks at, holding lists of entries, odd
/// scalars, anchors and aliases, merge keys and tags.
fn kubeconfig_doc() -> BoxedStrategy<String> {
    let entry = (
        prop_oneof![3 => Just("prod".to_owned()), 1 => yaml_scalar()],
        select(vec!["cluster", "user", "context", "other"]),
        yaml_scalar(),
        any::<bool>(),
    )
        .prop_map(|(name, inner, value, ours)| {
            let ext = if ours {
                "\n    extensions:\n    - name: kubectl-credential\n      extension: {managed: true}"
            } else {
                ""
            };
            format!("- name: {name}\n  {inner}:\n    server: {value}{ext}")
        });
    let list = prop_oneof![
        4 => prop::collection::vec(entry, 0..4).prop_map(|e| format!("\n{}", e.join("\n"))),
        1 => yaml_scalar().prop_map(|s| format!(" {s}")),
        1 => Just(" *l".to_owned()),
    ];
    let key = select(vec![
        "clusters",
        "users",
        "contexts",
        "current-context",
        "preferences",
        "<<",
    ]);
    prop_oneof![
        6 => prop::collection::vec((key, list), 0..5).prop_map(|kv| {
            let mut doc = String::from("apiVersion: v1\nkind: Config\nanchor: &l []\n");
            for (k, v) in kv {
                let _ = writeln!(doc, "{k}:{v}");
            }
            doc
        }),
        1 => (1..2000usize).prop_map(|n| format!("a: {}1{}", "[".repeat(n), "]".repeat(n))),
        1 => (1..2000usize).prop_map(|n| {
            (0..n).map(|i| format!("{}- ", " ".repeat(i * 2))).collect::<Vec<_>>().join("\n")
        }),
        1 => (2..12usize).prop_map(billion_laughs),
        1 => yaml_scalar(),
    ]
    .boxed()
}

/// The YAML form of the billion laughs: `depth` levels of aliases, each ten of the previous.
fn billion_laughs(depth: usize) -> String {
    let mut doc = String::from("l0: &l0 [lol]\n");
    for i in 1..depth {
        let prev = vec![format!("*l{}", i - 1); 10].join(", ");
        let _ = writeln!(doc, "l{i}: &l{i} [{prev}]");
    }
    let _ = writeln!(doc, "clusters: *l{}", depth - 1);
    doc
}

fn cluster_list() -> impl Strategy<Value = ClusterList> {
    let cluster = (
        prop_oneof![3 => Just("prod".to_owned()), 1 => text()],
        prop::option::of(prop_oneof![3 => Just("https://prod:6443".to_owned()), 1 => text()]),
        prop::option::of(text()),
    )
        .prop_map(|(name, server, ca)| ClusterInfo {
            name,
            server,
            certificate_authority_data: ca,
            audience: "kubernetes".to_owned(),
        });
    prop::collection::vec(cluster, 0..3).prop_map(|clusters| ClusterList {
        issuer: "https://issuer.example".to_owned(),
        clusters,
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever the existing kubeconfig holds, and whatever cluster names the issuer lists,
    /// `setup` reads it or says it cannot; a merge it makes can be written, and running it
    /// again changes nothing.
    #[test]
    fn kubeconfigs_are_merged_or_refused(
        raw in bytes_like(kubeconfig_doc()),
        list in cluster_list(),
    ) {
        bounded(move || {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("config");
            std::fs::write(&path, &raw).unwrap_or_else(|e| panic!("{e}"));
            let Ok(existing) = setup::read(&path) else { return };
            let exec = ExecSettings {
                command: "kubectl-credential".to_owned(),
                issuer: "https://issuer.example".to_owned(),
                issuer_ca: None,
                file_cache: false,
                machine: None,
            };
            let Ok((doc, _)) = setup::merge(existing.clone(), &path, &list, &exec) else {
                return;
            };
            let written = setup::write(&path, existing.as_ref(), &doc, 42)
                .unwrap_or_else(|e| panic!("a merged kubeconfig cannot be written: {e}"));
            let _ = written;
            let again = setup::read(&path)
                .unwrap_or_else(|e| panic!("a written kubeconfig does not read back: {e}"));
            let (twice, _) = setup::merge(again.clone(), &path, &list, &exec)
                .unwrap_or_else(|e| panic!("a merged kubeconfig does not merge again: {e}"));
            assert_eq!(setup::write(&path, again.as_ref(), &twice, 43).ok(), Some(setup::Written::Unchanged));
        });
    }
}
