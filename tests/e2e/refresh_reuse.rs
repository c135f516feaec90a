//! Refresh tokens are single use. Presenting a spent one means it was copied: the issuer ends
//! the whole session, so neither the thief's nor the owner's token works any more.

use credential_shared::oauth::OAuthErrorCode;

use crate::world::{world, Laptop, READERS};

#[test]
fn a_reused_refresh_token_ends_the_session() {
    let world = world();
    let heidi = world.new_person("heidi", &[READERS]);
    let laptop = Laptop::new();
    laptop.log_in(&heidi);
    let first = laptop.cached_token().refresh_token;

    let second = world
        .issuer
        .refresh(&first)
        .unwrap_or_else(|e| panic!("the first refresh must succeed: {e:?}"))
        .refresh_token;
    assert_ne!(second, first, "the refresh token was not rotated");

    let replay = world
        .issuer
        .refresh(&first)
        .err()
        .unwrap_or_else(|| panic!("a spent refresh token was accepted"));
    assert_eq!(
        (replay.status, replay.code()),
        (400, Some(OAuthErrorCode::InvalidGrant)),
        "{replay:?}"
    );

    let after_replay = world
        .issuer
        .refresh(&second)
        .err()
        .unwrap_or_else(|| panic!("the session survived the reuse of a refresh token"));
    assert_eq!(
        (after_replay.status, after_replay.code()),
        (400, Some(OAuthErrorCode::InvalidGrant)),
        "{after_replay:?}"
    );
}
