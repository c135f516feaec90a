//! The `ExecCredential` exchange with kubectl: reading `KUBERNETES_EXEC_INFO`, and writing the one
//! JSON document the plugin ever prints on stdout.

use std::ffi::OsStr;
use std::io::{IsTerminal as _, Write};

use credential_shared::exec_credential::{
    ApiVersion, ExecCluster, ExecCredential, ExecCredentialRequest,
};

use crate::base::clock::rfc3339;
use crate::base::env;
use crate::cache::Entry;
use crate::error::Error;

/// What kubectl told the plugin about this call.
#[derive(Debug)]
pub(crate) struct ExecInfo {
    /// The protocol version to answer in.
    pub(crate) version: ApiVersion,
    /// Whether the plugin may talk to a person (device flow prompts on stderr).
    pub(crate) interactive: bool,
    /// The API server kubectl is about to call (`provideClusterInfo: true`).
    pub(crate) cluster: Option<ExecCluster>,
    /// Whether `KUBERNETES_EXEC_INFO` was given: a client-go program (kubectl, k9s...) runs
    /// the plugin, and a second call from the same process can be its retry after a 401.
    pub(crate) from_kubectl: bool,
}

/// Reads `KUBERNETES_EXEC_INFO` from the environment.
pub(crate) fn read_exec_info() -> Result<ExecInfo, Error> {
    let raw = env::var_os(env::KUBERNETES_EXEC_INFO);
    parse_exec_info(raw.as_deref(), || std::io::stdin().is_terminal())
}

/// Parses the request. Without one (the plugin run by hand, or a kubectl older than the
/// `interactive` field), answer in v1beta1 and be interactive if stdin is a terminal.
pub(crate) fn parse_exec_info(
    raw: Option<&OsStr>,
    stdin_is_terminal: impl FnOnce() -> bool,
) -> Result<ExecInfo, Error> {
    let raw = match raw {
        None => None,
        Some(raw) => Some(raw.to_str().ok_or(Error::ExecInfoNotUnicode)?),
    };
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(ExecInfo {
            version: ApiVersion::V1Beta1,
            interactive: stdin_is_terminal(),
            cluster: None,
            from_kubectl: false,
        });
    };
    let request: ExecCredentialRequest =
        serde_json::from_str(raw).map_err(Error::ExecInfoInvalid)?;
    let version = ApiVersion::parse(&request.api_version)
        .ok_or_else(|| Error::UnsupportedApiVersion(request.api_version.clone()))?;
    let mut cluster = request.spec.cluster;
    if let Some(cluster) = cluster
        .as_mut()
        .filter(|c| c.certificate_authority_data.is_none())
    {
        cluster.certificate_authority_data = ca_file_data(raw);
    }
    Ok(ExecInfo {
        version,
        interactive: request.spec.interactive,
        cluster,
        from_kubectl: true,
    })
}

/// The largest CA bundle read from a file named in the exec info.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// The CA of a cluster named by file, as base64 of its contents: what kubectl sends. kubectl
/// reads a kubeconfig's `certificate-authority` file itself and sends `certificate-authority-data`;
/// the official Python client passes the kubeconfig's cluster entry as written, with the path
/// (relative to the kubeconfig's directory, which is the plugin's working directory there).
/// Reading it makes both callers of one kubeconfig share one cache key and lets the API server
/// be asked about a repeated call (`retry`). Read here from the raw document, as
/// `ExecCluster` does not carry the field; a missing or unreadable file is no CA, as before.
fn ca_file_data(raw: &str) -> Option<String> {
    use base64::Engine as _;
    use std::io::Read as _;

    let doc: serde_json::Value = serde_json::from_str(raw).ok()?;
    let path = doc["spec"]["cluster"]["certificate-authority"]
        .as_str()
        .filter(|p| !p.is_empty())?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // A FIFO (or a device) named there cannot hang the plugin: only a regular file is read.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        rustix::fs::OFlags::NONBLOCK.bits().cast_signed(),
    );
    let file = options.open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE + 1).read_to_end(&mut pem).ok()?;
    let bounded = u64::try_from(pem.len()).is_ok_and(|n| n <= MAX_CA_FILE);
    bounded.then(|| base64::engine::general_purpose::STANDARD.encode(pem))
}

