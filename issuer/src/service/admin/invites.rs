//! `invite create`, `invite renew` and `invite revoke`: accounts set up by the person through
//! a single-use link, and the `--expires` flag that ends them.

use time::OffsetDateTime;

use super::users::checked_account;
use super::{record, Error, ADMIN_ACTOR};
use crate::secrets::secret::{hash, random_token, Secret};
use crate::store::{NewInvitation, NewUser, Store};

/// Parses `--expires`: a duration from `now` (`30d`, `12h`) or a date (`2026-12-31`), meaning
/// the account works through that day and ends at the following midnight UTC.
pub fn parse_expiry(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, Error> {
    let text = text.trim();
    let at = if let Some(d) = crate::config::parse_duration(text) {
        time::Duration::try_from(d)
            .ok()
            .and_then(|d| now.checked_add(d))
            .ok_or_else(|| Error::Expiry(text.to_owned()))?
    } else {
        let f = time::macros::format_description!("[year]-[month]-[day]");
        let day = time::Date::parse(text, &f).map_err(|_| Error::Expiry(text.to_owned()))?;
        day.next_day()
            .ok_or_else(|| Error::Expiry(text.to_owned()))?
            .midnight()
            .assume_utc()
    };
    if at <= now {
        return Err(Error::ExpiryPast(text.to_owned()));
    }
    Ok(at)
}

/// What `invite create` asks for.
#[derive(Debug, Clone)]
pub struct InviteRequest<'a> {
    /// Login name of the new account.
    pub name: &'a str,
    /// E-mail address.
    pub email: Option<&'a str>,
    /// Groups.
    pub groups: &'a [String],
    /// End of the account.
    pub account_expires_at: OffsetDateTime,
    /// Lifetime of the link.
    pub link_ttl: std::time::Duration,
}

/// A created invitation: the only time its token exists in the clear.
#[derive(Debug)]
pub struct CreatedInvitation {
    /// The link's token (goes into `/invite/<token>`).
    pub token: Secret,
    /// End of the link.
    pub link_expires_at: OffsetDateTime,
    /// End of the account.
    pub account_expires_at: OffsetDateTime,
}

/// Creates an account that ends at `req.account_expires_at` and a single-use invitation to set
/// its password and second factor. The token is returned once and stored only hashed.
pub async fn create_invitation(
    store: &Store,
    req: &InviteRequest<'_>,
    now: OffsetDateTime,
) -> Result<CreatedInvitation, Error> {
    let groups = checked_account(req.name, req.groups, req.email)?;
    let link = new_link(req.link_ttl, now)?;
    let created = store
        .create_invitation(
            &NewUser {
                id: format!("u-{}", random_token(12).expose()),
                username: req.name.to_owned(),
                email: req.email.map(str::to_owned),
                password_hash: None,
                groups,
            },
            req.account_expires_at,
            &link.row,
            now,
        )
        .await;
    if let Err(crate::store::Error::Conflict(what)) = created {
        // The name is taken. If by an invitation that was never used, say how to renew it.
        let never_set_up = store
            .user_by_name(req.name)
            .await?
            .is_some_and(|u| u.password_hash.is_none() && !u.totp_enrolled);
        return Err(if never_set_up {
            Error::InvitedNotSetUp(req.name.to_owned())
        } else {
            Error::Store(crate::store::Error::Conflict(what))
        });
    }
    created?;
    let detail = format!(
        "{{\"account_expires_at\":{},\"link_expires_at\":{}}}",
        req.account_expires_at.unix_timestamp(),
        link.row.expires_at.unix_timestamp()
    );
    record(store, "invitation.created", req.name, Some(detail), now).await?;
    Ok(CreatedInvitation {
        link_expires_at: link.row.expires_at,
        token: link.token,
        account_expires_at: req.account_expires_at,
    })
}

/// A new single-use link for `name`, whose account was invited but never set up (its link
/// expired or was revoked): the old links are withdrawn, the account (groups, end) is kept.
/// Audited as `invitation.renewed`. The token is returned once and stored only hashed.
pub async fn renew_invitation(
    store: &Store,
    name: &str,
    link_ttl: std::time::Duration,
    now: OffsetDateTime,
) -> Result<CreatedInvitation, Error> {
    let link = new_link(link_ttl, now)?;
    let Some(user) = store.user_by_name(name).await? else {
        return Err(Error::Store(crate::store::Error::NotFound(format!(
            "user {name:?}"
        ))));
    };
    let renewed = store.renew_invitation(name, &link.row, now).await?;
    if !renewed {
        return Err(Error::NotRenewable(name.to_owned()));
    }
    let detail = format!(
        "{{\"link_expires_at\":{}}}",
        link.row.expires_at.unix_timestamp()
    );
    record(store, "invitation.renewed", name, Some(detail), now).await?;
    Ok(CreatedInvitation {
        link_expires_at: link.row.expires_at,
        account_expires_at: user.expires_at.unwrap_or(link.row.expires_at),
        token: link.token,
    })
}

