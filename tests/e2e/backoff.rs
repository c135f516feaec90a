//! When the issuer is down, a tool that polls the cluster (an IDE, Lens, k9s) must neither hang
//! nor hammer the issuer: after one failed refresh, non-interactive calls fail at once for a
//! short while and say so.

use std::time::Duration;

use credential_shared::exec_credential::ApiVersion;
use e2e::{IssuerOptions, UserEnv};

use crate::procs::{wait_until_past, OwnIssuer, Running};

#[test]
fn an_unreachable_issuer_is_not_retried_by_every_call() {
    let own = OwnIssuer::start(
        "quinn",
        IssuerOptions {
            token_ttl: "2s".to_owned(),
            ..IssuerOptions::default()
        },
    );
    let env = UserEnv::new();
    // The issuer's files go with it; the person keeps their copy of its CA.
    let ca = env.home().join("issuer-ca.crt");
    std::fs::copy(own.issuer.ca_file(), &ca).unwrap_or_else(|e| panic!("{e}"));
    let plugin = own.plugin_args(ca);
    own.log_in(&env, &plugin);

    // The issuer goes away, and the token expires.
    let cached = env.cached_token();
    drop(own);
    wait_until_past(cached.exp);

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
