//! `proxy --cluster NAME`: the impersonating proxy of one cluster, on the address of its
//! `[clusters.proxy]` table, until a signal stops it.

use std::sync::Arc;

use crate::cli::Error;
use crate::clock;
use crate::config::Config;
use crate::service::state::AppState;

/// Binds `[clusters.proxy] listen`, prepares the serving certificate, opens the store as a
/// replica and serves until SIGINT or SIGTERM.
pub(super) async fn proxy(config: Config, cluster: &str) -> Result<(), Error> {
    let addr = crate::proxy::settings(&config, cluster)?.listen;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| Error::ProxyListen { addr, source })?;
    let files = crate::proxy::tls_files(&config, cluster)?;
    let tls = crate::proxy::server_tls(&files)?;
    let state = AppState::open(config, Arc::new(clock::SystemClock)).await?;
    crate::proxy::run(
        listener,
        state,
        cluster,
        tls,
        super::serve::shutdown_signal(),
    )
    .await?;
    Ok(())
}
