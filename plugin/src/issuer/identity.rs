//! Asking the GitHub Actions runner for the job's identity token (an OpenID Connect JWT for
//! `--identity-token github-actions`): one `GET` with the runner's request token, no redirect
//! followed, nothing of either token ever printed.

use std::time::Duration;

use serde::Deserialize;

use super::{CONNECT_TIMEOUT, REQUEST_TIMEOUT, USER_AGENT};
use crate::base::secret::Secret;

/// Longest identity token accepted (the issuer refuses longer ones too).
pub(crate) const MAX_IDENTITY_TOKEN_BYTES: usize = 16 * 1024;

/// Why the runner did not hand out a token. Never includes a token or the request URL's
/// query (it is the runner's, and may carry more than the audience).
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentityError {
    /// No connection, a TLS failure, a timeout.
    #[error("could not reach the GitHub Actions token endpoint")]
    Unreachable(#[source] Box<ureq::Transport>),
    /// An HTTP status other than 200.
    #[error("the GitHub Actions token endpoint answered HTTP {0}")]
    Status(u16),
    /// Not `{"value": "<jwt>"}`.
    #[error("the GitHub Actions token endpoint sent an answer without a token")]
    Malformed,
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` is not a URL.
    #[error("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL")]
    BadUrl,
}

#[derive(Deserialize)]
struct RunnerAnswer {
    #[serde(default)]
    value: String,
}

/// The URL the token is asked at: the runner's URL plus `audience=`, after `&` (its URL
/// already has a query) or `?`.
pub(crate) fn github_actions_url(request_url: &str, audience: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(audience.as_bytes()).collect();
    let sep = if request_url.contains('?') { '&' } else { '?' };
    format!("{request_url}{sep}audience={encoded}")
}

/// Asks the runner at `request_url` for a token for `audience`, with its `request_token`.
pub(crate) fn github_actions_token(
    request_url: &str,
    request_token: &Secret,
    audience: &str,
) -> Result<Secret, IdentityError> {
    github_actions_token_with(
        request_url,
        request_token,
        audience,
        CONNECT_TIMEOUT,
        REQUEST_TIMEOUT,
    )
}

fn github_actions_token_with(
    request_url: &str,
    request_token: &Secret,
    audience: &str,
    connect: Duration,
    request: Duration,
) -> Result<Secret, IdentityError> {
    let url = github_actions_url(request_url, audience);
    let parsed = url::Url::parse(&url).map_err(|_| IdentityError::BadUrl)?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(IdentityError::BadUrl);
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout(request)
        .redirects(0)
        .user_agent(USER_AGENT)
        .build();
    let result = agent
        .get(&url)
        .set("Accept", "application/json")
        .set(
            "Authorization",
            &format!("bearer {}", request_token.expose()),
        )
        .call();
    let response = match result {
        Ok(r) if r.status() == 200 => r,
        Ok(r) => return Err(IdentityError::Status(r.status())),
        Err(ureq::Error::Status(status, _)) => return Err(IdentityError::Status(status)),
        Err(ureq::Error::Transport(t)) => return Err(IdentityError::Unreachable(Box::new(t))),
    };
    let body = response
        .into_string()
        .map_err(|_| IdentityError::Malformed)?;
    let answer: RunnerAnswer = serde_json::from_str(&body).map_err(|_| IdentityError::Malformed)?;
    let value = answer.value.trim();
    if value.is_empty() || value.len() > MAX_IDENTITY_TOKEN_BYTES {
        return Err(IdentityError::Malformed);
    }
    Ok(Secret::new(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::tests::serve;

    /// A fake runner: the request carries the audience and the runner's bearer token, and the
    /// answer's `value` is the token; refusals and junk are errors that quote neither token.
    #[test]
    fn asks_the_runner_with_its_token_and_the_audience() {
        let (base, server) = serve(|_| {
            vec![
                (200, r#"{"count":1,"value":" eyJ.ci.jwt \n"}"#.to_owned()),
                (403, r#"{"message":"no id-token permission"}"#.to_owned()),
                (200, r#"{"value":""}"#.to_owned()),
            ]
        });
        let request_url = format!("{base}/_apis/token?api-version=2.0");
        let runner_token = Secret::new("RUNNER-SECRET".to_owned());
        let token = github_actions_token(&request_url, &runner_token, "https://issuer.example")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(token.expose(), "eyJ.ci.jwt");
        let err = github_actions_token(&request_url, &runner_token, "https://issuer.example").err();
        assert!(matches!(err, Some(IdentityError::Status(403))), "{err:?}");
        let err = github_actions_token(&request_url, &runner_token, "aud")
            .err()
            .unwrap_or_else(|| panic!("an empty value was accepted"));
        assert!(matches!(err, IdentityError::Malformed));
        assert!(!err.to_string().contains("RUNNER-SECRET"));
        let requests = server.join().unwrap_or_default();
        let first = requests[0].to_ascii_lowercase();
        assert!(
            first.starts_with(
                "get /_apis/token?api-version=2.0&audience=https%3a%2f%2fissuer.example http/1.1\r\n"
            ),
            "{first}"
        );
        assert!(
            first.contains("\r\nauthorization: bearer runner-secret\r\n"),
            "{first}"
        );
        assert!(requests[2].starts_with("GET /_apis/token?api-version=2.0&audience=aud "));
        // Nothing listens any more.
        let err = github_actions_token(&request_url, &runner_token, "aud").err();
        assert!(
            matches!(err, Some(IdentityError::Unreachable(_))),
            "{err:?}"
        );
        assert!(matches!(
            github_actions_token("not a url", &runner_token, "aud"),
            Err(IdentityError::BadUrl)
        ));
    }

    #[test]
    fn the_audience_is_appended_encoded() {
        assert_eq!(
            github_actions_url(
                "https://r.example/token?api-version=2.0",
                "https://i.example:8443"
            ),
            "https://r.example/token?api-version=2.0&audience=https%3A%2F%2Fi.example%3A8443"
        );
        assert_eq!(
            github_actions_url("https://r.example/token", "a b&c"),
            "https://r.example/token?audience=a+b%26c"
        );
    }
}
