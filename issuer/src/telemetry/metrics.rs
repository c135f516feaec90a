//! Prometheus metrics: the counters, gauges and histograms the handlers and background loops
//! update, rendered at `/metrics`. Each [`Metrics`] value owns its own registry (built once,
//! when the value is), so there is no process-global state and tests get a fresh set each.
//!
//! The exposition is the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]), as before the move
//! to `prometheus-client`: every series keeps its name, and a counter's `# HELP`/`# TYPE` lines
//! name it with its `_total` suffix. (`OpenMetrics` would name the family without `_total`.)
//! The registry adds that suffix itself, so counters are registered by their base name.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use super::buckets::{HTTP_BUCKETS, REFRESH_BUCKETS, REVIEW_BUCKETS};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

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

/// The methods `credential_issuer_http_request_duration_seconds` names; any other (HTTP allows
/// extension methods, so a client can send any token) is counted as `other`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// Which kind of session a refresh-token grant was for (the `session` label of
/// `credential_issuer_refresh_duration_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    /// A local account's session: the issuer's own database only.
    Local,
    /// A session from an upstream identity provider: the time includes the re-check there.
    Upstream,
}

impl RefreshKind {
    fn label(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Upstream => "upstream",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClusterActionLabels {
    cluster: String,
    action: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamFailureLabels {
    provider: String,
    operation: &'static str,
    cause: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

/// The labels of one HTTP request: every value comes from a bounded set (the router's route
/// templates, [`METHODS`], five status classes), never from the raw request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    status_class: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SessionLabel {
    session: &'static str,
}

/// Builds a histogram with fixed buckets; a plain `fn` so that it names the families' type.
type NewHistogram = fn() -> Histogram;

/// The issuer's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    device_authorizations: Counter,
    logins: Counter,
    refreshes: Counter,
    refresh_retries: Counter,
    tokens_issued: Counter,
    revocations: Counter,
    failures: Family<ReasonLabel, Counter>,
    /// `(cluster, action)` → changes made by the grant reconciler.
    reconciler_changes: Family<ClusterActionLabels, Counter>,
    /// cluster → failed reconciler rounds or changes.
    reconciler_errors: Family<ClusterLabel, Counter>,
    reviews: Family<ResultLabel, Counter>,
    review_latency: Histogram,
    /// Access requests filed.
    requests_filed: Counter,
    /// Break-glass self-approvals.
    break_glass: Counter,
    /// Notifications delivered to the chat webhook.
    notifications_sent: Counter,
    /// Notifications given up on after their retries.
    notification_failures: Counter,
    /// 1 while this replica holds the leader lease.
    leader: Gauge,
    /// `(provider, operation, cause)` → failed calls to an upstream provider.
    upstream_failures: Family<UpstreamFailureLabels, Counter>,
    /// provider → refreshes let through on the offline grace.
    upstream_grace: Family<ProviderLabel, Counter>,
    /// 1 while the database is healthy, set by `/metrics` from the health record.
    database_up: Gauge,
    /// Every request the router answered, by route template, method and status class.
    http_latency: Family<HttpLabels, Histogram, NewHistogram>,
    /// Refresh-token grants, by the kind of session.
    refresh_latency: Family<SessionLabel, Histogram, NewHistogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all zero, registered in a registry of its own.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::default();
        // The registry appends `_total` to a counter's name and `.` to every help text.
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(base(name), trim(help), c.clone());
            c
        };
        let device_authorizations = counter(
            "credential_issuer_device_authorizations_total",
            "Device authorizations started.",
        );
        let logins = counter("credential_issuer_logins_total", "Device logins completed.");
        let refreshes = counter(
            "credential_issuer_refreshes_total",
            "Successful refresh-token grants.",
        );
        let refresh_retries = counter(
            "credential_issuer_refresh_retries_total",
            "Refresh tokens presented again within refresh_retry_grace (a lost answer) that got the same successor back.",
        );
        let tokens_issued = counter(
            "credential_issuer_tokens_issued_total",
            "Access tokens signed.",
        );
        let revocations = counter(
            "credential_issuer_revocations_total",
            "Sessions revoked by their client (logout).",
        );
        let requests_filed = counter(
            "credential_issuer_access_requests_total",
            "Access requests filed.",
        );
        let break_glass = counter(
            "credential_issuer_break_glass_total",
            "Break-glass roles self-approved (each raised an alert).",
        );
        let notifications_sent = counter(
            "credential_issuer_notifications_sent_total",
            "Notifications delivered to the chat webhook.",
        );
        let notification_failures = counter(
            "credential_issuer_notification_failures_total",
            "Notifications not delivered after their retries.",
        );
        let leader = Gauge::default();
        registry.register(
            "credential_issuer_leader",
            trim("1 on the replica that holds the leader lease (runs the reconciler and the audit sealer), 0 elsewhere."),
            leader.clone(),
        );
        let failures = Family::<ReasonLabel, Counter>::default();
        // Every reason is shown from the start, at 0, so that a rate over it is defined.
        for f in Failure::ALL {
            drop(failures.get_or_create(&ReasonLabel { reason: f.label() }));
        }
        registry.register(
            base("credential_issuer_failures_total"),
            trim("Failed sign-ins and token requests by reason."),
            failures.clone(),
        );
        let reconciler_changes = Family::default();
        registry.register(
            base("credential_reconciler_changes_total"),
            trim("Objects changed by the grant reconciler."),
            reconciler_changes.clone(),
        );
        let reconciler_errors = Family::default();
        registry.register(
            base("credential_reconciler_errors_total"),
            trim("Failed or skipped grant reconciler rounds and changes."),
            reconciler_errors.clone(),
        );
        let upstream_failures = Family::default();
        registry.register(
            base("credential_issuer_upstream_failures_total"),
            trim("Failed calls to upstream identity providers, by provider, operation and cause."),
            upstream_failures.clone(),
        );
        let upstream_grace = Family::default();
        registry.register(
            base("credential_issuer_upstream_offline_grace_refreshes_total"),
            trim("Refreshes let through on a provider's offline_grace without a check there."),
            upstream_grace.clone(),
        );
        let reviews = Family::<ResultLabel, Counter>::default();
        for result in REVIEW_RESULTS {
            drop(reviews.get_or_create(&ResultLabel { result }));
        }
        registry.register(
            base("credential_issuer_webhook_requests_total"),
            trim("Token reviews answered, by result."),
            reviews.clone(),
        );
        let review_latency = Histogram::new(REVIEW_BUCKETS);
        registry.register(
            "credential_issuer_webhook_duration_seconds",
            trim("Time to answer a token review."),
            review_latency.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "credential_issuer_database_up",
            trim("Whether the database answered the last health probe (reads and a write) and no request met a fault since."),
            database_up.clone(),
        );
        let http_latency: Family<HttpLabels, Histogram, NewHistogram> =
            Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        registry.register(
            "credential_issuer_http_request_duration_seconds",
            trim("Time to answer an HTTP request, by route template (unmatched for paths no route has), method and status class."),
            http_latency.clone(),
        );
        let refresh_latency: Family<SessionLabel, Histogram, NewHistogram> =
            Family::new_with_constructor(|| Histogram::new(REFRESH_BUCKETS));
        registry.register(
            "credential_issuer_refresh_duration_seconds",
            trim("Time to answer a refresh-token grant, whatever its outcome, by session (local, or upstream: including the re-check at the identity provider)."),
            refresh_latency.clone(),
        );
        Self {
            registry,
            device_authorizations,
            logins,
            refreshes,
            refresh_retries,
            tokens_issued,
            revocations,
            failures,
            reconciler_changes,
            reconciler_errors,
            reviews,
            review_latency,
            requests_filed,
            break_glass,
            notifications_sent,
            notification_failures,
            leader,
            upstream_failures,
            upstream_grace,
            database_up,
            http_latency,
            refresh_latency,
        }
    }

