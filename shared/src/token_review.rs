//! Kubernetes webhook token authentication (`authentication.k8s.io` `TokenReview`, v1 and
//! v1beta1): the API server posts the bearer token it was shown, the issuer answers who it is.
//!
//! Both versions have the same shape for the fields used here, so one set of types serves
//! both; the answer carries the `apiVersion` the request came in.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// `apiVersion` of the current `TokenReview`.
pub const API_VERSION_V1: &str = "authentication.k8s.io/v1";
/// `apiVersion` older API servers send (`--authentication-token-webhook-version=v1beta1`, the
/// default before Kubernetes 1.19 allowed v1).
pub const API_VERSION_V1BETA1: &str = "authentication.k8s.io/v1beta1";
/// `kind` of both.
pub const KIND: &str = "TokenReview";

/// What the API server posts.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenReviewRequest {
    /// `authentication.k8s.io/v1` or `.../v1beta1`.
    #[serde(default)]
    pub api_version: String,
    /// `TokenReview`.
    #[serde(default)]
    pub kind: String,
    /// The token and the audiences it must be valid for.
    #[serde(default)]
    pub spec: TokenReviewSpec,
}

impl fmt::Debug for TokenReviewRequest {
    // Written by hand: the spec holds a bearer token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReviewRequest")
            .field("api_version", &self.api_version)
            .field("kind", &self.kind)
            .field("spec", &self.spec)
            .finish()
    }
}

/// `spec`.
#[derive(Clone, Default, Deserialize)]
pub struct TokenReviewSpec {
    /// The bearer token. Secret: never logged, never echoed.
    #[serde(default)]
    pub token: String,
    /// Audiences the API server accepts (its `--api-audiences`); empty when it has none.
    #[serde(default)]
    pub audiences: Vec<String>,
}

impl fmt::Debug for TokenReviewSpec {
    // Written by hand so that the token cannot reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReviewSpec")
            .field("token", &"[redacted]")
            .field("audiences", &self.audiences)
            .finish()
    }
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenReviewResponse {
    /// The request's `apiVersion`.
    pub api_version: String,
    /// `TokenReview`.
    pub kind: String,
    /// The verdict.
    pub status: TokenReviewStatus,
}

/// `status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenReviewStatus {
    /// Whether the token is valid (and its session live).
    pub authenticated: bool,
    /// Who, when authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserInfo>,
    /// Audiences of `spec.audiences` the token is valid for; omitted when none was asked for
    /// (the API server then applies its own audiences, see docs/operations.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Why not, when not authenticated: a short reason, never a secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `status.user`: what RBAC and the API server's audit log see.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserInfo {
    /// `credential:<username>`.
    pub username: String,
    /// The issuer's stable user id (the token's `sub`).
    pub uid: String,
    /// `credential:<group>` for each group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Lowercase, domain-prefixed keys (`credential.kubectl.dev/session-id`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_kube_apiserver_sends_and_never_prints_the_token() {
        let body = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","metadata":{"creationTimestamp":null},"spec":{"token":"eyJsecret","audiences":["https://kubernetes.default.svc"]},"status":{"user":{}}}"#;
        let r: TokenReviewRequest = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.api_version, API_VERSION_V1);
        assert_eq!(r.spec.token, "eyJsecret");
        assert_eq!(r.spec.audiences, ["https://kubernetes.default.svc"]);
        assert!(!format!("{r:?}").contains("eyJsecret"));
    }

    #[test]
    fn an_unauthenticated_answer_has_no_user() {
        let r = TokenReviewResponse {
            api_version: API_VERSION_V1BETA1.into(),
            kind: KIND.into(),
            status: TokenReviewStatus {
                error: "token expired".into(),
                ..TokenReviewStatus::default()
            },
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap_or_default(),
            serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1beta1",
                "kind": "TokenReview",
                "status": {"authenticated": false, "error": "token expired"}
            })
        );
    }
}
