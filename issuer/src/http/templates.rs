//! The HTML of the verification pages: server-rendered, no JavaScript. Pages are maud
//! templates (`html!`), checked when the crate compiles; every value they are given is escaped
//! for text and double-quoted attributes alike, so no page can forget an escape. The only raw
//! markup is the crate's own constants, through [`constant`]. The `"\n"` literals keep the
//! pages' source in lines, as a person reading it (or a test reading it line by line) sees it.
//!
//! The form field names here (`user_code`, `username`, `password`, `action` = `approve` or
//! `deny`, and the hidden `csrf_token`) are a stable contract that tests and automation use.

use maud::{html, Markup, PreEscaped};

/// Markup written in this crate (the doctype, style sheets): the one way to put raw text into
/// a page, and only text that is fixed when the crate compiles.
pub(super) fn constant(markup: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(markup)
}

/// What the templates make of a value: tests look for values on pages in this form.
#[cfg(test)]
pub(super) fn escape(s: &str) -> String {
    html! { (s) }.into_string()
}

/// A value that ends text or a double-quoted attribute and starts markup, were it not escaped.
#[cfg(test)]
pub(super) const HOSTILE: &str = r#"<script>"'&x"#;

/// Asserts that `page` shows [`HOSTILE`] escaped in exactly `slots` places and never raw: each
/// slot fed it counts, so a slot that lost its escape fails the count.
#[cfg(test)]
#[track_caller]
pub(super) fn assert_escaped(page: &str, slots: usize) {
    for raw in ["<script", "\"'", "&x"] {
        assert!(!page.contains(raw), "{raw} unescaped: {page}");
    }
    assert_eq!(
        page.matches("&lt;script&gt;&quot;'&amp;x").count(),
        slots,
        "{page}"
    );
}

