//! Just-in-time access requests on the plugin's side: the text `request` and `requests` print,
//! and the local record of pending requests that lets `get` notice an approval.
//!
//! After `request` files a request that waits for an approver, its id is recorded in a small
//! file per issuer, cluster and account under the cache directory. While such a record exists,
//! `get` asks the issuer about it at most every [`CHECK_EVERY`] seconds (with a short timeout,
//! never holding kubectl up for long) and refreshes the token once the grant is active, so the
//! token's `grants` claim and groups follow. Without a record the cached-hit path does no
//! network call (one failed `open` is all it costs).

use std::fmt::Write as _;
use std::path::PathBuf;

use credential_shared::api::AccessRequestInfo;
use credential_shared::text::Untrusted;
use serde::{Deserialize, Serialize};

use crate::base::clock::when;
use crate::base::target::Target;

/// Least time between two checks of pending requests by `get`.
pub(crate) const CHECK_EVERY: i64 = 5;
/// A record older than this is dropped (the issuer expires pending requests sooner).
const FORGET_AFTER: i64 = 8 * 86_400;
/// Most requests a record keeps (the newest): `get` may ask the issuer about each, with a
/// timeout, on kubectl's path, so a record cannot be allowed to make it ask about thousands.
/// The issuer lets one person file 20 per window by default.
const MAX_PENDING: usize = 32;
/// A larger record is not ours (one id is a few dozen bytes); it reads as none.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// A duration as the `--for` flag takes it: `30m`, `1h30m`, `90s`.
pub(crate) fn flag_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if s > 0 || out.is_empty() {
        let _ = write!(out, "{s}s");
    }
    out
}

/// The human text for one request.
pub(crate) fn describe(r: &AccessRequestInfo, now: i64) -> String {
    let scope = if r.namespaces.is_empty() {
        format!("{} (cluster-wide)", Untrusted::new(&r.cluster))
    } else {
        format!(
            "{}/{}",
            Untrusted::new(&r.cluster),
            Untrusted::long(&r.namespaces.join(","))
        )
    };
    let mut out = String::new();
    let _ = writeln!(out, "request: {}", Untrusted::new(&r.id));
    let _ = writeln!(out, "role:    {} in {scope}", Untrusted::new(&r.role));
    let _ = writeln!(out, "for:     {}", flag_duration(r.duration_secs));
    let _ = writeln!(
        out,
        "reason:  {}",
        Untrusted::long(r.reason.as_deref().unwrap_or("-"))
    );
    let _ = writeln!(out, "status:  {}", Untrusted::new(&r.status));
    if let Some(by) = &r.decided_by {
        let _ = writeln!(out, "by:      {}", Untrusted::new(by));
    }
    if let Some(c) = &r.comment {
        let _ = writeln!(out, "comment: {}", Untrusted::long(c));
    }
    if let Some(end) = r.grant_ends_at {
        let verb = if now < end { "ends" } else { "ended" };
        let _ = writeln!(
            out,
            "grant:   {} {verb} {}",
            Untrusted::new(r.grant_id.as_deref().unwrap_or("?")),
            when(end, now)
        );
    }
    out
}

/// The table `requests` prints.
pub(crate) fn table(list: &[AccessRequestInfo]) -> String {
    if list.is_empty() {
        return "no access requests\n".to_owned();
    }
    let mut out = format!(
        "{:<10}  {:<14}  {:<24}  {:<6}  {:<9}  {:<12}  {:<20}  COMMENT\n",
        "ID", "ROLE", "WHERE", "FOR", "STATUS", "DECIDED BY", "GRANT ENDS"
    );
    for r in list {
        let scope = if r.namespaces.is_empty() {
            format!("{} (all)", r.cluster)
        } else {
            format!("{}/{}", r.cluster, r.namespaces.join(","))
        };
        let ends = r
            .grant_ends_at
            .and_then(crate::base::clock::rfc3339)
            .unwrap_or_else(|| "-".to_owned());
        let row = format!(
            "{:<10}  {:<14}  {:<24}  {:<6}  {:<9}  {:<12}  {ends:<20}  {}",
            Untrusted::new(&r.id),
            Untrusted::new(&r.role),
            Untrusted::long(&scope),
            flag_duration(r.duration_secs),
            Untrusted::new(&r.status),
            Untrusted::new(r.decided_by.as_deref().unwrap_or("-")),
            Untrusted::long(r.comment.as_deref().unwrap_or("")),
        );
        let _ = writeln!(out, "{}", row.trim_end());
    }
    out
}

