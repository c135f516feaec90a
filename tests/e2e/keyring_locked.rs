//! A Secret Service whose collection is locked (a locked screen, a login without the keyring
//! password) is an unavailable token cache: `--token-cache keyring` fails at once with exit 6
//! and points to `--token-cache=file`. It must neither hang on an unlock prompt that nobody can
//! answer (kubectl waits for the plugin without a timeout) nor fall back to token files.

use std::time::Duration;

use credential_shared::exec_credential::ApiVersion;
use e2e::{Outcome, SecretService};

use crate::world::{world, Laptop, READERS};

/// How long a failing non-interactive call may take.
const FAST: Duration = Duration::from_secs(10);

#[track_caller]
fn assert_cache_unavailable(laptop: &Laptop, out: &Outcome) {
    assert!(
        out.elapsed < FAST,
        "a locked keyring must fail fast, not wait for a prompt: {out}"
    );
    crate::world::assert_cache_unavailable(laptop, out);
}

#[track_caller]
fn assert_still_locked(secrets: &SecretService) {
    assert_eq!(
        secrets.is_locked(),
        Ok(true),
        "the test's keyring was unlocked"
    );
}

#[test]
fn a_locked_keyring_fails_with_exit_6_at_once() {
    let secrets = SecretService::start_locked();
    let laptop = Laptop::with_keyring(&secrets);

    let out = laptop.get_credential(ApiVersion::V1);
    assert_cache_unavailable(&laptop, &out);
    assert_still_locked(&secrets);
}

/// `login` probes the cache before the device flow (so that nobody signs in for nothing), so
/// a locked keyring must stop it before it shows a code.
#[test]
fn login_with_a_locked_keyring_fails_with_exit_6_before_showing_a_code() {
    let secrets = SecretService::start_locked();
    let laptop = Laptop::with_keyring(&secrets);

    let mut login = laptop.env.command(&e2e::bins::kubectl_credential());
    login
        .args(laptop.plugin.for_subcommand("login"))
        .arg("--no-browser");
    // Killed after FAST: a login that waits for an approval has shown a code.
    let out = e2e::process::run(&mut login, None, FAST);
    assert!(
        e2e::plugin::find_user_code(&out.stderr).is_none(),
        "login showed a code although the result cannot be stored: {out}"
    );
    assert_cache_unavailable(&laptop, &out);
}

#[test]
fn a_session_in_a_keyring_that_got_locked_fails_with_exit_6_at_once() {
    let world = world();
    let secrets = SecretService::start();
    let lena = world.new_person("lena", &[READERS]);
    let laptop = Laptop::with_keyring(&secrets);
    laptop.log_in(&lena);
    laptop.get_credential(ApiVersion::V1).assert_success();

    secrets.lock();
    let out = laptop.get_credential(ApiVersion::V1);
    assert_cache_unavailable(&laptop, &out);
    assert_still_locked(&secrets);
}
