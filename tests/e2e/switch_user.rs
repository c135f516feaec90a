//! Two kubeconfig users for the same cluster (a daily account and another one) keep separate
//! sessions when their entries name the account (`--username`): each gets its own identity's
//! token, never the other's, and a sign-in approved by the wrong account is refused and not
//! cached.

use std::time::Duration;

use base64::Engine as _;
use credential_shared::exec_credential::ApiVersion;
use e2e::{TokenCache, UserEnv};

use crate::procs::{wait_for_code, Running};
use crate::world::{world, Person, READERS};

/// `preferred_username` of a JWT (decoded, not verified: the API server verifies).
fn username_in(jwt: &str) -> String {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_else(|e| panic!("not a JWT ({e})"));
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not a JWT payload ({e})"));
    v["preferred_username"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn args_for(sub: &str, person: &Person) -> Vec<String> {
    let mut args = world().plugin_args(TokenCache::File).for_subcommand(sub);
    args.extend(["--username".to_owned(), person.name.clone()]);
    args
}

/// Signs `approver` in for the entry of `entry_owner`; returns what the login left.
fn log_in(env: &UserEnv, entry_owner: &Person, approver: &Person) -> crate::procs::Finished {
    let mut args = args_for("login", entry_owner);
    args.push("--no-browser".to_owned());
    let running = Running::start(env, &args, None);
    let code = wait_for_code(&[&running]);
    let _ = world()
        .browser()
        .approve(&code, &approver.name, &approver.password);
    running.finish(Duration::from_secs(60))
}

/// The token `get` hands kubectl for the entry of `person`, non-interactively.
fn token_for(env: &UserEnv, person: &Person) -> String {
    let info = e2e::plugin::exec_info(ApiVersion::V1, false);
    let done =
        Running::start(env, &args_for("get", person), Some(&info)).finish(Duration::from_secs(30));
    assert!(
        done.status.success(),
        "get for {} failed: {}",
        person.name,
        done.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(&done.stdout)
        .unwrap_or_else(|e| panic!("not an ExecCredential ({e}): {}", done.stdout));
    doc["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn each_account_keeps_its_own_session_and_a_wrong_approver_is_refused() {
    let world = world();
    let olga = world.new_person("olga", &[READERS]);
    let pete = world.new_person("pete", &[]);
    let env = UserEnv::new();

    for p in [&olga, &pete] {
        let done = log_in(&env, p, p);
        assert!(
            done.status.success(),
            "login as {} failed: {}",
            p.name,
            done.stderr
        );
    }
    assert_eq!(env.token_files().len(), 2, "two accounts, two sessions");

    let olga_token = token_for(&env, &olga);
    let pete_token = token_for(&env, &pete);
    assert_eq!(username_in(&olga_token), olga.name);
    assert_eq!(username_in(&pete_token), pete.name);
    // And the API server sees two identities: the reader may list namespaces, the other not.
    let cp = &world.control_plane;
    assert_eq!(
        cp.get_with_token("/api/v1/namespaces", &olga_token).status,
        200
    );
    assert_eq!(
        cp.get_with_token("/api/v1/namespaces", &pete_token).status,
        403
    );

    // Olga's entry, approved in a browser signed in as Pete: refused, and nothing cached.
    let done = log_in(&env, &olga, &pete);
    assert_eq!(
        done.status.code(),
        Some(5),
        "a wrong approver must be refused: {}",
        done.stderr
    );
    assert!(
        done.stderr.contains(&pete.name) && done.stderr.contains(&olga.name),
        "{}",
        done.stderr
    );
    assert_eq!(env.token_files().len(), 2);
    assert_eq!(
        username_in(&token_for(&env, &olga)),
        olga.name,
        "olga's session was replaced"
    );
}
