//! The device flow (RFC 8628) as the person sees it: the prompt on stderr, opening a browser,
//! and waiting for the approval at the pace the issuer asks for.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use credential_shared::oauth::{DeviceAuthorizationResponse, OAuthErrorCode, TokenResponse};

use crate::base::cancel::Cancel;
use crate::base::clock::{human_duration, rfc3339, Clock};
use crate::base::env;
use crate::base::secret::Secret;
use crate::base::target::Target;
use crate::cache::{Entry, MAX_WAIT_SECS};
use crate::error::Error;
use crate::issuer::{Endpoints, IssuerClient, IssuerError, Retry};
use credential_shared::text::Untrusted;

/// Poll interval when the issuer gives none (RFC 8628 section 3.2).
const DEFAULT_INTERVAL_SECS: u64 = 5;
/// What `slow_down` adds to the interval (RFC 8628 section 3.5).
const SLOW_DOWN_SECS: u64 = 5;
/// Consecutive transient failures (no connection, HTTP 5xx) tolerated while waiting: a network
/// blip during a minute-long wait should not throw away an approval in progress.
const MAX_TRANSIENT_FAILURES: u32 = 3;

/// How often the wait is reported when stderr is not a terminal (a log file, CI): one line per
/// period, so the log shows progress without a line per second.
const PLAIN_PROGRESS_SECS: u64 = 30;

/// Runs the whole device flow: asks the issuer for a code, shows it (and opens a browser), waits
/// for the approval, and returns the new session. Talks to the person on `ui` (stderr);
/// `terminal` says whether that is a terminal, which adds a QR code and a live countdown.
pub(crate) fn sign_in(
    client: &IssuerClient,
    endpoints: &Endpoints,
    args: &Target,
    clock: &dyn Clock,
    ui: &mut dyn Write,
    terminal: bool,
    cancel: &Cancel,
) -> Result<Entry, Error> {
    let auth = client.authorize_device(endpoints, &args.client_id, &args.cluster)?;
    let openable = sign_in_url(&auth.verification_uri_complete, client.issuer_is_http());
    // A QR code is for a person looking at a terminal; in a log it is only noise.
    let qr = match &openable {
        Ok(url) if terminal => qr_code(url.as_str()),
        _ => None,
    };
    // The prompt goes to a terminal that may be gone; the flow does not depend on it.
    let _ = write_prompt(ui, &args.cluster, &auth, qr.as_deref());
    let launch = choose_launcher(args.no_browser, env::var_os, std::env::consts::OS);
    if let Launch::Run {
        program,
        args: leading,
    } = launch
    {
        if let Err(why) = openable.and_then(|url| open_browser(&program, &leading, &url)) {
            let _ = writeln!(
                ui,
                "note: could not open a browser ({}); open the link above yourself",
                Untrusted::long(&why)
            );
        }
    }
    let device_code = Secret::new(auth.device_code);
    let mut progress = Progress::new(ui, terminal);
    let result = wait_for_approval(
        clock,
        auth.expires_in,
        auth.interval,
        &mut |left| progress.tick(left),
        cancel,
        || client.poll_device(endpoints, &args.client_id, &device_code),
    );
    progress.finish();
    Entry::from_token_response(result?, None, clock.now()).map_err(|source| Error::MalformedToken {
        issuer: client.issuer().to_owned(),
        source,
    })
}

/// The lines that tell the person what to do, and the QR code of the complete link if there
/// is one. How long is left is [`Progress`]'s to say.
fn write_prompt(
    ui: &mut dyn Write,
    cluster: &str,
    auth: &DeviceAuthorizationResponse,
    qr: Option<&str>,
) -> std::io::Result<()> {
    writeln!(
        ui,
        "To sign in to cluster \"{}\", open {} and enter the code {}",
        Untrusted::new(cluster),
        Untrusted::long(&auth.verification_uri),
        Untrusted::new(&auth.user_code)
    )?;
    let complete = Untrusted::long(&auth.verification_uri_complete);
    match qr {
        Some(qr) => {
            writeln!(ui, "(or open {complete}, or scan this code with a phone:)")?;
            write!(ui, "{qr}")?;
            if !qr.ends_with('\n') {
                writeln!(ui)?;
            }
        }
        None => writeln!(ui, "(or open {complete})")?,
    }
    ui.flush()
}

