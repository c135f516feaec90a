//! `credential-issuer`: parses the command line, loads the config, and calls the library.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Parser as _;
use credential_issuer::cli::args::{
    AuditCommand, Cli, Command, GrantCommand, InviteCommand, KeysCommand, PolicyCommand,
    ReconcileArgs, ReportCommand, ReportFormat, RequestCommand, UserCommand,
};
use credential_issuer::cli::banner;
use credential_issuer::clock::format_utc as format_time;
use credential_issuer::config::{Config, SigningKeys};
use credential_issuer::secrets::secret::Secret;
use credential_issuer::serve as server;
use credential_issuer::service::{admin, reports, state as app};
use credential_issuer::telemetry::logging as telemetry;
use credential_issuer::{clock, signing, store};
use credential_shared::text::{Untrusted, LONG};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain can quote names from the database, a provider or a cluster.
            eprintln!(
                "error: {}",
                Untrusted::bounded(format_args!("{e:#}"), 2 * LONG)
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.overrides()).context("invalid configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(_) => {
            telemetry::init("info");
            runtime.block_on(serve(config))
        }
        Command::CheckConfig(_) => {
            say(&format!(
                "configuration is valid: issuer {} on {}, {} cluster(s), data in {}, database {}",
                config.issuer(),
                config.listen,
                config.clusters.len(),
                Untrusted::long(config.data_dir.display()),
                Untrusted::long(config.database_description())
            ));
            Ok(())
        }
        Command::User(cmd) => {
            telemetry::init("warn");
            runtime.block_on(user(config, cmd))
        }
        Command::Invite(cmd) => {
            telemetry::init("warn");
            runtime.block_on(invite(config, cmd))
        }
        Command::Keys(cmd) => runtime.block_on(keys(&config, &cmd)),
        Command::Audit(cmd) => {
            telemetry::init("warn");
            runtime.block_on(audit(config, cmd))
        }
        Command::Report(cmd) => {
            telemetry::init("warn");
            runtime.block_on(report(config, cmd))
        }
        Command::Policy(cmd) => {
            telemetry::init("warn");
            runtime.block_on(policy(config, cmd))
        }
        Command::Grant(cmd) => {
            telemetry::init("warn");
            runtime.block_on(grant(config, cmd))
        }
        Command::Request(cmd) => {
            telemetry::init("warn");
            runtime.block_on(request(config, cmd))
        }
        Command::Reconcile(args) => {
            telemetry::init("warn");
            runtime.block_on(reconcile(config, &args))
        }
    }
}

async fn policy(config: Config, cmd: PolicyCommand) -> anyhow::Result<()> {
    let PolicyCommand::Explain { user, cluster } = cmd;
    if config.cluster(&cluster).is_none() {
        bail!("no cluster called {cluster:?} is configured");
    }
    let store = open_store(&config).await?;
    let Some(found) = store.user_by_name(&user).await? else {
        bail!("no user called {user:?}");
    };
    say(admin::explain(&config.policy, &found.username, &found.groups, &cluster).trim_end());
    Ok(())
}