    /// A device authorization was started.
    pub fn device_authorization(&self) {
        self.device_authorizations.inc();
    }

    /// A device login completed (tokens issued for a new session).
    pub fn login(&self) {
        self.logins.inc();
        self.tokens_issued.inc();
    }

    /// A refresh succeeded.
    pub fn refresh(&self) {
        self.refreshes.inc();
        self.tokens_issued.inc();
    }

    /// A refresh presented again within the retry grace got its successor back.
    pub fn refresh_retried(&self) {
        self.refresh_retries.inc();
        self.tokens_issued.inc();
    }

    /// A session was revoked by its client.
    pub fn revocation(&self) {
        self.revocations.inc();
    }

    /// Something failed.
    pub fn failure(&self, why: Failure) {
        self.failures
            .get_or_create(&ReasonLabel {
                reason: why.label(),
            })
            .inc();
    }

    /// The grant reconciler changed an object in `cluster` (`action`: create, update, ...).
    pub fn reconciler_change(&self, cluster: &str, action: &'static str) {
        self.reconciler_changes
            .get_or_create(&ClusterActionLabels {
                cluster: cluster.to_owned(),
                action,
            })
            .inc();
    }

    /// A reconciler round or change failed in `cluster` (including a skipped cluster).
    pub fn reconciler_error(&self, cluster: &str) {
        self.reconciler_errors
            .get_or_create(&ClusterLabel {
                cluster: cluster.to_owned(),
            })
            .inc();
    }

