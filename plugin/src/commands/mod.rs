//! The subcommands, one file each (`machine` holds machine mode's `get` and `machine keygen`): what each does step by step, from the parsed flags to the
//! text it prints. [`run`] dispatches; the flags become a [`Target`] here, completed from the
//! kubeconfig where the command line leaves them out.

mod get;
mod login;
mod logout;
mod machine;
mod request;
pub(crate) mod requests;
pub(crate) mod roles;
mod setup;
pub(crate) mod show;
mod status;
mod whoami;

use clap::ValueEnum as _;
use credential_shared::oauth::PLUGIN_CLIENT_ID;

use crate::base::clock::SystemClock;
use crate::base::target::{normalize_issuer, parse_cluster, Target, TokenCacheKind};
use crate::cli::{Cli, Command, CommonArgs, MachineCommand, TargetArgs};
use crate::error::Error;
use crate::kubeconfig::{self, TargetError};

/// Runs one subcommand.
pub(crate) fn run(cli: Cli) -> Result<(), Error> {
    let clock = SystemClock;
    match cli.command {
        Command::Get(args) => get::get(&args, &clock),
        Command::Login(args) => login::login(&args.into(), &clock),
        Command::Logout(args) => match args.single() {
            Some(single) => logout::logout(&single.resolve()?, &clock),
            None => logout::logout_all(&args, &clock),
        },
        Command::Whoami(args) => whoami::whoami(&args.common.resolve()?, args.refresh, &clock),
        Command::Status(args) => status::status(&args, &clock),
        Command::Setup(args) => setup::setup(&args, &clock),
        Command::Request(args) => request::request(&args, &args.common.resolve()?, &clock),
        Command::Requests(args) => request::list_requests(&args.resolve()?, &clock),
        Command::Roles(args) => roles::list_roles(&args.resolve()?, &clock),
        Command::Machine(MachineCommand::Keygen(args)) => machine::keygen(&args.out),
    }
}

impl From<CommonArgs> for Target {
    fn from(args: CommonArgs) -> Self {
        let CommonArgs {
            issuer,
            cluster,
            issuer_ca,
            token_cache,
            no_browser,
            client_id,
            username,
        } = args;
        Self {
            issuer,
            cluster,
            issuer_ca,
            token_cache,
            no_browser,
            client_id,
            username,
        }
    }
}

impl TargetArgs {
    /// Whether the flags alone name the session (then the kubeconfig is not read).
    fn complete(&self) -> bool {
        self.context.is_none() && self.issuer.is_some() && self.cluster.is_some()
    }

    /// The flags, completed from the kubeconfig entry where absent.
    pub(crate) fn resolve(&self) -> Result<Target, TargetError> {
        let entry = if self.complete() {
            kubeconfig::ExecEntry::default()
        } else {
            kubeconfig::exec_entry(self.context.as_deref())?
        };
        self.resolve_with(&entry)
    }

    pub(crate) fn resolve_with(
        &self,
        entry: &kubeconfig::ExecEntry,
    ) -> Result<Target, TargetError> {
        let bad = |flag, value: &str, reason: String| TargetError::BadValue {
            flag,
            value: value.to_owned(),
            reason,
        };
        let issuer = match (&self.issuer, &entry.issuer) {
            (Some(i), _) => i.clone(),
            (None, Some(raw)) => normalize_issuer(raw).map_err(|e| bad("--issuer", raw, e))?,
            (None, None) => return Err(TargetError::Missing("--issuer")),
        };
        let cluster = match (&self.cluster, &entry.cluster) {
            (Some(c), _) => c.clone(),
            (None, Some(raw)) => parse_cluster(raw).map_err(|e| bad("--cluster", raw, e))?,
            (None, None) => return Err(TargetError::Missing("--cluster")),
        };
        let token_cache = match (self.token_cache, &entry.token_cache) {
            (Some(k), _) => k,
            (None, Some(raw)) => {
                TokenCacheKind::from_str(raw, false).map_err(|e| bad("--token-cache", raw, e))?
            }
            (None, None) => TokenCacheKind::Keyring,
        };
        Ok(Target {
            issuer,
            cluster,
            issuer_ca: self.issuer_ca.clone().or_else(|| entry.issuer_ca.clone()),
            token_cache,
            no_browser: self.no_browser,
            client_id: self
                .client_id
                .clone()
                .or_else(|| entry.client_id.clone())
                .unwrap_or_else(|| PLUGIN_CLIENT_ID.to_owned()),
            username: self.username.clone().or_else(|| entry.username.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::Parser as _;

    use super::*;
    use crate::base::env;
    use crate::cli::WhoamiArgs;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-credential").chain(args.iter().copied()))
    }

    /// Flags win over the kubeconfig entry; the entry fills in the rest (what `setup` wrote),
    /// and a bad value in it is named.
    #[test]
    fn target_flags_are_completed_from_the_kubeconfig_entry() {
        let entry = crate::kubeconfig::ExecEntry {
            issuer: Some("https://Issuer.example/".to_owned()),
            cluster: Some("prod".to_owned()),
            issuer_ca: Some(PathBuf::from("/etc/ca.pem")),
            token_cache: Some("file".to_owned()),
            username: Some("ann".to_owned()),
            client_id: None,
        };
        let cli = parse(&["whoami", "--cluster", "staging"]).unwrap_or_else(|e| panic!("{e}"));
        let Command::Whoami(WhoamiArgs { common, .. }) = cli.command else {
            panic!("not whoami")
        };
        let args = common
            .resolve_with(&entry)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.issuer.as_str(), "https://issuer.example");
        assert_eq!(args.cluster, "staging", "the flag wins");
        assert_eq!(
            args.issuer_ca.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(args.username.as_deref(), Some("ann"));
        assert_eq!(args.client_id, PLUGIN_CLIENT_ID);
        if std::env::var_os(env::TOKEN_CACHE).is_none() {
            assert_eq!(args.token_cache, TokenCacheKind::File);
        }

        let bad = crate::kubeconfig::ExecEntry {
            issuer: Some("http://issuer.example".to_owned()),
            ..entry
        };
        let cli = parse(&["requests"]).unwrap_or_else(|e| panic!("{e}"));
        let Command::Requests(target) = cli.command else {
            panic!("not requests")
        };
        let err = target.resolve_with(&bad).err();
        assert!(
            matches!(
                &err,
                Some(TargetError::BadValue {
                    flag: "--issuer",
                    ..
                })
            ),
            "{err:?}"
        );
        let err = target
            .resolve_with(&crate::kubeconfig::ExecEntry::default())
            .err();
        assert!(
            matches!(&err, Some(TargetError::Missing("--issuer"))),
            "{err:?}"
        );
    }
}
