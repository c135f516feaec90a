//! The HTTP client for the issuer: discovery, device authorization, token polling, refresh and
//! revocation. Blocking `ureq` with rustls on *ring*: nothing here runs on a cache hit, and the
//! agent (TLS roots, connection pool) is only built when a request is about to be made.

use std::error::Error as StdError;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{pem::PemObject as _, CertificateDer};

use credential_shared::oauth::{
    DeviceAuthorizationRequest, DeviceAuthorizationResponse, DiscoveryDocument, OAuthError,
    OAuthErrorCode, RevocationRequest, TokenRequest, TokenResponse, GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN, PATH_DEVICE_AUTHORIZATION, PATH_DISCOVERY, PATH_REVOKE,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use credential_shared::text::Untrusted;

use crate::base::target::{normalize_issuer, IssuerUrl};
use crate::base::secret::Secret;

/// Time to establish a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole request, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Sent as `User-Agent`.
const USER_AGENT: &str = concat!("kubectl-credential/", env!("CARGO_PKG_VERSION"));

/// Why a request to the issuer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IssuerError {
    /// `--issuer-ca` cannot be read.
    #[error("cannot read --issuer-ca {}", Untrusted::long(path.display()))]
    CaRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `--issuer-ca` holds no PEM certificate.
    #[error("--issuer-ca {} holds no PEM certificate", Untrusted::long(path.display()))]
    CaEmpty {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in `--issuer-ca` is not usable as a trust anchor.
    #[error("--issuer-ca {} holds a certificate that cannot be trusted as a CA", Untrusted::long(path.display()))]
    CaInvalid {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The TLS configuration could not be built (a bug: the *ring* provider supports the defaults).
    #[error("cannot set up TLS")]
    TlsSetup(#[source] rustls::Error),
    /// No connection, a TLS failure, a timeout.
    #[error("could not reach the issuer at {issuer}")]
    Unreachable {
        /// `--issuer`.
        issuer: String,
        /// What ureq saw.
        #[source]
        source: Box<ureq::Transport>,
        /// Whether TLS rejected the issuer's certificate (the hint then names `--issuer-ca`).
        tls: bool,
        /// Whether `--issuer-ca` was given: a certificate it does not accept then points at a
        /// wrong URL rather than at a missing flag.
        ca_given: bool,
    },
    /// An `http://` issuer URL reached a server that does not speak plain HTTP there (the
    /// issuer speaks https, and answered the plain request with a TLS alert).
    #[error(
        "the server at {issuer} did not answer in plain HTTP{}; the issuer speaks https: use --issuer {https}",
        if *tls { " (it answered with TLS)" } else { "" }
    )]
    SpeaksHttps {
        /// `--issuer`.
        issuer: String,
        /// The same URL with `https`.
        https: String,
        /// Whether the answer looked like a TLS record.
        tls: bool,
    },
    /// The server at `--issuer` answered, but has no OpenID discovery document of its own: a
    /// Kubernetes API server, a web page, another service.
    #[error(
        "{issuer} is not a credential issuer (no OpenID discovery at {}); the issuer URL is the one \
         your platform team gave, e.g. https://issuer.example.com, not the Kubernetes API server's",
        Untrusted::long(url)
    )]
    NotAnIssuer {
        /// `--issuer`.
        issuer: String,
        /// The discovery URL asked.
        url: String,
    },
    /// An HTTP status that is neither success nor an OAuth error.
    #[error("the issuer at {issuer} answered {} with HTTP {status}{}{}", Untrusted::long(url), redirect_note(*status), wait_note(*retry_after))]
    Status {
        /// `--issuer`.
        issuer: String,
        /// The endpoint.
        url: String,
        /// The status.
        status: u16,
        /// `Retry-After` in seconds, when the answer had one.
        retry_after: Option<u64>,
    },
    /// A body that is not the JSON expected.
    #[error(
        "the issuer at {issuer} sent a malformed response from {}",
        Untrusted::long(url)
    )]
    Malformed {
        /// `--issuer`.
        issuer: String,
        /// The endpoint.
        url: String,
        /// The parse error.
        #[source]
        source: io::Error,
    },
    /// The discovery document names another issuer.
    #[error(
        "the discovery document at {} names the issuer \"{}\", not {issuer}; the --issuer URL \
         may be misconfigured, or something else is answering for the issuer",
        Untrusted::long(url),
        Untrusted::new(found)
    )]
    IssuerMismatch {
        /// `--issuer`.
        issuer: String,
        /// Where the document came from.
        url: String,
        /// The `issuer` it names.
        found: String,
    },
    /// The discovery document has an endpoint URL the plugin will not use.
    #[error("the discovery document of {issuer} has an unusable endpoint \"{}\" (it must be an https URL)", Untrusted::long(endpoint))]
    BadEndpoint {
        /// `--issuer`.
        issuer: String,
        /// The endpoint URL.
        endpoint: String,
    },
    /// The issuer answered with an OAuth error: it refused the request (HTTP 400, 401), or it
    /// cannot serve it now (429, 5xx).
    #[error("the issuer at {issuer} {}: {}{}{}", oauth_outcome(*status), error.error.as_str(), describe(error), wait_note(*retry_after))]
    OAuth {
        /// `--issuer`.
        issuer: String,
        /// The HTTP status.
        status: u16,
        /// The error body.
        error: OAuthError,
        /// `Retry-After` in seconds, when the answer had one.
        retry_after: Option<u64>,
    },
    /// A request body could not be encoded (a bug).
    #[error("cannot encode the request")]
    Encode(#[source] serde_urlencoded::ser::Error),
    /// The issuer's requests API refused the call (policy, permission, rate limit), or could
    /// not serve it (5xx).
    #[error("the issuer at {issuer} {}: {}", api_outcome(*status), Untrusted::long(message))]
    Api {
        /// `--issuer`.
        issuer: String,
        /// HTTP status.
        status: u16,
        /// The issuer's explanation (from its error body).
        message: String,
    },
}

