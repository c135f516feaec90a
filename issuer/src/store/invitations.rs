//! Single-use invitations for local accounts: the link's token is stored only hashed, the TOTP
//! seed offered on the page only sealed, and accepting is one transaction whose conditional
//! `UPDATE` lets exactly one of two racing submissions win.

use time::OffsetDateTime;

use super::users::{insert_user, NewUser};
use super::{opt_ts, ts, Result, Store};

/// An invitation as the pages need it.
#[derive(Clone)]
pub struct Invitation {
    /// Id (also the sealing context of its seed).
    pub id: String,
    /// The account it sets up.
    pub user_id: String,
    /// That account's login name.
    pub username: String,
    /// Who created it.
    pub created_by: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// End of the link.
    pub expires_at: OffsetDateTime,
    /// Set once accepted.
    pub used_at: Option<OffsetDateTime>,
    /// Set when an administrator withdrew it.
    pub revoked_at: Option<OffsetDateTime>,
    /// The sealed TOTP seed offered on the page (context `invite:<id>`), once opened.
    pub totp_seed_sealed: Option<String>,
    /// The account's end.
    pub account_expires_at: Option<OffsetDateTime>,
    /// Whether the account is disabled.
    pub account_disabled: bool,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A new invitation (its account is created with it).
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// Id.
    pub id: String,
    /// SHA-256 of the link's token.
    pub token_hash: String,
    /// Who creates it (`admin-cli`).
    pub created_by: String,
    /// End of the link.
    pub expires_at: OffsetDateTime,
}

/// What accepting an invitation writes to the account.
pub struct Acceptance<'a> {
    /// argon2id PHC string of the new password.
    pub password_hash: &'a str,
    /// The seed sealed for the account (context `totp:<user id>`).
    pub totp_sealed: &'a str,
    /// The step of the code that proved the enrolment (not accepted again).
    pub totp_step: i64,
}

impl std::fmt::Debug for Acceptance<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptance")
            .field("totp_step", &self.totp_step)
            .finish_non_exhaustive()
    }
}

type InvitationRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

const COLUMNS: &str = "i.id, i.user_id, u.username, i.created_by, i.created_at, i.expires_at, i.used_at, i.revoked_at, i.totp_seed_sealed, u.expires_at, u.disabled_at";

fn from_row(r: InvitationRow) -> Result<Invitation> {
    Ok(Invitation {
        id: r.0,
        user_id: r.1,
        username: r.2,
        created_by: r.3,
        created_at: ts("invitations", r.4)?,
        expires_at: ts("invitations", r.5)?,
        used_at: opt_ts("invitations", r.6)?,
        revoked_at: opt_ts("invitations", r.7)?,
        totp_seed_sealed: r.8,
        account_expires_at: opt_ts("users", r.9)?,
        account_disabled: r.10.is_some(),
    })
}

/// Writes invitation `inv` for account `user_id`, created at `t` (unix seconds).
async fn insert_invitation(
    tx: &mut sqlx::AnyConnection,
    inv: &NewInvitation,
    user_id: &str,
    t: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO invitations (id, token_hash, user_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&inv.id)
    .bind(&inv.token_hash)
    .bind(user_id)
    .bind(&inv.created_by)
    .bind(t)
    .bind(inv.expires_at.unix_timestamp())
    .execute(tx)
    .await?;
    Ok(())
}

