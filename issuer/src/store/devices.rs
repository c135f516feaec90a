//! Device authorizations (RFC 8628): created by the plugin, decided by a person, spent once.

use time::OffsetDateTime;

use super::{opt_ts, ts, Error, Result, Store};
use crate::domain::device::Status;

/// A stored device authorization. Holds no secret: codes are stored hashed.
#[derive(Debug, Clone)]
pub struct Device {
    /// Row id (internal; never shown to anyone as a credential).
    pub id: String,
    /// Client that asked.
    pub client_id: String,
    /// Cluster the credential is for.
    pub cluster: String,
    /// Requested scope.
    pub scope: Option<String>,
    /// Address the request came from, shown on the consent page.
    pub client_addr: String,
    /// The `User-Agent` the client sent, as given (cut to
    /// [`MAX_USER_AGENT`](crate::domain::origin::MAX_USER_AGENT) characters); escaped where it
    /// is shown.
    pub user_agent: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Expiry.
    pub expires_at: OffsetDateTime,
    /// Minimum poll interval, seconds.
    pub interval_secs: i64,
    /// Last poll.
    pub last_poll_at: Option<OffsetDateTime>,
    /// Status.
    pub status: Status,
    /// Who decided (when decided).
    pub user_id: Option<String>,
}

/// What `create_device` needs.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Row id.
    pub id: String,
    /// SHA-256 of the device code.
    pub device_code_hash: String,
    /// SHA-256 of the normalized user code.
    pub user_code_hash: String,
    /// Client.
    pub client_id: String,
    /// Cluster.
    pub cluster: String,
    /// Scope.
    pub scope: Option<String>,
    /// Requesting address.
    pub client_addr: String,
    /// The client's `User-Agent`, already bounded.
    pub user_agent: Option<String>,
    /// Expiry.
    pub expires_at: OffsetDateTime,
    /// Poll interval.
    pub interval_secs: i64,
}

type DeviceRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
);

const COLUMNS: &str = "id, client_id, cluster, scope, client_addr, created_at, expires_at, interval_secs, last_poll_at, status, user_id, user_agent";

fn from_row(r: DeviceRow) -> Result<Device> {
    let status = Status::parse(&r.9).ok_or_else(|| Error::Corrupt {
        table: "device_codes",
        detail: format!("unknown status {:?}", r.9),
    })?;
    Ok(Device {
        id: r.0,
        client_id: r.1,
        cluster: r.2,
        scope: r.3,
        client_addr: r.4,
        created_at: ts("device_codes", r.5)?,
        expires_at: ts("device_codes", r.6)?,
        interval_secs: r.7,
        last_poll_at: opt_ts("device_codes", r.8)?,
        status,
        user_id: r.10,
        user_agent: r.11,
    })
}

