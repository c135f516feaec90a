//! `keys rotate` and `keys list`: the signing keys, wherever the config keeps them.

use credential_shared::text::Untrusted;

use crate::cli::args::KeysCommand;
use crate::cli::output::say;
use crate::cli::Error;
use crate::config::{Config, SigningKeys};
use crate::service::admin;
use crate::signing::KeySource;

/// Runs a `keys` command.
pub(super) async fn keys(config: &Config, cmd: &KeysCommand) -> Result<(), Error> {
    let source = match config.signing_keys_source() {
        SigningKeys::Directory => KeySource::Directory(config.keys_dir()),
        SigningKeys::Database => {
            let store = super::open_store(config).await?;
            admin::database_key_source(config, &store).map_err(Error::KeySource)?
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
