//! Prometheus metrics: counters the handlers bump, rendered in the text exposition format at
//! `/metrics`. Plain atomics, no registry crate: the set is small and fixed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Why a token request or sign-in failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A wrong or expired user code was entered.
    UserCode,
    /// A wrong password was entered.
    Password,
    /// A request was refused by a rate limit.
    RateLimited,
    /// A refresh token was presented twice; the session was revoked.
    RefreshReuse,
    /// A refresh was refused (revoked, expired, disabled, unknown).
    RefreshRefused,
    /// The person denied a device authorization.
    Denied,
}

impl Failure {
    const ALL: [Self; 6] = [
        Self::UserCode,
        Self::Password,
        Self::RateLimited,
        Self::RefreshReuse,
        Self::RefreshRefused,
        Self::Denied,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::UserCode => "user_code",
            Self::Password => "password",
            Self::RateLimited => "rate_limited",
            Self::RefreshReuse => "refresh_reuse",
            Self::RefreshRefused => "refresh_refused",
            Self::Denied => "denied",
        }
    }
}

/// Results of a token review, as metric labels (the `result` of
/// `credential_issuer_webhook_requests_total`).
pub const REVIEW_RESULTS: [&str; 10] = [
    "authenticated",
    "invalid_token",
    "wrong_issuer",
    "expired",
    "wrong_audience",
    "session_revoked",
    "session_expired",
    "user_disabled",
    "bad_request",
    "error",
];

