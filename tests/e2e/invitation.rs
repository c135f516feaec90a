//! A contractor's account, from invitation to kubectl: the administrator runs the real
//! `credential-issuer invite create`, the contractor opens the link, sets a password and enrols
//! an authenticator (the test reads the key off the page and computes codes with the issuer's
//! TOTP module, as a phone would), then logs in with the plugin's device flow (password, then a
//! code) and uses kubectl with the invited group. Along the way: a used link, an expired link,
//! wrong codes and their rate limit, and an account whose end has passed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use credential_issuer::secrets::totp;
use credential_shared::exec_credential::ApiVersion;
use e2e::browser::{csrf_token, path_of};
use e2e::wait::{self, Check};
use e2e::{Browser, Page};

use crate::world::{assert_login_required, refused_refresh, world, Laptop, LOGIN_TIMEOUT, READERS};

/// An invited person, as the test follows them.
pub(crate) struct Contractor {
    pub(crate) name: String,
    pub(crate) password: String,
    /// The TOTP key their authenticator app holds (read off the invitation page).
    pub(crate) key: Vec<u8>,
    /// The last time step a code of theirs was accepted for (codes work once).
    pub(crate) last_step: i64,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// `credential-issuer invite create` as the administrator runs it against the world's issuer:
/// returns the link it printed (and checks that the output says when the account ends).
#[track_caller]
pub(crate) fn invite(name: &str, expires: &str, link_ttl: Option<&str>) -> String {
    let world = world();
    let mut args = vec![
        "invite",
        "create",
        "--name",
        name,
        "--email",
        "contractor@example.com",
        "--group",
        READERS,
        "--expires",
        expires,
        "--issuer-url",
        world.issuer.url(),
    ];
    if let Some(ttl) = link_ttl {
        args.extend(["--link-ttl", ttl]);
    }
    let out = world.issuer.cli(&args, None);
    out.assert_success()
        .assert_stdout_contains("the account expires");
    let prefix = format!("{}/invite/", world.issuer.url());
    let link = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no link starting with {prefix} in: {out}"))
        .trim()
        .to_owned();
    link
}

/// The path of `link` on the issuer (`/invite/<token>`).
pub(crate) fn path(link: &str) -> String {
    let base = world().issuer.url();
    link.strip_prefix(base)
        .unwrap_or_else(|| panic!("{link} is not on {base}"))
        .to_owned()
}

pub(crate) fn key_on(page: &Page) -> Vec<u8> {
    let marker = r#"<code id="totp-secret">"#;
    let start =
        page.body.find(marker).unwrap_or_else(|| {
            panic!("no manual-entry key on the invitation page:\n{}", page.body)
        }) + marker.len();
    let secret = page.body[start..].split('<').next().unwrap_or_default();
    totp::base32_decode(secret).unwrap_or_else(|| panic!("the key {secret:?} is not base32"))
}

impl Contractor {
    /// A code for a time step after the last one used and at most one step ahead of now
    /// (the issuer allows one step of clock skew), waiting for the clock if it must.
    pub(crate) fn next_code(&mut self) -> String {
        let step = wait::until(
            "a TOTP time step not used yet",
            Duration::from_secs(70),
            || {
                let now = totp::step_at(unix_now());
                let step = (self.last_step + 1).max(now);
                if step <= now + 1 {
                    Check::Done(step)
                } else {
                    Check::Retry(format!("step {now}, last used {}", self.last_step))
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.last_step = step;
        totp::code_at_step(&self.key, step)
    }

    /// A six-digit code that is not valid now.
    fn wrong_code(&self) -> String {
        let now = totp::step_at(unix_now());
        let valid: Vec<String> = (now - 2..=now + 2)
            .map(|s| totp::code_at_step(&self.key, s))
            .collect();
        (0..10)
            .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
            .find(|c| !valid.contains(c))
            .unwrap_or_default()
    }
}

/// Opens `link` in `browser`, sets the password and enrols the authenticator.
#[track_caller]
fn accept(browser: &Browser, link: &str, name: &str) -> Contractor {
    let page = browser.get(&path(link));
    assert_eq!(page.status, 200, "the invitation did not open: {page:?}");
    assert!(page.body.contains("<svg"), "no QR code on the page");
    let mut person = Contractor {
        name: name.to_owned(),
        password: format!("contractor passphrase of {name}"),
        key: key_on(&page),
        last_step: 0,
    };
    let code = person.next_code();
    let done = browser.post(
        &path(link),
        &[
            ("password", &person.password),
            ("password_confirm", &person.password),
            ("totp_code", &code),
            ("csrf_token", &csrf_token(&page)),
        ],
    );
    assert_eq!(done.status, 200, "setting up the account failed: {done:?}");
    assert!(done.body.contains("Account ready"), "{done:?}");
    person
}

/// Enters `user_code` and the password: returns the page landed on (the code step).
#[track_caller]
pub(crate) fn password_step(browser: &Browser, user_code: &str, who: &Contractor) -> Page {
    let login = browser.enter_user_code(user_code);
    assert_eq!(path_of(&login), "/login", "{login:?}");
    browser.post(
        "/login",
        &[
            ("username", &who.name),
            ("password", &who.password),
            ("csrf_token", &csrf_token(&login)),
        ],
    )
}

/// Submits `code` on the second-step page `page`.
#[track_caller]
pub(crate) fn code_step(browser: &Browser, page: &Page, code: &str) -> Page {
    assert_eq!(
        path_of(page),
        "/login/totp",
        "expected the code step: {page:?}"
    );
    browser.post(
        "/login/totp",
        &[("totp_code", code), ("csrf_token", &csrf_token(page))],
    )
}

/// `kubectl-credential login` on `laptop`, completed by `who` with password and code.
#[track_caller]
fn log_in(laptop: &Laptop, who: &mut Contractor) {
    let login = laptop.env.start_login(&laptop.plugin);
    let browser = world().browser();
    let step = password_step(&browser, login.user_code(), who);
    let consent = code_step(&browser, &step, &who.next_code());
    assert_eq!(path_of(&consent), "/consent", "{consent:?}");
    assert!(
        consent.body.contains(crate::world::CLUSTER) && consent.body.contains("kubectl-credential"),
        "the consent page must name the cluster and the client: {consent:?}"
    );
    let done = browser.answer(&consent, e2e::browser::Answer::Approve);
    assert!(done.body.contains("approved"), "{done:?}");
    login.finish(LOGIN_TIMEOUT).assert_success();
}

#[test]
fn a_contractor_is_invited_enrols_a_second_factor_and_uses_kubectl() {
    let world = world();
    let name = "contractor-ann".to_owned();
    let link = invite(&name, "30d", None);
    let listed = world.issuer.cli(&["invite", "list"], None);
    listed.assert_success().assert_stdout_contains("pending");
    assert!(
        !listed.stdout.contains(&link[link.len() - 20..]),
        "`invite list` shows the token: {listed}"
    );

    let browser = world.browser();
    let mut person = accept(&browser, &link, &name);

    // The link works once.
    let used_again = world.browser().get(&path(&link));
    assert_eq!(used_again.status, 410, "{used_again:?}");
    assert!(
        used_again.body.contains("already been used"),
        "{used_again:?}"
    );
    let users = world.issuer.list_users();
    let row = users
        .lines()
        .find(|l| l.starts_with(&format!("{name}\t")))
        .unwrap_or_else(|| panic!("{name} not in `user list`:\n{users}"));
    assert!(
        row.contains("2fa totp") && row.contains("expires 20"),
        "{row}"
    );

    // Sign-in asks for a code after the password; a wrong one is refused, then the login works.
    let laptop = Laptop::new();
    let login = laptop.env.start_login(&laptop.plugin);
    let b = world.browser();
    let step = password_step(&b, login.user_code(), &person);
    let refused = code_step(&b, &step, &person.wrong_code());
    assert_eq!(
        refused.status, 401,
        "a wrong code must be refused: {refused:?}"
    );
    let consent = code_step(&b, &refused, &person.next_code());
    assert_eq!(path_of(&consent), "/consent", "{consent:?}");
    let _ = b.answer(&consent, e2e::browser::Answer::Approve);
    login.finish(LOGIN_TIMEOUT).assert_success();
    laptop.kubectl(&["get", "namespaces"]).assert_success();
}

/// The page of invitation `link` once it has expired, waited for.
fn expired_page(browser: &e2e::Browser, link: &str) -> e2e::Page {
    wait::until(
        "the invitation link has expired",
        Duration::from_secs(30),
        || {
            let page = browser.get(&path(link));
            match page.status {
                410 => Check::Done(page),
                200 => Check::Retry("still open".to_owned()),
                other => Check::Fail(format!("unexpected status {other}: {}", page.body)),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_invitation_link_expires() {
    let name = "contractor-late".to_owned();
    let link = invite(&name, "30d", Some("1s"));
    let browser = world().browser();
    let page = expired_page(&browser, &link);
    assert!(
        page.body.contains("expired") && page.body.contains("Ask your platform team"),
        "{page:?}"
    );
}

#[test]
fn wrong_codes_at_sign_in_are_rate_limited() {
    let world = world();
    let name = "contractor-guess".to_owned();
    let link = invite(&name, "30d", None);
    let mut person = accept(&world.browser(), &link, &name);
    // Wrong code on the invitation itself is a 400 with the form again: tested before it was
    // accepted in the handler tests; here the sign-in limit (rate_limits.totp_failures = 5).
    let laptop = Laptop::new();
    let login = laptop.env.start_login(&laptop.plugin);
    let b = world.browser();
    let mut page = password_step(&b, login.user_code(), &person);
    for i in 0..5 {
        page = code_step(&b, &page, &person.wrong_code());
        assert_eq!(page.status, 401, "wrong code {i}: {page:?}");
    }
    let limited = code_step(&b, &page, &person.next_code());
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.body.contains("Too many wrong codes"), "{limited:?}");
    drop(login);
}

#[test]
fn an_expired_account_cannot_sign_in_and_its_refresh_is_refused() {
    let world = world();
    let name = "contractor-short".to_owned();
    // Long enough for the journey on a loaded machine; the test then waits for the end.
    let link = invite(&name, "45s", None);
    let created = SystemTime::now();
    let mut person = accept(&world.browser(), &link, &name);
    let laptop = Laptop::new();
    log_in(&laptop, &mut person);
    laptop.kubectl(&["get", "namespaces"]).assert_success();
    let cached = laptop.cached_token();

    wait::until(
        "the account's end has passed",
        Duration::from_secs(90),
        || {
            if created.elapsed().unwrap_or_default() > Duration::from_secs(47) {
                Check::Done(())
            } else {
                Check::Retry("not yet".to_owned())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // The plugin, run by kubectl without a terminal, cannot refresh: exit 3 with the hint.
    let out = laptop.get_credential(ApiVersion::V1);
    assert_login_required(&out);
    // The refresh token is refused by the issuer, saying why.
    let refused = refused_refresh(
        &world.issuer,
        &cached.refresh_token,
        "an expired account got a new token",
    );
    assert!(refused.body.contains("expired"), "{refused:?}");
    // Signing in again is refused with a page that says so.
    let login = laptop.env.start_login(&laptop.plugin);
    let b = world.browser();
    let page = password_step(&b, login.user_code(), &person);
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.body.contains("Account expired"), "{page:?}");
    drop(login);
}

/// The text of `<code id="ID">` on `page`, as the person copies it (entities decoded).
#[track_caller]
fn code_text(page: &Page, id: &str) -> String {
    let marker = format!(r#"<code id="{id}">"#);
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} on the page:\n{}", page.body))
        + marker.len();
    let html = page.body[start..]
        .split("</code>")
        .next()
        .unwrap_or_default();
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// What the contractor's terminal runs: `line` in a POSIX shell, as pasted, on `env`'s machine
/// with the plugin installed on `PATH` (so `kubectl credential` finds it).
fn paste(env: &e2e::UserEnv, line: &str) -> e2e::Outcome {
    let plugin = e2e::bins::kubectl_credential();
    let bin_dir = plugin
        .parent()
        .unwrap_or_else(|| panic!("{} has no directory", plugin.display()));
    let path = std::env::join_paths(std::iter::once(bin_dir.to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap_or_else(|e| panic!("PATH: {e}"));
    let mut cmd = env.command(std::path::Path::new("/bin/sh"));
    cmd.env("PATH", path).args(["-c", line]);
    e2e::process::run(&mut cmd, None, Duration::from_secs(60))
}

/// The "Account ready" page is enough to go on: the person downloads the CA with the command
/// it shows, runs its `kubectl credential setup` line as written, and has a kubeconfig whose
/// context the page names next.
#[test]
fn the_account_ready_page_gives_commands_that_work_as_written() {
    let world = world();
    let _curl = e2e::process::require("curl", "apt-get install curl");
    let issuer = e2e::Issuer::start(&e2e::IssuerOptions {
        clusters: vec![(
            crate::world::CLUSTER.to_owned(),
            crate::world::AUDIENCE.to_owned(),
        )],
        api_server: Some(world.api_server()),
        ..e2e::IssuerOptions::default()
    });
    let name = "contractor-newcomer";
    let out = issuer.cli(
        &[
            "invite",
            "create",
            "--name",
            name,
            "--group",
            READERS,
            "--expires",
            "30d",
            "--issuer-url",
            issuer.url(),
        ],
        None,
    );
    out.assert_success();
    let link = out
        .stdout
        .lines()
        .find(|l| l.contains("/invite/"))
        .unwrap_or_else(|| panic!("no link in: {out}"))
        .trim()
        .to_owned();
    let browser = Browser::new(issuer.url(), issuer.ca_file());
    let invite_path = link
        .strip_prefix(issuer.url())
        .unwrap_or_else(|| panic!("{link} is not on {}", issuer.url()));
    let page = browser.get(invite_path);
    assert_eq!(page.status, 200, "{page:?}");
    let key = key_on(&page);
    let code = totp::code_at(&key, unix_now());
    let password = "the newcomer's long passphrase";
    let done = browser.post(
        invite_path,
        &[
            ("password", password),
            ("password_confirm", password),
            ("totp_code", &code),
            ("csrf_token", &csrf_token(&page)),
        ],
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert!(done.body.contains("install-plugin.sh"), "{done:?}");

    // On a new machine, with nothing of the issuer's yet.
    let env = e2e::UserEnv::new();
    paste(&env, &code_text(&done, "ca-command")).assert_success();
    let saved = env.home().join(".kube/credential-issuer-ca.crt");
    assert_eq!(
        std::fs::read_to_string(&saved).unwrap_or_else(|e| panic!("{}: {e}", saved.display())),
        std::fs::read_to_string(issuer.ca_file()).unwrap_or_default(),
        "the CA the page offers is not the issuer's"
    );
    let setup = code_text(&done, "setup-command");
    assert!(
        setup.starts_with(&format!(
            "kubectl credential setup --issuer {}",
            issuer.url()
        )),
        "{setup}"
    );
    paste(&env, &setup)
        .assert_success()
        .assert_stderr_contains(crate::world::CLUSTER);
    let kubeconfig = std::fs::read_to_string(env.home().join(".kube/config")).unwrap_or_default();
    assert!(
        kubeconfig.contains(&saved.to_string_lossy().into_owned()),
        "the kubeconfig does not trust the downloaded CA:\n{kubeconfig}"
    );
    // What the page says to run next names a context that setup wrote.
    let next = code_text(&done, "next-command");
    assert_eq!(
        next,
        format!("kubectl --context {} get namespaces", crate::world::CLUSTER)
    );
    assert!(
        kubeconfig.contains(&format!("name: {}", crate::world::CLUSTER)),
        "{kubeconfig}"
    );
}

/// An expired link is not a dead end: the page names the command, `invite create` points at
/// it, and `invite renew` prints a link that works while the old one stays dead.
#[test]
fn an_expired_invitation_is_renewed_with_the_command_the_page_names() {
    let world = world();
    let name = "contractor-renewed".to_owned();
    let old = invite(&name, "30d", Some("1s"));
    let browser = world.browser();
    let page = expired_page(&browser, &old);
    let command = format!("credential-issuer invite renew {name}");
    assert!(page.body.contains(&command), "{page:?}");
    assert!(!page.body.contains(r#"href="/device""#), "{page:?}");

    let again = world.issuer.cli(
        &[
            "invite",
            "create",
            "--name",
            &name,
            "--expires",
            "30d",
            "--issuer-url",
            world.issuer.url(),
        ],
        None,
    );
    assert!(!again.success(), "{again}");
    assert!(again.stderr.contains(&command), "{again}");

    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let mut args = args;
    args.extend(["--issuer-url", world.issuer.url()]);
    let renewed = world.issuer.cli(&args, None);
    renewed.assert_success();
    let link = renewed
        .stdout
        .lines()
        .find(|l| l.contains("/invite/"))
        .unwrap_or_else(|| panic!("no link in: {renewed}"))
        .trim()
        .to_owned();
    assert_ne!(link, old);
    assert_eq!(world.browser().get(&path(&old)).status, 410);
    let mut person = accept(&world.browser(), &link, &name);
    let laptop = Laptop::new();
    log_in(&laptop, &mut person);
    laptop.kubectl(&["get", "namespaces"]).assert_success();
}
