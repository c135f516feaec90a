//! When the issuer is down, a tool that polls the cluster (an IDE, Lens, k9s) must neither hang
//! nor hammer the issuer: after one failed refresh, non-interactive calls fail at once for a
//! short while and say so. When the issuer answers that it cannot serve now (its identity
//! provider is down), the person reads why, and the plugin comes back when the issuer asked
//! (`Retry-After`), not after a back-off of its own.

use std::time::{Duration, Instant};

use credential_shared::exec_credential::ApiVersion;
use e2e::browser::{csrf_token, form_action, path_of, Answer};
use e2e::wait::{self, Check};
use e2e::{TokenCache, UserEnv};

use crate::procs::{wait_until_past, OwnIssuer, Running};
use crate::world::{upstream_password, World, LOGIN_TIMEOUT, TOKEN_TTL, UPSTREAM};

/// What the issuer says when the provider cannot be reached during a refresh.
const PROVIDER_DOWN: &str =
    "the identity provider corp cannot be reached (no answer in time); your session is kept, try again shortly";
/// Its `Retry-After` (`issuer/src/http/error.rs`).
const ISSUER_RETRY_AFTER: u64 = 5;

/// The seconds in "not trying again for N s".
fn held_for(stderr: &str) -> Option<u64> {
    let rest = stderr.split("not trying again for ").nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

#[test]
fn an_issuer_that_cannot_serve_is_heard_out_and_tried_again_when_it_asked() {
    // A world of its own: its identity provider is frozen below, which would break other
    // stories signing in through the shared one.
    let world = World::start_own(TOKEN_TTL);
    world
        .control_plane
        .apply(&crate::upstream::engineers_rbac());
    let env = UserEnv::new();
    let plugin = world.plugin_args(TokenCache::File);
    let kubeconfig = world.kubeconfig(&env, &plugin);

    // bob signs in at the company's provider.
    let login = env.start_login(&plugin);
    let browser = world.browser();
    let page = browser.enter_user_code(login.user_code());
    assert_eq!(path_of(&page), "/login", "{page:?}");
    let at_idp = browser.post(
        "/upstream/start",
        &[("provider", UPSTREAM), ("csrf_token", &csrf_token(&page))],
    );
    assert!(
        at_idp.status == 200 && at_idp.url.starts_with(world.idp.url()),
        "expected the provider's login form: {at_idp:?}"
    );
    let consent = browser.post_absolute(
        &form_action(&at_idp, "/interaction/", "/login"),
        &[("username", "bob"), ("password", &upstream_password("bob"))],
    );
    assert_eq!(path_of(&consent), "/consent", "{consent:?}");
    let _ = browser.answer(&consent, Answer::Approve);
    login.finish(LOGIN_TIMEOUT).assert_success();
    let kubectl = || env.kubectl(&kubeconfig, &["get", "namespaces"]);
    kubectl().assert_success();

    // The token expires while the provider hangs. bob was confirmed there minutes ago, so his
    // refresh goes on within the offline grace (default 1h) once the issuer gave up on the
    // provider (10 s), and the token it gets is valid from then on: kubectl works.
    wait_until_past(env.cached_token().exp);
    world.idp.pause();
    let graced = kubectl();
    graced.assert_success();
    // Last confirmed at the provider two hours ago: beyond the grace. The issuer cannot re-check
    // bob and answers 503 temporarily_unavailable with Retry-After.
    world
        .issuer
        .sqlite("UPDATE upstream_sessions SET checked_at = checked_at - 7200;");
    wait_until_past(env.cached_token().exp);
    let out = kubectl();
    out.assert_failure();
    assert!(
        out.stderr.contains(PROVIDER_DOWN),
        "kubectl must show the issuer's explanation: {out}"
    );
    assert!(
        !out.stderr.contains("could not be reached a moment ago"),
        "the issuer answered; it was not unreachable: {out}"
    );

    // A tool polling meanwhile is held off at once, for what the issuer asked, and told why.
    let info = e2e::plugin::exec_info(ApiVersion::V1, false);
    let get = || {
        Running::start_as_kubectl_would(&env, &plugin.for_subcommand("get"), &info)
            .finish(Duration::from_secs(60))
    };
    let held = wait::until("a call is held off", Duration::from_secs(60), || {
        let started = Instant::now();
        let out = get();
        let took = started.elapsed();
        if out.status.code() != Some(4) {
            return Check::Fail(format!("expected exit 4: {}", out.stderr));
        }
        if !out.stderr.contains("not trying again") {
            // A real attempt (the previous hold was just over): it sets a new hold.
            assert!(out.stderr.contains(PROVIDER_DOWN), "{}", out.stderr);
            return Check::Retry(out.stderr);
        }
        assert!(
            took < Duration::from_secs(3),
            "a call held off must not wait for the issuer ({took:?}): {}",
            out.stderr
        );
        Check::Done((Instant::now(), out.stderr))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let (held_at, stderr) = held;
    assert!(
        stderr.contains(&format!(
            "asked to wait {ISSUER_RETRY_AFTER} s: {PROVIDER_DOWN}; not trying again for "
        )),
        "{stderr}"
    );
    let retry_in = held_for(&stderr).unwrap_or_else(|| panic!("no wait in {stderr}"));
    assert!(
        (1..=ISSUER_RETRY_AFTER).contains(&retry_in),
        "held off for {retry_in} s, not the {ISSUER_RETRY_AFTER} s asked: {stderr}"
    );

    // The provider is back; once the wait asked for is over (not 30 s later), kubectl works.
    world.idp.resume();
    let ready = held_at + Duration::from_secs(retry_in + 1);
    wait::until("the issuer's wait is over", Duration::from_secs(30), || {
        if Instant::now() >= ready {
            Check::Done(())
        } else {
            Check::Retry("waiting".to_owned())
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    kubectl()
        .assert_success()
        .assert_stdout_contains("kube-system");
    assert!(
        held_at.elapsed() < Duration::from_secs(25),
        "the call after the wait came too late to tell a 30 s back-off apart"
    );
}

#[test]
fn an_unreachable_issuer_is_not_retried_by_every_call() {
    let own = OwnIssuer::with_short_tokens("quinn");
    let env = UserEnv::new();
    // The issuer's files go with it; the person keeps their copy of its CA.
    let ca = own.copied_ca(&env);
    let plugin = own.plugin_args(ca.clone());
    own.log_in(&env, &plugin);

    // The issuer goes away, and the token expires.
    let cached = env.cached_token();
    drop(own);
    wait_until_past(cached.exp);

    let info = e2e::plugin::exec_info(ApiVersion::V1, false);
    let get = || {
        Running::start_as_kubectl_would(&env, &plugin.for_subcommand("get"), &info)
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

    // A local mistake is reported at once, not hidden behind the back-off: the CA file was
    // moved away.
    let moved = env.home().join("issuer-ca.moved");
    std::fs::rename(&ca, &moved).unwrap_or_else(|e| panic!("{e}"));
    let local = get();
    assert_eq!(local.status.code(), Some(2), "{}", local.stderr);
    assert!(
        local.stderr.contains("cannot read --issuer-ca")
            && !local.stderr.contains("not trying again"),
        "the missing CA file must be named, not the back-off: {}",
        local.stderr
    );
    std::fs::rename(&moved, &ca).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        get().stderr.contains("not trying again"),
        "the back-off is still on"
    );

    // `--force-refresh` is the person asking: it tries the issuer now, and reports what it
    // found (still unreachable), not the back-off.
    let mut forced = plugin.for_subcommand("get");
    forced.push("--force-refresh".to_owned());
    let out = Running::start_as_kubectl_would(&env, &forced, &info).finish(Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    assert!(
        out.stderr.contains("could not reach the issuer")
            && !out.stderr.contains("not trying again"),
        "--force-refresh must skip the back-off: {}",
        out.stderr
    );
}