/// Writes the `ExecCredential` for `entry` to `out`: the token, and as expiry the moment the
/// plugin would stop handing it out (its expiry minus the safety margin), so that kubectl comes
/// back for a new one in time.
pub(crate) fn write_credential(
    out: &mut impl Write,
    version: ApiVersion,
    entry: &Entry,
) -> Result<(), Error> {
    let refresh_at = entry.refresh_at();
    let expiration = rfc3339(refresh_at).ok_or(Error::TimeOutOfRange(refresh_at))?;
    let doc = ExecCredential::new(version, entry.access_token.expose(), &expiration);
    let mut json = serde_json::to_vec(&doc).map_err(|e| Error::Stdout(e.into()))?;
    json.push(b'\n');
    out.write_all(&json)
        .and_then(|()| out.flush())
        .map_err(Error::Stdout)
}

/// Refuses to hand `entry`'s token to an API server other than the one the issuer configured
/// for the cluster, when both are known: a kubeconfig that points `--cluster prod` at another
/// server (a mistake, or a planted kubeconfig harvesting tokens) gets nothing.
pub(crate) fn check_api_server(info: &ExecInfo, entry: &Entry, cluster: &str) -> Result<(), Error> {
    let (Some(requested), Some(expected)) = (info.cluster.as_ref(), entry.api_server.as_deref())
    else {
        return Ok(());
    };
    let requested = requested.server.trim_end_matches('/');
    if requested.is_empty() || requested == expected.trim_end_matches('/') {
        return Ok(());
    }
    Err(Error::ApiServerMismatch {
        cluster: cluster.to_owned(),
        requested: requested.to_owned(),
        expected: expected.to_owned(),
    })
}

