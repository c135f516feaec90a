//! Access requests end to end, for both callers (the HTTP handlers and the admin CLI): file,
//! decide, expire, each with its audit event, its grant and its notification. Rules live in
//! `domain::requests`, SQL in `store`.

use std::time::Duration;

use credential_shared::text::Untrusted;
use time::OffsetDateTime;

use crate::config::Config;
use crate::domain::grants::{self, Grant, Grantee};
use crate::domain::requests::{
    self as rules, AccessRequest, Decider, DecisionError, Filing, FilingError, Outcome,
    RequestStatus,
};
use crate::service::notify::Kind;
use crate::store::{AuditEvent, Store};

/// Why a request operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The filing breaks the policy.
    #[error(transparent)]
    Filing(#[from] FilingError),
    /// The decider may not decide.
    #[error(transparent)]
    Decision(#[from] DecisionError),
    /// The grant the approval would create breaks the grant rules.
    #[error(transparent)]
    Grant(#[from] grants::GrantError),
    /// No such request.
    #[error("no access request {0:?}")]
    NotFound(String),
    /// A denial needs a comment.
    #[error("a denial needs a comment (--comment)")]
    CommentRequired,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// Where an operation came from, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Client address (`None` for the CLI).
    pub client_addr: Option<String>,
    /// HTTP request id.
    pub http_request_id: Option<String>,
}

/// A notification to send once the operation is committed.
pub type Notice = (Kind, AccessRequest);

/// Files a request for `requester`. A self-approvable break-glass role is approved at once
/// (with its alert). Returns the request as stored and the notifications to send.
pub async fn file(
    store: &Store,
    config: &Config,
    requester: &str,
    f: &credential_shared::api::NewAccessRequest,
    origin: &Origin,
    now: OffsetDateTime,
) -> Result<(AccessRequest, Vec<Notice>), Error> {
    let reason = f.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let duration = Duration::from_secs(f.duration_secs);
    let outcome = rules::check_filing(
        &Filing {
            requester,
            cluster: &f.cluster,
            role: &f.role,
            namespaces: &f.namespaces,
            reason,
            duration,
        },
        &config.roles,
        &config.clusters,
    )?;
    let r = AccessRequest {
        id: crate::service::admin::grant_id(),
        requester: requester.to_owned(),
        cluster: f.cluster.clone(),
        role: f.role.clone(),
        namespaces: f.namespaces.clone(),
        reason: reason.map(str::to_owned),
        duration,
        created_at: now,
        expires_at: now + grants::span(config.request_pending_ttl),
        status: RequestStatus::Pending,
        decided_by: None,
        comment: None,
        decided_at: None,
        grant_id: None,
        client_addr: origin.client_addr.clone(),
    };
    store.insert_request(&r).await?;
    store
        .audit(&event("request.filed", &r, requester, origin), now)
        .await?;
    if outcome == Outcome::BreakGlass {
        let approved = approve(
            store,
            config,
            &r,
            requester,
            Some("break-glass"),
            origin,
            now,
        )
        .await?;
        store
            .audit(
                &event("request.break_glass", &approved, requester, origin),
                now,
            )
            .await?;
        tracing::warn!(
            request = %approved.id,
            requester = %Untrusted::new(&approved.requester),
            role = %Untrusted::new(&approved.role),
            cluster = %Untrusted::new(&approved.cluster),
            "break-glass role self-approved"
        );
        return Ok((approved.clone(), vec![(Kind::BreakGlass, approved)]));
    }
    Ok((r.clone(), vec![(Kind::Filed, r)]))
}

/// A decision on a request.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// The request.
    pub id: &'a str,
    /// Who decides (the rules that apply to them).
    pub decider: Decider<'a>,
    /// Their name in the trail and on the grant.
    pub actor: &'a str,
    /// Approve (`true`) or deny.
    pub approve: bool,
    /// Their comment (required for a denial).
    pub comment: Option<&'a str>,
}

/// Approves or denies a request.
pub async fn decide(
    store: &Store,
    config: &Config,
    d: Decision<'_>,
    origin: &Origin,
    now: OffsetDateTime,
) -> Result<(AccessRequest, Vec<Notice>), Error> {
    let Decision {
        id,
        decider,
        actor,
        approve: approve_it,
        comment,
    } = d;
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    rules::check_text("comment", comment)?;
    let r = store
        .request(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.chars().take(40).collect()))?;
    rules::may_decide(&r, decider, &config.roles, now)?;
    if approve_it {
        let done = approve(store, config, &r, actor, comment, origin, now).await?;
        Ok((done.clone(), vec![(Kind::Approved, done)]))
    } else {
        let Some(comment) = comment else {
            return Err(Error::CommentRequired);
        };
        let done = store
            .deny_request(&r.id, actor, Some(comment), now)
            .await?
            .ok_or_else(|| lost(&r, now))?;
        store
            .audit(&event("request.denied", &done, actor, origin), now)
            .await?;
        Ok((done.clone(), vec![(Kind::Denied, done)]))
    }
}