/// `url` as a QR code drawn with Unicode half blocks, two module rows per line, quiet zone
/// included. Light modules are drawn as blocks and dark ones as blanks, so that on the usual
/// dark terminal the code appears dark on light, as scanners expect (phone scanners also read
/// the inverse on a light terminal). `None` if the URL is too long for a QR code.
fn qr_code(url: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// Reports the time left while waiting. On a terminal it rewrites one line with `\r` (no
/// escape sequences, no raw mode: a Ctrl-C leaves the terminal as it was); elsewhere it writes
/// a plain line at the start and then every [`PLAIN_PROGRESS_SECS`].
struct Progress<'a> {
    out: &'a mut dyn Write,
    terminal: bool,
    /// Length of the line last drawn on the terminal (0: none drawn).
    drawn: usize,
    /// Seconds left at the last plain line.
    last_plain: Option<u64>,
}

impl<'a> Progress<'a> {
    fn new(out: &'a mut dyn Write, terminal: bool) -> Self {
        Self {
            out,
            terminal,
            drawn: 0,
            last_plain: None,
        }
    }

    /// `left` seconds remain before the code expires. Write errors are ignored: the wait does
    /// not depend on the terminal.
    fn tick(&mut self, left: u64) {
        let left_text = human_duration(left);
        if self.terminal {
            let line = format!("Waiting for approval: {left_text} left (Ctrl-C to cancel)");
            // Blank out what a longer previous line left behind.
            let pad = self.drawn.saturating_sub(line.len());
            let _ = write!(self.out, "\r{line}{:pad$}", "");
            self.drawn = line.len();
        } else {
            match self.last_plain {
                None => {
                    let _ = writeln!(self.out, "Waiting for approval (expires in {left_text})...");
                }
                Some(last) if last.saturating_sub(left) >= PLAIN_PROGRESS_SECS => {
                    let _ = writeln!(self.out, "Still waiting for approval: {left_text} left.");
                }
                Some(_) => return,
            }
            self.last_plain = Some(left);
        }
        let _ = self.out.flush();
    }

    /// Ends the countdown line, so that what follows starts on a line of its own.
    fn finish(&mut self) {
        if self.terminal && self.drawn > 0 {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
            self.drawn = 0;
        }
    }
}

/// Polls until the person approves, denies, the code expires or `cancel` is requested (checked
/// once a second and after each poll). `poll` is one token request; `progress` hears the
/// seconds left once a second while waiting between polls.
pub(crate) fn wait_for_approval(
    clock: &dyn Clock,
    expires_in: u64,
    interval: u64,
    progress: &mut dyn FnMut(u64),
    cancel: &Cancel,
    mut poll: impl FnMut() -> Result<TokenResponse, IssuerError>,
) -> Result<TokenResponse, Error> {
    let deadline = clock
        .now()
        .saturating_add(i64::try_from(expires_in).unwrap_or(i64::MAX));
    let left = || u64::try_from(deadline.saturating_sub(clock.now())).unwrap_or(0);
    let mut interval = if interval == 0 {
        DEFAULT_INTERVAL_SECS
    } else {
        interval
    };
    let mut transient_failures = 0;
    // The wait before the next poll: the interval, or longer when the issuer asked for it.
    let mut wait = interval;
    loop {
        let remaining = left();
        if remaining == 0 {
            return Err(Error::CodeExpired);
        }
        // Whole seconds, so the countdown moves once a second; the total is the wait.
        for _ in 0..wait.min(remaining) {
            if cancel.requested() {
                return Err(Error::Cancelled);
            }
            progress(left());
            clock.sleep(Duration::from_secs(1));
        }
        if cancel.requested() {
            return Err(Error::Cancelled);
        }
        if clock.now() >= deadline {
            return Err(Error::CodeExpired);
        }
        let err = match poll() {
            // Approved at the moment of the Ctrl-C: the person asked to stop, so nothing is
            // kept (the session ends at the issuer when its refresh token goes unused).
            Ok(_) if cancel.requested() => return Err(Error::Cancelled),
            Ok(response) => return Ok(response),
            Err(err) => err,
        };
        wait = interval;
        match err.oauth_code() {
            Some(OAuthErrorCode::AuthorizationPending) => transient_failures = 0,
            Some(OAuthErrorCode::SlowDown) => {
                interval += SLOW_DOWN_SECS;
                wait = interval;
                transient_failures = 0;
            }
            Some(OAuthErrorCode::AccessDenied) => return Err(Error::AccessDenied),
            Some(OAuthErrorCode::ExpiredToken) => return Err(Error::CodeExpired),
            _ if err.is_transient() && transient_failures < MAX_TRANSIENT_FAILURES => {
                transient_failures += 1;
                // The issuer's `Retry-After`, bounded as `get` bounds it; the code's expiry
                // bounds it again.
                if let Some(Retry::Later {
                    retry_after: Some(secs),
                    ..
                }) = err.retry()
                {
                    wait = interval.max(secs.min(MAX_WAIT_SECS));
                }
            }
            _ => return Err(err.into()),
        }
    }
}

