//! The command line: the subcommands, most sharing one set of flags, parsed into typed values
//! so that a bad flag fails before anything else happens. Parsing only: it knows the plain
//! values of [`crate::base`] and nothing else; [`crate::commands`] turns the flags into a
//! [`Target`](crate::base::target::Target), completed from the kubeconfig.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use credential_shared::oauth::PLUGIN_CLIENT_ID;

use crate::base::env;
use crate::base::machine::{parse_machine_name, IdentitySource};
use crate::base::target::{normalize_issuer, parse_cluster, IssuerUrl, TokenCacheKind};

/// kubectl exec credential plugin: signs in with the device flow and caches short-lived tokens.
#[derive(Debug, Parser)]
#[command(name = "kubectl-credential", bin_name = "kubectl credential", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// What clap's attributes cannot say, checked once after parsing: `--identity-audience`
    /// only with `--identity-token github-actions`, the one source the plugin asks for a token
    /// (a token from `env:` or `file:` was issued already, for the audience the job asked its
    /// platform for: a flag that changed nothing would be a silent misconfiguration).
    pub(crate) fn checked(self) -> Result<Self, clap::Error> {
        use clap::CommandFactory as _;
        let machine = match &self.command {
            Command::Get(a) => Some(&a.machine),
            Command::Setup(a) => Some(&a.machine),
            _ => None,
        };
        if let Some(m) = machine {
            if m.identity_audience.is_some()
                && !matches!(m.identity_token, Some(IdentitySource::GithubActions))
            {
                return Err(Self::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--identity-audience applies only to --identity-token github-actions: a token \
                     read from env: or file: already carries the audience the job asked its \
                     platform for (set it there)",
                ));
            }
        }
        Ok(self)
    }
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print an `ExecCredential` for kubectl (what a kubeconfig `exec` entry runs).
    Get(GetArgs),
    /// Sign in now with the device flow and store the session.
    Login(CommonArgs),
    /// Revoke the stored session at the issuer and delete it locally.
    Logout(LogoutArgs),
    /// Show who the stored session signs in as, and when its token and the session expire.
    Whoami(WhoamiArgs),
    /// List every stored session.
    Status(StatusArgs),
    /// Write kubeconfig entries (one context per cluster the issuer serves) that run this
    /// plugin; no secret goes into the file.
    Setup(SetupArgs),
    /// Ask for a role just in time (an approver decides, or a break-glass role starts at once).
    Request(RequestArgs),
    /// List your access requests and where they stand.
    Requests(TargetArgs),
    /// List the roles you may request, how long at most and who approves.
    Roles(TargetArgs),
    /// Machine identities for CI and automation (keys for `get --machine`).
    #[command(subcommand)]
    Machine(MachineCommand),
}

/// `machine`'s subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum MachineCommand {
    /// Generate a machine's P-256 key: the private key goes to --out (mode 0600), the public
    /// key (PEM) to stdout, for `credential-issuer machine add`.
    Keygen(KeygenArgs),
}

/// `machine keygen`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, mode 0600); an existing file is never
    /// overwritten.
    #[arg(long, value_name = "PATH")]
    pub(crate) out: PathBuf,
}

/// Machine mode (CI and automation): the flags that make `get` exchange a machine's proof of
/// identity for a token, with no browser, device flow, prompt or keyring. Exactly one source.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct MachineArgs {
    /// Machine mode: exchange a CI identity token: `github-actions` (asked from the runner;
    /// the job needs `permissions: id-token: write`), `env:NAME` (a variable, e.g. GitLab
    /// `id_tokens`) or `file:PATH` (e.g. a projected service-account token), read every time.
    #[arg(long, value_name = "SOURCE", value_parser = IdentitySource::parse, group = "machine_source", conflicts_with_all = ["machine", "machine_key"])]
    pub(crate) identity_token: Option<IdentitySource>,
    /// The audience asked of GitHub Actions (default: the issuer URL).
    #[arg(long, value_name = "AUD", requires = "identity_token", value_parser = parse_non_empty)]
    pub(crate) identity_audience: Option<String>,
    /// Machine mode: sign in as this registered machine (`credential-issuer machine add`),
    /// with --machine-key.
    #[arg(long, value_name = "NAME", value_parser = parse_machine_name, group = "machine_source", requires = "machine_key")]
    pub(crate) machine: Option<String>,
    /// The machine's private key (PKCS#8 PEM, P-256, mode 0600; `kubectl credential machine
    /// keygen` makes one).
    #[arg(long, value_name = "PATH", requires = "machine")]
    pub(crate) machine_key: Option<PathBuf>,
    /// Machine mode: keep the token in this file (mode 0600) and reuse it until 30 s before it
    /// expires; without it nothing is written.
    #[arg(long, value_name = "PATH", requires = "machine_source")]
    pub(crate) token_cache_file: Option<PathBuf>,
}

