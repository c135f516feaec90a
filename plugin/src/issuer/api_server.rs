//! The one request the plugin makes to a Kubernetes API server: a `SelfSubjectAccessReview`
//! with the cached token, to learn whether the server still accepts it. Asked only when a
//! client-go-style caller asks again for a token it already received (`flow::retry`): kubectl
//! does that after a 401, but some clients (the official Python client) run the plugin on
//! every configuration load, and for them the token still works.
//!
//! The server is the one the caller named in `KUBERNETES_EXEC_INFO` (`provideClusterInfo`),
//! the token goes nowhere the caller would not send it anyway, and only the CA the caller
//! trusts for that server is trusted (no system roots). Redirects are not followed, the whole
//! request is bounded by [`REVIEW_TIMEOUT`], and the token is never part of an answer or an
//! error.

use std::io::Read as _;
use std::time::Duration;

use base64::Engine as _;
use credential_shared::exec_credential::ExecCluster;
use rustls::pki_types::{pem::PemObject as _, CertificateDer};

use super::tls::tls_config_with_roots;
use super::USER_AGENT;
use crate::base::secret::Secret;

/// How long the review may take, connection included: the caller is waiting for a credential,
/// and without an answer the plugin refreshes as it would have without asking.
pub(crate) const REVIEW_TIMEOUT: Duration = Duration::from_secs(2);
/// The review's path below the server URL (`authorization.k8s.io/v1`: Kubernetes 1.6 and later;
/// `SelfSubjectReview` would need 1.27, and either only needs an authenticated user: every
/// authenticated user may create one through the default `system:basic-user` role).
const REVIEW_PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
/// The review: may this user `get` the non-resource path `/api`? The answer itself does not
/// matter, only whether the server authenticated the token to give one.
const REVIEW_BODY: &str = r#"{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","spec":{"nonResourceAttributes":{"path":"/api","verb":"get"}}}"#;
/// How much of an answer is read: a review is a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// What the API server said about the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It answered the review (2xx with a `SelfSubjectAccessReview`): the token authenticates.
    Accepted,
    /// 401: the server does not accept the token (expired, revoked, signed by a key it no longer
    /// trusts, for another audience).
    Refused,
    /// No evidence either way; why, for tests and messages (never a token).
    Unknown(NoEvidence),
}

/// Why the API server could not tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoEvidence {
    /// The caller gave no cluster information (`provideClusterInfo` is off).
    NoClusterInfo,
    /// The server URL is not `https://host...`.
    NotHttps,
    /// No `certificate-authority-data` (a CA file path, or none): nothing to trust it by.
    NoCa,
    /// The CA data is not base64 of PEM certificates rustls accepts.
    BadCa,
    /// `tls-server-name` asks to verify the server under another name, which this client
    /// cannot do.
    TlsServerName,
    /// Not reached, TLS refused, or no answer in time.
    Unreachable,
    /// Another status (403, 404, 5xx, a redirect) or a body that is not a review.
    OtherAnswer(u16),
}

/// The API server a caller described, ready to be asked.
pub(crate) struct ApiServer {
    url: String,
    agent: ureq::Agent,
}

impl ApiServer {
    /// The server `cluster` names, trusting only its CA data. Nothing is sent yet.
    pub(crate) fn new(cluster: &ExecCluster) -> Result<Self, NoEvidence> {
        let server = cluster.server.trim_end_matches('/');
        let parsed = url::Url::parse(server).map_err(|_| NoEvidence::NotHttps)?;
        if parsed.scheme() != "https" || parsed.host().is_none() {
            return Err(NoEvidence::NotHttps);
        }
        if cluster
            .tls_server_name
            .as_deref()
            .is_some_and(|name| !name.is_empty() && Some(name) != parsed.host_str())
        {
            return Err(NoEvidence::TlsServerName);
        }
        let data = cluster
            .certificate_authority_data
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .ok_or(NoEvidence::NoCa)?;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| NoEvidence::BadCa)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(cert.map_err(|_| NoEvidence::BadCa)?)
                .map_err(|_| NoEvidence::BadCa)?;
        }
        if roots.is_empty() {
            return Err(NoEvidence::BadCa);
        }
        let tls = tls_config_with_roots(roots).map_err(|_| NoEvidence::BadCa)?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(REVIEW_TIMEOUT)
            .timeout(REVIEW_TIMEOUT)
            .redirects(0)
            .user_agent(USER_AGENT)
            .tls_config(tls)
            .build();
        Ok(Self {
            url: format!("{server}{REVIEW_PATH}"),
            agent,
        })
    }

    /// Asks whether the server accepts `token`, by creating a `SelfSubjectAccessReview` with it.
    pub(crate) fn review(&self, token: &Secret) -> Verdict {
        let result = self
            .agent
            .post(&self.url)
            .set("Authorization", &format!("Bearer {}", token.expose()))
            .set("Content-Type", "application/json")
            .set("Accept", "application/json")
            .send_string(REVIEW_BODY);
        match result {
            Ok(response) if (200..300).contains(&response.status()) => {
                let status = response.status();
                if is_review(response) {
                    Verdict::Accepted
                } else {
                    Verdict::Unknown(NoEvidence::OtherAnswer(status))
                }
            }
            // With redirects off, a 3xx comes back as a response.
            Ok(response) => Verdict::Unknown(NoEvidence::OtherAnswer(response.status())),
            Err(ureq::Error::Status(401, _)) => Verdict::Refused,
            Err(ureq::Error::Status(status, _)) => {
                Verdict::Unknown(NoEvidence::OtherAnswer(status))
            }
            Err(ureq::Error::Transport(_)) => Verdict::Unknown(NoEvidence::Unreachable),
        }
    }
}

