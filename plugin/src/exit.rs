//! The exit codes kubectl and scripts see, and which error ends the run with which: one table
//! here, so that a code means the same thing whichever layer failed.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | success; for `get`, one ExecCredential JSON document is on stdout |
//! | 1 | unexpected error (a bug, or stdout closed) |
//! | 2 | usage or bad input: bad flags, unreadable `--issuer-ca`, in machine mode an unusable `--machine-key` (unreadable, open to group or others, not ours, not a P-256 PKCS#8 key) or identity token (`env:` unset, `file:` not a regular file or over 16 KiB, GitHub Actions variables missing: the job needs `permissions: id-token: write`), `machine keygen --out` naming an existing file, an `http://` issuer URL that speaks https, a URL without OpenID discovery (not an issuer), a context whose kubeconfig entry does not name the cluster, malformed `KUBERNETES_EXEC_INFO`, unsupported `apiVersion` |
//! | 3 | login required: `get` is not interactive and has no usable session, or `whoami` found no session; run the printed `kubectl credential login` command |
//! | 4 | the issuer is unreachable or answered badly (network, TLS, HTTP 5xx, malformed JSON or token, unexpected OAuth error); in machine mode also the CI platform's token endpoint (GitHub Actions) unreachable or refusing; also `logout` (`--all`) when an issuer could not revoke a session (the local copy is deleted anyway) |
//! | 5 | sign-in refused: the request was denied, or the code expired before it was approved; in machine mode, the issuer refused the identity token or the machine's assertion (`invalid_grant`, `invalid_client`, `invalid_target`, ...: its `error` and `error_description` are printed) |
//! | 6 | token cache unavailable: keyring locked or missing, cache directory unwritable, a `--token-cache-file` that is a link, not ours or readable by others; `--token-cache=file` is the way out when there is no keyring |
//! | 7 | `setup` could not merge into or write the kubeconfig (malformed file, an entry of the same name that it did not write, an unwritable path) |
//! | 8 | an access request was refused by the issuer's policy (`request`), or denied or expired (`request --wait`) |
//! | 130 | cancelled with Ctrl-C during a sign-in (nothing was stored; the lock is released) |

use std::process::ExitCode;

use credential_shared::oauth::OAuthErrorCode;
use credential_shared::text::Untrusted;

use crate::base::cancel::EXIT_CANCELLED;
use crate::error::Error;
use crate::issuer::IssuerError;
use crate::kubeconfig::setup::SetupError;

/// Success.
pub(crate) const EXIT_OK: u8 = 0;
/// Unexpected error.
pub(crate) const EXIT_UNEXPECTED: u8 = 1;
/// Usage or bad input.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Login required and not possible here (non-interactive).
pub(crate) const EXIT_LOGIN_REQUIRED: u8 = 3;
/// Issuer unreachable or answered badly.
pub(crate) const EXIT_ISSUER: u8 = 4;
/// The person refused the sign-in, or let the code expire.
pub(crate) const EXIT_LOGIN_REFUSED: u8 = 5;
/// The token cache cannot be used.
pub(crate) const EXIT_CACHE: u8 = 6;
/// `setup` could not merge into or write the kubeconfig (malformed file, a conflicting entry
/// it did not write, an unwritable path).
pub(crate) const EXIT_KUBECONFIG: u8 = 7;
/// An access request was refused by policy, denied, or expired.
pub(crate) const EXIT_REQUEST_REFUSED: u8 = 8;

impl Error {
    /// The process exit code for this error; see the table in the module documentation.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::ExecInfoNotUnicode
            | Self::ExecInfoInvalid(_)
            | Self::UnsupportedApiVersion(_)
            | Self::ApiServerMismatch { .. }
            | Self::Target(_)
            | Self::GithubActionsNotSet { .. }
            | Self::IdentityEnvNotSet { .. }
            | Self::IdentityToken { .. }
            | Self::MachineKey { .. }
            | Self::KeygenWrite { .. } => EXIT_USAGE,
            Self::LoginRequired { .. } | Self::SignInBusy { .. } => EXIT_LOGIN_REQUIRED,
            Self::AccessDenied | Self::CodeExpired | Self::WrongAccount { .. } => {
                EXIT_LOGIN_REFUSED
            }
            Self::MalformedToken { .. }
            | Self::RevokeFailed(_)
            | Self::SomeNotRevoked { .. }
            | Self::BackingOff { .. }
            | Self::Identity(_)
            | Self::Setup(SetupError::NoClusters) => EXIT_ISSUER,
            Self::Issuer(e) => e.exit_code(),
            Self::Cache(_) => EXIT_CACHE,
            Self::Setup(_) => EXIT_KUBECONFIG,
            Self::Stdout(_) | Self::TimeOutOfRange(_) | Self::Assertion(_) => EXIT_UNEXPECTED,
            Self::MachineRefused(e) => machine_refusal_exit_code(e),
            Self::Cancelled => EXIT_CANCELLED,
            Self::RequestNotApproved { .. } => EXIT_REQUEST_REFUSED,
        }
    }
}

impl IssuerError {
    /// The exit code; see the table above.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::CaRead { .. }
            | Self::CaEmpty { .. }
            | Self::CaInvalid { .. }
            | Self::SpeaksHttps { .. }
            | Self::NotAnIssuer { .. } => EXIT_USAGE,
            Self::TlsSetup(_) | Self::Encode(_) => EXIT_UNEXPECTED,
            Self::OAuth { error, .. } => oauth_exit_code(error.error),
            Self::Api { status: 401, .. } => EXIT_LOGIN_REQUIRED,
            Self::Api { status, .. } if *status >= 500 || *status == 429 => EXIT_ISSUER,
            Self::Api { .. } => EXIT_REQUEST_REFUSED,
            Self::Unreachable { .. }
            | Self::Status { .. }
            | Self::Malformed { .. }
            | Self::IssuerMismatch { .. }
            | Self::BadEndpoint { .. } => EXIT_ISSUER,
        }
    }
}