    /// A token review ended with `result` (one of [`REVIEW_RESULTS`]) after `elapsed`.
    pub fn review(&self, result: &str, elapsed: Duration) {
        // Only the known results get a series: the label set stays the documented one.
        if let Some(result) = REVIEW_RESULTS.iter().find(|r| **r == result) {
            self.reviews.get_or_create(&ResultLabel { result }).inc();
        }
        self.review_latency.observe(elapsed.as_secs_f64());
    }

    /// An access request was filed.
    pub fn request_filed(&self) {
        self.requests_filed.inc();
    }

    /// A break-glass role was self-approved.
    pub fn break_glass(&self) {
        self.break_glass.inc();
    }

    /// A notification was delivered (`true`) or given up on (`false`).
    pub fn notification(&self, delivered: bool) {
        if delivered {
            self.notifications_sent.inc();
        } else {
            self.notification_failures.inc();
        }
    }

    /// A call to an upstream provider failed: `operation` is `refresh`, `sign_in` or
    /// `sign_in_start`, `cause` an [`crate::upstream::Error::label`].
    pub fn upstream_failure(&self, provider: &str, operation: &'static str, cause: &'static str) {
        self.upstream_failures
            .get_or_create(&UpstreamFailureLabels {
                provider: provider.to_owned(),
                operation,
                cause,
            })
            .inc();
    }

    /// A refresh went through on the offline grace of `provider` (not re-checked there).
    pub fn upstream_grace(&self, provider: &str) {
        self.upstream_grace
            .get_or_create(&ProviderLabel {
                provider: provider.to_owned(),
            })
            .inc();
    }

    /// Whether this replica holds the leader lease (a gauge).
    pub fn set_leader(&self, is_leader: bool) {
        self.leader.set(i64::from(is_leader));
    }

    /// Whether the database is healthy as last seen (a gauge; `/metrics` sets it before it
    /// renders, from the health record).
    pub fn set_database_up(&self, up: bool) {
        self.database_up.set(i64::from(up));
    }

