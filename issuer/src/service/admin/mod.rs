//! Administrative operations behind the `user`, `invite`, `grant`, `policy`, `audit` and `keys`
//! commands, one file per command family. They work on the same data directory as a running
//! server (`SQLite` in WAL mode allows it), so an administrator can disable an account while
//! the issuer is serving and the next refresh fails.
//!
//! This module owns the [`Error`] every operation returns and the actor they are recorded as
//! ([`ADMIN_ACTOR`]); its items are re-exported here, so callers name `service::admin::X`.

mod audit;
mod grants;
mod invites;
mod keys;
mod machines;
mod policy;
mod tables;
mod times;
mod users;

pub use audit::{audit_export, audit_verify, seal_audit_trail, seal_audit_trail_after_command};
pub use grants::{add_grant, grant_id, new_grant, revoke_grant, GrantWords};
pub use invites::{
    create_invitation, parse_expiry, renew_invitation, revoke_invitations, CreatedInvitation,
    InviteRequest,
};
pub use keys::{database_key_source, list_keys, rotate_keys};
pub use machines::{
    add_machine, disable_machine, disable_workload, enable_machine, enable_workload, list_machines,
    list_workloads, parse_public_key, rotate_machine_key, MachineRequest, WorkloadState,
};
pub use policy::explain;
pub use tables::{grant_scope, grant_table, request_table};
pub use times::{format_time, parse_time};
pub use users::{add_user, disable_user, MIN_PASSWORD_LEN};

use time::OffsetDateTime;

use crate::domain::audit_chain;
use crate::domain::names::NameError;
use crate::store::{AuditEvent, Store};

/// An administrative operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user or group name is not allowed.
    #[error("invalid {what} {value:?}: {source}")]
    Name {
        /// `user name` or `group`.
        what: &'static str,
        /// The value.
        value: String,
        /// The rule it broke.
        #[source]
        source: NameError,
    },
    /// The password is unusable.
    #[error("the password must be at least 12 characters")]
    WeakPassword,
    /// The e-mail address is not plausible.
    #[error("invalid e-mail address {0:?}")]
    Email(String),
    /// `--expires` is neither a duration nor a date.
    #[error("invalid --expires {0:?}: give a duration like 30d or 12h, or a date like 2026-12-31")]
    Expiry(String),
    /// `--expires` is not in the future.
    #[error("--expires {0:?} is not in the future")]
    ExpiryPast(String),
    /// `--link-ttl` is not a positive duration.
    #[error("invalid --link-ttl {0:?}: give a duration like 24h or 30m")]
    LinkTtl(String),
    /// `invite renew` for an account that has been set up (or was never invited).
    #[error("{0:?} has no invitation to renew: the account was set up already (the person signs in) or was not created by `invite create`")]
    NotRenewable(String),
    /// `invite create` for a name whose invited account was never set up.
    #[error("user {0:?} already exists and was invited but never set up; give them a new link with `credential-issuer invite renew {0}`")]
    InvitedNotSetUp(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The audit trail does not verify.
    #[error("the audit trail does not verify: {0}")]
    Audit(#[from] audit_chain::Problem),
    /// A `SEQ:HASH` head could not be read.
    #[error("invalid head {0:?}: expected SEQ:HASH as printed by `audit verify`")]
    Head(String),
    /// Writing the output failed.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] crate::secrets::password::Error),
    /// The grant breaks a rule of the policy.
    #[error(transparent)]
    Grant(#[from] crate::domain::grants::GrantError),
    /// A grant for a user who has no account.
    #[error("no user {0:?}; create the account first (user add)")]
    NoSuchUser(String),
    /// The signing keys could not be read, created or deleted.
    #[error(transparent)]
    Signing(#[from] crate::signing::Error),
    /// The encryption key (for signing keys in the database) could not be loaded.
    #[error(transparent)]
    Seal(#[from] crate::secrets::seal::SealError),
    /// A time or duration flag could not be read.
    #[error("{flag}: {message}")]
    Time {
        /// The flag.
        flag: &'static str,
        /// What is expected.
        message: String,
    },
}

/// Who the admin CLI acts as in the audit trail.
pub const ADMIN_ACTOR: &str = "admin-cli";

/// Records an event done by the admin command line about `subject` in the audit trail.
async fn record(
    store: &Store,
    event: &'static str,
    subject: &str,
    detail: Option<String>,
    now: OffsetDateTime,
) -> Result<(), Error> {
    store
        .audit(
            &AuditEvent {
                event,
                actor: Some(ADMIN_ACTOR.into()),
                subject: Some(subject.to_owned()),
                detail,
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    Ok(())
}
