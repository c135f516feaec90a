//! The command line of `credential-issuer`: flags map one-to-one onto config overrides.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{DatabaseUrl, Overrides};
use crate::env;
use crate::service::admin::GrantWords;

/// The central issuer of short-lived Kubernetes credentials.
#[derive(Debug, Parser)]
#[command(
    name = "credential-issuer",
    version,
    about,
    after_help = "Admin commands (user, invite, keys, grant, request, reconcile, policy, audit, \
                  report) act on the store these options name: give them the server's --config \
                  and --data-dir, and on PostgreSQL its CREDENTIAL_ISSUER_DATABASE_URL and \
                  encryption key. Without them they open a SQLite store in your own data \
                  directory."
)]
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
    /// Directory for the SQLite database (unless --database-url names another), signing keys
    /// and generated TLS files.
    #[arg(long, global = true, env = env::DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// File with the 32-byte key that encrypts secrets at rest (default: seal.key in the data
    /// directory, created on first start).
    #[arg(long, global = true, env = env::ENCRYPTION_KEY_FILE, value_name = "FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// PostgreSQL shared by several replicas: `postgres://USER:PASSWORD@HOST/DB` (prefer the
    /// environment variable: it holds a password). Default: SQLite in the data directory.
    /// Admin commands need the server's URL to act on its database.
    #[arg(long, global = true, env = env::DATABASE_URL, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the issuer.
    Serve(ServeArgs),
    /// Run the impersonating proxy in front of one cluster's API server (its
    /// `[clusters.proxy]` table), on the same store as `serve`.
    Proxy(ProxyArgs),
    /// Validate the configuration and exit.
    CheckConfig(ServeArgs),
    /// Manage local accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Invite contractors: an expiring local account and a single-use link to set it up.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage time-bound grants of roles in clusters.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Decide just-in-time access requests (as the administrator).
    #[command(subcommand)]
    Request(RequestCommand),
    /// Run one round of the grant reconciler and print what it changed.
    Reconcile(ReconcileArgs),
    /// Inspect the group-mapping policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check and read the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Reports for reviews and alerts.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Register machine clients (scripts, cron, on-premise CI) by their public key.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// The `[[workloads]]` rules (CI jobs trusted by their platform's token) and their state.
    #[command(subcommand)]
    Workload(WorkloadCommand),
}

/// `machine ...`.
#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// Register a machine by its public key (from `kubectl credential machine keygen`); it
    /// signs in as `machine:NAME` with the client credentials grant.
    Add {
        /// The machine's name (a DNS label).
        name: String,
        /// Its public key, a `-----BEGIN PUBLIC KEY-----` PEM file (ECDSA P-256).
        #[arg(long, value_name = "FILE")]
        public_key: std::path::PathBuf,
        /// A Kubernetes group of its tokens (repeatable).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// A cluster it may get tokens for (repeatable, at least one).
        #[arg(long = "cluster", value_name = "CLUSTER", required = true)]
        clusters: Vec<String>,
        /// End date (2026-12-31, the end of that day UTC) or a duration (90d).
        #[arg(long, value_name = "DATE")]
        until: String,
    },
    /// List registered machines.
    List,
    /// Disable a machine: no new token, and its tokens refused at once in webhook mode.
    Disable {
        /// The machine's name.
        name: String,
    },
    /// Enable a disabled machine again.
    Enable {
        /// The machine's name.
        name: String,
    },
    /// Replace a machine's public key; assertions signed with the old key stop at once.
    RotateKey {
        /// The machine's name.
        name: String,
        /// The new public key (PEM file).
        #[arg(long, value_name = "FILE")]
        public_key: std::path::PathBuf,
    },
}

/// `workload ...`.
#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// List the configured rules, their state and last use.
    List,
    /// Disable a rule on every replica: no new token, and in webhook mode the tokens already
    /// out are refused within seconds.
    Disable {
        /// The rule's name.
        name: String,
    },
    /// Enable a disabled rule again.
    Enable {
        /// The rule's name.
        name: String,
    },
}

/// `report ...`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// People with an enabled account, and grants in force, whose access was not used (no
    /// token obtained) for DAYS days. Exits 0, also when nothing is stale.
    Stale {
        /// Days without a token.
        #[arg(long, value_name = "DAYS")]
        days: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
}

/// Formats of `audit access` and `report stale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Text for people.
    Table,
    /// One JSON object per line, each with a `kind`.
    Jsonl,
}

