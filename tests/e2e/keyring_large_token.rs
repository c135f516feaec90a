//! A person in many groups gets a token larger than one Windows credential may hold (2,560
//! bytes). The plugin splits such a session over several keyring items on every platform; here
//! on a real Secret Service: login and kubectl work, no stored secret exceeds 2,560 bytes, and
//! logout leaves no item behind.

use e2e::SecretService;

use crate::world::{world, Laptop, READERS};

/// The limit of one Windows Credential Manager secret.
const MAX_ITEM_BYTES: usize = 2560;

/// The secrets of every `kubectl-credential` item in the Secret Service.
fn stored_secrets(secrets: &SecretService) -> Vec<String> {
    let out = secrets.secret_tool(&["search", "--all", "service", "kubectl-credential"], None);
    // secret-tool prints the items on stdout and their attributes on stderr; it exits 1 when
    // nothing matches.
    let text = format!("{}\n{}", out.stdout, out.stderr);
    text.lines()
        .filter_map(|l| l.strip_prefix("secret = "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_token_too_large_for_one_keyring_item_is_split_and_fully_removed() {
    let world = world();
    let groups: Vec<String> = (0..150)
        .map(|i| format!("k8s-platform-engineering-observability-and-reliability-{i:03}"))
        .collect();
    let mut all: Vec<&str> = groups.iter().map(String::as_str).collect();
    all.push(READERS);
    let noa = world.new_person("noa", &all);
    let secrets = SecretService::start();
    let laptop = Laptop::with_keyring(&secrets);

    laptop.log_in(&noa);
    laptop.kubectl(&["get", "namespaces"]).assert_success();
    // And again from the cache alone.
    laptop.kubectl(&["get", "namespaces"]).assert_success();

    let stored = stored_secrets(&secrets);
    let total: usize = stored.iter().map(String::len).sum();
    assert!(
        total > 3 * MAX_ITEM_BYTES,
        "the session should be large ({total} bytes in {} items)",
        stored.len()
    );
    assert!(
        stored.len() >= 3,
        "a session of {total} bytes should be split: {} items",
        stored.len()
    );
    for secret in &stored {
        assert!(
            secret.len() <= MAX_ITEM_BYTES,
            "a keyring item holds {} bytes",
            secret.len()
        );
    }
    // whoami reads the groups from the token (they are not stored twice).
    let whoami = laptop.plugin("whoami");
    whoami
        .assert_success()
        .assert_stdout_contains("k8s-platform-engineering-observability-and-reliability-149");

    laptop
        .plugin("logout")
        .assert_success()
        .assert_stderr_contains("Logged out of cluster");
    let left = stored_secrets(&secrets);
    assert!(
        left.is_empty(),
        "logout left {} keyring items behind",
        left.len()
    );
}
