//! Browser sessions of the verification pages: which person signed in, which device
//! authorization they are looking at, and the CSRF token their forms must carry.

use time::OffsetDateTime;

use super::{ts, Result, Store};
use crate::secrets::secret::Secret;

/// A browser session. The cookie value is not stored, only its hash.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// SHA-256 of the cookie value.
    pub id_hash: String,
    /// Token every form must echo.
    pub csrf_token: Secret,
    /// Signed-in user.
    pub user_id: Option<String>,
    /// Device authorization being approved.
    pub device_id: Option<String>,
    /// End of the browser session.
    pub expires_at: OffsetDateTime,
}

type WebRow = (String, String, Option<String>, Option<String>, i64);

impl Store {
    /// Stores a new browser session.
    pub async fn create_web_session(&self, w: &WebSession, now: OffsetDateTime) -> Result<()> {
        let q = sqlx::query(
            "INSERT INTO web_sessions (id_hash, csrf_token, user_id, device_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&w.id_hash)
        .bind(w.csrf_token.expose())
        .bind(&w.user_id)
        .bind(&w.device_id)
        .bind(now.unix_timestamp())
        .bind(w.expires_at.unix_timestamp());
        self.run(q).await
    }

    /// The live browser session with this hash.
    pub async fn web_session(
        &self,
        id_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<WebSession>> {
        let row: Option<WebRow> = sqlx::query_as(
            "SELECT id_hash, csrf_token, user_id, device_id, expires_at FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now.unix_timestamp())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(WebSession {
                id_hash: r.0,
                csrf_token: Secret::new(r.1),
                user_id: r.2,
                device_id: r.3,
                expires_at: ts("web_sessions", r.4)?,
            })
        })
        .transpose()
    }

    /// Points a browser session at a device authorization (or at none).
    pub async fn set_web_device(&self, id_hash: &str, device_id: Option<&str>) -> Result<()> {
        let q = sqlx::query("UPDATE web_sessions SET device_id = $1 WHERE id_hash = $2")
            .bind(device_id)
            .bind(id_hash);
        self.run(q).await
    }

    /// Marks a browser session as waiting for the second factor of `user_id` until `until`
    /// (the two-step sign-in), or clears that.
    pub async fn set_web_pending(
        &self,
        id_hash: &str,
        pending: Option<(&str, OffsetDateTime)>,
    ) -> Result<()> {
        let q = sqlx::query(
            "UPDATE web_sessions SET pending_user_id = $1, pending_until = $2 WHERE id_hash = $3",
        )
        .bind(pending.map(|p| p.0))
        .bind(pending.map(|p| p.1.unix_timestamp()))
        .bind(id_hash);
        self.run(q).await
    }

    /// The account whose second factor this browser session is waiting for, if not too late.
    pub async fn web_pending(&self, id_hash: &str, now: OffsetDateTime) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT pending_user_id FROM web_sessions WHERE id_hash = $1 AND expires_at > $2 AND pending_until > $2 AND pending_user_id IS NOT NULL",
        )
        .bind(id_hash)
        .bind(now.unix_timestamp())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Remembers where to send the browser after sign-in (a path starting with `/`), or
    /// forgets it.
    pub async fn set_web_return_to(&self, id_hash: &str, path: Option<&str>) -> Result<()> {
        let q = sqlx::query("UPDATE web_sessions SET return_to = $1 WHERE id_hash = $2")
            .bind(path)
            .bind(id_hash);
        self.run(q).await
    }

    /// Where to send the browser after sign-in, if somewhere.
    pub async fn web_return_to(&self, id_hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT return_to FROM web_sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.write)
        .await?
        .flatten())
    }

    /// Ends a browser session.
    pub async fn delete_web_session(&self, id_hash: &str) -> Result<()> {
        let q = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1").bind(id_hash);
        self.run(q).await
    }
}
