//! When the issuer is down, a tool that polls the cluster (an IDE, Lens, k9s) must neither hang
//! nor hammer the issuer: after one failed refresh, non-interactive calls fail at once for a
//! short while and say so.

use std::time::Duration;

use credential_shared::exec_credential::ApiVersion;
use e2e::wait::{self, Check};
use e2e::{Issuer, IssuerOptions, PluginArgs, TokenCache, UserEnv};

use crate::procs::{wait_for_code, Running};
use crate::world::{AUDIENCE, CLUSTER};

#[test]
fn an_unreachable_issuer_is_not_retried_by_every_call() {
    let issuer = Issuer::start(&IssuerOptions {
        clusters: vec![(CLUSTER.to_owned(), AUDIENCE.to_owned())],
        token_ttl: "2s".to_owned(),
        ..IssuerOptions::default()
    });
    let password = "backoff password 1234";
    issuer.add_user("quinn", &["k8s-readers"], password);
    let env = UserEnv::new();
    // The issuer's files go with it; the person keeps their copy of its CA.
    let ca = env.home().join("issuer-ca.crt");
    std::fs::copy(issuer.ca_file(), &ca).unwrap_or_else(|e| panic!("{e}"));
    let plugin = PluginArgs {
        issuer: issuer.url().to_owned(),
        cluster: CLUSTER.to_owned(),
        issuer_ca: ca,
        token_cache: TokenCache::File,
    };
    let mut login = plugin.for_subcommand("login");
    login.push("--no-browser".to_owned());
    let running = Running::start(&env, &login, None);
    let code = wait_for_code(&[&running]);
    let _ = issuer.browser().approve(&code, "quinn", password);
    assert!(running.finish(Duration::from_secs(60)).status.success());

    // The issuer goes away, and the token expires.
    let cached = env.cached_token();
    drop(issuer);
    wait::until("the cached token expires", Duration::from_secs(20), || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if now >= cached.exp {
            Check::Done(())
        } else {
            Check::Retry(String::new())
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));

    let info = e2e::plugin::exec_info(ApiVersion::V1, false);
    let get = || {
        Running::start(&env, &plugin.for_subcommand("get"), Some(&info))
            .finish(Duration::from_secs(60))
    };
    let first = get();
    assert_eq!(
        first.status.code(),
        Some(4),
        "an unreachable issuer is exit 4: {}",
        first.stderr
    );
    let second = get();
    assert_eq!(second.status.code(), Some(4), "{}", second.stderr);
    assert!(
        second.stderr.contains("not trying again"),
        "the second call must back off and say so: {}",
        second.stderr
    );
    assert!(second.stdout.is_empty() && first.stdout.is_empty());
    // The session is kept: it is the issuer that is gone, not the session.
    assert_eq!(env.token_files().len(), 1);
}
