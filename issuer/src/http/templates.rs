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
    /// Cluster asking.
    pub(super) cluster: &'a str,
    /// Client id.
    pub(super) client_id: &'a str,
    /// Address the request came from.
    pub(super) client_addr: &'a str,
    /// When it was made (formatted).
    pub(super) requested_at: &'a str,
    /// Minutes until the code expires.
    pub(super) expires_in_minutes: i64,
}

/// The consent page: names the cluster, the client, where and when the request came from,
/// so that a person can spot a code that someone else started (device-code phishing).
#[must_use]
pub(super) fn consent_page(csrf: &str, v: &ConsentView<'_>) -> String {
    let minutes = if v.expires_in_minutes == 1 {
        "minute"
    } else {
        "minutes"
    };
    let body = html! {
        p { "Signed in as " strong { (v.username) } "." }
        "\n"
        p { "A command-line client is asking for credentials for you:" }
        "\n"
        dl {
            "\n"
            dt { "Cluster" } dd id="cluster" { (v.cluster) }
            "\n"
            dt { "Client" } dd { (v.client_id) }
            "\n"
            dt { "Requested from" } dd id="client-addr" { (v.client_addr) }
            "\n"
            dt { "Requested at" } dd { (v.requested_at) }
            "\n"
        }
        "\n"
        p class="warn" {
            "Approve only if you started this sign-in yourself in the last few minutes, from the \
             address above. If someone sent you a link or a code, press "
            strong { "Deny" } "."
        }
        "\n"
        form method="post" action="/consent" {
            "\n" (csrf_field(csrf)) "\n"
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
        let view = ConsentView {
            username: h,
            cluster: h,
            client_id: h,
            client_addr: h,
            requested_at: h,
            expires_in_minutes: 3,
        };
        assert_escaped(&consent_page(h, &view), 6);
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
            cluster: "prod",
            client_id: "kubectl-credential",
            client_addr: "192.0.2.7",
            requested_at: "2026-01-01 00:00:00 UTC",
            expires_in_minutes,
        };
        assert!(consent_page("c", &view(1)).contains("expires in 1 minute."));
        assert!(consent_page("c", &view(10)).contains("expires in 10 minutes."));
    }
}
