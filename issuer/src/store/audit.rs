//! The audit trail: append-only rows, never log lines, sealed into a hash chain
//! ([`crate::domain::audit_chain`]) by [`Store::seal_audit`] shortly after they are written.

use time::OffsetDateTime;

use super::{Backend, Result, Store};
use crate::domain::audit_chain::{self, Facts, Record};

/// One audit event to write; its name is a constant of the code.
pub type AuditEvent = Facts<&'static str>;

impl AuditEvent {
    /// The row of a grant's creation or revocation: who, for whom, where, which role, why, who
    /// approved it and from which request (`revoke_reason` replaces the grant's reason).
    #[must_use]
    pub fn for_grant(
        event: &'static str,
        g: &crate::domain::grants::Grant,
        actor: &str,
        revoke_reason: Option<&str>,
    ) -> Self {
        let detail = serde_json::json!({
            "grant_id": g.id,
            "namespaces": g.namespaces,
            "role": g.role,
            "starts_at": g.starts_at.unix_timestamp(),
            "ends_at": g.ends_at.unix_timestamp(),
            "reason": revoke_reason.map(str::to_owned).or_else(|| g.reason.clone()),
            "approver": g.approved_by,
        });
        Self {
            event,
            actor: Some(actor.to_owned()),
            subject: Some(g.grantee.to_string()),
            cluster: Some(g.cluster.clone()),
            namespace: (!g.namespaces.is_empty()).then(|| g.namespaces.join(",")),
            role: Some(g.role.clone()),
            reason: revoke_reason
                .map(str::to_owned)
                .or_else(|| g.reason.clone()),
            approver: g.approved_by.clone(),
            request_id: g.request_id.clone(),
            detail: Some(detail.to_string()),
            ..Self::default()
        }
    }
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
    /// Only events about this subject (user id, or the grantee `user:NAME` of grant, request and
    /// binding events) or by this actor (user name)...
    pub person: Option<String>,
    /// ...or about/by this second identifier (a person's id when `person` is their name).
    pub person_alias: Option<String>,
    /// Only events in this cluster.
    pub cluster: Option<String>,
    /// Only events in this namespace (events about several namespaces list them with commas).
    pub namespace: Option<String>,
    /// Only this event, or the events under it (`login` also selects `login.failed`).
    pub event: Option<String>,
}

/// The advisory lock key of the sealing transaction (PostgreSQL).
const SEAL_LOCK: i64 = 0x6b63_7265_645f_6131;

/// Most events [`Store::seal_audit`] links in one statement (two bound values each).
pub const SEAL_BATCH: u32 = 500;

type Row = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const COLUMNS: &str = "seq, at, event, actor, subject, cluster, namespace, role, reason, approver, client_addr, request_id, detail, hash";

fn record(r: Row) -> Record {
    Record {
        seq: r.0,
        at: r.1,
        facts: Facts {
            event: r.2,
            actor: r.3,
            subject: r.4,
            cluster: r.5,
            namespace: r.6,
            role: r.7,
            reason: r.8,
            approver: r.9,
            client_addr: r.10,
            request_id: r.11,
            detail: r.12,
        },
        hash: r.13,
    }
}

