//! The reads behind the auditor's reports (`audit access`, `report stale`): token events of a
//! cluster in a window, and each person's newest token per cluster.

use time::OffsetDateTime;

use super::{ts, Result, Store};
use crate::domain::access::{LastToken, TokenEvent};

/// `at, event, subject, actor, detail` of a token event.
type TokenRow = (i64, String, Option<String>, Option<String>, Option<String>);

/// The audit events that record a minted token: a person's login or refresh, a CI job's token
/// exchange, a machine client's signed assertion.
const TOKEN_EVENTS: &str = "('login', 'refresh', 'exchange', 'machine.token')";

impl Store {
    /// The token events (`login`, `refresh`, `exchange`, `machine.token`) of `cluster` in `[since, until)`, oldest first.
    pub async fn token_events(
        &self,
        cluster: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<TokenEvent>> {
        let rows: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT at, event, subject, actor, detail FROM audit_events
                 WHERE event IN {TOKEN_EVENTS} AND cluster = $1 AND at >= $2 AND at < $3
                 ORDER BY seq"
        ))
        .bind(cluster)
        .bind(since.unix_timestamp())
        .bind(until.unix_timestamp())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(at, event, subject, actor, detail)| {
                Ok(TokenEvent {
                    at: ts("audit_events", at)?,
                    event,
                    user_id: subject.unwrap_or_default(),
                    username: actor,
                    cluster: cluster.to_owned(),
                    groups: TokenEvent::groups_from_detail(detail.as_deref()),
                })
            })
            .collect()
    }

    /// Each account's newest token event per cluster (people and machine identities).
    pub async fn last_tokens(&self) -> Result<Vec<LastToken>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
            "SELECT subject, cluster, MAX(at) FROM audit_events
             WHERE event IN {TOKEN_EVENTS} AND subject IS NOT NULL AND cluster IS NOT NULL
             GROUP BY subject, cluster"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(user_id, cluster, at)| {
                Ok(LastToken {
                    user_id,
                    cluster,
                    at: ts("audit_events", at)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use time::macros::datetime;

    use super::*;
    use crate::store::test_support::temp_store;
    use crate::store::AuditEvent;

    fn token(event: &'static str, who: &str, cluster: &str, groups: &str) -> AuditEvent {
        AuditEvent {
            event,
            actor: Some(who.into()),
            subject: Some(format!("id-{who}")),
            cluster: Some(cluster.into()),
            detail: Some(format!(r#"{{"groups":[{groups}],"grants":[]}}"#)),
            ..AuditEvent::default()
        }
    }

    #[tokio::test]
    async fn token_events_and_last_tokens_read_the_events_that_mint_tokens_only() {
        let (store, _dir) = temp_store().await;
        let t = datetime!(2026-11-01 00:00 UTC);
        let h = time::Duration::hours;
        store
            .audit(&token("login", "alice", "prod", r#""dev""#), t)
            .await
            .unwrap();
        store
            .audit(&token("refresh", "alice", "prod", r#""dev""#), t + h(2))
            .await
            .unwrap();
        store
            .audit(&token("login", "bob", "staging", ""), t + h(1))
            .await
            .unwrap();
        store
            .audit(&token("login.failed", "carl", "prod", ""), t + h(1))
            .await
            .unwrap();
        // Machine identities: a CI job's exchange and a machine client's token count too.
        store
            .audit(
                &token("exchange", "ci:github:acme/deploy", "prod", ""),
                t + h(1),
            )
            .await
            .unwrap();
        store
            .audit(
                &token("machine.token", "backup-cron", "staging", ""),
                t + h(1),
            )
            .await
            .unwrap();
        store
            .audit(
                &token("exchange.refused", "ci:github:evil", "prod", ""),
                t + h(1),
            )
            .await
            .unwrap();

        let events = store.token_events("prod", t, t + h(2)).await.unwrap();
        let who: Vec<Option<&str>> = events.iter().map(|e| e.username.as_deref()).collect();
        assert_eq!(who, vec![Some("alice"), Some("ci:github:acme/deploy")]);
        assert_eq!(events[0].groups, vec!["dev"]);
        assert_eq!(
            store.token_events("prod", t, t + h(3)).await.unwrap().len(),
            3
        );

        let mut last = store.last_tokens().await.unwrap();
        last.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        let got: Vec<(&str, &str, OffsetDateTime)> = last
            .iter()
            .map(|l| (l.user_id.as_str(), l.cluster.as_str(), l.at))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id-alice", "prod", t + h(2)),
                ("id-backup-cron", "staging", t + h(1)),
                ("id-bob", "staging", t + h(1)),
                ("id-ci:github:acme/deploy", "prod", t + h(1)),
            ]
        );
    }
}
