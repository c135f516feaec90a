//! Notifications of access requests to a chat tool: a JSON POST (Slack-compatible `text` plus
//! structured fields) to `[notifications] webhook_url`, optionally signed with HMAC-SHA256.
//!
//! Sent off the request path: a background task with a timeout per attempt and a few retries.
//! A failure is logged and counted in `/metrics` (`credential_issuer_notification_failures_total`)
//! and never fails the request that caused it. The body holds no secret: names, roles, reasons
//! and ids only.

use std::sync::Arc;
use std::time::Duration;

use credential_shared::text::Untrusted;
use serde_json::json;

use crate::config::Notifications;
use crate::domain::requests::{format_duration, AccessRequest};

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>` when a secret is configured.
pub const SIGNATURE_HEADER: &str = "X-Credential-Signature";
/// Time allowed for one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per notification.
const ATTEMPTS: u32 = 3;

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Filed, waiting for an approver.
    Filed,
    /// Approved by an approver.
    Approved,
    /// Denied.
    Denied,
    /// Nobody decided in time.
    Expired,
    /// A break-glass role was self-approved: an alert.
    BreakGlass,
}

impl Kind {
    /// The `event` field.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filed => "request.filed",
            Self::Approved => "request.approved",
            Self::Denied => "request.denied",
            Self::Expired => "request.expired",
            Self::BreakGlass => "request.break_glass",
        }
    }
}

/// The JSON body for `kind` of request `r`.
#[must_use]
pub fn body(kind: Kind, r: &AccessRequest, issuer: &str) -> serde_json::Value {
    let scope = if r.namespaces.is_empty() {
        format!("{} (cluster-wide)", r.cluster)
    } else {
        format!("{}/{}", r.cluster, r.namespaces.join(","))
    };
    let reason = r.reason.as_deref().unwrap_or("none given");
    let text =
        match kind {
            Kind::Filed => format!(
            "{} requests {} in {scope} for {}: {reason}. Approve at {issuer}/requests (request {})",
            r.requester, r.role, format_duration(r.duration), r.id
        ),
            Kind::Approved | Kind::Denied => {
                let verb = if kind == Kind::Approved {
                    "approved"
                } else {
                    "denied"
                };
                format!(
                    "{} {verb} {}'s request {} ({} in {scope})",
                    r.decided_by.as_deref().unwrap_or("?"),
                    r.requester,
                    r.id,
                    r.role
                )
            }
            Kind::Expired => format!(
                "{}'s request {} ({} in {scope}) expired undecided",
                r.requester, r.id, r.role
            ),
            Kind::BreakGlass => {
                format!(
            ":rotating_light: BREAK-GLASS: {} took {} in {scope} for {}: {reason} (request {})",
            r.requester, r.role, format_duration(r.duration), r.id
        )
            }
        };
    json!({
        "text": text,
        "event": kind.as_str(),
        "alert": kind == Kind::BreakGlass,
        "request_id": r.id,
        "requester": r.requester,
        "cluster": r.cluster,
        "namespaces": r.namespaces,
        "role": r.role,
        "reason": r.reason,
        "duration_secs": r.duration.as_secs(),
        "status": r.status.as_str(),
        "decided_by": r.decided_by,
        "comment": r.comment,
        "grant_id": r.grant_id,
        "issuer": issuer,
    })
}

/// `sha256=<hex>` of `body` under `key`.
#[must_use]
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&k, body);
    format!("sha256={}", crate::secrets::secret::hex(tag.as_ref()))
}

/// Sends notifications, if configured.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Option<Arc<Notifications>>,
    issuer: String,
}

impl Notifier {
    /// A notifier for `target` (`None`: notifications are off).
    #[must_use]
    pub fn new(target: Option<Notifications>, issuer: &str) -> Self {
        Self {
            target: target.map(Arc::new),
            issuer: issuer.to_owned(),
        }
    }

    /// Sends in the background; returns at once. The handle is for callers that must wait
    /// (the admin CLI exits right after).
    #[must_use = "the handle lets a caller that is about to exit wait for delivery"]
    pub fn send(
        &self,
        kind: Kind,
        r: &AccessRequest,
        state: Option<crate::service::state::AppState>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let target = Arc::clone(self.target.as_ref()?);
        let payload = body(kind, r, &self.issuer).to_string();
        let request_id = r.id.clone();
        Some(tokio::task::spawn_blocking(move || {
            let delivered = deliver(&target, &payload, kind, &request_id);
            if let Some(state) = state {
                state.metrics().notification(delivered);
            }
        }))
    }
}

fn deliver(target: &Notifications, payload: &str, kind: Kind, request_id: &str) -> bool {
    let agent = ureq::AgentBuilder::new()
        .timeout(ATTEMPT_TIMEOUT)
        .redirects(0)
        .build();
    for attempt in 1..=ATTEMPTS {
        let mut req = agent
            .post(target.webhook_url.as_str())
            .set("Content-Type", "application/json");
        if let Some(secret) = &target.webhook_secret {
            req = req.set(
                SIGNATURE_HEADER,
                &signature(secret.expose().as_bytes(), payload.as_bytes()),
            );
        }
        match req.send_string(payload) {
            Ok(_) => {
                tracing::debug!(event = kind.as_str(), request = %request_id, "notification sent");
                return true;
            }
            Err(e) => {
                // The error names the URL's host and the status, never a secret.
                let why = match &e {
                    ureq::Error::Status(code, _) => format!("status {code}"),
                    ureq::Error::Transport(t) => t.kind().to_string(),
                };
                tracing::warn!(event = kind.as_str(), request = %request_id, attempt, error = %Untrusted::long(&why), "notification failed");
                if attempt < ATTEMPTS {
                    std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::requests::RequestStatus;
    use time::macros::datetime;

    #[test]
    fn bodies_carry_the_fields_and_break_glass_is_an_alert() {
        let r = AccessRequest {
            id: "abc123".into(),
            requester: "alice".into(),
            cluster: "prod".into(),
            role: "prod-exec".into(),
            namespaces: vec!["payments".into()],
            reason: Some("OOM in payment-service".into()),
            duration: Duration::from_secs(1800),
            created_at: datetime!(2026-06-01 12:00 UTC),
            expires_at: datetime!(2026-06-01 13:00 UTC),
            status: RequestStatus::Pending,
            decided_by: None,
            comment: None,
            decided_at: None,
            grant_id: None,
            client_addr: Some("10.0.0.1".into()),
        };
        let b = body(Kind::Filed, &r, "https://issuer.example");
        assert_eq!(b["event"], "request.filed");
        assert_eq!(b["alert"], false);
        assert_eq!(b["role"], "prod-exec");
        assert_eq!(b["namespaces"][0], "payments");
        assert_eq!(
            b["text"],
            "alice requests prod-exec in prod/payments for 30m: OOM in payment-service. Approve at https://issuer.example/requests (request abc123)"
        );
        let alert = body(Kind::BreakGlass, &r, "https://issuer.example");
        assert_eq!(alert["alert"], true);
        assert!(alert["text"]
            .as_str()
            .unwrap_or_default()
            .contains("BREAK-GLASS"));
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