impl Store {
    /// Creates an account that expires at `account_expires_at` (no password, no second factor
    /// yet) and its invitation, in one transaction.
    pub async fn create_invitation(
        &self,
        user: &NewUser,
        account_expires_at: OffsetDateTime,
        inv: &NewInvitation,
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        insert_user(&mut tx, user, now).await?;
        sqlx::query("UPDATE users SET expires_at = $1 WHERE id = $2")
            .bind(account_expires_at.unix_timestamp())
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        insert_invitation(&mut tx, inv, &user.id, now.unix_timestamp()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The invitation whose token hashes to `token_hash`.
    pub async fn invitation_by_token_hash(&self, token_hash: &str) -> Result<Option<Invitation>> {
        self.invitation_where("i.token_hash", token_hash).await
    }

    /// The invitation with id `id`.
    pub async fn invitation_by_id(&self, id: &str) -> Result<Option<Invitation>> {
        self.invitation_where("i.id", id).await
    }

    /// The invitation whose `column` (one of this file's own names, never input) is `value`.
    async fn invitation_where(&self, column: &str, value: &str) -> Result<Option<Invitation>> {
        let row: Option<InvitationRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM invitations i JOIN users u ON u.id = i.user_id WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.write)
        .await?;
        row.map(from_row).transpose()
    }

    /// Every invitation, newest first.
    pub async fn list_invitations(&self) -> Result<Vec<Invitation>> {
        let rows: Vec<InvitationRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM invitations i JOIN users u ON u.id = i.user_id ORDER BY i.created_at DESC, u.username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(from_row).collect()
    }

    /// Stores the seed offered on the invitation page, unless one is there already (two tabs
    /// opening the link at once get the same seed: the loser reads the winner's).
    pub async fn set_invitation_seed(&self, id: &str, sealed: &str) -> Result<bool> {
        self.won(
            sqlx::query(
                "UPDATE invitations SET totp_seed_sealed = $1 WHERE id = $2 AND totp_seed_sealed IS NULL AND used_at IS NULL",
            )
            .bind(sealed)
            .bind(id),
        )
        .await
    }

    /// Accepts an invitation: marks it used (only if unused, not revoked and not expired) and
    /// sets the account's password and second factor, in one transaction. `false`: it was not
    /// usable any more (another submission won, or it expired or was revoked meanwhile).
    pub async fn accept_invitation(
        &self,
        inv: &Invitation,
        a: &Acceptance<'_>,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let t = now.unix_timestamp();
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        let won = sqlx::query(
            "UPDATE invitations SET used_at = $1, totp_seed_sealed = NULL
             WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(t)
        .bind(&inv.id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE users SET password_hash = $1, totp_secret_sealed = $2, totp_last_step = $3 WHERE id = $4",
        )
        .bind(a.password_hash)
        .bind(a.totp_sealed)
        .bind(a.totp_step)
        .bind(&inv.user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A new invitation for `username`'s account if it never finished enrolment (no password,
    /// no used invitation): its unused invitations are withdrawn and `inv` takes their place,
    /// in one transaction. `Ok(false)`: no such account, or it has been set up already (then
    /// the person signs in, or the operator disables it).
    pub async fn renew_invitation(
        &self,
        username: &str,
        inv: &NewInvitation,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let t = now.unix_timestamp();
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        let user_id: Option<(String,)> = sqlx::query_as(
            "SELECT u.id FROM users u WHERE u.username = $1 AND u.password_hash IS NULL
             AND EXISTS (SELECT 1 FROM invitations i WHERE i.user_id = u.id)
             AND NOT EXISTS (SELECT 1 FROM invitations i WHERE i.user_id = u.id AND i.used_at IS NOT NULL)",
        )
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id,)) = user_id else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE invitations SET revoked_at = $1, totp_seed_sealed = NULL
             WHERE user_id = $2 AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(t)
        .bind(&user_id)
        .execute(&mut *tx)
        .await?;
        insert_invitation(&mut tx, inv, &user_id, t).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Withdraws the unused invitations of `username`. Returns how many.
    pub async fn revoke_invitations(&self, username: &str, now: OffsetDateTime) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE invitations SET revoked_at = $1, totp_seed_sealed = NULL
             WHERE user_id IN (SELECT id FROM users WHERE username = $2) AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now.unix_timestamp())
        .bind(username)
        .execute(&self.write)
        .await?
        .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{temp_store, TestDb};
    use crate::store::Error;

    fn carol() -> NewUser {
        NewUser {
            id: "u-carol".into(),
            username: "carol".into(),
            email: None,
            password_hash: None,
            groups: vec!["dev".into()],
        }
    }

    /// Carol's account, open until `account`, invited by `i1` (valid until `link`).
    async fn invite_carol(
        s: &Store,
        account: OffsetDateTime,
        link: OffsetDateTime,
        now: OffsetDateTime,
    ) {
        s.create_invitation(&carol(), account, &invitation("i1", link), now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The invitation of the token that hashes to `hash`.
    async fn by_hash(s: &Store, hash: &str) -> Invitation {
        s.invitation_by_token_hash(hash)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no invitation {hash}"))
    }

    /// Carol's account as stored.
    async fn carol_now(s: &Store) -> crate::store::User {
        s.user_by_name("carol")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no carol"))
    }

    /// An acceptance that sets no real password or seed.
    const ANY_ACCEPTANCE: Acceptance<'static> = Acceptance {
        password_hash: "x",
        totp_sealed: "y",
        totp_step: 1,
    };

    fn invitation(id: &str, expires_at: OffsetDateTime) -> NewInvitation {
        NewInvitation {
            id: id.into(),
            token_hash: format!("hash-{id}"),
            created_by: "admin-cli".into(),
            expires_at,
        }
    }

    #[tokio::test]
    async fn accepting_is_single_use_and_sets_the_account() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        let day: time::Duration = time::Duration::days(1);
        invite_carol(&s, now + day * 30_i32, now + day, now).await;
        // The account exists, expires, and cannot sign in yet.
        let u = carol_now(&s).await;
        assert!(u.password_hash.is_none() && !u.totp_enrolled);
        assert_eq!(
            u.expires_at.map(OffsetDateTime::unix_timestamp),
            Some((now + day * 30_i32).unix_timestamp())
        );
        assert!(!u.is_expired(now) && u.is_expired(now + day * 31_i32));
        // A second invitation under the same name is a conflict, and nothing of it remains.
        let again = s
            .create_invitation(&carol(), now + day, &invitation("i2", now + day), now)
            .await;
        assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");

        let inv = by_hash(&s, "hash-i1").await;
        assert!(s
            .set_invitation_seed("i1", "sealed-1")
            .await
            .unwrap_or(false));
        assert!(!s
            .set_invitation_seed("i1", "sealed-2")
            .await
            .unwrap_or(true));
        let a = Acceptance {
            password_hash: "$argon2id$fake",
            totp_sealed: "sealed-user",
            totp_step: 7,
        };
        assert!(s.accept_invitation(&inv, &a, now).await.unwrap_or(false));
        assert!(!s.accept_invitation(&inv, &a, now).await.unwrap_or(true));
        let u = carol_now(&s).await;
        assert!(u.totp_enrolled && u.password_hash.is_some());
        let totp = s.user_totp("u-carol").await.ok().flatten();
        assert_eq!(totp.as_ref().map(|t| t.last_step), Some(Some(7)));
        assert!(!format!("{totp:?}").contains("sealed-user"));
        // A code's step is accepted once; only later steps after that.
        assert!(!s.use_totp_step("u-carol", 7).await.unwrap_or(true));
        assert!(s.use_totp_step("u-carol", 8).await.unwrap_or(false));
        let listed = s.list_invitations().await.unwrap_or_default();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].used_at.is_some() && listed[0].totp_seed_sealed.is_none());
    }