/// The style sheet every page shares.
const STYLE: &str = r"
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}
main{max-width:30rem;margin:4rem auto;background:#fff;border-radius:10px;padding:2rem 2.2rem;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{font-size:1.35rem;margin-top:0} label{display:block;margin:.9rem 0 .3rem;font-weight:600}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;font-size:1.05rem;border:1px solid #b8bfcc;border-radius:6px}
input.code{font-family:ui-monospace,monospace;letter-spacing:.15em;text-transform:uppercase}
button{margin-top:1.2rem;padding:.6rem 1.3rem;font-size:1rem;border-radius:6px;border:0;background:#2457d6;color:#fff;cursor:pointer}
button.deny{background:#fff;color:#b42318;border:1px solid #b42318;margin-left:.6rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.35rem 1rem} dt{color:#5b6475} dd{margin:0;font-weight:600}
.warn{background:#fff6e5;border-left:4px solid #f0a000;padding:.7rem .9rem;margin:1rem 0}
.danger{background:#fdecea;border:2px solid #b42318;border-radius:6px;color:#7a1a12;padding:.2rem 1rem;margin:1rem 0}
label.confirm{font-weight:600;margin-top:1rem} label.confirm input{margin-right:.4rem}
.muted{color:#5b6475;font-size:.9rem}
dd{min-width:0;overflow-wrap:anywhere}
code{overflow-wrap:anywhere} pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f4f5f7;padding:.6rem .7rem;border-radius:6px}
@media (max-width:34rem){body{background:#fff} main{margin:0;border-radius:0;box-shadow:none;padding:1.5rem 1.25rem}}
";

/// A whole page: `title` as the document's title and heading, then `body`.
pub(super) fn layout(title: &str, body: &Markup) -> String {
    html! {
        (constant("<!doctype html>\n"))
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                "\n"
                title { (title) " · kubectl-credential" }
                "\n"
                style { (constant(STYLE)) }
            }
            "\n"
            body {
                main {
                    "\n"
                    h1 { (title) }
                    "\n"
                    (body)
                    "\n"
                }
            }
        }
        "\n"
    }
    .into_string()
}

/// The hidden field every form echoes, checked against the browser's session.
pub(super) fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(csrf); }
}

/// What went wrong with the last try, above a form; nothing when nothing did.
pub(super) fn alert(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error {
            p class="warn" role="alert" { (e) }
        }
    }
}

/// The page where a person types the code their terminal shows.
#[must_use]
pub(super) fn device_page(csrf: &str, prefill: Option<&str>, error: Option<&str>) -> String {
    let body = html! {
        (alert(error))
        p { "Enter the code shown in your terminal by " code { "kubectl" } "." }
        "\n"
        form method="post" action="/device" {
            "\n" (csrf_field(csrf)) "\n"
            label for="user_code" { "Code" }
            "\n"
            input class="code" type="text" id="user_code" name="user_code"
                value=(prefill.unwrap_or("")) placeholder="XXXX-XXXX" autocomplete="off"
                autocapitalize="characters" spellcheck="false" required autofocus;
            "\n"
            button type="submit" { "Continue" }
            "\n"
        }
        "\n"
        p class="muted" {
            "Only enter a code that you requested yourself, just now. Nobody from your company \
             will ever ask you to enter a code they sent you."
        }
    };
    layout("Sign in to Kubernetes", &body)
}

/// The sign-in form for local accounts, after a button per upstream provider `(id, name)`.
/// Each button is a POST with the CSRF token (never a plain link), so another site cannot start
/// a sign-in in this browser (login CSRF).
#[must_use]
pub(super) fn login_page(
    csrf: &str,
    username: &str,
    error: Option<&str>,
    providers: &[(&str, &str)],
) -> String {
    // After a wrong password the name is filled in again: the cursor goes to the password.
    let name_known = !username.is_empty();
    let body = html! {
        (alert(error))
        @for (id, name) in providers {
            form method="post" action="/upstream/start" {
                "\n" (csrf_field(csrf)) "\n"
                input type="hidden" name="provider" value=(id);
                "\n"
                button type="submit" { "Sign in with " (name) }
                "\n"
            }
        }
        @if !providers.is_empty() {
            p class="muted" { "Or with a local account:" }
        }
        form method="post" action="/login" {
            "\n" (csrf_field(csrf)) "\n"
            label for="username" { "Username" }
            "\n"
            input type="text" id="username" name="username" value=(username)
                autocomplete="username" required autofocus[!name_known];
            "\n"
            label for="password" { "Password" }
            "\n"
            input type="password" id="password" name="password"
                autocomplete="current-password" required autofocus[name_known];
            "\n"
            button type="submit" { "Sign in" }
            "\n"
        }
    };
    layout("Sign in", &body)
}

/// What the consent page shows about the request.
#[derive(Debug)]
pub(super) struct ConsentView<'a> {
    /// Signed-in user.
    pub(super) username: &'a str,
    /// The Kubernetes groups the token would carry in this cluster, as the policy maps them.
    pub(super) groups: &'a [String],
    /// Cluster asking.
    pub(super) cluster: &'a str,
    /// Client id.
    pub(super) client_id: &'a str,
    /// Address the request came from.
    pub(super) client_addr: &'a str,
    /// The address of the browser showing this page.
    pub(super) browser_addr: &'a str,
    /// Whether the two differ (or cannot be compared): the warning and the confirmation.
    pub(super) addresses_differ: bool,
    /// The client's `User-Agent`, with controls and format characters already made visible
    /// (`shared::text`); the template escapes it for HTML.
    pub(super) user_agent: Option<&'a str>,
    /// When it was made (formatted).
    pub(super) requested_at: &'a str,
    /// How long ago, coarsely ("3 minutes ago").
    pub(super) requested_ago: &'a str,
    /// The session lifetime, as written (`12h`).
    pub(super) session_lifetime: &'a str,
    /// Minutes until the code expires.
    pub(super) expires_in_minutes: i64,
    /// What went wrong with the last submission (Approve without the confirmation).
    pub(super) error: Option<&'a str>,
}

/// The form field of the confirmation a person gives when the addresses differ; `yes` when
/// ticked.
pub(super) const CONFIRM_ORIGIN: &str = "confirm_origin";

/// The consent page: names the cluster, the client, where and when the request came from and
/// what approving gives, so that a person can spot a code that someone else started
/// (device-code phishing, RFC 8628 section 5.4). When the request came from another address
/// than this browser's, a warning says so and Approve needs an explicit confirmation.
#[must_use]
pub(super) fn consent_page(csrf: &str, v: &ConsentView<'_>) -> String {
    let minutes = if v.expires_in_minutes == 1 {
        "minute"
    } else {
        "minutes"
    };
    let body = html! {
        (alert(v.error))
        @if v.addresses_differ {
            div class="danger" role="alert" id="origin-warning" {
                "\n"
                p { strong { "This sign-in was requested from another address than this browser's." } }
                "\n"
                p {
                    "The code was requested from " strong { (v.client_addr) }
                    ", but this browser is at " strong { (v.browser_addr) } ". "
                    "If someone sent you this link or code, they are the one waiting at "
                    (v.client_addr) ": approving would sign them in, as you."
                }
                "\n"
                p { "Approve only if you started it yourself on that machine (a VPN or proxy can also explain the difference). Otherwise press " strong { "Deny" } "." }
                "\n"
            }
        }
        "\n"
        p { "Signed in as " strong { (v.username) } "." }
        "\n"
        p { "A command-line client is asking for credentials for you:" }
        "\n"
        dl {
            "\n"
            dt { "Cluster" } dd id="cluster" { (v.cluster) }
            "\n"
            dt { "Client" } dd id="client" { (v.client_id) }
            "\n"
            @if let Some(ua) = v.user_agent {
                dt { "Program" } dd id="user-agent" { code { (ua) } }
                "\n"
            }
            dt { "Requested from" } dd id="client-addr" { (v.client_addr) }
            "\n"
            dt { "This browser" } dd id="browser-addr" { (v.browser_addr) }
            "\n"
            dt { "Requested" } dd id="requested-ago" { (v.requested_ago) " (" (v.requested_at) ")" }
            "\n"
        }
        "\n"
        p class="warn" id="consequence" {
            "Approving signs " strong { (v.client_id) } " at " strong { (v.client_addr) }
            " in to cluster " strong { (v.cluster) } " as you ("
            @if v.groups.is_empty() {
                "no groups"
            } @else {
                "groups "
                @for (i, g) in v.groups.iter().enumerate() {
                    @if i > 0 { ", " }
                    (g)
                }
            }
            "), for up to " (v.session_lifetime) "; only approve a code you started yourself in \
             your own terminal just now. If someone sent you a link or a code, press "
            strong { "Deny" } "."
        }
        "\n"
        form method="post" action="/consent" {
            "\n" (csrf_field(csrf)) "\n"
            @if v.addresses_differ {
                label class="confirm" {
                    input type="checkbox" name=(CONFIRM_ORIGIN) value="yes";
                    " I started this sign-in myself on " (v.client_addr)
                }
                "\n"
            }
            button type="submit" name="action" value="approve" { "Approve" }
            button class="deny" type="submit" name="action" value="deny" { "Deny" }
            "\n"
        }
        "\n"
        p class="muted" { "This request expires in " (v.expires_in_minutes) " " (minutes) "." }
    };
    layout("Approve access", &body)
}

/// After the decision.
#[must_use]
pub(super) fn done_page(approved: bool, cluster: &str) -> String {
    if approved {
        let body = html! {
            p {
                "Access approved for cluster " strong { (cluster) }
                ". You can close this window and return to your terminal."
            }
        };
        layout("Access approved", &body)
    } else {
        let body = html! {
            p {
                "Request denied. Nothing was granted. If you did not start this sign-in, tell \
                 your security team."
            }
        };
        layout("Access denied", &body)
    }
}

/// A page for a signed-in person with nothing to approve.
#[must_use]
pub(super) fn signed_in_page(username: &str) -> String {
    let body = html! {
        p {
            "Signed in as " strong { (username) } ". To log in from a terminal, run "
            code { "kubectl credential login" } " and enter the code it shows at "
            a href="/device" { "/device" } "."
        }
    };
    layout("Signed in", &body)
}

/// Any error, with its one way on (`(href, label)`), if it has one.
#[must_use]
pub(super) fn error_page(title: &str, message: &str, link: Option<(&str, &str)>) -> String {
    let body = html! {
        p { (message) }
        @if let Some((href, label)) = link {
            p { a id="next" href=(href) { (label) } }
        }
    };
    layout(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_on_the_sign_in_pages_is_escaped() {
        let h = HOSTILE;
        assert_escaped(&device_page(h, Some(h), Some(h)), 3);
        assert_escaped(&login_page(h, h, Some(h), &[(h, h)]), 6);
        let groups = [h.to_owned()];
        let view = ConsentView {
            username: h,
            groups: &groups,
            cluster: h,
            client_id: h,
            client_addr: h,
            browser_addr: h,
            addresses_differ: true,
            user_agent: Some(h),
            requested_at: h,
            requested_ago: h,
            session_lifetime: h,
            expires_in_minutes: 3,
            error: Some(h),
        };
        // Every slot once (the CSRF token and the error included), and the cluster, the client
        // and the requesting address again in the statement of what approving gives, the
        // requesting address twice in the warning and once in the confirmation.
        assert_escaped(&consent_page(h, &view), 19);
        assert_escaped(&done_page(true, h), 1);
        assert_escaped(&signed_in_page(h), 1);
        // The title twice: in the document's title and as the heading.
        assert_escaped(&error_page(h, h, Some((h, h))), 5);
        let page = device_page("c\"sr<f", Some("<script>"), None);
        assert!(page.contains(r#"<input type="hidden" name="csrf_token" value="c&quot;sr&lt;f">"#));
    }

    #[test]
    fn the_login_form_focuses_the_first_empty_field() {
        let autofocused = |page: &str| {
            page.lines()
                .find(|l| l.contains(" autofocus"))
                .map(|l| l.contains(r#"name="password""#))
        };
        assert_eq!(autofocused(&login_page("c", "", None, &[])), Some(false));
        assert_eq!(
            autofocused(&login_page("c", "alice", Some("Wrong"), &[])),
            Some(true)
        );
    }

    #[test]
    fn the_consent_page_counts_minutes_in_words() {
        let view = |expires_in_minutes| ConsentView {
            username: "alice",
            groups: &[],
            cluster: "prod",
            client_id: "kubectl-credential",
            client_addr: "192.0.2.7",
            browser_addr: "192.0.2.7",
            addresses_differ: false,
            user_agent: None,
            requested_at: "2026-01-01 00:00:00 UTC",
            requested_ago: "just now",
            session_lifetime: "12h",
            expires_in_minutes,
            error: None,
        };
        assert!(consent_page("c", &view(1)).contains("expires in 1 minute."));
        assert!(consent_page("c", &view(10)).contains("expires in 10 minutes."));
    }

    #[test]
    fn the_warning_and_the_confirmation_come_only_with_another_address() {
        let groups = ["dev".to_owned(), "ops".to_owned()];
        let view = |browser_addr, addresses_differ| ConsentView {
            username: "alice",
            groups: &groups,
            cluster: "prod",
            client_id: "kubectl-credential",
            client_addr: "198.51.100.9",
            browser_addr,
            addresses_differ,
            user_agent: Some("kubectl-credential/0.1 (linux)"),
            requested_at: "2026-01-01 00:00:00 UTC",
            requested_ago: "2 minutes ago",
            session_lifetime: "12h",
            expires_in_minutes: 8,
            error: None,
        };
        let same = consent_page("c", &view("198.51.100.9", false));
        assert!(!same.contains("role=\"alert\""), "{same}");
        assert!(!same.contains(CONFIRM_ORIGIN), "{same}");
        assert!(same.contains(
            "Approving signs <strong>kubectl-credential</strong> at <strong>198.51.100.9</strong> in to cluster <strong>prod</strong> as you (groups dev, ops), for up to 12h; only approve a code you started yourself in your own terminal just now."
        ), "{same}");
        assert!(same.contains("2 minutes ago"), "{same}");
        assert!(same.contains("kubectl-credential/0.1 (linux)"), "{same}");
        let other = consent_page("c", &view("203.0.113.5", true));
        assert!(other.contains(r#"class="danger" role="alert""#), "{other}");
        assert!(other.contains("<strong>198.51.100.9</strong>, but this browser is at <strong>203.0.113.5</strong>"), "{other}");
        assert!(
            other.contains(r#"<input type="checkbox" name="confirm_origin" value="yes">"#),
            "{other}"
        );
        assert!(
            other.contains("I started this sign-in myself on 198.51.100.9"),
            "{other}"
        );
    }
}
