//! The plugin's journeys (issue 14) as the person walks them: a wrong issuer URL is named as
//! such, with the URL to use instead, rather than reported as a network error or answered
//! with a hint to pass a flag the person already passed.

use e2e::{IssuerOptions, UserEnv};

use crate::procs::{wait_until_past, OwnIssuer};
use crate::world::{world, LOGIN_HINT};

/// `--issuer http://...` for an issuer that speaks https (a copy-paste from a URL without
/// its scheme, or a guess): the person is told the https URL, not a parse error of TLS bytes.
#[test]
fn an_http_issuer_url_is_answered_with_the_https_url() {
    let own = OwnIssuer::start("hugo", IssuerOptions::default());
    let env = UserEnv::new();
    let https = own.issuer.url().to_owned();
    let http = https.replacen("https://", "http://", 1);
    assert_ne!(http, https, "the issuer is not an https URL: {https}");
    let mut plugin = own.plugin_args(own.issuer.ca_file().to_owned());
    plugin.issuer = http.clone();

    let out = env.plugin(&plugin.for_subcommand("login"));
    out.assert_code(e2e::plugin::exit::USAGE)
        .assert_stderr_contains("the issuer speaks https")
        .assert_stderr_contains(&format!("use --issuer {https}"));
    assert!(
        !out.stderr.contains("Header field"),
        "the parse error of the TLS answer leaked: {out}"
    );
    // The URL it names works.
    plugin.issuer = https;
    own.log_in(&env, &plugin);
}

/// The Kubernetes API server's URL given as `--issuer`, once with the issuer's CA (its
/// certificate is then refused) and once with the cluster's CA (it answers, but has no
/// issuer discovery for an anonymous caller): both say what the issuer URL looks like.
#[test]
fn the_api_servers_url_as_issuer_is_named_as_not_an_issuer() {
    let world = world();
    let own = OwnIssuer::start("ivy", IssuerOptions::default());
    let env = UserEnv::new();
    let mut plugin = own.plugin_args(own.issuer.ca_file().to_owned());
    plugin.issuer = world.control_plane.server().to_owned();

    let out = env.plugin(&plugin.for_subcommand("login"));
    out.assert_code(e2e::plugin::exit::ISSUER_UNREACHABLE)
        .assert_stderr_contains("not signed by the CA in --issuer-ca")
        .assert_stderr_contains("not the Kubernetes API server's");
    assert!(
        !out.stderr
            .contains("pass that CA's PEM bundle with --issuer-ca"),
        "the hint asks for a flag already passed: {out}"
    );

    plugin.issuer_ca = world.control_plane.ca_file().to_owned();
    env.plugin(&plugin.for_subcommand("login"))
        .assert_code(e2e::plugin::exit::USAGE)
        .assert_stderr_contains(&format!(
            "is not a credential issuer (no OpenID discovery at {}/.well-known/openid-configuration)",
            world.control_plane.server()
        ))
        .assert_stderr_contains("e.g. https://issuer.example.com, not the Kubernetes API server's");

    // `setup` with that URL says the same before it writes anything.
    let kubeconfig = env.home().join("kubeconfig");
    let mut cmd = env.command(&e2e::bins::kubectl_credential());
    cmd.env("KUBECONFIG", &kubeconfig).args([
        "setup",
        "--issuer",
        world.control_plane.server(),
        "--issuer-ca",
        &world.control_plane.ca_file().to_string_lossy(),
    ]);
    e2e::process::run(&mut cmd, None, std::time::Duration::from_secs(30))
        .assert_code(e2e::plugin::exit::USAGE)
        .assert_stderr_contains("is not a credential issuer");
    assert!(!kubeconfig.exists(), "setup wrote a kubeconfig");
}

