//! Machine identities' rows: the accounts of workload rules and registered machine clients
//! (`users.kind`), a machine's public key and clusters, and the single-use `jti`s of the
//! tokens the machine grants accept.

use time::OffsetDateTime;

use super::{is_unique_violation, opt_ts, ts, Error, Result, Store};
use crate::secrets::secret::random_token;

/// What kind of account a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person (every account before machine identities).
    Person,
    /// A `[[workloads]]` rule of the configuration: `workload:<name>`.
    Workload,
    /// A registered machine client with a key: `machine:<name>`.
    Machine,
}

impl PrincipalKind {
    /// The `users.kind` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Workload => "workload",
            Self::Machine => "machine",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self> {
        match s {
            "person" => Ok(Self::Person),
            "workload" => Ok(Self::Workload),
            "machine" => Ok(Self::Machine),
            other => Err(Error::Corrupt {
                table: "users",
                detail: format!(
                    "unknown kind {:?}",
                    other.chars().take(16).collect::<String>()
                ),
            }),
        }
    }
}

/// The account behind a machine grant's session: enough to decide whether it may get a token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `users.id`, the token's `sub`.
    pub id: String,
    /// `workload:<name>` or `machine:<name>`.
    pub username: String,
    /// Its kind.
    pub kind: PrincipalKind,
    /// Set when disabled.
    pub disabled_at: Option<OffsetDateTime>,
    /// End date.
    pub expires_at: Option<OffsetDateTime>,
}

/// A registered machine client.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The account.
    pub principal: Principal,
    /// Its Kubernetes groups, sorted.
    pub groups: Vec<String>,
    /// Clusters it may get tokens for.
    pub clusters: Vec<String>,
    /// The uncompressed P-256 point (`04 || x || y`).
    pub public_key: Vec<u8>,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// When the key was set last.
    pub rotated_at: OffsetDateTime,
}

/// What `add_machine` needs (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewMachine {
    /// `machine:<name>`.
    pub username: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Clusters.
    pub clusters: Vec<String>,
    /// The uncompressed P-256 point.
    pub public_key: Vec<u8>,
    /// End date.
    pub expires_at: OffsetDateTime,
}

type PrincipalRow = (String, String, String, Option<i64>, Option<i64>);

fn principal_from_row(row: PrincipalRow) -> Result<Principal> {
    let (id, username, kind, disabled_at, expires_at) = row;
    Ok(Principal {
        id,
        username,
        kind: PrincipalKind::parse(&kind)?,
        disabled_at: opt_ts("users", disabled_at)?,
        expires_at: opt_ts("users", expires_at)?,
    })
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| Error::Corrupt {
            table: "machine_keys",
            detail: e.to_string(),
        })
}

/// `p`, if it is of `kind`: a person's account is never a workload's, whatever the names.
fn of_kind(p: Principal, kind: PrincipalKind, username: &str) -> Result<Principal> {
    if p.kind != kind {
        return Err(Error::Conflict(format!(
            "account {username:?} is a {}",
            p.kind.as_str()
        )));
    }
    Ok(p)
}

