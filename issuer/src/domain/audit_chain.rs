//! The audit trail's hash chain: how an event is linked to the one before it, and how a stored
//! trail is checked. Pure: the store reads and writes rows, this module decides.
//!
//! `hash(n) = SHA-256(hash(n-1) || "\n" || canonical(n))`, hex, starting from [`GENESIS`].
//! `canonical(n)` is the JSON array of every column but the hash, so editing any field of a
//! sealed event, deleting one, or inserting one in the middle changes every hash after it. The
//! chain cannot by itself show that the newest events were cut off; `audit verify` prints the
//! head (sequence number and hash) and the server logs it periodically, so a head kept
//! elsewhere (a ticket, the log system) can be checked with `--expect-head`.

use ring::digest;
use serde::Serialize;

/// The hash before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit event says: its name and the ten facts about it. The store writes one with
/// `E = &'static str` (`store::AuditEvent`, the names are constants in the code) and reads one
/// back with `E = String` inside a [`Record`], so the fields are listed once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts<E = String> {
    /// What happened, e.g. `login`, `token.issued`, `refresh`, `session.revoked`.
    pub event: E,
    /// Who did it (user name, `admin-cli`, or `system`).
    pub actor: Option<String>,
    /// Whom it is about.
    pub subject: Option<String>,
    /// Cluster.
    pub cluster: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// The reason given by the person asking.
    pub reason: Option<String>,
    /// Who approved.
    pub approver: Option<String>,
    /// Client address.
    pub client_addr: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Extra detail (JSON text). Never contains a secret.
    pub detail: Option<String>,
}

/// One stored audit event, as the chain sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Position in the trail (increasing, assigned by the database).
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// What was written (serialized inline, as the columns of the row).
    #[serde(flatten)]
    pub facts: Facts,
    /// The chain hash; `None` until the sealer has reached this event.
    pub hash: Option<String>,
}

/// The hash of `r` following `prev`.
#[must_use]
pub fn link(prev: &str, r: &Record) -> String {
    let f = &r.facts;
    let canonical = serde_json::to_string(&(
        r.seq,
        r.at,
        &f.event,
        &f.actor,
        &f.subject,
        &f.cluster,
        &f.namespace,
        &f.role,
        &f.reason,
        &f.approver,
        &f.client_addr,
        &f.request_id,
        &f.detail,
    ))
    .unwrap_or_default();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(b"\n");
    ctx.update(canonical.as_bytes());
    crate::secrets::secret::hex(ctx.finish().as_ref())
}

/// What is wrong with a trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The event's hash does not follow from the one before: this event was edited, or one
    /// before it was deleted or inserted.
    #[error("the chain breaks at event {seq}: it, or an event before it, was edited, inserted or deleted")]
    Broken {
        /// First event whose hash does not match.
        seq: i64,
    },
    /// An event without a hash precedes sealed ones: its hash was removed.
    #[error("event {seq} has no hash but later events do: its hash was removed")]
    Unsealed {
        /// The event.
        seq: i64,
    },
    /// The head named by `--expect-head` is not in the trail with that hash: events were cut
    /// off the end, or the trail was rewritten.
    #[error("the expected head (event {seq}) is missing or has another hash: events were removed from the end or the trail was rewritten")]
    HeadMissing {
        /// The expected event.
        seq: i64,
    },
}

/// The outcome of a complete check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events whose hash was checked.
    pub sealed: u64,
    /// Newest events not sealed yet (normal for a second or so after they are written).
    pub pending: u64,
    /// The last sealed event and its hash.
    pub head: Option<(i64, String)>,
}

