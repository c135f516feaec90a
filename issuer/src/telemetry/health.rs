//! The database's health as this process last saw it, so that `/readyz` answers at once and
//! requests fail fast while the database is down instead of each waiting out the pool's
//! timeout.
//!
//! Two things feed it: a probe every second (`crate::serve`), which reads on both pools and
//! commits a one-row write (a full disk fails only writes), and every request that met a
//! database fault (the HTTP layer reports it). Only the probe clears a fault: a process that
//! stopped taking traffic because of one notices by itself when the database is back.

use std::sync::Mutex;

use time::OffsetDateTime;

use crate::store::Fault;

/// How often the probe runs, and how long it may take before it counts as a fault.
pub const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What is wrong with the database, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trouble {
    /// The kind of fault.
    pub fault: Fault,
    /// When it was first seen (it may have been there a little longer).
    pub since: OffsetDateTime,
}

/// The shared state; one per process, in [`crate::service::state::AppState`].
#[derive(Debug, Default)]
pub struct Health {
    trouble: Mutex<Option<Trouble>>,
}

impl Health {
    /// Records a fault seen at `now`. Returns true when it is news (the database was healthy,
    /// or had another fault), so that the caller logs it once rather than per request.
    pub fn report(&self, fault: Fault, now: OffsetDateTime) -> bool {
        let mut t = self.lock();
        match &*t {
            Some(old) if old.fault == fault => false,
            _ => {
                *t = Some(Trouble { fault, since: now });
                true
            }
        }
    }

    /// The probe succeeded: the database is healthy. Returns the trouble that ended, if any.
    pub fn recovered(&self) -> Option<Trouble> {
        self.lock().take()
    }

    /// What is wrong now, if anything.
    #[must_use]
    pub fn trouble(&self) -> Option<Trouble> {
        self.lock().clone()
    }

    /// A fault for which requests are refused at once rather than sent to the database: one
    /// that makes every statement wait (a server that cannot be reached, one that does not
    /// answer). A full or read-only disk fails writes at once by itself and leaves reads
    /// working, so requests still go through.
    #[must_use]
    pub fn fail_fast(&self) -> Option<Trouble> {
        self.trouble().filter(|t| {
            matches!(
                t.fault,
                Fault::Unreachable | Fault::TimedOut | Fault::Overloaded
            )
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Trouble>> {
        // The state is one small value replaced whole: a panic elsewhere cannot leave it torn.
        self.trouble
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_news_once_and_only_the_probe_clears_it() {
        let h = Health::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        assert!(h.report(Fault::DiskFull, t0));
        assert!(!h.report(Fault::DiskFull, t0 + time::Duration::seconds(5)));
        assert_eq!(
            h.trouble().map(|t| (t.fault, t.since)),
            Some((Fault::DiskFull, t0))
        );
        assert!(h.fail_fast().is_none(), "reads still work on a full disk");
        assert!(h.report(Fault::Unreachable, t0 + time::Duration::seconds(9)));
        assert!(h.fail_fast().is_some());
        assert_eq!(h.recovered().map(|t| t.fault), Some(Fault::Unreachable));
        assert!(h.trouble().is_none());
        assert!(h.recovered().is_none());
    }
}
