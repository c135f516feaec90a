//! `request list`, `request approve` and `request deny`: access requests, decided by the
//! administrator.

use credential_shared::text::Untrusted;

use crate::cli::args::RequestCommand;
use crate::cli::output::say;
use crate::cli::Error;
use crate::config::Config;
use crate::domain::requests::Decider;
use crate::service::admin;
use crate::service::notify::Notifier;
use crate::service::requests as svc;
use crate::store::RequestFilter;

/// Runs a `request` command.
pub(super) async fn request(config: Config, cmd: RequestCommand) -> Result<(), Error> {
    let store = super::open_store(&config).await?;
    let now = time::OffsetDateTime::now_utc();
    let (approve, id, comment) = match cmd {
        RequestCommand::List { pending } => {
            let filter = RequestFilter {
                pending,
                ..RequestFilter::default()
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
    let notifier = Notifier::new(config.notifications.clone(), config.issuer());
    for (kind, r) in notices {
        if let Some(sent) = notifier.send(kind, &r, None) {
            let _ = sent.await;
        }
    }
    admin::seal_audit_trail_after_command(&store).await;
    Ok(())
}
