//! The leader lease: of several issuer replicas on one database, only the one holding the
//! lease named [`LEASE`] runs the work that must not run twice at once (the grant reconciler
//! and the audit sealer). Every replica tries every [`Timing::renew_every`] (a third of the
//! configured `leader_lease`) to take or renew the lease for [`Timing::ttl`]; the database's
//! one conditional upsert (`store::leases`) decides who holds it.
//!
//! Never two leaders: a replica acts as leader only until [`Timing::margin`] (a fifth of the
//! lease) before its last successful renewal would expire, measured on its own monotonic clock
//! from the moment the renewal was *sent*, while another replica takes the lease over only
//! once it has expired in the database. So a holder that cannot reach the database (or is
//! paused) stops before anyone else can start, as long as the replicas' clocks agree within
//! the margin.
//!
//! The lease trades takeover time against that margin: a killed leader is replaced between
//! about `ttl - renew_every` and `ttl + renew_every` (plus a second of rounding) after it
//! died; a shorter lease replaces it sooner but tolerates less clock skew, and costs one
//! statement per replica every `renew_every`.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::service::state::AppState;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;

/// The lease's name in the `leases` table.
pub const LEASE: &str = "leader";
pub use crate::config::{
    LEADER_LEASE_DEFAULT as DEFAULT_TTL, LEADER_LEASE_MAX as MAX_TTL, LEADER_LEASE_MIN as MIN_TTL,
};

/// The timing of the lease, all derived from its lifetime (`leader_lease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a taken or renewed lease lasts in the database.
    pub ttl: Duration,
    /// How often the lease is taken or renewed (a third of `ttl`), and how long one statement
    /// may take.
    pub renew_every: Duration,
    /// How long before its lease would expire a replica stops acting as leader (a fifth of
    /// `ttl`): the clock skew between replicas that is tolerated.
    pub margin: Duration,
}

impl Timing {
    /// The timing of a lease of `ttl` (the config checks [`MIN_TTL`]..=[`MAX_TTL`]). With
    /// renewals every third of the lease and leadership ending a fifth before it, a leader
    /// survives two missed renewals (4/5 of the lease against 1/3 per renewal) whatever the
    /// lease.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            renew_every: ttl / 3,
            margin: ttl / 5,
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

/// What this replica knows of its lease. Pure, so that the timing rule is unit-tested.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderState {
    /// Until when this replica may act as leader; `None`: not held.
    until: Option<Instant>,
}

impl LeaderState {
    /// The lease was taken or renewed, with `timing`, by a statement sent at `at`.
    #[must_use]
    pub fn renewed(at: Instant, timing: Timing) -> Self {
        Self {
            until: Some(at + timing.ttl.saturating_sub(timing.margin)),
        }
    }

    /// Until when this replica may act as leader: the lease's TTL minus its margin after its
    /// last renewal was sent; `None` when it does not hold the lease.
    #[must_use]
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// Whether this replica may do leader-only work at `now`.
    #[must_use]
    pub fn is_leader(&self, now: Instant) -> bool {
        self.until().is_some_and(|until| now < until)
    }
}

/// What a leader-only task does in one round, given whether it ran as leader last time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Not the leader: skip the round.
    Skip,
    /// Just became the leader: work at once (another replica's state may be stale).
    Begin,
    /// Still the leader: work as scheduled.
    Continue,
}

/// The gate of a leader-only task: `was_leader` is what the previous round saw.
#[must_use]
pub fn turn(was_leader: bool, is_leader: bool) -> Turn {
    match (was_leader, is_leader) {
        (_, false) => Turn::Skip,
        (false, true) => Turn::Begin,
        (true, true) => Turn::Continue,
    }
}

/// Why a take or renewal did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The statement failed (database unreachable, ...).
    #[error("the leader lease statement failed")]
    Store(#[from] crate::store::Error),
    /// The statement did not finish within [`Timing::renew_every`].
    #[error("the leader lease statement timed out")]
    Timeout,
}

