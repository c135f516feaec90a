//! The rules of a `TokenReview` (webhook token authentication): which claims a token must carry
//! for the cluster asking, when its session still counts, and the identity the API server gets.
//!
//! The identity is exactly what the OIDC mode yields with the flags in
//! `install/apiserver-flags.txt` (`credential:` prefixes), so RBAC bindings work in both modes.

use credential_shared::oauth::AccessTokenClaims;
use time::OffsetDateTime;

use super::session::{liveness, Liveness, SessionFacts};

/// The prefix of user and group names, as `--oidc-username-prefix`/`--oidc-groups-prefix`.
pub const PREFIX: &str = "credential:";
/// `extra` key: the issuer-side session the token belongs to.
pub const EXTRA_SESSION_ID: &str = "credential.kubectl.dev/session-id";
/// `extra` key: the cluster the token was issued for.
pub const EXTRA_CLUSTER: &str = "credential.kubectl.dev/cluster";
/// `extra` key: the OAuth client that obtained the session.
pub const EXTRA_CLIENT_ID: &str = "credential.kubectl.dev/client-id";
/// `extra` key: the grants in force when the token was minted (comma-separated ids; their
/// reasons and approvers are in the issuer's audit trail under these ids).
pub const EXTRA_GRANT_IDS: &str = "credential.kubectl.dev/grant-ids";

/// How far in the future `nbf` may be: tolerates clock skew between issuer replicas.
pub const NBF_LEEWAY_SECS: i64 = 5;

/// Why a token is not accepted. `reason()` is what the API server is told; it never holds a
/// secret or a value taken from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a token this issuer signed (malformed, unknown key, bad signature).
    InvalidToken,
    /// `iss` is not this issuer.
    WrongIssuer,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `aud` (or the `cluster` claim) is not the asking cluster's, or no audience was asked for
    /// on the path without a cluster.
    WrongAudience,
    /// The token carries no session id.
    NoSession,
    /// The session is unknown, revoked (logout, refresh-token reuse, administrator), or belongs
    /// to someone else.
    SessionRevoked,
    /// The session has passed its absolute lifetime.
    SessionExpired,
    /// The account is disabled (or gone).
    UserDisabled,
}

impl Refusal {
    /// The `status.error` text.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid token",
            Self::WrongIssuer => "token is from another issuer",
            Self::Expired => "token expired",
            Self::NotYetValid => "token is not valid yet",
            Self::WrongAudience => "token is for another cluster",
            Self::NoSession => "token has no session",
            Self::SessionRevoked => "session revoked",
            Self::SessionExpired => "session expired",
            Self::UserDisabled => "account disabled",
        }
    }

    /// The metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::InvalidToken | Self::NoSession => "invalid_token",
            Self::WrongIssuer => "wrong_issuer",
            Self::Expired | Self::NotYetValid => "expired",
            Self::WrongAudience => "wrong_audience",
            Self::SessionRevoked => "session_revoked",
            Self::SessionExpired => "session_expired",
            Self::UserDisabled => "user_disabled",
        }
    }
}

/// The cluster a review is for, and the audience its tokens carry.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Cluster name (the `cluster` claim).
    pub cluster: &'a str,
    /// Its audience (the `aud` claim).
    pub audience: &'a str,
}

/// Checks the claims of a token whose signature is already verified: issuer, time window,
/// audience and cluster, and that it names a session.
pub fn check_claims(
    c: &AccessTokenClaims,
    issuer: &str,
    target: Target<'_>,
    now: OffsetDateTime,
) -> Result<(), Refusal> {
    let now = now.unix_timestamp();
    if c.iss != issuer {
        return Err(Refusal::WrongIssuer);
    }
    if now >= c.exp {
        return Err(Refusal::Expired);
    }
    if c.nbf > now.saturating_add(NBF_LEEWAY_SECS) {
        return Err(Refusal::NotYetValid);
    }
    if c.aud != target.audience {
        return Err(Refusal::WrongAudience);
    }
    // Tokens carry their cluster; two clusters sharing an audience still cannot swap tokens.
    if c.cluster
        .as_deref()
        .is_some_and(|name| name != target.cluster)
    {
        return Err(Refusal::WrongAudience);
    }
    if !c.sid.as_deref().is_some_and(is_session_id) {
        return Err(Refusal::NoSession);
    }
    Ok(())
}