/// The pending requests filed from this machine for one issuer, cluster and account.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Pending {
    /// `(request id, filed at)`.
    pub(crate) ids: Vec<(String, i64)>,
    /// Last time `get` asked the issuer.
    pub(crate) checked_at: i64,
}

/// Where the record for `args` lives: `{cache_dir}/kubectl-credential/pending/<hash>.json`,
/// with the cache root it is checked from.
fn path(args: &Target) -> Option<(crate::cache::Root, PathBuf)> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        args.issuer.as_str(),
        args.cluster.as_str(),
        args.client_id.as_str(),
        args.username.as_deref().unwrap_or(""),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let name = ctx
        .finish()
        .as_ref()
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
    let root = crate::cache::root().ok()?;
    let path = root.path().join("pending").join(format!("{name}.json"));
    Some((root, path))
}

impl Pending {
    /// The record for `args`, if there is one (the only cost on a cache hit).
    pub(crate) fn load(args: &Target, now: i64) -> Option<Self> {
        let (root, path) = path(args)?;
        // Checked like the other cache files: a record that is a link, another user's or
        // writable by others is not believed (it decides what `get` asks the issuer).
        let bytes = crate::cache::read_steering(&root, &path, MAX_RECORD_BYTES)?;
        Self::parse(&bytes, now)
    }

