//! What both grants of `POST /oauth/token` share: what a token carries, its signing into the
//! token response, and the refresh tokens themselves.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use credential_shared::oauth::{OAuthErrorCode as E, TokenResponse};
use time::OffsetDateTime;

use crate::domain::tokens;
use crate::http::OAuthReply;
use crate::secrets::secret::{random_token, Secret};
use crate::service::state::AppState;
use crate::store::{AuditEvent, Session, User};

/// Prefix of the refresh tokens of sessions whose person is re-checked at an upstream provider.
/// (Tokens are base64url, which has no `.`, so the prefix cannot occur in a local token.)
pub(super) const UPSTREAM_REFRESH_PREFIX: &str = "up.";

pub(super) fn new_refresh_token(upstream: bool) -> Secret {
    let t = random_token(32);
    if upstream {
        Secret::new(format!("{UPSTREAM_REFRESH_PREFIX}{}", t.expose()))
    } else {
        t
    }
}

/// What a token for `user` in a cluster will carry: the policy's groups, the grants in force
/// (as groups and the `grants` claim), and the `detail` JSON of its `login` or `refresh` audit
/// row (`{"session": .., "groups": [..], "grants": [..]}`), which `audit access` reads to say
/// which groups reached a cluster. Computed before a refresh's rotation, whose statement
/// writes that row.
pub(super) struct Contents {
    groups: Vec<String>,
    grants: Vec<crate::domain::grants::Grant>,
    pub(super) detail: String,
    /// Set when the token goes out on an upstream's offline grace: the last check there.
    pub(super) upstream_checked_at: Option<OffsetDateTime>,
}

pub(super) async fn contents(
    state: &AppState,
    user: &User,
    session: &Session,
    now: OffsetDateTime,
) -> Result<Contents, OAuthReply> {
    let cfg = state.config();
    // The policy decides which Kubernetes groups the person's groups become in this cluster.
    let mut groups = cfg.policy.map(&user.groups, &session.cluster).groups();
    // Grants in force now become groups and the `grants` claim (issue 5).
    let grants = state
        .store()
        .active_grants_for(&user.username, &user.groups, &session.cluster, now)
        .await?;
    let mut ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut all = groups.clone();
    all.extend(
        grants
            .iter()
            .flat_map(crate::domain::grants::Grant::token_groups),
    );
    all.sort();
    all.dedup();
    let detail =
        serde_json::json!({ "session": session.id, "groups": all, "grants": ids }).to_string();
    groups.sort();
    Ok(Contents {
        groups,
        grants,
        detail,
        upstream_checked_at: None,
    })
}

/// Signs an access token for `user` in `session` carrying `contents` and builds the token
/// response.
pub(super) fn mint(
    state: &AppState,
    user: &User,
    session: &Session,
    refresh: &Secret,
    contents: &Contents,
    now: OffsetDateTime,
) -> Result<Response, OAuthReply> {
    let cfg = state.config();
    let Some(cluster) = cfg.cluster(&session.cluster) else {
        // The cluster was removed from the config after the session began.
        return Err(OAuthReply::bad(
            E::InvalidGrant,
            "the cluster of this session is no longer configured",
        ));
    };
    let jti = random_token(16);
    let mut claims = tokens::access_claims(
        &tokens::Subject {
            user_id: &user.id,
            username: &user.username,
            email: user.email.as_deref(),
            groups: &contents.groups,
        },
        tokens::Minting {
            issuer: cfg.issuer(),
            cluster: &cluster.name,
            audience: &cluster.audience,
            session_id: &session.id,
            jti: jti.expose(),
            now,
            ttl: cfg.token_ttl,
            // A token never outlives its session, nor its account.
            session_expires_at: user
                .expires_at
                .map_or(session.expires_at, |e| e.min(session.expires_at)),
        },
    );
    tokens::add_grants(&mut claims, &contents.grants);
    claims.upstream_checked_at = contents
        .upstream_checked_at
        .map(OffsetDateTime::unix_timestamp);
    let jwt = state.signer().sign(&claims)?;
    let body = TokenResponse {
        access_token: jwt,
        token_type: "Bearer".into(),
        expires_in: u64::try_from(claims.exp - claims.iat).unwrap_or(0),
        refresh_token: refresh.expose().to_owned(),
        session_expires_at: Some(session.expires_at.unix_timestamp()),
        api_server: cluster.published_server(),
        issued_token_type: None,
    };
    Ok((
        StatusCode::OK,
        [(axum::http::header::PRAGMA, "no-cache")],
        Json(body),
    )
        .into_response())
}

/// The audit row of a login's token: who, which cluster, from where, and the groups and
/// grants the token carries. No token is handed out without it: if the row cannot be written
/// the request fails. (A refresh's row is written by the rotating statement.)
pub(super) async fn audit_login(
    state: &AppState,
    user: &User,
    cluster: &str,
    addr: &str,
    rid: &str,
    contents: &Contents,
    now: OffsetDateTime,
) -> Result<(), OAuthReply> {
    let e = AuditEvent {
        event: "login",
        actor: Some(user.username.clone()),
        subject: Some(user.id.clone()),
        cluster: Some(cluster.to_owned()),
        client_addr: Some(addr.to_owned()),
        request_id: Some(rid.to_owned()),
        detail: Some(contents.detail.clone()),
        ..AuditEvent::default()
    };
    state.store().audit(&e, now).await?;
    Ok(())
}
