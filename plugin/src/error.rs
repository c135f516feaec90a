//! The plugin's error type: what the user reads on stderr (which exit code each error ends the
//! run with is in [`crate::exit`]).

use std::error::Error as _;

use credential_shared::text::{self, Untrusted};

use crate::base::jwt::JwtError;
use crate::cache::{CacheError, Hold};
use crate::issuer::assertion::KeyError;
use crate::issuer::identity::IdentityError;
use crate::issuer::IssuerError;

/// Everything that can end a run early. The `Display` text is what the user reads after
/// `error: `; causes follow it, and [`Error::hint`] says what to do next where that is not
/// already in the message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// `KUBERNETES_EXEC_INFO` is not UTF-8.
    #[error("KUBERNETES_EXEC_INFO is not valid UTF-8")]
    ExecInfoNotUnicode,
    /// `KUBERNETES_EXEC_INFO` is not an `ExecCredential` request.
    #[error("KUBERNETES_EXEC_INFO is not a valid ExecCredential request")]
    ExecInfoInvalid(#[source] serde_json::Error),
    /// kubectl speaks a protocol version this plugin does not.
    #[error(
        "KUBERNETES_EXEC_INFO asks for apiVersion \"{}\"; this plugin speaks \
         client.authentication.k8s.io/v1 and client.authentication.k8s.io/v1beta1",
        Untrusted::new(.0)
    )]
    UnsupportedApiVersion(String),
    /// `get` found nothing usable and may not ask the person (kubectl runs it non-interactively).
    #[error(
        "no valid credential for cluster \"{}\" at {}; run: {}",
        Untrusted::new(cluster),
        Untrusted::new(issuer),
        Untrusted::long(login_command)
    )]
    LoginRequired {
        /// `--cluster`.
        cluster: String,
        /// `--issuer`.
        issuer: String,
        /// The command that fixes it.
        login_command: String,
    },
    /// The person denied the sign-in request.
    #[error("the sign-in was denied")]
    AccessDenied,
    /// The device code expired before it was approved.
    #[error("the code expired; run the command again")]
    CodeExpired,
    /// An access request was denied or expired while `--wait` waited.
    #[error("access request {} was {}{}", Untrusted::new(id), Untrusted::new(status), comment.as_deref().map(|c| format!(": {}", Untrusted::long(c))).unwrap_or_default())]
    RequestNotApproved {
        /// Request id.
        id: String,
        /// `denied`, `expired`, `cancelled`.
        status: String,
        /// The decider's comment.
        comment: Option<String>,
    },
    /// The person pressed Ctrl-C during the sign-in.
    #[error("sign-in cancelled; nothing was stored")]
    Cancelled,
    /// The token endpoint returned something that is not a JWT with the expected claims.
    #[error(
        "the issuer at {} returned an access token that cannot be read",
        Untrusted::new(issuer)
    )]
    MalformedToken {
        /// `--issuer`.
        issuer: String,
        /// What is wrong with it.
        #[source]
        source: JwtError,
    },
    /// `logout` deleted the local session but could not revoke it at the issuer.
    #[error("deleted the local session, but the issuer could not revoke it, so it stays valid there until it expires")]
    RevokeFailed(#[source] IssuerError),
    /// `logout --all` deleted every local session, but some could not be revoked at their
    /// issuer (unreachable, or not known for entries written by an older version).
    #[error(
        "deleted every local session, but {count} of them could not be revoked at the issuer, \
         so they stay valid there until they expire"
    )]
    SomeNotRevoked {
        /// How many.
        count: usize,
    },
    /// A request to the issuer failed.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// The token cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The kubeconfig sends this cluster's requests to another API server than the issuer has
    /// configured for it.
    #[error("the kubeconfig sends requests for cluster \"{}\" to {}, but the issuer's API server for it is {}; the token was not handed out. Fix the kubeconfig's `server` (kubectl credential setup writes the right one)", Untrusted::new(cluster), Untrusted::new(requested), Untrusted::new(expected))]
    ApiServerMismatch {
        /// `--cluster`.
        cluster: String,
        /// `spec.cluster.server` from kubectl.
        requested: String,
        /// What the issuer said.
        expected: String,
    },
    /// A recent attempt to reach the issuer failed, or the issuer asked to wait; non-interactive
    /// calls wait before trying again, so that a tool polling the cluster neither hangs nor
    /// hammers the issuer.
    #[error(
        "{}; not trying again for {retry_in} s (to retry now, run: {})",
        held_off_because(issuer, hold),
        Untrusted::long(login_command)
    )]
    BackingOff {
        /// The issuer.
        issuer: String,
        /// Seconds until the next attempt.
        retry_in: i64,
        /// Why: unreachable, or what the issuer answered.
        hold: Hold,
        /// What to run to retry at once.
        login_command: String,
    },
    /// The sign-in was approved by another account than `--username` names.
    #[error("the sign-in was approved as {:?}, but this entry signs in as {:?}; the session was ended. Sign in again as {:?}", Untrusted::new(signed_in), Untrusted::new(expected), Untrusted::new(expected))]
    WrongAccount {
        /// `--username`.
        expected: String,
        /// Who approved.
        signed_in: String,
    },
    /// Another process has been signing in for this key longer than a device code lives.
    #[error(
        "another kubectl-credential has been signing in to cluster \"{}\" for over 11 minutes; \
         finish or cancel that sign-in (it holds {})", Untrusted::new(cluster), Untrusted::long(lock.display())
    )]
    SignInBusy {
        /// `--cluster`.
        cluster: String,
        /// The lock file.
        lock: std::path::PathBuf,
    },
    /// `setup` could not merge or write the kubeconfig.
    #[error(transparent)]
    Setup(#[from] crate::kubeconfig::setup::SetupError),
    /// The flags do not name a cluster, and the kubeconfig entry does not either.
    #[error(transparent)]
    Target(#[from] crate::kubeconfig::TargetError),
    /// The credential could not be written to stdout (kubectl went away).
    #[error("could not write the credential to stdout")]
    Stdout(#[source] std::io::Error),
    /// Machine mode, `--identity-token github-actions`: the runner gave the job no way to ask
    /// for a token.
    #[error(
        "{variable} is not set: a GitHub Actions job gets an identity token only with \
         `permissions: id-token: write` (in the workflow or the job)"
    )]
    GithubActionsNotSet {
        /// The missing variable.
        variable: &'static str,
    },
    /// Machine mode, `--identity-token env:NAME`: the variable is unset or empty.
    #[error(
        "--identity-token env:{}: the variable is not set or is empty",
        Untrusted::new(name)
    )]
    IdentityEnvNotSet {
        /// The variable's name.
        name: String,
    },
    /// Machine mode: the identity token (from a file or a variable) is not usable.
    #[error("--identity-token {}: {reason}", Untrusted::long(source_name))]
    IdentityToken {
        /// `file:PATH` or `env:NAME`.
        source_name: String,
        /// Why (not a regular file, too large, unreadable, empty).
        reason: String,
    },
    /// Machine mode: the CI platform's token endpoint did not hand out a token.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Machine mode: `--machine-key` cannot be used.
    #[error("--machine-key {}: {reason}", crate::base::term::path(path))]
    MachineKey {
        /// The key file.
        path: std::path::PathBuf,
        /// Why: unreadable, open to others, not ours, not a P-256 PKCS#8 key.
        reason: String,
    },
    /// Machine mode: the key could not sign (the system's random generator failed).
    #[error("cannot sign the machine's client assertion")]
    Assertion(#[source] KeyError),
    /// Machine mode: the issuer refused the identity token or the machine's assertion (its
    /// `error` and `error_description`, escaped, are in the message).
    #[error(transparent)]
    MachineRefused(IssuerError),
    /// `machine keygen`: the output file could not be written (it exists, or the path is not
    /// writable).
    #[error("cannot write the key to {}: {reason}", crate::base::term::path(path))]
    KeygenWrite {
        /// `--out`.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A time outside what RFC 3339 can express (a token expiring after year 9999).
    #[error("the token's expiry time {0} is out of range")]
    TimeOutOfRange(i64),
}

impl Error {
    /// What makes two errors "the same failure" for [`crate::flow::handout::told_this_caller`], when
    /// their text may differ: an issuer that could not serve the first call holds the next
    /// ones off with a message of its own (and a countdown). `None`: the text itself.
    pub(crate) fn repeat_topic(&self) -> Option<&'static str> {
        match self {
            Self::BackingOff { .. } => Some("the issuer is unavailable"),
            Self::Issuer(e) if e.is_transient() => Some("the issuer is unavailable"),
            _ => None,
        }
    }

    /// What to do next, when the message itself does not say.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Cache(CacheError::KeyringUnavailable(_)) => Some(
                "unlock it, or use `--token-cache=file` (stores tokens in files readable only by you \
                 under ~/.cache/kubectl-credential); KUBECTL_CREDENTIAL_TOKEN_CACHE=file does the same \
                 for every command",
            ),
            Self::Cache(_) => Some(
                "make the cache directory writable by you (it honours XDG_CACHE_HOME), \
                 or use `--token-cache=keyring`",
            ),
            Self::Issuer(e) | Self::RevokeFailed(e) | Self::MachineRefused(e) => e.hint(),
            _ => None,
        }
    }
}

