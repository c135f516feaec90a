//! Device-code phishing (RFC 8628 section 5.4), as it is done: an attacker starts a device
//! sign-in on their own machine and sends the victim the real link. The consent page must make
//! that obvious. Here the attacker's machine is 127.0.0.2 (Linux routes all of 127.0.0.0/8 to
//! the loopback device, so `curl --interface 127.0.0.2` reaches the issuer on 127.0.0.1 from
//! another address) and the victim's browser, headless Chromium, is at 127.0.0.1: the page
//! shows a visible alert naming both addresses and approves only once the person confirms they
//! started the sign-in themselves. The same journey from the browser's own address shows no
//! warning. With `[device_flow] allowed_networks`, a device authorization from elsewhere is
//! refused with what to do, and the trail records it. Screenshots:
//! `target/e2e-artifacts/device-phishing/desktop/` (the warning) and `.../phone/` (the same
//! address, no warning).

use std::process::Command;
use std::time::Duration;

use credential_shared::oauth::{
    DeviceAuthorizationResponse, OAuthError, OAuthErrorCode, GRANT_DEVICE_CODE,
    PATH_DEVICE_AUTHORIZATION, PLUGIN_CLIENT_ID,
};
use e2e::browser::{csrf_token, path_of};
use e2e::chromium::{self, Journey, Variant};
use e2e::issuer::{Issuer, IssuerOptions};
use e2e::process;

/// The attacker's machine.
const ELSEWHERE: &str = "127.0.0.2";
/// The person's machine, where the browser runs.
const HERE: &str = "127.0.0.1";
/// The cluster of the default issuer options.
const CLUSTER: &str = "envtest";
/// What the plugin would send as its `User-Agent`.
const USER_AGENT: &str = "kubectl-credential/0.1 (linux; x86_64)";

/// A rendered page of text compresses to tens of kilobytes; a blank one to about one.
const MIN_PNG_BYTES: u64 = 8 * 1024;

/// `POST /oauth/device_authorization` from `source` (`curl --interface`), with `user_agent`:
/// the HTTP status and the body.
fn authorize_from(issuer: &Issuer, source: &str, user_agent: &str) -> (u16, String) {
    let curl = process::require("curl", "apt-get install curl");
    let out = process::run(
        Command::new(curl)
            .args([
                "--silent",
                "--show-error",
                "--interface",
                source,
                "--cacert",
            ])
            .arg(issuer.ca_file())
            .args(["--user-agent", user_agent, "--write-out", "\n%{http_code}"])
            .args(["--data-urlencode", &format!("client_id={PLUGIN_CLIENT_ID}")])
            .args(["--data-urlencode", &format!("cluster={CLUSTER}")])
            .arg(format!("{}{PATH_DEVICE_AUTHORIZATION}", issuer.url())),
        None,
        Duration::from_secs(30),
    );
    out.assert_success();
    let (body, status) = out
        .stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl printed no status: {out}"));
    let status = status
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("curl printed no status ({e}): {out}"));
    (status, body.to_owned())
}

/// A device sign-in started from `source`.
fn start_from(issuer: &Issuer, source: &str, user_agent: &str) -> DeviceAuthorizationResponse {
    let (status, body) = authorize_from(issuer, source, user_agent);
    assert_eq!(status, 200, "device authorization from {source}: {body}");
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("bad device authorization response ({e}): {body}"))
}

/// The token request the waiting client makes once the person approved.
fn redeem(issuer: &Issuer, device: &DeviceAuthorizationResponse) {
    let tokens = issuer.token_request(&[
        ("grant_type", GRANT_DEVICE_CODE),
        ("client_id", PLUGIN_CLIENT_ID),
        ("device_code", device.device_code.as_str()),
    ]);
    let tokens = tokens.unwrap_or_else(|e| panic!("the approved code was refused: {e:?}"));
    assert!(!tokens.access_token.is_empty());
}

/// An issuer of its own with one person.
fn issuer_with(person: &str, password: &str) -> Issuer {
    let issuer = Issuer::start(&IssuerOptions::default());
    issuer.add_user(person, &["readers"], password);
    issuer
}

