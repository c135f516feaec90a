//! Kubeconfig files and in-cluster service accounts: where the API server is and how the
//! reconciler proves who it is (client certificate or bearer token). Only the parts the
//! issuer needs are read; exec plugins and auth providers are refused with a clear message.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use url::Url;

use super::Error;
use crate::secrets::secret::Secret;

/// Where the service-account token and CA of a pod are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// An API server and the credentials to use with it.
pub struct Endpoint {
    /// `https://host:port`.
    pub server: Url,
    /// PEM CA bundle to trust; `None`: the system's web roots (never for self-signed CAs).
    pub ca_pem: Option<Vec<u8>>,
    /// How to authenticate.
    pub auth: Auth,
}

/// How the reconciler authenticates.
pub enum Auth {
    /// A client certificate and its private key (PEM).
    ClientCert {
        /// Certificate chain.
        cert_pem: Vec<u8>,
        /// Private key.
        key_pem: Secret,
    },
    /// A bearer token.
    Token(Secret),
    /// Nothing (anonymous): accepted so that errors come from the API server.
    None,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ClientCert { .. } => "ClientCert([redacted])",
            Self::Token(_) => "Token([redacted])",
            Self::None => "None",
        })
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match self.auth {
            Auth::ClientCert { .. } => "client certificate",
            Auth::Token(_) => "bearer token",
            Auth::None => "none",
        };
        f.debug_struct("Endpoint")
            .field("server", &self.server.as_str())
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "context", alias = "cluster", alias = "user")]
    value: T,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    user: Option<String>,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
    #[serde(rename = "certificate-authority")]
    certificate_authority: Option<PathBuf>,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify", default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(rename = "client-certificate")]
    client_certificate: Option<PathBuf>,
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-key")]
    client_key: Option<PathBuf>,
    #[serde(rename = "client-key-data")]
    client_key_data: Option<String>,
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
    exec: Option<serde_norway::Value>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<serde_norway::Value>,
}

/// Reads the kubeconfig at `path` and resolves its current context. Relative file paths in it
/// are relative to the kubeconfig's directory, as kubectl treats them.
pub fn load(path: &Path) -> Result<Endpoint, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> Result<Endpoint, Error> {
    let bad = |message: String| Error::Kubeconfig {
        path: path.to_owned(),
        message,
    };
    // The parser's message could quote a line of the file, which may hold a key or token.
    let file: File = serde_norway::from_str(text)
        .map_err(|_| bad("not a kubeconfig (YAML with clusters, users and contexts)".into()))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_owned()
        } else {
            dir.join(p)
        }
    };
    let read = |p: &Path| {
        let p = resolve(p);
        std::fs::read(&p).map_err(|source| Error::Read { path: p, source })
    };
    let decode = |field: &str, data: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| bad(format!("{field} is not base64")))
    };

    let context_name = file
        .current_context
        .clone()
        .or_else(|| (file.contexts.len() == 1).then(|| file.contexts[0].name.clone()))
        .ok_or_else(|| bad("no current-context".into()))?;
    let context = file
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .ok_or_else(|| bad(format!("context `{context_name}` is not defined")))?;
    let cluster = file
        .clusters
        .iter()
        .find(|c| c.name == context.value.cluster)
        .ok_or_else(|| {
            bad(format!(
                "cluster `{}` is not defined",
                context.value.cluster
            ))
        })?;
    let c = &cluster.value;
    if c.insecure_skip_tls_verify {
        return Err(bad(
            "insecure-skip-tls-verify is not supported; give the cluster's CA".into(),
        ));
    }
    let server = Url::parse(&c.server).map_err(|e| bad(format!("server: {e}")))?;
    if server.scheme() != "https" {
        return Err(bad("server must be an https URL".into()));
    }
    let ca_pem = match (&c.certificate_authority_data, &c.certificate_authority) {
        (Some(data), _) => Some(decode("certificate-authority-data", data)?),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };

    let default_user = User::default();
    let user = match &context.value.user {
        Some(name) => {
            &file
                .users
                .iter()
                .find(|u| &u.name == name)
                .ok_or_else(|| bad(format!("user `{name}` is not defined")))?
                .value
        }
        None => &default_user,
    };
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(bad(
            "exec and auth-provider users are not supported; use a client certificate or a token"
                .into(),
        ));
    }
    let cert = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => Some(decode("client-certificate-data", data)?),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };
    let key = match (&user.client_key_data, &user.client_key) {
        (Some(data), _) => Some(Secret::new(
            String::from_utf8(decode("client-key-data", data)?)
                .map_err(|_| bad("client-key-data is not PEM".into()))?,
        )),
        (None, Some(file)) => Some(Secret::new(
            String::from_utf8(read(file)?).map_err(|_| bad("client-key is not PEM".into()))?,
        )),
        (None, None) => None,
    };
    let auth = match (cert, key, &user.token, &user.token_file) {
        (Some(cert_pem), Some(key_pem), _, _) => Auth::ClientCert { cert_pem, key_pem },
        (Some(_), None, _, _) | (None, Some(_), _, _) => {
            return Err(bad(
                "a client certificate needs its key (and a key its certificate)".into(),
            ))
        }
        (None, None, Some(token), _) => Auth::Token(Secret::new(token.clone())),
        (None, None, None, Some(file)) => Auth::Token(read_token(&resolve(file))?),
        (None, None, None, None) => Auth::None,
    };
    Ok(Endpoint {
        server,
        ca_pem,
        auth,
    })
}

