//! Administrative operations behind the `user` and `keys` commands. They work on the same
//! data directory as a running server (SQLite in WAL mode allows it), so an administrator
//! can disable an account while the issuer is serving and the next refresh fails.

use time::OffsetDateTime;

use crate::domain::audit_chain::{self, Summary, Verifier};
use crate::domain::names::{validate_group, validate_username, NameError};
use crate::secret::{random_token, Secret};
use crate::store::{AuditEvent, AuditFilter, NewUser, Store};

/// An administrative operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user or group name is not allowed.
    #[error("invalid {what} {value:?}: {source}")]
    Name {
        /// `user name` or `group`.
        what: &'static str,
        /// The value.
        value: String,
        /// The rule it broke.
        #[source]
        source: NameError,
    },
    /// The password is unusable.
    #[error("the password must be at least 12 characters")]
    WeakPassword,
    /// The e-mail address is not plausible.
    #[error("invalid e-mail address {0:?}")]
    Email(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The audit trail does not verify.
    #[error("the audit trail does not verify: {0}")]
    Audit(#[from] audit_chain::Problem),
    /// A time argument could not be read.
    #[error("invalid time {0:?}: use RFC 3339 (2026-11-01T09:00:00Z) or a date (2026-11-01)")]
    Time(String),
    /// A `SEQ:HASH` head could not be read.
    #[error("invalid head {0:?}: expected SEQ:HASH as printed by `audit verify`")]
    Head(String),
    /// Writing the output failed.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] crate::password::Error),
}

/// Minimum password length for local accounts (NIST SP 800-63B allows 8; contractors'
/// accounts guard production clusters, so this asks for more).
pub const MIN_PASSWORD_LEN: usize = 12;

/// Creates a local account.
pub async fn add_user(
    store: &Store,
    name: &str,
    groups: &[String],
    email: Option<&str>,
    password: &Secret,
    now: OffsetDateTime,
) -> Result<(), Error> {
    validate_username(name).map_err(|source| Error::Name {
        what: "user name",
        value: name.to_owned(),
        source,
    })?;
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
    if let Some(e) = email {
        if e.len() > 254 || !e.contains('@') || e.chars().any(char::is_whitespace) {
            return Err(Error::Email(e.to_owned()));
        }
    }
    if password.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::WeakPassword);
    }
    let pw = password.clone();
    let phc = tokio::task::spawn_blocking(move || crate::password::hash(&pw))
        .await
        .map_err(|e| crate::password::Error::from_join(&e))??;
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
    store
        .audit(
            &AuditEvent {
                event: "user.created",
                actor: Some("admin-cli".into()),
                subject: Some(name.to_owned()),
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    Ok(())
}

/// Disables an account and ends its sessions. Returns how many sessions ended.
pub async fn disable_user(store: &Store, name: &str, now: OffsetDateTime) -> Result<u64, Error> {
    let ended = store.disable_user(name, now).await?;
    store
        .audit(
            &AuditEvent {
                event: "user.disabled",
                actor: Some("admin-cli".into()),
                subject: Some(name.to_owned()),
                detail: Some(format!("{{\"sessions_ended\":{ended}}}")),
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    Ok(ended)
}

/// Events read per page when walking the audit trail.
const AUDIT_PAGE: u32 = 5000;

/// Links every audit event not chained yet (the server does this every second; admin
/// commands do it for what they wrote, so the trail is complete even with no server running).
pub async fn seal_audit_trail(store: &Store) -> Result<(), Error> {
    while store.seal_audit(AUDIT_PAGE).await? == AUDIT_PAGE {}
    Ok(())
}

/// Checks the whole audit trail's hash chain, page by page.
pub async fn audit_verify(store: &Store, expect_head: Option<&str>) -> Result<Summary, Error> {
    let expect = expect_head
        .map(|h| audit_chain::parse_head(h).ok_or_else(|| Error::Head(h.to_owned())))
        .transpose()?;
    let mut verifier = Verifier::new(expect);
    let mut after = 0;
    loop {
        let page = store
            .audit_page(after, AUDIT_PAGE, &AuditFilter::default())
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            verifier.push(r)?;
        }
    }
    Ok(verifier.finish()?)
}

/// Writes the events matching `filter` as JSON lines; returns how many.
pub async fn audit_export(
    store: &Store,
    filter: &AuditFilter,
    out: &mut impl std::io::Write,
) -> Result<u64, Error> {
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = store.audit_page(after, AUDIT_PAGE, filter).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            let time = OffsetDateTime::from_unix_timestamp(r.at)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
            let mut v = serde_json::to_value(&r).unwrap_or_default();
            if let (Some(obj), Some(time)) = (v.as_object_mut(), time) {
                obj.insert("time".into(), time.into());
            }
            serde_json::to_writer(&mut *out, &v)
                .map_err(|e| Error::Output(std::io::Error::other(e)))?;
            out.write_all(b"\n").map_err(Error::Output)?;
            n += 1;
        }
    }
    out.flush().map_err(Error::Output)?;
    Ok(n)
}

/// Reads a time argument: RFC 3339, or a date meaning its midnight UTC.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, Error> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &f)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| Error::Time(s.to_owned()))
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
        assert!(crate::password::verify(
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