/// Writes a line for the operator on stdout (the CLI's output, not a log).
#[expect(clippy::print_stdout, reason = "command output for the operator")]
fn say(line: &str) {
    println!("{line}");
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {} (set --listen)", config.listen))?;
    let files = server::tls_files(&config)?;
    let tls = credential_issuer::serve::tls::server_config(&files.cert, &files.key)?;
    let state = app::AppState::open(config, Arc::new(clock::SystemClock)).await?;
    let cfg = state.config();
    // The bound address, not the configured one: with `--listen 127.0.0.1:0` the log says
    // which port the system chose.
    let listen = listener.local_addr().unwrap_or(cfg.listen);
    tracing::info!(issuer = %cfg.issuer(), %listen, "credential-issuer serving");
    let keys = state.signer().source().to_string();
    let kid = state.signer().active_kid();
    let facts = banner::Facts {
        listen,
        keys: &keys,
        kid: &kid,
        cert: &files.cert,
        generated_ca: files.ca.as_deref(),
    };
    eprint!("{}", banner::render(cfg, &facts));
    server::serve(listener, state, tls, shutdown_signal())
        .await
        .context("server failed")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn open_store(config: &Config) -> anyhow::Result<store::Store> {
    app::create_private_dir(&config.data_dir)?;
    store::Store::open(&config.database).await.with_context(|| {
        format!(
            "cannot open the database ({})",
            config.database_description()
        )
    })
}

fn report_format(f: ReportFormat) -> reports::Format {
    match f {
        ReportFormat::Table => reports::Format::Table,
        ReportFormat::Jsonl => reports::Format::Jsonl,
    }
}

/// Prints text as is (reports end their own lines).
fn print_report(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write the report")
}

async fn report(config: Config, cmd: ReportCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match cmd {
        ReportCommand::Stale { days, format } => {
            let now = time::OffsetDateTime::now_utc();
            let r = reports::stale(&store, days, now).await?;
            print_report(&reports::render_stale(&r, days, report_format(format)))
        }
    }
}

async fn audit(config: Config, cmd: AuditCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match cmd {
        AuditCommand::Access {
            cluster,
            namespace,
            since,
            until,
            format,
        } => {
            let now = time::OffsetDateTime::now_utc();
            let window = credential_issuer::domain::access::Window {
                since: admin::parse_time("--since", &since, false)?,
                until: until
                    .as_deref()
                    .map(|u| admin::parse_time("--until", u, true))
                    .transpose()?
                    // Events are stored in whole seconds: "until now" includes this second.
                    .unwrap_or(now + time::Duration::seconds(1)),
            };
            if window.until <= window.since {
                bail!("--until must be after --since");
            }
            let a =
                reports::audit_access(&store, &config, &cluster, &namespace, window, now).await?;
            print_report(&reports::render_access(&a, report_format(format)))?;
        }
        AuditCommand::Verify { expect_head } => {
            let s = admin::audit_verify(&store, expect_head.as_deref()).await?;
            let head = s.head.map_or_else(
                || "none".to_owned(),
                |(seq, h)| format!("{seq}:{}", Untrusted::new(h)),
            );
            say(&format!(
                "audit trail verified: {} event(s) chained, {} newest not sealed yet\nhead {head}",
                s.sealed, s.pending
            ));
        }
        AuditCommand::Export {
            since,
            until,
            user,
            cluster,
            format: _,
        } => {
            let person_alias = match &user {
                Some(name) => store.user_by_name(name).await?.map(|u| u.id),
                None => None,
            };
            let filter = store::AuditFilter {
                since: since
                    .as_deref()
                    .map(|s| admin::parse_time("--since", s, false))
                    .transpose()?,
                until: until
                    .as_deref()
                    .map(|s| admin::parse_time("--until", s, false))
                    .transpose()?,
                person: user,
                person_alias,
                cluster,
                ..store::AuditFilter::default()
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            admin::audit_export(&store, &filter, &mut out).await?;
        }
    }
    Ok(())
}

async fn grant(config: Config, cmd: GrantCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let now = time::OffsetDateTime::now_utc();
    match cmd {
        GrantCommand::Add(a) => {
            let new = admin::new_grant(&a.words(), now)?;
            let g = admin::add_grant(&store, &config, &new, admin::ADMIN_ACTOR, now).await?;
            say(&format!(
                "granted {} to {} in {} until {} (grant {})",
                Untrusted::new(&g.role),
                Untrusted::new(&g.grantee),
                admin::grant_scope(&g),
                admin::format_time(g.ends_at),
                Untrusted::new(&g.id)
            ));
        }
        GrantCommand::List { user, cluster, all } => {
            let filter = store::GrantFilter { user, cluster, all };
            let grants = store.list_grants(&filter, now).await?;
            say(admin::grant_table(&grants, now).trim_end());
        }
        GrantCommand::Revoke { id, reason } => {
            let g = admin::revoke_grant(&store, &id, reason.as_deref(), admin::ADMIN_ACTOR, now)
                .await?;
            say(&format!(
                "revoked grant {} ({} for {}); its bindings are removed within seconds",
                Untrusted::new(&g.id),
                Untrusted::new(&g.role),
                Untrusted::new(&g.grantee)
            ));
        }
    }
    Ok(())
}

async fn request(config: Config, cmd: RequestCommand) -> anyhow::Result<()> {
    use credential_issuer::domain::requests::Decider;
    use credential_issuer::service::requests as svc;
    let store = open_store(&config).await?;
    let now = time::OffsetDateTime::now_utc();
    let (approve, id, comment) = match cmd {
        RequestCommand::List { pending } => {
            let filter = store::RequestFilter {
                pending,
                ..store::RequestFilter::default()
            };
            let list = store.list_requests(&filter, now).await?;
            say(admin::request_table(&list, now).trim_end());
            return Ok(());
        }
        RequestCommand::Approve { id, comment } => (true, id, comment),
        RequestCommand::Deny { id, comment } => (false, id, Some(comment)),
    };
    let decision = svc::Decision {
        id: &id,
        decider: Decider::Admin,
        actor: admin::ADMIN_ACTOR,
        approve,
        comment: comment.as_deref(),
    };
    let (r, notices) = svc::decide(&store, &config, decision, &svc::Origin::default(), now).await?;
    say(&format!(
        "request {} of {} {}",
        Untrusted::new(&r.id),
        Untrusted::new(&r.requester),
        if approve {
            "approved; the grant reaches the cluster within seconds"
        } else {
            "denied"
        }
    ));
    // The process exits next: wait for the notifications (each has its own timeout).
    let notifier = credential_issuer::service::notify::Notifier::new(
        config.notifications.clone(),
        config.issuer(),
    );
    for (kind, r) in notices {
        if let Some(sent) = notifier.send(kind, &r, None) {
            let _ = sent.await;
        }
    }
    admin::seal_audit_trail_after_command(&store).await;
    Ok(())
}

/// `--link-ttl`, or the configured default.
fn link_ttl_of(config: &Config, flag: Option<String>) -> Result<std::time::Duration, admin::Error> {
    match flag {
        Some(t) => credential_issuer::config::parse_duration(&t)
            .filter(|d| !d.is_zero())
            .ok_or(admin::Error::LinkTtl(t)),
        None => Ok(config.accounts.invitation_ttl),
    }
}

async fn invite(config: Config, cmd: InviteCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let now = time::OffsetDateTime::now_utc();
    match cmd {
        InviteCommand::Create {
            name,
            email,
            groups,
            expires,
            link_ttl,
            issuer_url: _,
        } => {
            let link_ttl = link_ttl_of(&config, link_ttl)?;
            let req = admin::InviteRequest {
                name: &name,
                email: email.as_deref(),
                groups: &groups,
                account_expires_at: admin::parse_expiry(&expires, now)?,
                link_ttl,
            };
            let created = admin::create_invitation(&store, &req, now).await?;
            say(&format!(
                "invited {} (groups: {}); the account expires {}",
                Untrusted::new(&name),
                Untrusted::long(groups.join(", ")),
                format_time(created.account_expires_at)
            ));
            say(&format!(
                "single-use link, valid until {}; hand it to {} over a channel you trust:",
                format_time(created.link_expires_at),
                Untrusted::new(&name)
            ));
            say(&format!(
                "{}/invite/{}",
                config.issuer(),
                created.token.expose()
            ));
        }
        InviteCommand::List => {
            for i in store.list_invitations().await? {
                let state = if i.used_at.is_some() {
                    "used"
                } else if i.revoked_at.is_some() {
                    "revoked"
                } else if i.expires_at <= now {
                    "expired"
                } else {
                    "pending"
                };
                say(&format!(
                    "{}\t{state}\tcreated {}\tlink expires {}\taccount expires {}",
                    Untrusted::new(&i.username),
                    format_time(i.created_at),
                    format_time(i.expires_at),
                    i.account_expires_at
                        .map_or_else(|| "never".to_owned(), format_time),
                ));
            }
        }
        InviteCommand::Renew {
            name,
            link_ttl,
            issuer_url: _,
        } => {
            let link_ttl = link_ttl_of(&config, link_ttl)?;
            let renewed = admin::renew_invitation(&store, &name, link_ttl, now).await?;
            say(&format!(
                "renewed the invitation of {}; older links no longer work; the account expires {}",
                Untrusted::new(&name),
                format_time(renewed.account_expires_at)
            ));
            say(&format!(
                "single-use link, valid until {}; hand it to {} over a channel you trust:",
                format_time(renewed.link_expires_at),
                Untrusted::new(&name)
            ));
            say(&format!(
                "{}/invite/{}",
                config.issuer(),
                renewed.token.expose()
            ));
        }
        InviteCommand::Revoke { name } => {
            let n = admin::revoke_invitations(&store, &name, now).await?;
            say(&format!(
                "revoked {n} invitation(s) of {}",
                Untrusted::new(&name)
            ));
        }
    }
    admin::seal_audit_trail_after_command(&store).await;
    Ok(())
}

async fn reconcile(config: Config, args: &ReconcileArgs) -> anyhow::Result<()> {
    use credential_issuer::kube::reconcile;
    let store = open_store(&config).await?;
    let metrics = credential_issuer::telemetry::metrics::Metrics::default();
    let mut failed = false;
    for cluster in &config.clusters {
        if args.cluster.as_ref().is_some_and(|c| *c != cluster.name) {
            continue;
        }
        let ctx = reconcile::Ctx {
            roles: &config.roles,
            store: &store,
            metrics: &metrics,
            now: time::OffsetDateTime::now_utc(),
        };
        match reconcile::round(ctx, cluster, args.dry_run).await {
            Ok(report) => {
                let verb = if args.dry_run {
                    "would change"
                } else {
                    "changed"
                };
                say(&format!(
                    "cluster {}: {verb} {} object(s)",
                    Untrusted::new(&cluster.name),
                    report.changes.len()
                ));
                for c in &report.changes {
                    say(&format!("  {}", Untrusted::long(c)));
                }
                for (c, e) in &report.failed {
                    failed = true;
                    say(&format!(
                        "  FAILED {}: {}",
                        Untrusted::long(c),
                        Untrusted::long(e)
                    ));
                }
            }
            Err(e @ reconcile::RoundError::NoAccess(_)) if args.cluster.is_none() => {
                say(&format!(
                    "cluster {}: skipped ({})",
                    Untrusted::new(&cluster.name),
                    Untrusted::long(&e)
                ));
            }
            Err(e) => {
                failed = true;
                eprintln!(
                    "error: {}",
                    Untrusted::bounded(format_args!("{e:#}"), 2 * LONG)
                );
            }
        }
    }
    if failed {
        bail!("the reconcile round did not complete");
    }
    Ok(())
}

async fn user(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let now = time::OffsetDateTime::now_utc();
    match cmd {
        UserCommand::Add {
            name,
            groups,
            email,
        } => {
            let password = read_password()?;
            admin::add_user(&store, &name, &groups, email.as_deref(), &password, now).await?;
            say(&format!(
                "created user {} (groups: {})",
                Untrusted::new(&name),
                Untrusted::long(groups.join(", "))
            ));
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                let provider = store.upstream_provider_of(&u.id).await?;
                let state = if u.disabled_at.is_some() {
                    "disabled".to_owned()
                } else if u.is_expired(now) {
                    "expired".to_owned()
                } else if let Some(p) = provider {
                    format!("active via {}", Untrusted::new(&p))
                } else if u.password_hash.is_none() {
                    "invited".to_owned()
                } else {
                    "active".to_owned()
                };
                say(&format!(
                    "{}\t{}\t{}\t{}\texpires {}\t2fa {}",
                    Untrusted::new(&u.username),
                    state,
                    Untrusted::new(u.email.as_deref().unwrap_or_default()),
                    Untrusted::long(u.groups.join(",")),
                    u.expires_at.map_or_else(|| "never".to_owned(), format_time),
                    if u.totp_enrolled { "totp" } else { "none" },
                ));
            }
        }
        UserCommand::Disable { name } => {
            let ended = admin::disable_user(&store, &name, now).await?;
            say(&format!(
                "disabled user {}; ended {ended} session(s)",
                Untrusted::new(&name)
            ));
        }
    }
    // Chain what this command wrote at once, rather than waiting for a running server.
    admin::seal_audit_trail_after_command(&store).await;
    Ok(())
}

/// Reads a new password: prompted twice on a terminal, else one line from stdin.
fn read_password() -> anyhow::Result<Secret> {
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let b =
            rpassword::prompt_password("Repeat password: ").context("cannot read the password")?;
        if a != b {
            bail!("the passwords do not match");
        }
        Ok(Secret::new(a))
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let _ = std::io::stderr().flush();
        Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
    }
}

async fn keys(config: &Config, cmd: &KeysCommand) -> anyhow::Result<()> {
    let source = match config.signing_keys_source() {
        SigningKeys::Directory => signing::KeySource::Directory(config.keys_dir()),
        SigningKeys::Database => {
            let store = open_store(config).await?;
            admin::database_key_source(config, &store)
                .context("cannot open the signing keys in the database")?
        }
    };
    match cmd {
        KeysCommand::Rotate => {
            // Old keys stay published for one token lifetime, so every token still valid
            // keeps verifying; running issuers pick the new key up within seconds.
            let key = admin::rotate_keys(&source, config, time::OffsetDateTime::now_utc()).await?;
            say(&format!(
                "new signing key {} is active",
                Untrusted::new(&key.kid)
            ));
        }
        KeysCommand::List => {
            for k in admin::list_keys(&source).await? {
                say(&format!("{}\t{}", Untrusted::new(&k.kid), k.created_at));
            }
        }
    }
    Ok(())
}