/// Whether `sid` can name a session: the issuer's session ids are base64url (`random_token`).
/// Anything else is refused before the database is asked, which (PostgreSQL) would refuse text
/// holding NUL with an error rather than an empty answer.
fn is_session_id(sid: &str) -> bool {
    !sid.is_empty()
        && sid.len() <= 64
        && sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the issuer knows about a session at review time.
#[derive(Debug, Clone)]
pub struct SessionState {
    /// Owner (must equal the token's `sub`).
    pub user_id: String,
    /// Cluster (must equal the review's).
    pub cluster: String,
    /// Liveness facts.
    pub facts: SessionFacts,
}

/// Whether the token's session still counts. `None`: no such session (purged or never).
pub fn check_session(
    c: &AccessTokenClaims,
    session: Option<&SessionState>,
    target: Target<'_>,
    now: OffsetDateTime,
) -> Result<(), Refusal> {
    let Some(s) = session else {
        return Err(Refusal::SessionRevoked);
    };
    if s.user_id != c.sub || s.cluster != target.cluster {
        return Err(Refusal::SessionRevoked);
    }
    match liveness(s.facts, now) {
        Liveness::Live => Ok(()),
        Liveness::Expired => Err(Refusal::SessionExpired),
        Liveness::Revoked => Err(Refusal::SessionRevoked),
        // An account past its end date is refused like a disabled one.
        Liveness::UserDisabled | Liveness::AccountExpired => Err(Refusal::UserDisabled),
    }
}

/// Who the API server is told the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `credential:<preferred_username>`.
    pub username: String,
    /// `sub`.
    pub uid: String,
    /// `credential:<group>` each.
    pub groups: Vec<String>,
    /// `extra`, sorted by key; one value each.
    pub extra: Vec<(&'static str, String)>,
}

/// Builds the identity of an accepted token.
#[must_use]
pub fn identity(c: &AccessTokenClaims, target: Target<'_>, client_id: &str) -> Identity {
    let mut extra = vec![
        (EXTRA_CLIENT_ID, client_id.to_owned()),
        (EXTRA_CLUSTER, target.cluster.to_owned()),
        (EXTRA_SESSION_ID, c.sid.clone().unwrap_or_default()),
    ];
    if !c.grants.is_empty() {
        extra.push((EXTRA_GRANT_IDS, c.grants.join(",")));
    }
    extra.sort_by_key(|(k, _)| *k);
    Identity {
        username: format!("{PREFIX}{}", c.preferred_username),
        uid: c.sub.clone(),
        groups: c.groups.iter().map(|g| format!("{PREFIX}{g}")).collect(),
        extra,
    }
}

/// The `status.audiences` answer: the token's audience if the API server asked for it, else
/// nothing (the API server then checks its own audiences; see docs/operations.md).
#[must_use]
pub fn granted_audiences(requested: &[String], audience: &str) -> Vec<String> {
    if requested.iter().any(|a| a == audience) {
        vec![audience.to_owned()]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);
    const TARGET: Target<'static> = Target {
        cluster: "prod",
        audience: "kubernetes",
    };

    fn claims() -> AccessTokenClaims {
        let t = NOW.unix_timestamp();
        AccessTokenClaims {
            iss: "https://issuer.test".into(),
            sub: "u1".into(),
            aud: "kubernetes".into(),
            iat: t,
            nbf: t,
            exp: t + 300,
            jti: "j".into(),
            preferred_username: "alice".into(),
            email: None,
            groups: vec!["dev".into(), "ops".into()],
            cluster: Some("prod".into()),
            sid: Some("s1".into()),
            grants: Vec::new(),
            upstream_checked_at: None,
        }
    }

    fn check(
        edit: impl FnOnce(&mut AccessTokenClaims),
        now: OffsetDateTime,
    ) -> Result<(), Refusal> {
        let mut c = claims();
        edit(&mut c);
        check_claims(&c, "https://issuer.test", TARGET, now)
    }

    /// A case: name, how the claims differ from valid ones, the time, the verdict.
    type Case = (
        &'static str,
        fn(&mut AccessTokenClaims),
        OffsetDateTime,
        Result<(), Refusal>,
    );

    #[test]
    fn claims_table() {
        let cases: [Case; 11] = [
            ("valid", |_| {}, NOW, Ok(())),
            (
                "other issuer",
                |c| c.iss = "https://evil.test".into(),
                NOW,
                Err(Refusal::WrongIssuer),
            ),
            (
                "expired at exp",
                |_| {},
                NOW + time::Duration::seconds(300),
                Err(Refusal::Expired),
            ),
            (
                "nbf within leeway",
                |c| c.nbf += NBF_LEEWAY_SECS,
                NOW,
                Ok(()),
            ),
            (
                "nbf beyond leeway",
                |c| c.nbf += NBF_LEEWAY_SECS + 1,
                NOW,
                Err(Refusal::NotYetValid),
            ),
            (
                "other audience",
                |c| c.aud = "staging".into(),
                NOW,
                Err(Refusal::WrongAudience),
            ),
            (
                "other cluster, same audience",
                |c| c.cluster = Some("staging".into()),
                NOW,
                Err(Refusal::WrongAudience),
            ),
            ("no sid", |c| c.sid = None, NOW, Err(Refusal::NoSession)),
            // Found by `http::fuzz_tests::token_reviews_accept_only_tokens_the_issuer_would` on
            // PostgreSQL: a signed token whose sid held NUL reached the session lookup, which
            // failed (a 500). No session id has such characters.
            (
                "sid no session has",
                |c| c.sid = Some("s\0".into()),
                NOW,
                Err(Refusal::NoSession),
            ),
            (
                "empty sid",
                |c| c.sid = Some(String::new()),
                NOW,
                Err(Refusal::NoSession),
            ),
            (
                "one second before exp",
                |c| c.exp = NOW.unix_timestamp() + 1,
                NOW,
                Ok(()),
            ),
        ];
        for (name, edit, now, want) in cases {
            assert_eq!(check(edit, now), want, "{name}");
        }
    }

    #[test]
    fn session_table() {
        let later = NOW + time::Duration::hours(1);
        let live = SessionState {
            user_id: "u1".into(),
            cluster: "prod".into(),
            facts: SessionFacts {
                expires_at: later,
                revoked_at: None,
                user_disabled_at: None,
                user_expires_at: None,
            },
        };
        let with = |edit: fn(&mut SessionState)| {
            let mut s = live.clone();
            edit(&mut s);
            check_session(&claims(), Some(&s), TARGET, NOW)
        };
        assert_eq!(with(|_| {}), Ok(()));
        assert_eq!(
            check_session(&claims(), None, TARGET, NOW),
            Err(Refusal::SessionRevoked)
        );
        assert_eq!(
            with(|s| s.facts.revoked_at = Some(NOW)),
            Err(Refusal::SessionRevoked)
        );
        assert_eq!(
            with(|s| s.facts.expires_at = NOW),
            Err(Refusal::SessionExpired)
        );
        assert_eq!(
            with(|s| s.facts.user_disabled_at = Some(NOW)),
            Err(Refusal::UserDisabled)
        );
        assert_eq!(
            with(|s| s.user_id = "u2".into()),
            Err(Refusal::SessionRevoked)
        );
        assert_eq!(
            with(|s| s.cluster = "staging".into()),
            Err(Refusal::SessionRevoked)
        );
    }

    #[test]
    fn identity_matches_the_oidc_flags_and_carries_extra() {
        let id = identity(&claims(), TARGET, "kubectl-credential");
        assert_eq!(id.username, "credential:alice");
        assert_eq!(id.uid, "u1");
        assert_eq!(id.groups, ["credential:dev", "credential:ops"]);
        assert_eq!(
            id.extra,
            [
                (EXTRA_CLIENT_ID, "kubectl-credential".to_owned()),
                (EXTRA_CLUSTER, "prod".to_owned()),
                (EXTRA_SESSION_ID, "s1".to_owned()),
            ]
        );
        for (k, _) in &id.extra {
            assert_eq!(k.to_lowercase(), *k, "extra keys must be lowercase");
        }
        let mut granted = claims();
        granted.grants = vec!["g1".into(), "g2".into()];
        let id = identity(&granted, TARGET, "kubectl-credential");
        assert!(
            id.extra.contains(&(EXTRA_GRANT_IDS, "g1,g2".to_owned())),
            "{:?}",
            id.extra
        );
    }

    #[test]
    fn audiences_are_granted_only_when_asked_for() {
        let asked = vec![
            "https://kubernetes.default.svc".to_owned(),
            "kubernetes".to_owned(),
        ];
        assert_eq!(granted_audiences(&asked, "kubernetes"), ["kubernetes"]);
        assert!(granted_audiences(&asked[..1], "kubernetes").is_empty());
        assert!(granted_audiences(&[], "kubernetes").is_empty());
    }
}
