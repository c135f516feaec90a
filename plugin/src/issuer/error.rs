//! Why a request to the issuer failed, in words the person can act on, and whether trying again
//! later may work (what the back-off and the device-flow polling need to know).

use std::io;
use std::path::PathBuf;

use credential_shared::oauth::{OAuthError, OAuthErrorCode};
use credential_shared::text::Untrusted;

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
pub(super) fn is_busy(status: u16) -> bool {
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