impl MachineArgs {
    /// The machine source the flags name, if any (clap has checked that there is at most one).
    pub(crate) fn source(&self) -> Option<crate::base::machine::MachineSource> {
        use crate::base::machine::MachineSource;
        if let Some(token) = &self.identity_token {
            return Some(MachineSource::Identity {
                token: token.clone(),
                audience: self.identity_audience.clone(),
            });
        }
        match (&self.machine, &self.machine_key) {
            (Some(machine), Some(key)) => Some(MachineSource::Key {
                machine: machine.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }
}

/// `request`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct RequestArgs {
    #[command(flatten)]
    pub(crate) common: TargetArgs,
    /// Role from the issuer's policy.
    #[arg(long, value_name = "ROLE")]
    pub(crate) role: String,
    /// Namespace (repeatable); none means cluster-wide.
    #[arg(long = "namespace", value_name = "NAMESPACE")]
    pub(crate) namespaces: Vec<String>,
    /// Why you need it (shown to approvers, recorded in the audit trail).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: Option<String>,
    /// How long, e.g. 30m, 2h, 90s.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: u64,
    /// Wait for the decision, then refresh the token so that it carries the grant.
    #[arg(long)]
    pub(crate) wait: bool,
}

/// `90s`, `30m`, `2h`, `1d` (or a combination like `1h30m`) in seconds.
pub(crate) fn parse_duration(raw: &str) -> Result<u64, String> {
    let bad = || format!("`{raw}` is not a duration like 90s, 30m or 2h");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

/// `setup`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct SetupArgs {
    /// URL of the credential issuer, e.g. `https://issuer.example:8443`.
    #[arg(long, value_name = "URL", value_parser = parse_issuer)]
    pub(crate) issuer: IssuerUrl,
    /// PEM bundle of the CA that signed the issuer's certificate (also written into the
    /// kubeconfig entries, so give an absolute path).
    #[arg(long, value_name = "FILE")]
    pub(crate) issuer_ca: Option<PathBuf>,
    /// Write `--token-cache file` into the entries (machines without a keyring).
    #[arg(long, value_name = "KIND", value_enum)]
    pub(crate) token_cache: Option<TokenCacheKind>,
    /// Write a separate kubeconfig here instead of merging into `$KUBECONFIG` or `~/.kube/config`.
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// The plugin command the entries run (default: `kubectl-credential`, found on PATH).
    #[arg(long, value_name = "PATH", default_value = "kubectl-credential")]
    pub(crate) command: String,
    /// Machine mode: the one cluster to write a machine context for (`CLUSTER-machine`,
    /// `interactiveMode: Never`); needs a machine source.
    #[arg(long, value_name = "NAME", value_parser = parse_cluster, requires = "machine_source")]
    pub(crate) cluster: Option<String>,
    /// Machine mode: the cluster's API server URL, when the issuer does not publish it.
    #[arg(long, value_name = "URL", requires = "cluster")]
    pub(crate) server: Option<String>,
    /// Machine mode: PEM file of the API server's CA, when the issuer does not publish it.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub(crate) certificate_authority: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) machine: MachineArgs,
}

/// `get`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Refresh the token even if it looks valid (for when the API server rejected it).
    #[arg(long)]
    pub(crate) force_refresh: bool,
    #[command(flatten)]
    pub(crate) machine: MachineArgs,
}

/// `whoami`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct WhoamiArgs {
    #[command(flatten)]
    pub(crate) common: TargetArgs,
    /// Refresh the session at the issuer first, then show the new token.
    #[arg(long, visible_alias = "force-refresh")]
    pub(crate) refresh: bool,
}