/// Checks a trail fed in `seq` order, one event at a time (so a trail of any size is checked
/// in constant memory).
#[derive(Debug)]
pub struct Verifier {
    prev: String,
    first_pending: Option<i64>,
    summary: Summary,
    expect: Option<(i64, String)>,
    expect_seen: bool,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Verifier {
    /// A verifier; `expect_head` is a head recorded earlier that must still be in the trail.
    #[must_use]
    pub fn new(expect_head: Option<(i64, String)>) -> Self {
        Self {
            prev: GENESIS.to_owned(),
            first_pending: None,
            summary: Summary::default(),
            expect: expect_head,
            expect_seen: false,
        }
    }

    /// Checks the next event.
    pub fn push(&mut self, r: &Record) -> Result<(), Problem> {
        let Some(hash) = r.hash.as_deref() else {
            self.first_pending.get_or_insert(r.seq);
            self.summary.pending += 1;
            return Ok(());
        };
        if let Some(seq) = self.first_pending {
            return Err(Problem::Unsealed { seq });
        }
        if link(&self.prev, r) != hash {
            return Err(Problem::Broken { seq: r.seq });
        }
        if let Some((seq, expected)) = &self.expect {
            if *seq == r.seq {
                if expected != hash {
                    return Err(Problem::HeadMissing { seq: *seq });
                }
                self.expect_seen = true;
            }
        }
        hash.clone_into(&mut self.prev);
        self.summary.sealed += 1;
        self.summary.head = Some((r.seq, hash.to_owned()));
        Ok(())
    }

    /// Ends the check.
    pub fn finish(self) -> Result<Summary, Problem> {
        match self.expect {
            Some((seq, _)) if !self.expect_seen => Err(Problem::HeadMissing { seq }),
            _ => Ok(self.summary),
        }
    }
}

/// Parses `SEQ:HASH` as printed by `audit verify`.
#[must_use]
pub fn parse_head(s: &str) -> Option<(i64, String)> {
    let (seq, hash) = s.trim().split_once(':')?;
    let seq = seq.parse().ok()?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (seq, hash.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(n: i64) -> Vec<Record> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut r = Record {
                    seq,
                    at: 1_700_000_000 + seq,
                    facts: Facts {
                        event: "login".into(),
                        subject: Some(format!("u{seq}")),
                        ..Facts::default()
                    },
                    ..Record::default()
                };
                let h = link(&prev, &r);
                prev.clone_from(&h);
                r.hash = Some(h);
                r
            })
            .collect()
    }

    fn check(records: &[Record], head: Option<(i64, String)>) -> Result<Summary, Problem> {
        let mut v = Verifier::new(head);
        for r in records {
            v.push(r)?;
        }
        v.finish()
    }

    #[test]
    fn an_intact_trail_verifies_and_names_its_head() {
        let t = trail(5);
        let s = check(&t, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.sealed, 5);
        assert_eq!(s.head.as_ref().map(|h| h.0), Some(5));
        assert_eq!(
            check(&t, Some((3, t[2].hash.clone().unwrap_or_default()))),
            Ok(s)
        );
    }

    #[test]
    fn editing_deleting_or_inserting_breaks_the_chain() {
        let t = trail(5);
        let mut edited = t.clone();
        edited[2].facts.actor = Some("mallory".into());
        assert_eq!(check(&edited, None), Err(Problem::Broken { seq: 3 }));

        let mut deleted = t.clone();
        deleted.remove(1);
        assert_eq!(check(&deleted, None), Err(Problem::Broken { seq: 3 }));

        let mut inserted = t.clone();
        let mut extra = t[1].clone();
        extra.facts.event = "grant.added".into();
        inserted.insert(2, extra);
        assert!(matches!(
            check(&inserted, None),
            Err(Problem::Broken { .. })
        ));

        // Every field counts, including ones added for access policy.
        let mut reason = t.clone();
        reason[4].facts.reason = Some("because".into());
        assert_eq!(check(&reason, None), Err(Problem::Broken { seq: 5 }));
    }

    #[test]
    fn pending_tail_is_fine_but_a_removed_hash_is_not() {
        let mut t = trail(4);
        t[3].hash = None;
        let s = check(&t, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.sealed, s.pending), (3, 1));

        let mut t = trail(4);
        t[1].hash = None;
        assert_eq!(check(&t, None), Err(Problem::Unsealed { seq: 2 }));
    }

    #[test]
    fn a_truncated_tail_is_caught_by_the_expected_head() {
        let t = trail(5);
        let head = t[4].hash.clone().map(|h| (5, h));
        assert_eq!(
            check(&t[..3], head.clone()),
            Err(Problem::HeadMissing { seq: 5 })
        );
        assert_eq!(
            check(&t, Some((5, GENESIS.to_owned()))),
            Err(Problem::HeadMissing { seq: 5 })
        );
        assert!(check(&t, head).is_ok());
    }

    #[test]
    fn heads_parse() {
        let h = "ab".repeat(32);
        assert_eq!(parse_head(&format!("12:{h}")), Some((12, h.clone())));
        assert_eq!(parse_head("12"), None);
        assert_eq!(parse_head(&format!("x:{h}")), None);
        assert_eq!(parse_head("12:abc"), None);
    }
}
