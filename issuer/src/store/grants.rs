//! Grants: rows written by `grant add`/`grant revoke` (and later by approved access requests),
//! read by the reconciler (per cluster) and by token minting (per user).

use sqlx::Row as _;
use time::OffsetDateTime;

use super::{opt_ts, ts, Error, Result, Store};
use crate::domain::grants::{Grant, Grantee};

const TABLE: &str = "grants";
const COLUMNS: &str = "g.id, g.username, g.group_name, g.cluster, g.namespaces, g.role, g.starts_at, g.ends_at, g.reason, g.created_by, g.approved_by, g.request_id, g.revoked_at, g.revoked_by";

/// Which grants `list_grants` returns.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    /// Only grants of this user.
    pub user: Option<String>,
    /// Only grants in this cluster.
    pub cluster: Option<String>,
    /// Also revoked and ended grants.
    pub all: bool,
}

fn row_to_grant(row: &sqlx::any::AnyRow) -> Result<Grant> {
    let username: Option<String> = row.try_get("username")?;
    let group: Option<String> = row.try_get("group_name")?;
    let grantee = match (username, group) {
        (Some(u), None) => Grantee::User(u),
        (None, Some(g)) => Grantee::Group(g),
        _ => {
            return Err(Error::Corrupt {
                table: TABLE,
                detail: "a grant must name a user or a group".into(),
            })
        }
    };
    let namespaces: String = row.try_get("namespaces")?;
    Ok(Grant {
        id: row.try_get("id")?,
        grantee,
        cluster: row.try_get("cluster")?,
        namespaces: namespaces
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        role: row.try_get("role")?,
        starts_at: ts(TABLE, row.try_get("starts_at")?)?,
        ends_at: ts(TABLE, row.try_get("ends_at")?)?,
        reason: row.try_get("reason")?,
        created_by: row.try_get("created_by")?,
        approved_by: row.try_get("approved_by")?,
        request_id: row.try_get("request_id")?,
        revoked_at: opt_ts(TABLE, row.try_get("revoked_at")?)?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

impl Store {
    /// The grants a `SELECT {COLUMNS} FROM grants g ...` finds, in its order.
    async fn grants_of(&self, q: super::Bound<'_>) -> Result<Vec<Grant>> {
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_grant)
            .collect()
    }

    /// Stores a new grant (validated by the caller).
    pub async fn insert_grant(&self, g: &Grant, now: OffsetDateTime) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        insert_grant_on(&mut conn, g, now).await
    }

    /// The grant with `id`.
    pub async fn grant(&self, id: &str) -> Result<Option<Grant>> {
        let sql = format!("SELECT {COLUMNS} FROM grants g WHERE g.id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(row_to_grant)
            .transpose()
    }

    /// Grants matching `filter`, newest start first. Without `all`, only those not revoked and
    /// not ended at `now`.
    pub async fn list_grants(
        &self,
        filter: &GrantFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<Grant>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM grants g WHERE ($1 IS NULL OR g.username = $1) AND ($2 IS NULL OR g.cluster = $2) AND ($3 OR (g.revoked_at IS NULL AND g.ends_at > $4)) ORDER BY g.starts_at DESC, g.id"
        );
        let q = sqlx::query(&sql)
            .bind(&filter.user)
            .bind(&filter.cluster)
            .bind(filter.all)
            .bind(now.unix_timestamp());
        self.grants_of(q).await
    }

    /// The grants of `cluster` that are in force or will be (not revoked, not ended at `now`),
    /// leaving out grants of disabled or deleted accounts: what the reconciler works from.
    pub async fn current_grants_for_cluster(
        &self,
        cluster: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Grant>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM grants g LEFT JOIN users u ON u.username = g.username WHERE g.cluster = $1 AND g.revoked_at IS NULL AND g.ends_at > $2 AND (g.group_name IS NOT NULL OR (u.id IS NOT NULL AND u.disabled_at IS NULL)) ORDER BY g.id"
        );
        let q = sqlx::query(&sql).bind(cluster).bind(now.unix_timestamp());
        self.grants_of(q).await
    }

    /// The grants in force at `now` in `cluster` for `username` or any of `groups`: what a
    /// token minted now carries.
    pub async fn active_grants_for(
        &self,
        username: &str,
        groups: &[String],
        cluster: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Grant>> {
        let now_s = now.unix_timestamp();
        let groups_in = self.backend.json_strings("$5");
        let sql = format!(
            "SELECT {COLUMNS} FROM grants g WHERE g.cluster = $1 AND g.revoked_at IS NULL AND g.starts_at <= $2 AND g.ends_at > $3 AND (g.username = $4 OR g.group_name IN ({groups_in})) ORDER BY g.id"
        );
        let groups_json = serde_json::to_string(groups).map_err(|e| Error::Corrupt {
            table: TABLE,
            detail: e.to_string(),
        })?;
        let q = sqlx::query(&sql)
            .bind(cluster)
            .bind(now_s)
            .bind(now_s)
            .bind(username)
            .bind(groups_json);
        self.grants_of(q).await
    }

    /// Revokes grant `id` unless it is already revoked. Returns the grant as it now stands.
    pub async fn revoke_grant(
        &self,
        id: &str,
        by: &str,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Grant> {
        let done = sqlx::query(
            "UPDATE grants SET revoked_at = $1, revoked_by = $2, revoke_reason = $3 WHERE id = $4 AND revoked_at IS NULL",
        )
        .bind(now.unix_timestamp())
        .bind(by)
        .bind(reason)
        .bind(id)
        .execute(&self.write)
        .await?
        .rows_affected();
        let grant = self
            .grant(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("grant {id:?}")))?;
        if done == 0 {
            return Err(Error::Conflict(format!("a revocation of grant {id}")));
        }
        Ok(grant)
    }

    /// A number that changes whenever the set of active grants may have changed (a grant
    /// written or revoked, an account disabled), from this process or another.
    pub async fn grants_epoch(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT version FROM grants_epoch WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// Inserts `g` on `conn` (a plain connection or a transaction).
pub(super) async fn insert_grant_on(
    conn: &mut sqlx::AnyConnection,
    g: &Grant,
    now: OffsetDateTime,
) -> Result<()> {
    let (user, group) = match &g.grantee {
        Grantee::User(u) => (Some(u.as_str()), None),
        Grantee::Group(n) => (None, Some(n.as_str())),
    };
    sqlx::query(
        "INSERT INTO grants (id, username, group_name, cluster, namespaces, role, starts_at, ends_at, reason, created_by, created_at, approved_by, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&g.id)
    .bind(user)
    .bind(group)
    .bind(&g.cluster)
    .bind(g.namespaces.join(","))
    .bind(&g.role)
    .bind(g.starts_at.unix_timestamp())
    .bind(g.ends_at.unix_timestamp())
    .bind(&g.reason)
    .bind(&g.created_by)
    .bind(now.unix_timestamp())
    .bind(&g.approved_by)
    .bind(&g.request_id)
    .execute(conn)
    .await
    .map_err(|e| {
        if super::is_unique_violation(&e) {
            Error::Conflict(format!("grant {}", g.id))
        } else {
            Error::Database(e)
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{add_user, temp_store};

    fn grant(id: &str, grantee: Grantee, now: OffsetDateTime) -> Grant {
        Grant {
            id: id.into(),
            grantee,
            cluster: "prod".into(),
            namespaces: vec!["a".into(), "b".into()],
            role: "viewer".into(),
            starts_at: now,
            ends_at: now + time::Duration::hours(1),
            reason: Some("why".into()),
            created_by: "admin-cli".into(),
            approved_by: None,
            request_id: Some("req-1".into()),
            revoked_at: None,
            revoked_by: None,
        }
    }

    #[tokio::test]
    async fn grants_round_trip_and_follow_revocation_and_disabling() {
        let (s, _d) = temp_store().await;
        let now =
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or_else(|e| panic!("{e}"));
        add_user(&s, "u1", "alice", &["sre"], now).await;
        let e0 = s.grants_epoch().await.unwrap_or_else(|e| panic!("{e}"));
        let a = grant("ga", Grantee::User("alice".into()), now);
        let g = grant("gg", Grantee::Group("sre".into()), now);
        s.insert_grant(&a, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.insert_grant(&g, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            s.insert_grant(&a, now).await,
            Err(Error::Conflict(_))
        ));
        assert_eq!(s.grant("ga").await.ok().flatten().as_ref(), Some(&a));
        let e1 = s.grants_epoch().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(e1 > e0);

        let mine = s
            .active_grants_for("alice", &["sre".into()], "prod", now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mine.len(), 2);
        let later = now + time::Duration::hours(2);
        assert!(s
            .active_grants_for("alice", &[], "prod", later)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());

        let revoked = s
            .revoke_grant("gg", "admin-cli", Some("done"), now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(revoked.revoked_by.as_deref(), Some("admin-cli"));
        assert!(matches!(
            s.revoke_grant("gg", "admin-cli", None, now).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.revoke_grant("nope", "admin-cli", None, now).await,
            Err(Error::NotFound(_))
        ));
        let current = s
            .current_grants_for_cluster("prod", now)
            .await
            .unwrap_or_default();
        assert_eq!(
            current.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
            ["ga"]
        );

        let e2 = s.grants_epoch().await.unwrap_or_else(|e| panic!("{e}"));
        s.disable_user("alice", now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.grants_epoch().await.unwrap_or_default() > e2);
        assert!(s
            .current_grants_for_cluster("prod", now)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());

        let all = s
            .list_grants(
                &GrantFilter {
                    all: true,
                    ..GrantFilter::default()
                },
                now,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.len(), 2);
        let open = s
            .list_grants(&GrantFilter::default(), now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(open.len(), 1);
    }
}
