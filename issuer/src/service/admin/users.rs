//! `user add` and `user disable`: local accounts, and the checks every new account's name,
//! groups and e-mail address pass (here and at `invite create`).

use time::OffsetDateTime;

use super::{record, Error};
use crate::domain::names::{validate_group, validate_username};
use crate::secrets::secret::{random_token, Secret};
use crate::store::{NewUser, Store};

/// Minimum password length for local accounts (NIST SP 800-63B allows 8; contractors'
/// accounts guard production clusters, so this asks for more).
pub const MIN_PASSWORD_LEN: usize = 12;

/// Checks a new account's name, groups and e-mail address, in that order; returns the groups
/// sorted, without duplicates.
pub(super) fn checked_account(
    name: &str,
    groups: &[String],
    email: Option<&str>,
) -> Result<Vec<String>, Error> {
    validate_username(name).map_err(|source| Error::Name {
        what: "user name",
        value: name.to_owned(),
        source,
    })?;
    let groups = checked_groups(groups)?;
    if let Some(e) = email {
        check_email(e)?;
    }
    Ok(groups)
}

fn checked_groups(groups: &[String]) -> Result<Vec<String>, Error> {
    let mut groups = groups.to_vec();
    for g in &groups {
        validate_group(g).map_err(|source| Error::Name {
            what: "group",
            value: g.clone(),
            source,
        })?;
    }
    groups.sort();
    groups.dedup();
    Ok(groups)
}

fn check_email(e: &str) -> Result<(), Error> {
    if e.len() > 254 || !e.contains('@') || e.chars().any(char::is_whitespace) {
        return Err(Error::Email(e.to_owned()));
    }
    Ok(())
}

/// Creates a local account.
pub async fn add_user(
    store: &Store,
    name: &str,
    groups: &[String],
    email: Option<&str>,
    password: &Secret,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let groups = checked_account(name, groups, email)?;
    if password.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::WeakPassword);
    }
    let pw = password.clone();
    let phc = tokio::task::spawn_blocking(move || crate::secrets::password::hash(&pw))
        .await
        .map_err(|e| crate::secrets::password::Error::from_join(&e))??;
    store
        .create_user(
            &NewUser {
                id: format!("u-{}", random_token(12).expose()),
                username: name.to_owned(),
                email: email.map(str::to_owned),
                password_hash: Some(phc),
                groups,
            },
            now,
        )
        .await?;
    record(store, "user.created", name, None, now).await
}

/// Disables an account and ends its sessions. Returns how many sessions ended. Its grants stop
/// counting at once: the store leaves grants of disabled accounts out, and disabling bumps the
/// grants epoch, so the server's reconciler removes the bindings within seconds.
pub async fn disable_user(store: &Store, name: &str, now: OffsetDateTime) -> Result<u64, Error> {
    let ended = store.disable_user(name, now).await?;
    let detail = format!("{{\"sessions_ended\":{ended}}}");
    record(store, "user.disabled", name, Some(detail), now).await?;
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;

    #[tokio::test]
    async fn add_user_validates_and_hashes() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        let pw = Secret::new("a long enough password");
        let r = add_user(&s, "system:x", &[], None, &pw, now).await;
        assert!(matches!(r, Err(Error::Name { .. })), "{r:?}");
        let r = add_user(&s, "bob", &["system:masters".into()], None, &pw, now).await;
        assert!(matches!(r, Err(Error::Name { .. })), "{r:?}");
        let r = add_user(&s, "bob", &[], None, &Secret::new("short"), now).await;
        assert!(matches!(r, Err(Error::WeakPassword)), "{r:?}");
        add_user(
            &s,
            "bob",
            &["b".into(), "a".into(), "a".into()],
            Some("bob@x.io"),
            &pw,
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let u = s
            .user_by_name("bob")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no bob"));
        assert_eq!(u.groups, ["a", "b"]);
        assert!(crate::secrets::password::verify(
            u.password_hash.as_deref().unwrap_or(""),
            &pw
        ));
        assert_eq!(disable_user(&s, "bob", now).await.unwrap_or(99), 0);
        let u = s
            .user_by_name("bob")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no bob"));
        assert!(u.disabled_at.is_some());
    }
}
