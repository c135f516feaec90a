//! Access requests: filed by people, decided by approvers. Approval is one conditional UPDATE
//! (`WHERE status = 'pending'`) and the grant's INSERT in the same transaction, so two
//! approvers racing cannot both win, and an approved request always has its grant.

use std::time::Duration;

use sqlx::Row as _;
use time::OffsetDateTime;

use super::{opt_ts, ts, Error, Result, Store};
use crate::domain::grants::Grant;
use crate::domain::requests::{AccessRequest, RequestStatus};

const TABLE: &str = "access_requests";
const COLUMNS: &str = "id, requester, cluster, role, namespaces, reason, duration_secs, created_at, expires_at, status, decided_by, comment, decided_at, grant_id, client_addr";

/// Which requests `list_requests` returns.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Only requests of this person.
    pub requester: Option<String>,
    /// Only pending ones (not past their deadline).
    pub pending: bool,
    /// At most this many, newest first (0: 200).
    pub limit: u32,
}

fn row_to_request(row: &sqlx::any::AnyRow) -> Result<AccessRequest> {
    let namespaces: String = row.try_get("namespaces")?;
    let status: String = row.try_get("status")?;
    let secs: i64 = row.try_get("duration_secs")?;
    Ok(AccessRequest {
        id: row.try_get("id")?,
        requester: row.try_get("requester")?,
        cluster: row.try_get("cluster")?,
        role: row.try_get("role")?,
        namespaces: namespaces
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        reason: row.try_get("reason")?,
        duration: Duration::from_secs(u64::try_from(secs).map_err(|_| Error::Corrupt {
            table: TABLE,
            detail: "negative duration".into(),
        })?),
        created_at: ts(TABLE, row.try_get("created_at")?)?,
        expires_at: ts(TABLE, row.try_get("expires_at")?)?,
        status: RequestStatus::parse(&status).ok_or_else(|| Error::Corrupt {
            table: TABLE,
            detail: format!("unknown status {status:?}"),
        })?,
        decided_by: row.try_get("decided_by")?,
        comment: row.try_get("comment")?,
        decided_at: opt_ts(TABLE, row.try_get("decided_at")?)?,
        grant_id: row.try_get("grant_id")?,
        client_addr: row.try_get("client_addr")?,
    })
}