/// Withdraws the unused invitations of `name`. Returns how many.
pub async fn revoke_invitations(
    store: &Store,
    name: &str,
    now: OffsetDateTime,
) -> Result<u64, Error> {
    let n = store.revoke_invitations(name, now).await?;
    if n == 0 {
        return Err(Error::Store(crate::store::Error::NotFound(format!(
            "unused invitation for {name:?}"
        ))));
    }
    record(store, "invitation.revoked", name, None, now).await?;
    Ok(n)
}

/// A new single-use link: its token, here the only time in the clear, and the invitation row
/// that stores only its hash.
struct Link {
    token: Secret,
    row: NewInvitation,
}

/// A link valid for `ttl` from `now`; `ttl` must be positive.
fn new_link(ttl: std::time::Duration, now: OffsetDateTime) -> Result<Link, Error> {
    let ttl = time::Duration::try_from(ttl)
        .ok()
        .filter(|d| d.is_positive())
        .ok_or_else(|| Error::LinkTtl(format!("{}s", ttl.as_secs())))?;
    let token = random_token(32);
    let row = NewInvitation {
        id: format!("i-{}", random_token(12).expose()),
        token_hash: hash(token.expose()),
        created_by: ADMIN_ACTOR.to_owned(),
        expires_at: now + ttl,
    };
    Ok(Link { token, row })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use time::macros::datetime;

    #[test]
    fn expiry_is_a_duration_or_a_date() {
        let now = datetime!(2026-11-25 12:00 UTC);
        assert_eq!(
            parse_expiry("30d", now).ok(),
            Some(datetime!(2026-12-25 12:00 UTC))
        );
        assert_eq!(
            parse_expiry("2026-12-31", now).ok(),
            Some(datetime!(2027-01-01 00:00 UTC))
        );
        assert!(matches!(
            parse_expiry("2026-01-01", now),
            Err(Error::ExpiryPast(_))
        ));
        assert!(matches!(parse_expiry("0s", now), Err(Error::ExpiryPast(_))));
        assert!(matches!(
            parse_expiry("next week", now),
            Err(Error::Expiry(_))
        ));
        assert!(matches!(
            parse_expiry("2026-13-01", now),
            Err(Error::Expiry(_))
        ));
    }

    #[tokio::test]
    async fn invitations_store_only_the_token_hash() {
        let (s, _d) = temp_store().await;
        let now = datetime!(2026-11-25 12:00 UTC);
        let groups = vec!["dev".to_owned()];
        let req = InviteRequest {
            name: "carol",
            email: Some("carol@example.com"),
            groups: &groups,
            account_expires_at: now + time::Duration::days(30),
            link_ttl: std::time::Duration::from_secs(3600),
        };
        let created = create_invitation(&s, &req, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(created.link_expires_at, now + time::Duration::hours(1));
        assert!(s
            .invitation_by_token_hash(created.token.expose())
            .await
            .ok()
            .flatten()
            .is_none());
        assert!(s
            .invitation_by_token_hash(&hash(created.token.expose()))
            .await
            .ok()
            .flatten()
            .is_some());
        // The name is taken by an account never set up: the error says to renew it.
        assert!(matches!(
            create_invitation(&s, &req, now).await,
            Err(Error::InvitedNotSetUp(_))
        ));
        let bad = InviteRequest {
            name: "system:x",
            ..req.clone()
        };
        assert!(matches!(
            create_invitation(&s, &bad, now).await,
            Err(Error::Name { .. })
        ));
        assert_eq!(revoke_invitations(&s, "carol", now).await.unwrap_or(0), 1);
        assert!(revoke_invitations(&s, "carol", now).await.is_err());
        assert_eq!(
            s.audit_events_for("carol").await.unwrap_or_default(),
            ["invitation.created", "invitation.revoked"]
        );
    }
}
