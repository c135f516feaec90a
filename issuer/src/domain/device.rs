//! The device-flow state machine of RFC 8628: what a token-endpoint poll answers, given the
//! stored state of the device code and the time.

use time::OffsetDateTime;

/// Where a device authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for the person.
    Pending,
    /// The person approved; tokens not yet issued.
    Approved,
    /// The person denied.
    Denied,
    /// Tokens were issued; the code is spent.
    Consumed,
}

impl Status {
    /// Database form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Consumed => "consumed",
        }
    }

    /// Parses the database form.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "approved" => Some(Self::Approved),
            "denied" => Some(Self::Denied),
            "consumed" => Some(Self::Consumed),
            _ => None,
        }
    }
}

/// The facts a poll decision needs.
#[derive(Debug, Clone, Copy)]
pub struct PollState {
    /// Current status.
    pub status: Status,
    /// When the code expires.
    pub expires_at: OffsetDateTime,
    /// `Some(new interval)` when this poll came sooner after the previous one than the
    /// interval allows. The store decides it in one statement with recording the poll, so
    /// that of concurrent polls within one interval only one is in time.
    pub too_early: Option<i64>,
}

/// What to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// `authorization_pending`.
    Pending,
    /// `slow_down`; the stored interval becomes `new_interval_secs`.
    SlowDown {
        /// Interval after adding 5 seconds (RFC 8628 section 3.5).
        new_interval_secs: i64,
    },
    /// `access_denied`.
    Denied,
    /// `expired_token`.
    Expired,
    /// Issue tokens (after atomically marking the code consumed).
    Issue,
    /// `invalid_grant`: the code was already used.
    AlreadyUsed,
}

/// Decides a poll. Order matters: a spent code is `invalid_grant` even after expiry; expiry
/// beats everything else; polling too fast is answered before the person's decision is revealed.
#[must_use]
pub fn poll(state: PollState, now: OffsetDateTime) -> PollOutcome {
    if state.status == Status::Consumed {
        return PollOutcome::AlreadyUsed;
    }
    if now >= state.expires_at {
        return PollOutcome::Expired;
    }
    if let Some(new_interval_secs) = state.too_early {
        return PollOutcome::SlowDown { new_interval_secs };
    }
    match state.status {
        Status::Pending => PollOutcome::Pending,
        Status::Denied => PollOutcome::Denied,
        Status::Approved => PollOutcome::Issue,
        Status::Consumed => PollOutcome::AlreadyUsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn check(status: Status, too_early: Option<i64>, expires_in: i64, want: PollOutcome) {
        let now = datetime!(2026-01-01 12:00 UTC);
        let state = PollState {
            status,
            expires_at: now + time::Duration::seconds(expires_in),
            too_early,
        };
        assert_eq!(
            poll(state, now),
            want,
            "{status:?} too_early={too_early:?} expires_in={expires_in}"
        );
    }

    #[test]
    fn poll_table() {
        use PollOutcome as O;
        use Status as S;
        check(S::Pending, None, 600, O::Pending);
        check(
            S::Pending,
            Some(10),
            600,
            O::SlowDown {
                new_interval_secs: 10,
            },
        );
        check(
            S::Approved,
            Some(10),
            600,
            O::SlowDown {
                new_interval_secs: 10,
            },
        );
        check(S::Approved, None, 600, O::Issue);
        check(S::Denied, None, 600, O::Denied);
        check(S::Pending, None, 0, O::Expired);
        check(S::Approved, None, -1, O::Expired);
        check(S::Denied, Some(10), -1, O::Expired);
        check(S::Consumed, None, 600, O::AlreadyUsed);
        check(S::Consumed, None, -10, O::AlreadyUsed);
    }

    #[test]
    fn status_round_trip() {
        for s in [
            Status::Pending,
            Status::Approved,
            Status::Denied,
            Status::Consumed,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("x"), None);
    }
}
