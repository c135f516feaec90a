//! Refresh tokens are single use. Presenting a spent one means it was copied: the issuer ends
//! the whole session, so neither the thief's nor the owner's token works any more. A client
//! whose answer was lost (a crash, a dropped connection) presents the previous token again
//! moments later: within `refresh_retry_grace` that is a retry, not reuse, and it gets the same
//! successor back, so a network blip never logs a person out.

use crate::world::{refused_refresh, world, READERS};

#[test]
fn a_reused_refresh_token_ends_the_session() {
    let world = world();
    let (_heidi, laptop) = world.signed_in("heidi", &[READERS]);
    let first = laptop.cached_token().refresh_token;

    let second = world
        .issuer
        .refresh(&first)
        .unwrap_or_else(|e| panic!("the first refresh must succeed: {e:?}"))
        .refresh_token;
    assert_ne!(second, first, "the refresh token was not rotated");
    // The successor is used, so the first token is no retry any more: presenting it is reuse.
    let third = world
        .issuer
        .refresh(&second)
        .unwrap_or_else(|e| panic!("the second refresh must succeed: {e:?}"))
        .refresh_token;

    let replay = refused_refresh(&world.issuer, &first, "a spent refresh token was accepted");
    assert_eq!(replay.status, 400, "{replay:?}");

    let after_replay = refused_refresh(
        &world.issuer,
        &third,
        "the session survived the reuse of a refresh token",
    );
    assert_eq!(after_replay.status, 400, "{after_replay:?}");
}

/// The issuer rotates the laptop's refresh token but the answer never reaches the laptop (here:
/// the rotation is done behind its back). The plugin's next refresh presents the spent token:
/// it gets the same successor, the session lives on, and kubectl works.
#[test]
fn a_lost_refresh_answer_does_not_end_the_session() {
    let world = world();
    let (_ines, laptop) = world.signed_in("ines", &[READERS]);
    let spent = laptop.cached_token().refresh_token;
    let lost = world
        .issuer
        .refresh(&spent)
        .unwrap_or_else(|e| panic!("the rotation must succeed: {e:?}"))
        .refresh_token;

    let mut args = laptop.plugin.for_subcommand("get");
    args.push("--force-refresh".to_owned());
    laptop
        .env
        .plugin_as_kubectl_would(
            &args,
            &e2e::plugin::exec_info(
                credential_shared::exec_credential::ApiVersion::V1Beta1,
                false,
            ),
        )
        .assert_success();
    assert_eq!(
        laptop.cached_token().refresh_token,
        lost,
        "the retry must hand out the successor of the lost answer"
    );
    laptop
        .kubectl(&["auth", "can-i", "get", "namespaces"])
        .assert_success();
    // And the session goes on rotating normally.
    let next = world
        .issuer
        .refresh(&lost)
        .unwrap_or_else(|e| panic!("the successor must still work: {e:?}"));
    assert_ne!(next.refresh_token, lost);
}