fn read_token(path: &Path) -> Result<Secret, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(Secret::new(text.trim()))
}

/// The pod's own service account: `KUBERNETES_SERVICE_HOST`/`_PORT`, and the token and CA in
/// [`SERVICE_ACCOUNT_DIR`]. The token is read at every round (the kubelet rotates it).
pub fn in_cluster() -> Result<Endpoint, Error> {
    let host =
        std::env::var(crate::env::KUBERNETES_SERVICE_HOST).map_err(|_| Error::Kubeconfig {
            path: SERVICE_ACCOUNT_DIR.into(),
            message: format!(
                "in_cluster = true but {} is not set (not running in a pod?)",
                crate::env::KUBERNETES_SERVICE_HOST
            ),
        })?;
    let port = std::env::var(crate::env::KUBERNETES_SERVICE_PORT).unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let server = Url::parse(&format!("https://{host}:{port}")).map_err(|e| Error::Kubeconfig {
        path: SERVICE_ACCOUNT_DIR.into(),
        message: format!("bad service address: {e}"),
    })?;
    let dir = Path::new(SERVICE_ACCOUNT_DIR);
    let ca = dir.join("ca.crt");
    let ca_pem = std::fs::read(&ca).map_err(|source| Error::Read { path: ca, source })?;
    Ok(Endpoint {
        server,
        ca_pem: Some(ca_pem),
        auth: Auth::Token(read_token(&dir.join("token"))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_files_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("ca.crt"), "CA").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("admin.crt"), "CERT").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("admin.key"), "KEY").unwrap_or_else(|e| panic!("{e}"));
        let text = r"
apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: ca.crt
users:
- name: admin
  user:
    client-certificate: admin.crt
    client-key: admin.key
contexts:
- name: envtest
  context:
    cluster: envtest
    user: admin
current-context: envtest
";
        let e = parse(text, &dir.path().join("kubeconfig")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.server.as_str(), "https://127.0.0.1:6443/");
        assert_eq!(e.ca_pem.as_deref(), Some(&b"CA"[..]));
        match e.auth {
            Auth::ClientCert { cert_pem, key_pem } => {
                assert_eq!(cert_pem, b"CERT");
                assert_eq!(key_pem.expose(), "KEY");
            }
            _ => panic!("expected a client certificate"),
        }
    }

    #[test]
    fn token_and_inline_ca_and_no_secret_in_errors() {
        let text = r"
clusters:
- name: c
  cluster:
    server: https://k.example:443
    certificate-authority-data: Q0E=
users:
- name: u
  user:
    token: sekrit-token
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
";
        let e = parse(text, Path::new("/k")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert!(matches!(&e.auth, Auth::Token(t) if t.expose() == "sekrit-token"));
        assert!(!format!("{e:?}").contains("sekrit"));

        let broken = "users: [{name: u, user: {token: sekrit-token, bogus: [}]";
        let err = parse(broken, Path::new("/k")).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|m| !m.contains("sekrit")),
            "{err:?}"
        );
        let insecure = text.replace(
            "certificate-authority-data: Q0E=",
            "insecure-skip-tls-verify: true",
        );
        let err = parse(&insecure, Path::new("/k"))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|m| m.contains("insecure-skip-tls-verify")));
    }
}