fn redirect_note(status: u16) -> &'static str {
    if (300..400).contains(&status) {
        " (a redirect, which the plugin does not follow)"
    } else {
        ""
    }
}

/// Whether `status` says the issuer cannot serve the request now, rather than refusing it.
fn is_busy(status: u16) -> bool {
    status == 429 || status >= 500
}

fn oauth_outcome(status: u16) -> String {
    if is_busy(status) {
        format!("cannot serve the request now (HTTP {status})")
    } else {
        "refused the request".to_owned()
    }
}

fn api_outcome(status: u16) -> String {
    if status >= 500 {
        format!("cannot serve the request now (HTTP {status})")
    } else {
        "refused".to_owned()
    }
}

fn wait_note(retry_after: Option<u64>) -> String {
    match retry_after {
        Some(secs) if secs > 0 => format!("; it asks to wait {secs} s"),
        _ => String::new(),
    }
}

/// The seconds of a `Retry-After` header in its delta-seconds form (what the issuer sends; an
/// HTTP date is not read, and counts as no header). A number too large for `u64` is `u64::MAX`:
/// callers bound the wait.
fn retry_after(response: &ureq::Response) -> Option<u64> {
    let value = response.header("Retry-After")?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse().unwrap_or(u64::MAX))
}

fn describe(error: &OAuthError) -> String {
    match &error.error_description {
        Some(d) if !d.is_empty() => format!(": {}", Untrusted::long(d)),
        _ => String::new(),
    }
}

impl IssuerError {
    /// What to do next.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable {
                tls: true,
                ca_given: true,
                ..
            } => Some(
                "the server's TLS certificate is not signed by the CA in --issuer-ca; check that \
                 --issuer is the credential issuer's URL (the one your platform team gave, e.g. \
                 https://issuer.example.com), not the Kubernetes API server's, and that \
                 --issuer-ca is the issuer's CA",
            ),
            Self::Unreachable { tls: true, .. } => Some(
                "the issuer's TLS certificate was not accepted; if it is signed by a private CA, \
                 pass that CA's PEM bundle with --issuer-ca FILE",
            ),
            Self::Status { status: 404, .. } => Some("check the --issuer URL"),
            Self::Api { status: 401, .. } => {
                Some("your session is not valid any more; run `kubectl credential login`")
            }
            _ => None,
        }
    }

    /// The OAuth error code, if the issuer answered with one.
    pub(crate) fn oauth_code(&self) -> Option<OAuthErrorCode> {
        match self {
            Self::OAuth { error, .. } => Some(error.error),
            _ => None,
        }
    }

    /// Whether trying again later may work: no connection, HTTP 429 or 5xx, or the issuer
    /// saying so.
    pub(crate) fn is_transient(&self) -> bool {
        self.retry().is_some()
    }

    /// When trying again may work, why: the issuer could not be reached, or it answered that
    /// it cannot serve the request now (with how long it asked to wait, and its explanation).
    pub(crate) fn retry(&self) -> Option<Retry<'_>> {
        match self {
            Self::Unreachable { tls, .. } => (!tls).then_some(Retry::Unreachable),
            Self::Status {
                status,
                retry_after,
                ..
            } if is_busy(*status) => Some(Retry::Later {
                status: *status,
                retry_after: *retry_after,
                description: None,
            }),
            Self::OAuth {
                status,
                error,
                retry_after,
                ..
            } if is_busy(*status)
                || matches!(
                    error.error,
                    OAuthErrorCode::ServerError | OAuthErrorCode::TemporarilyUnavailable
                ) =>
            {
                Some(Retry::Later {
                    status: *status,
                    retry_after: *retry_after,
                    description: error.error_description.as_deref(),
                })
            }
            _ => None,
        }
    }
}

/// Why a failed request may work later; see [`IssuerError::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry<'a> {
    /// No connection, or a timeout.
    Unreachable,
    /// The issuer answered that it cannot serve the request now.
    Later {
        /// The HTTP status.
        status: u16,
        /// Its `Retry-After` in seconds (unbounded: callers bound it).
        retry_after: Option<u64>,
        /// Its `error_description`, as sent (escape before printing).
        description: Option<&'a str>,
    },
}

