//! PostgreSQL stopped, or frozen, under a running issuer: token requests are answered 503
//! `temporarily_unavailable` with `Retry-After` at once (not a 500 after the pool's timeout),
//! `/readyz` answers a probe that gives up after one second (the kubelet's default) with 503 and
//! the reason, and when the database is back every session refreshes with the token it held.

use std::time::Duration;

use credential_shared::oauth::{OAuthErrorCode, GRANT_REFRESH_TOKEN, PATH_TOKEN, PLUGIN_CLIENT_ID};
use e2e::replicas::Replicas;
use e2e::wait::{self, Check};
use e2e::{http, Postgres};

use crate::replicas::{
    approve, config, device_authorization, error_code, redeem, CLUSTER, PASSWORD,
};

/// The kubelet's default probe timeout, and what a person's kubectl should not wait past for
/// an answer that only says "later".
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A refresh through a client that gives up after [`PROBE_TIMEOUT`]: the status, the OAuth
/// error and the `Retry-After` header.
fn impatient_refresh(set: &Replicas, token: &str) -> (u16, Option<OAuthErrorCode>, Option<String>) {
    let url = format!("{}{PATH_TOKEN}", set.url());
    let resp = http::response(
        http::agent_with_timeout(set.ca_file(), PROBE_TIMEOUT)
            .post(&url)
            .send_form(&[
                ("grant_type", GRANT_REFRESH_TOKEN),
                ("client_id", PLUGIN_CLIENT_ID),
                ("refresh_token", token),
            ]),
    )
    .unwrap_or_else(|e| panic!("POST {url} got no answer within {PROBE_TIMEOUT:?}: {e}"));
    let body = serde_json::from_str(&resp.body).unwrap_or(serde_json::Value::Null);
    (resp.status, error_code(&body), resp.retry_after)
}

/// `/readyz` as a kubelet probes it.
fn probe(set: &Replicas) -> http::Response {
    let url = format!("{}/readyz", set.replica_url(0));
    http::response(
        http::agent_with_timeout(set.ca_file(), PROBE_TIMEOUT)
            .get(&url)
            .call(),
    )
    .unwrap_or_else(|e| panic!("the readiness probe got no answer within {PROBE_TIMEOUT:?}: {e}"))
}

fn wait_ready(set: &Replicas, ready: bool) -> String {
    wait::until(
        &format!("/readyz to say ready={ready}"),
        Duration::from_secs(30),
        || {
            let r = probe(set);
            if (r.status == 200) == ready {
                Check::Done(r.body)
            } else {
                Check::Retry(format!("{} {}", r.status, r.body))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Logs `user` in through the device flow; returns the refresh and the access token.
fn log_in(set: &Replicas, user: &str) -> (String, String) {
    let (device_code, user_code) = device_authorization(set);
    approve(set, user, &user_code);
    let (status, tokens) = redeem(set, &device_code);
    assert_eq!(status, 200, "login: {tokens}");
    let field = |name: &str| tokens[name].as_str().unwrap_or_default().to_owned();
    (field("refresh_token"), field("access_token"))
}

/// The status replica 0 answers an API server's TokenReview of `token` with, through a client
/// that gives up after [`PROBE_TIMEOUT`].
fn impatient_review(set: &Replicas, token: &str) -> u16 {
    let url = format!("{}/authenticate/{CLUSTER}", set.replica_url(0));
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    });
    http::response(
        http::agent_with_timeout(set.ca_file(), PROBE_TIMEOUT)
            .post(&url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
    )
    .unwrap_or_else(|e| panic!("the token review got no answer within {PROBE_TIMEOUT:?}: {e}"))
    .status
}

#[test]
fn a_stopped_or_frozen_database_gets_fast_503s_and_sessions_survive_it() {
    let pg = Postgres::start();
    // The private server is tuned for speed (start-postgres.sh): with asynchronous commit an
    // immediate stop may lose the last commits, which a production server (synchronous commit,
    // the default) does not. Stop and restart must lose nothing here either.
    pg.psql(pg.url(), "ALTER SYSTEM SET synchronous_commit = on");
    pg.psql(pg.url(), "SELECT pg_reload_conf()");
    let set = Replicas::start_on(&pg, 1, &config(""));
    set.add_user("dana", &["k8s-readers"], PASSWORD);
    let (token, _) = log_in(&set, "dana");
    // A second session, never reviewed: its review is a cache miss that needs the database.
    let (_, unseen) = log_in(&set, "dana");

    for (fault, break_it, mend_it) in [
        (
            "stopped",
            Box::new(|| pg.stop()) as Box<dyn Fn()>,
            Box::new(|| pg.restart()) as Box<dyn Fn()>,
        ),
        (
            "frozen",
            Box::new(|| pg.freeze(true)),
            Box::new(|| pg.freeze(false)),
        ),
    ] {
        break_it();
        let why = wait_ready(&set, false);
        assert!(
            why.contains("database"),
            "{fault}: /readyz must say what is wrong: {why}"
        );
        for _ in 0..5 {
            let (status, code, retry_after) = impatient_refresh(&set, &token);
            assert_eq!(
                (status, code),
                (503, Some(OAuthErrorCode::TemporarilyUnavailable)),
                "{fault}: a refresh while the database is down"
            );
            assert!(retry_after.is_some(), "{fault}: 503 without Retry-After");
        }
        // A token review that is not in the cache cannot be answered either, and says so at
        // once: the API server retries a 503.
        assert_eq!(
            impatient_review(&set, &unseen),
            503,
            "{fault}: token review"
        );
        mend_it();
        wait_ready(&set, true);
    }
    // Nothing was spent while the database was away: the token the client held still works.
    let (status, code, _) = impatient_refresh(&set, &token);
    assert_eq!(
        (status, code),
        (200, None),
        "the session after the database came back; log:\n{}",
        set.replica(0).log()
    );
    let log = set.replica(0).log();
    assert!(
        log.contains("the database is healthy again"),
        "the issuer must log the recovery:\n{log}"
    );
    // Each fault is named: a stopped server refuses connections, a frozen one does not answer.
    for cause in [
        "the database cannot be reached",
        "refused",
        "the database did not answer in time",
    ] {
        assert!(log.contains(cause), "the log must say {cause:?}:\n{log}");
    }
}