    /// The router answered a request for `route` with `status` after `elapsed`. `route` must
    /// be a route template of the router (or a fixed word such as `unmatched`), never the
    /// request's path: each distinct value is a series kept for the life of the process.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let method = METHODS
            .iter()
            .find(|m| **m == method)
            .map_or("other", |m| *m);
        let status_class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "other",
        };
        self.http_latency
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method,
                status_class,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A refresh-token grant for a session of `kind` was answered (issued or refused) after
    /// `elapsed`.
    pub fn refresh_duration(&self, kind: RefreshKind, elapsed: Duration) {
        self.refresh_latency
            .get_or_create(&SessionLabel {
                session: kind.label(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Device authorizations started so far (tests count them).
    #[must_use]
    pub fn device_authorizations(&self) -> u64 {
        self.device_authorizations.get()
    }

    /// Successful refreshes so far (tests count them).
    #[must_use]
    pub fn refreshes(&self) -> u64 {
        self.refreshes.get()
    }

    /// The Prometheus text exposition (format 0.0.4, served as [`CONTENT_TYPE`]).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a `String` cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// A counter's name as the registry takes it: without the `_total` it appends.
fn base(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// A help text as the registry takes it: without the full stop it appends.
fn trim(help: &str) -> &str {
    help.strip_suffix('.').unwrap_or(help)
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

    /// Every series the issuer exposed before the registry crate keeps its name, type and help
    /// text, in the same order (`credential_issuer_database_up` was written by `/metrics`
    /// itself), followed by the latency histograms added with the crate.
    #[test]
    fn names_types_and_help_are_those_documented() {
        let old = [
            ("credential_issuer_device_authorizations_total", "counter", "Device authorizations started."),
            ("credential_issuer_logins_total", "counter", "Device logins completed."),
            ("credential_issuer_refreshes_total", "counter", "Successful refresh-token grants."),
            ("credential_issuer_refresh_retries_total", "counter", "Refresh tokens presented again within refresh_retry_grace (a lost answer) that got the same successor back."),
            ("credential_issuer_tokens_issued_total", "counter", "Access tokens signed."),
            ("credential_issuer_revocations_total", "counter", "Sessions revoked by their client (logout)."),
            ("credential_issuer_access_requests_total", "counter", "Access requests filed."),
            ("credential_issuer_break_glass_total", "counter", "Break-glass roles self-approved (each raised an alert)."),
            ("credential_issuer_notifications_sent_total", "counter", "Notifications delivered to the chat webhook."),
            ("credential_issuer_notification_failures_total", "counter", "Notifications not delivered after their retries."),
            ("credential_issuer_leader", "gauge", "1 on the replica that holds the leader lease (runs the reconciler and the audit sealer), 0 elsewhere."),
            ("credential_issuer_failures_total", "counter", "Failed sign-ins and token requests by reason."),
            ("credential_reconciler_changes_total", "counter", "Objects changed by the grant reconciler."),
            ("credential_reconciler_errors_total", "counter", "Failed or skipped grant reconciler rounds and changes."),
            ("credential_issuer_upstream_failures_total", "counter", "Failed calls to upstream identity providers, by provider, operation and cause."),
            ("credential_issuer_upstream_offline_grace_refreshes_total", "counter", "Refreshes let through on a provider's offline_grace without a check there."),
            ("credential_issuer_webhook_requests_total", "counter", "Token reviews answered, by result."),
            ("credential_issuer_webhook_duration_seconds", "histogram", "Time to answer a token review."),
            ("credential_issuer_database_up", "gauge", "Whether the database answered the last health probe (reads and a write) and no request met a fault since."),
        ];
        let new = [
            "credential_issuer_http_request_duration_seconds",
            "credential_issuer_refresh_duration_seconds",
        ];
        let m = Metrics::default();
        // A family without a series has no lines at all (the registry skips it); before, its
        // `# HELP` and `# TYPE` lines stood alone. Give each one a series.
        m.reconciler_change("prod", "create");
        m.reconciler_error("prod");
        m.upstream_failure("corp", "refresh", "timeout");
        m.upstream_grace("corp");
        m.http_request("/healthz", "GET", 200, std::time::Duration::ZERO);
        m.refresh_duration(RefreshKind::Local, std::time::Duration::ZERO);
        let text = m.render();
        let headers: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
        let mut expected = Vec::new();
        for (name, kind, help) in old {
            expected.push(format!("# HELP {name} {help}"));
            expected.push(format!("# TYPE {name} {kind}"));
        }
        assert_eq!(headers[..expected.len()], expected, "\n{text}");
        let added: Vec<&str> = headers[expected.len()..]
            .iter()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(added, new.map(|n| format!("{n} histogram")), "\n{text}");
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    }

    #[test]
    fn http_labels_come_from_bounded_sets() {
        let m = Metrics::default();
        let ms = std::time::Duration::from_millis(3);
        m.http_request("/healthz", "GET", 200, ms);
        m.http_request("/healthz", "BREW", 405, ms);
        m.http_request("/healthz", "get", 999, ms);
        m.refresh_duration(RefreshKind::Local, ms);
        m.refresh_duration(RefreshKind::Upstream, std::time::Duration::from_secs(4));
        let text = m.render();
        for line in [
            "credential_issuer_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status_class=\"2xx\",le=\"0.002\"} 0",
            "credential_issuer_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status_class=\"2xx\",le=\"0.005\"} 1",
            "credential_issuer_http_request_duration_seconds_count{route=\"/healthz\",method=\"other\",status_class=\"4xx\"} 1",
            "credential_issuer_http_request_duration_seconds_count{route=\"/healthz\",method=\"other\",status_class=\"other\"} 1",
            "credential_issuer_refresh_duration_seconds_bucket{session=\"local\",le=\"0.005\"} 1",
            "credential_issuer_refresh_duration_seconds_bucket{session=\"upstream\",le=\"2.5\"} 0",
            "credential_issuer_refresh_duration_seconds_bucket{session=\"upstream\",le=\"5\"} 1",
            "credential_issuer_refresh_duration_seconds_count{session=\"upstream\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("BREW") && !text.contains("\"get\""),
            "{text}"
        );
    }
}
