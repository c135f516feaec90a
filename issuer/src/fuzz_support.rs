//! Generators and helpers shared by the issuer's property tests (`http::fuzz_tests`,
//! `config::fuzz_tests`): text and JSON as an attacker writes them, near-valid documents with
//! one part broken, byte-level mutations, and the bounds every property checks. The plugin has
//! its own copy (`plugin/src/fuzz_tests.rs`): the crates share no test code.
//!
//! `PROPTEST_CASES=N` sets the case count of every property; see docs/fuzzing.md.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::{select, Index};

/// The configuration of one property: `default` cases unless `PROPTEST_CASES` says otherwise.
/// No failure files are written: a failure prints its shrunk input, which becomes a named
/// regression test.
pub(crate) fn config(default: u32) -> ProptestConfig {
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

/// Longest any one answer may take before it counts as a hang. Not a performance bound (the
/// benchmarks measure that): a debug build hashing passwords with argon2id on two cores
/// shared with a full test run took over 10 s once, so this is a minute; a parser that loops
/// or backtracks on some input misses it by far.
pub(crate) const TIME_BOUND: Duration = Duration::from_secs(60);

/// Runs `f` on another thread and fails if it takes longer than [`TIME_BOUND`], so that a hang
/// is a failure with the input named rather than a stuck test run. A panic in `f` is passed
/// on as it was, for proptest to shrink.
pub(crate) fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
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

// ---------------------------------------------------------------------------------------------
// Generators.

/// Text as an attacker writes it: any characters, identifiers, control and bidi characters,
/// escapes, and sometimes very long runs.
pub(crate) fn text() -> impl Strategy<Value = String> {
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
pub(crate) fn json_value() -> impl Strategy<Value = String> {
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
pub(crate) fn json_object(
    fields: Vec<(&'static str, BoxedStrategy<String>)>,
) -> BoxedStrategy<String> {
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

pub(crate) fn json_string(s: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    s.prop_map(|s| serde_json::Value::String(s).to_string())
        .boxed()
}

pub(crate) fn json_int(range: std::ops::RangeInclusive<i64>) -> BoxedStrategy<String> {
    prop_oneof![
        3 => range.prop_map(|n| n.to_string()),
        1 => select(vec![i64::MIN, i64::MAX, 0, -1]).prop_map(|n| n.to_string()),
    ]
    .boxed()
}

/// `seed` with a few bytes flipped, inserted or removed, or cut short.
pub(crate) fn mutated(seed: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<u8>> {
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
pub(crate) struct Bytes(pub(crate) Vec<u8>);

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
pub(crate) fn bytes_like(seed: BoxedStrategy<String>) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        3 => mutated(seed.clone()),
        6 => seed.prop_map(String::into_bytes),
    ]
    .prop_map(Bytes)
}
