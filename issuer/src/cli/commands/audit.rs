//! `audit access`, `audit verify` and `audit export`: who could reach a namespace, whether the
//! trail's hash chain holds, and the trail itself as JSON lines.

use credential_shared::text::Untrusted;

use crate::cli::args::AuditCommand;
use crate::cli::output::{print_report, say};
use crate::cli::Error;
use crate::config::Config;
use crate::domain::access::Window;
use crate::service::{admin, reports};
use crate::store::AuditFilter;

/// Runs an `audit` command.
pub(super) async fn audit(config: Config, cmd: AuditCommand) -> Result<(), Error> {
    let store = super::open_store(&config).await?;
    match cmd {
        AuditCommand::Access {
            cluster,
            namespace,
            since,
            until,
            format,
        } => {
            let now = time::OffsetDateTime::now_utc();
            let window = Window {
                since: admin::parse_time("--since", &since, false)?,
                until: until
                    .as_deref()
                    .map(|u| admin::parse_time("--until", u, true))
                    .transpose()?
                    // Events are stored in whole seconds: "until now" includes this second.
                    .unwrap_or(now + time::Duration::seconds(1)),
            };
            if window.until <= window.since {
                return Err(Error::EmptyWindow);
            }
            let a =
                reports::audit_access(&store, &config, &cluster, &namespace, window, now).await?;
            print_report(&reports::render_access(&a, super::report_format(format)))?;
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
            let filter = AuditFilter {
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
                ..AuditFilter::default()
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            admin::audit_export(&store, &filter, &mut out).await?;
        }
    }
    Ok(())
}
