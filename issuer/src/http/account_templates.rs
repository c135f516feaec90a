//! The HTML of the local-account pages (invitation, second sign-in step), kept apart from the
//! device-flow pages. Same rules: server-rendered maud templates, no JavaScript, every value
//! escaped (the QR code is the one piece of markup from outside this file, and its type says
//! so).
//!
//! Form field names are a contract tests use: the invitation form posts `password`,
//! `password_confirm`, `totp_code` and `csrf_token`; the sign-in step posts `totp_code`. The
//! manual-entry secret is in `<code id="totp-secret">`.

use maud::{html, PreEscaped};

use super::templates::{alert, csrf_field, layout};

/// What the invitation page shows.
pub(super) struct InviteView<'a> {
    /// Account being set up.
    pub(super) username: &'a str,
    /// The form's action (`/invite/<token>`).
    pub(super) action: &'a str,
    /// The QR code of the `otpauth://` URI, as an inline `<svg>` element. Markup, not text:
    /// the QR encoder drew it, and it holds no text of the URI.
    pub(super) qr_svg: PreEscaped<&'a str>,
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
    // With the password kept, the code is what is left to enter.
    let kept = v.password.is_some();
    let min = v.min_password_len;
    let body = html! {
        (alert(error))
        p {
            "Welcome, " strong id="username" { (v.username) }
            ". Set up your account for Kubernetes sign-in. This link works once and until "
            (v.link_expires) "."
        }
        "\n"
        @if let Some(a) = v.account_expires {
            p { "Your account is valid until " strong { (a) } "." }
            "\n"
        }
        form method="post" action=(v.action) {
            "\n" (csrf_field(csrf)) "\n"
            label for="password" { "New password (at least " (min) " characters)" }
            "\n"
            input type="password" id="password" name="password" autocomplete="new-password"
                minlength=(min) required autofocus[!kept] value=[v.password];
            "\n"
            label for="password_confirm" { "Repeat the password" }
            "\n"
            input type="password" id="password_confirm" name="password_confirm"
                autocomplete="new-password" minlength=(min) required value=[v.password];
            "\n"
            h2 style="font-size:1.1rem;margin-top:1.6rem" { "Second factor" }
            "\n"
            p {
                "Scan this code with an authenticator app (any app for time-based one-time \
                 passwords):"
            }
            "\n"
            div style="width:220px" { (v.qr_svg) }
            "\n"
            p class="muted" {
                "Or enter this key by hand: " code id="totp-secret" { (v.secret_base32) }
            }
            "\n"
            label for="totp_code" { "The 6-digit code your app shows now" }
            "\n"
            input class="code" type="text" id="totp_code" name="totp_code" inputmode="numeric"
                pattern="[0-9 ]*" autocomplete="one-time-code" required autofocus[kept];
            "\n"
            button type="submit" { "Set up my account" }
            "\n"
        }
        "\n"
        p class="muted" { "Nobody from your company will ask you for your password or your codes." }
    };
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
    let next = match v.clusters.first() {
        Some(c) => format!("kubectl --context {} get namespaces", shell_word(c)),
        None => "kubectl get namespaces".to_owned(),
    };
    let body = html! {
        p {
            "Your account " strong id="username" { (v.username) }
            " is ready. This link no longer works. You will sign in with your password and a \
             code from your authenticator app."
        }
        "\n"
        h2 style="font-size:1.1rem" { "Use it with kubectl" }
        "\n"
        ol {
            "\n"
            li { p {
                "Install the kubectl plugin " code { "kubectl-credential" }
                " (your platform team says where its release is; from the project's source: "
                code { "bash install/install-plugin.sh --from-source" } "). "
                code { "kubectl credential --help" } " checks that kubectl finds it."
            } }
            "\n"
            @if let Some(ca) = v.ca_path {
                li { p {
                    "This issuer's certificate is signed by its own CA. "
                    a id="ca-download" href=(ca) download="credential-issuer-ca.crt" {
                        "Download the CA certificate"
                    }
                    " and save it as " code { (CA_FILE) } ", or in a terminal: "
                    code id="ca-command" {
                        "mkdir -p ~/.kube && curl -fsSk -o " (CA_FILE) " "
                        (shell_word(&format!("{}{ca}", v.issuer)))
                    }
                    " (" code { "-k" } " because your machine does not trust that CA yet; \
                     compare the file with what your platform team gave you if you can)."
                } }
                "\n"
            }
            li {
                p { "Add the clusters to your kubeconfig (a backup of it is kept):" }
                "\n"
                pre { code id="setup-command" { (setup_command(v.issuer, v.ca_path.is_some())) } }
            }
            "\n"
            li { p {
                "Use a cluster: " code id="next-command" { (next) }
                @if v.clusters.len() > 1 {
                    " (contexts: " (v.clusters.join(", ")) ")"
                }
                ". The first time, the plugin shows a code and a link: open it, sign in as "
                strong { (v.username) }
                " with your password and a new code from your app, and approve."
            } }
            "\n"
        }
    };
    layout("Account ready", &body)
}

/// The second sign-in step: the code from the authenticator app.
#[must_use]
pub(super) fn totp_page(csrf: &str, username: &str, error: Option<&str>) -> String {
    let body = html! {
        (alert(error))
        p {
            "Signing in as " strong { (username) }
            ". Enter the 6-digit code from your authenticator app."
        }
        "\n"
        form method="post" action="/login/totp" {
            "\n" (csrf_field(csrf)) "\n"
            label for="totp_code" { "Code" }
            "\n"
            input class="code" type="text" id="totp_code" name="totp_code" inputmode="numeric"
                pattern="[0-9 ]*" autocomplete="one-time-code" required autofocus;
            "\n"
            button type="submit" { "Continue" }
            "\n"
        }
    };
    layout("Second factor", &body)
}

#[cfg(test)]
mod tests {
    use super::super::templates::{assert_escaped, HOSTILE};
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let v = InviteView {
            username: "<b>",
            action: "/invite/x\"y",
            qr_svg: PreEscaped("<svg></svg>"),
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

    #[test]
    fn every_value_on_the_account_pages_is_escaped() {
        let h = HOSTILE;
        let v = InviteView {
            username: h,
            action: h,
            qr_svg: PreEscaped("<svg></svg>"),
            secret_base32: h,
            link_expires: h,
            account_expires: Some(h),
            min_password_len: 12,
            password: Some(h),
        };
        // The kept password twice: both fields.
        assert_escaped(&invite_page(h, &v, Some(h)), 9);
        let clusters = [h, h];
        let done = invite_done_page(&DoneView {
            username: h,
            issuer: h,
            ca_path: Some(h),
            clusters: &clusters,
        });
        // The commands hold the values shell-quoted (escaped too, but not as `HOSTILE`): the
        // name twice, the CA's link and the two contexts.
        assert_escaped(&done, 5);
        assert_escaped(&totp_page(h, h, Some(h)), 3);
    }
}
