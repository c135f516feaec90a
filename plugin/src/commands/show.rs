//! What `whoami` and `status` print. These are reports a person asked for, so unlike `get`
//! (whose stdout belongs to kubectl) they go to stdout as plain text, where they can be piped
//! and grepped. The text is built by pure functions of the entries and `now`, so tests pass any
//! time and no clock is read here.

use std::fmt::Write as _;
use std::io::Write as _;

use credential_shared::text::{escape, SHORT};

use crate::base::clock::when;
use crate::base::target::Target;
use crate::cache::{Entry, Listed};
use crate::error::Error;

/// Writes a report to stdout.
pub(crate) fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Stdout)
}

/// `whoami`'s report on the session in `entry`, stored for `args`.
pub(crate) fn whoami(entry: &Entry, args: &Target, now: i64) -> String {
    let groups = entry.groups();
    // Each name is escaped and bounded on its own: a person in many groups sees them all (the
    // token's size already bounds how many there are).
    let groups = if groups.is_empty() {
        "(none)".to_owned()
    } else {
        groups
            .iter()
            .map(|g| escape(g, SHORT))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rows = [
        ("user", escape(&entry.username, SHORT).into_owned()),
        ("groups", groups),
        ("cluster", escape(&args.cluster, SHORT).into_owned()),
        ("issuer", args.issuer.to_string()),
        ("token", token_expiry(entry, now)),
        ("session", session_expiry(entry, now)),
    ];
    let mut text = String::new();
    for (name, value) in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{:<9}{value}", format!("{name}:"));
    }
    text
}

/// `expires 2026-01-01T00:05:00Z (in 4m 12s)` or `expired ... (3m 0s ago)`.
fn token_expiry(entry: &Entry, now: i64) -> String {
    let verb = if now < entry.exp {
        "expires"
    } else {
        "expired"
    };
    format!("{verb} {}", when(entry.exp, now))
}

/// When the session ends, or why that is not known.
fn session_expiry(entry: &Entry, now: i64) -> String {
    if entry.refresh_token.is_none() {
        return "none (no refresh token: sign in again when the token expires)".to_owned();
    }
    match entry.session_expires_at {
        Some(end) if now < end => format!("ends {}", when(end, now)),
        Some(end) => format!("ended {}", when(end, now)),
        None => "no end given by the issuer".to_owned(),
    }
}

