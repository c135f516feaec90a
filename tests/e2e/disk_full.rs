//! A full disk under a SQLite issuer, for real (a small tmpfs, filled while people refresh):
//! no refresh is answered 200 unless its rotation is durable; the others get 503
//! `temporarily_unavailable` with `Retry-After`; `/readyz` says the disk is full; once there is
//! room the issuer recovers by itself; after a restart every answered token still works and the
//! audit chain verifies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use credential_shared::oauth::{OAuthErrorCode, TokenResponse};
use e2e::small_disk::SmallDisk;
use e2e::wait::{self, Check};
use e2e::{Issuer, IssuerOptions};

/// People refreshing at once, and refreshes each while the disk is full.
const PEOPLE: usize = 4;
const REFRESHES: usize = 60;

#[test]
fn a_full_disk_loses_no_answered_refresh_and_the_issuer_recovers() {
    let disk = SmallDisk::mount("8m");
    let options = IssuerOptions {
        data_dir: Some(disk.path().join("data")),
        ..IssuerOptions::default()
    };
    let issuer = Issuer::start(&options);
    // Many groups make every refresh's audit row a few kilobytes: the database grows quickly.
    let groups: Vec<String> = (0..60)
        .map(|i| format!("team-with-a-long-name-{i:03}"))
        .collect();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let mut live = Vec::new();
    for i in 0..PEOPLE {
        let name = format!("disk{i}");
        issuer.add_user(&name, &groups, "correct horse battery staple");
        let tokens = issuer.login_over_http("envtest", &name, "correct horse battery staple");
        live.push(tokens.refresh_token);
    }

    disk.fill(256 * 1024);
    let issuer = Arc::new(issuer);
    let live = Arc::new(Mutex::new(live));
    let answered = Arc::new(Mutex::new((0usize, 0usize)));
    std::thread::scope(|scope| {
        for i in 0..PEOPLE {
            let (issuer, live, answered) = (issuer.clone(), live.clone(), answered.clone());
            scope.spawn(move || {
                for _ in 0..REFRESHES {
                    let token = live
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[i]
                        .clone();
                    match issuer.refresh(&token) {
                        Ok(TokenResponse { refresh_token, .. }) => {
                            live.lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)[i] =
                                refresh_token;
                            answered
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0 += 1;
                        }
                        Err(e) => {
                            assert_eq!(
                                (e.status, e.code()),
                                (503, Some(OAuthErrorCode::TemporarilyUnavailable)),
                                "a full disk is a passing fault, never the person's: {e:?}"
                            );
                            assert!(e.retry_after.is_some(), "503 without Retry-After: {e:?}");
                            answered
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .1 += 1;
                        }
                    }
                }
            });
        }
    });
    let (ok, unavailable) = *answered
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    eprintln!("disk full: {ok} refreshes answered 200, {unavailable} answered 503");
    assert!(
        unavailable > 0,
        "the disk never filled: the test proves nothing"
    );

    let ready = issuer.get("/readyz");
    assert_eq!(ready.status, 503, "/readyz on a full disk: {ready:?}");
    assert!(
        ready.body.contains("disk is full"),
        "/readyz must say why: {}",
        ready.body
    );

    // Room again: the issuer notices by itself, without a request, and serves every session.
    disk.free();
    wait::until(
        "/readyz after the disk has room again",
        Duration::from_secs(30),
        || {
            let r = issuer.get("/readyz");
            if r.status == 200 {
                Check::Done(())
            } else {
                Check::Retry(format!("{} {}", r.status, r.body))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut tokens = live
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for (i, token) in tokens.iter_mut().enumerate() {
        *token = issuer
            .refresh(token)
            .unwrap_or_else(|e| panic!("person {i} after the disk had room again: {e:?}"))
            .refresh_token;
    }

    // A restart on the same database: every answered token is there.
    let issuer = Arc::into_inner(issuer).unwrap_or_else(|| panic!("the issuer is still shared"));
    drop(issuer);
    let issuer = Issuer::start(&options);
    for (i, token) in tokens.iter().enumerate() {
        issuer
            .refresh(token)
            .unwrap_or_else(|e| panic!("person {i} after the restart: {e:?}"));
    }
    let verify = issuer.cli(&["audit", "verify"], None);
    verify.assert_success();
}
