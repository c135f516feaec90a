//! `serve` and `check-config`: the server, started on the configured address until a signal
//! stops it, and the check of the config it would start with.

use std::sync::Arc;

use credential_shared::text::Untrusted;

use crate::cli::banner;
use crate::cli::output::say;
use crate::cli::Error;
use crate::clock;
use crate::config::Config;
use crate::serve as server;
use crate::service::state::AppState;

/// `serve`: binds the listener, opens the state, prints the banner and serves until SIGINT or
/// SIGTERM.
pub(super) async fn serve(config: Config) -> Result<(), Error> {
    let listener = std::net::TcpListener::bind(config.listen).map_err(|source| Error::Listen {
        addr: config.listen,
        source,
    })?;
    let files = server::tls_files(&config)?;
    let tls = server::tls::server_config(&files.cert, &files.key)?;
    let state = AppState::open(config, Arc::new(clock::SystemClock)).await?;
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
        .map_err(Error::Serve)
}

/// Completes at the first SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub(super) async fn shutdown_signal() {
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

/// `check-config`: the config loaded already (or the command failed); says what it names.
pub(super) fn check_config(config: &Config) {
    say(&format!(
        "configuration is valid: issuer {} on {}, {} cluster(s), data in {}, database {}",
        config.issuer(),
        config.listen,
        config.clusters.len(),
        Untrusted::long(config.data_dir.display()),
        Untrusted::long(config.database_description())
    ));
}