/// kubectl runs the plugin several times for one command (API discovery, then the request).
/// Each failing call used to print the same error, six times among kubectl's own lines: now
/// one kubectl command shows it once, and the next command shows it again.
#[test]
fn one_kubectl_command_shows_the_plugins_error_once() {
    let world = world();
    let own = OwnIssuer::with_short_tokens("kit");
    let env = UserEnv::new();
    let plugin = own.plugin_args(own.copied_ca(&env));
    let kubeconfig = world.kubeconfig(&env, &plugin);
    let kubectl = || env.kubectl(&kubeconfig, &["get", "namespaces"]);
    let plugin_lines = |stderr: &str, needle: &str| {
        stderr
            .lines()
            .filter(|l| l.starts_with("error: ") && l.contains(needle))
            .count()
    };
    // kubectl's own lines, one per failed plugin run.
    let runs = |stderr: &str| stderr.matches("failed with exit code").count();

    // No session yet: the login hint, once per command.
    for _ in 0..2 {
        let out = kubectl();
        out.assert_failure();
        assert!(
            runs(&out.stderr) >= 2,
            "kubectl ran the plugin once only; the story needs its retries: {out}"
        );
        assert_eq!(
            plugin_lines(&out.stderr, LOGIN_HINT),
            1,
            "the login hint once per kubectl command: {out}"
        );
    }

    // Signed in, then the issuer stops and the token expires: the first run finds it
    // unreachable, the later ones are held off; one error line for all of them.
    own.log_in(&env, &plugin);
    let cached = env.cached_token();
    drop(own);
    wait_until_past(cached.exp);
    for _ in 0..2 {
        let out = kubectl();
        out.assert_failure();
        assert!(runs(&out.stderr) >= 2, "{out}");
        assert_eq!(
            plugin_lines(&out.stderr, "the issuer at"),
            1,
            "the outage once per kubectl command: {out}"
        );
    }
}

/// After `setup` (with `--token-cache file` and `--issuer-ca`), the commands that act on a
/// cluster need no flags: they read the exec entry of the current context, or of `--context`,
/// instead of failing on a keyring that is not there.
#[test]
fn commands_on_a_cluster_read_its_kubeconfig_entry() {
    let world = world();
    let own = OwnIssuer::with_api_server("lena", world);
    let env = UserEnv::new();
    let kubeconfig = env.home().join("config");
    let plugin_bin = e2e::bins::kubectl_credential();
    let run = |args: &[&str]| {
        let mut cmd = env.command(&plugin_bin);
        cmd.env("KUBECONFIG", &kubeconfig).args(args);
        e2e::process::run(&mut cmd, None, std::time::Duration::from_secs(30))
    };
    run(&[
        "setup",
        "--issuer",
        own.issuer.url(),
        "--issuer-ca",
        &own.issuer.ca_file().to_string_lossy(),
        "--token-cache",
        "file",
        "--command",
        &plugin_bin.to_string_lossy(),
    ])
    .assert_success();
    // The cluster's context is the current one, whatever setup chose for a new file.
    let mut cmd = env.command(&e2e::bins::kubectl());
    cmd.args([
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
        "config",
        "use-context",
        crate::world::CLUSTER,
    ]);
    e2e::process::run(&mut cmd, None, std::time::Duration::from_secs(30)).assert_success();

    let plugin = own.plugin_args(own.issuer.ca_file().to_owned());
    own.log_in(&env, &plugin);

    // No flags at all: the current context's entry. And by --context.
    for args in [
        &["whoami"][..],
        &["whoami", "--context", crate::world::CLUSTER],
    ] {
        let out = run(args);
        out.assert_success().assert_stdout_contains("lena");
        assert!(
            !out.stderr.contains("keyring") && !out.stderr.contains("D-Bus"),
            "{out}"
        );
    }
    run(&["requests"]).assert_success();
    run(&["whoami", "--context", "nope"])
        .assert_code(e2e::plugin::exit::USAGE)
        .assert_stderr_contains("no context \"nope\"");
    run(&["logout"]).assert_success();
    assert!(env.token_files().is_empty(), "logout left the session");
    run(&["whoami"]).assert_code(e2e::plugin::exit::LOGIN_REQUIRED);
}
