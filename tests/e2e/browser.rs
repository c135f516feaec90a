//! A person really uses the sign-in pages: headless Chromium (Debian's `chromium`, driven by
//! `tests/browser/signin.mjs`) opens the link the plugin printed, signs in, approves, and the
//! plugin's login then completes and kubectl works. Once on a desktop window with JavaScript, once
//! on a narrow phone screen with JavaScript off (the pages are server-rendered forms).
//!
//! Full-page screenshots of every page (`device`, `login`, `consent`, `done`) are kept as test
//! artifacts in `target/e2e-artifacts/browser/desktop/` and `.../phone/` (a failed step also
//! leaves `failure.png` there).

use std::time::Duration;

use credential_shared::oauth::PLUGIN_CLIENT_ID;
use e2e::chromium::{self, Journey, Report, Variant};
use e2e::plugin::LoginProcess;
use e2e::wait::{self, Check};

use crate::world::{world, Laptop, CLUSTER, LOGIN_TIMEOUT, READERS};

/// The pages of a sign-in, in the order a person sees them.
const PAGES: [(&str, &str); 4] = [
    ("device", "/device"),
    ("login", "/login"),
    ("consent", "/consent"),
    ("done", "/consent"),
];

/// A rendered page of text compresses to tens of kilobytes; a blank one to about one.
const MIN_PNG_BYTES: u64 = 8 * 1024;

#[test]
fn a_person_signs_in_and_approves_in_headless_chromium() {
    let report = log_in_with(Variant::Desktop);
    assert!(
        report.javascript,
        "the desktop browser ran without JavaScript"
    );
    for page in &report.pages {
        let (width, _) = chromium::assert_png(&page.screenshot, 1280, 800, MIN_PNG_BYTES);
        assert_eq!(width, 1280, "{} scrolls sideways on a desktop", page.name);
    }
}

#[test]
fn the_pages_work_on_a_phone_with_javascript_off() {
    let report = log_in_with(Variant::Phone);
    assert!(!report.javascript, "the phone browser ran with JavaScript");
    for page in &report.pages {
        let (width, _) = chromium::assert_png(&page.screenshot, 360, 600, MIN_PNG_BYTES);
        assert_eq!(
            width, 360,
            "the {} page is wider than the phone's screen",
            page.name
        );
    }
}

/// A new reader starts `kubectl credential login` on a new laptop and approves it in Chromium
/// (`variant`); then the login completes and `kubectl get namespaces` works. Returns the
/// script's report after checking that it saw every page and left a screenshot of each.
fn log_in_with(variant: Variant) -> Report {
    // A missing tool fails at once, before the shared world is started for nothing.
    let _node = chromium::require_tools();
    let world = world();
    let person = world.new_person(&format!("chromium-{}", variant.as_str()), &[READERS]);
    let laptop = Laptop::new();
    let login = laptop.env.start_login(&laptop.plugin);
    let link = complete_link(&login);
    let artifacts = chromium::artifacts_dir(variant);

    let report = chromium::sign_in(
        &Journey {
            url: &link,
            username: &person.name,
            password: &person.password,
            ca_file: world.issuer.ca_file(),
            cluster: CLUSTER,
            client: PLUGIN_CLIENT_ID,
            address: "127.0.0.1",
            variant,
        },
        &artifacts,
    );

    login.finish(LOGIN_TIMEOUT).assert_success();
    laptop
        .kubectl(&["get", "namespaces"])
        .assert_success()
        .assert_stdout_contains("kube-system");

    assert_eq!(report.variant, variant.as_str());
    let seen: Vec<(&str, &str)> = report
        .pages
        .iter()
        .map(|p| (p.name.as_str(), p.path.as_str()))
        .collect();
    assert_eq!(seen, PAGES, "the browser did not see the pages in order");
    for page in &report.pages {
        assert_eq!(
            page.screenshot,
            artifacts.join(format!("{}.png", page.name)),
            "screenshot outside the artifacts directory"
        );
        assert!(
            page.heading.as_deref().is_some_and(|h| !h.is_empty()),
            "the {} page has no heading",
            page.name
        );
        assert_eq!(
            chromium::assert_png(&page.screenshot, 1, 1, 0),
            (page.width, page.height),
            "the report's size of {} differs from the file",
            page.name
        );
    }
    report
}

/// The `verification_uri_complete` the plugin printed (on the line after the code).
fn complete_link(login: &LoginProcess) -> String {
    wait::until(
        "the plugin prints the complete sign-in link",
        Duration::from_secs(10),
        || match chromium::find_complete_link(&login.stderr_so_far(), login.user_code()) {
            Some(link) => Check::Done(link.to_owned()),
            None => Check::Retry(login.stderr_so_far()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}
