//! `invite create`, `invite list`, `invite renew` and `invite revoke`: accounts the person
//! sets up through a single-use link this command prints.

use credential_shared::text::Untrusted;

use crate::cli::args::InviteCommand;
use crate::cli::output::say;
use crate::cli::Error;
use crate::clock::format_utc as format_time;
use crate::config::Config;
use crate::service::admin;

/// Runs an `invite` command.
pub(super) async fn invite(config: Config, cmd: InviteCommand) -> Result<(), Error> {
    let store = super::open_store(&config).await?;
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
            say_link(&config, &name, &created);
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
            say_link(&config, &name, &renewed);
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

/// `--link-ttl`, or the configured default.
fn link_ttl_of(config: &Config, flag: Option<String>) -> Result<std::time::Duration, admin::Error> {
    match flag {
        Some(t) => crate::config::parse_duration(&t)
            .filter(|d| !d.is_zero())
            .ok_or(admin::Error::LinkTtl(t)),
        None => Ok(config.accounts.invitation_ttl),
    }
}

/// The lines `invite create` and `invite renew` end with: the link, and how to hand it over.
fn say_link(config: &Config, name: &str, link: &admin::CreatedInvitation) {
    say(&format!(
        "single-use link, valid until {}; hand it to {} over a channel you trust:",
        format_time(link.link_expires_at),
        Untrusted::new(name)
    ));
    say(&format!(
        "{}/invite/{}",
        config.issuer(),
        link.token.expose()
    ));
}
