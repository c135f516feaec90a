//! Reading the plugin's own entry back from the kubeconfig, so that commands that act on a
//! cluster (`whoami`, `logout`, `request`, `requests`) need no flags beyond `--context`: the
//! exec entry `setup` wrote already names the issuer, the cluster, the issuer's CA, the token
//! cache and the account. Flags given on the command line win over the entry. Writing the
//! entries is `setup`'s part, in [`setup`].

use std::path::{Path, PathBuf};

use credential_shared::text::Untrusted;
use serde_norway::Value;

use crate::base::env;

pub(crate) mod setup;

/// Why the kubeconfig could not say which cluster a command is about.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KubeconfigError {
    /// No kubeconfig file could be read (none exists, or none parses).
    #[error("no kubeconfig found ({}); pass --issuer and --cluster", Untrusted::long(.0))]
    NotFound(String),
    /// No `--context` and no current context.
    #[error(
        "the kubeconfig has no current context; pass --context NAME, or --issuer and --cluster"
    )]
    NoCurrentContext,
    /// The context named is not in the kubeconfig.
    #[error("the kubeconfig has no context \"{}\"", Untrusted::new(.0))]
    NoSuchContext(String),
    /// The context's user does not run this plugin.
    #[error(
        "context \"{}\" does not sign in with kubectl-credential (its user has no `exec` entry \
         running it); pass --context for one that does, or --issuer and --cluster",
        Untrusted::new(.0)
    )]
    NotOurs(String),
}

/// Why the flags, completed from the kubeconfig entry, do not name a session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    /// The kubeconfig has no usable entry.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// The entry's value of a flag is not valid.
    #[error(
        "the kubeconfig entry's {flag} \"{}\" is not valid: {reason}",
        Untrusted::new(value)
    )]
    BadValue {
        /// The flag.
        flag: &'static str,
        /// Its value in the kubeconfig.
        value: String,
        /// Why.
        reason: String,
    },
    /// Neither the flags nor the entry name the issuer or the cluster.
    #[error("the kubeconfig entry has no {0}; pass it")]
    Missing(&'static str),
}

/// What an exec entry of this plugin says (each only when its args carry it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExecEntry {
    /// `--issuer`.
    pub(crate) issuer: Option<String>,
    /// `--cluster`.
    pub(crate) cluster: Option<String>,
    /// `--issuer-ca`.
    pub(crate) issuer_ca: Option<PathBuf>,
    /// `--token-cache`.
    pub(crate) token_cache: Option<String>,
    /// `--username`.
    pub(crate) username: Option<String>,
    /// `--client-id`.
    pub(crate) client_id: Option<String>,
}

/// The kubeconfig files kubectl reads: every file of `KUBECONFIG`, else `~/.kube/config`.
fn files() -> Vec<PathBuf> {
    if let Some(list) = env::var_os(env::KUBECONFIG).filter(|v| !v.is_empty()) {
        return std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    env::home_dir()
        .map(|home| vec![home.join(".kube").join("config")])
        .unwrap_or_default()
}

/// The exec entry of `context` (else the current context) in the user's kubeconfig.
pub(crate) fn exec_entry(context: Option<&str>) -> Result<ExecEntry, KubeconfigError> {
    let paths = files();
    let docs: Vec<Value> = paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_norway::from_str(&t).ok())
        .collect();
    if docs.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(KubeconfigError::NotFound(names.join(", ")));
    }
    find(&docs, context)
}

/// The first value of `key` among `docs`, kubectl's merge rule for maps and lists of named
/// entries: the first file that has it wins.
fn named<'a>(docs: &'a [Value], list: &str, name: &str) -> Option<&'a Value> {
    docs.iter().find_map(|d| {
        d.get(list)?
            .as_sequence()?
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
    })
}