/// Upper bounds (seconds) of the webhook latency histogram's buckets: fine below 5 ms, where
/// the aim is.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The issuer's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    device_authorizations: AtomicU64,
    logins: AtomicU64,
    refreshes: AtomicU64,
    refresh_retries: AtomicU64,
    tokens_issued: AtomicU64,
    revocations: AtomicU64,
    failures: [AtomicU64; 6],
    /// `(cluster, action)` → changes made by the grant reconciler.
    reconciler_changes: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// cluster → failed reconciler rounds or changes.
    reconciler_errors: Mutex<BTreeMap<String, u64>>,
    reviews: [AtomicU64; 10],
    /// Cumulative counts per bucket, then `+Inf`.
    review_latency: [AtomicU64; 13],
    /// Sum of latencies in microseconds.
    review_latency_sum_us: AtomicU64,
    /// Access requests filed.
    requests_filed: AtomicU64,
    /// Break-glass self-approvals.
    break_glass: AtomicU64,
    /// Notifications delivered to the chat webhook.
    notifications_sent: AtomicU64,
    /// Notifications given up on after their retries.
    notification_failures: AtomicU64,
    /// 1 while this replica holds the leader lease.
    leader: AtomicU64,
    /// `(provider, operation, cause)` → failed calls to an upstream provider.
    upstream_failures: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    /// provider → refreshes let through on the offline grace.
    upstream_grace: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// A device authorization was started.
    pub fn device_authorization(&self) {
        self.device_authorizations.fetch_add(1, Ordering::Relaxed);
    }

    /// A device login completed (tokens issued for a new session).
    pub fn login(&self) {
        self.logins.fetch_add(1, Ordering::Relaxed);
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// A refresh succeeded.
    pub fn refresh(&self) {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// A refresh presented again within the retry grace got its successor back.
    pub fn refresh_retried(&self) {
        self.refresh_retries.fetch_add(1, Ordering::Relaxed);
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// A session was revoked by its client.
    pub fn revocation(&self) {
        self.revocations.fetch_add(1, Ordering::Relaxed);
    }

    /// Something failed.
    pub fn failure(&self, why: Failure) {
        if let Some(i) = Failure::ALL.iter().position(|f| *f == why) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The grant reconciler changed an object in `cluster` (`action`: create, update, ...).
    pub fn reconciler_change(&self, cluster: &str, action: &'static str) {
        if let Ok(mut m) = self.reconciler_changes.lock() {
            *m.entry((cluster.to_owned(), action)).or_default() += 1;
        }
    }

    /// A reconciler round or change failed in `cluster` (including a skipped cluster).
    pub fn reconciler_error(&self, cluster: &str) {
        if let Ok(mut m) = self.reconciler_errors.lock() {
            *m.entry(cluster.to_owned()).or_default() += 1;
        }
    }

    /// A token review ended with `result` (one of [`REVIEW_RESULTS`]) after `elapsed`.
    pub fn review(&self, result: &str, elapsed: std::time::Duration) {
        if let Some(i) = REVIEW_RESULTS.iter().position(|r| *r == result) {
            self.reviews[i].fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.review_latency[bucket].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.review_latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// An access request was filed.
    pub fn request_filed(&self) {
        self.requests_filed.fetch_add(1, Ordering::Relaxed);
    }

    /// A break-glass role was self-approved.
    pub fn break_glass(&self) {
        self.break_glass.fetch_add(1, Ordering::Relaxed);
    }

    /// A notification was delivered (`true`) or given up on (`false`).
    pub fn notification(&self, delivered: bool) {
        if delivered {
            self.notifications_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.notification_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A call to an upstream provider failed: `operation` is `refresh`, `sign_in` or
    /// `sign_in_start`, `cause` an [`crate::upstream::Error::label`].
    pub fn upstream_failure(&self, provider: &str, operation: &'static str, cause: &'static str) {
        if let Ok(mut m) = self.upstream_failures.lock() {
            *m.entry((provider.to_owned(), operation, cause))
                .or_default() += 1;
        }
    }

    /// A refresh went through on the offline grace of `provider` (not re-checked there).
    pub fn upstream_grace(&self, provider: &str) {
        if let Ok(mut m) = self.upstream_grace.lock() {
            *m.entry(provider.to_owned()).or_default() += 1;
        }
    }

    /// Whether this replica holds the leader lease (a gauge).
    pub fn set_leader(&self, is_leader: bool) {
        self.leader.store(u64::from(is_leader), Ordering::Relaxed);
    }

    /// Device authorizations started so far (tests count them).
    #[must_use]
    pub fn device_authorizations(&self) -> u64 {
        self.device_authorizations.load(Ordering::Relaxed)
    }

    /// Successful refreshes so far (tests count them).
    #[must_use]
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "credential_issuer_device_authorizations_total",
            "Device authorizations started.",
            self.device_authorizations.load(Ordering::Relaxed),
        );
        counter(
            "credential_issuer_logins_total",
            "Device logins completed.",
            self.logins.load(Ordering::Relaxed),
        );
        counter(
            "credential_issuer_refreshes_total",
            "Successful refresh-token grants.",
            self.refreshes.load(Ordering::Relaxed),
        );
        counter(
            "credential_issuer_refresh_retries_total",
            "Refresh tokens presented again within refresh_retry_grace (a lost answer) that got the same successor back.",
            self.refresh_retries.load(Ordering::Relaxed),
        );
        counter(
            "credential_issuer_tokens_issued_total",
            "Access tokens signed.",
            self.tokens_issued.load(Ordering::Relaxed),
        );
        counter(
            "credential_issuer_revocations_total",
            "Sessions revoked by their client (logout).",
            self.revocations.load(Ordering::Relaxed),
        );
        counter(
            "credential_issuer_access_requests_total",
            "Access requests filed.",
            self.requests_filed.load(Ordering::Relaxed),
        );
        counter(
            "credential_issuer_break_glass_total",
            "Break-glass roles self-approved (each raised an alert).",
            self.break_glass.load(Ordering::Relaxed),
        );
        counter(
            "credential_issuer_notifications_sent_total",
            "Notifications delivered to the chat webhook.",
            self.notifications_sent.load(Ordering::Relaxed),
        );
        counter(
            "credential_issuer_notification_failures_total",
            "Notifications not delivered after their retries.",
            self.notification_failures.load(Ordering::Relaxed),
        );
        let name = "credential_issuer_leader";
        let _ = writeln!(
            out,
            "# HELP {name} 1 on the replica that holds the leader lease (runs the reconciler and the audit sealer), 0 elsewhere.\n# TYPE {name} gauge\n{name} {}",
            self.leader.load(Ordering::Relaxed)
        );
        let name = "credential_issuer_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Failed sign-ins and token requests by reason.\n# TYPE {name} counter"
        );
        for (f, v) in Failure::ALL.iter().zip(&self.failures) {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{}\"}} {}",
                f.label(),
                v.load(Ordering::Relaxed)
            );
        }
        let name = "credential_reconciler_changes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Objects changed by the grant reconciler.\n# TYPE {name} counter"
        );
        if let Ok(m) = self.reconciler_changes.lock() {
            for ((cluster, action), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{cluster=\"{}\",action=\"{action}\"}} {v}",
                    label_value(cluster)
                );
            }
        }
        let name = "credential_reconciler_errors_total";
        let _ = writeln!(
            out,
            "# HELP {name} Failed or skipped grant reconciler rounds and changes.\n# TYPE {name} counter"
        );
        if let Ok(m) = self.reconciler_errors.lock() {
            for (cluster, v) in m.iter() {
                let _ = writeln!(out, "{name}{{cluster=\"{}\"}} {v}", label_value(cluster));
            }
        }
        let name = "credential_issuer_upstream_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Failed calls to upstream identity providers, by provider, operation and cause.\n# TYPE {name} counter"
        );
        if let Ok(m) = self.upstream_failures.lock() {
            for ((provider, op, cause), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{provider=\"{}\",operation=\"{op}\",cause=\"{cause}\"}} {v}",
                    label_value(provider)
                );
            }
        }
        let name = "credential_issuer_upstream_offline_grace_refreshes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Refreshes let through on a provider's offline_grace without a check there.\n# TYPE {name} counter"
        );
        if let Ok(m) = self.upstream_grace.lock() {
            for (provider, v) in m.iter() {
                let _ = writeln!(out, "{name}{{provider=\"{}\"}} {v}", label_value(provider));
            }
        }
        let name = "credential_issuer_webhook_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} Token reviews answered, by result.\n# TYPE {name} counter"
        );
        for (r, v) in REVIEW_RESULTS.iter().zip(&self.reviews) {
            let _ = writeln!(
                out,
                "{name}{{result=\"{r}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let name = "credential_issuer_webhook_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer a token review.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, v) in self.review_latency.iter().enumerate() {
            cumulative += v.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), ToString::to_string);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "a sum of microseconds stays far below 2^52"
        )]
        let sum = self.review_latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
        out
    }
}

