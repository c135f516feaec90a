//! Login sessions and their rotating refresh tokens (OAuth 2.0 Security BCP section 4.14:
//! every refresh spends the presented token; presenting a spent one revokes the session).

use time::OffsetDateTime;

use super::{opt_ts, ts, Result, Store};

/// A login session: one device-flow login of one user for one cluster and client.
#[derive(Debug, Clone)]
pub struct Session {
    /// Id (the `sid` claim).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Client it was issued to.
    pub client_id: String,
    /// Cluster.
    pub cluster: String,
    /// Start.
    pub created_at: OffsetDateTime,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
    /// Set when revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Result of presenting a refresh token.
#[derive(Debug, Clone)]
pub enum RotateOutcome {
    /// The token was live and is now spent; the new one is stored. The session is returned
    /// as it was *before* any liveness check: the caller decides.
    Rotated(Session),
    /// The token had been spent before: its session is now revoked.
    Reused {
        /// The revoked session.
        session_id: String,
        /// Its owner.
        user_id: String,
    },
    /// No such token.
    Unknown,
}

type SessionRow = (String, String, String, String, i64, i64, Option<i64>);

fn from_row(r: SessionRow) -> Result<Session> {
    Ok(Session {
        id: r.0,
        user_id: r.1,
        client_id: r.2,
        cluster: r.3,
        created_at: ts("sessions", r.4)?,
        expires_at: ts("sessions", r.5)?,
        revoked_at: opt_ts("sessions", r.6)?,
    })
}

impl Store {
    /// Creates a session with its first refresh token.
    pub async fn create_session(&self, s: &Session, refresh_hash: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, client_id, cluster, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.client_id)
        .bind(&s.cluster)
        .bind(s.created_at.unix_timestamp())
        .bind(s.expires_at.unix_timestamp())
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)")
            .bind(refresh_hash)
            .bind(&s.id)
            .bind(s.created_at.unix_timestamp())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spends `old_hash` and stores `new_hash` for the same session, atomically; or detects
    /// reuse and revokes the session.
    pub async fn rotate_refresh(&self, old_hash: &str, new_hash: &str, now: OffsetDateTime) -> Result<RotateOutcome> {
        let t = now.unix_timestamp();
        let mut tx = self.pool.begin().await?;
        // The conditional UPDATE is the single point of truth: of two racing presenters of
        // the same token, exactly one sees a row here.
        let spent: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL RETURNING session_id",
        )
        .bind(t)
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = if let Some(session_id) = spent {
            sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)")
                .bind(new_hash)
                .bind(&session_id)
                .bind(t)
                .execute(&mut *tx)
                .await?;
            let row: SessionRow = sqlx::query_as(
                "SELECT id, user_id, client_id, cluster, created_at, expires_at, revoked_at FROM sessions WHERE id = ?",
            )
            .bind(&session_id)
            .fetch_one(&mut *tx)
            .await?;
            RotateOutcome::Rotated(from_row(row)?)
        } else {
            let owner: Option<(String, String)> = sqlx::query_as(
                "SELECT s.id, s.user_id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = ?",
            )
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match owner {
                Some((session_id, user_id)) => {
                    sqlx::query(
                        "UPDATE sessions SET revoked_at = ?, revoke_reason = 'refresh token reused' WHERE id = ? AND revoked_at IS NULL",
                    )
                    .bind(t)
                    .bind(&session_id)
                    .execute(&mut *tx)
                    .await?;
                    RotateOutcome::Reused { session_id, user_id }
                }
                None => RotateOutcome::Unknown,
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Revokes the session a refresh token (spent or not) belongs to. Returns the session id
    /// if there was one.
    pub async fn revoke_by_refresh(&self, hash: &str, reason: &str, now: OffsetDateTime) -> Result<Option<(String, String)>> {
        let owner: Option<(String, String)> = sqlx::query_as(
            "SELECT s.id, s.user_id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        if let Some((id, _)) = &owner {
            sqlx::query("UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now.unix_timestamp())
                .bind(reason)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(owner)
    }

    /// A session by id.
    pub async fn session(&self, id: &str) -> Result<Option<Session>> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT id, user_id, client_id, cluster, created_at, expires_at, revoked_at FROM sessions WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use crate::store::NewUser;

    #[tokio::test]
    async fn rotation_and_reuse_detection() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        s.create_user(
            &NewUser {
                id: "u1".into(),
                username: "a".into(),
                email: None,
                password_hash: None,
                groups: vec![],
            },
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let sess = Session {
            id: "s1".into(),
            user_id: "u1".into(),
            client_id: "c".into(),
            cluster: "k".into(),
            created_at: now,
            expires_at: now + time::Duration::hours(1),
            revoked_at: None,
        };
        s.create_session(&sess, "r1").await.unwrap_or_else(|e| panic!("{e}"));
        let o = s.rotate_refresh("r1", "r2", now).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(o, RotateOutcome::Rotated(ref x) if x.id == "s1" && x.revoked_at.is_none()), "{o:?}");
        let o = s.rotate_refresh("r1", "r3", now).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(o, RotateOutcome::Reused { ref session_id, .. } if session_id == "s1"), "{o:?}");
        // The live token r2 now belongs to a revoked session.
        let o = s.rotate_refresh("r2", "r4", now).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(o, RotateOutcome::Rotated(ref x) if x.revoked_at.is_some()), "{o:?}");
        let o = s.rotate_refresh("nope", "r5", now).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(o, RotateOutcome::Unknown));
    }
}
