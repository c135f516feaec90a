//! `[accounts]` and `[rate_limits]`: local accounts' second factor and invitation links, and
//! the limits that stop guessing (user codes, passwords, TOTP codes) and flooding.

use std::time::Duration;

use super::values::duration_within;
use super::{invalid, ConfigError, FileAccounts, FileRateLimits};

/// Longest rate-limit window. The store adds it to a time in SQL (a PostgreSQL `bigint`, which
/// refuses to overflow), and a counter that forgives after more than a day locks people out.
const MAX_RATE_LIMIT_WINDOW: Duration = Duration::from_secs(86_400);

/// `[accounts]`: local accounts' second factor and invitations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// Refuse password-only sign-in: every local account must have enrolled TOTP.
    pub require_totp: bool,
    /// Default lifetime of an invitation link (`invite create --link-ttl` overrides it).
    pub invitation_ttl: Duration,
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            require_totp: false,
            invitation_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Rate limits against guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Wrong user codes accepted per client address per window.
    pub user_code_failures: u32,
    /// Wrong passwords accepted per account per window (and per address per window).
    pub password_failures: u32,
    /// Wrong TOTP codes accepted per account (or invitation) per window (and four times as
    /// many per address).
    pub totp_failures: u32,
    /// Device authorizations started per client address per window (each stores a row, so an
    /// unauthenticated flood must not grow the database without bound).
    pub device_authorizations: u32,
    /// Length of the window.
    pub window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            user_code_failures: 10,
            password_failures: 5,
            totp_failures: 5,
            device_authorizations: 100,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// `[accounts]`, [`Accounts::default`] where a key is not given.
pub(super) fn accounts(file: Option<FileAccounts>) -> Result<Accounts, ConfigError> {
    let mut accounts = Accounts::default();
    if let Some(a) = file {
        accounts.require_totp = a.require_totp.unwrap_or(false);
        accounts.invitation_ttl = duration_within(
            "accounts.invitation_ttl",
            a.invitation_ttl.as_deref(),
            "24h",
            Duration::from_secs(60)..=Duration::from_secs(30 * 86_400),
            "must be between 1m and 30d",
        )?;
    }
    Ok(accounts)
}

/// `[rate_limits]`, [`RateLimits::default`] where a key is not given.
pub(super) fn rate_limits(file: Option<FileRateLimits>) -> Result<RateLimits, ConfigError> {
    let mut rate_limits = RateLimits::default();
    if let Some(r) = file {
        if let Some(n) = r.user_code_failures {
            rate_limits.user_code_failures = n;
        }
        if let Some(n) = r.password_failures {
            rate_limits.password_failures = n;
        }
        if let Some(n) = r.totp_failures {
            if n == 0 {
                return Err(invalid(
                    "rate_limits.totp_failures",
                    "must be at least 1 (0 would refuse every code)",
                ));
            }
            rate_limits.totp_failures = n;
        }
        if let Some(n) = r.device_authorizations {
            rate_limits.device_authorizations = n;
        }
        rate_limits.window = duration_within(
            "rate_limits.window",
            r.window.as_deref(),
            "15m",
            Duration::ZERO..=MAX_RATE_LIMIT_WINDOW,
            "must be at most 1d",
        )?;
    }
    Ok(rate_limits)
}
