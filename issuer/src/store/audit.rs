//! The audit trail: append-only rows, never log lines.

use time::OffsetDateTime;

use super::{Result, Store};

/// One audit event.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// What happened, e.g. `login`, `token.issued`, `refresh`, `session.revoked`.
    pub event: &'static str,
    /// Who did it (user name, `admin-cli`, or `system`).
    pub actor: Option<String>,
    /// Whom it is about.
    pub subject: Option<String>,
    /// Cluster.
    pub cluster: Option<String>,
    /// Client address.
    pub client_addr: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Extra detail (JSON text). Never contains a secret.
    pub detail: Option<String>,
}

impl Store {
    /// Appends an event.
    pub async fn audit(&self, e: &AuditEvent, now: OffsetDateTime) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (at, event, actor, subject, cluster, client_addr, request_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(now.unix_timestamp())
        .bind(e.event)
        .bind(&e.actor)
        .bind(&e.subject)
        .bind(&e.cluster)
        .bind(&e.client_addr)
        .bind(&e.request_id)
        .bind(&e.detail)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The event names recorded for `subject`, oldest first (for tests and the admin CLI).
    pub async fn audit_events_for(&self, subject: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT event FROM audit_events WHERE subject = ? ORDER BY seq")
                .bind(subject)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
