//! A person's web browser, without JavaScript: the issuer's device-flow pages are plain HTML
//! forms, so an HTTP client that keeps cookies and follows redirects is a faithful browser.
//!
//! The page contract these helpers rely on (the issuer's templates keep it stable):
//! - every form has `<input type="hidden" name="csrf_token" value="...">`;
//! - `GET /device[?user_code=..]` shows `<form method="post" action="/device">` with `user_code`;
//!   submitting it redirects (303) to `/login`, or to `/consent` when already signed in;
//! - `/login` has `username` and `password`; a good POST redirects to `/consent`, a bad password
//!   gives 401 with the form again; a wrong user code gives 400, too many give 429;
//! - `/consent` names the cluster and the requesting client's address, and POSTs `action` =
//!   `approve` or `deny`, ending on a page that says "approved" or "denied".

use std::path::Path;

use crate::http;

/// One page as the browser saw it (after following redirects).
pub type Page = http::Response;

/// A browser session: one cookie jar, trusting the issuer's CA.
#[derive(Debug)]
pub struct Browser {
    agent: ureq::Agent,
    base: String,
    /// The `Origin` its form posts carry: the public URL, also when `base` is one replica.
    origin: String,
}

/// What the person clicks on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The "approve" button.
    Approve,
    /// The "deny" button.
    Deny,
}

impl Answer {
    fn action(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }

    fn outcome_word(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Deny => "denied",
        }
    }
}

impl Browser {
    /// A fresh browser (no cookies) for the issuer at `issuer_url`, trusting `ca_file`.
    #[track_caller]
    #[must_use]
    pub fn new(issuer_url: &str, ca_file: &Path) -> Self {
        let base = issuer_url.trim_end_matches('/').to_owned();
        Self {
            agent: http::agent(ca_file),
            origin: base.clone(),
            base,
        }
    }

    /// The same browser (same cookies, same `Origin`) reaching the issuer at `url` instead: one
    /// replica's own address, as a load balancer would route it.
    #[must_use]
    pub fn via(&self, url: &str) -> Self {
        Self {
            agent: self.agent.clone(),
            base: url.trim_end_matches('/').to_owned(),
            origin: self.origin.clone(),
        }
    }

    /// `GET path` (relative to the issuer), whatever the status.
    #[track_caller]
    #[must_use]
    pub fn get(&self, path: &str) -> Page {
        let url = format!("{}{path}", self.base);
        http::response(self.agent.get(&url).call())
            .unwrap_or_else(|e| panic!("browser: GET {url}: {e}"))
    }

