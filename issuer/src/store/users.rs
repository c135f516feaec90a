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
);

/// The user columns plus the sorted groups as one newline-joined string, so that loading an
/// account is one query (it happens on every refresh). Group names cannot contain a newline.
/// Alias `u` for `users`.
pub(super) const USER_COLUMNS: &str = "u.id, u.username, u.email, u.password_hash, u.disabled_at, u.created_at, \
    (SELECT group_concat(group_name, char(10)) FROM (SELECT group_name FROM user_groups WHERE user_id = u.id ORDER BY group_name))";

/// Parses a `json_array(USER_COLUMNS)` value.
pub(super) fn user_from_json(text: &str) -> Result<User> {
    let row: UserRow = serde_json::from_str(text).map_err(|e| Error::Corrupt {
        table: "users",
        detail: e.to_string(),
    })?;
    Store::user_from_row(row)
}

impl Store {
    /// Creates an account.
    pub async fn create_user(&self, u: &NewUser, now: OffsetDateTime) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
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
            sqlx::query("INSERT OR IGNORE INTO user_groups (user_id, group_name) VALUES (?, ?)")
                .bind(&u.id)
                .bind(g)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn user_from_row(row: UserRow) -> Result<User> {
        let (id, username, email, password_hash, disabled_at, created_at, groups) = row;
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
        })
    }

    /// The account called `username`.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Self::user_from_row).transpose()
    }

    /// The account with id `id`.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Self::user_from_row).transpose()
    }

    /// Every account, by name.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Self::user_from_row).collect()
    }

    /// Disables an account and revokes every session of it, in one transaction. Returns the
    /// number of sessions ended.
    pub async fn disable_user(&self, username: &str, now: OffsetDateTime) -> Result<u64> {
        let now = now.unix_timestamp();
        let mut tx = self.write.begin().await?;
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            return Err(Error::NotFound(format!("user {username:?}")));
        };
        sqlx::query("UPDATE users SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ?")
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let ended = sqlx::query(
            "UPDATE sessions SET revoked_at = ?, revoke_reason = 'user disabled' WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Web sign-ins of the account end too, so a page left open cannot approve a device.
        sqlx::query("DELETE FROM web_sessions WHERE user_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ended)
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
    }

    #[tokio::test]
    async fn disable_unknown_user_is_not_found() {
        let (s, _d) = temp_store().await;
        let r = s.disable_user("nobody", OffsetDateTime::now_utc()).await;
        assert!(matches!(r, Err(Error::NotFound(_))));
    }
}
