//! A person's real web browser: Debian's headless Chromium, driven by `tests/browser/signin.mjs`
//! (Playwright's `playwright-core` on Node), signs in through the issuer's pages and keeps a
//! screenshot of each. [`crate::Browser`] proves the page contract over plain HTTP; this proves
//! that the pages also work, and look right, in the browser people use.
//!
//! Screenshots are test artifacts under `target/e2e-artifacts/browser/`, kept after the run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::process::{self, Outcome};

/// Debian's Chromium; Playwright's own browser downloads are not used.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one whole journey in the browser may take (Chromium's start included).
const JOURNEY_TIMEOUT: Duration = Duration::from_secs(150);

/// The browser the person uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// A 1280x800 desktop window with JavaScript on.
    Desktop,
    /// A 360x740 touch phone with JavaScript off.
    Phone,
}

impl Variant {
    /// The script's `--variant` value and the artifacts subdirectory.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Desktop => "desktop",
            Self::Phone => "phone",
        }
    }
}

/// One sign-in through the pages: what to open, who signs in, what the consent page must say.
#[derive(Debug)]
pub struct Journey<'a> {
    /// `verification_uri_complete` as the plugin printed it.
    pub url: &'a str,
    /// The account.
    pub username: &'a str,
    /// Its password (handed to the script on stdin, never on the command line).
    pub password: &'a str,
    /// The issuer's CA certificate (PEM).
    pub ca_file: &'a Path,
    /// The cluster the consent page must name.
    pub cluster: &'a str,
    /// The OAuth client the consent page must name.
    pub client: &'a str,
    /// The requesting address the consent page must show.
    pub address: &'a str,
    /// Which browser.
    pub variant: Variant,
}

/// What the script reports on stdout after a successful journey.
#[derive(Debug, Deserialize)]
pub struct Report {
    /// Always true in a report (a failure prints no report).
    pub ok: bool,
    /// The variant that ran.
    pub variant: String,
    /// Whether scripts ran in the browser (measured with a `<noscript>` probe page).
    pub javascript: bool,
    /// The pages visited, in order.
    pub pages: Vec<PageShot>,
}

/// One page as the script saw it.
#[derive(Debug, Deserialize)]
pub struct PageShot {
    /// `device`, `login`, `consent` or `done`.
    pub name: String,
    /// The URL path the page was served at.
    pub path: String,
    /// Its `<h1>`.
    pub heading: Option<String>,
    /// The full-page screenshot.
    pub screenshot: PathBuf,
    /// The screenshot's width in pixels.
    pub width: u32,
    /// The screenshot's height in pixels.
    pub height: u32,
}

/// What `render.mjs` reports: each page it rendered.
#[derive(Debug, Deserialize)]
pub struct Rendered {
    /// The variant.
    pub variant: String,
    /// The screenshots, in the order given.
    pub shots: Vec<Shot>,
}

/// One rendered page.
#[derive(Debug, Deserialize)]
pub struct Shot {
    /// The name given (the PNG's file name without `.png`).
    pub name: String,
    /// Its `<h1>`.
    pub heading: String,
    /// The full-page screenshot.
    pub screenshot: PathBuf,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Renders `pages` (`(name, html)`: HTML the issuer served) in Chromium as `variant` shows them,
/// a full-page PNG each in `dir`. Fails the test with the script's message when a page is wider
/// than the screen or renders without a heading.
#[track_caller]
#[must_use]
pub fn render(pages: &[(String, String)], variant: Variant, dir: &Path) -> Rendered {
    let input = serde_json::Value::Array(
        pages
            .iter()
            .map(|(name, html)| serde_json::json!({"name": name, "html": html}))
            .collect(),
    )
    .to_string();
    let (mut cmd, _home) = node_script("render.mjs");
    cmd.arg("--artifacts")
        .arg(dir)
        .arg("--variant")
        .arg(variant.as_str());
    let out = process::run(&mut cmd, Some(input.as_bytes()), JOURNEY_TIMEOUT);
    out.assert_success();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("render.mjs printed no JSON report ({e}): {out}"))
}

/// `target/e2e-artifacts/browser/VARIANT`, emptied: where this journey's screenshots go.
#[track_caller]
#[must_use]
pub fn artifacts_dir(variant: Variant) -> PathBuf {
    artifacts_dir_of("browser", variant)
}

/// `target/e2e-artifacts/KIND/VARIANT`, emptied.
#[track_caller]
#[must_use]
pub fn artifacts_dir_of(kind: &str, variant: Variant) -> PathBuf {
    let profile = crate::bins::profile_dir();
    let target = profile.parent().unwrap_or(&profile);
    let dir = target
        .join("e2e-artifacts")
        .join(kind)
        .join(variant.as_str());
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot empty {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// `tests/browser/`, where the script and its `node_modules` are.
#[must_use]
pub fn script_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Node (20 or later), Chromium and the `playwright-core` that `tests/browser/package.json`
/// pins; fails the test with the install command for whichever is missing or wrong.
#[track_caller]
#[must_use]
pub fn require_tools() -> PathBuf {
    const NPM_CI: &str = "run `bash tests/run.sh` (installs every test dependency) or `npm ci --prefix tests/browser`";
    let node = process::require("node", "install Node.js 20 or later");
    let version = process::run(
        Command::new(&node).arg("--version"),
        None,
        Duration::from_secs(30),
    );
    let major = version
        .stdout
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    assert!(
        major.is_some_and(|m| m >= 20),
        "tests/browser needs Node.js 20 or later, found {:?}: install a newer Node.js",
        version.stdout.trim()
    );
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} not found: run `bash tests/run.sh` (installs every test dependency) or `apt-get install chromium`"
    );
    let pinned = package_version(&script_dir().join("package.json"), true)
        .unwrap_or_else(|| panic!("tests/browser/package.json pins no playwright-core version"));
    let installed = package_version(
        &script_dir().join("node_modules/playwright-core/package.json"),
        false,
    );
    assert_eq!(
        installed.as_deref(),
        Some(pinned.as_str()),
        "playwright-core {pinned} is not installed in tests/browser/node_modules: {NPM_CI}"
    );
    node
}