/// How to open the sign-in page, or why not.
#[derive(Debug, PartialEq, Eq)]
enum Launch {
    /// Do not open anything.
    Skip(&'static str),
    /// Run `program` with `args` and then the URL.
    Run {
        program: OsString,
        args: Vec<OsString>,
    },
}

/// Decides how to open the browser from the flags, the environment (`var`) and the OS.
fn choose_launcher(no_browser: bool, var: impl Fn(&str) -> Option<OsString>, os: &str) -> Launch {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if no_browser {
        return Launch::Skip("--no-browser");
    }
    if set(env::SSH_CONNECTION) || set(env::SSH_TTY) {
        return Launch::Skip("SSH session");
    }
    if let Some(program) = var(env::BROWSER).filter(|v| !v.is_empty()) {
        return Launch::Run {
            program,
            args: Vec::new(),
        };
    }
    let run = |program: &str, args: &[&str]| Launch::Run {
        program: program.into(),
        args: args.iter().map(OsString::from).collect(),
    };
    match os {
        "macos" => run("open", &[]),
        // `start` takes its first quoted argument as a window title: give it an empty one.
        "windows" => run("cmd", &["/c", "start", ""]),
        _ if !set(env::DISPLAY) && !set(env::WAYLAND_DISPLAY) => Launch::Skip("no display"),
        _ => run("xdg-open", &[]),
    }
}

/// The sign-in URL from the issuer, if it may be opened or shown as a QR code: only http(s)
/// (plain http only for a plain-http development issuer). The URL comes from the issuer, and
/// `xdg-open` would happily run a `file:` or custom-scheme URL.
fn sign_in_url(url: &str, issuer_is_http: bool) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad sign-in URL: {e}"))?;
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && issuer_is_http) {
        return Err("the sign-in URL is not https".to_owned());
    }
    Ok(parsed)
}

/// Starts the browser, detached, with no access to stdout (which belongs to kubectl).
fn open_browser(program: &OsString, leading: &[OsString], url: &url::Url) -> Result<(), String> {
    let url_arg = if cfg!(windows) {
        // cmd.exe would split the command at `&`.
        url.as_str().replace('&', "^&")
    } else {
        url.as_str().to_owned()
    };
    Command::new(program)
        .args(leading)
        .arg(url_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("{}: {e}", program.to_string_lossy()))
}

