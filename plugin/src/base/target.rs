//! The session a command acts on, as plain values: the issuer URL (normalized once, so that it
//! compares and hashes the same everywhere), the cluster name, the token cache backend and the
//! rest of what selects one cache entry. The command line parses into these; everything below
//! it receives them and never sees the flags.

use std::fmt;
use std::path::PathBuf;

use credential_shared::oauth::PLUGIN_CLIENT_ID;
use url::{Host, Url};

/// Which cluster's session, at which issuer, kept where and for which account: the flags every
/// command on one session resolves to (from the command line, completed from the kubeconfig).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// URL of the credential issuer.
    pub(crate) issuer: IssuerUrl,
    /// Name of the cluster as configured in the issuer.
    pub(crate) cluster: String,
    /// PEM bundle of the CA that signed the issuer's certificate.
    pub(crate) issuer_ca: Option<PathBuf>,
    /// Where sessions are kept.
    pub(crate) token_cache: TokenCacheKind,
    /// Print the sign-in link instead of opening a browser.
    pub(crate) no_browser: bool,
    /// OAuth client id to present to the issuer.
    pub(crate) client_id: String,
    /// The account this entry signs in as.
    pub(crate) username: Option<String>,
}

/// The two token cache backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TokenCacheKind {
    /// The OS keyring (Secret Service, macOS Keychain, Windows Credential Manager).
    Keyring,
    /// JSON files, mode 0600, under the user's cache directory.
    File,
}

/// An issuer URL, normalized: parsed, lower-cased host, no trailing slash. This exact string is
/// what the discovery document's `issuer` must equal and what the cache key hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssuerUrl(String);

impl IssuerUrl {
    /// The normalized URL, without a trailing slash.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a plain-HTTP issuer (allowed only on loopback, for development).
    pub(crate) fn is_http(&self) -> bool {
        self.0.starts_with("http:")
    }
}

impl fmt::Display for IssuerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Normalizes an issuer URL the same way for `--issuer` and for the discovery document, so
/// that `https://Issuer.example/` and `https://issuer.example` compare equal.
pub(crate) fn normalize_issuer(raw: &str) -> Result<IssuerUrl, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("an issuer URL has no query or fragment".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("an issuer URL has no user name or password".to_owned());
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => return Err("the issuer must use https (plain http only on loopback)".to_owned()),
    }
    Ok(IssuerUrl(url.as_str().trim_end_matches('/').to_owned()))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks a cluster name (`--cluster`, or the kubeconfig entry's).
pub(crate) fn parse_cluster(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.len() > 253 {
        return Err("a cluster name is 1 to 253 characters".to_owned());
    }
    if raw.chars().any(char::is_control) {
        return Err("a cluster name has no control characters".to_owned());
    }
    Ok(raw.to_owned())
}

/// The `kubectl credential login` command line that signs in to the same cache entry as `args`,
/// for messages that tell the user what to run.
pub(crate) fn login_command(args: &Target) -> String {
    let mut cmd = format!(
        "kubectl credential login --issuer {} --cluster {}",
        shell_quote(args.issuer.as_str()),
        shell_quote(&args.cluster)
    );
    if let Some(ca) = &args.issuer_ca {
        cmd.push_str(" --issuer-ca ");
        cmd.push_str(&shell_quote(&ca.to_string_lossy()));
    }
    if args.token_cache == TokenCacheKind::File {
        cmd.push_str(" --token-cache file");
    }
    if args.client_id != PLUGIN_CLIENT_ID {
        cmd.push_str(" --client-id ");
        cmd.push_str(&shell_quote(&args.client_id));
    }
    if let Some(user) = &args.username {
        cmd.push_str(" --username ");
        cmd.push_str(&shell_quote(user));
    }
    cmd
}

/// Quotes `s` for a POSIX shell when it holds anything but plain word characters.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_plain_http_only_on_loopback() {
        assert!(normalize_issuer("http://127.0.0.1:8080").is_ok());
        assert!(normalize_issuer("http://[::1]:8080").is_ok());
        assert!(normalize_issuer("http://localhost:8080").is_ok());
        assert!(normalize_issuer("http://10.0.0.1").is_err());
        assert!(normalize_issuer("ftp://127.0.0.1").is_err());
    }
}
