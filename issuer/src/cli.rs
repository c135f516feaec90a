//! The command line of `credential-issuer`: flags map one-to-one onto config overrides.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{env, Overrides};

/// The central issuer of short-lived Kubernetes credentials.
#[derive(Debug, Parser)]
#[command(name = "credential-issuer", version, about)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML config file.
    #[arg(long, global = true, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the database, signing keys and generated TLS files.
    #[arg(long, global = true, env = env::DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// File with the 32-byte key that encrypts secrets at rest (default: seal.key in the data
    /// directory, created on first start).
    #[arg(long, global = true, env = env::ENCRYPTION_KEY_FILE, value_name = "FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the issuer.
    Serve(ServeArgs),
    /// Validate the configuration and exit.
    CheckConfig(ServeArgs),
    /// Manage local accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage time-bound grants of roles in clusters.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Run one round of the grant reconciler and print what it changed.
    Reconcile(ReconcileArgs),
}

/// `grant ...`.
#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Give a user or a group a role in a cluster (cluster-wide, or in namespaces) for a time.
    Add(GrantAddArgs),
    /// List grants (by default those not ended or revoked).
    List {
        /// Only grants of this user.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only grants in this cluster.
        #[arg(long, value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Also ended and revoked grants.
        #[arg(long)]
        all: bool,
    },
    /// End a grant now; its bindings are removed within seconds.
    Revoke {
        /// Grant id (from `grant list`).
        id: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Flags of `grant add`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("who").required(true).args(["user", "group"]))]
#[command(group = clap::ArgGroup::new("end").required(true).args(["until", "for_"]))]
pub struct GrantAddArgs {
    /// The person (login name).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Everyone in this group.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Cluster.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: String,
    /// Namespace (repeatable); none means cluster-wide.
    #[arg(long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,
    /// Role from the issuer's policy (`[[roles]]`).
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// Start (RFC 3339 or YYYY-MM-DD); default now.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End (RFC 3339, or YYYY-MM-DD meaning the end of that day, UTC).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Length from the start, e.g. 8h.
    #[arg(long = "for", id = "for_", value_name = "DURATION")]
    pub for_: Option<String>,
    /// Why (shown in `grant list`, recorded in the audit trail).
    #[arg(long)]
    pub reason: Option<String>,
}

/// Flags of `reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Run one round and exit (the server reconciles continuously by itself).
    #[arg(long, required = true)]
    pub once: bool,
    /// Print the changes without making them.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this cluster.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
}

/// Flags of `serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = env::LISTEN, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Public https URL of the issuer (the `iss` claim).
    #[arg(long, env = env::ISSUER_URL, value_name = "URL")]
    pub issuer_url: Option<String>,
    /// PEM certificate chain to serve (default: generated for localhost).
    #[arg(long, env = env::TLS_CERT, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = env::TLS_KEY, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Access token lifetime, e.g. 5m.
    #[arg(long, env = env::TOKEN_TTL, value_name = "DURATION")]
    pub token_ttl: Option<String>,
    /// Login session lifetime, e.g. 12h.
    #[arg(long, env = env::SESSION_TTL, value_name = "DURATION")]
    pub session_ttl: Option<String>,
}

/// `user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a local account; the password is read from stdin (or prompted on a terminal).
    Add {
        /// Login name.
        name: String,
        /// A group (repeatable).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
    },
    /// List accounts.
    List,
    /// Disable an account and end every session of it at once.
    Disable {
        /// Login name.
        name: String,
    },
}

/// `keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key; the JWKS keeps older keys until their tokens have expired.
    Rotate,
    /// List signing keys.
    List,
}

impl Cli {
    /// The config overrides these flags stand for.
    #[must_use]
    pub fn overrides(&self) -> Overrides {
        let serve = match &self.command {
            Command::Serve(a) | Command::CheckConfig(a) => Some(a),
            _ => None,
        };
        Overrides {
            config_file: self.global.config.clone(),
            data_dir: self.global.data_dir.clone(),
            encryption_key_file: self.global.encryption_key_file.clone(),
            listen: serve.and_then(|a| a.listen.clone()),
            issuer_url: serve.and_then(|a| a.issuer_url.clone()),
            tls_cert: serve.and_then(|a| a.tls_cert.clone()),
            tls_key: serve.and_then(|a| a.tls_key.clone()),
            token_ttl: serve.and_then(|a| a.token_ttl.clone()),
            session_ttl: serve.and_then(|a| a.session_ttl.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_add_with_global_data_dir() {
        let cli = Cli::try_parse_from([
            "credential-issuer",
            "user",
            "add",
            "alice",
            "--group",
            "dev",
            "--group",
            "ops",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cli.global.data_dir.as_deref(),
            Some(std::path::Path::new("/tmp/x"))
        );
        match cli.command {
            Command::User(UserCommand::Add { name, groups, .. }) => {
                assert_eq!(name, "alice");
                assert_eq!(groups, ["dev", "ops"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn grant_add_needs_a_grantee_and_an_end() {
        let parse = |extra: &[&str]| {
            let mut args = vec![
                "credential-issuer",
                "grant",
                "add",
                "--cluster",
                "prod",
                "--role",
                "viewer",
            ];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        assert!(parse(&["--until", "2026-12-31"]).is_err());
        assert!(parse(&["--user", "a"]).is_err());
        assert!(parse(&["--user", "a", "--group", "g", "--for", "1h"]).is_err());
        assert!(parse(&["--user", "a", "--for", "1h", "--until", "2026-12-31"]).is_err());
        match parse(&[
            "--user",
            "a",
            "--for",
            "8h",
            "--namespace",
            "x",
            "--namespace",
            "y",
        ]) {
            Ok(Cli {
                command: Command::Grant(GrantCommand::Add(a)),
                ..
            }) => {
                assert_eq!(a.namespaces, ["x", "y"]);
                assert_eq!(a.for_.as_deref(), Some("8h"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["credential-issuer", "reconcile"]).is_err());
    }

    #[test]
    fn tls_flags_come_in_pairs() {
        assert!(Cli::try_parse_from(["credential-issuer", "serve", "--tls-cert", "/a"]).is_err());
    }
}
