//! Login sessions and their rotating refresh tokens (OAuth 2.0 Security BCP section 4.14:
//! every refresh spends the presented token; presenting a spent one revokes the session).
//!
//! A session row holds the hash of its one live refresh token. The refresh fast path is a
//! single conditional `UPDATE ... RETURNING` that checks the token, the session's liveness and
//! the account in its `WHERE` clause; a trigger records the spent hash and the audit row in
//! the same statement. Only a refused refresh takes the slower diagnostic path.

use time::OffsetDateTime;

use super::users::User;
use super::{opt_ts, ts, Result, Store};

/// A login session: one device-flow login of one user for one cluster and client.
#[derive(Debug, Clone)]
pub struct Session {
    /// Id (the `sid` claim).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Client it was issued to.
    pub client_id: String,
    /// Cluster.
    pub cluster: String,
    /// Start.
    pub created_at: OffsetDateTime,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
    /// Set when revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Who presented a refresh token, recorded with the rotation.
#[derive(Debug, Clone, Copy)]
pub struct Presenter<'a> {
    /// The client presenting it; a token issued to another client is refused.
    pub client_id: &'a str,
    /// Client address.
    pub client_addr: &'a str,
    /// Request id.
    pub request_id: &'a str,
    /// The `detail` of the refresh's audit row: the groups and grants of the token about to be
    /// minted (JSON, no secret).
    pub token_detail: &'a str,
}

/// The refresh token a rotation stores, and what a retry within the grace needs.
#[derive(Clone, Copy)]
pub struct Successor<'a> {
    /// SHA-256 of the new refresh token.
    pub hash: &'a str,
    /// The new refresh token sealed with [`successor_context`] of the presented token's hash.
    pub sealed: &'a str,
    /// How long the presented token, presented again, gets this successor back.
    pub retry_grace: std::time::Duration,
}

impl std::fmt::Debug for Successor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Successor")
            .field("retry_grace", &self.retry_grace)
            .finish_non_exhaustive()
    }
}

/// The sealing context of the successor of the refresh token whose hash is `previous_hash`: a
/// sealed successor copied to another row does not open.
#[must_use]
pub fn successor_context(previous_hash: &str) -> String {
    format!("refresh-successor:{previous_hash}")
}

/// Result of presenting a refresh token.
#[derive(Debug, Clone)]
pub enum RotateOutcome {
    /// The token was live, its session live and its account enabled; the token is spent and
    /// the new one stored. The account comes back from the same statement.
    Rotated(Session, User),
    /// The token is the session's current one, but the session is revoked or expired, the
    /// account disabled or past its end, or the token was issued to another client (the caller finds out
    /// which). Nothing changed.
    Refused(Session),
    /// The token was rotated moments ago (within the retry grace) and its successor is still
    /// the session's current token: a retry whose answer was lost. Nothing changed; the caller
    /// hands out the same successor again.
    Retried {
        /// The session.
        session: Session,
        /// Its account.
        user: User,
        /// The successor, sealed with [`successor_context`] of the presented hash (kept out
        /// of `Debug` prints all the same).
        successor_sealed: crate::secrets::secret::Secret,
    },
    /// The token had been spent before: its session is now revoked.
    Reused {
        /// The revoked session.
        session_id: String,
        /// Its owner.
        user_id: String,
    },
    /// No such token.
    Unknown,
}

/// The account state a token review needs about a session's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Set when the account is disabled.
    pub disabled_at: Option<OffsetDateTime>,
    /// End of the account, if it has one.
    pub expires_at: Option<OffsetDateTime>,
}

type SessionRow = (String, String, String, String, i64, i64, Option<i64>);

const COLUMNS: &str = "id, user_id, client_id, cluster, created_at, expires_at, revoked_at";

/// A session from the JSON array of [`COLUMNS`] that a statement returned alongside another
/// row (`Backend::json_array`).
fn session_from_json(json: &str) -> Result<Session> {
    let row: SessionRow = serde_json::from_str(json).map_err(|e| super::Error::Corrupt {
        table: "sessions",
        detail: e.to_string(),
    })?;
    from_row(row)
}

fn from_row(r: SessionRow) -> Result<Session> {
    Ok(Session {
        id: r.0,
        user_id: r.1,
        client_id: r.2,
        cluster: r.3,
        created_at: ts("sessions", r.4)?,
        expires_at: ts("sessions", r.5)?,
        revoked_at: opt_ts("sessions", r.6)?,
    })
}