impl Store {
    /// Stores a new (pending) request.
    pub async fn insert_request(&self, r: &AccessRequest) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO access_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(&r.id)
        .bind(&r.requester)
        .bind(&r.cluster)
        .bind(&r.role)
        .bind(r.namespaces.join(","))
        .bind(&r.reason)
        .bind(i64::try_from(r.duration.as_secs()).unwrap_or(i64::MAX))
        .bind(r.created_at.unix_timestamp())
        .bind(r.expires_at.unix_timestamp())
        .bind(r.status.as_str())
        .bind(&r.decided_by)
        .bind(&r.comment)
        .bind(r.decided_at.map(OffsetDateTime::unix_timestamp))
        .bind(&r.grant_id)
        .bind(&r.client_addr)
        .execute(&self.write)
        .await
        .map_err(|e| {
            if super::is_unique_violation(&e) {
                Error::Conflict(format!("request {}", r.id))
            } else {
                Error::Database(e)
            }
        })?;
        Ok(())
    }

    /// The request with `id`.
    pub async fn request(&self, id: &str) -> Result<Option<AccessRequest>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM access_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(row_to_request)
        .transpose()
    }

    /// Requests matching `filter`, newest first.
    pub async fn list_requests(
        &self,
        filter: &RequestFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<AccessRequest>> {
        let limit = if filter.limit == 0 { 200 } else { filter.limit };
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM access_requests WHERE ($1 IS NULL OR requester = $1) AND (NOT $2 OR (status = 'pending' AND expires_at > $3)) ORDER BY created_at DESC, id LIMIT $4"
        ))
        .bind(&filter.requester)
        .bind(filter.pending)
        .bind(now.unix_timestamp())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row_to_request)
        .collect()
    }

    /// Approves request `id` if it is still pending and not past its deadline, and stores
    /// `grant` in the same transaction. `None`: someone else decided first (or it expired).
    pub async fn approve_request(
        &self,
        id: &str,
        approver: &str,
        comment: Option<&str>,
        grant: &Grant,
        now: OffsetDateTime,
    ) -> Result<Option<AccessRequest>> {
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        let won = sqlx::query(
            "UPDATE access_requests SET status = 'approved', decided_by = $1, comment = $2, decided_at = $3, grant_id = $4 WHERE id = $5 AND status = 'pending' AND expires_at > $6",
        )
        .bind(approver)
        .bind(comment)
        .bind(now.unix_timestamp())
        .bind(&grant.id)
        .bind(id)
        .bind(now.unix_timestamp())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if won == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        // The grant references the request; the request references the grant: insert the
        // grant with the foreign key satisfied inside the transaction (checked at commit).
        super::grants::insert_grant_on(&mut tx, grant, now).await?;
        tx.commit().await?;
        self.request(id).await
    }

    /// Denies request `id` if still pending. `None`: someone else decided first.
    pub async fn deny_request(
        &self,
        id: &str,
        by: &str,
        comment: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Option<AccessRequest>> {
        let deny = sqlx::query(
            "UPDATE access_requests SET status = 'denied', decided_by = $1, comment = $2, decided_at = $3 WHERE id = $4 AND status = 'pending' AND expires_at > $5",
        )
        .bind(by)
        .bind(comment)
        .bind(now.unix_timestamp())
        .bind(id)
        .bind(now.unix_timestamp());
        if !self.won(deny).await? {
            return Ok(None);
        }
        self.request(id).await
    }

    /// Records every pending request past its deadline as expired; returns them.
    pub async fn expire_requests(&self, now: OffsetDateTime) -> Result<Vec<AccessRequest>> {
        let rows = sqlx::query(&format!(
            "UPDATE access_requests SET status = 'expired', decided_at = $1 WHERE status = 'pending' AND expires_at <= $1 RETURNING {COLUMNS}"
        ))
        .bind(now.unix_timestamp())
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(row_to_request).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grants::Grantee;
    use crate::store::test_support::temp_store;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn pending(id: &str) -> AccessRequest {
        AccessRequest {
            id: id.into(),
            requester: "alice".into(),
            cluster: "prod".into(),
            role: "prod-exec".into(),
            namespaces: vec!["payments".into()],
            reason: Some("OOM".into()),
            duration: Duration::from_secs(1800),
            created_at: NOW,
            expires_at: NOW + time::Duration::hours(1),
            status: RequestStatus::Pending,
            decided_by: None,
            comment: None,
            decided_at: None,
            grant_id: None,
            client_addr: Some("127.0.0.1".into()),
        }
    }

    fn grant(id: &str, request: &str) -> Grant {
        Grant {
            id: id.into(),
            grantee: Grantee::User("alice".into()),
            cluster: "prod".into(),
            namespaces: vec!["payments".into()],
            role: "prod-exec".into(),
            starts_at: NOW,
            ends_at: NOW + time::Duration::minutes(30),
            reason: Some("OOM".into()),
            created_by: "bob".into(),
            approved_by: Some("bob".into()),
            request_id: Some(request.into()),
            revoked_at: None,
            revoked_by: None,
        }
    }

    fn ok<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn two_approvers_racing_one_wins_and_the_grant_comes_with_the_approval() {
        let (store, _dir) = temp_store().await;
        ok(store.insert_request(&pending("r1")).await);
        let (g1, g2) = (grant("g1", "r1"), grant("g2", "r1"));
        let (a, b) = tokio::join!(
            store.approve_request("r1", "bob", Some("go"), &g1, NOW),
            store.approve_request("r1", "carol", None, &g2, NOW),
        );
        let (a, b) = (ok(a), ok(b));
        assert!(a.is_some() != b.is_some(), "exactly one approval wins");
        let r = ok(store.request("r1").await).unwrap_or_else(|| panic!("request gone"));
        assert_eq!(r.status, RequestStatus::Approved);
        let gid = r.grant_id.clone().unwrap_or_default();
        let g = ok(store.grant(&gid).await).unwrap_or_else(|| panic!("grant missing"));
        assert_eq!(g.request_id.as_deref(), Some("r1"));
        assert_eq!(g.approved_by, r.decided_by);
        // The loser's grant was never written.
        let other = if gid == "g1" { "g2" } else { "g1" };
        assert!(ok(store.grant(other).await).is_none());
        // A decided request cannot be denied any more.
        assert!(ok(store.deny_request("r1", "dave", None, NOW).await).is_none());
    }

    #[tokio::test]
    async fn pending_requests_expire_and_are_listed_by_requester() {
        let (store, _dir) = temp_store().await;
        ok(store.insert_request(&pending("r1")).await);
        let mut other = pending("r2");
        other.requester = "erin".into();
        ok(store.insert_request(&other).await);
        let mine = RequestFilter {
            requester: Some("alice".into()),
            ..RequestFilter::default()
        };
        let listed = ok(store.list_requests(&mine, NOW).await);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0], pending("r1"));
        let late = NOW + time::Duration::hours(1);
        // Past the deadline nobody can approve it, even before the sweep.
        let g1 = grant("g1", "r1");
        assert!(ok(store.approve_request("r1", "bob", None, &g1, late).await).is_none());
        let expired = ok(store.expire_requests(late).await);
        assert_eq!(expired.len(), 2);
        assert!(expired.iter().all(|r| r.status == RequestStatus::Expired));
        let pending_only = RequestFilter {
            pending: true,
            ..RequestFilter::default()
        };
        assert!(ok(store.list_requests(&pending_only, late).await).is_empty());
        assert!(ok(store.expire_requests(late).await).is_empty());
    }
}
