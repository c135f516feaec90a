//! Every page a person sees, as their browser shows it, on a desktop and on a phone: the
//! contractor's invitation and first sign-in with a second factor, the approver's requests page
//! and the auditor's trail. The journeys are walked with the harness's HTTP browser against the
//! shared world (real issuer, API server and plugin); the HTML of each page served is rendered
//! in headless Chromium (`tests/browser/render.mjs`), which fails on a page wider than the
//! screen or one that renders without a heading.
//!
//! The screenshots are kept in `target/e2e-artifacts/pages/{desktop,phone}/`. With
//! `SCREENSHOTS_DIR` set (`bash docs/screenshots.sh` sets it to `docs/images`), they are copied
//! there too: the pictures of docs/journeys.md.

use std::path::PathBuf;

use e2e::browser::{csrf_token, path_of};
use e2e::chromium::{self, Variant};

use crate::invitation::{code_step, invite, key_on, password_step, path, Contractor};
use crate::requests::{create_namespace, file, request_id, APPROVERS, ROLE};
use crate::world::unique;
use crate::world::{world, Laptop, AUDITORS, LOGIN_TIMEOUT, READERS};

/// A rendered page of text compresses to tens of kilobytes; a blank one to about one.
const MIN_PNG_BYTES: u64 = 8 * 1024;

/// `(name, html)` of each page, in the order people see them.
type Pages = Vec<(String, String)>;

fn keep(pages: &mut Pages, name: &str, page: &e2e::Page) {
    assert_eq!(page.status, 200, "{name}: {page:?}");
    pages.push((format!("{:02}-{name}", pages.len() + 1), page.body.clone()));
}

/// The contractor: the invitation link, the account set up, then the first `kubectl
/// credential login` with password and authenticator code.
fn contractor(pages: &mut Pages) {
    let world = world();
    let name = unique("shots-erin");
    let link = invite(&name, "2099-12-31", None);
    let browser = world.browser();
    let invitation = browser.get(&path(&link));
    keep(pages, "contractor-invitation", &invitation);
    let mut erin = Contractor {
        name: name.clone(),
        password: format!("contractor passphrase of {name}"),
        key: key_on(&invitation),
        last_step: 0,
    };
    let code = erin.next_code();
    let ready = browser.post(
        &path(&link),
        &[
            ("password", &erin.password),
            ("password_confirm", &erin.password),
            ("totp_code", &code),
            ("csrf_token", &csrf_token(&invitation)),
        ],
    );
    keep(pages, "contractor-account-ready", &ready);

    let laptop = Laptop::new();
    let login = laptop.env.start_login(&laptop.plugin);
    let browser = world.browser();
    let device = browser.get(&format!("/device?user_code={}", login.user_code()));
    keep(pages, "sign-in-code", &device);
    let form = browser.enter_user_code(login.user_code());
    keep(pages, "sign-in-password", &form);
    let second = password_step(&browser, login.user_code(), &erin);
    keep(pages, "sign-in-second-factor", &second);
    let consent = code_step(&browser, &second, &erin.next_code());
    assert_eq!(path_of(&consent), "/consent", "{consent:?}");
    keep(pages, "sign-in-consent", &consent);
    let done = browser.answer(&consent, e2e::browser::Answer::Approve);
    keep(pages, "sign-in-approved", &done);
    login.finish(LOGIN_TIMEOUT).assert_success();
}

/// `path` in a browser signed in as `name` (signing in first when the page asks for it).
fn signed_in(name: &str, password: &str, path: &str) -> (e2e::Browser, e2e::Page) {
    let browser = world().browser();
    let first = browser.get(path);
    if path_of(&first) == "/login" {
        let _ = browser.sign_in(&first, name, password);
    }
    let page = browser.get(path);
    assert_eq!(
        path_of(&page),
        path.split('?').next().unwrap_or(path),
        "{page:?}"
    );
    (browser, page)
}

/// The approver: a pending request on /requests, and the page after approving it.
fn approver(pages: &mut Pages) {
    let world = world();
    let ns = unique("shots-payments");
    create_namespace(&ns);
    let (_requester, laptop) = world.signed_in("shots-requester", &[READERS]);
    let filed = file(&laptop, ROLE, Some(&ns), "30m");
    let id = request_id(&filed);
    let approver = world.new_person("shots-approver", &[APPROVERS]);
    let (browser, list) = signed_in(&approver.name, &approver.password, "/requests");
    assert!(
        list.body.contains(&id),
        "request {id} not on /requests: {list:?}"
    );
    keep(pages, "approver-requests", &list);
    let decided = browser.post(
        &format!("/requests/{id}"),
        &[
            ("action", "approve"),
            ("comment", "matches INC-4242"),
            ("csrf_token", &csrf_token(&list)),
        ],
    );
    keep(pages, "approver-approved", &decided);
}

/// The auditor: the trail, and the trail of one person.
fn auditor(pages: &mut Pages) {
    let world = world();
    let auditor = world.new_person("shots-auditor", &[AUDITORS]);
    let (browser, trail) = signed_in(&auditor.name, &auditor.password, "/audit");
    keep(pages, "auditor-trail", &trail);
    let one = browser.get(&format!("/audit?person={}", auditor.name));
    keep(pages, "auditor-one-person", &one);
}

#[test]
fn every_page_a_person_sees_renders_on_a_desktop_and_a_phone() {
    let mut pages = Pages::new();
    contractor(&mut pages);
    approver(&mut pages);
    auditor(&mut pages);
    let copy_to = std::env::var_os("SCREENSHOTS_DIR").map(PathBuf::from);
    for variant in [Variant::Desktop, Variant::Phone] {
        let dir = chromium::artifacts_dir_of("pages", variant);
        let rendered = chromium::render(&pages, variant, &dir);
        assert_eq!(rendered.shots.len(), pages.len(), "{rendered:?}");
        let min_width = if variant == Variant::Desktop {
            1280
        } else {
            360
        };
        for shot in &rendered.shots {
            let _ = chromium::assert_png(&shot.screenshot, min_width, 300, MIN_PNG_BYTES);
            if let Some(out) = &copy_to {
                let dir = out.join(variant.as_str());
                std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                std::fs::copy(&shot.screenshot, dir.join(format!("{}.png", shot.name)))
                    .unwrap_or_else(|e| panic!("copy {}: {e}", shot.name));
            }
        }
    }
}