/// Maps an OAuth error code from the issuer to an exit code: the person's refusals are
/// [`EXIT_LOGIN_REFUSED`]; every other code means the issuer did not accept a request that
/// should have worked, [`EXIT_ISSUER`].
pub(crate) fn oauth_exit_code(code: OAuthErrorCode) -> u8 {
    match code {
        OAuthErrorCode::AccessDenied | OAuthErrorCode::ExpiredToken => EXIT_LOGIN_REFUSED,
        _ => EXIT_ISSUER,
    }
}

/// A failed machine-mode exchange: a refusal by the issuer (an OAuth error that trying again
/// will not fix) is [`EXIT_LOGIN_REFUSED`]; an issuer that cannot serve now, or any other
/// failure, keeps its usual code.
pub(crate) fn machine_refusal_exit_code(err: &IssuerError) -> u8 {
    match err {
        IssuerError::OAuth { .. } if !err.is_transient() => EXIT_LOGIN_REFUSED,
        _ => err.exit_code(),
    }
}

/// Prints a clap error (or the help or version text clap answers with) and picks the exit code:
/// 0 for `--help`/`--version`, [`EXIT_USAGE`] for anything else.
pub(crate) fn exit_after_clap_error(err: &clap::Error) -> ExitCode {
    if !err.use_stderr() {
        // Our own help and version text, on stdout. Printing can only fail on a closed
        // stream, and then there is nobody to tell.
        let _ = err.print();
        return ExitCode::from(EXIT_OK);
    }
    // A usage error quotes the offending argument, which comes from a kubeconfig's `exec`
    // args: printed plain (no colours) and line by line through the escaper.
    eprint!("{}", clap_error_text(err));
    ExitCode::from(EXIT_USAGE)
}

/// The text of a clap usage error, every line escaped and bounded.
fn clap_error_text(err: &clap::Error) -> String {
    use std::fmt::Write as _;

    let mut out = String::new();
    for line in err.render().to_string().lines() {
        let _ = writeln!(out, "{}", Untrusted::long(line));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use credential_shared::oauth::OAuthErrorCode;

    use super::*;
    use crate::cache::CacheError;
    use crate::cli::Cli;
    use crate::error::tests::oauth;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-credential").chain(args.iter().copied()))
    }

    #[test]
    fn oauth_errors_map_to_exit_codes() {
        for (code, exit) in [
            (OAuthErrorCode::AccessDenied, EXIT_LOGIN_REFUSED),
            (OAuthErrorCode::ExpiredToken, EXIT_LOGIN_REFUSED),
            (OAuthErrorCode::InvalidGrant, EXIT_ISSUER),
            (OAuthErrorCode::InvalidScope, EXIT_ISSUER),
            (OAuthErrorCode::InvalidClient, EXIT_ISSUER),
            (OAuthErrorCode::ServerError, EXIT_ISSUER),
            (OAuthErrorCode::Unknown, EXIT_ISSUER),
        ] {
            assert_eq!(oauth_exit_code(code), exit, "{code:?}");
            assert_eq!(oauth(code).exit_code(), exit, "{code:?}");
        }
    }

    #[test]
    fn exit_codes_of_each_class() {
        assert_eq!(EXIT_OK, 0);
        assert_eq!(
            Error::UnsupportedApiVersion("v2".into()).exit_code(),
            EXIT_USAGE
        );
        assert_eq!(Error::AccessDenied.exit_code(), EXIT_LOGIN_REFUSED);
        assert_eq!(Error::CodeExpired.exit_code(), EXIT_LOGIN_REFUSED);
        assert_eq!(Error::SomeNotRevoked { count: 2 }.exit_code(), EXIT_ISSUER);
        assert_eq!(
            Error::LoginRequired {
                cluster: "c".into(),
                issuer: "https://x".into(),
                login_command: "kubectl credential login --issuer https://x --cluster c".into(),
            }
            .exit_code(),
            EXIT_LOGIN_REQUIRED
        );
        let keyring = Error::Cache(CacheError::KeyringUnavailable(
            keyring::Error::NoStorageAccess("locked".into()),
        ));
        assert_eq!(keyring.exit_code(), EXIT_CACHE);
        assert_eq!(
            Error::Issuer(IssuerError::CaEmpty {
                path: "ca.pem".into()
            })
            .exit_code(),
            EXIT_USAGE
        );
    }

    #[test]
    fn a_usage_error_does_not_echo_the_argument_raw() {
        let huge = format!("prod\x1b[2J\x1b]0;owned\x07\n{}", "x".repeat(120 * 1024));
        for args in [
            vec!["get", "--issuer", "https://i", "--cluster", huge.as_str()],
            vec!["get", "--issuer", "https://i\x1b[31m", "--cluster", "prod"],
            vec!["get", "--issuer", "https://i", "--bogus\x1b[2J"],
        ] {
            let err = parse(&args).err().unwrap_or_else(|| panic!("accepted"));
            let text = clap_error_text(&err);
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
            assert!(text.contains(r"\x1b"), "{text}");
            assert!(text.len() < 8 * 1024, "{} bytes", text.len());
        }
    }
}