    /// A store where carol was invited just now, for two days, by a link valid for an hour:
    /// the store, its guard, the time and an hour.
    async fn carol_invited_for_an_hour() -> (Store, TestDb, OffsetDateTime, time::Duration) {
        let (s, d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        let hour: time::Duration = time::Duration::hours(1);
        invite_carol(&s, now + hour * 48_i32, now + hour, now).await;
        (s, d, now, hour)
    }

    #[tokio::test]
    async fn expired_or_revoked_invitations_cannot_be_accepted() {
        let (s, _d, now, hour) = carol_invited_for_an_hour().await;
        let inv = by_hash(&s, "hash-i1").await;
        let a = ANY_ACCEPTANCE;
        assert!(!s
            .accept_invitation(&inv, &a, now + hour)
            .await
            .unwrap_or(true));
        assert_eq!(s.revoke_invitations("carol", now).await.unwrap_or(0), 1);
        assert!(!s.accept_invitation(&inv, &a, now).await.unwrap_or(true));
        let u = s.user_by_name("carol").await.ok().flatten();
        assert!(u.is_some_and(|u| u.password_hash.is_none()));
    }

    #[tokio::test]
    async fn only_an_account_that_never_enrolled_gets_a_renewed_invitation() {
        let (s, _d, now, hour) = carol_invited_for_an_hour().await;
        assert_eq!(s.revoke_invitations("carol", now).await.unwrap_or(0), 1);
        // Revoked: a renewal replaces it, and the old link stays dead.
        assert!(s
            .renew_invitation("carol", &invitation("i2", now + hour), now)
            .await
            .unwrap_or(false));
        // Renewing again withdraws the pending renewal too: one live link at a time.
        assert!(s
            .renew_invitation("carol", &invitation("i3", now + hour), now)
            .await
            .unwrap_or(false));
        let live: Vec<String> = s
            .list_invitations()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.revoked_at.is_none())
            .map(|i| i.id)
            .collect();
        assert_eq!(live, ["i3"]);
        let inv = by_hash(&s, "hash-i3").await;
        let a = ANY_ACCEPTANCE;
        assert!(s.accept_invitation(&inv, &a, now).await.unwrap_or(false));
        // Set up: no renewal, nor for a name nobody has.
        assert!(!s
            .renew_invitation("carol", &invitation("i4", now + hour), now)
            .await
            .unwrap_or(true));
        assert!(!s
            .renew_invitation("nobody", &invitation("i5", now + hour), now)
            .await
            .unwrap_or(true));
    }
}