/// This process's side of the lease: its holder id and what it knows of the lease, published
/// on a watch channel for the tasks it gates.
#[derive(Debug)]
pub struct Leader {
    holder: String,
    timing: Timing,
    state: watch::Sender<LeaderState>,
}

impl Leader {
    /// A replica called `holder`, taking leases with `timing`, that does not hold one yet.
    #[must_use]
    pub fn new(holder: String, timing: Timing) -> Self {
        Self {
            holder,
            timing,
            state: watch::Sender::new(LeaderState::default()),
        }
    }

    /// The lease's timing.
    #[must_use]
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// This replica's holder id.
    #[must_use]
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this replica may do leader-only work now.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.state.borrow().is_leader(Instant::now())
    }

    /// Changes of the lease state (each take, renewal and loss), for tasks that want to act
    /// as soon as this replica becomes the leader.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.state.subscribe()
    }

    /// One take or renewal at wall time `now` (what the database compares expiries with),
    /// sent at `at`. Refused: another replica holds the lease, and this one stops at once.
    /// Failed: the state is kept, and runs out by itself at [`LeaderState::until`].
    pub async fn attempt(
        &self,
        store: &Store,
        now: OffsetDateTime,
        at: Instant,
    ) -> Result<bool, LeaseError> {
        let held = tokio::time::timeout(
            self.timing.renew_every,
            store.try_acquire_lease(LEASE, &self.holder, now, self.timing.ttl),
        )
        .await
        .map_err(|_| LeaseError::Timeout)??;
        self.state.send_replace(if held {
            LeaderState::renewed(at, self.timing)
        } else {
            LeaderState::default()
        });
        Ok(held)
    }

    /// Stops acting as leader, then deletes the lease so that another replica takes it at its
    /// next attempt rather than after the TTL (graceful shutdown).
    pub async fn release(&self, store: &Store) {
        self.state.send_replace(LeaderState::default());
        match store.release_lease(LEASE, &self.holder).await {
            Ok(true) => tracing::info!(holder = %self.holder, "released leader lease"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, holder = %self.holder, "releasing the leader lease failed; it expires by itself");
            }
        }
    }

    /// Logs and counts a change of leadership; returns whether this replica is the leader now.
    fn report(&self, was_leader: bool, metrics: &Metrics) -> bool {
        let is_leader = self.is_leader();
        match (was_leader, is_leader) {
            (false, true) => tracing::info!(
                holder = %self.holder,
                lease_secs = self.timing.ttl.as_secs(),
                "acquired leader lease"
            ),
            (true, false) => tracing::warn!(holder = %self.holder, "lost leader lease"),
            _ => {}
        }
        metrics.set_leader(is_leader);
        is_leader
    }
}

/// A holder id for this process: `<host>-<pid>-<6 random hex digits>`. The host is `HOSTNAME`
/// (a Kubernetes pod's name) or the kernel's host name; the random part tells a restarted
/// process with a reused pid from its predecessor.
#[must_use]
pub fn holder_id() -> String {
    let host = std::env::var(crate::env::HOSTNAME)
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().chars().take(64).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "issuer".to_owned());
    let random = crate::secrets::secret::hex(&crate::secrets::secret::random_bytes(3));
    format!("{host}-{}-{random}", std::process::id())
}

