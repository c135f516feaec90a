//! The HTML of the verification pages: server-rendered, no JavaScript, every value escaped.
//!
//! The form field names here (`user_code`, `username`, `password`, `action` = `approve` or
//! `deny`, and the hidden `csrf_token`) are a stable contract that tests and automation use.

use std::fmt::Write as _;

/// Escapes text for HTML element content and double-quoted attributes.
#[must_use]
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · kubectl-credential</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}}
main{{max-width:30rem;margin:4rem auto;background:#fff;border-radius:10px;padding:2rem 2.2rem;box-shadow:0 2px 12px rgba(0,0,0,.08)}}
h1{{font-size:1.35rem;margin-top:0}} label{{display:block;margin:.9rem 0 .3rem;font-weight:600}}
input[type=text],input[type=password]{{width:100%;box-sizing:border-box;padding:.6rem;font-size:1.05rem;border:1px solid #b8bfcc;border-radius:6px}}
input.code{{font-family:ui-monospace,monospace;letter-spacing:.15em;text-transform:uppercase}}
button{{margin-top:1.2rem;padding:.6rem 1.3rem;font-size:1rem;border-radius:6px;border:0;background:#2457d6;color:#fff;cursor:pointer}}
button.deny{{background:#fff;color:#b42318;border:1px solid #b42318;margin-left:.6rem}}
dl{{display:grid;grid-template-columns:auto 1fr;gap:.35rem 1rem}} dt{{color:#5b6475}} dd{{margin:0;font-weight:600}}
.warn{{background:#fff6e5;border-left:4px solid #f0a000;padding:.7rem .9rem;margin:1rem 0}}
.muted{{color:#5b6475;font-size:.9rem}}
dd{{min-width:0;overflow-wrap:anywhere}}
code{{overflow-wrap:anywhere}} pre{{white-space:pre-wrap;overflow-wrap:anywhere;background:#f4f5f7;padding:.6rem .7rem;border-radius:6px}}
@media (max-width:34rem){{body{{background:#fff}} main{{margin:0;border-radius:0;box-shadow:none;padding:1.5rem 1.25rem}}}}
</style></head>
<body><main>
<h1>{title}</h1>
{body}
</main></body></html>
"#,
        title = escape(title),
    )
}

pub(super) fn csrf_field(csrf: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf_token" value="{}">"#,
        escape(csrf)
    )
}

/// The page where a person types the code their terminal shows.
#[must_use]
pub(super) fn device_page(csrf: &str, prefill: Option<&str>, error: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(e) = error {
        let _ = write!(body, r#"<p class="warn" role="alert">{}</p>"#, escape(e));
    }
    let _ = write!(
        body,
        r#"<p>Enter the code shown in your terminal by <code>kubectl</code>.</p>
<form method="post" action="/device">
{csrf}
<label for="user_code">Code</label>
<input class="code" type="text" id="user_code" name="user_code" value="{value}" placeholder="XXXX-XXXX" autocomplete="off" autocapitalize="characters" spellcheck="false" required autofocus>
<button type="submit">Continue</button>
</form>
<p class="muted">Only enter a code that you requested yourself, just now. Nobody from your company will ever ask you to enter a code they sent you.</p>"#,
        csrf = csrf_field(csrf),
        value = escape(prefill.unwrap_or("")),
    );
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
    let mut body = String::new();
    if let Some(e) = error {
        let _ = write!(body, r#"<p class="warn" role="alert">{}</p>"#, escape(e));
    }
    for (id, name) in providers {
        let _ = write!(
            body,
            r#"<form method="post" action="/upstream/start">
{csrf}
<input type="hidden" name="provider" value="{id}">
<button type="submit">Sign in with {name}</button>
</form>"#,
            csrf = csrf_field(csrf),
            id = escape(id),
            name = escape(name),
        );
    }
    if !providers.is_empty() {
        body.push_str(r#"<p class="muted">Or with a local account:</p>"#);
    }
    let _ = write!(
        body,
        r#"<form method="post" action="/login">
{csrf}
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{user}" autocomplete="username" required{focus_user}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required{focus_password}>
<button type="submit">Sign in</button>
</form>"#,
        csrf = csrf_field(csrf),
        user = escape(username),
        // After a wrong password the name is filled in again: the cursor goes to the password.
        focus_user = if username.is_empty() {
            " autofocus"
        } else {
            ""
        },
        focus_password = if username.is_empty() {
            ""
        } else {
            " autofocus"
        },
    );
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
    let body = format!(
        r#"<p>Signed in as <strong>{user}</strong>.</p>
<p>A command-line client is asking for credentials for you:</p>
<dl>
<dt>Cluster</dt><dd id="cluster">{cluster}</dd>
<dt>Client</dt><dd>{client}</dd>
<dt>Requested from</dt><dd id="client-addr">{addr}</dd>
<dt>Requested at</dt><dd>{at}</dd>
</dl>
<p class="warn">Approve only if you started this sign-in yourself in the last few minutes, from the address above. If someone sent you a link or a code, press <strong>Deny</strong>.</p>
<form method="post" action="/consent">
{csrf}
<button type="submit" name="action" value="approve">Approve</button><button class="deny" type="submit" name="action" value="deny">Deny</button>
</form>
<p class="muted">This request expires in {mins} {minutes}.</p>"#,
        user = escape(v.username),
        cluster = escape(v.cluster),
        client = escape(v.client_id),
        addr = escape(v.client_addr),
        at = escape(v.requested_at),
        csrf = csrf_field(csrf),
        mins = v.expires_in_minutes,
        minutes = if v.expires_in_minutes == 1 {
            "minute"
        } else {
            "minutes"
        },
    );
    layout("Approve access", &body)
}

/// After the decision.
#[must_use]
pub(super) fn done_page(approved: bool, cluster: &str) -> String {
    if approved {
        layout(
            "Access approved",
            &format!(
                "<p>Access approved for cluster <strong>{}</strong>. You can close this window and return to your terminal.</p>",
                escape(cluster)
            ),
        )
    } else {
        layout(
            "Access denied",
            "<p>Request denied. Nothing was granted. If you did not start this sign-in, tell your security team.</p>",
        )
    }
}

/// A page for a signed-in person with nothing to approve.
#[must_use]
pub(super) fn signed_in_page(username: &str) -> String {
    layout(
        "Signed in",
        &format!(
            "<p>Signed in as <strong>{}</strong>. To log in from a terminal, run <code>kubectl credential login</code> and enter the code it shows at <a href=\"/device\">/device</a>.</p>",
            escape(username)
        ),
    )
}

/// Any error, with its one way on (`(href, label)`), if it has one.
#[must_use]
pub(super) fn error_page(title: &str, message: &str, link: Option<(&str, &str)>) -> String {
    let link = link.map_or_else(String::new, |(href, label)| {
        format!(
            "<p><a id=\"next\" href=\"{}\">{}</a></p>",
            escape(href),
            escape(label)
        )
    });
    layout(title, &format!("<p>{}</p>{link}", escape(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let page = device_page("c\"sr<f", Some("<script>"), None);
        assert!(!page.contains("<script>"));
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