    /// Submits a form: `POST path` with `fields`, whatever the status. Sends `Origin` like a
    /// browser does for every form POST.
    #[track_caller]
    #[must_use]
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let url = format!("{}{path}", self.base);
        http::response(
            self.agent
                .post(&url)
                .set("Origin", &self.origin)
                .send_form(fields),
        )
        .unwrap_or_else(|e| panic!("browser: POST {url}: {e}"))
    }

    /// `GET url` for a URL anywhere (another site, such as an identity provider).
    #[track_caller]
    #[must_use]
    pub fn get_absolute(&self, url: &str) -> Page {
        http::response(self.agent.get(url).call())
            .unwrap_or_else(|e| panic!("browser: GET {url}: {e}"))
    }

    /// Submits a form on another site: `POST url` with `fields`, `Origin` being that site's.
    #[track_caller]
    #[must_use]
    pub fn post_absolute(&self, url: &str, fields: &[(&str, &str)]) -> Page {
        let origin = url::Url::parse(url).map_or_else(
            |e| panic!("browser: {url} is not a URL: {e}"),
            |u| u.origin().ascii_serialization(),
        );
        http::response(
            self.agent
                .post(url)
                .set("Origin", &origin)
                .send_form(fields),
        )
        .unwrap_or_else(|e| panic!("browser: POST {url}: {e}"))
    }

    /// Opens `/device?user_code=CODE` and submits the code, as a person following the link
    /// the plugin printed. Returns the page landed on (login, consent, or an error page).
    #[track_caller]
    #[must_use]
    pub fn enter_user_code(&self, user_code: &str) -> Page {
        let form = self.get(&format!("/device?user_code={user_code}"));
        assert_eq!(form.status, 200, "the device page did not open: {form:?}");
        assert!(
            form.body.contains(r#"action="/device""#),
            "the device page has no form posting to /device:\n{}",
            form.body
        );
        let csrf = csrf_token(&form);
        self.post(
            "/device",
            &[("user_code", user_code), ("csrf_token", &csrf)],
        )
    }

    /// Fills in the login form on `login` (a page at `/login`) and submits it.
    #[track_caller]
    #[must_use]
    pub fn sign_in(&self, login: &Page, username: &str, password: &str) -> Page {
        assert_eq!(
            path_of(login),
            "/login",
            "expected the login page, got {login:?}"
        );
        let csrf = csrf_token(login);
        self.post(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
    }

    /// Presses approve or deny on `consent` (a page at `/consent`).
    #[track_caller]
    #[must_use]
    pub fn answer(&self, consent: &Page, answer: Answer) -> Page {
        assert_eq!(
            path_of(consent),
            "/consent",
            "expected the consent page, got {consent:?}"
        );
        let csrf = csrf_token(consent);
        self.post(
            "/consent",
            &[("action", answer.action()), ("csrf_token", &csrf)],
        )
    }

    /// From user code to consent page: enters the code, signs in if asked to. Fails the test if
    /// any step does not land where the page contract says.
    #[track_caller]
    #[must_use]
    pub fn reach_consent(&self, user_code: &str, username: &str, password: &str) -> Page {
        let mut page = self.enter_user_code(user_code);
        assert_eq!(
            page.status, 200,
            "submitting user code {user_code} failed: {page:?}"
        );
        if path_of(&page) == "/login" {
            page = self.sign_in(&page, username, password);
            assert_eq!(
                page.status, 200,
                "signing in as {username} failed: {page:?}"
            );
        }
        assert_eq!(
            path_of(&page),
            "/consent",
            "expected the consent page after signing in, got {page:?}"
        );
        page
    }

    /// The whole person's side of a device login: code, sign-in, approve. Returns the final page.
    #[track_caller]
    #[must_use]
    pub fn approve(&self, user_code: &str, username: &str, password: &str) -> Page {
        self.complete(user_code, username, password, Answer::Approve)
    }

    /// Like [`Browser::approve`], but presses deny.
    #[track_caller]
    #[must_use]
    pub fn deny(&self, user_code: &str, username: &str, password: &str) -> Page {
        self.complete(user_code, username, password, Answer::Deny)
    }

    #[track_caller]
    fn complete(&self, user_code: &str, username: &str, password: &str, answer: Answer) -> Page {
        let consent = self.reach_consent(user_code, username, password);
        let done = self.answer(&consent, answer);
        assert!(
            done.status == 200 && done.body.to_lowercase().contains(answer.outcome_word()),
            "expected a page saying {:?} after pressing {}, got {done:?}",
            answer.outcome_word(),
            answer.action()
        );
        done
    }
}

/// The path of the URL a page was served from.
#[must_use]
pub fn path_of(page: &Page) -> String {
    url::Url::parse(&page.url)
        .map(|u| u.path().to_owned())
        .unwrap_or_default()
}

/// The value of the page's hidden `csrf_token` input; fails the test if there is none.
#[track_caller]
#[must_use]
pub fn csrf_token(page: &Page) -> String {
    find_csrf_token(&page.body).unwrap_or_else(|| {
        panic!(
            "no csrf_token input on {} (status {}):\n{}",
            page.url, page.status, page.body
        )
    })
}

/// The `action` of the first form on `page` whose action starts with `prefix` and ends with
/// `suffix`, made absolute against the page's URL; fails the test if there is none.
#[track_caller]
#[must_use]
pub fn form_action(page: &Page, prefix: &str, suffix: &str) -> String {
    let found = page
        .body
        .match_indices(r#"action=""#)
        .map(|(i, m)| &page.body[i + m.len()..])
        .filter_map(|rest| rest.find('"').map(|end| &rest[..end]))
        .find(|a| a.starts_with(prefix) && a.ends_with(suffix));
    let Some(action) = found else {
        panic!(
            "no form posting to {prefix}...{suffix} on {} (status {}):\n{}",
            page.url, page.status, page.body
        )
    };
    url::Url::parse(&page.url)
        .and_then(|base| base.join(action))
        .map_or_else(
            |e| panic!("form action {action} on {}: {e}", page.url),
            String::from,
        )
}

/// Finds `name="csrf_token" value="..."` in `html`.
#[must_use]
pub fn find_csrf_token(html: &str) -> Option<String> {
    const MARKER: &str = r#"name="csrf_token" value=""#;
    let start = html.find(MARKER)? + MARKER.len();
    let len = html[start..].find('"')?;
    Some(html[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_csrf_token() {
        let html = r#"<form method="post" action="/login"><input type="hidden" name="csrf_token" value="abc-123_X"><input name="username"></form>"#;
        assert_eq!(find_csrf_token(html).as_deref(), Some("abc-123_X"));
        assert_eq!(find_csrf_token("<form></form>"), None);
    }
}
