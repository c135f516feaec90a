//! Many kubectl processes at once, as a shell loop, k9s or an IDE start them: with no session,
//! twenty interactive calls cause exactly one device flow (one code, one browser approval) and
//! then all succeed; with an expired token, twenty calls cause exactly one refresh. Counted on
//! the issuer's side through its `/metrics`, on an issuer of this test's own so that other
//! tests' logins do not count.

use std::time::Duration;

use credential_shared::exec_credential::ApiVersion;
use e2e::{IssuerOptions, PluginArgs, UserEnv};

use crate::procs::{metric, wait_for_code, wait_until_past, OwnIssuer, Running};

const PARALLEL: usize = 20;

/// Starts `kubectl-credential get` as kubectl would, with `interactive` in the exec info.
fn start_get(env: &UserEnv, plugin: &PluginArgs, interactive: bool) -> Running {
    let mut args = plugin.for_subcommand("get");
    args.push("--no-browser".to_owned());
    let info = e2e::plugin::exec_info(ApiVersion::V1, interactive);
    Running::start_as_kubectl_would(env, &args, &info)
}

/// Waits for every process; returns the token each printed.
fn tokens_of(running: Vec<Running>, timeout: Duration) -> Vec<String> {
    running
        .into_iter()
        .map(|r| {
            let done = r.finish(timeout);
            assert!(
                done.status.success(),
                "kubectl-credential failed ({}); stderr:\n{}",
                done.status,
                done.stderr
            );
            let doc: serde_json::Value = serde_json::from_str(&done.stdout).unwrap_or_else(|e| {
                panic!("stdout is not one ExecCredential ({e}): {:?}", done.stdout)
            });
            doc["status"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn twenty_parallel_calls_make_one_device_flow_then_one_refresh() {
    let own = OwnIssuer::start(
        "paula",
        IssuerOptions {
            token_ttl: "3s".to_owned(),
            ..IssuerOptions::default()
        },
    );
    let issuer = &own.issuer;
    let env = UserEnv::new();
    let plugin = own.plugin_args(issuer.ca_file().to_owned());

    // Cold cache, twenty interactive calls at once.
    let running: Vec<Running> = (0..PARALLEL)
        .map(|_| start_get(&env, &plugin, true))
        .collect();
    let code = wait_for_code(&running.iter().collect::<Vec<_>>());
    let _ = issuer
        .browser()
        .approve(&code, &own.username, &own.password);
    let tokens = tokens_of(running, Duration::from_secs(60));
    assert!(
        tokens.iter().all(|t| !t.is_empty() && *t == tokens[0]),
        "the calls did not share one session"
    );
    assert_eq!(
        metric(issuer, "credential_issuer_device_authorizations_total"),
        1,
        "twenty parallel calls must start exactly one device flow"
    );
    assert!(
        env.browser_launches().is_empty(),
        "--no-browser opened a browser"
    );

    // Let the token expire, then twenty non-interactive calls at once: one refresh.
    let cached = env.cached_token();
    wait_until_past(cached.exp);
    let before = metric(issuer, "credential_issuer_refreshes_total");
    let running: Vec<Running> = (0..PARALLEL)
        .map(|_| start_get(&env, &plugin, false))
        .collect();
    let tokens = tokens_of(running, Duration::from_secs(60));
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "the calls did not share one refresh"
    );
    assert_ne!(
        tokens[0], cached.access_token,
        "the expired token was handed out"
    );
    assert_eq!(
        metric(issuer, "credential_issuer_refreshes_total") - before,
        1,
        "twenty parallel calls with an expired token must refresh exactly once"
    );
}
