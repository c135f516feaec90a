//! The `client.authentication.k8s.io` ExecCredential documents kubectl and the plugin exchange.
//!
//! kubectl passes an `ExecCredential` request in `KUBERNETES_EXEC_INFO` and reads one back on
//! the plugin's stdout. See
//! <https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins>.

use serde::{Deserialize, Serialize};

/// `apiVersion` of the stable (v1) exec protocol.
pub const API_VERSION_V1: &str = "client.authentication.k8s.io/v1";
/// `apiVersion` of the older v1beta1 exec protocol (kubectl 1.11 to 1.21 default).
pub const API_VERSION_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
/// The `kind` of every document in this protocol.
pub const KIND: &str = "ExecCredential";

/// The protocol versions the plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `client.authentication.k8s.io/v1`.
    V1,
    /// `client.authentication.k8s.io/v1beta1`.
    V1Beta1,
}

impl ApiVersion {
    /// Parses an `apiVersion` string; `None` for a version this plugin does not speak.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            API_VERSION_V1 => Some(Self::V1),
            API_VERSION_V1BETA1 => Some(Self::V1Beta1),
            _ => None,
        }
    }

    /// The `apiVersion` string of this version.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => API_VERSION_V1,
            Self::V1Beta1 => API_VERSION_V1BETA1,
        }
    }
}

/// The request kubectl serializes into `KUBERNETES_EXEC_INFO`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredentialRequest {
    /// One of the two `API_VERSION_*` constants (kubectl may send others; the plugin rejects them).
    pub api_version: String,
    /// Always `ExecCredential`.
    #[serde(default)]
    pub kind: String,
    /// What kubectl tells the plugin about the call.
    #[serde(default)]
    pub spec: ExecCredentialSpec,
}

/// `spec` of the request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredentialSpec {
    /// Whether stdin is a terminal the plugin may use to talk to a person.
    #[serde(default)]
    pub interactive: bool,
    /// The cluster kubectl is about to call, present when the kubeconfig sets
    /// `provideClusterInfo: true`.
    #[serde(default)]
    pub cluster: Option<ExecCluster>,
}

/// `spec.cluster` of the request. Its fields are spelled as in a kubeconfig
/// (`certificate-authority-data`, `tls-server-name`), unlike the rest of the document.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExecCluster {
    /// The API server URL.
    #[serde(default)]
    pub server: String,
    /// Base64 of the PEM CA bundle that kubectl trusts for this server.
    #[serde(default, rename = "certificate-authority-data")]
    pub certificate_authority_data: Option<String>,
    /// `tls-server-name` from the kubeconfig.
    #[serde(default, rename = "tls-server-name")]
    pub tls_server_name: Option<String>,
}

/// The response the plugin prints on stdout.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredential<'a> {
    /// The same version as the request.
    pub api_version: &'static str,
    /// Always [`KIND`].
    pub kind: &'static str,
    /// The credential.
    pub status: ExecCredentialStatus<'a>,
}

/// `status` of the response. Holds a bearer token, so it is never logged; its `Debug` redacts.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredentialStatus<'a> {
    /// The bearer token kubectl sends to the API server.
    pub token: &'a str,
    /// RFC 3339 time after which kubectl calls the plugin again.
    pub expiration_timestamp: &'a str,
}

impl std::fmt::Debug for ExecCredentialStatus<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecCredentialStatus")
            .field("token", &"[redacted]")
            .field("expiration_timestamp", &self.expiration_timestamp)
            .finish()
    }
}

impl<'a> ExecCredential<'a> {
    /// Builds a response in `version`.
    #[must_use]
    pub fn new(version: ApiVersion, token: &'a str, expiration_timestamp: &'a str) -> Self {
        Self {
            api_version: version.as_str(),
            kind: KIND,
            status: ExecCredentialStatus {
                token,
                expiration_timestamp,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectl_v1_request_with_cluster_info() {
        let raw = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{"server":"https://127.0.0.1:6443","certificate-authority-data":"Q0E=","tls-server-name":"api","config":null},"interactive":true}}"#;
        let req: ExecCredentialRequest =
            serde_json::from_str(raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ApiVersion::parse(&req.api_version), Some(ApiVersion::V1));
        assert!(req.spec.interactive);
        let cluster = req.spec.cluster.unwrap_or_default();
        assert_eq!(cluster.server, "https://127.0.0.1:6443");
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        assert_eq!(cluster.tls_server_name.as_deref(), Some("api"));
    }

    #[test]
    fn parses_v1beta1_request_without_spec() {
        let raw = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}"#;
        let req: ExecCredentialRequest =
            serde_json::from_str(raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ApiVersion::parse(&req.api_version),
            Some(ApiVersion::V1Beta1)
        );
        assert!(!req.spec.interactive);
        assert!(req.spec.cluster.is_none());
    }

    #[test]
    fn response_snapshot() {
        let doc = ExecCredential::new(ApiVersion::V1, "tok", "2026-01-01T00:00:00Z");
        insta::assert_json_snapshot!(doc, @r#"
        {
          "apiVersion": "client.authentication.k8s.io/v1",
          "kind": "ExecCredential",
          "status": {
            "token": "tok",
            "expirationTimestamp": "2026-01-01T00:00:00Z"
          }
        }
        "#);
    }

    #[test]
    fn debug_redacts_token() {
        let doc = ExecCredential::new(ApiVersion::V1, "secret-token", "t");
        assert!(!format!("{doc:?}").contains("secret-token"));
    }
}