/// `status`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatusArgs {
    /// Which token cache to list.
    #[arg(long, value_name = "KIND", value_enum, env = env::TOKEN_CACHE, default_value = "keyring")]
    pub(crate) token_cache: TokenCacheKind,
}

/// `logout`'s flags: one session (`--issuer` and `--cluster`), or `--all`.
#[derive(Debug, Clone, Args)]
pub(crate) struct LogoutArgs {
    /// End every stored session: revoke each at its issuer where reachable, delete each locally.
    #[arg(long, conflicts_with_all = ["issuer", "cluster", "client_id", "context"])]
    pub(crate) all: bool,
    /// The kubeconfig context whose exec entry names the session to end, when `--issuer` and
    /// `--cluster` are not given (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// URL of the credential issuer, e.g. `https://issuer.example:8443` (default: from the
    /// kubeconfig entry).
    #[arg(long, value_name = "URL", value_parser = parse_issuer)]
    pub(crate) issuer: Option<IssuerUrl>,
    /// Name of the cluster as configured in the issuer (default: from the kubeconfig entry).
    #[arg(long, value_name = "NAME", value_parser = parse_cluster)]
    pub(crate) cluster: Option<String>,
    /// PEM bundle of the CA that signed the issuer's certificate; with `--all`, trusted for
    /// every issuer.
    #[arg(long, value_name = "FILE")]
    pub(crate) issuer_ca: Option<PathBuf>,
    /// Where sessions are kept: the OS keyring, or files readable only by you (default: from
    /// the kubeconfig entry, else the keyring).
    #[arg(long, value_name = "KIND", value_enum, env = env::TOKEN_CACHE)]
    pub(crate) token_cache: Option<TokenCacheKind>,
    /// Accepted for compatibility; logout opens no browser.
    #[arg(long, hide = true)]
    pub(crate) no_browser: bool,
    /// OAuth client id to present to the issuer.
    #[arg(long, value_name = "ID", value_parser = parse_non_empty)]
    pub(crate) client_id: Option<String>,
    /// The account of the entry to end (as given to `get --username`).
    #[arg(long, value_name = "NAME", value_parser = parse_non_empty, conflicts_with = "all")]
    pub(crate) username: Option<String>,
}

impl LogoutArgs {
    /// The one session to end (from the flags, completed from the kubeconfig); `None` with
    /// `--all`.
    pub(crate) fn single(&self) -> Option<TargetArgs> {
        (!self.all).then(|| TargetArgs {
            context: self.context.clone(),
            issuer: self.issuer.clone(),
            cluster: self.cluster.clone(),
            issuer_ca: self.issuer_ca.clone(),
            token_cache: self.token_cache,
            no_browser: self.no_browser,
            client_id: self.client_id.clone(),
            username: self.username.clone(),
        })
    }
}

/// The flags of commands that act on one cluster's session (`whoami`, `logout`, `request`,
/// `requests`): each one absent is taken from the plugin's exec entry in the kubeconfig, of
/// `--context` or else of the current context (what `setup` wrote), so that
/// `kubectl credential whoami --context prod` is enough.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// The kubeconfig context whose exec entry supplies the flags not given (default: the
    /// current context).
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// URL of the credential issuer, e.g. `https://issuer.example:8443` (default: from the
    /// kubeconfig entry).
    #[arg(long, value_name = "URL", value_parser = parse_issuer)]
    pub(crate) issuer: Option<IssuerUrl>,
    /// Name of the cluster as configured in the issuer (default: from the kubeconfig entry).
    #[arg(long, value_name = "NAME", value_parser = parse_cluster)]
    pub(crate) cluster: Option<String>,
    /// PEM bundle of the CA that signed the issuer's certificate (default: from the
    /// kubeconfig entry).
    #[arg(long, value_name = "FILE")]
    pub(crate) issuer_ca: Option<PathBuf>,
    /// Where sessions are kept (default: from the kubeconfig entry, else the keyring).
    #[arg(long, value_name = "KIND", value_enum, env = env::TOKEN_CACHE)]
    pub(crate) token_cache: Option<TokenCacheKind>,
    /// Print the sign-in link instead of opening a browser.
    #[arg(long)]
    pub(crate) no_browser: bool,
    /// OAuth client id to present to the issuer (default: from the kubeconfig entry).
    #[arg(long, value_name = "ID", value_parser = parse_non_empty)]
    pub(crate) client_id: Option<String>,
    /// The account of the entry (default: from the kubeconfig entry).
    #[arg(long, value_name = "NAME", value_parser = parse_non_empty)]
    pub(crate) username: Option<String>,
}

