//! Whether a login session may still be refreshed.

use time::OffsetDateTime;

/// Why a session is or is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Refresh may proceed.
    Live,
    /// Past its absolute lifetime.
    Expired,
    /// Ended by logout, reuse detection or an administrator.
    Revoked,
    /// The account is disabled.
    UserDisabled,
    /// The account is past its end date (invited contractors).
    AccountExpired,
}

/// The facts liveness depends on.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts {
    /// Absolute end of the session.
    pub expires_at: OffsetDateTime,
    /// Set when revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Set when the user is disabled.
    pub user_disabled_at: Option<OffsetDateTime>,
    /// End of the account, if it has one.
    pub user_expires_at: Option<OffsetDateTime>,
}

/// Decides liveness; revocation and disabling win over expiry so the audit trail says why.
#[must_use]
pub fn liveness(f: SessionFacts, now: OffsetDateTime) -> Liveness {
    if f.user_disabled_at.is_some() {
        Liveness::UserDisabled
    } else if f.user_expires_at.is_some_and(|e| now >= e) {
        Liveness::AccountExpired
    } else if f.revoked_at.is_some() {
        Liveness::Revoked
    } else if now >= f.expires_at {
        Liveness::Expired
    } else {
        Liveness::Live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn liveness_table() {
        let now = datetime!(2026-01-01 12:00 UTC);
        let later = now + time::Duration::hours(1);
        let earlier = now - time::Duration::hours(1);
        let f = |expires_at, revoked_at, user_disabled_at| SessionFacts {
            expires_at,
            revoked_at,
            user_disabled_at,
            user_expires_at: None,
        };
        assert_eq!(liveness(f(later, None, None), now), Liveness::Live);
        assert_eq!(liveness(f(now, None, None), now), Liveness::Expired);
        assert_eq!(
            liveness(f(later, Some(earlier), None), now),
            Liveness::Revoked
        );
        assert_eq!(
            liveness(f(earlier, Some(earlier), Some(earlier)), now),
            Liveness::UserDisabled
        );
        let ended = |user_expires_at| SessionFacts {
            user_expires_at: Some(user_expires_at),
            ..f(later, None, None)
        };
        assert_eq!(liveness(ended(now), now), Liveness::AccountExpired);
        assert_eq!(liveness(ended(later), now), Liveness::Live);
    }
}
