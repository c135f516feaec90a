//! Ctrl-C while the plugin waits for a sign-in to be approved stops it cleanly: exit 130, a
//! "cancelled" message, nothing stored, the sign-in lock released, so that the next sign-in
//! shows its code at once instead of waiting for the cancelled one.

use credential_shared::exec_credential::ApiVersion;
use e2e::plugin::exit::CANCELLED;
use e2e::UserEnv;

use crate::procs::{wait_for_code, Running};
use crate::world::{world, Laptop, LOGIN_TIMEOUT, READERS};

/// An interactive `get`, as kubectl runs it in a terminal.
fn start_interactive_get(laptop: &Laptop) -> Running {
    let mut args = laptop.plugin.for_subcommand("get");
    args.push("--no-browser".to_owned());
    let info = e2e::plugin::exec_info(ApiVersion::V1, true);
    Running::start(&laptop.env, &args, Some(&info))
}

#[test]
fn ctrl_c_during_a_sign_in_exits_130_and_releases_the_lock() {
    let world = world();
    let ida = world.new_person("ida", &[READERS]);
    let laptop = Laptop::new();

    let first = start_interactive_get(&laptop);
    let _ = wait_for_code(&[&first]);
    first.interrupt();
    let done = first.finish(LOGIN_TIMEOUT);
    assert_eq!(
        done.status.code(),
        Some(CANCELLED),
        "Ctrl-C must end the sign-in with exit 130; stderr:\n{}",
        done.stderr
    );
    assert!(
        done.stderr
            .contains("error: sign-in cancelled; nothing was stored"),
        "{}",
        done.stderr
    );
    assert!(done.stdout.is_empty(), "stdout: {:?}", done.stdout);
    assert!(
        laptop.env.token_files().is_empty(),
        "a cancelled sign-in stored something: {:?}",
        laptop.env.token_files()
    );

    // At once: a new sign-in does not wait for the cancelled one's lock, and it works.
    let second = start_interactive_get(&laptop);
    let code = wait_for_code(&[&second]);
    assert!(
        !second.stderr().contains("waiting for it to finish"),
        "the cancelled sign-in still held the lock: {}",
        second.stderr()
    );
    let _ = world.browser().approve(&code, &ida.name, &ida.password);
    let done = second.finish(LOGIN_TIMEOUT);
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(laptop.env.token_files().len(), 1);
}

#[test]
fn ctrl_c_during_login_exits_130() {
    let world = world();
    let plugin = world.plugin_args(e2e::TokenCache::File);
    let env = UserEnv::new();
    let login = env.start_login(&plugin);
    login.interrupt();
    let out = login.finish(LOGIN_TIMEOUT);
    out.assert_code(CANCELLED)
        .assert_stderr_contains("sign-in cancelled");
    assert!(env.token_files().is_empty(), "{:?}", env.token_files());
}
