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
    /// The password the person just sent, put back into both fields when only the code was
    /// wrong (see `invite_submit`); `None`: empty fields.
    pub(super) password: Option<&'a str>,
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
<input type="password" id="password" name="password" autocomplete="new-password" minlength="{min}" required{focus_password}{kept}>
<label for="password_confirm">Repeat the password</label>
<input type="password" id="password_confirm" name="password_confirm" autocomplete="new-password" minlength="{min}" required{kept}>
<h2 style="font-size:1.1rem;margin-top:1.6rem">Second factor</h2>
<p>Scan this code with an authenticator app (any app for time-based one-time passwords):</p>
<div style="width:220px">{qr}</div>
<p class="muted">Or enter this key by hand: <code id="totp-secret">{secret}</code></p>
<label for="totp_code">The 6-digit code your app shows now</label>
<input class="code" type="text" id="totp_code" name="totp_code" inputmode="numeric" pattern="[0-9 ]*" autocomplete="one-time-code" required{focus_code}>
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
        kept = v
            .password
            .map_or_else(String::new, |p| format!(r#" value="{}""#, escape(p))),
        // With the password kept, the code is what is left to enter.
        focus_password = if v.password.is_none() {
            " autofocus"
        } else {
            ""
        },
        focus_code = if v.password.is_some() {
            " autofocus"
        } else {
            ""
        },
    );
    layout("Set up your account", &body)
}

/// What the "Account ready" page needs to tell the person how to go on from the browser to
/// kubectl: nothing of it is secret.
pub(super) struct DoneView<'a> {
    /// The account just set up.
    pub(super) username: &'a str,
    /// The issuer's public URL (what `--issuer` takes).
    pub(super) issuer: &'a str,
    /// Where the issuer's generated CA can be downloaded (`/ca.crt`); `None` when the issuer
    /// serves the operator's certificate, which the person's machine is assumed to trust.
    pub(super) ca_path: Option<&'a str>,
    /// Clusters the issuer serves (the contexts `setup` writes).
    pub(super) clusters: &'a [&'a str],
}

/// Where the "Account ready" page tells the person to save the downloaded CA. The kubeconfig
/// entries `setup` writes refer to this file, so it must stay, hence not the download folder.
pub(super) const CA_FILE: &str = "~/.kube/credential-issuer-ca.crt";

/// `s` as one word for a POSIX shell: unchanged when it holds nothing the shell interprets,
/// else single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The `kubectl credential setup` line the "Account ready" page shows, exactly as it is to be
/// run (the plugin's `setup` flags: `--issuer URL [--issuer-ca FILE]`).
#[must_use]
pub(super) fn setup_command(issuer: &str, with_ca: bool) -> String {
    let mut line = format!("kubectl credential setup --issuer {}", shell_word(issuer));
    if with_ca {
        // `~/` is left for the shell to expand: the plugin records the absolute path.
        line.push_str(" --issuer-ca ");
        line.push_str(CA_FILE);
    }
    line
}

/// After a successful invitation: how to get from here to kubectl, in order (install the
/// plugin, trust the issuer's CA if it is private, write the kubeconfig, use a context).
#[must_use]
pub(super) fn invite_done_page(v: &DoneView<'_>) -> String {
    let mut body = format!(
        "<p>Your account <strong id=\"username\">{}</strong> is ready. This link no longer works. \
         You will sign in with your password and a code from your authenticator app.</p>\n\
         <h2 style=\"font-size:1.1rem\">Use it with kubectl</h2>\n<ol>\n\
         <li><p>Install the kubectl plugin <code>kubectl-credential</code> (your platform team \
         says where its release is; from the project's source: \
         <code>bash install/install-plugin.sh --from-source</code>). \
         <code>kubectl credential --help</code> checks that kubectl finds it.</p></li>\n",
        escape(v.username)
    );
    if let Some(ca) = v.ca_path {
        let _ = writeln!(
            body,
            "<li><p>This issuer's certificate is signed by its own CA. \
             <a id=\"ca-download\" href=\"{href}\" download=\"credential-issuer-ca.crt\">Download the CA certificate</a> \
             and save it as <code>{file}</code>, or in a terminal: \
             <code id=\"ca-command\">{fetch}</code> \
             (<code>-k</code> because your machine does not trust that CA yet; compare the file \
             with what your platform team gave you if you can).</p></li>",
            href = escape(ca),
            file = escape(CA_FILE),
            fetch = escape(&format!(
                "mkdir -p ~/.kube && curl -fsSk -o {CA_FILE} {}",
                shell_word(&format!("{}{ca}", v.issuer))
            )),
        );
    }
    let _ = writeln!(
        body,
        "<li><p>Add the clusters to your kubeconfig (a backup of it is kept):</p>\n\
         <pre><code id=\"setup-command\">{}</code></pre></li>",
        escape(&setup_command(v.issuer, v.ca_path.is_some()))
    );
    let next = match v.clusters.first() {
        Some(c) => format!("kubectl --context {} get namespaces", shell_word(c)),
        None => "kubectl get namespaces".to_owned(),
    };
    let _ = write!(
        body,
        "<li><p>Use a cluster: <code id=\"next-command\">{}</code>{}. The first time, \
         the plugin shows a code and a link: open it, sign in as <strong>{}</strong> with your \
         password and a new code from your app, and approve.</p></li>\n</ol>",
        escape(&next),
        if v.clusters.len() > 1 {
            format!(" (contexts: {})", escape(&v.clusters.join(", ")))
        } else {
            String::new()
        },
        escape(v.username),
    );
    layout("Account ready", &body)
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
            password: Some("pass\"<word>"),
        };
        let page = invite_page("c", &v, Some("<oops>"));
        assert!(page.contains(r#"value="pass&quot;&lt;word&gt;""#), "{page}");
        assert!(!page.contains("<b>") && !page.contains("<oops>") && !page.contains("<later>"));
        assert!(page.contains("<svg></svg>"), "the QR code is inline SVG");
        assert!(page.contains(r#"action="/invite/x&quot;y""#));
        assert!(!totp_page("c", "<i>", None).contains("<i>"));
    }
}