#[test]
fn a_code_from_another_address_is_approved_only_after_the_warning_in_chromium() {
    let _node = chromium::require_tools();
    let (person, password) = ("phished-dana", "dana's long passphrase");
    let issuer = issuer_with(person, password);
    let device = start_from(&issuer, ELSEWHERE, USER_AGENT);
    let artifacts = chromium::artifacts_dir_of("device-phishing", Variant::Desktop);
    let report = chromium::sign_in_warned(
        &Journey {
            url: &device.verification_uri_complete,
            username: person,
            password,
            ca_file: issuer.ca_file(),
            cluster: CLUSTER,
            client: PLUGIN_CLIENT_ID,
            address: ELSEWHERE,
            variant: Variant::Desktop,
        },
        HERE,
        &artifacts,
    );
    let seen: Vec<&str> = report.pages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        seen,
        [
            "device",
            "login",
            "consent-warning",
            "consent-unconfirmed",
            "consent",
            "done"
        ]
    );
    for page in &report.pages {
        let (width, _) = chromium::assert_png(&page.screenshot, 1280, 800, MIN_PNG_BYTES);
        assert_eq!(width, 1280, "{} scrolls sideways", page.name);
    }
    assert!(artifacts.join("consent-warning.png").is_file());
    redeem(&issuer, &device);
}

#[test]
fn a_code_from_the_browsers_own_address_shows_no_warning_in_chromium() {
    let _node = chromium::require_tools();
    let (person, password) = ("own-code-eli", "eli's long passphrase");
    let issuer = issuer_with(person, password);
    let device = start_from(&issuer, HERE, USER_AGENT);
    let artifacts = chromium::artifacts_dir_of("device-phishing", Variant::Phone);
    // signin.mjs fails on any alert or confirmation box when no warning is expected.
    let report = chromium::sign_in(
        &Journey {
            url: &device.verification_uri_complete,
            username: person,
            password,
            ca_file: issuer.ca_file(),
            cluster: CLUSTER,
            client: PLUGIN_CLIENT_ID,
            address: HERE,
            variant: Variant::Phone,
        },
        &artifacts,
    );
    let seen: Vec<&str> = report.pages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(seen, ["device", "login", "consent", "done"]);
    redeem(&issuer, &device);
}

#[test]
fn a_hostile_user_agent_is_shown_escaped_and_a_forged_approval_is_refused() {
    let (person, password) = ("careful-fay", "fay's long passphrase");
    let issuer = issuer_with(person, password);
    let hostile = "<img src=x onerror=alert(1)>\"' kubectl";
    let device = start_from(&issuer, ELSEWHERE, hostile);
    let browser = issuer.browser();
    let consent = browser.reach_consent(&device.user_code, person, password);
    let page = &consent.body;
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;&quot;' kubectl"),
        "{page}"
    );
    assert!(page.contains(r#"role="alert""#), "{page}");
    // Approve as a script would post it, without the confirmation: the page again, refused.
    let csrf = csrf_token(&consent);
    let refused = browser.post("/consent", &[("action", "approve"), ("csrf_token", &csrf)]);
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(path_of(&refused), "/consent");
    assert!(refused.body.contains("To approve it, tick"), "{refused:?}");
    let pending = issuer.token_request(&[
        ("grant_type", GRANT_DEVICE_CODE),
        ("client_id", PLUGIN_CLIENT_ID),
        ("device_code", device.device_code.as_str()),
    ]);
    assert_eq!(
        pending.err().and_then(|e| e.code()),
        Some(OAuthErrorCode::AuthorizationPending),
        "an approval without the confirmation decided the request"
    );
    let done = browser.post(
        "/consent",
        &[
            ("action", "approve"),
            ("confirm_origin", "yes"),
            ("csrf_token", &csrf),
        ],
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert!(done.body.contains("Access approved"), "{done:?}");
}

#[test]
fn device_sign_in_from_outside_the_allowed_networks_is_refused_with_what_to_do() {
    let issuer = Issuer::start(&IssuerOptions {
        extra_toml: Some("[device_flow]\nallowed_networks = [\"127.0.0.1/32\"]\n".to_owned()),
        ..IssuerOptions::default()
    });
    let (status, body) = authorize_from(&issuer, ELSEWHERE, USER_AGENT);
    assert_eq!(status, 400, "{body}");
    let e: OAuthError =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not an OAuth error ({e}): {body}"));
    assert_eq!(e.error, OAuthErrorCode::UnauthorizedClient, "{body}");
    let says = e.error_description.unwrap_or_default();
    assert!(
        says.contains("device sign-in is not allowed from this network (127.0.0.2)")
            && says.contains("VPN"),
        "{says}"
    );
    let _inside = start_from(&issuer, HERE, USER_AGENT);
    let trail = issuer.cli(&["audit", "export"], None);
    trail.assert_success();
    let refused: Vec<&str> = trail
        .stdout
        .lines()
        .filter(|l| l.contains("\"device.refused.network\""))
        .collect();
    assert_eq!(refused.len(), 1, "{trail}");
    assert!(refused[0].contains(ELSEWHERE), "{}", refused[0]);
}