/// `status`'s table: one line per session, sorted by cluster and issuer. `cache` names the
/// token cache for the message when there is nothing to list.
pub(crate) fn status(listed: &[Listed], now: i64, cache: &str) -> String {
    if listed.is_empty() {
        return format!("No sessions stored in the {cache} token cache.\n");
    }
    let mut rows: Vec<[String; 5]> = listed
        .iter()
        .map(|Listed { entry, origin, .. }| {
            let (cluster, issuer) = origin
                .as_ref()
                .map_or(("?", "?"), |o| (o.cluster.as_str(), o.issuer.as_str()));
            let user = if entry.username.is_empty() {
                "?"
            } else {
                &entry.username
            };
            let token = if now < entry.exp {
                when(entry.exp, now)
            } else {
                "expired".to_owned()
            };
            let session = match (&entry.refresh_token, entry.session_expires_at) {
                (None, _) => "none".to_owned(),
                (Some(_), Some(end)) if now < end => when(end, now),
                (Some(_), Some(_)) => "expired".to_owned(),
                (Some(_), None) => "unknown".to_owned(),
            };
            [
                escape(cluster, SHORT).into_owned(),
                escape(issuer, SHORT).into_owned(),
                escape(user, SHORT).into_owned(),
                token,
                session,
            ]
        })
        .collect();
    rows.sort();
    let header = ["CLUSTER", "ISSUER", "USER", "TOKEN EXPIRES", "SESSION ENDS"].map(String::from);
    let mut widths = [0; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = width - cell.chars().count();
            line.extend(std::iter::repeat_n(' ', pad));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::base::secret::Secret;
    use crate::cache::{CacheKey, Origin};
    use crate::cli::{Cli, Command, WhoamiArgs};

    /// 2026-01-01T00:00:00Z.
    const NOW: i64 = 1_767_225_600;

    fn entry(user: &str, exp: i64, session: Option<i64>) -> Entry {
        Entry {
            access_token: Secret::new(crate::base::jwt::tests::token(
                NOW - 48,
                exp,
                user,
                &["dev", "ops"],
            )),
            iat: NOW - 48,
            exp,
            refresh_token: Some(Secret::new("RT-secret".to_owned())),
            session_expires_at: session,
            username: user.to_owned(),
            origin: None,
            api_server: None,
        }
    }

    fn args() -> Target {
        let cli = Cli::try_parse_from([
            "kubectl-credential",
            "whoami",
            "--issuer",
            "https://issuer.example:8443",
            "--cluster",
            "prod",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Whoami(WhoamiArgs { common, .. }) = cli.command else {
            panic!("not whoami")
        };
        common.resolve().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn whoami_shows_identity_and_both_expiries() {
        let e = entry("alice", NOW + 252, Some(NOW + 12 * 3600 - 300));
        insta::assert_snapshot!(whoami(&e, &args(), NOW), @r"
        user:    alice
        groups:  dev, ops
        cluster: prod
        issuer:  https://issuer.example:8443
        token:   expires 2026-01-01T00:04:12Z (in 4m 12s)
        session: ends 2026-01-01T11:55:00Z (in 11h 55m)
        ");
    }

    #[test]
    fn whoami_says_what_is_over_or_unknown() {
        let mut e = entry("al\u{1b}ice", NOW - 180, None);
        e.access_token = Secret::new(crate::base::jwt::tests::token(NOW - 48, NOW, "x", &[]));
        insta::assert_snapshot!(whoami(&e, &args(), NOW), @r"
        user:    al\x1bice
        groups:  (none)
        cluster: prod
        issuer:  https://issuer.example:8443
        token:   expired 2025-12-31T23:57:00Z (3m 0s ago)
        session: no end given by the issuer
        ");
        e.refresh_token = None;
        assert!(whoami(&e, &args(), NOW)
            .ends_with("session: none (no refresh token: sign in again when the token expires)\n"));
        e.refresh_token = Some(Secret::new("r".to_owned()));
        e.session_expires_at = Some(NOW - 60);
        assert!(
            whoami(&e, &args(), NOW).ends_with("session: ended 2025-12-31T23:59:00Z (1m 0s ago)\n")
        );
    }

    #[test]
    fn status_lists_one_aligned_line_per_session() {
        let origin = |cluster: &str| Origin {
            issuer: "https://issuer.example:8443".to_owned(),
            cluster: cluster.to_owned(),
            client_id: "kubectl-credential".to_owned(),
            account: None,
        };
        let key = |n: &str| CacheKey::new("https://i", n, "c", None);
        let mut no_refresh = entry("carol", NOW - 1, None);
        no_refresh.refresh_token = None;
        let listed = [
            Listed {
                key: key("prod"),
                entry: entry("alice", NOW + 252, Some(NOW + 3600)),
                origin: Some(origin("prod")),
            },
            Listed {
                key: key("dev"),
                entry: entry("bob", NOW - 10, Some(NOW - 5)),
                origin: Some(origin("dev")),
            },
            Listed {
                key: key("old"),
                entry: entry("", NOW + 30, None),
                origin: None,
            },
            Listed {
                key: key("ci"),
                entry: no_refresh,
                origin: Some(origin("ci")),
            },
        ];
        insta::assert_snapshot!(status(&listed, NOW, "keyring"), @r"
        CLUSTER  ISSUER                       USER   TOKEN EXPIRES                     SESSION ENDS
        ?        ?                            ?      2026-01-01T00:00:30Z (in 30s)     unknown
        ci       https://issuer.example:8443  carol  expired                           none
        dev      https://issuer.example:8443  bob    expired                           expired
        prod     https://issuer.example:8443  alice  2026-01-01T00:04:12Z (in 4m 12s)  2026-01-01T01:00:00Z (in 1h 0m)
        ");
        assert_eq!(
            status(&[], NOW, "file"),
            "No sessions stored in the file token cache.\n"
        );
    }

    #[test]
    fn whoami_of_an_expired_session() {
        let e = entry("bob", NOW - 3 * 3600, Some(NOW - 2 * 3600 - 1800));
        insta::assert_snapshot!(whoami(&e, &args(), NOW), @r"
        user:    bob
        groups:  dev, ops
        cluster: prod
        issuer:  https://issuer.example:8443
        token:   expired 2025-12-31T21:00:00Z (3h 0m ago)
        session: ended 2025-12-31T21:30:00Z (2h 30m ago)
        ");
    }

    /// Names from the issuer (user, groups in the token) and from the cache index (cluster,
    /// issuer) reach stdout escaped and bounded: no ESC, no line of its own, no megabyte.
    #[test]
    fn reports_escape_and_bound_outside_text() {
        let mut e = entry(&"m\u{202e}".repeat(1 << 18), NOW + 600, None);
        e.access_token = Secret::new(crate::base::jwt::tests::token(
            NOW - 48,
            NOW + 600,
            "x",
            &["ops\u{1b}]0;title\u{7}", "dev\nuser:    root"],
        ));
        let text = whoami(&e, &args(), NOW);
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(
            text.contains(r"groups:  ops\x1b]0;title\x07, dev\nuser:    root"),
            "{text}"
        );
        assert!(text.len() < 2000, "{} bytes", text.len());
        assert!(!text.contains(['\u{1b}', '\u{7}', '\u{202e}']), "{text}");
        let listed = [Listed {
            key: CacheKey::new("https://i", "prod", "c", None),
            entry: e,
            origin: Some(Origin {
                issuer: "https://i\u{1b}[2J".to_owned(),
                cluster: "prod\r\nfake  https://x  root".to_owned(),
                client_id: "kubectl-credential".to_owned(),
                account: None,
            }),
        }];
        let text = status(&listed, NOW, "keyring");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains(r"prod\r\nfake  https://x  root  https://i\x1b[2J"),
            "{text}"
        );
        assert!(text.contains("…[+"), "not bounded");
        assert!(text.len() < 2000, "{} bytes", text.len());
    }

    /// An entry in the keyring written before the plugin recorded whose session it is: `status`
    /// still lists it, with `?` for what it cannot know.
    #[test]
    fn status_of_a_keyring_session_of_unknown_issuer() {
        let mut e = entry("alice", NOW + 600, Some(NOW + 8 * 86_400));
        e.access_token = Secret::new(crate::base::jwt::tests::token(NOW - 48, NOW, "x", &[]));
        let listed = [Listed {
            key: CacheKey::new("https://i", "prod", "c", None),
            entry: e,
            origin: None,
        }];
        insta::assert_snapshot!(status(&listed, NOW, "keyring"), @r"
        CLUSTER  ISSUER  USER   TOKEN EXPIRES                     SESSION ENDS
        ?        ?       alice  2026-01-01T00:10:00Z (in 10m 0s)  2026-01-09T00:00:00Z (in 8d 0h)
        ");
        insta::assert_snapshot!(status(&[], NOW, "keyring"), @"No sessions stored in the keyring token cache.");
    }
}
