//! Sessions are per cluster: `logout` for one cluster ends that session at the issuer and on the
//! machine and leaves the session for another cluster of the same issuer untouched. On an issuer
//! of this test's own, because the shared world's issuer knows only one cluster.

use std::path::PathBuf;

use credential_shared::exec_credential::ApiVersion;
use e2e::{CachedToken, Issuer, IssuerOptions, PluginArgs, TokenCache, UserEnv};

use crate::world::{
    assert_login_required_at_once, refused_refresh, token_in, AUDIENCE, LOGIN_TIMEOUT, READERS,
};

/// Long enough that no access token expires during the test, so the plugin never refreshes on
/// its own and the refresh tokens the test reads from the cache stay the current ones.
const TOKEN_TTL: &str = "600s";

fn plugin_args(issuer: &Issuer, cluster: &str) -> PluginArgs {
    PluginArgs {
        issuer: issuer.url().to_owned(),
        cluster: cluster.to_owned(),
        issuer_ca: issuer.ca_file().to_owned(),
        token_cache: TokenCache::File,
    }
}

/// `kubectl-credential login` for `plugin`, approved in a fresh browser.
fn log_in(env: &UserEnv, issuer: &Issuer, plugin: &PluginArgs, user: &str, password: &str) {
    let login = env.start_login(plugin);
    let _ = issuer.browser().approve(login.user_code(), user, password);
    login.finish(LOGIN_TIMEOUT).assert_success();
}

#[track_caller]
fn read_entry(path: &PathBuf) -> CachedToken {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    CachedToken::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not a token cache file ({e})", path.display()))
}

#[test]
fn logging_out_of_one_cluster_leaves_the_other_logged_in() {
    let issuer = Issuer::start(&IssuerOptions {
        clusters: vec![
            ("a".to_owned(), AUDIENCE.to_owned()),
            ("b".to_owned(), AUDIENCE.to_owned()),
        ],
        token_ttl: TOKEN_TTL.to_owned(),
        ..IssuerOptions::default()
    });
    let password = "two clusters password 1234";
    issuer.add_user("olga", &[READERS], password);
    let env = UserEnv::new();
    let a = plugin_args(&issuer, "a");
    let b = plugin_args(&issuer, "b");

    log_in(&env, &issuer, &a, "olga", password);
    let a_files = env.token_files();
    assert_eq!(a_files.len(), 1, "one login, one token file: {a_files:?}");
    let a_file = a_files[0].clone();
    log_in(&env, &issuer, &b, "olga", password);
    let b_files: Vec<PathBuf> = env
        .token_files()
        .into_iter()
        .filter(|f| *f != a_file)
        .collect();
    assert_eq!(
        b_files.len(),
        1,
        "the login for b must add exactly one token file next to a's: {:?}",
        env.token_files()
    );
    let b_file = b_files[0].clone();
    let a_entry = read_entry(&a_file);
    let b_entry = read_entry(&b_file);
    assert_ne!(
        a_entry.refresh_token, b_entry.refresh_token,
        "the two clusters share one session"
    );
    assert!(
        env.browser_launches().is_empty(),
        "--no-browser opened a browser: {:?}",
        env.browser_launches()
    );

    env.plugin(&a.for_subcommand("logout")).assert_success();

    // a: gone on the machine and at the issuer, and the plugin asks for a login.
    assert_eq!(
        env.token_files(),
        vec![b_file.clone()],
        "logout for a must delete a's token file and only that"
    );
    refused_refresh(
        &issuer,
        &a_entry.refresh_token,
        "logout for a did not end a's session at the issuer",
    );
    let out = env.plugin_as_kubectl_would(
        &a.for_subcommand("get"),
        &e2e::plugin::exec_info(ApiVersion::V1, false),
    );
    assert_login_required_at_once(&out);

    // b: untouched on the machine, served from the cache, and alive at the issuer.
    let b_after = read_entry(&b_file);
    assert_eq!(
        (&b_after.access_token, &b_after.refresh_token),
        (&b_entry.access_token, &b_entry.refresh_token),
        "logout for a changed b's cached entry"
    );
    let out = env.plugin_as_kubectl_would(
        &b.for_subcommand("get"),
        &e2e::plugin::exec_info(ApiVersion::V1, false),
    );
    out.assert_success();
    assert_eq!(
        token_in(&out.stdout),
        b_entry.access_token,
        "b's cached token was not handed out: {out}"
    );
    // Last, because refreshing here rotates b's refresh token behind the plugin's back.
    let refreshed = issuer
        .refresh(&b_entry.refresh_token)
        .unwrap_or_else(|e| panic!("logout for a ended b's session too: {e:?}"));
    assert!(!refreshed.access_token.is_empty());
    assert!(
        env.browser_launches().is_empty(),
        "a non-interactive call opened a browser: {:?}",
        env.browser_launches()
    );
}