impl Store {
    /// Stores a new pending authorization. A user-code collision (1 in 2.6e10) is a `Conflict`;
    /// the caller draws a new code.
    pub async fn create_device(&self, d: &NewDevice, now: OffsetDateTime) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO device_codes (id, device_code_hash, user_code_hash, client_id, cluster, scope, client_addr, created_at, expires_at, interval_secs, status, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11)",
        )
        .bind(&d.id)
        .bind(&d.device_code_hash)
        .bind(&d.user_code_hash)
        .bind(&d.client_id)
        .bind(&d.cluster)
        .bind(&d.scope)
        .bind(&d.client_addr)
        .bind(now.unix_timestamp())
        .bind(d.expires_at.unix_timestamp())
        .bind(d.interval_secs)
        .bind(&d.user_agent)
        .execute(&self.write)
        .await;
        match r {
            Err(e) if super::is_unique_violation(&e) => Err(Error::Conflict("device code".into())),
            r => r.map(|_| ()).map_err(Error::from),
        }
    }

    /// The authorization whose device code hashes to `hash`.
    pub async fn device_by_code_hash(&self, hash: &str) -> Result<Option<Device>> {
        self.device_where("device_code_hash", hash).await
    }

    /// The authorization whose user code hashes to `hash`.
    pub async fn device_by_user_code_hash(&self, hash: &str) -> Result<Option<Device>> {
        self.device_where("user_code_hash", hash).await
    }

    /// The authorization with row id `id`.
    pub async fn device_by_id(&self, id: &str) -> Result<Option<Device>> {
        self.device_where("id", id).await
    }

    /// The authorization whose `column` (a unique column, named by the code) is `value`.
    async fn device_where(&self, column: &'static str, value: &str) -> Result<Option<Device>> {
        let row: Option<DeviceRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM device_codes WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.map(from_row).transpose()
    }

    /// Records a poll at `now`. Returns `Some(new interval)` when it came sooner than the
    /// interval after the previous poll that was in time (the interval grows by 5 s, RFC 8628
    /// section 3.5), else `None`. The check and the write are one conditional statement, so of
    /// a burst of concurrent polls within one interval exactly one is in time, on any replica.
    pub async fn claim_poll(&self, id: &str, now: OffsetDateTime) -> Result<Option<i64>> {
        let t = now.unix_timestamp();
        let in_time = sqlx::query(
            "UPDATE device_codes SET last_poll_at = $1
             WHERE id = $2 AND (last_poll_at IS NULL OR last_poll_at + interval_secs <= $1)",
        )
        .bind(t)
        .bind(id);
        if self.won(in_time).await? {
            return Ok(None);
        }
        let interval: Option<(i64,)> = sqlx::query_as(
            "UPDATE device_codes SET interval_secs = interval_secs + 5, last_poll_at = $1
             WHERE id = $2 RETURNING interval_secs",
        )
        .bind(t)
        .bind(id)
        .fetch_optional(&self.write)
        .await?;
        Ok(Some(interval.map_or(5, |(i,)| i)))
    }

    /// Records the person's decision. Only a pending, unexpired authorization can be decided;
    /// returns whether this call decided it.
    pub async fn decide_device(
        &self,
        id: &str,
        user_id: &str,
        approve: bool,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let status = if approve {
            Status::Approved
        } else {
            Status::Denied
        };
        self.won(
            sqlx::query(
                "UPDATE device_codes SET status = $1, user_id = $2, decided_at = $3 WHERE id = $4 AND status = 'pending' AND expires_at > $5",
            )
            .bind(status.as_str())
            .bind(user_id)
            .bind(now.unix_timestamp())
            .bind(id)
            .bind(now.unix_timestamp()),
        )
        .await
    }

    /// Spends an approved authorization; true for exactly one caller.
    pub async fn consume_device(&self, id: &str) -> Result<bool> {
        self.won(
            sqlx::query(
                "UPDATE device_codes SET status = 'consumed' WHERE id = $1 AND status = 'approved'",
            )
            .bind(id),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{add_user, temp_store};

    #[tokio::test]
    async fn decide_once_and_consume_once() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        add_user(&s, "u1", "a", &[], now).await;
        let d = NewDevice {
            id: "d1".into(),
            device_code_hash: "dch".into(),
            user_code_hash: "uch".into(),
            client_id: "c".into(),
            cluster: "k".into(),
            scope: None,
            client_addr: "127.0.0.1".into(),
            user_agent: Some("kubectl-credential/1 <b>".into()),
            expires_at: now + time::Duration::minutes(10),
            interval_secs: 5,
        };
        s.create_device(&d, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            s.create_device(&d, now).await,
            Err(Error::Conflict(_))
        ));
        assert!(
            !s.consume_device("d1").await.unwrap_or(true),
            "pending cannot be consumed"
        );
        assert!(s
            .decide_device("d1", "u1", true, now)
            .await
            .unwrap_or(false));
        assert!(
            !s.decide_device("d1", "u1", false, now)
                .await
                .unwrap_or(true),
            "decided twice"
        );
        assert!(s.consume_device("d1").await.unwrap_or(false));
        assert!(
            !s.consume_device("d1").await.unwrap_or(true),
            "consumed twice"
        );
        let got = s.device_by_user_code_hash("uch").await.ok().flatten();
        assert_eq!(
            got.as_ref().and_then(|d| d.user_agent.as_deref()),
            Some("kubectl-credential/1 <b>"),
            "the user agent is stored as given"
        );
        assert_eq!(got.map(|d| d.status), Some(Status::Consumed));
    }
}