impl Store {
    /// Appends an event.
    pub async fn audit(&self, e: &AuditEvent, now: OffsetDateTime) -> Result<()> {
        let q = sqlx::query(
            "INSERT INTO audit_events (at, event, actor, subject, cluster, namespace, role, reason, approver, client_addr, request_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(now.unix_timestamp())
        .bind(e.event)
        .bind(&e.actor)
        .bind(&e.subject)
        .bind(&e.cluster)
        .bind(&e.namespace)
        .bind(&e.role)
        .bind(&e.reason)
        .bind(&e.approver)
        .bind(&e.client_addr)
        .bind(&e.request_id)
        .bind(&e.detail);
        self.run(q).await
    }

    /// Appends `events`, each at its own time, in one write transaction: all or none. The
    /// proxy's writer batches its per-request events this way, so a busy proxy costs one
    /// commit per batch, not one per request.
    pub async fn audit_batch(&self, events: &[(AuditEvent, OffsetDateTime)]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        for (e, at) in events {
            sqlx::query(
                "INSERT INTO audit_events (at, event, actor, subject, cluster, namespace, role, reason, approver, client_addr, request_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(at.unix_timestamp())
            .bind(e.event)
            .bind(&e.actor)
            .bind(&e.subject)
            .bind(&e.cluster)
            .bind(&e.namespace)
            .bind(&e.role)
            .bind(&e.reason)
            .bind(&e.approver)
            .bind(&e.client_addr)
            .bind(&e.request_id)
            .bind(&e.detail)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// The event names recorded for `subject`, oldest first (for tests and the admin CLI).
    pub async fn audit_events_for(&self, subject: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT event FROM audit_events WHERE subject = $1 ORDER BY seq")
                .bind(subject)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// How many events named `event` were recorded (for tests).
    #[cfg(test)]
    pub(crate) async fn count_events(&self, event: &str) -> Result<usize> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE event = $1")
            .bind(event)
            .fetch_one(&self.pool)
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Links up to `max` (at most [`SEAL_BATCH`]) not yet sealed events into the hash chain,
    /// oldest first. Returns how many were sealed; 0 when there is nothing to seal (or another
    /// sealer got there first: the caller tries again later).
    ///
    /// The rows are read and hashed outside any write transaction (they are append-only), and
    /// the hashes are written by one `UPDATE ... FROM (VALUES ...)` in a short `IMMEDIATE`
    /// transaction that first checks the chain's head has not moved: the single writer
    /// connection is held for one statement, not one per row, so refreshes queued behind it
    /// are not delayed (docs/benchmarks.md).
    pub async fn seal_audit(&self, max: u32) -> Result<u32> {
        let limit = max.clamp(1, SEAL_BATCH);
        let head = self.audit_head().await?;
        let (after, mut prev) = head.clone().unwrap_or((0, audit_chain::GENESIS.to_owned()));
        // PostgreSQL hands out `seq` at insert and transactions commit in any order, so a row
        // with a lower `seq` may still appear after a higher one was sealed. Only the run of
        // rows before the first one written less than `audit_settle_ms` ago (database clock)
        // is sealed: by then every lower `seq` has committed. (SQLite has one writer: rows
        // appear in `seq` order.)
        let settled = match self.backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => format!(
                "AND seq < COALESCE((SELECT MIN(seq) FROM audit_events WHERE seq > $1 \
                 AND written_at > (floor(extract(epoch FROM clock_timestamp()) * 1000))::BIGINT - {}), \
                 9223372036854775807)",
                self.audit_settle_ms
            ),
        };
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 {settled} ORDER BY seq LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut hashes = Vec::with_capacity(rows.len());
        for row in rows {
            let r = record(row);
            let hash = audit_chain::link(&prev, &r);
            prev.clone_from(&hash);
            hashes.push((r.seq, hash));
        }
        let values = (0..hashes.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE audit_events SET hash = v.column2 FROM (VALUES {values}) AS v \
             WHERE audit_events.seq = v.column1 AND audit_events.hash IS NULL"
        );
        // One sealer at a time, whichever process it runs in (an admin command next to the
        // server, another replica). SQLite: IMMEDIATE takes the write lock first (waiting up to
        // busy_timeout), so the transaction cannot fail with SQLITE_BUSY when it upgrades from
        // reading to writing. PostgreSQL: a transaction-scoped advisory lock.
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SEAL_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let head_now: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, hash FROM audit_events WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if head_now != head {
            // Another sealer moved the chain since we read it; ours would not link.
            tx.rollback().await?;
            return Ok(0);
        }
        let mut q = sqlx::query(&sql);
        for (seq, hash) in &hashes {
            q = q.bind(*seq).bind(hash);
        }
        let done = q.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(u32::try_from(done).unwrap_or(u32::MAX))
    }

    /// The newest sealed event's sequence number and hash.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT seq, hash FROM audit_events WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Edits the first event behind the database's guard, as an intruder with the file would
    /// (for tests of what the chain check shows).
    #[cfg(test)]
    pub(crate) async fn tamper_for_tests(&self) {
        for sql in [
            self.drop_audit_update_guard_sql(),
            "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1",
        ] {
            sqlx::query(sql)
                .execute(&self.write)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    /// The statement an intruder with database access would use to remove the update guard.
    #[cfg(test)]
    pub(crate) fn drop_audit_update_guard_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "DROP TRIGGER audit_events_no_update",
            Backend::Postgres => "DROP TRIGGER audit_events_no_update ON audit_events",
        }
    }

    /// Up to `limit` events after `after_seq` that match `filter`, in `seq` order. Callers
    /// page through the whole trail by passing the last `seq` they got.
    pub async fn audit_page(
        &self,
        after_seq: i64,
        limit: u32,
        filter: &AuditFilter,
    ) -> Result<Vec<Record>> {
        let in_list = self
            .backend
            .contains("',' || namespace || ','", "',' || $8 || ','");
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit_events
             WHERE seq > $1
               AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at < $3)
               AND ($4 IS NULL OR subject IN ($4, $5, 'user:' || $4, 'user:' || $5) OR actor IN ($4, $5))
               AND ($6 IS NULL OR cluster = $6)
               AND ($8 IS NULL OR namespace = $8 OR {in_list})
               AND ($9 IS NULL OR event = $9 OR substr(event, 1, length($9) + 1) = $9 || '.')
             ORDER BY seq LIMIT $7"
        ))
        .bind(after_seq)
        .bind(filter.since.map(OffsetDateTime::unix_timestamp))
        .bind(filter.until.map(OffsetDateTime::unix_timestamp))
        .bind(&filter.person)
        .bind(filter.person_alias.as_ref().or(filter.person.as_ref()))
        .bind(&filter.cluster)
        .bind(i64::from(limit))
        .bind(&filter.namespace)
        .bind(&filter.event)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(record).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::audit_chain::{Problem, Verifier};
    use crate::store::test_support::temp_store;

    async fn verify(store: &Store) -> std::result::Result<audit_chain::Summary, Problem> {
        let mut v = Verifier::new(None);
        let mut after = 0;
        loop {
            let page = store
                .audit_page(after, 2, &AuditFilter::default())
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in &page {
                v.push(r)?;
            }
        }
        v.finish()
    }

    fn event(subject: &str) -> AuditEvent {
        AuditEvent {
            event: "login",
            subject: Some(subject.into()),
            reason: Some("on call".into()),
            ..AuditEvent::default()
        }
    }

    #[tokio::test]
    async fn events_are_sealed_in_order_and_verify() {
        let (store, _dir) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        for i in 0..5 {
            store.audit(&event(&format!("u{i}")), now).await.unwrap();
        }
        assert_eq!(store.seal_audit(3).await.unwrap(), 3);
        let s = verify(&store).await.unwrap();
        assert_eq!((s.sealed, s.pending), (3, 2));
        assert_eq!(store.seal_audit(100).await.unwrap(), 2);
        assert_eq!(store.seal_audit(100).await.unwrap(), 0);
        let s = verify(&store).await.unwrap();
        assert_eq!((s.sealed, s.pending), (5, 0));
        assert_eq!(s.head.map(|h| h.0), Some(5));
    }

    /// Writers whose transactions stay open a while (as a refresh's does until its commit)
    /// while the sealer runs: with PostgreSQL a row with a lower `seq` becomes visible after a
    /// higher one, and sealing the higher one first would leave it outside the chain for ever
    /// (`Problem::Unsealed`). The settle delay keeps the sealer behind every open writer.
    #[tokio::test]
    async fn rows_committed_out_of_order_are_all_sealed_in_order() {
        let (store, _dir) = temp_store().await;
        let sealing = store.clone().with_audit_settle_ms(150);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sealer = {
            let (sealing, stop) = (sealing.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    sealing.seal_audit(SEAL_BATCH).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
        };
        let mut writers = Vec::new();
        for w in 0..8_u64 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..10_u64 {
                    let mut tx = store.write.begin().await.unwrap();
                    sqlx::query(
                        "INSERT INTO audit_events (at, event, subject) VALUES ($1, 'login', $2)",
                    )
                    .bind(1_800_000_000_i64)
                    .bind(format!("w{w}-{i}"))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                    // Writers hold their transaction for different times, so they commit in
                    // another order than they took their `seq`.
                    tokio::time::sleep(std::time::Duration::from_millis((w * 7 + i * 3) % 40))
                        .await;
                    tx.commit().await.unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        sealer.await.unwrap();
        let rest = store.clone().without_audit_settle();
        while rest.seal_audit(SEAL_BATCH).await.unwrap() > 0 {}
        let s = verify(&store).await.unwrap();
        assert_eq!((s.sealed, s.pending), (80, 0));
    }

    #[tokio::test]
    async fn the_database_refuses_edits_and_deletes_and_the_chain_catches_the_rest() {
        let (store, _dir) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        for i in 0..4 {
            store.audit(&event(&format!("u{i}")), now).await.unwrap();
        }
        store.seal_audit(100).await.unwrap();
        let edit = sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
            .execute(&store.write)
            .await;
        assert!(edit.is_err(), "a sealed event was editable");
        let delete = sqlx::query("DELETE FROM audit_events WHERE seq = 2")
            .execute(&store.write)
            .await;
        assert!(delete.is_err(), "an event was deletable");

        // Someone with the file drops the guard and edits anyway: the chain shows where.
        sqlx::query(store.drop_audit_update_guard_sql())
            .execute(&store.write)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
            .execute(&store.write)
            .await
            .unwrap();
        assert_eq!(verify(&store).await, Err(Problem::Broken { seq: 2 }));
    }

    /// A person's events are every row about them, whatever names them as subject: their id
    /// (tokens), `user:NAME` (grants, requests, bindings), or as the actor.
    #[tokio::test]
    async fn the_person_filter_finds_every_kind_of_subject() {
        let (store, _dir) = temp_store().await;
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        for (event, subject, actor) in [
            ("login", "u-alice", None),
            ("request.approved", "user:alice", Some("bob")),
            ("grant.created", "user:alice", Some("bob")),
            ("binding.created", "user:alice", Some("reconciler")),
            ("request.filed", "user:bob", Some("alice")),
            ("login", "u-bob", None),
            ("grant.created", "user:alice2", Some("bob")),
        ] {
            let e = AuditEvent {
                event,
                subject: Some(subject.into()),
                actor: actor.map(str::to_owned),
                ..AuditEvent::default()
            };
            store.audit(&e, t0).await.unwrap();
        }
        let found = store
            .audit_page(
                0,
                100,
                &AuditFilter {
                    person: Some("alice".into()),
                    person_alias: Some("u-alice".into()),
                    ..AuditFilter::default()
                },
            )
            .await
            .unwrap();
        let events: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|r| (r.facts.event.as_str(), r.facts.subject.as_deref()))
            .collect();
        assert_eq!(
            events,
            [
                ("login", Some("u-alice")),
                ("request.approved", Some("user:alice")),
                ("grant.created", Some("user:alice")),
                ("binding.created", Some("user:alice")),
                ("request.filed", Some("user:bob")),
            ]
        );
    }

    #[tokio::test]
    async fn filters_select_by_time_person_and_cluster() {
        let (store, _dir) = temp_store().await;
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut e = event("alice");
        e.cluster = Some("prod".into());
        store.audit(&e, t0).await.unwrap();
        store
            .audit(&event("bob"), t0 + time::Duration::hours(1))
            .await
            .unwrap();
        let all = |f: AuditFilter| {
            let store = store.clone();
            async move { store.audit_page(0, 100, &f).await.unwrap() }
        };
        assert_eq!(all(AuditFilter::default()).await.len(), 2);
        let by_person = all(AuditFilter {
            person: Some("alice".into()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(by_person.len(), 1);
        assert_eq!(by_person[0].facts.reason.as_deref(), Some("on call"));
        let later = all(AuditFilter {
            since: Some(t0 + time::Duration::minutes(30)),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(later[0].facts.subject.as_deref(), Some("bob"));
        let prod = all(AuditFilter {
            cluster: Some("prod".into()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(prod.len(), 1);

        let mut grant = event("carol");
        grant.event = "grant.created";
        grant.namespace = Some("payments,web".into());
        store.audit(&grant, t0).await.unwrap();
        let mut failed = event("dave");
        failed.event = "login.failed";
        store.audit(&failed, t0).await.unwrap();
        let in_web = all(AuditFilter {
            namespace: Some("web".into()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(in_web.len(), 1);
        assert_eq!(in_web[0].facts.subject.as_deref(), Some("carol"));
        let not_a_prefix = all(AuditFilter {
            namespace: Some("we".into()),
            ..AuditFilter::default()
        })
        .await;
        assert!(not_a_prefix.is_empty());
        let logins: Vec<String> = all(AuditFilter {
            event: Some("login".into()),
            ..AuditFilter::default()
        })
        .await
        .into_iter()
        .map(|r| r.facts.event)
        .collect();
        assert_eq!(logins, vec!["login", "login", "login.failed"]);
        let exact = all(AuditFilter {
            event: Some("login.failed".into()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(exact.len(), 1);
        let no_partial_word = all(AuditFilter {
            event: Some("log".into()),
            ..AuditFilter::default()
        })
        .await;
        assert!(no_partial_word.is_empty());
    }
}
