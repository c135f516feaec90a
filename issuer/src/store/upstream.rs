//! Upstream sign-in state: logins on their way through a provider, the link from a provider
//! account to a user, and the provider refresh tokens (sealed by the caller) of grants and
//! sessions.

use time::OffsetDateTime;

use super::sessions::Session;
use super::users::{user_from_json, User};
use super::{is_unique_violation, Error, Result, Store};

/// A login waiting for the provider's callback. The nonce and verifier are sealed strings.
#[derive(Clone)]
pub struct PendingLogin {
    /// SHA-256 of `state`.
    pub state_hash: String,
    /// Provider id.
    pub provider: String,
    /// The browser session that started it.
    pub web_session_hash: String,
    /// Sealed nonce.
    pub nonce_sealed: String,
    /// Sealed PKCE verifier.
    pub verifier_sealed: String,
    /// End of validity.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("provider", &self.provider)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A session started through a provider, found by its current refresh token.
#[derive(Debug, Clone)]
pub struct UpstreamSession {
    /// The session.
    pub session: Session,
    /// Its owner.
    pub user: User,
    /// Provider id.
    pub provider: String,
    /// The provider's refresh token, sealed with context `upstream-session:<session id>`.
    pub refresh_sealed: String,
    /// When the provider last confirmed the person (sign-in or a successful refresh there).
    pub checked_at: OffsetDateTime,
    /// The person's `sub` at the provider, when linked.
    pub subject: Option<String>,
}

/// The sealing context of a session's provider refresh token.
#[must_use]
pub fn session_context(session_id: &str) -> String {
    format!("upstream-session:{session_id}")
}

/// The sealing context of a device grant's provider refresh token.
#[must_use]
pub fn grant_context(device_id: &str) -> String {
    format!("upstream-device:{device_id}")
}

/// The sealing context of a pending login's nonce and verifier.
#[must_use]
pub fn login_context(state_hash: &str, what: &str) -> String {
    format!("upstream-login:{what}:{state_hash}")
}

impl Store {
    /// Stores a login on its way to the provider.
    pub async fn create_upstream_login(&self, l: &PendingLogin, now: OffsetDateTime) -> Result<()> {
        let q = sqlx::query(
            "INSERT INTO upstream_logins (state_hash, provider, web_session_hash, nonce_sealed, verifier_sealed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&l.state_hash)
        .bind(&l.provider)
        .bind(&l.web_session_hash)
        .bind(&l.nonce_sealed)
        .bind(&l.verifier_sealed)
        .bind(now.unix_timestamp())
        .bind(l.expires_at.unix_timestamp());
        self.run(q).await
    }

    /// Takes (deletes and returns) the live login with this state: single use.
    pub async fn take_upstream_login(
        &self,
        state_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<PendingLogin>> {
        let row: Option<(String, String, String, String, String, i64)> = sqlx::query_as(
            "DELETE FROM upstream_logins WHERE state_hash = $1 RETURNING state_hash, provider, web_session_hash, nonce_sealed, verifier_sealed, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.write)
        .await?;
        row.filter(|r| r.5 > now.unix_timestamp())
            .map(|r| {
                Ok(PendingLogin {
                    state_hash: r.0,
                    provider: r.1,
                    web_session_hash: r.2,
                    nonce_sealed: r.3,
                    verifier_sealed: r.4,
                    expires_at: super::ts("upstream_logins", r.5)?,
                })
            })
            .transpose()
    }

    /// The user linked to the provider account (`iss`, `sub`), after updating their e-mail and
    /// groups to what the provider says now; or, on first sign-in, a new user called `username`
    /// (a name a local account already has is a conflict: it is never taken over).
    pub async fn sign_in_upstream(
        &self,
        provider: &str,
        identity: &crate::domain::identity::Identity,
        new_user_id: &str,
        now: OffsetDateTime,
    ) -> Result<User> {
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        let linked: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM upstream_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .fetch_optional(&mut *tx)
        .await?;
        let user_id = if let Some(id) = linked {
            sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
                .bind(&identity.email)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE upstream_identities SET last_login_at = $1 WHERE user_id = $2")
                .bind(now.unix_timestamp())
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            id
        } else {
            let r = sqlx::query("INSERT INTO users (id, username, email, password_hash, created_at) VALUES ($1, $2, $3, NULL, $4)")
                .bind(new_user_id)
                .bind(&identity.username)
                .bind(&identity.email)
                .bind(now.unix_timestamp())
                .execute(&mut *tx)
                .await;
            match r {
                Err(e) if is_unique_violation(&e) => {
                    return Err(Error::Conflict(format!("user {:?}", identity.username)))
                }
                r => r?,
            };
            sqlx::query("INSERT INTO upstream_identities (issuer, subject, provider, user_id, created_at, last_login_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&identity.issuer)
                .bind(&identity.subject)
                .bind(provider)
                .bind(new_user_id)
                .bind(now.unix_timestamp())
                .bind(now.unix_timestamp())
                .execute(&mut *tx)
                .await?;
            new_user_id.to_owned()
        };
        replace_groups(&mut tx, &user_id, &identity.groups).await?;
        let user_json = self
            .backend
            .json_array(&super::users::user_columns(self.backend));
        let user: Option<String> =
            sqlx::query_scalar(&format!("SELECT {user_json} FROM users u WHERE u.id = $1"))
                .bind(&user_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        user_from_json(&user.ok_or_else(|| Error::NotFound("user".into()))?)
    }

    /// Replaces a user's groups with what the provider says now.
    pub async fn set_upstream_groups(&self, user_id: &str, groups: &[String]) -> Result<()> {
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        replace_groups(&mut tx, user_id, groups).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keeps a provider refresh token for the device authorization being approved.
    pub async fn put_upstream_grant(
        &self,
        device_id: &str,
        provider: &str,
        refresh_sealed: &str,
    ) -> Result<()> {
        let q = sqlx::query("INSERT INTO upstream_grants (device_id, provider, refresh_sealed) VALUES ($1, $2, $3) ON CONFLICT (device_id) DO UPDATE SET provider = excluded.provider, refresh_sealed = excluded.refresh_sealed")
            .bind(device_id)
            .bind(provider)
            .bind(refresh_sealed);
        self.run(q).await
    }

    /// Takes the provider refresh token kept for a device authorization: `(provider, sealed)`.
    pub async fn take_upstream_grant(&self, device_id: &str) -> Result<Option<(String, String)>> {
        Ok(sqlx::query_as(
            "DELETE FROM upstream_grants WHERE device_id = $1 RETURNING provider, refresh_sealed",
        )
        .bind(device_id)
        .fetch_optional(&self.write)
        .await?)
    }

    /// Records that a session's refreshes must be checked at `provider`.
    pub async fn put_upstream_session(
        &self,
        session_id: &str,
        provider: &str,
        refresh_sealed: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        let q = sqlx::query("INSERT INTO upstream_sessions (session_id, provider, refresh_sealed, checked_at) VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO UPDATE SET provider = excluded.provider, refresh_sealed = excluded.refresh_sealed, checked_at = excluded.checked_at")
            .bind(session_id)
            .bind(provider)
            .bind(refresh_sealed)
            .bind(now.unix_timestamp());
        self.run(q).await
    }

    /// The live, upstream-backed session whose current refresh token has this hash.
    pub async fn upstream_session_by_refresh(
        &self,
        refresh_hash: &str,
    ) -> Result<Option<UpstreamSession>> {
        type Row = (String, String, String, String, i64, Option<String>);
        let user_json = self
            .backend
            .json_array(&super::users::user_columns(self.backend));
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT s.id, (SELECT {user_json} FROM users u WHERE u.id = s.user_id), x.provider, x.refresh_sealed, x.checked_at,
                    (SELECT i.subject FROM upstream_identities i WHERE i.user_id = s.user_id)
             FROM sessions s JOIN upstream_sessions x ON x.session_id = s.id WHERE s.refresh_hash = $1"
        ))
        .bind(refresh_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, user, provider, refresh_sealed, checked_at, subject)) = row else {
            return Ok(None);
        };
        let Some(session) = self.session(&id).await? else {
            return Ok(None);
        };
        Ok(Some(UpstreamSession {
            session,
            user: user_from_json(&user)?,
            provider,
            refresh_sealed,
            checked_at: super::ts("upstream_sessions", checked_at)?,
            subject,
        }))
    }

    /// Records that the provider confirmed the person of a session just now.
    pub async fn mark_upstream_checked(&self, session_id: &str, now: OffsetDateTime) -> Result<()> {
        let q = sqlx::query("UPDATE upstream_sessions SET checked_at = $1 WHERE session_id = $2")
            .bind(now.unix_timestamp())
            .bind(session_id);
        self.run(q).await
    }

    /// Which provider a user signed in through, if any.
    pub async fn upstream_provider_of(&self, user_id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT provider FROM upstream_identities WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

async fn replace_groups(
    tx: &mut sqlx::AnyConnection,
    user_id: &str,
    groups: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM user_groups WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for g in groups {
        sqlx::query(
            "INSERT INTO user_groups (user_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(g)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::identity::Identity;
    use crate::store::test_support::temp_store;
    use time::macros::datetime;

    fn who(sub: &str, name: &str, groups: &[&str]) -> Identity {
        Identity {
            issuer: "https://idp".into(),
            subject: sub.into(),
            username: name.into(),
            email: Some(format!("{name}@corp.example")),
            email_verified: Some(true),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn first_sign_in_creates_then_links_and_updates_groups() {
        let (s, _d) = temp_store().await;
        let now = datetime!(2026-01-01 12:00 UTC);
        let u = s
            .sign_in_upstream("idp", &who("s1", "ann", &["eng"]), "u1", now)
            .await
            .unwrap();
        assert_eq!(
            (u.id.as_str(), u.groups.clone()),
            ("u1", vec!["eng".to_owned()])
        );
        let u = s
            .sign_in_upstream("idp", &who("s1", "ann", &["ops"]), "u2", now)
            .await
            .unwrap();
        assert_eq!((u.id.as_str(), u.groups), ("u1", vec!["ops".to_owned()]));
        // Another subject claiming an existing name is refused (local accounts alike).
        let err = s
            .sign_in_upstream("idp", &who("s2", "ann", &[]), "u3", now)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err:?}");
        assert_eq!(
            s.upstream_provider_of("u1").await.unwrap().as_deref(),
            Some("idp")
        );
    }

    /// The offline grace counts from the last time the provider confirmed the person: sign-in,
    /// then every successful refresh there, rotated provider token or not.
    #[tokio::test]
    async fn a_session_remembers_its_last_check_and_subject() {
        let (s, _d) = temp_store().await;
        let t0 = datetime!(2026-01-01 12:00 UTC);
        let u = s
            .sign_in_upstream("idp", &who("sub-1", "ann", &["eng"]), "u1", t0)
            .await
            .unwrap();
        let session = Session {
            id: "s1".into(),
            user_id: u.id.clone(),
            client_id: "c".into(),
            cluster: "k".into(),
            created_at: t0,
            expires_at: t0 + time::Duration::hours(8),
            revoked_at: None,
        };
        s.create_session(&session, "rh").await.unwrap();
        s.put_upstream_session("s1", "idp", "sealed", t0)
            .await
            .unwrap();
        let up = s.upstream_session_by_refresh("rh").await.unwrap().unwrap();
        assert_eq!(up.checked_at, t0);
        assert_eq!(up.subject.as_deref(), Some("sub-1"));
        let t1 = t0 + time::Duration::minutes(5);
        s.mark_upstream_checked("s1", t1).await.unwrap();
        let up = s.upstream_session_by_refresh("rh").await.unwrap().unwrap();
        assert_eq!(up.checked_at, t1);
        assert_eq!(up.refresh_sealed, "sealed");
    }

    #[tokio::test]
    async fn pending_logins_are_single_use_and_expire() {
        let (s, _d) = temp_store().await;
        let now = datetime!(2026-01-01 12:00 UTC);
        let l = PendingLogin {
            state_hash: "h".into(),
            provider: "idp".into(),
            web_session_hash: "w".into(),
            nonce_sealed: "n".into(),
            verifier_sealed: "v".into(),
            expires_at: now + time::Duration::minutes(10),
        };
        s.create_upstream_login(&l, now).await.unwrap();
        assert!(s.take_upstream_login("h", now).await.unwrap().is_some());
        assert!(s.take_upstream_login("h", now).await.unwrap().is_none());
        s.create_upstream_login(&l, now).await.unwrap();
        let late = now + time::Duration::minutes(11);
        assert!(s.take_upstream_login("h", late).await.unwrap().is_none());
    }
}
