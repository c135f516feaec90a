//! `user add`, `user list` and `user disable`: local accounts, and the password prompt.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use credential_shared::text::Untrusted;

use crate::cli::args::UserCommand;
use crate::cli::output::say;
use crate::cli::Error;
use crate::clock::format_utc as format_time;
use crate::config::Config;
use crate::secrets::secret::Secret;
use crate::service::admin;
use crate::store::PrincipalKind;

/// Runs a `user` command.
pub(super) async fn user(config: Config, cmd: UserCommand) -> Result<(), Error> {
    let store = super::open_store(&config).await?;
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
        UserCommand::List { all } => {
            for u in store.list_users().await? {
                if !all && u.kind != PrincipalKind::Person {
                    continue;
                }
                let provider = store.upstream_provider_of(&u.id).await?;
                let state = if u.disabled_at.is_some() {
                    "disabled".to_owned()
                } else if u.is_expired(now) {
                    "expired".to_owned()
                } else if u.kind != PrincipalKind::Person {
                    // A machine identity signs in with a key or a platform token, never a
                    // password: not "invited".
                    u.kind.as_str().to_owned()
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
fn read_password() -> Result<Secret, Error> {
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ").map_err(Error::PromptPassword)?;
        let b = rpassword::prompt_password("Repeat password: ").map_err(Error::PromptPassword)?;
        if a != b {
            return Err(Error::PasswordsDiffer);
        }
        Ok(Secret::new(a))
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(Error::ReadPassword)?;
        let _ = std::io::stderr().flush();
        Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
    }
}
