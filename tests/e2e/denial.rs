//! Logins that do not succeed end with the documented exit codes: 5 when the person denies
//! the request, 4 when the issuer cannot be reached.

use std::net::TcpListener;

use e2e::plugin::exit;
use e2e::{PluginArgs, UserEnv};

use crate::world::{world, Laptop, LOGIN_TIMEOUT, READERS};

#[test]
fn pressing_deny_makes_the_login_fail_with_exit_5() {
    let world = world();
    let kim = world.new_person("kim", &[READERS]);
    let laptop = Laptop::new();

    let login = laptop.env.start_login(&laptop.plugin);
    let _ = world
        .browser()
        .deny(login.user_code(), &kim.name, &kim.password);
    login.finish(LOGIN_TIMEOUT).assert_code(exit::LOGIN_REFUSED);

    assert!(
        laptop.env.token_files().is_empty(),
        "a denied login cached a token: {:?}",
        laptop.env.token_files()
    );
}

#[test]
fn an_unreachable_issuer_is_exit_4() {
    let world = world();
    // A port that was free a moment ago: nothing listens there.
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"), |a| a.port());
    let args = PluginArgs {
        issuer: format!("https://127.0.0.1:{closed_port}"),
        ..world.plugin_args(e2e::TokenCache::File)
    };
    let env = UserEnv::new();
    let mut login = args.for_subcommand("login");
    login.push("--no-browser".to_owned());
    env.plugin(&login).assert_code(exit::ISSUER_UNREACHABLE);
}
