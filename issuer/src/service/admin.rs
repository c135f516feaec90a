//! Administrative operations behind the `user`, `invite`, `grant`, `policy`, `audit` and `keys`
//! commands. They work on the same data directory as a running server (`SQLite` in WAL mode
//! allows it), so an administrator
//! can disable an account while the issuer is serving and the next refresh fails.

use std::sync::Arc;

use credential_shared::text::{escape_json, Untrusted};
use time::OffsetDateTime;

use crate::config::Config;
use crate::domain::audit_chain::{self, Summary, Verifier};
use crate::domain::grants::{self, Grant, Grantee, NewGrant};
use crate::domain::names::{validate_group, validate_username, NameError};
use crate::secrets::secret::{hash, random_token, Secret};
use crate::signing::{KeyInfo, KeySource};
use crate::store::{AuditEvent, AuditFilter, NewInvitation, NewUser, Store};

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
    /// `--expires` is neither a duration nor a date.
    #[error("invalid --expires {0:?}: give a duration like 30d or 12h, or a date like 2026-12-31")]
    Expiry(String),
    /// `--expires` is not in the future.
    #[error("--expires {0:?} is not in the future")]
    ExpiryPast(String),
    /// `--link-ttl` is not a positive duration.
    #[error("invalid --link-ttl {0:?}: give a duration like 24h or 30m")]
    LinkTtl(String),
    /// `invite renew` for an account that has been set up (or was never invited).
    #[error("{0:?} has no invitation to renew: the account was set up already (the person signs in) or was not created by `invite create`")]
    NotRenewable(String),
    /// `invite create` for a name whose invited account was never set up.
    #[error("user {0:?} already exists and was invited but never set up; give them a new link with `credential-issuer invite renew {0}`")]
    InvitedNotSetUp(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The audit trail does not verify.
    #[error("the audit trail does not verify: {0}")]
    Audit(#[from] audit_chain::Problem),
    /// A `SEQ:HASH` head could not be read.
    #[error("invalid head {0:?}: expected SEQ:HASH as printed by `audit verify`")]
    Head(String),
    /// Writing the output failed.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] crate::secrets::password::Error),
    /// The grant breaks a rule of the policy.
    #[error(transparent)]
    Grant(#[from] crate::domain::grants::GrantError),
    /// A grant for a user who has no account.
    #[error("no user {0:?}; create the account first (user add)")]
    NoSuchUser(String),
    /// The signing keys could not be read, created or deleted.
    #[error(transparent)]
    Signing(#[from] crate::signing::Error),
    /// The encryption key (for signing keys in the database) could not be loaded.
    #[error(transparent)]
    Seal(#[from] crate::secrets::seal::SealError),
    /// A time or duration flag could not be read.
    #[error("{flag}: {message}")]
    Time {
        /// The flag.
        flag: &'static str,
        /// What is expected.
        message: String,
    },
}

/// Where `keys rotate` and `keys list` act with `[signing] keys = "database"`: the keys in
/// `store`, opened with the encryption key file. The file must exist already: it is never
/// created here, since a new key would not open the keys sealed with the one the replicas
/// share.
pub fn database_key_source(config: &Config, store: &Store) -> Result<KeySource, Error> {
    let sealer = Arc::new(config.sealer(false)?);
    Ok(KeySource::Database {
        store: store.clone(),
        sealer,
    })
}

/// `keys rotate`: adds a key that signs from now on. Older keys stay published (and stored)
/// for [`Config::key_retention`], so every token they signed keeps verifying; running issuers
/// pick the new key up at their next reload.
pub async fn rotate_keys(
    source: &KeySource,
    config: &Config,
    now: OffsetDateTime,
) -> Result<KeyInfo, Error> {
    Ok(source.rotate(now, config.key_retention()).await?)
}

/// `keys list`: the stored keys, oldest first, each read and checked.
pub async fn list_keys(source: &KeySource) -> Result<Vec<KeyInfo>, Error> {
    Ok(source.list().await?)
}

/// Minimum password length for local accounts (NIST SP 800-63B allows 8; contractors'
/// accounts guard production clusters, so this asks for more).
pub const MIN_PASSWORD_LEN: usize = 12;

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
    validate_username(req.name).map_err(|source| Error::Name {
        what: "user name",
        value: req.name.to_owned(),
        source,
    })?;
    let groups = checked_groups(req.groups)?;
    if let Some(e) = req.email {
        check_email(e)?;
    }
    let link_ttl = time::Duration::try_from(req.link_ttl)
        .ok()
        .filter(|d| d.is_positive())
        .ok_or_else(|| Error::LinkTtl(format!("{}s", req.link_ttl.as_secs())))?;
    let token = random_token(32);
    let link_expires_at = now + link_ttl;
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
            &NewInvitation {
                id: format!("i-{}", random_token(12).expose()),
                token_hash: hash(token.expose()),
                created_by: "admin-cli".to_owned(),
                expires_at: link_expires_at,
            },
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
    store
        .audit(
            &AuditEvent {
                event: "invitation.created",
                actor: Some("admin-cli".into()),
                subject: Some(req.name.to_owned()),
                detail: Some(format!(
                    "{{\"account_expires_at\":{},\"link_expires_at\":{}}}",
                    req.account_expires_at.unix_timestamp(),
                    link_expires_at.unix_timestamp()
                )),
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    Ok(CreatedInvitation {
        token,
        link_expires_at,
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
    let link_ttl = time::Duration::try_from(link_ttl)
        .ok()
        .filter(|d| d.is_positive())
        .ok_or_else(|| Error::LinkTtl(format!("{}s", link_ttl.as_secs())))?;
    let Some(user) = store.user_by_name(name).await? else {
        return Err(Error::Store(crate::store::Error::NotFound(format!(
            "user {name:?}"
        ))));
    };
    let token = random_token(32);
    let link_expires_at = now + link_ttl;
    let renewed = store
        .renew_invitation(
            name,
            &NewInvitation {
                id: format!("i-{}", random_token(12).expose()),
                token_hash: hash(token.expose()),
                created_by: "admin-cli".to_owned(),
                expires_at: link_expires_at,
            },
            now,
        )
        .await?;
    if !renewed {
        return Err(Error::NotRenewable(name.to_owned()));
    }
    store
        .audit(
            &AuditEvent {
                event: "invitation.renewed",
                actor: Some("admin-cli".into()),
                subject: Some(name.to_owned()),
                detail: Some(format!(
                    "{{\"link_expires_at\":{}}}",
                    link_expires_at.unix_timestamp()
                )),
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    Ok(CreatedInvitation {
        token,
        link_expires_at,
        account_expires_at: user.expires_at.unwrap_or(link_expires_at),
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
    store
        .audit(
            &AuditEvent {
                event: "invitation.revoked",
                actor: Some("admin-cli".into()),
                subject: Some(name.to_owned()),
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    Ok(n)
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
    validate_username(name).map_err(|source| Error::Name {
        what: "user name",
        value: name.to_owned(),
        source,
    })?;
    let groups = checked_groups(groups)?;
    if let Some(e) = email {
        check_email(e)?;
    }
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

/// Disables an account and ends its sessions. Returns how many sessions ended. Its grants stop
/// counting at once: the store leaves grants of disabled accounts out, and disabling bumps the
/// grants epoch, so the server's reconciler removes the bindings within seconds.
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
    while store.seal_audit(AUDIT_PAGE).await? > 0 {}
    Ok(())
}

/// As [`seal_audit_trail`] after an admin command, where the command itself has succeeded:
/// if the database is busy the running server chains the events within a second, so this only
/// warns.
pub async fn seal_audit_trail_after_command(store: &Store) {
    if let Err(e) = seal_audit_trail(store).await {
        tracing::warn!(error = %e, "could not chain the new audit events now; a running issuer will");
    }
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
            // As JSON escapes, plus what a terminal would obey that JSON leaves raw.
            let json = v.to_string();
            out.write_all(escape_json(&json).as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(Error::Output)?;
            n += 1;
        }
    }
    out.flush().map_err(Error::Output)?;
    Ok(n)
}

/// What `policy explain` prints: the Kubernetes groups `user` would get in `cluster`, the rule
/// that gave each, and the identity groups that gave nothing and why.
#[must_use]
pub fn explain(
    policy: &crate::domain::policy::Policy,
    username: &str,
    identity_groups: &[String],
    cluster: &str,
) -> String {
    use crate::domain::policy::Dropped;
    use std::fmt::Write as _;
    let rule = |i: usize| {
        policy.rules.get(i).map_or_else(String::new, |r| {
            format!("rule {i} ({})", Untrusted::new(r.group.as_str()))
        })
    };
    let m = policy.map(identity_groups, cluster);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "user {} in cluster {}: identity groups [{}]",
        Untrusted::new(username),
        Untrusted::new(cluster),
        Untrusted::long(identity_groups.join(", "))
    );
    if policy.rules.is_empty() {
        let _ = writeln!(
            out,
            "no policy rules are configured: groups pass unchanged (except system: names)"
        );
    }
    let _ = writeln!(out, "kubernetes groups:");
    if m.granted.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for g in &m.granted {
        let by = g
            .rule
            .map_or_else(|| "no rules (pass-through)".to_owned(), rule);
        let _ = writeln!(
            out,
            "  {}  <- {} by {by}",
            Untrusted::new(&g.group),
            Untrusted::new(&g.from)
        );
    }
    if !m.dropped.is_empty() {
        let _ = writeln!(out, "dropped:");
    }
    for (g, why) in &m.dropped {
        let why = match why {
            Dropped::Denied(i) => format!("denied by {}", rule(*i)),
            Dropped::NoRule => "no rule matches (default deny)".to_owned(),
            Dropped::Reserved(Some(i)) => {
                format!("{} would give a reserved or invalid name", rule(*i))
            }
            Dropped::Reserved(None) => "reserved or invalid name".to_owned(),
        };
        let _ = writeln!(out, "  {}  {why}", Untrusted::new(g));
    }
    out
}

/// Who the admin CLI acts as in the audit trail.
pub const ADMIN_ACTOR: &str = "admin-cli";

/// Creates a grant after checking it against the policy. The server makes it real in the
/// cluster within seconds (it polls the grants epoch).
pub async fn add_grant(
    store: &Store,
    config: &Config,
    new: &NewGrant,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Grant, Error> {
    grants::validate(new, &config.roles, &config.clusters, now)?;
    if let Grantee::User(name) = &new.grantee {
        if store.user_by_name(name).await?.is_none() {
            return Err(Error::NoSuchUser(name.clone()));
        }
    }
    let grant = Grant {
        id: grant_id(),
        grantee: new.grantee.clone(),
        cluster: new.cluster.clone(),
        namespaces: new.namespaces.clone(),
        role: new.role.clone(),
        starts_at: new.starts_at,
        ends_at: new.ends_at,
        reason: new.reason.clone(),
        created_by: actor.to_owned(),
        approved_by: new.approved_by.clone(),
        request_id: new.request_id.clone(),
        revoked_at: None,
        revoked_by: None,
    };
    store.insert_grant(&grant, now).await?;
    store
        .audit(
            &AuditEvent::for_grant("grant.created", &grant, actor, None),
            now,
        )
        .await?;
    Ok(grant)
}

/// Revokes a grant; the server removes its bindings within seconds.
pub async fn revoke_grant(
    store: &Store,
    id: &str,
    reason: Option<&str>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Grant, Error> {
    let grant = store.revoke_grant(id, actor, reason, now).await?;
    store
        .audit(
            &AuditEvent::for_grant("grant.revoked", &grant, actor, reason),
            now,
        )
        .await?;
    Ok(grant)
}

/// A grant as typed at `grant add`, before it is checked: who, where, what, when and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantWords {
    /// The person (login name).
    pub user: Option<String>,
    /// Everyone in this group.
    pub group: Option<String>,
    /// Cluster.
    pub cluster: String,
    /// Namespace (repeatable); none means cluster-wide.
    pub namespaces: Vec<String>,
    /// Role from the issuer's policy (`[[roles]]`).
    pub role: String,
    /// Start (RFC 3339 or YYYY-MM-DD); default now.
    pub from: Option<String>,
    /// End (RFC 3339, or YYYY-MM-DD meaning the end of that day, UTC).
    pub until: Option<String>,
    /// Length from the start, e.g. 8h.
    pub for_: Option<String>,
    /// Why (shown in `grant list`, recorded in the audit trail).
    pub reason: Option<String>,
}

/// The grant `grant add` asks for: `--user`/`--group`, `--from` (default now), and `--until`
/// or `--for`.
pub fn new_grant(a: &GrantWords, now: OffsetDateTime) -> Result<NewGrant, Error> {
    let grantee = match (&a.user, &a.group) {
        (Some(u), None) => Grantee::User(u.clone()),
        (None, Some(g)) => Grantee::Group(g.clone()),
        _ => {
            return Err(Error::Time {
                flag: "--user/--group",
                message: "give exactly one of them".into(),
            })
        }
    };
    let starts_at = match &a.from {
        Some(s) => parse_time("--from", s, false)?,
        None => now,
    };
    let ends_at = match (&a.until, &a.for_) {
        (Some(s), None) => parse_time("--until", s, true)?,
        (None, Some(d)) => {
            let d = crate::config::parse_duration(d).ok_or_else(|| Error::Time {
                flag: "--for",
                message: format!("`{d}` is not a duration like 90s, 5m, 8h or 30d"),
            })?;
            starts_at + grants::span(d)
        }
        _ => {
            return Err(Error::Time {
                flag: "--until/--for",
                message: "give exactly one of them".into(),
            })
        }
    };
    Ok(NewGrant {
        grantee,
        cluster: a.cluster.clone(),
        namespaces: a.namespaces.clone(),
        role: a.role.clone(),
        starts_at,
        ends_at,
        reason: a.reason.clone(),
        approved_by: None,
        request_id: None,
    })
}

/// Where a grant applies: `prod/ns1,ns2` or `prod (cluster-wide)`, escaped for a terminal.
#[must_use]
pub fn grant_scope(g: &Grant) -> String {
    scope(&g.cluster, &g.namespaces)
}

/// `cluster/ns1,ns2` or `cluster (cluster-wide)`, escaped for a terminal.
fn scope(cluster: &str, namespaces: &[String]) -> String {
    if namespaces.is_empty() {
        format!("{} (cluster-wide)", Untrusted::new(cluster))
    } else {
        format!(
            "{}/{}",
            Untrusted::new(cluster),
            Untrusted::long(namespaces.join(","))
        )
    }
}

/// `2026-12-31 18:00:00Z`.
#[must_use]
pub fn format_time(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The table `grant list` prints. Names, roles and reasons are escaped: they came from
/// people (a reason typed into a request form, a name from an identity provider).
#[must_use]
pub fn grant_table(grants: &[Grant], now: OffsetDateTime) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<10}  {:<20}  {:<12}  {:<28}  {:<20}  {:<20}  {:<8}  REASON\n",
        "ID", "WHO", "ROLE", "WHERE", "FROM", "UNTIL", "STATUS"
    );
    for g in grants {
        let _ = writeln!(
            out,
            "{:<10}  {:<20}  {:<12}  {:<28}  {:<20}  {:<20}  {:<8}  {}",
            Untrusted::new(&g.id),
            Untrusted::new(&g.grantee),
            Untrusted::new(&g.role),
            grant_scope(g),
            format_time(g.starts_at),
            format_time(g.ends_at),
            g.status(now).as_str(),
            Untrusted::long(g.reason.as_deref().unwrap_or(""))
        );
    }
    out
}

/// The table `request list` prints, escaped as [`grant_table`] is.
#[must_use]
pub fn request_table(
    requests: &[crate::domain::requests::AccessRequest],
    now: OffsetDateTime,
) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<10}  {:<16}  {:<12}  {:<28}  {:<8}  {:<9}  {:<20}  {:<16}  REASON\n",
        "ID", "REQUESTER", "ROLE", "WHERE", "FOR", "STATUS", "FILED", "DECIDED BY"
    );
    for r in requests {
        let scope = scope(&r.cluster, &r.namespaces);
        let _ = writeln!(
            out,
            "{:<10}  {:<16}  {:<12}  {:<28}  {:<8}  {:<9}  {:<20}  {:<16}  {}",
            Untrusted::new(&r.id),
            Untrusted::new(&r.requester),
            Untrusted::new(&r.role),
            scope,
            crate::domain::requests::format_duration(r.duration),
            r.status_at(now).as_str(),
            format_time(r.created_at),
            Untrusted::new(r.decided_by.as_deref().unwrap_or("-")),
            Untrusted::long(r.reason.as_deref().unwrap_or(""))
        );
    }
    out
}

/// A grant (or access request) id: 10 lower-case hex digits, usable in Kubernetes object names
/// and labels.
#[must_use]
pub fn grant_id() -> String {
    crate::secrets::secret::hex(&crate::secrets::secret::random_bytes(5))
}

/// Reads `--from`/`--until`: RFC 3339 (`2026-12-31T18:00:00Z`), or a date (`2026-12-31`),
/// which means the start of that day (UTC) for `--from` and its end for `--until`.
pub fn parse_time(flag: &'static str, s: &str, end_of_day: bool) -> Result<OffsetDateTime, Error> {
    let bad = || Error::Time {
        flag,
        message: format!("`{s}` is not a time like 2026-12-31 or 2026-12-31T18:00:00Z"),
    };
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, &format).map_err(|_| bad())?;
    let start = date.midnight().assume_utc();
    Ok(if end_of_day {
        start + time::Duration::days(1)
    } else {
        start
    })
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

    /// Names, roles and reasons come from people and identity providers: an escape sequence
    /// or a newline in one reaches the operator's terminal escaped, on its own row.
    #[test]
    fn tables_and_explain_escape_names_from_outside() {
        let now = datetime!(2026-11-25 12:00 UTC);
        let evil = "mallory\x1b[31m\n2026-11-25 INFO admin-cli granted";
        let grant = Grant {
            id: "0a1b2c3d4e".into(),
            grantee: Grantee::User(evil.into()),
            cluster: "prod".into(),
            namespaces: vec!["pay\u{202e}ments".into()],
            role: "viewer\x1b]0;pwned\x07".into(),
            starts_at: now,
            ends_at: now + time::Duration::hours(1),
            reason: Some("x".repeat(1 << 20)),
            created_by: ADMIN_ACTOR.into(),
            approved_by: None,
            request_id: None,
            revoked_at: None,
            revoked_by: None,
        };
        let text = grant_table(&[grant], now);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains(r"user:mallory\x1b[31m\n2026-11-25 INFO"),
            "{text}"
        );
        assert!(text.contains(r"prod/pay\u{202e}ments"), "{text}");
        assert!(text.contains(r"viewer\x1b]0;pwned\x07"), "{text}");
        assert!(text.len() < 2000, "not bounded: {} bytes", text.len());
        assert!(!text.contains(['\x1b', '\x07', '\u{202e}']), "{text}");

        let request = crate::domain::requests::AccessRequest {
            id: "4f2a9c01de".into(),
            requester: evil.into(),
            cluster: "prod".into(),
            role: "viewer".into(),
            namespaces: vec![],
            reason: Some("because\r\n4f2a9c01de  root".into()),
            duration: std::time::Duration::from_secs(1800),
            created_at: now,
            expires_at: now + time::Duration::hours(1),
            status: crate::domain::requests::RequestStatus::Pending,
            decided_by: Some("bob\u{9b}2J".into()),
            comment: None,
            decided_at: None,
            grant_id: None,
            client_addr: None,
        };
        let text = request_table(&[request], now);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(r"because\r\n4f2a9c01de  root"), "{text}");
        assert!(text.contains(r"bob\u{9b}2J"), "{text}");
        assert!(!text.contains(['\x1b', '\r', '\u{9b}']), "{text}");

        let policy = crate::domain::policy::Policy::default();
        let groups = [
            "dev\nkubernetes groups:".to_owned(),
            "ops\x1b[8m".to_owned(),
        ];
        let text = explain(&policy, evil, &groups, "prod");
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains(r"[dev\nkubernetes groups:, ops\x1b[8m]"),
            "{text}"
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("kubernetes groups:"))
                .count(),
            1,
            "a forged line: {text}"
        );
    }

    #[test]
    fn grant_times() {
        let t = parse_time("--until", "2026-12-31", true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t, time::macros::datetime!(2027-01-01 00:00 UTC));
        let t = parse_time("--from", "2026-12-31", false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t, time::macros::datetime!(2026-12-31 00:00 UTC));
        let t = parse_time("--from", "2026-12-31T18:00:00+01:00", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t, time::macros::datetime!(2026-12-31 17:00 UTC));
        let e = parse_time("--until", "tomorrow", true)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("--until")));
        let id = grant_id();
        assert_eq!(id.len(), 10);
        assert!(crate::domain::grants::is_dns_label(&id));
    }

    #[tokio::test]
    async fn grants_are_checked_stored_audited_and_revoked() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        let file = crate::config::FileConfig {
            roles: vec![crate::config::FileRole {
                name: "viewer".into(),
                cluster_role: Some("view".into()),
                ..crate::config::FileRole::default()
            }],
            ..crate::config::FileConfig::default()
        };
        let config = Config::from_parts(file, &crate::config::Overrides::default(), || {
            Some("/tmp/x".into())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let new = NewGrant {
            grantee: Grantee::User("alice".into()),
            cluster: "default".into(),
            namespaces: vec![],
            role: "viewer".into(),
            starts_at: now,
            ends_at: now + time::Duration::hours(1),
            reason: Some("on call".into()),
            approved_by: None,
            request_id: None,
        };
        let r = add_grant(&s, &config, &new, ADMIN_ACTOR, now).await;
        assert!(matches!(r, Err(Error::NoSuchUser(_))), "{r:?}");
        let r = add_grant(
            &s,
            &config,
            &NewGrant {
                role: "admin".into(),
                ..new.clone()
            },
            ADMIN_ACTOR,
            now,
        )
        .await;
        assert!(matches!(r, Err(Error::Grant(_))), "{r:?}");
        add_user(
            &s,
            "alice",
            &[],
            None,
            &Secret::new("a long enough password"),
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let g = add_grant(&s, &config, &new, ADMIN_ACTOR, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        revoke_grant(&s, &g.id, Some("done"), ADMIN_ACTOR, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.audit_events_for("user:alice").await.unwrap_or_default(),
            ["grant.created", "grant.revoked"]
        );
    }

    #[test]
    fn grant_requests_and_the_list_table() {
        let now = time::macros::datetime!(2026-06-01 12:00 UTC);
        let args = GrantWords {
            user: Some("alice".into()),
            group: None,
            cluster: "prod".into(),
            namespaces: vec!["web".into(), "db".into()],
            role: "deployer".into(),
            from: None,
            until: None,
            for_: Some("8h".into()),
            reason: Some("release".into()),
        };
        let new = new_grant(&args, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (new.starts_at, new.ends_at),
            (now, now + time::Duration::hours(8))
        );
        let bad = new_grant(
            &GrantWords {
                for_: Some("a while".into()),
                ..args
            },
            now,
        );
        assert!(bad.err().is_some_and(|e| e.to_string().contains("--for")));

        let grant = |id: &str, grantee, namespaces: Vec<String>, revoked| Grant {
            id: id.into(),
            grantee,
            cluster: "prod".into(),
            namespaces,
            role: "deployer".into(),
            starts_at: now,
            ends_at: now + time::Duration::hours(8),
            reason: Some("release".into()),
            created_by: ADMIN_ACTOR.into(),
            approved_by: None,
            request_id: None,
            revoked_at: revoked,
            revoked_by: None,
        };
        let table = grant_table(
            &[
                grant(
                    "0a1b2c3d4e",
                    Grantee::User("alice".into()),
                    vec!["web".into(), "db".into()],
                    None,
                ),
                grant(
                    "5f6a7b8c9d",
                    Grantee::Group("sre".into()),
                    vec![],
                    Some(now),
                ),
            ],
            now,
        );
        let want = "\
ID          WHO                   ROLE          WHERE                         FROM                  UNTIL                 STATUS    REASON
0a1b2c3d4e  user:alice            deployer      prod/web,db                   2026-06-01 12:00:00Z  2026-06-01 20:00:00Z  active    release
5f6a7b8c9d  group:sre             deployer      prod (cluster-wide)           2026-06-01 12:00:00Z  2026-06-01 20:00:00Z  revoked   release
";
        assert_eq!(table, want);
    }

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

    #[test]
    fn explain_names_the_rule_behind_each_group() {
        let text = r#"
[[clusters]]
name = "prod"
[[clusters]]
name = "staging"
[[policy.rules]]
group = "eng-contractors"
deny = true
[[policy.rules]]
group = "eng-*"
kubernetes_groups = ["developers"]
[[policy.rules]]
group = "sre"
kubernetes_groups = ["cluster-admins"]
clusters = ["prod"]
"#;
        let file: crate::config::FileConfig =
            toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let cfg =
            crate::config::Config::from_parts(file, &crate::config::Overrides::default(), || {
                Some("/tmp/x".into())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let groups: Vec<String> = ["eng-contractors", "eng-web", "sales", "sre"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        insta::assert_snapshot!(explain(&cfg.policy, "ann", &groups, "prod"), @r"
        user ann in cluster prod: identity groups [eng-contractors, eng-web, sales, sre]
        kubernetes groups:
          cluster-admins  <- sre by rule 2 (sre)
          developers  <- eng-web by rule 1 (eng-*)
        dropped:
          eng-contractors  denied by rule 0 (eng-contractors)
          sales  no rule matches (default deny)
        ");
        assert!(explain(&cfg.policy, "ann", &groups, "staging").contains("sre  no rule matches"));
    }
}