/// Writes the `ExecCredential` to the process's stdout. The only place `get` touches stdout
/// (`whoami` and `status` print their reports through `show::print`).
pub(crate) fn print_credential(version: ApiVersion, entry: &Entry) -> Result<(), Error> {
    write_credential(&mut std::io::stdout().lock(), version, entry)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::base::secret::Secret;

    fn parse(raw: Option<&str>, tty: bool) -> Result<ExecInfo, Error> {
        let raw = raw.map(OsString::from);
        parse_exec_info(raw.as_deref(), || tty)
    }

    #[test]
    fn absent_means_v1beta1_and_terminal_decides() {
        for tty in [true, false] {
            let info = parse(None, tty).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(info.version, ApiVersion::V1Beta1);
            assert_eq!(info.interactive, tty);
            assert!(info.cluster.is_none());
            assert!(!info.from_kubectl);
        }
        let info = parse(Some(""), true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.version, ApiVersion::V1Beta1);
    }

    #[test]
    fn reads_v1_with_cluster_info_and_ignores_the_terminal() {
        let raw = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1",
            "spec":{"interactive":false,"cluster":{"server":"https://api:6443","certificate-authority-data":"Q0E=","tls-server-name":"api"}}}"#;
        let info = parse(Some(raw), true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.version, ApiVersion::V1);
        assert!(!info.interactive);
        assert!(info.from_kubectl);
        let cluster = info.cluster.unwrap_or_default();
        assert_eq!(cluster.server, "https://api:6443");
        // Spelled as in a kubeconfig, as kubectl sends it.
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        assert_eq!(cluster.tls_server_name.as_deref(), Some("api"));
    }

    #[test]
    fn a_ca_named_by_file_is_read_as_kubectl_would_send_it() {
        use base64::Engine as _;
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ca = tmp.path().join("ca.crt");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let info = |cluster: serde_json::Value| {
            let raw = serde_json::json!({"kind": "ExecCredential",
                "apiVersion": "client.authentication.k8s.io/v1",
                "spec": {"interactive": false, "cluster": cluster}})
            .to_string();
            parse(Some(&raw), false)
                .unwrap_or_else(|e| panic!("{e}"))
                .cluster
                .and_then(|c| c.certificate_authority_data)
        };
        let sent_by_kubectl = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(&ca).unwrap_or_default());
        // The Python client's form: the kubeconfig's entry as written.
        assert_eq!(
            info(serde_json::json!({"server": "https://api", "certificate-authority": ca})),
            Some(sent_by_kubectl)
        );
        // Data wins; a missing file or none at all is no CA.
        assert_eq!(
            info(
                serde_json::json!({"server": "https://api", "certificate-authority": ca,
                "certificate-authority-data": "REFUQQ=="})
            ),
            Some("REFUQQ==".to_owned())
        );
        let missing = tmp.path().join("missing.crt");
        assert_eq!(
            info(serde_json::json!({"server": "https://api", "certificate-authority": missing})),
            None
        );
        assert_eq!(info(serde_json::json!({"server": "https://api"})), None);
        // Not a regular file: not read (a FIFO would block a plain open).
        let fifo = tmp.path().join("fifo");
        let made = rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::RUSR);
        assert!(made.is_ok(), "{made:?}");
        assert_eq!(
            info(serde_json::json!({"server": "https://api", "certificate-authority": fifo})),
            None
        );
        assert_eq!(
            info(serde_json::json!({"server": "https://api", "certificate-authority": tmp.path()})),
            None
        );
        // A file larger than any CA bundle is not read.
        let huge = tmp.path().join("huge.crt");
        let bytes = usize::try_from(MAX_CA_FILE + 1).unwrap_or(usize::MAX);
        std::fs::write(&huge, vec![b'A'; bytes]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            info(serde_json::json!({"server": "https://api", "certificate-authority": huge})),
            None
        );
    }

    #[test]
    fn unsupported_version_and_garbage_are_usage_errors() {
        let err = parse(
            Some(
                r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1","kind":"ExecCredential"}"#,
            ),
            false,
        )
        .err();
        assert!(matches!(&err, Some(Error::UnsupportedApiVersion(v)) if v.ends_with("v1alpha1")));
        assert_eq!(err.map(|e| e.exit_code()), Some(crate::exit::EXIT_USAGE));
        let err = parse(Some("{not json"), false).err();
        assert!(matches!(err, Some(Error::ExecInfoInvalid(_))));
    }

    #[test]
    fn an_exec_info_with_escapes_and_a_huge_api_version_is_reported_escaped_and_bounded() {
        let version = format!("\x1b]0;owned\x07\x1b[2J\u{9b}31m{}", "v".repeat(120 * 1024));
        let raw = serde_json::json!({"kind": "ExecCredential", "apiVersion": version}).to_string();
        let err = parse(Some(&raw), false)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        let text = crate::error::report(&err);
        assert!(
            text.starts_with(
                r#"KUBERNETES_EXEC_INFO asks for apiVersion "\x1b]0;owned\x07\x1b[2J\u{9b}31mvvv"#
            ),
            "{text}"
        );
        assert!(text.contains("…[+"), "no marker: {text}");
        assert!(
            text.ends_with("client.authentication.k8s.io/v1beta1"),
            "{text}"
        );
        assert!(text.len() < 1000, "{} bytes", text.len());
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn exec_info_that_is_not_utf8_or_not_json_is_not_echoed() {
        use std::os::unix::ffi::OsStrExt as _;

        let raw = OsStr::from_bytes(b"{\"apiVersion\":\"\xff\x1b[2J\"}");
        let err = parse_exec_info(Some(raw), || false).err();
        assert!(matches!(err, Some(Error::ExecInfoNotUnicode)));
        // serde's message quotes the bad value: the report escapes it.
        let raw =
            r#"{"kind":"ExecCredential","apiVersion":"v1","spec":{"interactive":"\u001b[2J\n"}}"#;
        let err = parse(Some(raw), false)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        let text = crate::error::report(&err);
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn writes_one_document_in_the_requested_version() {
        let entry = Entry {
            access_token: Secret::new("tok".to_owned()),
            iat: 1_767_225_000,
            exp: 1_767_225_660, // 11 minutes: margin is 60 s
            refresh_token: None,
            session_expires_at: None,
            username: "alice".to_owned(),
            origin: None,
            api_server: None,
        };
        let mut out = Vec::new();
        write_credential(&mut out, ApiVersion::V1, &entry).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(out).unwrap_or_default();
        assert_eq!(
            text,
            "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\
             \"status\":{\"token\":\"tok\",\"expirationTimestamp\":\"2026-01-01T00:00:00Z\"}}\n"
        );
    }
}