    /// Reads a stored record: `None` unless it is one, and only the ids worth asking about
    /// (recent, at most [`MAX_PENDING`] of them, each an id the issuer could have given). The
    /// times are whatever the file says, so they are compared without overflowing.
    pub(crate) fn parse(bytes: &[u8], now: i64) -> Option<Self> {
        if bytes.len() as u64 > MAX_RECORD_BYTES {
            return None;
        }
        let mut p: Self = serde_json::from_slice(bytes).ok()?;
        p.ids.retain(|(id, at)| {
            now.saturating_sub(*at) < FORGET_AFTER
                && !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if p.ids.len() > MAX_PENDING {
            p.ids.drain(..p.ids.len() - MAX_PENDING);
        }
        Some(p)
    }

    /// Whether `get` should ask the issuer now.
    pub(crate) fn due(&self, now: i64) -> bool {
        !self.ids.is_empty()
            && (now.saturating_sub(self.checked_at) >= CHECK_EVERY || now < self.checked_at)
    }

    /// Writes the record (removes it when nothing is pending). Best effort: losing it only
    /// means the token follows the grant at its next refresh instead.
    pub(crate) fn save(&self, args: &Target) {
        let Some((root, path)) = path(args) else {
            return;
        };
        if self.ids.is_empty() {
            crate::cache::remove_private(&root, &path);
            return;
        }
        if let Ok(json) = serde_json::to_vec(self) {
            let _ = crate::cache::replace_private(&root, &path, &json);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;

    fn info(status: &str, decided: Option<&str>, ends: Option<i64>) -> AccessRequestInfo {
        AccessRequestInfo {
            id: "4f2a9c01de".into(),
            requester: "alice".into(),
            cluster: "prod".into(),
            role: "prod-exec".into(),
            namespaces: vec!["payments".into()],
            reason: Some("OOM in payment-service".into()),
            duration_secs: 1800,
            status: status.into(),
            created_at: NOW - 60,
            decided_by: decided.map(str::to_owned),
            comment: None,
            grant_id: ends.map(|_| "0a1b2c3d4e".to_owned()),
            grant_ends_at: ends,
            grant_active: ends.is_some(),
        }
    }

    #[test]
    fn a_request_reads_as_a_short_report() {
        insta::assert_snapshot!(describe(&info("approved", Some("bob"), Some(NOW + 1740)), NOW), @r"
        request: 4f2a9c01de
        role:    prod-exec in prod/payments
        for:     30m
        reason:  OOM in payment-service
        status:  approved
        by:      bob
        grant:   0a1b2c3d4e ends 2026-01-01T00:29:00Z (in 29m 0s)
        ");
    }

    #[test]
    fn the_list_is_a_table() {
        let mut denied = info("denied", Some("admin-cli"), None);
        denied.id = "77aa00bb11".into();
        denied.comment = Some("use staging".into());
        insta::assert_snapshot!(table(&[info("pending", None, None), denied]), @r"
        ID          ROLE            WHERE                     FOR     STATUS     DECIDED BY    GRANT ENDS            COMMENT
        4f2a9c01de  prod-exec       prod/payments             30m     pending    -             -
        77aa00bb11  prod-exec       prod/payments             30m     denied     admin-cli     -                     use staging
        ");
        assert_eq!(table(&[]), "no access requests\n");
    }

    #[test]
    fn names_and_comments_from_the_issuer_are_escaped() {
        let mut r = info("denied", Some("eve\x1b[31m\nstatus:  approved"), None);
        r.comment = Some(format!("no\u{202e}{}", "x".repeat(1 << 20)));
        let text = describe(&r, NOW);
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(
            text.contains(r"by:      eve\x1b[31m\nstatus:  approved"),
            "{text}"
        );
        assert!(text.len() < 4000, "{} bytes", text.len());
        // The forged line did not become a line.
        assert_eq!(text.lines().filter(|l| l.starts_with("status:")).count(), 1);
        let table = table(&[r]);
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(!table.contains('\x1b'), "{table}");
    }

    #[test]
    fn durations_read_like_the_flag() {
        assert_eq!(flag_duration(1800), "30m");
        assert_eq!(flag_duration(5400), "1h30m");
        assert_eq!(flag_duration(20), "20s");
        assert_eq!(crate::cli::parse_duration("1h30m"), Ok(5400));
        assert_eq!(crate::cli::parse_duration("20s"), Ok(20));
        assert!(crate::cli::parse_duration("30").is_err());
        assert!(crate::cli::parse_duration("0m").is_err());
        assert!(crate::cli::parse_duration("soon").is_err());
    }

    #[test]
    fn pending_records_are_checked_every_few_seconds() {
        let p = Pending {
            ids: vec![("a".into(), NOW)],
            checked_at: NOW,
        };
        assert!(!p.due(NOW + CHECK_EVERY - 1));
        assert!(p.due(NOW + CHECK_EVERY));
        assert!(p.due(NOW - 10), "a clock set back does not stop the checks");
        assert!(!Pending::default().due(NOW));
    }

    /// Found by `fuzz_tests::pending_records_are_short_and_well_formed`: `now - at` with the
    /// smallest `i64` in the file overflowed (a panic in debug builds, a wrapped comparison in
    /// release ones), and so did `now - checked_at` in `due`.
    #[test]
    fn pending_records_with_extreme_times_do_not_overflow() {
        let raw = br#"{"ids":[["a0aa00a0aa",-9223372036854775808]],"checked_at":0}"#;
        let p = Pending::parse(raw, 0);
        assert_eq!(
            p.map(|p| p.ids.len()),
            Some(0),
            "a request filed at the dawn of time is old"
        );
        let raw = br#"{"ids":[["a0aa00a0aa",0]],"checked_at":-9223372036854775808}"#;
        let p = Pending::parse(raw, 0).unwrap_or_default();
        assert!(p.due(0));
        assert!(p.due(i64::MAX));
    }

    /// Found by the same property: a record with thousands of ids (2,000 fit in 64 KiB) made `get` ask the issuer
    /// about each one (3 s timeout each) on kubectl's path, and ids the issuer never gives
    /// (empty, or with characters it never uses) were kept and asked about forever.
    #[test]
    fn pending_records_keep_a_few_well_formed_ids() {
        let ids: Vec<String> = (0..2000).map(|i| format!("[\"{i:010x}\",{NOW}]")).collect();
        let raw = format!(r#"{{"ids":[{}],"checked_at":0}}"#, ids.join(","));
        let p = Pending::parse(raw.as_bytes(), NOW).unwrap_or_default();
        assert_eq!(p.ids.len(), MAX_PENDING);
        assert_eq!(
            p.ids.last().map(|(id, _)| id.as_str()),
            Some("00000007cf"),
            "the newest are kept"
        );
        let raw = format!(r#"{{"ids":[["",{NOW}],["../x",{NOW}],["ok1",{NOW}]],"checked_at":0}}"#);
        let p = Pending::parse(raw.as_bytes(), NOW).unwrap_or_default();
        assert_eq!(p.ids, [("ok1".to_owned(), NOW)]);
        let huge = vec![b' '; 70 * 1024];
        assert_eq!(Pending::parse(&huge, NOW), None);
    }
}