/// Flags every subcommand takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct CommonArgs {
    /// URL of the credential issuer, e.g. `https://issuer.example:8443`.
    #[arg(long, value_name = "URL", value_parser = parse_issuer)]
    pub(crate) issuer: IssuerUrl,
    /// Name of the cluster as configured in the issuer.
    #[arg(long, value_name = "NAME", value_parser = parse_cluster)]
    pub(crate) cluster: String,
    /// PEM bundle of the CA that signed the issuer's certificate; trusted instead of the
    /// built-in web roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) issuer_ca: Option<PathBuf>,
    /// Where sessions are kept: the OS keyring, or files readable only by you.
    #[arg(long, value_name = "KIND", value_enum, env = env::TOKEN_CACHE, default_value = "keyring")]
    pub(crate) token_cache: TokenCacheKind,
    /// Print the sign-in link instead of opening a browser.
    #[arg(long)]
    pub(crate) no_browser: bool,
    /// OAuth client id to present to the issuer.
    #[arg(long, value_name = "ID", default_value = PLUGIN_CLIENT_ID, value_parser = parse_non_empty)]
    pub(crate) client_id: String,
    /// The account this entry signs in as. Two kubeconfig users for the same cluster (say a
    /// daily and an admin account) then keep separate sessions, and a sign-in as anyone else
    /// is refused instead of being cached for this entry.
    #[arg(long, value_name = "NAME", value_parser = parse_non_empty)]
    pub(crate) username: Option<String>,
}

fn parse_issuer(raw: &str) -> Result<IssuerUrl, String> {
    normalize_issuer(raw)
}