/// One refresh-token rotation waiting to be written.
#[derive(Debug)]
pub(super) struct Rotation {
    old_hash: String,
    new_hash: String,
    successor_sealed: String,
    at: i64,
    client_id: String,
    client_addr: String,
    request_id: String,
    token_detail: String,
}

/// What a rotation returns: the session and the account as JSON arrays, or nothing when the
/// token was not the live one of a live session.
type Rotated = Option<(String, String)>;

/// Group commit for refresh-token rotations, the issuer's hottest write.
///
/// Every refresh is one conditional `UPDATE`, but a commit costs far more than the statement
/// (WAL frames for every touched page, a round trip to SQLite's thread). Under load, rotations
/// queue here and one task writes all that are waiting in a single transaction; each statement
/// keeps its own conditional `WHERE`, so atomicity per token is unchanged. With no load a batch
/// is one rotation and the cost is one channel hop.
///
/// PostgreSQL takes many writers and groups commits itself, and a batch there would hold row
/// locks of unrelated sessions until its commit (replicas batching the same sessions in another
/// order could deadlock), so there every rotation is its own statement on the shared pool.
#[derive(Debug, Clone)]
pub(super) enum Rotations {
    /// SQLite: the queue of the batching task.
    Batched(tokio::sync::mpsc::Sender<(Rotation, tokio::sync::oneshot::Sender<Result<Rotated>>)>),
    /// PostgreSQL: straight to the pool.
    Direct(sqlx::AnyPool),
}

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 128;

impl Rotations {
    /// Starts the writer task on the current runtime. It ends when the last `Store` is dropped.
    pub(super) fn start(write: sqlx::AnyPool, backend: super::Backend) -> Self {
        if backend == super::Backend::Postgres {
            return Self::Direct(write);
        }
        let (queue, mut rx) = tokio::sync::mpsc::channel::<(
            Rotation,
            tokio::sync::oneshot::Sender<Result<Rotated>>,
        )>(1024);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                write_batch(&write, &mut batch).await;
            }
        });
        Self::Batched(queue)
    }

    async fn rotate(&self, job: Rotation) -> Result<Rotated> {
        let queue = match self {
            Self::Direct(pool) => {
                let mut conn = pool.acquire().await?;
                return rotate_one(&mut conn, super::Backend::Postgres, &job).await;
            }
            Self::Batched(queue) => queue,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        queue
            .send((job, tx))
            .await
            .map_err(|_| super::Error::Database(sqlx::Error::PoolClosed))?;
        rx.await
            .map_err(|_| super::Error::Database(sqlx::Error::PoolClosed))?
    }
}