/// The endpoints the plugin uses, from discovery (or the issuer's default paths).
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    /// RFC 8628 device authorization.
    pub(crate) device_authorization: String,
    /// Token endpoint (device code and refresh grants).
    pub(crate) token: String,
    /// RFC 7009 revocation.
    pub(crate) revocation: String,
}

/// A client for one issuer.
#[derive(Debug)]
pub(crate) struct IssuerClient {
    issuer: IssuerUrl,
    agent: ureq::Agent,
    /// Whether `--issuer-ca` was given (for the hint of a refused certificate).
    ca_given: bool,
}

impl IssuerClient {
    /// Builds the HTTP agent: rustls on *ring*, trusting only `ca_file` when given (else the
    /// webpki roots), 5 s to connect, 15 s per request, and no redirects at all. Token and
    /// device requests carry secrets and must never be replayed to another host; nothing the
    /// plugin asks for is legitimately redirected.
    pub(crate) fn new(issuer: &IssuerUrl, ca_file: Option<&Path>) -> Result<Self, IssuerError> {
        Self::with_timeouts(issuer, ca_file, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
    }

    /// The same client with other bounds: for calls that are a courtesy to the issuer (ending
    /// a session found exposed) and must not hold the person up for long.
    pub(crate) fn with_timeouts(
        issuer: &IssuerUrl,
        ca_file: Option<&Path>,
        connect: Duration,
        request: Duration,
    ) -> Result<Self, IssuerError> {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(connect)
            .timeout(request)
            .redirects(0)
            .user_agent(USER_AGENT);
        if let Some(path) = ca_file {
            builder = builder.tls_config(tls_config_trusting(path)?);
        }
        Ok(Self {
            issuer: issuer.clone(),
            agent: builder.build(),
            ca_given: ca_file.is_some(),
        })
    }

    /// The issuer URL.
    pub(crate) fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// Whether the issuer is a plain-http loopback URL (development only).
    pub(crate) fn issuer_is_http(&self) -> bool {
        self.issuer.is_http()
    }

    /// Fetches the discovery document, checks that it names this issuer, and picks the endpoints.
    pub(crate) fn discover(&self) -> Result<Endpoints, IssuerError> {
        let url = format!("{}{PATH_DISCOVERY}", self.issuer);
        let result = self
            .agent
            .get(&url)
            .set("Accept", "application/json")
            .call();
        let doc: DiscoveryDocument = self
            .read_json(&url, result)
            .map_err(|e| self.not_an_issuer(&url, e))?;
        if normalize_issuer(&doc.issuer).ok().as_ref() != Some(&self.issuer) {
            return Err(IssuerError::IssuerMismatch {
                issuer: self.issuer().to_owned(),
                url,
                found: doc.issuer.clone(),
            });
        }
        let default = |path: &str| format!("{}{path}", self.issuer);
        Ok(Endpoints {
            device_authorization: self.check_endpoint(
                doc.device_authorization_endpoint
                    .unwrap_or_else(|| default(PATH_DEVICE_AUTHORIZATION)),
            )?,
            token: self.check_endpoint(doc.token_endpoint)?,
            revocation: self.check_endpoint(
                doc.revocation_endpoint
                    .unwrap_or_else(|| default(PATH_REVOKE)),
            )?,
        })
    }

    /// The issuer's public list of clusters (for `setup`).
    pub(crate) fn clusters(&self) -> Result<credential_shared::api::ClusterList, IssuerError> {
        let url = format!("{}{}", self.issuer, credential_shared::api::PATH_CLUSTERS);
        let result = self
            .agent
            .get(&url)
            .set("Accept", "application/json")
            .call();
        self.read_json(&url, result)
    }

    /// Files an access request with the caller's access token.
    pub(crate) fn file_request(
        &self,
        token: &Secret,
        body: &credential_shared::api::NewAccessRequest,
    ) -> Result<credential_shared::api::AccessRequestInfo, IssuerError> {
        let url = format!("{}{}", self.issuer, credential_shared::api::PATH_REQUESTS);
        let result = self
            .agent
            .post(&url)
            .set("Accept", "application/json")
            .set("Authorization", &format!("Bearer {}", token.expose()))
            .send_json(body);
        self.read_api(&url, result)
    }

    /// The roles the caller may request on the token's cluster.
    pub(crate) fn roles(
        &self,
        token: &Secret,
    ) -> Result<credential_shared::api::RoleList, IssuerError> {
        self.get_api(credential_shared::api::PATH_ROLES, token)
    }

    /// The caller's access requests.
    pub(crate) fn my_requests(
        &self,
        token: &Secret,
    ) -> Result<credential_shared::api::AccessRequestList, IssuerError> {
        self.get_api(credential_shared::api::PATH_REQUESTS, token)
    }

    /// `GET path` of the requests API with the caller's access token.
    fn get_api<T: DeserializeOwned>(&self, path: &str, token: &Secret) -> Result<T, IssuerError> {
        let url = format!("{}{path}", self.issuer);
        let result = self
            .agent
            .get(&url)
            .set("Accept", "application/json")
            .set("Authorization", &format!("Bearer {}", token.expose()))
            .call();
        self.read_api(&url, result)
    }

    /// One of the caller's requests, waiting at most `timeout` (a `get` checking a pending
    /// request must not hold kubectl up).
    pub(crate) fn request_status(
        &self,
        token: &Secret,
        id: &str,
        timeout: Duration,
    ) -> Result<credential_shared::api::AccessRequestInfo, IssuerError> {
        let id: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
        let url = format!(
            "{}{}/{id}",
            self.issuer,
            credential_shared::api::PATH_REQUESTS
        );
        let result = self
            .agent
            .get(&url)
            .timeout(timeout)
            .set("Accept", "application/json")
            .set("Authorization", &format!("Bearer {}", token.expose()))
            .call();
        self.read_api(&url, result)
    }

    /// Like `read_json`, for the requests API, whose errors are `ApiErrorBody`s.
    fn read_api<T: DeserializeOwned>(
        &self,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, IssuerError> {
        match result {
            Err(ureq::Error::Status(status, response)) => {
                Err(self.error_answer(url, status, response, true))
            }
            other => self.read_json(url, other),
        }
    }

    /// Starts the device flow for `cluster`.
    pub(crate) fn authorize_device(
        &self,
        endpoints: &Endpoints,
        client_id: &str,
        cluster: &str,
    ) -> Result<DeviceAuthorizationResponse, IssuerError> {
        let form = DeviceAuthorizationRequest {
            client_id: client_id.to_owned(),
            scope: None,
            cluster: cluster.to_owned(),
        };
        self.post_form(&endpoints.device_authorization, &form)
    }

    /// One poll of the token endpoint with the device code. `authorization_pending` and
    /// `slow_down` come back as [`IssuerError::OAuth`], for the caller to keep polling.
    pub(crate) fn poll_device(
        &self,
        endpoints: &Endpoints,
        client_id: &str,
        device_code: &Secret,
    ) -> Result<TokenResponse, IssuerError> {
        let form = TokenRequest {
            grant_type: GRANT_DEVICE_CODE.to_owned(),
            client_id: client_id.to_owned(),
            device_code: Some(device_code.expose().to_owned()),
            refresh_token: None,
        };
        self.post_form(&endpoints.token, &form)
    }

    /// Exchanges a refresh token for a new access token and a new refresh token (the presented
    /// one is spent).
    pub(crate) fn refresh(
        &self,
        endpoints: &Endpoints,
        client_id: &str,
        refresh_token: &Secret,
    ) -> Result<TokenResponse, IssuerError> {
        let form = TokenRequest {
            grant_type: GRANT_REFRESH_TOKEN.to_owned(),
            client_id: client_id.to_owned(),
            device_code: None,
            refresh_token: Some(refresh_token.expose().to_owned()),
        };
        self.post_form(&endpoints.token, &form)
    }

    /// Revokes a refresh token, and with it the session (RFC 7009).
    pub(crate) fn revoke(
        &self,
        endpoints: &Endpoints,
        client_id: &str,
        refresh_token: &Secret,
    ) -> Result<(), IssuerError> {
        let form = RevocationRequest {
            token: refresh_token.expose().to_owned(),
            token_type_hint: Some("refresh_token".to_owned()),
            client_id: client_id.to_owned(),
        };
        let url = &endpoints.revocation;
        let result = self.send_form(url, &form)?;
        self.check_status(url, result).map(drop)
    }

    fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &impl Serialize,
    ) -> Result<T, IssuerError> {
        let result = self.send_form(url, form)?;
        self.read_json(url, result)
    }

    fn send_form(
        &self,
        url: &str,
        form: &impl Serialize,
    ) -> Result<Result<ureq::Response, ureq::Error>, IssuerError> {
        let body = serde_urlencoded::to_string(form).map_err(IssuerError::Encode)?;
        Ok(self
            .agent
            .post(url)
            .set("Content-Type", "application/x-www-form-urlencoded")
            .set("Accept", "application/json")
            .send_string(&body))
    }

    fn read_json<T: DeserializeOwned>(
        &self,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, IssuerError> {
        let response = self.check_status(url, result)?;
        response
            .into_json()
            .map_err(|source| IssuerError::Malformed {
                issuer: self.issuer().to_owned(),
                url: url.to_owned(),
                source,
            })
    }

    /// Sorts a response into success (2xx), an OAuth error (a JSON error body on 400 or 401),
    /// any other status, or a transport failure.
    fn check_status(
        &self,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, IssuerError> {
        match result {
            Ok(response) if (200..300).contains(&response.status()) => Ok(response),
            // 1xx/3xx: with redirects off, ureq hands a redirect back as a response.
            Ok(response) => Err(IssuerError::Status {
                issuer: self.issuer().to_owned(),
                url: url.to_owned(),
                status: response.status(),
                retry_after: None,
            }),
            Err(ureq::Error::Status(status, response)) => {
                Err(self.error_answer(url, status, response, false))
            }
            Err(ureq::Error::Transport(transport)) => {
                if let Some(answer) = self.speaks_https(&transport) {
                    return Err(answer);
                }
                Err(IssuerError::Unreachable {
                    issuer: self.issuer().to_owned(),
                    tls: is_tls_error(&transport),
                    ca_given: self.ca_given,
                    source: Box::new(transport),
                })
            }
        }
    }

    /// For a plain-http issuer, a server that answered but not in HTTP: the issuer (or some
    /// other TLS server) listens there with https, and the person is told the URL to use.
    fn speaks_https(&self, transport: &ureq::Transport) -> Option<IssuerError> {
        if !self.issuer.is_http() {
            return None;
        }
        let garbled = match transport.kind() {
            ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader => true,
            ureq::ErrorKind::Io => transport.to_string().contains("didn't end with"),
            _ => false,
        };
        if !garbled {
            return None;
        }
        // A TLS record starts with its type (alert 21, handshake 22) and version major 3;
        // ureq quotes the bytes it read.
        let text = transport.to_string();
        let tls = text.contains("[21, 3, ") || text.contains("[22, 3, ");
        Some(IssuerError::SpeaksHttps {
            issuer: self.issuer().to_owned(),
            https: format!("https{}", &self.issuer()["http".len()..]),
            tls,
        })
    }

    /// A discovery request that got an answer which is not this issuer's document: a status
    /// that says there is no such document here, or a body that is not one.
    fn not_an_issuer(&self, url: &str, err: IssuerError) -> IssuerError {
        let missing = match &err {
            IssuerError::Status { status, .. } => matches!(status, 401 | 403 | 404 | 405),
            IssuerError::OAuth { status, .. } | IssuerError::Api { status, .. } => {
                matches!(status, 401 | 403 | 404)
            }
            IssuerError::Malformed { .. } => true,
            _ => false,
        };
        if missing {
            IssuerError::NotAnIssuer {
                issuer: self.issuer().to_owned(),
                url: url.to_owned(),
            }
        } else {
            err
        }
    }

    /// What an error status (4xx, 5xx) from `url` says, with the issuer's explanation when its
    /// body has one: the requests API's `ApiErrorBody` (when `api`), else an OAuth error on
    /// 400, 401, 429 and 5xx (a refusal, or why it cannot serve now, and its `Retry-After`),
    /// else the bare status.
    fn error_answer(
        &self,
        url: &str,
        status: u16,
        response: ureq::Response,
        api: bool,
    ) -> IssuerError {
        let retry_after = retry_after(&response);
        // ureq bounds a body read as a string (10 MB); what is printed of it is bounded again.
        let body = response.into_string().unwrap_or_default();
        if api {
            let parsed = serde_json::from_str::<credential_shared::api::ApiErrorBody>(&body);
            match parsed {
                Ok(b) if status < 500 || !b.message.is_empty() => {
                    return IssuerError::Api {
                        issuer: self.issuer().to_owned(),
                        status,
                        message: b.message,
                    }
                }
                Err(_) if status < 500 => {
                    return IssuerError::Api {
                        issuer: self.issuer().to_owned(),
                        status,
                        message: format!("HTTP {status}"),
                    }
                }
                _ => {}
            }
        }
        if matches!(status, 400 | 401) || is_busy(status) {
            if let Ok(error) = serde_json::from_str::<OAuthError>(&body) {
                return IssuerError::OAuth {
                    issuer: self.issuer().to_owned(),
                    status,
                    error,
                    retry_after,
                };
            }
        }
        IssuerError::Status {
            issuer: self.issuer().to_owned(),
            url: url.to_owned(),
            status,
            retry_after,
        }
    }

    /// Accepts an endpoint from the discovery document only as https (or plain http when the
    /// issuer itself is a plain-http loopback URL), so that discovery cannot downgrade the
    /// requests that carry secrets.
    fn check_endpoint(&self, endpoint: String) -> Result<String, IssuerError> {
        let ok = url::Url::parse(&endpoint).is_ok_and(|u| {
            u.scheme() == "https" || (u.scheme() == "http" && self.issuer.is_http())
        });
        if ok {
            Ok(endpoint)
        } else {
            Err(IssuerError::BadEndpoint {
                issuer: self.issuer().to_owned(),
                endpoint,
            })
        }
    }
}

/// Checks that `--issuer-ca` can be used (a readable PEM bundle of CA certificates) without
/// connecting: a local mistake is reported as such before anything about the network.
pub(crate) fn check_ca(path: &Path) -> Result<(), IssuerError> {
    tls_config_trusting(path).map(drop)
}

/// A rustls configuration that trusts exactly the certificates in the PEM file at `path`.
fn tls_config_trusting(path: &Path) -> Result<Arc<rustls::ClientConfig>, IssuerError> {
    let pem = std::fs::read(path).map_err(|source| IssuerError::CaRead {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| IssuerError::CaRead {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })?;
        roots.add(cert).map_err(|source| IssuerError::CaInvalid {
            path: path.to_owned(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(IssuerError::CaEmpty {
            path: path.to_owned(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(IssuerError::TlsSetup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether a transport error is rustls refusing the connection. ureq wraps the rustls error in
/// an `io::Error`, whose `source()` skips the wrapped error, so look inside those by hand.
fn is_tls_error(transport: &ureq::Transport) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = transport.source();
    while let Some(err) = next {
        if err.is::<rustls::Error>() {
            return true;
        }
        next = match err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpListener;
    use std::thread;

    use super::*;
    use crate::exit::{EXIT_ISSUER, EXIT_USAGE};

    /// A small HTTP/1.1 server on 127.0.0.1:0 that answers each accepted connection with the
    /// next canned response (made from its own base URL) and returns the requests it read.
    /// Bound before the client starts: no port race, no readiness wait.
    fn serve(
        responses: impl FnOnce(&str) -> Vec<(u16, String)>,
    ) -> (String, thread::JoinHandle<Vec<String>>) {
        serve_with_headers(|base| {
            responses(base)
                .into_iter()
                .map(|(status, body)| (status, String::new(), body))
                .collect()
        })
    }

    /// [`serve`] with extra header lines (each ending in `\r\n`) in each response.
    fn serve_with_headers(
        responses: impl FnOnce(&str) -> Vec<(u16, String, String)>,
    ) -> (String, thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let base = format!("http://{addr}");
        let responses = responses(&base);
        let handle = thread::spawn(move || {
            let mut requests = Vec::new();
            for (status, headers, body) in responses {
                let Ok((stream, _)) = listener.accept() else {
                    break;
                };
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                let mut content_length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        content_length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body_in = vec![0; content_length];
                let _ = reader.read_exact(&mut body_in);
                requests.push(format!("{head}\r\n{}", String::from_utf8_lossy(&body_in)));
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            requests
        });
        (base, handle)
    }

    fn canned(responses: &[(u16, &str)]) -> impl FnOnce(&str) -> Vec<(u16, String)> {
        let responses: Vec<_> = responses
            .iter()
            .map(|(s, b)| (*s, (*b).to_owned()))
            .collect();
        move |_| responses
    }

    fn client(issuer: &str) -> IssuerClient {
        let issuer = normalize_issuer(issuer).unwrap_or_else(|e| panic!("{e}"));
        IssuerClient::new(&issuer, None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn endpoints(base: &str) -> Endpoints {
        Endpoints {
            device_authorization: format!("{base}/oauth/device_authorization"),
            token: format!("{base}/oauth/token"),
            revocation: format!("{base}/oauth/revoke"),
        }
    }

    #[test]
    fn discovery_checks_the_issuer_and_falls_back_to_default_paths() {
        let (base, server) = serve(|base| {
            vec![
                (
                    200,
                    format!(
                        r#"{{"issuer":"{base}/","token_endpoint":"{base}/t","jwks_uri":"{base}/j","extra":1}}"#
                    ),
                ),
                (
                    200,
                    format!(
                        r#"{{"issuer":"https://elsewhere.example","token_endpoint":"{base}/t","jwks_uri":"{base}/j"}}"#
                    ),
                ),
                (
                    200,
                    format!(
                        r#"{{"issuer":"{base}","token_endpoint":"ftp://x/t","jwks_uri":"{base}/j"}}"#
                    ),
                ),
            ]
        });
        let c = client(&base);
        let ep = c.discover().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ep.token, format!("{base}/t"));
        assert_eq!(
            ep.device_authorization,
            format!("{base}/oauth/device_authorization")
        );
        assert_eq!(ep.revocation, format!("{base}/oauth/revoke"));
        let err = c.discover().err();
        assert!(
            matches!(err, Some(IssuerError::IssuerMismatch { .. })),
            "{err:?}"
        );
        let err = c.discover().err();
        assert!(
            matches!(err, Some(IssuerError::BadEndpoint { .. })),
            "{err:?}"
        );
        let requests = server.join().unwrap_or_default();
        assert!(requests[0].starts_with("GET /.well-known/openid-configuration "));
    }

    #[test]
    fn oauth_errors_statuses_and_transport_failures_are_told_apart() {
        let (base, server) = serve(canned(&[
            (400, r#"{"error":"authorization_pending"}"#),
            (400, r#"{"error":"slow_down","error_description":"easy"}"#),
            (503, "busy"),
            (302, ""),
            (200, "not json"),
        ]));
        let c = client(&base);
        let ep = endpoints(&base);
        let code = Secret::new("DC".to_owned());
        let err = c.poll_device(&ep, "kubectl-credential", &code).err();
        assert_eq!(
            err.as_ref().and_then(IssuerError::oauth_code),
            Some(OAuthErrorCode::AuthorizationPending)
        );
        let err = c.poll_device(&ep, "kubectl-credential", &code).err();
        assert_eq!(
            err.as_ref().and_then(IssuerError::oauth_code),
            Some(OAuthErrorCode::SlowDown)
        );
        let err = c.poll_device(&ep, "kubectl-credential", &code).err();
        assert!(
            matches!(&err, Some(e @ IssuerError::Status { status: 503, .. }) if e.is_transient())
        );
        let err = c.poll_device(&ep, "kubectl-credential", &code).err();
        assert!(
            matches!(err, Some(IssuerError::Status { status: 302, .. })),
            "{err:?}"
        );
        let err = c.poll_device(&ep, "kubectl-credential", &code).err();
        assert!(
            matches!(err, Some(IssuerError::Malformed { .. })),
            "{err:?}"
        );
        let requests = server.join().unwrap_or_default();
        assert!(
            requests[0].starts_with("POST /oauth/token "),
            "{}",
            requests[0]
        );
        assert!(requests[0].ends_with(
            "\r\n\r\ngrant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=kubectl-credential&device_code=DC"
        ), "{}", requests[0]);

        // Nothing listens any more: a transport error, exit code 4, not TLS.
        let err = c.poll_device(&ep, "kubectl-credential", &code).err();
        assert!(
            matches!(&err, Some(IssuerError::Unreachable { tls: false, .. })),
            "{err:?}"
        );
        assert_eq!(err.map(|e| e.exit_code()), Some(EXIT_ISSUER));
    }

    #[test]
    fn an_issuer_that_cannot_serve_now_is_heard_out() {
        let unavailable = r#"{"error":"temporarily_unavailable","error_description":"the identity provider cannot be reached; try again shortly"}"#;
        let (base, server) = serve_with_headers(move |_| {
            vec![
                (503, "Retry-After: 7\r\n".to_owned(), unavailable.to_owned()),
                (503, String::new(), unavailable.to_owned()),
                (
                    429,
                    "Retry-After: 60\r\n".to_owned(),
                    r#"{"error":"slow_down","error_description":"too many sign-ins started from this address; try again in 60 s"}"#.to_owned(),
                ),
                (
                    502,
                    "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n".to_owned(),
                    "<html>bad gateway</html>".to_owned(),
                ),
                (500, "Retry-After: 99999999999999999999999\r\n".to_owned(), r#"{"error":"server_error","error_description":"internal error; see the issuer's log"}"#.to_owned()),
            ]
        });
        let c = client(&base);
        let ep = endpoints(&base);
        let rt = Secret::new("RT".to_owned());

        let err = c
            .refresh(&ep, "kubectl-credential", &rt)
            .err()
            .unwrap_or_else(|| panic!("refresh succeeded"));
        assert_eq!(
            err.retry(),
            Some(Retry::Later {
                status: 503,
                retry_after: Some(7),
                description: Some("the identity provider cannot be reached; try again shortly"),
            })
        );
        assert_eq!(err.exit_code(), EXIT_ISSUER);
        let text = err.to_string();
        assert!(
            text.ends_with("cannot serve the request now (HTTP 503): temporarily_unavailable: the identity provider cannot be reached; try again shortly; it asks to wait 7 s"),
            "{text}"
        );

        // No Retry-After: the same, without a wait (the caller picks a short one).
        let err = c.refresh(&ep, "kubectl-credential", &rt).err();
        assert!(
            matches!(
                err.as_ref().and_then(IssuerError::retry),
                Some(Retry::Later {
                    status: 503,
                    retry_after: None,
                    description: Some(_)
                })
            ),
            "{err:?}"
        );

        // A rate limit on starting sign-ins: the reason is shown, not just "HTTP 429".
        let err = c
            .authorize_device(&ep, "kubectl-credential", "prod")
            .err()
            .unwrap_or_else(|| panic!("authorized"));
        assert_eq!(err.oauth_code(), Some(OAuthErrorCode::SlowDown));
        assert!(
            err.to_string().contains(
                "(HTTP 429): slow_down: too many sign-ins started from this address; try again in 60 s; it asks to wait 60 s"
            ),
            "{err}"
        );
        assert!(matches!(
            err.retry(),
            Some(Retry::Later {
                status: 429,
                retry_after: Some(60),
                ..
            })
        ));

        // A proxy's page, with a date: the bare status, no wait read from it.
        let err = c.refresh(&ep, "kubectl-credential", &rt).err();
        assert!(
            matches!(
                &err,
                Some(IssuerError::Status {
                    status: 502,
                    retry_after: None,
                    ..
                })
            ),
            "{err:?}"
        );
        // A number too large is the largest (bounded by the caller), not a parse failure.
        let err = c.refresh(&ep, "kubectl-credential", &rt).err();
        assert!(
            matches!(
                err.as_ref().and_then(IssuerError::retry),
                Some(Retry::Later {
                    status: 500,
                    retry_after: Some(u64::MAX),
                    description: Some("internal error; see the issuer's log"),
                })
            ),
            "{err:?}"
        );
        let _ = server.join();
    }

    #[test]
    fn the_requests_api_explains_server_errors_too() {
        let (base, server) = serve(canned(&[
            (
                503,
                r#"{"error":"server_error","message":"the database is unavailable"}"#,
            ),
            (
                403,
                r#"{"error":"forbidden","message":"no role lets you ask for admin"}"#,
            ),
            (500, "oops"),
        ]));
        let c = client(&base);
        let token = Secret::new("AT".to_owned());
        let err = c.my_requests(&token).err();
        let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            text.ends_with("cannot serve the request now (HTTP 503): the database is unavailable"),
            "{text}"
        );
        assert_eq!(err.map(|e| e.exit_code()), Some(EXIT_ISSUER));
        let err = c.my_requests(&token).err();
        let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            text.ends_with("refused: no role lets you ask for admin"),
            "{text}"
        );
        let err = c.my_requests(&token).err();
        assert!(
            matches!(err, Some(IssuerError::Status { status: 500, .. })),
            "{err:?}"
        );
        let _ = server.join();
    }

    #[test]
    fn revocation_sends_the_refresh_token_with_its_hint() {
        let (base, server) = serve(canned(&[(200, "")]));
        client(&base)
            .revoke(
                &endpoints(&base),
                "kubectl-credential",
                &Secret::new("RT 1".to_owned()),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let requests = server.join().unwrap_or_default();
        assert!(requests[0].starts_with("POST /oauth/revoke "));
        assert!(
            requests[0].ends_with(
                "\r\n\r\ntoken=RT+1&token_type_hint=refresh_token&client_id=kubectl-credential"
            ),
            "{}",
            requests[0]
        );
    }

    #[test]
    fn issuer_ca_must_hold_certificates() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let empty = tmp.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap_or_else(|e| panic!("{e}"));
        let err = tls_config_trusting(&empty).err();
        assert!(matches!(err, Some(IssuerError::CaEmpty { .. })), "{err:?}");
        let err = tls_config_trusting(&tmp.path().join("missing.pem")).err();
        assert!(matches!(&err, Some(IssuerError::CaRead { .. })), "{err:?}");
        assert_eq!(err.map(|e| e.exit_code()), Some(EXIT_USAGE));
    }

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        // A server that answers a TLS ClientHello with plain HTTP: rustls fails the handshake.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let server = thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let issuer = normalize_issuer(&format!("https://{addr}")).unwrap_or_else(|e| panic!("{e}"));
        let c = IssuerClient::new(&issuer, None).unwrap_or_else(|e| panic!("{e}"));
        let err = c.discover().err();
        assert!(
            matches!(&err, Some(IssuerError::Unreachable { tls: true, .. })),
            "{err:?}"
        );
        assert!(err
            .as_ref()
            .and_then(IssuerError::hint)
            .is_some_and(|h| h.contains("--issuer-ca")));
        let _ = server.join();
    }

    /// A TLS server reached with `http://`: it reads the plain request as a bad handshake and
    /// answers with a TLS alert, which ureq cannot read as a status line.
    #[test]
    fn an_http_url_to_a_tls_server_names_the_https_url() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let server = thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0; 512];
                let _ = stream.read(&mut buf);
                // A decode_error alert, as rustls sends it.
                let _ = stream.write_all(&[21, 3, 3, 0, 2, 2, 50]);
            }
        });
        let err = client(&format!("http://{addr}")).discover().err();
        let Some(err @ IssuerError::SpeaksHttps { tls: true, .. }) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            err.to_string(),
            format!(
                "the server at http://{addr} did not answer in plain HTTP (it answered with TLS); \
                 the issuer speaks https: use --issuer https://{addr}"
            )
        );
        assert_eq!(err.exit_code(), EXIT_USAGE);
        assert!(!err.is_transient(), "a wrong URL is not retried later");
        let _ = server.join();
    }

    /// A server that answers, but without the issuer's discovery document (an API server says
    /// 401 or 403 to an anonymous caller, a web server 404, a page HTML): not an issuer.
    #[test]
    fn a_server_without_discovery_is_not_an_issuer() {
        let (base, server) = serve(canned(&[
            (401, r#"{"kind":"Status","code":401}"#),
            (403, r#"{"kind":"Status","code":403}"#),
            (404, "404 page not found"),
            (200, "<html>hello</html>"),
            (503, "busy"),
        ]));
        let c = client(&base);
        for _ in 0..4 {
            let err = c.discover().err();
            let Some(err @ IssuerError::NotAnIssuer { .. }) = err else {
                panic!("{err:?}")
            };
            assert_eq!(
                err.to_string(),
                format!(
                    "{base} is not a credential issuer (no OpenID discovery at \
                     {base}/.well-known/openid-configuration); the issuer URL is the one your \
                     platform team gave, e.g. https://issuer.example.com, not the Kubernetes API \
                     server's"
                )
            );
            assert_eq!(err.exit_code(), EXIT_USAGE);
        }
        // An issuer that cannot serve now is still an issuer: tried again later.
        let err = c.discover().err();
        assert!(
            matches!(&err, Some(e @ IssuerError::Status { status: 503, .. }) if e.is_transient()),
            "{err:?}"
        );
        let _ = server.join();
    }

    /// With --issuer-ca given, a refused certificate means the URL is probably not the
    /// issuer's: the hint says so instead of asking for the flag already passed.
    #[test]
    fn a_refused_certificate_with_issuer_ca_points_at_the_url() {
        let unreachable = |ca_given| IssuerError::Unreachable {
            issuer: "https://x".to_owned(),
            source: Box::new(
                ureq::get("http://[::1]:1")
                    .call()
                    .err()
                    .and_then(ureq::Error::into_transport)
                    .unwrap_or_else(|| panic!("no transport error")),
            ),
            tls: true,
            ca_given,
        };
        let hint = unreachable(true).hint().unwrap_or_default();
        assert!(hint.contains("not the Kubernetes API server's"), "{hint}");
        assert!(!hint.contains("pass that CA"), "{hint}");
        let hint = unreachable(false).hint().unwrap_or_default();
        assert!(
            hint.contains("pass that CA's PEM bundle with --issuer-ca"),
            "{hint}"
        );
    }
}