/// [`exec_entry`] over parsed kubeconfig documents.
fn find(docs: &[Value], context: Option<&str>) -> Result<ExecEntry, KubeconfigError> {
    let context = match context {
        Some(c) => c.to_owned(),
        None => docs
            .iter()
            .find_map(|d| d.get("current-context")?.as_str().filter(|s| !s.is_empty()))
            .ok_or(KubeconfigError::NoCurrentContext)?
            .to_owned(),
    };
    let user = named(docs, "contexts", &context)
        .ok_or_else(|| KubeconfigError::NoSuchContext(context.clone()))?
        .get("context")
        .and_then(|c| c.get("user"))
        .and_then(Value::as_str)
        .ok_or_else(|| KubeconfigError::NotOurs(context.clone()))?;
    let exec = named(docs, "users", user)
        .and_then(|u| u.get("user")?.get("exec"))
        .ok_or_else(|| KubeconfigError::NotOurs(context.clone()))?;
    let command = exec.get("command").and_then(Value::as_str).unwrap_or("");
    let args: Vec<&str> = exec
        .get("args")
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let ours = Path::new(command)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("kubectl-credential"))
        || (command == "kubectl" && args.first() == Some(&"credential"));
    if !ours {
        return Err(KubeconfigError::NotOurs(context));
    }
    Ok(parse_args(&args))
}

/// The flags of an exec entry's args (`--flag value` or `--flag=value`); others are skipped.
fn parse_args(args: &[&str]) -> ExecEntry {
    let mut entry = ExecEntry::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some((*value).to_owned())),
            None => (flag, None),
        };
        let slot = match name {
            "issuer" => &mut entry.issuer,
            "cluster" => &mut entry.cluster,
            "token-cache" => &mut entry.token_cache,
            "username" => &mut entry.username,
            "client-id" => &mut entry.client_id,
            "issuer-ca" => {
                let value = value.or_else(|| rest.next().map(|v| (*v).to_owned()));
                entry.issuer_ca = value.map(PathBuf::from);
                continue;
            }
            _ => continue,
        };
        *slot = value.or_else(|| rest.next().map(|v| (*v).to_owned()));
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(yaml: &[&str]) -> Vec<Value> {
        yaml.iter()
            .map(|y| serde_norway::from_str(y).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    const SETUP_WROTE: &str = "
current-context: prod
contexts:
- name: prod
  context: {cluster: prod, user: prod-credential}
- name: kind
  context: {cluster: kind, user: kind-admin}
users:
- name: kind-admin
  user: {token: abc}
- name: prod-credential
  user:
    exec:
      command: /usr/local/bin/kubectl-credential
      args: [get, --issuer, 'https://issuer.example', --cluster, prod,
             --issuer-ca, /etc/issuer-ca.pem, --token-cache=file, --username, ann]
";

    #[test]
    fn the_current_or_named_context_gives_the_entrys_flags() {
        let d = docs(&[SETUP_WROTE]);
        let want = ExecEntry {
            issuer: Some("https://issuer.example".to_owned()),
            cluster: Some("prod".to_owned()),
            issuer_ca: Some(PathBuf::from("/etc/issuer-ca.pem")),
            token_cache: Some("file".to_owned()),
            username: Some("ann".to_owned()),
            client_id: None,
        };
        assert_eq!(find(&d, None).ok(), Some(want.clone()));
        assert_eq!(find(&d, Some("prod")).ok(), Some(want));
    }

    #[test]
    fn contexts_that_are_not_ours_are_named() {
        let d = docs(&[SETUP_WROTE]);
        assert!(matches!(
            find(&d, Some("kind")),
            Err(KubeconfigError::NotOurs(c)) if c == "kind"
        ));
        assert!(matches!(
            find(&d, Some("nope")),
            Err(KubeconfigError::NoSuchContext(_))
        ));
        let d = docs(&["contexts: []"]);
        assert!(matches!(
            find(&d, None),
            Err(KubeconfigError::NoCurrentContext)
        ));
    }

    #[test]
    fn files_merge_as_kubectl_merges_them() {
        // The first file's current context wins; its context is found in the second file.
        let d = docs(&["current-context: prod\n", SETUP_WROTE]);
        assert_eq!(
            find(&d, None).ok().and_then(|e| e.cluster),
            Some("prod".to_owned())
        );
    }
}