fn lost(r: &AccessRequest, now: OffsetDateTime) -> Error {
    // Someone else decided between the read and the update: report it as decided.
    Error::Decision(DecisionError::NotPending {
        id: r.id.clone(),
        status: match r.status_at(now) {
            RequestStatus::Pending => "already decided",
            s => s.as_str(),
        },
    })
}

async fn approve(
    store: &Store,
    config: &Config,
    r: &AccessRequest,
    actor: &str,
    comment: Option<&str>,
    origin: &Origin,
    now: OffsetDateTime,
) -> Result<AccessRequest, Error> {
    let grant = Grant {
        id: crate::service::admin::grant_id(),
        grantee: Grantee::User(r.requester.clone()),
        cluster: r.cluster.clone(),
        namespaces: r.namespaces.clone(),
        role: r.role.clone(),
        starts_at: now,
        ends_at: now + grants::span(r.duration),
        reason: r.reason.clone(),
        created_by: actor.to_owned(),
        approved_by: Some(actor.to_owned()),
        request_id: Some(r.id.clone()),
        revoked_at: None,
        revoked_by: None,
    };
    grants::validate(&grant, &config.roles, &config.clusters, now)?;
    let done = store
        .approve_request(&r.id, actor, comment, &grant, now)
        .await?
        .ok_or_else(|| lost(r, now))?;
    store
        .audit(&event("request.approved", &done, actor, origin), now)
        .await?;
    // The grant the approval created is a grant like any other: its own row, as for
    // `grant add` (docs/operations.md lists both).
    let mut created = AuditEvent::for_grant("grant.created", &grant, actor, None);
    created.client_addr.clone_from(&origin.client_addr);
    store.audit(&created, now).await?;
    Ok(done)
}

/// Records pending requests past their deadline as expired (with audit events).
pub async fn expire(store: &Store, now: OffsetDateTime) -> Result<Vec<Notice>, Error> {
    let mut out = Vec::new();
    for r in store.expire_requests(now).await? {
        store
            .audit(
                &event("request.expired", &r, "system", &Origin::default()),
                now,
            )
            .await?;
        out.push((Kind::Expired, r));
    }
    Ok(out)
}

/// The wire view of `r` at `now`, with its grant's end.
pub async fn info(
    store: &Store,
    r: &AccessRequest,
    now: OffsetDateTime,
) -> Result<credential_shared::api::AccessRequestInfo, Error> {
    let grant = match &r.grant_id {
        Some(id) => store.grant(id).await?,
        None => None,
    };
    Ok(credential_shared::api::AccessRequestInfo {
        id: r.id.clone(),
        requester: r.requester.clone(),
        cluster: r.cluster.clone(),
        role: r.role.clone(),
        namespaces: r.namespaces.clone(),
        reason: r.reason.clone(),
        duration_secs: r.duration.as_secs(),
        status: r.status_at(now).as_str().to_owned(),
        created_at: r.created_at.unix_timestamp(),
        decided_by: r.decided_by.clone(),
        comment: r.comment.clone(),
        grant_id: r.grant_id.clone(),
        grant_ends_at: grant.as_ref().map(|g| g.ends_at.unix_timestamp()),
        grant_active: grant.as_ref().is_some_and(|g| g.is_active(now)),
    })
}

fn event(name: &'static str, r: &AccessRequest, actor: &str, origin: &Origin) -> AuditEvent {
    let detail = serde_json::json!({
        "status": r.status.as_str(),
        "duration_secs": r.duration.as_secs(),
        "namespaces": r.namespaces,
        "grant_id": r.grant_id,
        "comment": r.comment,
        "http_request_id": origin.http_request_id,
    });
    AuditEvent {
        event: name,
        actor: Some(actor.to_owned()),
        subject: Some(format!("user:{}", r.requester)),
        cluster: Some(r.cluster.clone()),
        namespace: (!r.namespaces.is_empty()).then(|| r.namespaces.join(",")),
        role: Some(r.role.clone()),
        reason: r.reason.clone(),
        approver: r.decided_by.clone(),
        client_addr: origin.client_addr.clone(),
        request_id: Some(r.id.clone()),
        detail: Some(detail.to_string()),
    }
}
