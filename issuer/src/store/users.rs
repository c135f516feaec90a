//! Accounts and their groups.

use time::OffsetDateTime;

use super::{is_unique_violation, opt_ts, ts, Error, Result, Store};

/// An account.
#[derive(Clone)]
pub struct User {
    /// Stable id, the token's `sub`.
    pub id: String,
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// argon2id PHC string; `None` for accounts that cannot sign in with a password.
    pub password_hash: Option<String>,
    /// Set when disabled.
    pub disabled_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Group names, sorted.
    pub groups: Vec<String>,
    /// End of the account (invited contractors); `None`: no end.
    pub expires_at: Option<OffsetDateTime>,
    /// Whether a second factor (TOTP) is enrolled: sign-in then asks for a code.
    pub totp_enrolled: bool,
    /// A person, or the account of a machine identity (a workload rule, a machine client).
    pub kind: super::PrincipalKind,
}

impl User {
    /// Whether the account has passed its end date at `now`.
    #[must_use]
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[redacted]"),
            )
            .field("disabled_at", &self.disabled_at)
            .field("groups", &self.groups)
            .field("expires_at", &self.expires_at)
            .field("totp_enrolled", &self.totp_enrolled)
            .finish_non_exhaustive()
    }
}

/// What `create_user` needs.
#[derive(Clone)]
pub struct NewUser {
    /// Stable id.
    pub id: String,
    /// Login name (validated by the caller).
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
    /// Groups (validated by the caller).
    pub groups: Vec<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

type UserRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    Option<String>,
    Option<i64>,
    i64,
    String,
);

/// The user columns plus the sorted groups as one newline-joined string, so that loading an
/// account is one query (it happens on every refresh). Group names cannot contain a newline.
/// Alias `u` for `users`.
pub(super) fn user_columns(backend: super::Backend) -> String {
    let groups = match backend {
        super::Backend::Sqlite => "(SELECT group_concat(group_name, char(10)) FROM (SELECT group_name FROM user_groups WHERE user_id = u.id ORDER BY group_name))",
        super::Backend::Postgres => "(SELECT string_agg(group_name, E'\\n' ORDER BY group_name) FROM user_groups WHERE user_id = u.id)",
    };
    format!(
        "u.id, u.username, u.email, u.password_hash, u.disabled_at, u.created_at, {groups}, \
         u.expires_at, (CASE WHEN u.totp_secret_sealed IS NULL THEN 0 ELSE 1 END), u.kind"
    )
}

/// Parses a `json_array(user_columns())` value.
pub(super) fn user_from_json(text: &str) -> Result<User> {
    let row: UserRow = serde_json::from_str(text).map_err(|e| Error::Corrupt {
        table: "users",
        detail: e.to_string(),
    })?;
    Store::user_from_row(row)
}

/// Inserts an account and its groups inside `tx` (creating an invitation does it in the same
/// transaction as the invitation row).
pub(super) async fn insert_user(
    tx: &mut sqlx::AnyConnection,
    u: &NewUser,
    now: OffsetDateTime,
) -> Result<()> {
    let r = sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&u.id)
    .bind(&u.username)
    .bind(&u.email)
    .bind(&u.password_hash)
    .bind(now.unix_timestamp())
    .execute(&mut *tx)
    .await;
    match r {
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::Conflict(format!("user {:?}", u.username)))
        }
        r => r?,
    };
    for g in &u.groups {
        sqlx::query(
            "INSERT INTO user_groups (user_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&u.id)
        .bind(g)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Creates an account.
    pub async fn create_user(&self, u: &NewUser, now: OffsetDateTime) -> Result<()> {
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        insert_user(&mut tx, u, now).await?;
        tx.commit().await?;
        Ok(())
    }

    fn user_from_row(row: UserRow) -> Result<User> {
        let (
            id,
            username,
            email,
            password_hash,
            disabled_at,
            created_at,
            groups,
            expires_at,
            totp,
            kind,
        ) = row;
        let groups = groups
            .map(|g| g.split('\n').map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(User {
            id,
            username,
            email,
            password_hash,
            disabled_at: opt_ts("users", disabled_at)?,
            created_at: ts("users", created_at)?,
            groups,
            expires_at: opt_ts("users", expires_at)?,
            totp_enrolled: totp != 0,
            kind: super::PrincipalKind::parse(&kind)?,
        })
    }

    /// The account called `username`.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let user_cols = super::users::user_columns(self.backend);
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {user_cols} FROM users u WHERE u.username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Self::user_from_row).transpose()
    }

    /// The account with id `id`.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let user_cols = super::users::user_columns(self.backend);
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {user_cols} FROM users u WHERE u.id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(Self::user_from_row).transpose()
    }

    /// Every account, by name.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let user_cols = super::users::user_columns(self.backend);
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {user_cols} FROM users u ORDER BY u.username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Self::user_from_row).collect()
    }

    /// Disables an account and revokes every session of it, in one transaction. Returns the
    /// number of sessions ended.
    pub async fn disable_user(&self, username: &str, now: OffsetDateTime) -> Result<u64> {
        let now = now.unix_timestamp();
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            return Err(Error::NotFound(format!("user {username:?}")));
        };
        sqlx::query("UPDATE users SET disabled_at = COALESCE(disabled_at, $1) WHERE id = $2")
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let ended = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'user disabled' WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Web sign-ins of the account end too, so a page left open cannot approve a device.
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 OR pending_user_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// The sealed TOTP seed of an account and the last time step a code was accepted for.
    pub async fn user_totp(&self, user_id: &str) -> Result<Option<UserTotp>> {
        let row: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT totp_secret_sealed, totp_last_step FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(sealed, last_step)| sealed.map(|sealed| UserTotp { sealed, last_step })))
    }

    /// Records that a code of `step` was accepted, unless that step or a later one was already
    /// used (one conditional `UPDATE`: of two racing sign-ins with the same code, one wins).
    pub async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool> {
        self.won(
            sqlx::query(
                "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
            )
            .bind(step)
            .bind(user_id),
        )
        .await
    }
}

/// An account's second factor as stored.
#[derive(Clone)]
pub struct UserTotp {
    /// The base32 seed, sealed with context `totp:<user id>`.
    pub sealed: String,
    /// The last step a code was accepted for.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for UserTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTotp")
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;

    fn alice() -> NewUser {
        NewUser {
            id: "u-alice".into(),
            username: "alice".into(),
            email: Some("alice@example.com".into()),
            password_hash: Some("$argon2id$fake".into()),
            groups: vec!["dev".into(), "admins".into()],
        }
    }

    #[tokio::test]
    async fn create_find_list_and_conflict() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        s.create_user(&alice(), now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let u = s
            .user_by_name("alice")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("missing"));
        assert_eq!(u.groups, ["admins", "dev"]);
        assert!(!format!("{u:?}").contains("fake"));
        assert!(s.user_by_id("u-alice").await.ok().flatten().is_some());
        assert!(matches!(
            s.create_user(&alice(), now).await,
            Err(Error::Conflict(_))
        ));
        assert_eq!(s.list_users().await.map_or(0, |v| v.len()), 1);

        // Disabling shows in the revocation feed that other processes read.
        s.disable_user("alice", now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, users) = s.revoked_since(now).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(users, ["u-alice"]);
    }

    #[tokio::test]
    async fn disable_unknown_user_is_not_found() {
        let (s, _d) = temp_store().await;
        let r = s.disable_user("nobody", OffsetDateTime::now_utc()).await;
        assert!(matches!(r, Err(Error::NotFound(_))));
    }
}
