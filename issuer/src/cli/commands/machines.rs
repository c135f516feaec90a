//! `machine add|list|disable|enable|rotate-key` and `workload list|disable|enable`: machine
//! identities for the operator.

use credential_shared::text::Untrusted;

use crate::cli::args::{MachineCommand, WorkloadCommand};
use crate::cli::output::say;
use crate::cli::Error;
use crate::clock::format_utc as format_time;
use crate::config::Config;
use crate::service::admin;

/// Largest public key file read.
const MAX_KEY_FILE: u64 = 16 * 1024;

fn read_key(path: &std::path::Path) -> Result<String, Error> {
    use std::io::Read as _;
    let fail = |source| Error::ReadFile {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(fail)?
        .take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(fail)?;
    Ok(text)
}

fn state(disabled: bool, expired: bool) -> &'static str {
    if disabled {
        "disabled"
    } else if expired {
        "expired"
    } else {
        "active"
    }
}

/// Runs a `machine` command.
pub(super) async fn machine(config: Config, cmd: MachineCommand) -> Result<(), Error> {
    let store = super::open_store(&config).await?;
    let now = time::OffsetDateTime::now_utc();
    match cmd {
        MachineCommand::Add {
            name,
            public_key,
            groups,
            clusters,
            until,
        } => {
            let pem = read_key(&public_key)?;
            let req = admin::MachineRequest {
                name: &name,
                public_key_pem: &pem,
                groups: &groups,
                clusters: &clusters,
                until: &until,
            };
            admin::add_machine(&store, &config, &req, now).await?;
            say(&format!(
                "registered machine {} as machine:{} (groups: {}; clusters: {})",
                Untrusted::new(&name),
                Untrusted::new(&name),
                Untrusted::long(groups.join(", ")),
                Untrusted::long(clusters.join(", "))
            ));
        }
        MachineCommand::List => {
            for m in admin::list_machines(&store).await? {
                let p = &m.principal;
                say(&format!(
                    "{}\t{}\tgroups {}\tclusters {}\tuntil {}\tkey set {}",
                    Untrusted::new(&p.username),
                    state(
                        p.disabled_at.is_some(),
                        p.expires_at.is_some_and(|e| now >= e)
                    ),
                    Untrusted::long(m.groups.join(",")),
                    Untrusted::long(m.clusters.join(",")),
                    p.expires_at.map_or_else(|| "never".to_owned(), format_time),
                    format_time(m.rotated_at),
                ));
            }
        }
        MachineCommand::Disable { name } => {
            let ended = admin::disable_machine(&store, &name, now).await?;
            say(&format!(
                "disabled machine {}; ended {ended} session(s)",
                Untrusted::new(&name)
            ));
        }
        MachineCommand::Enable { name } => {
            let changed = admin::enable_machine(&store, &name, now).await?;
            say(&format!(
                "machine {} {}",
                Untrusted::new(&name),
                if changed {
                    "enabled"
                } else {
                    "was not disabled"
                }
            ));
        }
        MachineCommand::RotateKey { name, public_key } => {
            let pem = read_key(&public_key)?;
            admin::rotate_machine_key(&store, &name, &pem, now).await?;
            say(&format!(
                "replaced the key of machine {}; assertions signed with the old key are refused from now",
                Untrusted::new(&name)
            ));
        }
    }
    admin::seal_audit_trail_after_command(&store).await;
    Ok(())
}

/// Runs a `workload` command.
pub(super) async fn workload(config: Config, cmd: WorkloadCommand) -> Result<(), Error> {
    let store = super::open_store(&config).await?;
    let now = time::OffsetDateTime::now_utc();
    match cmd {
        WorkloadCommand::List => {
            let (rules, gone) = admin::list_workloads(&store, &config).await?;
            for w in rules {
                let disabled = w.account.as_ref().is_some_and(|a| a.disabled_at.is_some());
                let word = if w.rule.enabled {
                    state(disabled, false)
                } else {
                    "off in the configuration"
                };
                say(&format!(
                    "{}\t{}\tissuer {}\tidentity {}\tgroups {}\tclusters {}\tlifetime {}s",
                    Untrusted::new(&w.rule.name),
                    word,
                    Untrusted::new(&w.rule.issuer),
                    Untrusted::new(w.rule.identity.as_str()),
                    Untrusted::long(w.rule.groups.join(",")),
                    Untrusted::long(w.rule.clusters.join(",")),
                    w.rule.token_lifetime.as_secs(),
                ));
            }
            for a in gone {
                say(&format!(
                    "{}\tno longer configured (its tokens are refused)",
                    Untrusted::new(&a.username)
                ));
            }
        }
        WorkloadCommand::Disable { name } => {
            let ended = admin::disable_workload(&store, &config, &name, now).await?;
            say(&format!(
                "disabled workload {}; ended {ended} session(s)",
                Untrusted::new(&name)
            ));
        }
        WorkloadCommand::Enable { name } => {
            let changed = admin::enable_workload(&store, &config, &name, now).await?;
            say(&format!(
                "workload {} {}",
                Untrusted::new(&name),
                if changed {
                    "enabled"
                } else {
                    "was not disabled"
                }
            ));
        }
    }
    admin::seal_audit_trail_after_command(&store).await;
    Ok(())
}