/// The line `login` ends with.
pub(crate) fn logged_in_message(entry: &Entry, cluster: &str) -> String {
    let groups = entry.groups();
    let groups = if groups.is_empty() {
        "no groups".to_owned()
    } else {
        format!("groups {}", groups.join(", "))
    };
    let until = match entry.session_expires_at {
        Some(end) => format!(
            "session valid until {}",
            rfc3339(end).unwrap_or_else(|| end.to_string())
        ),
        None => format!(
            "token valid until {}; the issuer did not say when the session ends",
            rfc3339(entry.exp).unwrap_or_else(|| entry.exp.to_string())
        ),
    };
    format!(
        "Logged in as {} ({}) to cluster {}; {until}",
        Untrusted::new(&entry.username),
        Untrusted::long(&groups),
        Untrusted::new(cluster)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use credential_shared::oauth::OAuthError;

    use super::*;
    use crate::base::clock::fake::FakeClock;
    use crate::exit::{EXIT_ISSUER, EXIT_LOGIN_REFUSED};

    fn oauth(code: OAuthErrorCode) -> Result<TokenResponse, IssuerError> {
        Err(IssuerError::OAuth {
            issuer: "https://i".to_owned(),
            status: 400,
            error: OAuthError {
                error: code,
                error_description: None,
            },
            retry_after: None,
        })
    }

    fn unavailable_for(secs: u64) -> Result<TokenResponse, IssuerError> {
        Err(IssuerError::OAuth {
            issuer: "https://i".to_owned(),
            status: 503,
            error: OAuthError {
                error: OAuthErrorCode::TemporarilyUnavailable,
                error_description: Some("the identity provider cannot be reached".to_owned()),
            },
            retry_after: Some(secs),
        })
    }

    fn unavailable() -> Result<TokenResponse, IssuerError> {
        Err(IssuerError::Status {
            issuer: "https://i".to_owned(),
            url: "https://i/oauth/token".to_owned(),
            status: 503,
            retry_after: None,
        })
    }

    fn approved() -> TokenResponse {
        TokenResponse {
            access_token: "a.b.c".to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: 600,
            refresh_token: "r".to_owned(),
            session_expires_at: None,
            api_server: None,
            issued_token_type: None,
        }
    }

    /// Runs the wait against scripted answers; returns the result, the time slept and the
    /// number of polls.
    fn check(
        expires_in: u64,
        interval: u64,
        answers: Vec<Result<TokenResponse, IssuerError>>,
    ) -> (Result<TokenResponse, Error>, u64, usize) {
        let clock = FakeClock::at(1_000_000);
        let mut answers: VecDeque<_> = answers.into();
        let mut polls = 0;
        let mut ticks = Vec::new();
        let result = wait_for_approval(
            &clock,
            expires_in,
            interval,
            &mut |left| ticks.push(left),
            &Cancel::default(),
            || {
                polls += 1;
                answers
                    .pop_front()
                    .unwrap_or_else(|| oauth(OAuthErrorCode::AuthorizationPending))
            },
        );
        // The countdown hears every second of the wait, from the full lifetime down.
        let slept = clock.slept().as_secs();
        let want: Vec<u64> = (0..slept).map(|s| expires_in - s).collect();
        assert_eq!(ticks, want);
        (result, slept, polls)
    }

    #[test]
    fn ctrl_c_stops_the_wait_even_when_the_approval_arrives_with_it() {
        // Pressed while waiting between polls: no further poll is made.
        let clock = FakeClock::at(1_000_000);
        let cancel = Cancel::default();
        let mut polls = 0;
        let mut ticks = 0;
        let result = wait_for_approval(
            &clock,
            600,
            5,
            &mut |_| {
                ticks += 1;
                if ticks == 7 {
                    cancel.request();
                }
            },
            &cancel,
            || {
                polls += 1;
                oauth(OAuthErrorCode::AuthorizationPending)
            },
        );
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
        assert_eq!((polls, ticks), (1, 7));
        let err = result.err().unwrap_or_else(|| panic!("cancelled"));
        assert_eq!(err.exit_code(), 130);
        insta::assert_snapshot!(crate::error::report(&err), @"sign-in cancelled; nothing was stored");

        // Pressed while the approving poll was in flight: the session is not kept.
        let cancel = Cancel::default();
        let result = wait_for_approval(&clock, 600, 1, &mut |_| {}, &cancel, || {
            cancel.request();
            Ok(approved())
        });
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    }

    #[test]
    fn polls_at_the_interval_until_approved() {
        let (result, slept, polls) = check(
            600,
            5,
            vec![
                oauth(OAuthErrorCode::AuthorizationPending),
                oauth(OAuthErrorCode::AuthorizationPending),
                Ok(approved()),
            ],
        );
        assert!(result.is_ok());
        assert_eq!((slept, polls), (15, 3));
    }

    #[test]
    fn slow_down_adds_five_seconds_for_good() {
        let answers = vec![
            oauth(OAuthErrorCode::SlowDown),
            oauth(OAuthErrorCode::AuthorizationPending),
            Ok(approved()),
        ];
        let (result, slept, polls) = check(600, 5, answers);
        assert!(result.is_ok());
        assert_eq!((slept, polls), (5 + 10 + 10, 3));
    }

    #[test]
    fn stops_at_the_expiry_of_the_code() {
        let (result, slept, polls) = check(12, 5, vec![]);
        assert!(matches!(result, Err(Error::CodeExpired)));
        assert_eq!((slept, polls), (12, 2));
    }

    #[test]
    fn refusals_end_the_wait_with_exit_5() {
        for (code, want_denied) in [
            (OAuthErrorCode::AccessDenied, true),
            (OAuthErrorCode::ExpiredToken, false),
        ] {
            let (result, _, polls) = check(600, 5, vec![oauth(code)]);
            let err = result.err().unwrap_or_else(|| panic!("{code:?} accepted"));
            assert_eq!(matches!(err, Error::AccessDenied), want_denied);
            assert_eq!(err.exit_code(), EXIT_LOGIN_REFUSED);
            assert_eq!(polls, 1);
        }
    }

    #[test]
    fn other_errors_end_the_wait_with_exit_4_and_blips_are_retried() {
        let (result, _, _) = check(600, 5, vec![oauth(OAuthErrorCode::InvalidGrant)]);
        assert_eq!(result.err().map(|e| e.exit_code()), Some(EXIT_ISSUER));

        let (result, _, polls) = check(
            600,
            5,
            vec![unavailable(), unavailable(), unavailable(), Ok(approved())],
        );
        assert!(result.is_ok());
        assert_eq!(polls, 4);
        let answers = vec![
            unavailable(),
            unavailable(),
            unavailable(),
            unavailable(),
            Ok(approved()),
        ];
        let (result, _, polls) = check(600, 5, answers);
        assert_eq!(result.err().map(|e| e.exit_code()), Some(EXIT_ISSUER));
        assert_eq!(polls, 4);
    }

    #[test]
    fn a_retry_after_while_waiting_is_followed_once() {
        // Poll at 5 s: asked to wait 20 s, so the next poll is at 25 s, then at the interval.
        let (result, slept, polls) = check(
            600,
            5,
            vec![
                unavailable_for(20),
                oauth(OAuthErrorCode::AuthorizationPending),
                Ok(approved()),
            ],
        );
        assert!(result.is_ok(), "{result:?}");
        assert_eq!((slept, polls), (5 + 20 + 5, 3));
        // Asked for less than the interval, or for a day: the interval, or the code's expiry.
        let (_, slept, polls) = check(600, 5, vec![unavailable_for(1), Ok(approved())]);
        assert_eq!((slept, polls), (10, 2));
        let (result, slept, _) = check(120, 5, vec![unavailable_for(86_400), Ok(approved())]);
        assert!(matches!(result, Err(Error::CodeExpired)), "{result:?}");
        assert_eq!(slept, 120);
    }

    #[test]
    fn browser_choice_follows_flags_ssh_browser_and_display() {
        fn vars(set: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
            move |name| {
                set.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| OsString::from(v))
            }
        }
        let xdg = Launch::Run {
            program: "xdg-open".into(),
            args: vec![],
        };
        assert_eq!(
            choose_launcher(true, vars(&[("DISPLAY", ":0")]), "linux"),
            Launch::Skip("--no-browser")
        );
        assert_eq!(
            choose_launcher(
                false,
                vars(&[("DISPLAY", ":0"), ("SSH_TTY", "/dev/pts/1")]),
                "linux"
            ),
            Launch::Skip("SSH session")
        );
        assert_eq!(
            choose_launcher(
                false,
                vars(&[("SSH_CONNECTION", "1 2 3 4"), ("BROWSER", "b")]),
                "linux"
            ),
            Launch::Skip("SSH session")
        );
        assert_eq!(
            choose_launcher(false, vars(&[]), "linux"),
            Launch::Skip("no display")
        );
        assert_eq!(
            choose_launcher(false, vars(&[("DISPLAY", "")]), "linux"),
            Launch::Skip("no display")
        );
        assert_eq!(
            choose_launcher(false, vars(&[("WAYLAND_DISPLAY", "wayland-0")]), "linux"),
            xdg
        );
        assert_eq!(
            choose_launcher(false, vars(&[("BROWSER", "/usr/bin/w3m")]), "linux"),
            Launch::Run {
                program: "/usr/bin/w3m".into(),
                args: vec![]
            }
        );
        assert_eq!(
            choose_launcher(false, vars(&[]), "macos"),
            Launch::Run {
                program: "open".into(),
                args: vec![]
            }
        );
        assert!(
            matches!(choose_launcher(false, vars(&[]), "windows"), Launch::Run { program, .. } if program == "cmd")
        );
    }

    #[test]
    fn prompt_and_messages() {
        let auth = DeviceAuthorizationResponse {
            device_code: "DC-secret".to_owned(),
            user_code: "WDJB-MJHT".to_owned(),
            verification_uri: "https://issuer/device".to_owned(),
            verification_uri_complete: "https://issuer/device?user_code=WDJB-MJHT\u{1b}[2J"
                .to_owned(),
            expires_in: 600,
            interval: 5,
        };
        let mut out = Vec::new();
        write_prompt(&mut out, "prod", &auth, None).unwrap_or_else(|e| panic!("{e}"));
        Progress::new(&mut out, false).tick(600);
        insta::assert_snapshot!(String::from_utf8_lossy(&out), @r#"
        To sign in to cluster "prod", open https://issuer/device and enter the code WDJB-MJHT
        (or open https://issuer/device?user_code=WDJB-MJHT\x1b[2J)
        Waiting for approval (expires in 10m 0s)...
        "#);

        let mut out = Vec::new();
        write_prompt(&mut out, "prod", &auth, Some("[qr]\n")).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(String::from_utf8_lossy(&out), @r#"
        To sign in to cluster "prod", open https://issuer/device and enter the code WDJB-MJHT
        (or open https://issuer/device?user_code=WDJB-MJHT\x1b[2J, or scan this code with a phone:)
        [qr]
        "#);

        let entry = Entry {
            access_token: Secret::new(crate::base::jwt::tests::token(
                0,
                600,
                "alice",
                &["dev", "ops"],
            )),
            iat: 0,
            exp: 600,
            refresh_token: None,
            session_expires_at: Some(1_767_225_600),
            username: "alice".to_owned(),
            origin: None,
            api_server: None,
        };
        assert_eq!(
            logged_in_message(&entry, "prod"),
            "Logged in as alice (groups dev, ops) to cluster prod; session valid until 2026-01-01T00:00:00Z"
        );
    }

    /// What varies between sign-ins: the user code the issuer makes up and, against a test
    /// issuer, its port. (The times come from the fake clock and need no filter.)
    fn stderr_filters() -> insta::Settings {
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(
            r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}",
            "[USER-CODE]",
        );
        settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
        settings
    }

    /// What a log file (stderr not a terminal) holds for a sign-in approved after 65 seconds:
    /// the prompt without a QR code, then a plain progress line every 30 seconds.
    #[test]
    fn non_terminal_prompt_and_wait() {
        let auth = DeviceAuthorizationResponse {
            device_code: "DC-secret".to_owned(),
            user_code: "KRTD-BXQM".to_owned(),
            verification_uri: "https://127.0.0.1:41873/device".to_owned(),
            verification_uri_complete: "https://127.0.0.1:41873/device?user_code=KRTD-BXQM"
                .to_owned(),
            expires_in: 600,
            interval: 5,
        };
        let clock = FakeClock::at(1_767_225_600);
        let mut out = Vec::new();
        write_prompt(&mut out, "prod", &auth, None).unwrap_or_else(|e| panic!("{e}"));
        let mut polls = 0;
        let mut progress = Progress::new(&mut out, false);
        let result = wait_for_approval(
            &clock,
            auth.expires_in,
            auth.interval,
            &mut |left| progress.tick(left),
            &Cancel::default(),
            || {
                polls += 1;
                if polls < 13 {
                    oauth(OAuthErrorCode::AuthorizationPending)
                } else {
                    Ok(approved())
                }
            },
        );
        progress.finish();
        assert!(result.is_ok());
        let text = String::from_utf8_lossy(&out);
        assert!(
            !text.contains("DC-secret") && !text.contains('\r'),
            "{text}"
        );
        stderr_filters().bind(|| {
            insta::assert_snapshot!(text, @r#"
            To sign in to cluster "prod", open https://127.0.0.1:[PORT]/device and enter the code [USER-CODE]
            (or open https://127.0.0.1:[PORT]/device?user_code=[USER-CODE])
            Waiting for approval (expires in 10m 0s)...
            Still waiting for approval: 9m 30s left.
            Still waiting for approval: 9m 0s left.
            "#);
        });
    }

    fn signed_in(groups: &[&str], session_expires_at: Option<i64>) -> Entry {
        Entry {
            access_token: Secret::new(crate::base::jwt::tests::token(
                1_767_225_600,
                1_767_225_600 + 900,
                "alice",
                groups,
            )),
            iat: 1_767_225_600,
            exp: 1_767_225_600 + 900,
            refresh_token: Some(Secret::new("RT-secret".to_owned())),
            session_expires_at,
            username: "alice".to_owned(),
            origin: None,
            api_server: None,
        }
    }

    #[test]
    fn logged_in_message_with_and_without_a_session_end() {
        let entry = signed_in(&["dev", "ops"], Some(1_767_225_600 + 12 * 3600));
        insta::assert_snapshot!(logged_in_message(&entry, "prod"), @"Logged in as alice (groups dev, ops) to cluster prod; session valid until 2026-01-01T12:00:00Z");
        let entry = signed_in(&[], None);
        insta::assert_snapshot!(logged_in_message(&entry, "prod"), @"Logged in as alice (no groups) to cluster prod; token valid until 2026-01-01T00:15:00Z; the issuer did not say when the session ends");
        let mut entry = signed_in(&["dev"], Some(1_767_225_600 + 3600));
        entry.username = "mallory\u{1b}[2J".to_owned();
        insta::assert_snapshot!(logged_in_message(&entry, "my prod"), @r"Logged in as mallory\x1b[2J (groups dev) to cluster my prod; session valid until 2026-01-01T01:00:00Z");
    }

    #[test]
    fn terminal_countdown_rewrites_one_line_and_ends_it() {
        let mut out = Vec::new();
        let mut progress = Progress::new(&mut out, true);
        for left in [61, 60, 59] {
            progress.tick(left);
        }
        progress.finish();
        progress.finish();
        let text = String::from_utf8_lossy(&out);
        assert_eq!(
            text,
            "\rWaiting for approval: 1m 1s left (Ctrl-C to cancel)\
             \rWaiting for approval: 1m 0s left (Ctrl-C to cancel)\
             \rWaiting for approval: 59s left (Ctrl-C to cancel)  \n"
        );
        // No escape sequences: nothing to undo if Ctrl-C ends the process mid-line.
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn plain_countdown_writes_a_line_every_30_seconds() {
        let mut out = Vec::new();
        let mut progress = Progress::new(&mut out, false);
        for left in (500..=600).rev() {
            progress.tick(left);
        }
        progress.finish();
        insta::assert_snapshot!(String::from_utf8_lossy(&out), @r"
        Waiting for approval (expires in 10m 0s)...
        Still waiting for approval: 9m 30s left.
        Still waiting for approval: 9m 0s left.
        Still waiting for approval: 8m 30s left.
        ");
    }

    #[test]
    fn qr_code_is_square_blocks_with_a_quiet_zone() {
        let url = "https://issuer.example:8443/device?user_code=WDJB-MJHT";
        let qr = qr_code(url).unwrap_or_else(|| panic!("no QR code"));
        let lines: Vec<&str> = qr.lines().collect();
        let width = lines[0].chars().count();
        // Version 4 (33 modules) plus a 4-module quiet zone each side; two rows per line.
        assert_eq!(width, 33 + 8);
        assert_eq!(lines.len(), (33 + 8_usize).div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert!(
            qr.chars()
                .all(|c| " \u{2580}\u{2584}\u{2588}\n".contains(c)),
            "{qr}"
        );
        // The quiet zone is light, drawn as full blocks on the first line.
        assert!(lines[0].chars().all(|c| c == '\u{2588}'), "{}", lines[0]);
        assert!(qr_code(&"x".repeat(8000)).is_none());
    }

    #[test]
    fn only_web_links_are_opened_or_shown_as_qr_codes() {
        assert!(sign_in_url("https://issuer/device?user_code=A", false).is_ok());
        assert!(sign_in_url("http://127.0.0.1/device", true).is_ok());
        assert!(sign_in_url("http://issuer/device", false).is_err());
        assert!(sign_in_url("file:///etc/passwd", true).is_err());
        assert!(sign_in_url("not a url", true).is_err());
    }
}
