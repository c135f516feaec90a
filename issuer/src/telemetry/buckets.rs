//! The bucket bounds (seconds) of the issuer's latency histograms, kept apart from the metrics
//! so that the reasons for each bound, which come from docs/benchmarks.md, sit next to it.
//!
//! A bucket is a series per label set for the life of the process, so each set is as short as
//! the questions it must answer: the aims in the benchmarks (a token review under 5 ms at
//! p99, a refresh under 20 ms at p99) fall on a bound, so "what share met the aim" is a ratio
//! of two buckets rather than an interpolation. The sets share their bounds where they
//! overlap, so that the histograms can be compared bucket by bucket.

/// `credential_issuer_webhook_duration_seconds`, unchanged from before the registry crate
/// (dashboards and `bench/webhook.sh` read `le="0.0005"` .. `le="0.005"`). A cached review
/// takes 0.1-0.5 ms inside the issuer (99.8 % at most 0.5 ms at every concurrency measured),
/// the aim is p99 under 5 ms, and one that reads the database takes a few milliseconds: fine
/// below 5 ms, coarse above.
pub const REVIEW_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// `credential_issuer_http_request_duration_seconds`: one set for every route, so it spans
/// the fastest and the slowest. Token reviews, discovery, JWKS and `/metrics` answer in
/// 0.1-0.5 ms (the bounds below 1 ms, as for the reviews); refreshes take 4-8 ms at p50 and
/// 17-25 ms at p99 on SQLite and PostgreSQL (5, 10 and 20 ms; 20 ms is the refresh aim); the
/// sign-in pages hash a password with argon2id's default cost (19 MiB, tens of milliseconds;
/// not in the benchmarks), a loaded machine showed refresh p99 of 100-500 ms (0.05 .. 1 s),
/// and the upstream sign-in, callback and refresh wait for the identity provider, whose client
/// gives up after 3, 5 or 10 s (2.5, 5, 10 s). Anything slower is in `+Inf`, and `_sum` still
/// says how slow. (The plugin's own numbers, 1-2 ms for a cached hit, make no request here.)
pub const HTTP_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// `credential_issuer_refresh_duration_seconds`: the refresh-token grant from its parsed form
/// to its answer. Never under a millisecond (an ES256 signature and a database write), so
/// [`HTTP_BUCKETS`] from 1 ms: 5 ms around the p50 of 4-5 ms (SQLite) and 20 ms, the p99 aim;
/// PostgreSQL's p50 of 12-15 ms and p99 of 22-25 ms fall between 10, 20 and 50 ms; an upstream
/// session's refresh includes the identity provider's answer, up to its timeout (seconds).
pub const REFRESH_BUCKETS: [f64; 13] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_rise_and_the_aims_are_bounds() {
        for set in [&REVIEW_BUCKETS[..], &HTTP_BUCKETS[..], &REFRESH_BUCKETS[..]] {
            assert!(set.windows(2).all(|w| w[0] < w[1]), "{set:?}");
        }
        // The refresh set is the HTTP set from 1 ms on, so the two compare bucket by bucket.
        assert!(HTTP_BUCKETS.ends_with(&REFRESH_BUCKETS));
        for aim in [0.005, 0.02] {
            assert!(HTTP_BUCKETS.contains(&aim) && REFRESH_BUCKETS.contains(&aim));
        }
        assert!(REVIEW_BUCKETS.contains(&0.005) && REVIEW_BUCKETS.contains(&0.000_5));
    }
}