/// `audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the whole trail; exits 1 naming the first event that was
    /// edited, inserted or deleted. Prints the head (SEQ:HASH) to keep for the next check.
    Verify {
        /// A head printed by an earlier `audit verify` (or logged by the server): fails if
        /// that event is gone or changed, which also catches events cut off the end.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
    },
    /// Who had access to a namespace of a cluster in a time window, why, and who approved it:
    /// grants in force, groups in the tokens issued, bindings now, and who obtained tokens.
    Access {
        /// Cluster name.
        #[arg(long)]
        cluster: String,
        /// Namespace.
        #[arg(long)]
        namespace: String,
        /// Start of the window (RFC 3339, or a date: 2026-11-01).
        #[arg(long, value_name = "TIME")]
        since: String,
        /// End of the window (exclusive; a date means the end of that day). Default: now.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Print events as JSON lines (one object per event, with its chain hash).
    Export {
        /// Only events at or after this time (RFC 3339, or a date: 2026-11-01).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only events before this time.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only events by or about this user id or name.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only events in this cluster.
        #[arg(long, value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
}

/// Formats of `audit export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

/// `policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the Kubernetes groups a person would get in a cluster and which rule gave each.
    Explain {
        /// Login name (local or signed in through an upstream provider).
        #[arg(long)]
        user: String,
        /// Cluster name.
        #[arg(long)]
        cluster: String,
    },
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

/// `request ...`.
#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// List access requests, newest first.
    List {
        /// Only pending ones.
        #[arg(long)]
        pending: bool,
    },
    /// Approve a pending request: its grant starts now.
    Approve {
        /// Request id.
        id: String,
        /// Recorded with the decision.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Deny a pending request.
    Deny {
        /// Request id.
        id: String,
        /// Why (required; the requester sees it).
        #[arg(long)]
        comment: String,
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

impl GrantAddArgs {
    /// The flags as the words of a grant, for [`crate::service::admin::new_grant`].
    #[must_use]
    pub fn words(&self) -> GrantWords {
        GrantWords {
            user: self.user.clone(),
            group: self.group.clone(),
            cluster: self.cluster.clone(),
            namespaces: self.namespaces.clone(),
            role: self.role.clone(),
            from: self.from.clone(),
            until: self.until.clone(),
            for_: self.for_.clone(),
            reason: self.reason.clone(),
        }
    }
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

/// `proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The cluster to proxy (a `[[clusters]]` name with a `[clusters.proxy]` table).
    #[arg(long, value_name = "NAME")]
    pub cluster: String,
    /// Public https URL of the issuer, as `serve` has it: tokens must carry it as `iss`.
    #[arg(long, env = env::ISSUER_URL, value_name = "URL")]
    pub issuer_url: Option<String>,
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

/// `invite ...`.
#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create an account valid until --expires and print a single-use link where the person
    /// sets a password and enrols a second factor (TOTP). Nothing secret is shown here.
    Create {
        /// Login name of the new account.
        #[arg(long)]
        name: String,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// A group (repeatable).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// End of the account: a duration (30d, 12h) or a date (2026-12-31, valid through
        /// that day, UTC).
        #[arg(long, value_name = "DURATION|DATE")]
        expires: String,
        /// Lifetime of the link (default: `[accounts] invitation_ttl`, 24h).
        #[arg(long, value_name = "DURATION")]
        link_ttl: Option<String>,
        /// Public https URL of the issuer, for the link (default: the configured one).
        #[arg(long, env = env::ISSUER_URL, value_name = "URL")]
        issuer_url: Option<String>,
    },
    /// List invitations and their state (no secrets).
    List,
    /// Withdraw the unused invitation of an account.
    Revoke {
        /// Login name.
        name: String,
    },
    /// A new single-use link for an account that was invited but never set up (its link
    /// expired or was revoked). The account keeps its groups and end; older links stop working.
    Renew {
        /// Login name.
        name: String,
        /// Lifetime of the link (default: `[accounts] invitation_ttl`, 24h).
        #[arg(long, value_name = "DURATION")]
        link_ttl: Option<String>,
        /// Public https URL of the issuer, for the link (default: the configured one).
        #[arg(long, env = env::ISSUER_URL, value_name = "URL")]
        issuer_url: Option<String>,
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
        let proxy_url = match &self.command {
            Command::Proxy(a) => a.issuer_url.clone(),
            _ => None,
        };
        let invite_url = match &self.command {
            Command::Invite(
                InviteCommand::Create { issuer_url, .. } | InviteCommand::Renew { issuer_url, .. },
            ) => issuer_url.clone(),
            _ => None,
        };
        Overrides {
            config_file: self.global.config.clone(),
            data_dir: self.global.data_dir.clone(),
            encryption_key_file: self.global.encryption_key_file.clone(),
            database_url: self.global.database_url.clone(),
            // Read here, not through a flag: a key on the command line would show in `ps`.
            encryption_key: std::env::var(env::ENCRYPTION_KEY)
                .ok()
                .filter(|k| !k.trim().is_empty())
                .map(crate::secrets::secret::Secret::new),
            listen: serve.and_then(|a| a.listen.clone()),
            issuer_url: serve
                .and_then(|a| a.issuer_url.clone())
                .or(invite_url)
                .or(proxy_url),
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
    fn the_help_says_admin_commands_need_the_servers_store() {
        use clap::CommandFactory as _;
        let help = Cli::command().render_help().to_string();
        for needed in [
            "--config",
            "--data-dir",
            env::DATABASE_URL,
            "encryption key",
        ] {
            assert!(help.contains(needed), "{needed} missing from:\n{help}");
        }
    }

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
    fn parses_invite_create() {
        let cli = Cli::try_parse_from([
            "credential-issuer",
            "invite",
            "create",
            "--name",
            "alice",
            "--email",
            "alice@example.com",
            "--group",
            "dev",
            "--group",
            "ops",
            "--expires",
            "30d",
            "--link-ttl",
            "2h",
            "--issuer-url",
            "https://issuer.example.com",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cli.overrides().issuer_url.as_deref(),
            Some("https://issuer.example.com")
        );
        match cli.command {
            Command::Invite(InviteCommand::Create {
                name,
                groups,
                expires,
                link_ttl,
                ..
            }) => {
                assert_eq!(name, "alice");
                assert_eq!(groups, ["dev", "ops"]);
                assert_eq!(expires, "30d");
                assert_eq!(link_ttl.as_deref(), Some("2h"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["credential-issuer", "invite", "create", "--name", "a"]).is_err(),
            "--expires is required"
        );
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