/// The lease task of a running server; runs until aborted. The server releases the lease
/// after aborting it ([`Leader::release`]).
pub async fn run(state: AppState, leader: std::sync::Arc<Leader>) {
    let metrics = state.metrics();
    metrics.set_leader(false);
    let mut was_leader = false;
    let mut failing = false;
    loop {
        let at = Instant::now();
        match leader.attempt(state.store(), state.now(), at).await {
            Ok(_) => failing = false,
            Err(e) => {
                // Once per outage; the loss of leadership, if it comes, is logged on its own.
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, holder = %leader.holder(), "cannot renew the leader lease; will retry");
                }
            }
        }
        was_leader = leader.report(was_leader, metrics);
        let next = at + leader.timing.renew_every;
        // When leadership runs out before the next attempt (the database is unreachable),
        // wake then too, so that the loss is logged and counted on time.
        let until = leader.state.borrow().until();
        if let Some(until) = until.filter(|u| *u < next) {
            tokio::time::sleep_until(until).await;
            was_leader = leader.report(was_leader, metrics);
        }
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_replica_stops_leading_a_margin_before_its_lease_expires() {
        let t = Instant::now();
        let none = LeaderState::default();
        assert!(!none.is_leader(t));
        assert_eq!(none.until(), None);

        let timing = Timing::default();
        assert_eq!(
            timing,
            Timing {
                ttl: secs(15),
                renew_every: secs(5),
                margin: secs(3)
            },
            "without leader_lease the timing is that of the first releases"
        );
        let held = LeaderState::renewed(t, timing);
        assert!(held.is_leader(t));
        assert!(held.is_leader(t + secs(11)));
        // TTL 15 s, margin 3 s: leadership ends 12 s after the renewal was sent, while the
        // database lets another replica take over only after 15 s.
        assert!(!held.is_leader(t + secs(12)));
        assert!(!held.is_leader(t + secs(15)));
        assert_eq!(held.until(), Some(t + timing.ttl - timing.margin));
        // Renewals every 5 s keep it without a gap.
        assert!(LeaderState::renewed(t + timing.renew_every, timing).is_leader(t + secs(12)));
        // Two missed renewals still leave a second; a third missed one ends it.
        assert!(held.is_leader(t + timing.renew_every * 2 + secs(1)));
        assert!(!held.is_leader(t + timing.renew_every * 3));
    }

    #[test]
    fn every_lease_survives_two_missed_renewals_and_ends_before_its_expiry() {
        for ttl in [MIN_TTL, secs(7), DEFAULT_TTL, secs(60), MAX_TTL] {
            let timing = Timing::new(ttl);
            let t = Instant::now();
            let held = LeaderState::renewed(t, timing);
            assert!(timing.margin > Duration::ZERO, "{timing:?}");
            assert!(
                held.is_leader(t + timing.renew_every * 2),
                "two missed renewals: {timing:?}"
            );
            assert!(
                !held.is_leader(t + timing.ttl - timing.margin),
                "{timing:?}"
            );
            assert!(timing.renew_every * 3 <= ttl, "{timing:?}");
        }
    }

    #[test]
    fn the_gate_skips_when_not_leader_and_begins_at_once_on_becoming_leader() {
        let mut was = false;
        let mut turns = Vec::new();
        for is in [false, true, true, false, false, true] {
            turns.push(turn(was, is));
            was = is;
        }
        assert_eq!(
            turns,
            [
                Turn::Skip,
                Turn::Begin,
                Turn::Continue,
                Turn::Skip,
                Turn::Skip,
                Turn::Begin
            ]
        );
    }

    async fn attempt(leader: &Leader, store: &Store, now: OffsetDateTime) -> bool {
        leader
            .attempt(store, now, Instant::now())
            .await
            .unwrap_or_else(|e| panic!("attempt: {e}"))
    }

    #[tokio::test]
    async fn two_replicas_one_leader_and_the_watch_follows() {
        let (store, _dir) = temp_store().await;
        let a = Leader::new("a".into(), Timing::default());
        let b = Leader::new("b".into(), Timing::default());
        let mut watch_a = a.subscribe();
        let metrics = Metrics::default();

        assert!(attempt(&a, &store, T0).await);
        assert!(a.is_leader());
        assert!(
            watch_a.has_changed().unwrap_or(false),
            "a take is published"
        );
        assert!(watch_a.borrow_and_update().is_leader(Instant::now()));
        assert!(a.report(false, &metrics));
        assert!(metrics.render().contains("credential_issuer_leader 1"));

        assert!(!attempt(&b, &store, T0 + time::Duration::seconds(5)).await);
        assert!(!b.is_leader());
        assert!(!b.report(false, &metrics));
        assert!(metrics.render().contains("credential_issuer_leader 0"));

        // a misses its renewals (wall time moves past its expiry): b takes over, and a's
        // next attempt is refused, which ends its leadership at once.
        let later = T0 + time::Duration::seconds(16);
        assert!(attempt(&b, &store, later).await);
        assert!(b.is_leader());
        assert!(a.is_leader(), "a has not noticed yet");
        assert!(!attempt(&a, &store, later).await);
        assert!(!a.is_leader());
        assert!(!watch_a.borrow_and_update().is_leader(Instant::now()));

        // b shuts down gracefully: a takes over at its next attempt, without waiting.
        b.release(&store).await;
        assert!(!b.is_leader());
        assert!(attempt(&a, &store, later + time::Duration::seconds(1)).await);
        assert!(a.is_leader());
    }

    #[tokio::test]
    async fn a_configured_lease_is_what_the_database_and_the_gate_use() {
        use crate::clock::{Clock as _, FakeClock};
        let (store, _dir) = temp_store().await;
        // leader_lease = "6s": renewals every 2 s, leadership ends 1.2 s before the expiry.
        let timing = Timing::new(secs(6));
        let clock = FakeClock::new(T0);
        let a = Leader::new("a".into(), timing);
        let b = Leader::new("b".into(), timing);

        let sent = Instant::now();
        assert!(matches!(
            a.attempt(&store, clock.now(), sent).await,
            Ok(true)
        ));
        let row = store.lease_holder(LEASE, clock.now()).await;
        let expected = ("a".to_owned(), T0 + time::Duration::seconds(6));
        assert!(
            matches!(&row, Ok(Some(r)) if *r == expected),
            "the row lasts the configured 6 s: {row:?}"
        );
        let state = *a.subscribe().borrow();
        assert!(state.is_leader(sent + secs(4)));
        assert!(!state.is_leader(sent + Duration::from_millis(4_800)));

        // a is killed and renews no more: b, trying every renew_every of the fake clock, is
        // refused while the lease lasts and takes it at the first attempt after its expiry.
        let mut waited = Duration::ZERO;
        loop {
            clock.advance(timing.renew_every);
            waited += timing.renew_every;
            if attempt(&b, &store, clock.now()).await {
                break;
            }
            assert!(!b.is_leader());
            assert!(waited < secs(60), "b never took the lease over");
        }
        assert!(b.is_leader());
        assert_eq!(
            waited,
            secs(8),
            "the first attempt after the 6 s lease expired"
        );
        assert!(waited <= timing.ttl + timing.renew_every + secs(1));
        // With the default lease the same row would still have been a's.
        assert!(waited < DEFAULT_TTL);
    }

    #[tokio::test]
    async fn a_failed_renewal_keeps_the_state_until_it_runs_out() {
        let (store, _dir) = temp_store().await;
        let a = Leader::new("a".into(), Timing::default());
        let sent = Instant::now();
        assert!(matches!(a.attempt(&store, T0, sent).await, Ok(true)));
        store.close_for_tests().await;
        let failed = a.attempt(&store, T0, Instant::now()).await;
        assert!(matches!(failed, Err(LeaseError::Store(_))), "{failed:?}");
        let state = *a.subscribe().borrow();
        assert_eq!(
            state,
            LeaderState::renewed(sent, Timing::default()),
            "a failure changes nothing"
        );
        assert!(!state.is_leader(sent + secs(15) - secs(3)));
    }

    #[test]
    fn holder_ids_name_the_process_and_differ() {
        let a = holder_id();
        let b = holder_id();
        assert_ne!(a, b);
        let pid = format!("-{}-", std::process::id());
        assert!(a.contains(&pid), "{a}");
        let random = a.rsplit('-').next().unwrap_or_default();
        assert_eq!(random.len(), 6, "{a}");
        assert!(random.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    }
}