/// Whether the body is a `SelfSubjectAccessReview` (and not, say, a proxy's page).
fn is_review(response: ureq::Response) -> bool {
    let mut body = Vec::new();
    if response
        .into_reader()
        .take(MAX_ANSWER)
        .read_to_end(&mut body)
        .is_err()
    {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(&body)
        .is_ok_and(|doc| doc["kind"] == "SelfSubjectAccessReview")
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use super::*;

    /// A self-signed CA certificate (its key was thrown away): something rustls accepts as a
    /// root, which no server here can present.
    const CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----
MIIBrDCCAVGgAwIBAgIUZ5XrkewsG0nwWtwhPEWmeUslm/MwCgYIKoZIzj0EAwIw
KjEoMCYGA1UEAwwfa3ViZWN0bC1jcmVkZW50aWFsIHVuaXQgdGVzdCBDQTAgFw0y
NjEyMDcyMzAzNDdaGA8yMTI2MTExMzIzMDM0N1owKjEoMCYGA1UEAwwfa3ViZWN0
bC1jcmVkZW50aWFsIHVuaXQgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABB39S5yo8/I+1iKv6+9CNfpisMlUewv3qDXw6DkjOze61caZILBqTYc0QjVt
h9rNNFHkVY+rMrpRpP0wiscjBhejUzBRMB0GA1UdDgQWBBRYxrYwIumHMLYY6I3o
UCja9yCEYDAfBgNVHSMEGDAWgBRYxrYwIumHMLYY6I3oUCja9yCEYDAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDBmreabgf5Mf5K/F+7Qs4+YOlu
exVmf8eXVEMOK82prAIhAJrxG7uS/ekebyhtoxAR17MXj2os1wi1JEjO8dmwJdlV
-----END CERTIFICATE-----
";

    fn cluster(server: &str, ca: Option<&str>) -> ExecCluster {
        ExecCluster {
            server: server.to_owned(),
            certificate_authority_data: ca.map(str::to_owned),
            tls_server_name: None,
        }
    }

    fn refused(cluster: &ExecCluster) -> Option<NoEvidence> {
        ApiServer::new(cluster).err()
    }

    #[test]
    fn only_an_https_server_with_its_ca_data_is_asked() {
        let ca = base64::engine::general_purpose::STANDARD.encode(CA_PEM);
        assert_eq!(refused(&cluster("https://api:6443", Some(&ca))), None);
        assert_eq!(
            refused(&cluster("http://api:6443", Some(&ca))),
            Some(NoEvidence::NotHttps)
        );
        assert_eq!(
            refused(&cluster("not a url", Some(&ca))),
            Some(NoEvidence::NotHttps)
        );
        assert_eq!(
            refused(&cluster("https://api:6443", None)),
            Some(NoEvidence::NoCa)
        );
        assert_eq!(
            refused(&cluster("https://api:6443", Some(" "))),
            Some(NoEvidence::NoCa)
        );
        assert_eq!(
            refused(&cluster("https://api:6443", Some("!!!"))),
            Some(NoEvidence::BadCa)
        );
        let not_pem = base64::engine::general_purpose::STANDARD.encode("no certificate here");
        assert_eq!(
            refused(&cluster("https://api:6443", Some(&not_pem))),
            Some(NoEvidence::BadCa)
        );
        let mut other_name = cluster("https://10.0.0.1:6443", Some(&ca));
        other_name.tls_server_name = Some("kubernetes".to_owned());
        assert_eq!(refused(&other_name), Some(NoEvidence::TlsServerName));
        other_name.tls_server_name = Some("10.0.0.1".to_owned());
        assert_eq!(refused(&other_name), None, "the URL's own name is fine");
    }

    /// A TLS server on 127.0.0.1 with a certificate from a CA of its own, answering one
    /// connection per `answers` entry with that status and body. Returns the CA's PEM, the
    /// port, and the requests it read (head and body).
    fn tls_server(answers: Vec<(u16, &'static str)>) -> (String, u16, JoinHandle<Vec<String>>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

        let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| panic!("{e}"));
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .and_then(|p| p.signed_by(&key, &ca, &ca_key))
            .unwrap_or_else(|e| panic!("{e}"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(
                    vec![cert.der().clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                )
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map_or(0, |a| a.port());
        let server = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for (status, body) in answers {
                let Ok((tcp, _)) = listener.accept() else {
                    break;
                };
                let conn = rustls::ServerConnection::new(Arc::clone(&config))
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") && tls.read(&mut byte).is_ok_and(|n| n == 1) {
                    request.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let mut content = vec![0u8; length];
                let _ = tls.read_exact(&mut content);
                request.extend_from_slice(&content);
                requests.push(String::from_utf8_lossy(&request).into_owned());
                let _ = write!(
                    tls,
                    "HTTP/1.1 {status} Answer\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            requests
        });
        (ca.pem(), port, server)
    }

    #[test]
    fn the_review_is_a_self_subject_access_review_and_only_its_answer_counts() {
        const REVIEW: &str = r#"{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","status":{"allowed":false}}"#;
        const STATUS_401: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}"#;
        let answers = vec![
            (201, REVIEW),
            (401, STATUS_401),
            (403, r#"{"kind":"Status","code":403}"#),
            (500, ""),
            (302, ""),
            (200, "<html>a sign-in page</html>"),
        ];
        let (ca_pem, port, server) = tls_server(answers);
        let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        // A path prefix (a proxy in front of the API server) is kept.
        let api = ApiServer::new(&cluster(
            &format!("https://127.0.0.1:{port}/k8s/c1/"),
            Some(&ca),
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let token = Secret::new("eyJ.the-token.sig".to_owned());
        let verdicts: Vec<Verdict> = (0..6).map(|_| api.review(&token)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Accepted,
                Verdict::Refused,
                Verdict::Unknown(NoEvidence::OtherAnswer(403)),
                Verdict::Unknown(NoEvidence::OtherAnswer(500)),
                Verdict::Unknown(NoEvidence::OtherAnswer(302)),
                Verdict::Unknown(NoEvidence::OtherAnswer(200)),
            ]
        );
        let requests = server.join().unwrap_or_default();
        assert_eq!(requests.len(), 6);
        let first = &requests[0];
        assert!(
            first.starts_with(
                "POST /k8s/c1/apis/authorization.k8s.io/v1/selfsubjectaccessreviews HTTP/1.1\r\n"
            ),
            "{first}"
        );
        assert!(
            first.contains("\r\nAuthorization: Bearer eyJ.the-token.sig\r\n"),
            "{first}"
        );
        assert!(first.ends_with(REVIEW_BODY), "{first}");
        let body: serde_json::Value = serde_json::from_str(REVIEW_BODY).unwrap_or_default();
        assert_eq!(body["spec"]["nonResourceAttributes"]["verb"], "get");
    }

    #[test]
    fn a_server_that_does_not_speak_tls_with_that_ca_gives_no_evidence() {
        // A plain TCP server that answers garbage: the TLS handshake fails, and the token is
        // never sent in the clear.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map_or(0, |a| a.port());
        let seen = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
            let mut reader = BufReader::new(conn.try_clone().unwrap_or_else(|e| panic!("{e}")));
            let mut first = Vec::new();
            let _ = reader.read_until(b'\n', &mut first);
            let _ = conn.write_all(b"HTTP/1.1 201 Created\r\n\r\n");
            first
        });
        let ca = base64::engine::general_purpose::STANDARD.encode(CA_PEM);
        let server = ApiServer::new(&cluster(&format!("https://127.0.0.1:{port}"), Some(&ca)))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let token = Secret::new("the-token".to_owned());
        assert_eq!(
            server.review(&token),
            Verdict::Unknown(NoEvidence::Unreachable)
        );
        let first = seen.join().unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&first).contains("the-token"),
            "the token went out before TLS"
        );
    }
}
