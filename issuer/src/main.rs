//! `credential-issuer`: parses the command line, loads the config, and calls the library.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Parser as _;
use credential_issuer::cli::{Cli, Command, KeysCommand, PolicyCommand, UserCommand};
use credential_issuer::config::Config;
use credential_issuer::secret::Secret;
use credential_issuer::{admin, app, clock, server, signing, store, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
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
                "configuration is valid: issuer {} on {}, {} cluster(s), data in {}",
                config.issuer(),
                config.listen,
                config.clusters.len(),
                config.data_dir.display()
            ));
            Ok(())
        }
        Command::User(cmd) => {
            telemetry::init("warn");
            runtime.block_on(user(config, cmd))
        }
        Command::Keys(cmd) => keys(&config, &cmd),
        Command::Policy(cmd) => {
            telemetry::init("warn");
            runtime.block_on(policy(config, cmd))
        }
    }
}

async fn policy(config: Config, cmd: PolicyCommand) -> anyhow::Result<()> {
    let PolicyCommand::Explain { user, cluster } = cmd;
    if config.cluster(&cluster).is_none() {
        bail!("no cluster called {cluster:?} is configured");
    }
    let store = store::Store::open_sqlite(&config.database_path())
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                config.database_path().display()
            )
        })?;
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
    let tls = credential_issuer::tls::server_config(&files.cert, &files.key)?;
    let state = app::AppState::open(config, Arc::new(clock::SystemClock)).await?;
    let cfg = state.config();
    let ca = files.ca.as_deref().unwrap_or(&files.cert);
    tracing::info!(issuer = %cfg.issuer(), listen = %cfg.listen, "credential-issuer serving");
    eprintln!(
        "\ncredential-issuer is serving {issuer} on {listen}\n  data directory: {data}\n  database:       {db}\n  signing keys:   {keys} (active key {kid})\n  TLS CA to trust: {ca}\n\nNext steps:\n  1. Point the API server at this issuer (see install/apiserver-flags.txt):\n       --oidc-issuer-url={issuer} --oidc-ca-file={ca} --oidc-client-id={aud}\n       --oidc-username-claim=preferred_username --oidc-username-prefix=credential: \\\n       --oidc-groups-claim=groups --oidc-groups-prefix=credential: --oidc-signing-algs=ES256\n  2. Create an account:  credential-issuer user add NAME --group GROUP --data-dir {data}\n  3. Log in:             kubectl credential login --issuer {issuer} --cluster {cluster} --issuer-ca {ca}\n",
        issuer = cfg.issuer(),
        listen = cfg.listen,
        data = cfg.data_dir.display(),
        db = cfg.database_path().display(),
        keys = cfg.keys_dir().display(),
        kid = state.signer().active_kid(),
        ca = ca.display(),
        aud = cfg.clusters.first().map_or("kubernetes", |c| c.audience.as_str()),
        cluster = cfg.clusters.first().map_or("default", |c| c.name.as_str()),
    );
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

async fn user(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    app::create_private_dir(&config.data_dir)?;
    let store = store::Store::open_sqlite(&config.database_path())
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                config.database_path().display()
            )
        })?;
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
                "created user {name} (groups: {})",
                groups.join(", ")
            ));
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                let state = if u.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                say(&format!(
                    "{}\t{}\t{}\t{}",
                    u.username,
                    state,
                    u.email.unwrap_or_default(),
                    u.groups.join(",")
                ));
            }
        }
        UserCommand::Disable { name } => {
            let ended = admin::disable_user(&store, &name, now).await?;
            say(&format!("disabled user {name}; ended {ended} session(s)"));
        }
    }
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

fn keys(config: &Config, cmd: &KeysCommand) -> anyhow::Result<()> {
    let dir = config.keys_dir();
    match cmd {
        KeysCommand::Rotate => {
            // Old keys stay published for one token lifetime, so every token still valid
            // keeps verifying; a running issuer picks the new key up within seconds.
            let key = signing::rotate(
                &dir,
                time::OffsetDateTime::now_utc(),
                config.key_retention(),
            )?;
            say(&format!("new signing key {} is active", key.kid));
        }
        KeysCommand::List => {
            for k in signing::list(&dir)? {
                say(&format!("{}\t{}", k.kid, k.created_at));
            }
        }
    }
    Ok(())
}
