//! The HTML of the local-account pages (invitation, second sign-in step), kept apart from the
//! device-flow pages. Same rules: server-rendered, no JavaScript, every value escaped.
//!
//! Form field names are a contract tests use: the invitation form posts `password`,
//! `password_confirm`, `totp_code` and `csrf_token`; the sign-in step posts `totp_code`. The
//! manual-entry secret is in `<code id="totp-secret">`.

use std::fmt::Write as _;

use super::templates::{csrf_field, escape, layout};

/// What the invitation page shows.
pub(super) struct InviteView<'a> {
    /// Account being set up.
    pub(super) username: &'a str,
    /// The form's action (`/invite/<token>`).
    pub(super) action: &'a str,
    /// The QR code of the `otpauth://` URI, as an inline `<svg>` element.
    pub(super) qr_svg: &'a str,
    /// The base32 seed, for typing in by hand.
    pub(super) secret_base32: &'a str,
    /// When the link stops working (formatted).
    pub(super) link_expires: &'a str,
    /// When the account ends (formatted).
    pub(super) account_expires: Option<&'a str>,
    /// Minimum password length.
    pub(super) min_password_len: usize,
}

/// The invitation form: new password twice, then the TOTP enrolment with a code to prove it.
#[must_use]
pub(super) fn invite_page(csrf: &str, v: &InviteView<'_>, error: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(e) = error {
        let _ = write!(body, r#"<p class="warn" role="alert">{}</p>"#, escape(e));
    }
    let _ = write!(
        body,
        r#"<p>Welcome, <strong id="username">{user}</strong>. Set up your account for Kubernetes sign-in. This link works once and until {link}.</p>
{account}<form method="post" action="{action}">
{csrf}
<label for="password">New password (at least {min} characters)</label>
<input type="password" id="password" name="password" autocomplete="new-password" minlength="{min}" required autofocus>
<label for="password_confirm">Repeat the password</label>
<input type="password" id="password_confirm" name="password_confirm" autocomplete="new-password" minlength="{min}" required>
<h2 style="font-size:1.1rem;margin-top:1.6rem">Second factor</h2>
<p>Scan this code with an authenticator app (any app for time-based one-time passwords):</p>
<div style="width:220px">{qr}</div>
<p class="muted">Or enter this key by hand: <code id="totp-secret">{secret}</code></p>
<label for="totp_code">The 6-digit code your app shows now</label>
<input class="code" type="text" id="totp_code" name="totp_code" inputmode="numeric" pattern="[0-9 ]*" autocomplete="one-time-code" required>
<button type="submit">Set up my account</button>
</form>
<p class="muted">Nobody from your company will ask you for your password or your codes.</p>"#,
        user = escape(v.username),
        link = escape(v.link_expires),
        account = v.account_expires.map_or_else(String::new, |a| format!(
            "<p>Your account is valid until <strong>{}</strong>.</p>\n",
            escape(a)
        )),
        action = escape(v.action),
        csrf = csrf_field(csrf),
        min = v.min_password_len,
        qr = v.qr_svg,
        secret = escape(v.secret_base32),
    );
    layout("Set up your account", &body)
}

/// After a successful invitation.
#[must_use]
pub(super) fn invite_done_page(username: &str) -> String {
    layout(
        "Account ready",
        &format!(
            "<p>Your account <strong>{}</strong> is ready. This link no longer works.</p><p>To use Kubernetes, run <code>kubectl credential login</code>; you will sign in with your password and a code from your authenticator app.</p>",
            escape(username)
        ),
    )
}

/// The second sign-in step: the code from the authenticator app.
#[must_use]
pub(super) fn totp_page(csrf: &str, username: &str, error: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(e) = error {
        let _ = write!(body, r#"<p class="warn" role="alert">{}</p>"#, escape(e));
    }
    let _ = write!(
        body,
        r#"<p>Signing in as <strong>{user}</strong>. Enter the 6-digit code from your authenticator app.</p>
<form method="post" action="/login/totp">
{csrf}
<label for="totp_code">Code</label>
<input class="code" type="text" id="totp_code" name="totp_code" inputmode="numeric" pattern="[0-9 ]*" autocomplete="one-time-code" required autofocus>
<button type="submit">Continue</button>
</form>"#,
        user = escape(username),
        csrf = csrf_field(csrf),
    );
    layout("Second factor", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let v = InviteView {
            username: "<b>",
            action: "/invite/x\"y",
            qr_svg: "<svg></svg>",
            secret_base32: "ABC<",
            link_expires: "soon",
            account_expires: Some("<later>"),
            min_password_len: 12,
        };
        let page = invite_page("c", &v, Some("<oops>"));
        assert!(!page.contains("<b>") && !page.contains("<oops>") && !page.contains("<later>"));
        assert!(page.contains("<svg></svg>"), "the QR code is inline SVG");
        assert!(page.contains(r#"action="/invite/x&quot;y""#));
        assert!(!totp_page("c", "<i>", None).contains("<i>"));
    }
}