async fn write_batch(
    write: &sqlx::AnyPool,
    batch: &mut Vec<(Rotation, tokio::sync::oneshot::Sender<Result<Rotated>>)>,
) {
    let mut results: Vec<Result<Rotated>> = Vec::with_capacity(batch.len());
    let outcome: Result<()> = async {
        let mut tx = super::tx::WriteTx::begin(write, super::Backend::Sqlite).await?;
        for (job, _) in batch.iter() {
            results.push(rotate_one(&mut tx, super::Backend::Sqlite, job).await);
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    for (i, (_, reply)) in batch.drain(..).enumerate() {
        let r = match &outcome {
            // The commit failed: nothing in the batch happened.
            Err(e) => Err(super::Error::BatchFailed {
                fault: e.fault(),
                reason: super::cause_chain(e),
            }),
            Ok(()) => results
                .get_mut(i)
                .map_or(Ok(None), |r| std::mem::replace(r, Ok(None))),
        };
        let _ = reply.send(r);
    }
}

/// The conditional UPDATE is the single point of truth: of two presenters of the same token,
/// exactly one sees a row. The account is returned through a subquery so that a refresh needs
/// no second query.
async fn rotate_one(
    conn: &mut sqlx::AnyConnection,
    backend: super::Backend,
    job: &Rotation,
) -> Result<Rotated> {
    let session = backend.json_array(COLUMNS);
    let user = backend.json_array(&super::users::user_columns(backend));
    Ok(sqlx::query_as(&format!(
        "UPDATE sessions SET refresh_hash = $1, refreshed_at = $2, last_client_addr = $3, last_request_id = $4,
           last_token_detail = $7, previous_refresh_hash = $5, successor_sealed = $8
         WHERE refresh_hash = $5 AND client_id = $6 AND revoked_at IS NULL AND expires_at > $2
           AND user_id IN (SELECT id FROM users WHERE disabled_at IS NULL AND (expires_at IS NULL OR expires_at > $2))
         RETURNING {session},
           (SELECT {user} FROM users u WHERE u.id = sessions.user_id)"
    ))
    .bind(&job.new_hash)
    .bind(job.at)
    .bind(&job.client_addr)
    .bind(&job.request_id)
    .bind(&job.old_hash)
    .bind(&job.client_id)
    .bind(&job.token_detail)
    .bind(&job.successor_sealed)
    .fetch_optional(&mut *conn)
    .await?)
}

impl Store {
    /// The sessions revoked and the accounts disabled at or after `since`: what any process
    /// (another replica, the admin CLI) changed, for the webhook caches of this one.
    pub async fn revoked_since(&self, since: OffsetDateTime) -> Result<(Vec<String>, Vec<String>)> {
        let since = since.unix_timestamp();
        let sessions = sqlx::query_scalar("SELECT id FROM sessions WHERE revoked_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        let users = sqlx::query_scalar("SELECT id FROM users WHERE disabled_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        Ok((sessions, users))
    }

    /// Creates a session with its first refresh token.
    pub async fn create_session(&self, s: &Session, refresh_hash: &str) -> Result<()> {
        let q = sqlx::query(
            "INSERT INTO sessions (id, user_id, client_id, cluster, created_at, expires_at, refresh_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.client_id)
        .bind(&s.cluster)
        .bind(s.created_at.unix_timestamp())
        .bind(s.expires_at.unix_timestamp())
        .bind(refresh_hash);
        self.run(q).await
    }

    /// Spends `old_hash` and stores `new_hash` for the same session, atomically, if the session
    /// may be refreshed; or detects reuse and revokes the session.
    ///
    /// A token presented again within `next.retry_grace` of its rotation, while its successor
    /// is still current, is a retry ([`RotateOutcome::Retried`]), not reuse.
    pub async fn rotate_refresh(
        &self,
        old_hash: &str,
        next: Successor<'_>,
        now: OffsetDateTime,
        by: Presenter<'_>,
    ) -> Result<RotateOutcome> {
        let t = now.unix_timestamp();
        let job = Rotation {
            old_hash: old_hash.to_owned(),
            new_hash: next.hash.to_owned(),
            successor_sealed: next.sealed.to_owned(),
            at: t,
            client_id: by.client_id.to_owned(),
            client_addr: by.client_addr.to_owned(),
            request_id: by.request_id.to_owned(),
            token_detail: by.token_detail.to_owned(),
        };
        if let Some((session, user)) = self.rotations.rotate(job).await? {
            let user = super::users::user_from_json(&user)?;
            return Ok(RotateOutcome::Rotated(session_from_json(&session)?, user));
        }
        // Slow path: say why.
        let current: Option<SessionRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE refresh_hash = $1"
        ))
        .bind(old_hash)
        .fetch_optional(&self.write)
        .await?;
        if let Some(r) = current {
            return Ok(RotateOutcome::Refused(from_row(r)?));
        }
        if let Some(retried) = self.retry_of(old_hash, next.retry_grace, now, by).await? {
            return Ok(retried);
        }
        let spent: Option<(String, String)> = sqlx::query_as(
            "SELECT s.id, s.user_id FROM spent_refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(old_hash)
        .fetch_optional(&self.write)
        .await?;
        let Some((session_id, user_id)) = spent else {
            return Ok(RotateOutcome::Unknown);
        };
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'refresh token reused' WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(t)
        .bind(&session_id)
        .execute(&self.write)
        .await?;
        Ok(RotateOutcome::Reused {
            session_id,
            user_id,
        })
    }

    /// Forgets the sealed successors of rotations made before `before` (the retry grace is
    /// over for them): the current refresh token is then kept only as a hash again. Returns
    /// how many sessions were cleared.
    pub async fn forget_successors(&self, before: OffsetDateTime) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE sessions SET successor_sealed = NULL, previous_refresh_hash = NULL
             WHERE previous_refresh_hash IS NOT NULL AND refreshed_at < $1",
        )
        .bind(before.unix_timestamp())
        .execute(&self.write)
        .await?
        .rows_affected())
    }

    /// The session that rotated `old_hash` within `grace` and whose successor is still its
    /// current token, if the session and its account are still live.
    async fn retry_of(
        &self,
        old_hash: &str,
        grace: std::time::Duration,
        now: OffsetDateTime,
        by: Presenter<'_>,
    ) -> Result<Option<RotateOutcome>> {
        if grace.is_zero() {
            return Ok(None);
        }
        let t = now.unix_timestamp();
        let since = t.saturating_sub(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
        let user_json = self
            .backend
            .json_array(&super::users::user_columns(self.backend));
        let session_json = self.backend.json_array(COLUMNS);
        let row: Option<(String, Option<String>, String)> = sqlx::query_as(&format!(
            "SELECT {session_json}, successor_sealed, (SELECT {user_json} FROM users u WHERE u.id = sessions.user_id)
             FROM sessions
             WHERE previous_refresh_hash = $1 AND client_id = $2 AND revoked_at IS NULL AND expires_at > $3
               AND refreshed_at >= $4
               AND user_id IN (SELECT id FROM users WHERE disabled_at IS NULL AND (expires_at IS NULL OR expires_at > $3))"
        ))
        .bind(old_hash)
        .bind(by.client_id)
        .bind(t)
        .bind(since)
        .fetch_optional(&self.write)
        .await?;
        let Some((session, Some(successor_sealed), user)) = row else {
            return Ok(None);
        };
        Ok(Some(RotateOutcome::Retried {
            session: session_from_json(&session)?,
            user: super::users::user_from_json(&user)?,
            successor_sealed: crate::secrets::secret::Secret::new(successor_sealed),
        }))
    }

    /// The session whose current refresh token has this hash, and its account (read before a
    /// rotation, to know the groups of the token it will mint).
    pub async fn session_by_refresh(&self, hash: &str) -> Result<Option<(Session, User)>> {
        let user_json = self
            .backend
            .json_array(&super::users::user_columns(self.backend));
        let session_json = self.backend.json_array(COLUMNS);
        let row: Option<(String, String)> = sqlx::query_as(&format!(
            "SELECT {session_json}, (SELECT {user_json} FROM users u WHERE u.id = sessions.user_id)
             FROM sessions WHERE refresh_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some((session, user)) = row else {
            return Ok(None);
        };
        Ok(Some((
            session_from_json(&session)?,
            super::users::user_from_json(&user)?,
        )))
    }

    /// Revokes the session a refresh token (current or spent) belongs to. Returns the session
    /// id and owner if there was one.
    pub async fn revoke_by_refresh(
        &self,
        hash: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(String, String)>> {
        let owner: Option<(String, String)> = sqlx::query_as(
            "SELECT id, user_id FROM sessions WHERE refresh_hash = $1
             UNION SELECT s.id, s.user_id FROM spent_refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.write)
        .await?;
        if let Some((id, _)) = &owner {
            sqlx::query("UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
                .bind(now.unix_timestamp())
                .bind(reason)
                .bind(id)
                .execute(&self.write)
                .await?;
        }
        Ok(owner)
    }

    /// A session by id with its owner's `disabled_at` (`Some(None)` for an enabled account;
    /// the outer `None` when the session does not exist, the inner one also when the account is
    /// gone, which the caller treats as disabled). One statement: the webhook's cache miss.
    pub async fn session_with_owner(&self, id: &str) -> Result<Option<(Session, Option<Owner>)>> {
        type Row = (
            String,
            String,
            String,
            String,
            i64,
            i64,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<i64>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT s.id, s.user_id, s.client_id, s.cluster, s.created_at, s.expires_at, s.revoked_at,
                    u.disabled_at, u.id, u.expires_at
             FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((
            id,
            user_id,
            client_id,
            cluster,
            created,
            expires,
            revoked,
            disabled_at,
            user,
            user_expires_at,
        )) = row
        else {
            return Ok(None);
        };
        let owner = match user {
            Some(_) => Some(Owner {
                disabled_at: opt_ts("users", disabled_at)?,
                expires_at: opt_ts("users", user_expires_at)?,
            }),
            None => None,
        };
        let session = from_row((id, user_id, client_id, cluster, created, expires, revoked))?;
        Ok(Some((session, owner)))
    }

    /// A session by id.
    pub async fn session(&self, id: &str) -> Result<Option<Session>> {
        let row: Option<SessionRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM sessions WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(from_row).transpose()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A successor with no retry grace: a second presentation is reuse at once.
    pub(crate) fn next(hash: &str) -> Successor<'_> {
        Successor {
            hash,
            sealed: "sealed",
            retry_grace: std::time::Duration::ZERO,
        }
    }
    use crate::store::test_support::{add_session, add_user, temp_store};

    const BY: Presenter<'static> = Presenter {
        client_id: "c",
        client_addr: "127.0.0.1",
        request_id: "r",
        token_detail: r#"{"groups":["dev"],"grants":[]}"#,
    };

    #[tokio::test]
    async fn rotation_reuse_detection_and_refusal() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        for (id, name) in [("u1", "a"), ("u2", "b")] {
            add_user(&s, id, name, &[], now).await;
        }
        add_session(&s, "s1", "u1", now, "r1").await;
        let o = s
            .rotate_refresh("r1", next("r2"), now, BY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(o, RotateOutcome::Rotated(ref x, ref u) if x.id == "s1" && u.username == "a"),
            "{o:?}"
        );
        assert_eq!(
            s.audit_events_for("u1").await.unwrap_or_default(),
            ["refresh"]
        );
        let row = s
            .audit_page(0, 10, &crate::store::AuditFilter::default())
            .await
            .unwrap_or_default();
        assert_eq!(
            row[0].facts.detail.as_deref(),
            Some(BY.token_detail),
            "{row:?}"
        );
        assert_eq!(
            row[0].facts.actor.as_deref(),
            Some("a"),
            "the account's name"
        );
        assert_eq!(row[0].facts.client_addr.as_deref(), Some("127.0.0.1"));
        let o = s
            .rotate_refresh("r1", next("r3"), now, BY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(o, RotateOutcome::Reused { ref session_id, .. } if session_id == "s1"),
            "{o:?}"
        );
        // Another process sees the revocation through the feed, and only from its time on.
        let (sessions, users) = s.revoked_since(now).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((sessions, users.len()), (vec!["s1".to_owned()], 0));
        let (sessions, _) = s
            .revoked_since(now + time::Duration::seconds(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(sessions.is_empty(), "{sessions:?}");
        // The live token r2 now belongs to a revoked session.
        let o = s
            .rotate_refresh("r2", next("r4"), now, BY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(o, RotateOutcome::Refused(ref x) if x.revoked_at.is_some()),
            "{o:?}"
        );
        let o = s
            .rotate_refresh("nope", next("r5"), now, BY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(o, RotateOutcome::Unknown));
        // Expired sessions and disabled accounts are refused without spending the token.
        add_session(&s, "s2", "u2", now, "q1").await;
        let later = now + time::Duration::hours(2);
        let o = s
            .rotate_refresh("q1", next("q2"), later, BY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(o, RotateOutcome::Refused(_)), "{o:?}");
        s.disable_user("b", now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let o = s
            .rotate_refresh("q1", next("q2"), now, BY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(o, RotateOutcome::Refused(_)), "{o:?}");
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use crate::store::test_support::{add_session, add_user, temp_store};
    use tests::next;

    /// Many rotations in flight at once are batched; each distinct token rotates exactly once,
    /// and of many presenters of the same token exactly one wins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_rotations_are_exact() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        add_user(&s, "u", "u", &["g"], now).await;
        for i in 0..50 {
            add_session(&s, &format!("s{i}"), "u", now, &format!("t{i}")).await;
        }
        let by = Presenter {
            client_id: "c",
            client_addr: "a",
            request_id: "r",
            token_detail: "{}",
        };
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.rotate_refresh(&format!("t{i}"), next(&format!("n{i}")), now, by)
                    .await
            }));
        }
        for t in tasks {
            let o = t
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                matches!(o, RotateOutcome::Rotated(_, ref u) if u.groups == ["g"]),
                "{o:?}"
            );
        }
        // Ten presenters of one token: exactly one rotation.
        let mut race = Vec::new();
        for j in 0..10 {
            let s = s.clone();
            race.push(tokio::spawn(async move {
                s.rotate_refresh("n7", next(&format!("y{j}")), now, by)
                    .await
            }));
        }
        let mut rotated = 0;
        for t in race {
            match t
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"))
            {
                RotateOutcome::Rotated(..) => rotated += 1,
                RotateOutcome::Reused { .. } | RotateOutcome::Refused(_) => {}
                other @ (RotateOutcome::Unknown | RotateOutcome::Retried { .. }) => {
                    panic!("{other:?}")
                }
            }
        }
        assert_eq!(rotated, 1, "exactly one presenter of a token may rotate it");
    }
}
