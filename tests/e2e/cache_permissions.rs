//! A token cache file that others could read holds an exposed refresh token: the plugin does
//! not use it, says which file and why in one line, ends the session at the issuer, removes the
//! file, and asks for a new sign-in (kubectl, which cannot talk to the person, gets exit 3 and
//! the login hint). A symbolic link planted in the cache directory is never followed.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use credential_shared::exec_credential::ApiVersion;

use crate::world::{assert_login_required, refused_refresh, world, READERS};

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[test]
fn a_token_file_others_can_read_is_ended_at_the_issuer_and_removed() {
    let world = world();
    let (lena, laptop) = world.signed_in("lena", &[READERS]);
    // The private file is a hit, so what follows is caused by the mode alone.
    laptop.get_credential(ApiVersion::V1).assert_success();
    let refresh_token = laptop.cached_token().refresh_token;
    let files = laptop.env.token_files();
    assert_eq!(files.len(), 1, "one login, one token file: {files:?}");
    let path = files[0].clone();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
    let out = laptop.get_credential(ApiVersion::V1);
    assert_login_required(&out);
    assert!(
        out.stdout.is_empty(),
        "an exposed token was handed out: {out}"
    );
    let line = format!(
        "kubectl-credential: {} is readable by others (mode 0644): its session is treated as exposed, ended and removed; sign in again",
        path.display()
    );
    out.assert_stderr_contains(&line);
    let mentions = out
        .stderr
        .lines()
        .filter(|l| l.contains(&*path.to_string_lossy()))
        .count();
    assert_eq!(mentions, 1, "the file is explained in one line: {out}");
    assert!(!exists(&path), "the exposed token file is still there");

    // The session is over at the issuer, not only on this machine.
    refused_refresh(
        &world.issuer,
        &refresh_token,
        "the issuer still accepts the exposed refresh token",
    );

    // A new sign-in stores a private file again (`cached_token` checks 0600), and kubectl works.
    laptop.log_in(&lena);
    let _ = laptop.cached_token();
    laptop.kubectl(&["get", "namespaces"]).assert_success();
}

#[test]
fn a_link_planted_for_a_token_file_is_not_followed() {
    let world = world();
    let (_omar, laptop) = world.signed_in("omar", &[READERS]);
    let files = laptop.env.token_files();
    assert_eq!(files.len(), 1, "one login, one token file: {files:?}");
    let path = files[0].clone();
    // A valid, private entry behind the link: only not following it makes this a miss.
    let target = laptop.env.cache_home().join("planted.json");
    std::fs::rename(&path, &target).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&target, &path).unwrap_or_else(|e| panic!("{e}"));

    let out = laptop.get_credential(ApiVersion::V1);
    assert_login_required(&out);
    assert!(out.stdout.is_empty(), "the link was followed: {out}");
    out.assert_stderr_contains(&format!(
        "{} is a symbolic link: not followed, removed",
        path.display()
    ));
    assert!(!exists(&path), "the planted link is still there");
    assert!(target.exists(), "the link's target was touched");
}