impl Store {
    /// The account of `username` of `kind`, created (enabled, without groups) if it does not
    /// exist yet: a workload rule's account appears with its first exchange, or when an
    /// operator disables it first. Usually one read; the first use is one upsert and one read,
    /// and concurrent first uses agree (the upsert does nothing for all but one).
    pub async fn principal(
        &self,
        kind: PrincipalKind,
        username: &str,
        now: OffsetDateTime,
    ) -> Result<Principal> {
        let known: Option<PrincipalRow> = sqlx::query_as(
            "SELECT id, username, kind, disabled_at, expires_at FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = known {
            return of_kind(principal_from_row(row)?, kind, username);
        }
        sqlx::query(
            "INSERT INTO users (id, username, kind, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING",
        )
        .bind(random_token(16).expose())
        .bind(username)
        .bind(kind.as_str())
        .bind(now.unix_timestamp())
        .execute(&self.write)
        .await?;
        let row: PrincipalRow = sqlx::query_as(
            "SELECT id, username, kind, disabled_at, expires_at FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_one(&self.write)
        .await?;
        of_kind(principal_from_row(row)?, kind, username)
    }

    /// Enables a disabled account again (`workload enable`, `machine enable`). Its old sessions
    /// stay revoked. Returns whether it was disabled.
    pub async fn enable_principal(&self, username: &str) -> Result<bool> {
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("account {username:?}")));
        }
        self.won(
            sqlx::query(
                "UPDATE users SET disabled_at = NULL WHERE username = $1 AND disabled_at IS NOT NULL",
            )
            .bind(username),
        )
        .await
    }

    /// Every account of `kind`, by name.
    pub async fn principals(&self, kind: PrincipalKind) -> Result<Vec<Principal>> {
        let rows: Vec<PrincipalRow> = sqlx::query_as(
            "SELECT id, username, kind, disabled_at, expires_at FROM users WHERE kind = $1 ORDER BY username",
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(principal_from_row).collect()
    }

    /// Registers a machine client: its account, groups and key, in one transaction.
    pub async fn add_machine(&self, m: &NewMachine, now: OffsetDateTime) -> Result<()> {
        let id = random_token(16);
        let t = now.unix_timestamp();
        let mut tx = super::tx::WriteTx::begin(&self.write, self.backend).await?;
        let r = sqlx::query(
            "INSERT INTO users (id, username, kind, created_at, expires_at) VALUES ($1, $2, 'machine', $3, $4)",
        )
        .bind(id.expose())
        .bind(&m.username)
        .bind(t)
        .bind(m.expires_at.unix_timestamp())
        .execute(&mut *tx)
        .await;
        match r {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::Conflict(format!("machine {:?}", m.username)))
            }
            r => r?,
        };
        for g in &m.groups {
            sqlx::query(
                "INSERT INTO user_groups (user_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(id.expose())
            .bind(g)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO machine_keys (user_id, public_key, clusters, rotated_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.expose())
        .bind(b64(&m.public_key))
        .bind(m.clusters.join(","))
        .bind(t)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The machine client called `username`.
    pub async fn machine(&self, username: &str) -> Result<Option<Machine>> {
        Ok(self
            .machines_where("u.username = $1", Some(username))
            .await?
            .pop())
    }

    /// Every machine client, by name.
    pub async fn list_machines(&self) -> Result<Vec<Machine>> {
        self.machines_where("1 = 1", None).await
    }

    async fn machines_where(&self, filter: &str, arg: Option<&str>) -> Result<Vec<Machine>> {
        type Row = (
            String,
            String,
            String,
            Option<i64>,
            Option<i64>,
            i64,
            String,
            String,
            i64,
            Option<String>,
        );
        let groups = match self.backend {
            super::Backend::Sqlite => "(SELECT group_concat(group_name, char(10)) FROM (SELECT group_name FROM user_groups WHERE user_id = u.id ORDER BY group_name))",
            super::Backend::Postgres => "(SELECT string_agg(group_name, E'\\n' ORDER BY group_name) FROM user_groups WHERE user_id = u.id)",
        };
        let sql = format!(
            "SELECT u.id, u.username, u.kind, u.disabled_at, u.expires_at, u.created_at, \
             k.public_key, k.clusters, k.rotated_at, {groups} \
             FROM users u JOIN machine_keys k ON k.user_id = u.id WHERE {filter} ORDER BY u.username"
        );
        let mut q = sqlx::query_as::<_, Row>(&sql);
        if let Some(a) = arg {
            q = q.bind(a);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|r| {
                let (
                    id,
                    username,
                    kind,
                    disabled,
                    expires,
                    created,
                    key,
                    clusters,
                    rotated,
                    groups,
                ) = r;
                Ok(Machine {
                    principal: principal_from_row((id, username, kind, disabled, expires))?,
                    groups: groups
                        .map(|g| g.split('\n').map(str::to_owned).collect())
                        .unwrap_or_default(),
                    clusters: clusters
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    public_key: unb64(&key)?,
                    created_at: ts("users", created)?,
                    rotated_at: ts("machine_keys", rotated)?,
                })
            })
            .collect()
    }

    /// Replaces a machine's public key: assertions signed with the old one stop at once.
    pub async fn rotate_machine_key(
        &self,
        username: &str,
        public_key: &[u8],
        now: OffsetDateTime,
    ) -> Result<()> {
        let changed = self
            .won(
                sqlx::query(
                    "UPDATE machine_keys SET public_key = $1, rotated_at = $2 WHERE user_id = (SELECT id FROM users WHERE username = $3 AND kind = 'machine')",
                )
                .bind(b64(public_key))
                .bind(now.unix_timestamp())
                .bind(username),
            )
            .await?;
        if changed {
            Ok(())
        } else {
            Err(Error::NotFound(format!("machine {username:?}")))
        }
    }

    /// Reserves `jti` of a token from `issuer` until `expires_at`: `true` for the first use,
    /// `false` for every later one while the reservation lasts, on every replica (the primary
    /// key decides; there is no read before the write).
    pub async fn reserve_jti(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool> {
        self.won(
            sqlx::query(
                "INSERT INTO used_jtis (issuer, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(issuer)
            .bind(jti)
            .bind(expires_at.unix_timestamp()),
        )
        .await
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use time::Duration;

    #[tokio::test]
    async fn a_principal_is_created_once_and_keeps_its_kind() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        let a = s
            .principal(PrincipalKind::Workload, "workload:deploy", now)
            .await
            .unwrap();
        let b = s
            .principal(PrincipalKind::Workload, "workload:deploy", now)
            .await
            .unwrap();
        assert_eq!(a.id, b.id);
        assert!(a.disabled_at.is_none());
        let wrong = s
            .principal(PrincipalKind::Machine, "workload:deploy", now)
            .await;
        assert!(matches!(wrong, Err(Error::Conflict(_))), "{wrong:?}");
        s.disable_user("workload:deploy", now).await.unwrap();
        let c = s
            .principal(PrincipalKind::Workload, "workload:deploy", now)
            .await
            .unwrap();
        assert!(c.disabled_at.is_some());
        assert!(s.enable_principal("workload:deploy").await.unwrap());
        assert!(!s.enable_principal("workload:deploy").await.unwrap());
        assert_eq!(
            s.principals(PrincipalKind::Workload).await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn machines_round_trip_and_rotate() {
        let (s, _d) = temp_store().await;
        let now = OffsetDateTime::now_utc();
        let m = NewMachine {
            username: "machine:nightly".into(),
            groups: vec!["backup".into(), "readers".into()],
            clusters: vec!["prod".into(), "staging".into()],
            public_key: vec![4; 65],
            expires_at: now + Duration::days(30),
        };
        s.add_machine(&m, now).await.unwrap();
        assert!(matches!(
            s.add_machine(&m, now).await,
            Err(Error::Conflict(_))
        ));
        let got = s.machine("machine:nightly").await.unwrap().unwrap();
        assert_eq!(got.groups, m.groups);
        assert_eq!(got.clusters, m.clusters);
        assert_eq!(got.public_key, m.public_key);
        assert_eq!(got.principal.kind, PrincipalKind::Machine);
        s.rotate_machine_key("machine:nightly", &[4; 65].map(|b: u8| b + 1), now)
            .await
            .unwrap();
        let got = s.machine("machine:nightly").await.unwrap().unwrap();
        assert_eq!(got.public_key, vec![5; 65]);
        assert!(s.machine("machine:other").await.unwrap().is_none());
        assert!(matches!(
            s.rotate_machine_key("machine:other", &[4; 65], now).await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(s.list_machines().await.unwrap().len(), 1);
    }

    /// The reservation holds under a burst: of many concurrent first uses, exactly one wins.
    #[tokio::test]
    async fn a_jti_is_reserved_once_under_a_burst() {
        let (s, _d) = temp_store().await;
        let exp = OffsetDateTime::now_utc() + Duration::minutes(5);
        let tries = (0..16).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.reserve_jti("https://ci", "j-1", exp).await.unwrap() })
        });
        let mut won = 0;
        for t in tries {
            won += usize::from(t.await.unwrap());
        }
        assert_eq!(won, 1);
        // Another issuer's token may carry the same jti.
        assert!(s.reserve_jti("https://other", "j-1", exp).await.unwrap());
        // Purged once expired, the pair is free again.
        s.purge_expired(exp + Duration::seconds(1)).await.unwrap();
        assert!(s.reserve_jti("https://ci", "j-1", exp).await.unwrap());
    }
}
