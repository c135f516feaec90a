//! The one place that sets up logging. `RUST_LOG` wins over the default level;
//! `CREDENTIAL_ISSUER_LOG_FORMAT=json` switches to JSON lines.

use tracing_subscriber::EnvFilter;

use crate::config::env;

/// Installs the global subscriber (once, from `main`). Logs go to stderr.
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_env(env::RUST_LOG).unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = std::env::var(env::LOG_FORMAT).is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.compact().init();
    }
}
