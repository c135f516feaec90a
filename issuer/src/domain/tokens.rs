//! The claims of an access token, and its lifetime rules.

use credential_shared::oauth::AccessTokenClaims;
use time::OffsetDateTime;

/// Who the token is for, as the store knows them.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// Stable user id (`sub`).
    pub user_id: &'a str,
    /// Login name.
    pub username: &'a str,
    /// E-mail address, where known.
    pub email: Option<&'a str>,
    /// Groups, sorted and deduplicated by the caller.
    pub groups: &'a [String],
}

/// Inputs that are not about the person.
#[derive(Debug, Clone, Copy)]
pub struct Minting<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// Cluster name.
    pub cluster: &'a str,
    /// `aud`.
    pub audience: &'a str,
    /// Session id.
    pub session_id: &'a str,
    /// Unique token id.
    pub jti: &'a str,
    /// Now.
    pub now: OffsetDateTime,
    /// Configured token lifetime.
    pub ttl: std::time::Duration,
    /// End of the session: a token never outlives its session.
    pub session_expires_at: OffsetDateTime,
}

/// Builds the claims. `exp` is the earlier of `now + ttl` and the session's end.
#[must_use]
pub fn access_claims(who: &Subject<'_>, m: Minting<'_>) -> AccessTokenClaims {
    let iat = m.now.unix_timestamp();
    let ttl = i64::try_from(m.ttl.as_secs()).unwrap_or(i64::MAX);
    let exp = iat
        .saturating_add(ttl)
        .min(m.session_expires_at.unix_timestamp());
    AccessTokenClaims {
        iss: m.issuer.to_owned(),
        sub: who.user_id.to_owned(),
        aud: m.audience.to_owned(),
        iat,
        nbf: iat,
        exp,
        jti: m.jti.to_owned(),
        preferred_username: who.username.to_owned(),
        email: who.email.map(str::to_owned),
        groups: who.groups.to_vec(),
        cluster: Some(m.cluster.to_owned()),
        sid: Some(m.session_id.to_owned()),
        grants: Vec::new(),
        upstream_checked_at: None,
    }
}

/// Adds the grants in force at minting: their ids in the `grants` claim, and their groups
/// (`grant:<role>` cluster-wide, `grant:<role>:<namespace>` otherwise) in `groups`, so that
/// RBAC can bind to those groups as well as through the reconciler's bindings.
pub fn add_grants(claims: &mut AccessTokenClaims, grants: &[crate::domain::grants::Grant]) {
    for g in grants {
        claims.grants.push(g.id.clone());
        claims.groups.extend(g.token_groups());
    }
    claims.grants.sort();
    claims.grants.dedup();
    claims.groups.sort();
    claims.groups.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);

    fn minting(session_expires_at: OffsetDateTime) -> Minting<'static> {
        Minting {
            issuer: "https://i",
            cluster: "prod",
            audience: "kubernetes",
            session_id: "s1",
            jti: "j1",
            now: NOW,
            ttl: std::time::Duration::from_secs(300),
            session_expires_at,
        }
    }

    fn alice(groups: &[String]) -> Subject<'_> {
        Subject {
            user_id: "u1",
            username: "alice",
            email: None,
            groups,
        }
    }

    #[test]
    fn token_never_outlives_session() {
        let groups = vec!["dev".to_owned()];
        let who = alice(&groups);
        let c = access_claims(&who, minting(NOW + time::Duration::seconds(100)));
        assert_eq!(c.exp - c.iat, 100);
        let c = access_claims(&who, minting(NOW + time::Duration::hours(1)));
        assert_eq!(c.exp - c.iat, 300);
        assert_eq!(
            (c.sub.as_str(), c.aud.as_str(), c.nbf),
            ("u1", "kubernetes", c.iat)
        );
    }

    #[test]
    fn grants_become_groups_and_a_claim() {
        use crate::domain::grants::Grantee;
        let now = NOW;
        let groups = vec!["dev".to_owned()];
        let who = alice(&groups);
        let m = minting(now + time::Duration::hours(1));
        let grant = |id: &str, namespaces: &[&str]| {
            crate::domain::grants::tests::grant(
                id,
                Grantee::User("alice".into()),
                namespaces,
                "deployer",
            )
        };
        let mut c = access_claims(&who, m);
        add_grants(&mut c, &[grant("g2", &["web"]), grant("g1", &[])]);
        assert_eq!(c.grants, ["g1", "g2"]);
        assert_eq!(c.groups, ["dev", "grant:deployer", "grant:deployer:web"]);
    }
}