/// The `version` of the package.json at `path` or, with `dependency`, the version it pins for
/// `playwright-core`.
fn package_version(path: &Path, dependency: bool) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let version = if dependency {
        &doc["dependencies"]["playwright-core"]
    } else {
        &doc["version"]
    };
    version.as_str().map(str::to_owned)
}

/// `node SCRIPT --chromium CHROMIUM` in `tests/browser/`, with a HOME and TMPDIR of its own
/// (Chromium writes its state below them: crash reports, NSS database) that live as long as the
/// returned directory, and no display.
#[track_caller]
fn node_script(script: &str) -> (Command, tempfile::TempDir) {
    let node = require_tools();
    let home = tempfile::Builder::new()
        .prefix("e2e-chromium.")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
    let mut cmd = Command::new(node);
    cmd.current_dir(script_dir())
        .arg(script)
        .arg("--chromium")
        .arg(CHROMIUM)
        .env("HOME", home.path())
        .env("TMPDIR", home.path())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    (cmd, home)
}

/// Runs the journey in Chromium, keeping screenshots in `artifacts`. Fails the test with the
/// script's message (which names the step and the page) unless every step worked.
#[track_caller]
#[must_use]
pub fn sign_in(journey: &Journey<'_>, artifacts: &Path) -> Report {
    run_sign_in(journey, None, artifacts)
}

/// Like [`sign_in`] for a code requested from `journey.address` while this browser is at
/// `browser_address`: the consent page must show a visible alert naming both, refuse Approve
/// until the person confirms they started the sign-in themselves, and approve then. The
/// screenshots add `consent-warning` and `consent-unconfirmed`.
#[track_caller]
#[must_use]
pub fn sign_in_warned(journey: &Journey<'_>, browser_address: &str, artifacts: &Path) -> Report {
    run_sign_in(journey, Some(browser_address), artifacts)
}

#[track_caller]
fn run_sign_in(journey: &Journey<'_>, warning: Option<&str>, artifacts: &Path) -> Report {
    let (mut cmd, _home) = node_script("signin.mjs");
    cmd.arg("--url")
        .arg(journey.url)
        .arg("--username")
        .arg(journey.username)
        .arg("--ca")
        .arg(journey.ca_file)
        .arg("--artifacts")
        .arg(artifacts)
        .arg("--cluster")
        .arg(journey.cluster)
        .arg("--client")
        .arg(journey.client)
        .arg("--address")
        .arg(journey.address)
        .arg("--variant")
        .arg(journey.variant.as_str());
    if let Some(address) = warning {
        cmd.arg("--warning").arg(address);
    }
    let password = format!("{}\n", journey.password);
    let out = process::run(&mut cmd, Some(password.as_bytes()), JOURNEY_TIMEOUT);
    report(&out)
}

#[track_caller]
fn report(out: &Outcome) -> Report {
    out.assert_success();
    let report: Report = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("signin.mjs printed no JSON report ({e}): {out}"));
    assert!(report.ok, "signin.mjs reported a failure: {out}");
    report
}

/// The first `https://` link in `text` that carries `user_code=CODE`: the plugin's
/// `verification_uri_complete`.
#[must_use]
pub fn find_complete_link<'t>(text: &'t str, user_code: &str) -> Option<&'t str> {
    let wanted = format!("user_code={user_code}");
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"'))
        .find(|word| word.starts_with("https://") && word.contains(&wanted))
}

/// Fails the test unless `path` is a PNG image of at least `min_width` x `min_height` pixels
/// and at least `min_bytes` long (a blank page compresses to far less). Returns the size.
#[track_caller]
#[must_use]
pub fn assert_png(path: &Path, min_width: u32, min_height: u32, min_bytes: u64) -> (u32, u32) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is not a PNG image",
        path.display()
    );
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let (width, height) = (be(16), be(20));
    assert!(
        width >= min_width && height >= min_height,
        "{} is {width}x{height}, expected at least {min_width}x{min_height}",
        path.display()
    );
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    assert!(
        len >= min_bytes,
        "{} has only {len} bytes (a blank page?), expected at least {min_bytes}",
        path.display()
    );
    (width, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_complete_link() {
        let stderr = "To sign in to cluster \"envtest\", open https://127.0.0.1:4431/device and enter the code BCDF-GHJK\n(or open https://127.0.0.1:4431/device?user_code=BCDF-GHJK)\n";
        assert_eq!(
            find_complete_link(stderr, "BCDF-GHJK"),
            Some("https://127.0.0.1:4431/device?user_code=BCDF-GHJK")
        );
        let with_qr =
            "(or open https://h/device?user_code=BCDF-GHJK, or scan this code with a phone:)";
        assert_eq!(
            find_complete_link(with_qr, "BCDF-GHJK"),
            Some("https://h/device?user_code=BCDF-GHJK")
        );
        assert_eq!(find_complete_link(stderr, "WXZB-QRST"), None);
    }

    #[test]
    fn rejects_what_is_not_a_png() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("x.png");
        std::fs::write(&path, b"<html>not an image</html>").unwrap_or_else(|e| panic!("{e}"));
        let result = std::panic::catch_unwind(|| assert_png(&path, 1, 1, 1));
        assert!(result.is_err(), "an HTML file passed as a PNG");
    }
}