/// The first half of [`Error::BackingOff`]'s message: what happened a moment ago.
fn held_off_because(issuer: &str, hold: &Hold) -> String {
    let issuer = Untrusted::new(issuer);
    let reason = |reason: &Option<String>| {
        reason
            .as_deref()
            .map(|r| format!(": {}", Untrusted::new(r)))
            .unwrap_or_default()
    };
    match hold {
        Hold::Unreachable => format!("the issuer at {issuer} could not be reached a moment ago"),
        Hold::Answered {
            wait,
            asked: true,
            reason: why,
            ..
        } => format!(
            "the issuer at {issuer} asked to wait {wait} s{}",
            reason(why)
        ),
        Hold::Answered {
            status,
            asked: false,
            reason: why,
            ..
        } => format!(
            "the issuer at {issuer} could not serve a request a moment ago (HTTP {status}){}",
            reason(why)
        ),
    }
}

/// Bound of the error line [`report`] prints: the messages escape and bound each outside
/// value, and the line as a whole is bounded again, since causes from libraries (serde's, ureq's,
/// the keyring's) may quote outside text too.
const REPORT_MAX: usize = 4 * text::LONG;

/// The error and its causes on one line, `anyhow`'s `{:#}` style (`outer: cause: root cause`),
/// then a `hint:` line if there is one. A cause whose text the line already holds is skipped:
/// some libraries repeat their source in their own message. The line goes through
/// [`text::escape`], so it is one line of printable text whatever a cause quotes.
pub(crate) fn report(err: &Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !line.contains(&cause_text) {
            line.push_str(": ");
            line.push_str(&cause_text);
        }
        source = cause.source();
    }
    let mut text = text::escape(&line, REPORT_MAX).into_owned();
    if let Some(hint) = err.hint() {
        text.push_str("\nhint: ");
        text.push_str(hint);
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use credential_shared::oauth::{OAuthError, OAuthErrorCode};

    use super::*;

    /// An issuer's OAuth error answer with `code`, for the tests here and in `exit`.
    pub(crate) fn oauth(code: OAuthErrorCode) -> Error {
        Error::Issuer(IssuerError::OAuth {
            issuer: "https://x".to_owned(),
            status: 400,
            error: OAuthError {
                error: code,
                error_description: Some("because".to_owned()),
            },
            retry_after: None,
        })
    }

    #[test]
    fn report_chains_causes_once_and_adds_the_hint() {
        let err = Error::Cache(CacheError::KeyringUnavailable(
            keyring::Error::NoStorageAccess("collection is locked".into()),
        ));
        let text = report(&err);
        assert_eq!(text.matches("collection is locked").count(), 1, "{text}");
        assert!(
            text.starts_with("the OS keyring is unavailable: "),
            "{text}"
        );
        assert!(
            text.contains("\nhint: unlock it, or use `--token-cache=file`"),
            "{text}"
        );
        assert!(report(&oauth(OAuthErrorCode::InvalidScope)).contains("invalid_scope: because"));
    }

    #[test]
    fn the_issuers_error_description_is_escaped_and_bounded() {
        let err = Error::Issuer(IssuerError::OAuth {
            issuer: "https://x".to_owned(),
            status: 400,
            retry_after: None,
            error: OAuthError {
                error: OAuthErrorCode::InvalidGrant,
                error_description: Some(format!(
                    "expired\x1b[2J\x1b]0;title\x07\nerror: all is fine\u{202e}{}",
                    "A".repeat(1 << 20)
                )),
            },
        });
        let text = report(&err);
        assert!(
            text.starts_with(
                r"the issuer at https://x refused the request: invalid_grant: expired\x1b[2J\x1b]0;title\x07\nerror: all is fine\u{202e}AAA"
            ),
            "{text}"
        );
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert_eq!(text.lines().count(), 1);
        assert!(
            text.chars().count() <= REPORT_MAX + text::MARKER_MAX,
            "{}",
            text.len()
        );
        // The Display text alone is bounded too.
        assert!(err.to_string().len() < 2 * text::LONG);
    }

    #[test]
    fn names_from_outside_are_escaped_in_every_message() {
        let evil = "prod\x1b[31m\nerror: fake";
        for err in [
            Error::LoginRequired {
                cluster: evil.into(),
                issuer: "https://x".into(),
                login_command: format!("kubectl credential login --cluster '{evil}'"),
            },
            Error::WrongAccount {
                expected: evil.into(),
                signed_in: evil.into(),
            },
            Error::ApiServerMismatch {
                cluster: evil.into(),
                requested: evil.into(),
                expected: evil.into(),
            },
            Error::RequestNotApproved {
                id: evil.into(),
                status: evil.into(),
                comment: Some(evil.into()),
            },
            Error::UnsupportedApiVersion(evil.into()),
            Error::Issuer(IssuerError::Api {
                issuer: "https://x".into(),
                status: 403,
                message: evil.into(),
            }),
            Error::Issuer(IssuerError::IssuerMismatch {
                issuer: "https://x".into(),
                url: evil.into(),
                found: evil.into(),
            }),
            Error::Setup(crate::kubeconfig::setup::SetupError::Conflict {
                path: evil.into(),
                kind: "user",
                name: evil.into(),
            }),
        ] {
            // The Display text itself, not only the report, must be clean: other messages
            // embed it.
            let text = err.to_string();
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert!(text.contains(r"prod\x1b[31m\nerror: fake"), "{text}");
        }
    }

    #[test]
    fn login_required_message_names_the_command() {
        let err = Error::LoginRequired {
            cluster: "prod".into(),
            issuer: "https://issuer.example:8443".into(),
            login_command:
                "kubectl credential login --issuer https://issuer.example:8443 --cluster prod"
                    .into(),
        };
        assert_eq!(
            report(&err),
            "no valid credential for cluster \"prod\" at https://issuer.example:8443; \
             run: kubectl credential login --issuer https://issuer.example:8443 --cluster prod"
        );
    }

    /// The flags of `get` for cluster `prod` at the example issuer, plus `extra`.
    fn get_args(extra: &[&str]) -> crate::base::target::Target {
        use clap::Parser as _;

        let args = [
            "kubectl-credential",
            "get",
            "--issuer",
            "https://issuer.example:8443",
            "--cluster",
            "prod",
        ];
        let cli = crate::cli::Cli::try_parse_from(args.iter().chain(extra))
            .unwrap_or_else(|e| panic!("{e}"));
        let crate::cli::Command::Get(get) = cli.command else {
            panic!("not get")
        };
        get.common.into()
    }

    /// `LoginRequired` as `get` builds it, so that a change to the suggested command shows up.
    fn login_required(extra: &[&str]) -> Error {
        let args = get_args(extra);
        Error::LoginRequired {
            cluster: args.cluster.clone(),
            issuer: args.issuer.to_string(),
            login_command: crate::base::target::login_command(&args),
        }
    }

    #[test]
    fn report_login_required() {
        insta::assert_snapshot!(report(&login_required(&[])), @r#"no valid credential for cluster "prod" at https://issuer.example:8443; run: kubectl credential login --issuer https://issuer.example:8443 --cluster prod"#);
        insta::assert_snapshot!(
            report(&login_required(&["--issuer-ca", "/etc/kubernetes/issuer ca.pem"])),
            @r#"no valid credential for cluster "prod" at https://issuer.example:8443; run: kubectl credential login --issuer https://issuer.example:8443 --cluster prod --issuer-ca '/etc/kubernetes/issuer ca.pem'"#
        );
        insta::assert_snapshot!(
            report(&login_required(&["--username", "alice-admin", "--token-cache", "file"])),
            @r#"no valid credential for cluster "prod" at https://issuer.example:8443; run: kubectl credential login --issuer https://issuer.example:8443 --cluster prod --token-cache file --username alice-admin"#
        );
    }

    #[test]
    fn report_keyring_unavailable_with_its_hint() {
        let err = Error::Cache(CacheError::KeyringUnavailable(
            keyring::Error::NoStorageAccess("the collection is locked".into()),
        ));
        insta::assert_snapshot!(report(&err), @r"
        the OS keyring is unavailable: Couldn't access platform secure storage: the collection is locked
        hint: unlock it, or use `--token-cache=file` (stores tokens in files readable only by you under ~/.cache/kubectl-credential); KUBECTL_CREDENTIAL_TOKEN_CACHE=file does the same for every command
        ");
    }

    #[test]
    fn report_issuer_unreachable_with_the_tls_hint() {
        use std::io::{Read as _, Write as _};
        use std::net::{Shutdown, TcpListener};

        // A server that answers the TLS ClientHello with plain HTTP: a real rustls failure,
        // reported through ureq exactly as a certificate from an unknown CA is (only the last
        // cause differs). It reads the hello first and waits for the client to hang up, so the
        // client sees the answer, not a connection reset.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let server = std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let _ = stream.read(&mut [0; 4096]);
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                let _ = stream.shutdown(Shutdown::Write);
                let _ = stream.read_to_end(&mut Vec::new());
            }
        });
        let issuer = crate::base::target::normalize_issuer(&format!("https://{addr}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let client =
            crate::issuer::IssuerClient::new(&issuer, None).unwrap_or_else(|e| panic!("{e}"));
        let err = client
            .discover()
            .err()
            .unwrap_or_else(|| panic!("discovery succeeded"));
        let _ = server.join();
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
        settings.bind(|| insta::assert_snapshot!(report(&Error::Issuer(err)), @r"
        could not reach the issuer at https://127.0.0.1:[PORT]: https://127.0.0.1:[PORT]/.well-known/openid-configuration: Connection Failed: tls connection init failed: received corrupt message of type InvalidContentType
        hint: the issuer's TLS certificate was not accepted; if it is signed by a private CA, pass that CA's PEM bundle with --issuer-ca FILE
        "));
    }

    #[test]
    fn report_wrong_account() {
        let err = Error::WrongAccount {
            expected: "alice-admin".into(),
            signed_in: "alice".into(),
        };
        insta::assert_snapshot!(report(&err), @r#"the sign-in was approved as "alice", but this entry signs in as "alice-admin"; the session was ended. Sign in again as "alice-admin""#);
    }

    fn backing_off(hold: Hold, retry_in: i64) -> Error {
        let args = get_args(&[]);
        Error::BackingOff {
            issuer: args.issuer.to_string(),
            retry_in,
            hold,
            login_command: crate::base::target::login_command(&args),
        }
    }

    #[test]
    fn report_backing_off() {
        insta::assert_snapshot!(report(&backing_off(Hold::Unreachable, 27)), @"the issuer at https://issuer.example:8443 could not be reached a moment ago; not trying again for 27 s (to retry now, run: kubectl credential login --issuer https://issuer.example:8443 --cluster prod)");
    }

    #[test]
    fn report_backing_off_after_the_issuer_asked_to_wait() {
        let asked = Hold::answered(
            503,
            Some(5),
            Some("the identity provider cannot be reached; try again shortly"),
        );
        insta::assert_snapshot!(report(&backing_off(asked, 4)), @"the issuer at https://issuer.example:8443 asked to wait 5 s: the identity provider cannot be reached; try again shortly; not trying again for 4 s (to retry now, run: kubectl credential login --issuer https://issuer.example:8443 --cluster prod)");
        insta::assert_snapshot!(report(&backing_off(Hold::answered(502, None, None), 3)), @"the issuer at https://issuer.example:8443 could not serve a request a moment ago (HTTP 502); not trying again for 3 s (to retry now, run: kubectl credential login --issuer https://issuer.example:8443 --cluster prod)");
        let evil = backing_off(
            Hold::answered(503, Some(5), Some("down\x1b[2J\nerror: ok")),
            2,
        );
        let text = evil.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn report_an_issuer_that_cannot_serve_now() {
        let err = Error::Issuer(IssuerError::OAuth {
            issuer: "https://issuer.example:8443".to_owned(),
            status: 503,
            error: OAuthError {
                error: OAuthErrorCode::TemporarilyUnavailable,
                error_description: Some(
                    "the identity provider cannot be reached; try again shortly".to_owned(),
                ),
            },
            retry_after: Some(5),
        });
        insta::assert_snapshot!(report(&err), @"the issuer at https://issuer.example:8443 cannot serve the request now (HTTP 503): temporarily_unavailable: the identity provider cannot be reached; try again shortly; it asks to wait 5 s");
    }

    #[test]
    fn report_sign_in_busy() {
        let err = Error::SignInBusy {
            cluster: "prod".into(),
            lock: "/home/alice/.cache/kubectl-credential/locks/0123abcd.lock".into(),
        };
        insta::assert_snapshot!(report(&err), @r#"another kubectl-credential has been signing in to cluster "prod" for over 11 minutes; finish or cancel that sign-in (it holds /home/alice/.cache/kubectl-credential/locks/0123abcd.lock)"#);
    }
}
