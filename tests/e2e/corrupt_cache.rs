//! A token cache file that is not a well-formed current-version entry (garbage, cut short by a
//! full disk or a crash, written by an older plugin, empty) is a cache miss, never a crash:
//! kubectl gets the login hint, and the next `login` overwrites the file.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use credential_shared::exec_credential::ApiVersion;
use serde_json::Value;

use crate::world::{assert_login_required, world, READERS};

/// Replaces the content of `path` with `bytes`, keeping it private (0600) if it is created anew.
#[track_caller]
fn overwrite(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

const GARBAGE: &[u8] = b"\x00\x9f\xffnot json at all {{{\n\x07";

#[test]
fn corrupt_truncated_old_or_empty_cache_files_are_misses() {
    let world = world();
    let (kim, laptop) = world.signed_in("kim", &[READERS]);
    let files = laptop.env.token_files();
    assert_eq!(files.len(), 1, "one login, one token file: {files:?}");
    let path = files[0].clone();
    let real = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read the cache: {e}"));
    // The untouched file is a hit, so the misses below are caused by the damage alone.
    laptop.get_credential(ApiVersion::V1).assert_success();

    let mut old: Value = serde_json::from_slice(&real)
        .unwrap_or_else(|e| panic!("the real cache file is not JSON: {e}"));
    old["v"] = Value::from(0);
    let old = serde_json::to_vec(&old).unwrap_or_else(|e| panic!("{e}"));
    let cases: [(&str, Vec<u8>); 4] = [
        ("garbage bytes", GARBAGE.to_vec()),
        ("a truncated copy", real[..real.len() / 2].to_vec()),
        ("version 0", old),
        ("an empty file", Vec::new()),
    ];
    for (what, bytes) in cases {
        overwrite(&path, &bytes);
        let out = laptop.get_credential(ApiVersion::V1);
        assert!(
            !out.stderr.contains("panicked"),
            "with {what} in the cache the plugin crashed: {out}"
        );
        assert_login_required(&out);
        assert!(
            out.stdout.is_empty(),
            "with {what} in the cache something went to stdout: {out}"
        );
    }

    // Interactive: login works over a garbage file, and kubectl then works.
    overwrite(&path, GARBAGE);
    laptop.log_in(&kim);
    let entry = laptop.cached_token();
    assert_eq!(entry.v, 1, "login did not write a current entry: {entry:?}");
    laptop.kubectl(&["get", "namespaces"]).assert_success();
}