/// Escapes a label value for the text exposition format.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.device_authorization();
        m.login();
        m.refresh();
        m.failure(Failure::Password);
        m.reconciler_change("prod", "create");
        m.reconciler_change("prod", "create");
        m.reconciler_error("prod");
        m.request_filed();
        m.break_glass();
        m.notification(true);
        m.notification(false);
        m.notification(false);
        let text = m.render();
        for line in [
            "credential_issuer_device_authorizations_total 1",
            "credential_issuer_tokens_issued_total 2",
            "credential_issuer_failures_total{reason=\"password\"} 1",
            "credential_issuer_failures_total{reason=\"user_code\"} 0",
            "credential_reconciler_changes_total{cluster=\"prod\",action=\"create\"} 2",
            "credential_reconciler_errors_total{cluster=\"prod\"} 1",
            "credential_issuer_access_requests_total 1",
            "credential_issuer_break_glass_total 1",
            "credential_issuer_notifications_sent_total 1",
            "credential_issuer_notification_failures_total 2",
            "# TYPE credential_issuer_leader gauge",
            "credential_issuer_leader 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!((m.device_authorizations(), m.refreshes()), (1, 1));
        m.set_leader(true);
        assert!(m.render().contains("\ncredential_issuer_leader 1\n"));
    }

    #[test]
    fn renders_webhook_results_and_latency_histogram() {
        let m = Metrics::default();
        m.review("authenticated", std::time::Duration::from_micros(300));
        m.review("authenticated", std::time::Duration::from_millis(3));
        m.review("expired", std::time::Duration::from_secs(2));
        let text = m.render();
        for line in [
            "credential_issuer_webhook_requests_total{result=\"authenticated\"} 2",
            "credential_issuer_webhook_requests_total{result=\"expired\"} 1",
            "credential_issuer_webhook_requests_total{result=\"user_disabled\"} 0",
            "credential_issuer_webhook_duration_seconds_bucket{le=\"0.00025\"} 0",
            "credential_issuer_webhook_duration_seconds_bucket{le=\"0.0005\"} 1",
            "credential_issuer_webhook_duration_seconds_bucket{le=\"0.005\"} 2",
            "credential_issuer_webhook_duration_seconds_bucket{le=\"1\"} 2",
            "credential_issuer_webhook_duration_seconds_bucket{le=\"+Inf\"} 3",
            "credential_issuer_webhook_duration_seconds_count 3",
            "credential_issuer_webhook_duration_seconds_sum 2.0033",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
