//! The plain values of machine mode (CI jobs and automation, no person): where the identity
//! comes from, parsed from the command line once, so that everything below works on typed
//! values and never on flag strings.

use std::path::PathBuf;

use super::target::IssuerUrl;

/// Where a CI job's identity token comes from (`--identity-token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdentitySource {
    /// `github-actions`: asked from the runner (`ACTIONS_ID_TOKEN_REQUEST_URL`).
    GithubActions,
    /// `env:NAME`: the variable `NAME` (GitLab `id_tokens`), read on every exchange.
    Env(String),
    /// `file:PATH`: a file (a projected service-account token), read on every exchange.
    File(PathBuf),
}

impl IdentitySource {
    /// Parses `github-actions`, `env:NAME` or `file:PATH`.
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        if raw == "github-actions" {
            return Ok(Self::GithubActions);
        }
        if let Some(name) = raw.strip_prefix("env:") {
            let ok =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err("env:NAME needs a variable name (letters, digits, _)".to_owned());
            }
            return Ok(Self::Env(name.to_owned()));
        }
        if let Some(path) = raw.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file:PATH needs a path".to_owned());
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        Err("expected github-actions, env:NAME or file:PATH".to_owned())
    }

    /// The flag's value again, as `parse` reads it (for the kubeconfig's args and the cache
    /// key).
    pub(crate) fn to_arg(&self) -> String {
        match self {
            Self::GithubActions => "github-actions".to_owned(),
            Self::Env(name) => format!("env:{name}"),
            Self::File(path) => format!("file:{}", path.to_string_lossy()),
        }
    }
}

/// Checks a machine name (`--machine`): what the issuer registered with `machine add`.
pub(crate) fn parse_machine_name(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 253
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("a machine name is 1 to 253 letters, digits, `-`, `_` or `.`".to_owned())
    }
}

/// How a machine proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MachineSource {
    /// A CI platform's identity token, exchanged (RFC 8693).
    Identity {
        /// Where the token comes from.
        token: IdentitySource,
        /// `--identity-audience` (GitHub Actions only); `None`: the issuer URL.
        audience: Option<String>,
    },
    /// A registered machine key: client credentials with a signed assertion (RFC 7523).
    Key {
        /// `--machine`.
        machine: String,
        /// `--machine-key`: the PKCS#8 PEM private key, mode 0600.
        key: PathBuf,
    },
}

impl MachineSource {
    /// What tells two sources apart in the token cache file's key.
    pub(crate) fn cache_name(&self) -> String {
        match self {
            Self::Identity { token, audience } => {
                format!(
                    "identity {} {}",
                    token.to_arg(),
                    audience.as_deref().unwrap_or("")
                )
            }
            Self::Key { machine, key } => {
                format!("machine {machine} {}", key.to_string_lossy())
            }
        }
    }

    /// The `get` flags that select this source (what `setup --machine` writes into `args`).
    pub(crate) fn args(&self) -> Vec<String> {
        match self {
            Self::Identity { token, audience } => {
                let mut args = vec!["--identity-token".to_owned(), token.to_arg()];
                if let Some(aud) = audience {
                    args.push("--identity-audience".to_owned());
                    args.push(aud.clone());
                }
                args
            }
            Self::Key { machine, key } => vec![
                "--machine".to_owned(),
                machine.clone(),
                "--machine-key".to_owned(),
                key.to_string_lossy().into_owned(),
            ],
        }
    }
}

/// One machine-mode `get`: which cluster at which issuer, proved how, cached where.
#[derive(Debug, Clone)]
pub(crate) struct MachineTarget {
    /// `--issuer`.
    pub(crate) issuer: IssuerUrl,
    /// `--cluster`.
    pub(crate) cluster: String,
    /// `--issuer-ca`.
    pub(crate) issuer_ca: Option<PathBuf>,
    /// The proof.
    pub(crate) source: MachineSource,
    /// `--token-cache-file`: where the token is kept for the job; `None`, nowhere.
    pub(crate) token_cache_file: Option<PathBuf>,
}

impl MachineTarget {
    /// The audience a GitHub Actions token is asked for: `--identity-audience`, else the issuer
    /// URL (without trailing slash, as normalized).
    pub(crate) fn identity_audience(&self) -> &str {
        match &self.source {
            MachineSource::Identity {
                audience: Some(aud),
                ..
            } => aud,
            _ => self.issuer.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sources_parse_and_print_back() {
        for raw in [
            "github-actions",
            "env:CI_JOB_JWT_V2",
            "file:/var/run/secrets/tokens/t",
        ] {
            let parsed = IdentitySource::parse(raw).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed.to_arg(), raw);
        }
        for bad in ["", "github", "env:", "env:A-B", "file:", "http://x"] {
            assert!(IdentitySource::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_machine_name("deploy-bot.prod").is_ok());
        assert!(parse_machine_name("a b").is_err());
        assert!(parse_machine_name("").is_err());
    }
}