fn parse_non_empty(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-credential").chain(args.iter().copied()))
            .and_then(Cli::checked)
    }

    #[test]
    fn identity_audience_only_with_github_actions() {
        let base = [
            "get",
            "--issuer",
            "https://issuer.example",
            "--cluster",
            "prod",
            "--identity-audience",
            "https://aud.example",
            "--identity-token",
        ];
        let with = |source: &str| {
            let mut args = base.to_vec();
            args.push(source);
            parse(&args)
        };
        assert!(with("github-actions").is_ok());
        for source in ["env:CI_JOB_JWT", "file:/var/run/token"] {
            let err = with(source)
                .err()
                .unwrap_or_else(|| panic!("{source} accepted"));
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{source}"
            );
            assert!(err.to_string().contains("github-actions"), "{err}");
        }
    }

    #[test]
    fn parses_get_with_defaults() {
        let cli = parse(&[
            "get",
            "--issuer",
            "https://Issuer.example:8443/",
            "--cluster",
            "prod",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Get(GetArgs {
            common: args,
            force_refresh: false,
            machine,
        }) = cli.command
        else {
            panic!("not get")
        };
        assert_eq!(args.issuer.as_str(), "https://issuer.example:8443");
        assert!(
            machine.source().is_none(),
            "a person's get is not machine mode"
        );
        assert_eq!(args.client_id, "kubectl-credential");
        assert!(!args.no_browser);
        assert!(args.issuer_ca.is_none());
    }

    #[test]
    fn rejects_bad_input_with_usage_errors() {
        for args in [
            &["get", "--cluster", "prod"][..],
            &[
                "get",
                "--issuer",
                "http://issuer.example",
                "--cluster",
                "prod",
            ],
            &["get", "--issuer", "https://x?y=1", "--cluster", "prod"],
            &["get", "--issuer", "https://x", "--cluster", ""],
            &[
                "get",
                "--issuer",
                "https://x",
                "--cluster",
                "c",
                "--token-cache",
                "disk",
            ],
            &["frobnicate"],
            &["logout", "--all", "--cluster", "prod"],
            &["status", "--issuer", "https://x"],
        ] {
            let err = parse(args)
                .err()
                .unwrap_or_else(|| panic!("accepted {args:?}"));
            assert!(err.use_stderr(), "{args:?}");
        }
    }

    #[test]
    fn login_command_repeats_what_selects_the_entry() {
        let cli = parse(&[
            "get",
            "--issuer",
            "https://x:8443",
            "--cluster",
            "my prod",
            "--issuer-ca",
            "/etc/ca.pem",
            "--token-cache",
            "file",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Get(GetArgs { common: args, .. }) = cli.command else {
            panic!("not get")
        };
        assert_eq!(
            crate::base::target::login_command(&args.into()),
            "kubectl credential login --issuer https://x:8443 --cluster 'my prod' --issuer-ca /etc/ca.pem --token-cache file"
        );
    }

    #[test]
    fn parses_the_new_commands_and_flags() {
        let cli = parse(&[
            "get",
            "--issuer",
            "https://x",
            "--cluster",
            "c",
            "--force-refresh",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            cli.command,
            Command::Get(GetArgs {
                force_refresh: true,
                ..
            })
        ));
        for flag in ["--refresh", "--force-refresh"] {
            let cli = parse(&["whoami", "--issuer", "https://x", "--cluster", "c", flag])
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(matches!(
                cli.command,
                Command::Whoami(WhoamiArgs { refresh: true, .. })
            ));
        }
        let cli = parse(&["status", "--token-cache", "file"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            cli.command,
            Command::Status(StatusArgs {
                token_cache: TokenCacheKind::File
            })
        ));

        let cli = parse(&["logout", "--all"]).unwrap_or_else(|e| panic!("{e}"));
        let Command::Logout(args) = cli.command else {
            panic!("not logout")
        };
        assert!(args.all && args.single().is_none());

        let cli = parse(&[
            "logout",
            "--issuer",
            "https://x/",
            "--cluster",
            "c",
            "--no-browser",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Logout(args) = cli.command else {
            panic!("not logout")
        };
        let single = args
            .single()
            .unwrap_or_else(|| panic!("no single session"))
            .resolve()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                single.issuer.as_str(),
                single.cluster.as_str(),
                single.client_id.as_str()
            ),
            ("https://x", "c", PLUGIN_CLIENT_ID)
        );
    }

    /// Machine mode's flags: exactly one source, each part with its partner, and the cache
    /// file only with a source.
    #[test]
    fn machine_flags_name_exactly_one_source() {
        let base = ["get", "--issuer", "https://x", "--cluster", "c"];
        let with = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            parse(&args)
        };
        let cli = with(&[
            "--identity-token",
            "github-actions",
            "--identity-audience",
            "sts",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Get(GetArgs { machine, .. }) = cli.command else {
            panic!("not get")
        };
        assert_eq!(
            machine.source(),
            Some(crate::base::machine::MachineSource::Identity {
                token: IdentitySource::GithubActions,
                audience: Some("sts".to_owned()),
            })
        );
        for ok in [
            &["--identity-token", "env:CI_JOB_JWT"][..],
            &[
                "--identity-token",
                "file:/t",
                "--token-cache-file",
                "/tmp/c",
            ],
            &["--machine", "bot", "--machine-key", "/k.pem"],
            &[
                "--machine",
                "bot",
                "--machine-key",
                "/k.pem",
                "--token-cache-file",
                "/c",
            ],
        ] {
            assert!(with(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            &[
                "--identity-token",
                "github-actions",
                "--machine",
                "bot",
                "--machine-key",
                "/k",
            ][..],
            &["--machine", "bot"],
            &["--machine-key", "/k.pem"],
            &["--identity-audience", "sts"],
            &["--token-cache-file", "/tmp/c"],
            &["--identity-token", "gitlab"],
            &["--machine", "a b", "--machine-key", "/k"],
        ] {
            let err = with(bad)
                .err()
                .unwrap_or_else(|| panic!("accepted {bad:?}"));
            assert!(err.use_stderr(), "{bad:?}");
        }
        assert!(parse(&["setup", "--issuer", "https://x", "--cluster", "c"]).is_err());
        assert!(parse(&[
            "setup",
            "--issuer",
            "https://x",
            "--cluster",
            "c",
            "--machine",
            "bot",
            "--machine-key",
            "/k"
        ])
        .is_ok());
        assert!(parse(&["machine", "keygen"]).is_err(), "--out is required");
        assert!(parse(&["machine", "keygen", "--out", "/k.pem"]).is_ok());
    }

    /// The help text clap answers `args` with, exactly as the person sees it: the snapshots
    /// below make a changed flag or description show up in review.
    fn help(args: &[&str]) -> String {
        let err = parse(args)
            .err()
            .unwrap_or_else(|| panic!("{args:?} parsed"));
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{err}");
        assert!(!err.use_stderr(), "{args:?}");
        err.to_string()
    }

    /// clap shows the value of an `env` variable that is set; the snapshots must not depend
    /// on the environment the tests run in. clap also indents its blank lines, which an inline
    /// snapshot cannot hold (rustfmt and editors strip trailing blanks), so those go too.
    fn help_filters() -> insta::Settings {
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(
            r"\[env: KUBECTL_CREDENTIAL_TOKEN_CACHE=[^\]]*\]",
            "[env: KUBECTL_CREDENTIAL_TOKEN_CACHE=]",
        );
        settings.add_filter(r"(?m)[ \t]+$", "");
        settings
    }

    #[test]
    fn top_level_help() {
        help_filters().bind(|| insta::assert_snapshot!(help(&["--help"]), @r"
        kubectl exec credential plugin: signs in with the device flow and caches short-lived tokens

        Usage: kubectl credential <COMMAND>

        Commands:
          get       Print an `ExecCredential` for kubectl (what a kubeconfig `exec` entry runs)
          login     Sign in now with the device flow and store the session
          logout    Revoke the stored session at the issuer and delete it locally
          whoami    Show who the stored session signs in as, and when its token and the session expire
          status    List every stored session
          setup     Write kubeconfig entries (one context per cluster the issuer serves) that run this plugin; no secret goes into the file
          request   Ask for a role just in time (an approver decides, or a break-glass role starts at once)
          requests  List your access requests and where they stand
          roles     List the roles you may request, how long at most and who approves
          machine   Machine identities for CI and automation (keys for `get --machine`)
          help      Print this message or the help of the given subcommand(s)

        Options:
          -h, --help     Print help
          -V, --version  Print version
        "));
    }

    #[test]
    fn get_help() {
        help_filters().bind(|| insta::assert_snapshot!(help(&["get", "--help"]), @r"
        Print an `ExecCredential` for kubectl (what a kubeconfig `exec` entry runs)

        Usage: kubectl credential get [OPTIONS] --issuer <URL> --cluster <NAME>

        Options:
              --issuer <URL>
                  URL of the credential issuer, e.g. `https://issuer.example:8443`

              --cluster <NAME>
                  Name of the cluster as configured in the issuer

              --issuer-ca <FILE>
                  PEM bundle of the CA that signed the issuer's certificate; trusted instead of the built-in web roots

              --token-cache <KIND>
                  Where sessions are kept: the OS keyring, or files readable only by you

                  Possible values:
                  - keyring: The OS keyring (Secret Service, macOS Keychain, Windows Credential Manager)
                  - file:    JSON files, mode 0600, under the user's cache directory

                  [env: KUBECTL_CREDENTIAL_TOKEN_CACHE=]
                  [default: keyring]

              --no-browser
                  Print the sign-in link instead of opening a browser

              --client-id <ID>
                  OAuth client id to present to the issuer

                  [default: kubectl-credential]

              --username <NAME>
                  The account this entry signs in as. Two kubeconfig users for the same cluster (say a daily and an admin account) then keep separate sessions, and a sign-in as anyone else is refused instead of being cached for this entry

              --force-refresh
                  Refresh the token even if it looks valid (for when the API server rejected it)

              --identity-token <SOURCE>
                  Machine mode: exchange a CI identity token: `github-actions` (asked from the runner; the job needs `permissions: id-token: write`), `env:NAME` (a variable, e.g. GitLab `id_tokens`) or `file:PATH` (e.g. a projected service-account token), read every time

              --identity-audience <AUD>
                  The audience asked of GitHub Actions (default: the issuer URL)

              --machine <NAME>
                  Machine mode: sign in as this registered machine (`credential-issuer machine add`), with --machine-key

              --machine-key <PATH>
                  The machine's private key (PKCS#8 PEM, P-256, mode 0600; `kubectl credential machine keygen` makes one)

              --token-cache-file <PATH>
                  Machine mode: keep the token in this file (mode 0600) and reuse it until 30 s before it expires; without it nothing is written

          -h, --help
                  Print help (see a summary with '-h')
        "));
    }
}
