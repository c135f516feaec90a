//! A small blocking client for the few RBAC calls the reconciler makes (list by label, create,
//! replace, delete), on `ureq` + rustls/ring, the HTTP stack the workspace already builds for
//! the plugin. Callers run it on the blocking pool (`spawn_blocking`). ARCHITECTURE.md says why
//! this and not kube-rs.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::kubeconfig::{Auth, Endpoint};
use super::Error;
use crate::secrets::secret::Secret;

/// How long one API call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one API server.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<Secret>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    message: String,
}

impl Client {
    /// A client for `endpoint` (TLS trusting only its CA, when it names one).
    pub fn new(endpoint: &Endpoint) -> Result<Self, Error> {
        let (config, token) = client_tls(endpoint)?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(config))
            .timeout(TIMEOUT)
            .build();
        Ok(Self {
            agent,
            base: endpoint.server.as_str().trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<String>,
    ) -> Result<Option<String>, Error> {
        let mut req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Accept", "application/json");
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {}", t.expose()));
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(&b),
            None => req.call(),
        };
        match result {
            Ok(resp) => resp.into_string().map(Some).map_err(|e| Error::Transport {
                method,
                path: path.to_owned(),
                message: e.to_string(),
            }),
            Err(ureq::Error::Status(404, _)) if method == "DELETE" => Ok(None),
            Err(ureq::Error::Status(status, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Status>(&text)
                    .map(|s| s.message)
                    .unwrap_or_default();
                Err(Error::Status {
                    method,
                    path: path.to_owned(),
                    status,
                    message,
                })
            }
            // The transport's text names the URL and the cause; the token is a header, not in it.
            Err(ureq::Error::Transport(t)) => Err(Error::Transport {
                method,
                path: path.to_owned(),
                message: t.to_string(),
            }),
        }
    }

    /// `GET path` of a list: its items.
    pub fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, Error> {
        let text = self.call("GET", path, None)?.unwrap_or_default();
        serde_json::from_str::<List<T>>(&text)
            .map(|l| l.items)
            .map_err(|e| Error::Decode {
                path: path.to_owned(),
                message: e.to_string(),
            })
    }

    /// `POST collection` with `object`.
    pub fn create<T: Serialize>(&self, collection: &str, object: &T) -> Result<(), Error> {
        self.call("POST", collection, Some(json(collection, object)?))
            .map(drop)
    }

    /// `PUT path` with `object` (a full replacement).
    pub fn replace<T: Serialize>(&self, path: &str, object: &T) -> Result<(), Error> {
        self.call("PUT", path, Some(json(path, object)?)).map(drop)
    }

    /// `DELETE path`; an object already gone is not an error.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        self.call("DELETE", path, None).map(drop)
    }
}

fn json<T: Serialize>(path: &str, object: &T) -> Result<String, Error> {
    serde_json::to_string(object).map_err(|e| Error::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The TLS side of a connection to `endpoint`: a rustls client configuration (ring) trusting
/// only the endpoint's CA, with its client certificate when it has one, and its bearer token
/// when that is how it authenticates. Shared by this client and the impersonating proxy.
pub fn client_tls(endpoint: &Endpoint) -> Result<(rustls::ClientConfig, Option<Secret>), Error> {
    let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    match &endpoint.ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots.add(cert.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
            }
            if roots.is_empty() {
                return Err(Error::Tls("the cluster CA holds no certificate".into()));
            }
        }
        None => {
            return Err(Error::Tls(
                "no certificate-authority is given for the cluster".into(),
            ))
        }
    }
    let builder = builder.with_root_certificates(roots);
    let (config, token) = match &endpoint.auth {
        Auth::ClientCert { cert_pem, key_pem } => {
            let certs = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls(&e))?;
            // Never show the key's parser error: it could quote key material.
            let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
                .ok()
                .ok_or_else(|| Error::Tls("the client key is not a PEM private key".into()))?;
            let config = builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| tls(&e))?;
            (config, None)
        }
        Auth::Token(t) => (builder.with_no_client_auth(), Some(t.clone())),
        Auth::None => (builder.with_no_client_auth(), None),
    };
    Ok((config, token))
}
