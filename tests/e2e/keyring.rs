//! `--token-cache keyring` keeps tokens in the Secret Service (here a real gnome-keyring on a
//! private bus) and never on disk; without a Secret Service it fails with exit 6 and points to
//! `--token-cache=file` instead of silently writing files.

use credential_shared::exec_credential::ApiVersion;
use e2e::{SecretService, TokenCache, UserEnv};
use serde_json::Value;

use crate::world::{world, Laptop, READERS};

#[test]
fn tokens_live_in_the_secret_service_and_not_on_disk() {
    let world = world();
    let secrets = SecretService::start();
    let mia = world.new_person("mia", &[READERS]);
    let laptop = Laptop::with_keyring(&secrets);

    laptop.log_in(&mia);
    let out = laptop.get_credential(ApiVersion::V1);
    out.assert_success();
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("bad ExecCredential ({e}): {out}"));
    let token = doc["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!token.is_empty(), "no token in {out}");
    laptop.kubectl(&["get", "namespaces"]).assert_success();
    assert!(
        laptop.env.token_files().is_empty(),
        "the keyring cache wrote token files: {:?}",
        laptop.env.token_files()
    );
    assert!(
        laptop.env.files_containing(&token).is_empty(),
        "the access token is on disk: {:?}",
        laptop.env.files_containing(&token)
    );

    let found = secrets.secret_tool(&["search", "--all", "service", "kubectl-credential"], None);
    found.assert_success();
    assert!(
        format!("{}{}", found.stdout, found.stderr)
            .contains("attribute.service = kubectl-credential"),
        "no kubectl-credential item in the Secret Service: {found}"
    );
}

#[test]
fn without_a_session_bus_the_keyring_cache_fails_with_exit_6() {
    // UserEnv::new() points DBUS_SESSION_BUS_ADDRESS at a socket that does not exist.
    let laptop = Laptop::with(UserEnv::new(), TokenCache::Keyring);

    let out = laptop.get_credential(ApiVersion::V1);
    crate::world::assert_cache_unavailable(&laptop, &out);
}
