//! Access requests over HTTP: the plugin's JSON API (`/api/v1/requests`, authenticated with
//! the person's access token as `Bearer`) and the approvers' page (`/requests`, a signed-in
//! browser session with CSRF-protected forms).

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use credential_shared::api::{
    AccessRequestList, ApiErrorBody, NewAccessRequest, RoleInfo, RoleList,
};
use credential_shared::oauth::AccessTokenClaims;
use credential_shared::text::Untrusted;
use serde::Deserialize;

use super::browser::{current, form, sign_in_then, verified};
use super::{request_templates, ClientAddr, PageError, RequestId};
use crate::domain::requests::{format_duration, is_approver, requestable, Decider, DecisionError};
use crate::service::notify::Kind;
use crate::service::requests::{self as svc, Error, Notice, Origin};
use crate::service::state::AppState;
use crate::store::RequestFilter;

/// The approvals page; a sign-in started here comes back to it.
const PATH: &str = "/requests";

/// An error of the JSON API.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid access token of a live session is required; run `kubectl credential login`",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ApiErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        });
        if self.status == StatusCode::UNAUTHORIZED {
            (
                self.status,
                [(
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="credential-issuer", error="invalid_token""#,
                )],
                body,
            )
                .into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Filing(_) | Error::Grant(_) | Error::CommentRequired => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
            }
            Error::Decision(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
            Error::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            Error::Store(e) => Self::from(e),
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        tracing::error!(error = %e, "requests api: database error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error; see the issuer's log",
        )
    }
}

impl From<crate::service::review::Error> for ApiError {
    fn from(e: crate::service::review::Error) -> Self {
        if let crate::service::review::Error::DatabaseDown(fault) = e {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                format!(
                    "the issuer's database is unavailable ({}); try again in a few seconds",
                    fault.describe()
                ),
            );
        }
        tracing::error!(error = %Untrusted::long(&e), "requests api: authentication failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error; see the issuer's log",
        )
    }
}

/// The caller's verified token claims, from `Authorization: Bearer`. The token itself is never
/// logged or echoed.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<AccessTokenClaims, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 8192)
        .ok_or_else(ApiError::unauthorized)?;
    let claims = crate::service::review::authenticate_bearer(state, token)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok((*claims).clone())
}

/// Sends the notifications of a committed operation in the background.
pub fn notify(state: &AppState, notices: Vec<Notice>) {
    let notifier = crate::service::notify::Notifier::new(
        state.config().notifications.clone(),
        state.config().issuer(),
    );
    if notices.is_empty() {
        return;
    }
    for (kind, r) in notices {
        if kind == Kind::BreakGlass {
            state.metrics().break_glass();
        }
        let _ = notifier.send(kind, &r, Some(state.clone()));
    }
    state.reconcile_wakeup().grants_changed();
}

/// `POST /api/v1/requests`.
pub(super) async fn file(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    body: Result<Json<NewAccessRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let claims = caller(&state, &headers).await?;
    let Json(body) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let cfg = state.config();
    let now = state.now();
    let filed = state
        .store()
        .reserve_attempt(
            &format!("request:user:{}", claims.sub),
            now,
            cfg.rate_limits.window,
            cfg.request_file_limit,
        )
        .await?;
    if !filed.allowed {
        state
            .metrics()
            .failure(crate::telemetry::metrics::Failure::RateLimited);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many access requests; try again in {} s",
                filed.retry_after.as_secs()
            ),
        ));
    }
    let origin = origin(addr, rid);
    let (r, notices) = svc::file(
        state.store(),
        cfg,
        &claims.preferred_username,
        &body,
        &origin,
        now,
    )
    .await?;
    state.metrics().request_filed();
    tracing::info!(request = %r.id, requester = %Untrusted::new(&r.requester), role = %Untrusted::new(&r.role), cluster = %Untrusted::new(&r.cluster), status = r.status.as_str(), "access request filed");
    notify(&state, notices);
    let info = svc::info(state.store(), &r, now).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// `GET /api/v1/requests`: the caller's requests.
pub(super) async fn list_mine(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AccessRequestList>, ApiError> {
    let claims = caller(&state, &headers).await?;
    let now = state.now();
    let filter = RequestFilter {
        requester: Some(claims.preferred_username.clone()),
        pending: false,
        limit: 50,
    };
    let mut requests = Vec::new();
    for r in state.store().list_requests(&filter, now).await? {
        requests.push(svc::info(state.store(), &r, now).await?);
    }
    Ok(Json(AccessRequestList { requests }))
}

/// The roles of `roles` one may request, as the API and the page show them.
fn role_infos(roles: &[crate::config::RoleConfig]) -> Vec<RoleInfo> {
    requestable(roles)
        .into_iter()
        .map(|(r, needs_approval)| {
            let max = r.max_duration.unwrap_or_default();
            RoleInfo {
                name: r.name.clone(),
                max_duration_secs: max.as_secs(),
                max_duration: format_duration(max),
                needs_approval,
                approvers: r.request.approvers.clone(),
                reason_required: r.request.reason_required,
                break_glass: r.request.break_glass,
            }
        })
        .collect()
}

/// `GET /api/v1/roles`: the roles the caller may request for the cluster of their token.
pub(super) async fn roles(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<RoleList>, ApiError> {
    let claims = caller(&state, &headers).await?;
    Ok(Json(RoleList {
        cluster: claims.cluster,
        roles: role_infos(&state.config().roles),
    }))
}

/// `GET /api/v1/requests/{id}`: one of the caller's requests (another person's is 404).
pub(super) async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<credential_shared::api::AccessRequestInfo>, ApiError> {
    let claims = caller(&state, &headers).await?;
    let now = state.now();
    let r = state
        .store()
        .request(&id)
        .await?
        .filter(|r| r.requester == claims.preferred_username)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such request"))?;
    Ok(Json(svc::info(state.store(), &r, now).await?))
}

/// `POST /api/v1/requests/{id}/approve`: approval with a token (the same rules as the page;
/// the requester is always refused).
pub(super) async fn approve_api(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
) -> Result<Json<credential_shared::api::AccessRequestInfo>, ApiError> {
    let claims = caller(&state, &headers).await?;
    let user = state
        .store()
        .user_by_id(&claims.sub)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(ApiError::unauthorized)?;
    let now = state.now();
    let origin = origin(addr, rid);
    let decision = by_person(&user, &id, true, None);
    let (r, notices) = svc::decide(state.store(), state.config(), decision, &origin, now).await?;
    notify(&state, notices);
    Ok(Json(svc::info(state.store(), &r, now).await?))
}

/// Where a request came from, for the trail: the client address and the request id.
fn origin(addr: String, rid: String) -> Origin {
    Origin {
        client_addr: Some(addr),
        http_request_id: Some(rid),
    }
}

/// A person as a decider: the rules of their name and groups apply.
fn decider(user: &crate::store::User) -> Decider<'_> {
    Decider::Person {
        username: &user.username,
        groups: &user.groups,
    }
}

/// A person's decision on request `id`, in their own name.
fn by_person<'a>(
    user: &'a crate::store::User,
    id: &'a str,
    approve: bool,
    comment: Option<&'a str>,
) -> svc::Decision<'a> {
    svc::Decision {
        id,
        decider: decider(user),
        actor: &user.username,
        approve,
        comment,
    }
}

/// The signed-in person of a browser session, or the sign-in page.
async fn person(
    state: &AppState,
    session: &crate::store::WebSession,
) -> Result<Option<crate::store::User>, PageError> {
    let Some(uid) = session.user_id.as_deref() else {
        return Ok(None);
    };
    Ok(state
        .store()
        .user_by_id(uid)
        .await?
        .filter(|u| u.disabled_at.is_none() && !u.is_expired(state.now())))
}

/// `GET /requests`: pending requests the signed-in approver may decide, and their own.
/// A browser not signed in goes to the sign-in page and comes back here afterwards.
pub(super) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
) -> Result<Response, PageError> {
    let signed_in = match current(&state, &headers).await? {
        Some(session) => person(&state, &session).await?.map(|user| (session, user)),
        None => None,
    };
    let Some((session, user)) = signed_in else {
        return sign_in_then(&state, &headers, &addr, PATH, PATH).await;
    };
    render(&state, &session, &user, None).await
}

async fn render(
    state: &AppState,
    session: &crate::store::WebSession,
    user: &crate::store::User,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let cfg = state.config();
    let now = state.now();
    let pending = state
        .store()
        .list_requests(
            &RequestFilter {
                pending: true,
                ..RequestFilter::default()
            },
            now,
        )
        .await?;
    let rows: Vec<request_templates::Row<'_>> = pending
        .iter()
        .filter(|r| {
            r.requester == user.username
                || crate::domain::requests::may_decide(r, decider(user), &cfg.roles, now).is_ok()
        })
        .map(|r| request_templates::Row {
            r,
            own: r.requester == user.username,
            age_minutes: (now - r.created_at).whole_minutes(),
        })
        .collect();
    let page = request_templates::requests_page(
        session.csrf_token.expose(),
        &user.username,
        is_approver(&user.groups, &cfg.roles),
        &rows,
        &role_infos(&cfg.roles),
        notice,
    );
    Ok(Html(page).into_response())
}

#[derive(Deserialize)]
pub(super) struct DecisionForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /requests/{id}`: approve or deny.
pub(super) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    f: Result<Form<DecisionForm>, FormRejection>,
) -> Result<Response, PageError> {
    let f = form(f)?;
    let session = verified(&state, &headers, &f.csrf_token).await?;
    let Some(user) = person(&state, &session).await? else {
        return sign_in_then(&state, &headers, &addr, PATH, PATH).await;
    };
    let approve = super::pages::approves(&f.action)?;
    let origin = origin(addr, rid);
    let now = state.now();
    let decision = by_person(&user, &id, approve, Some(&f.comment));
    let result = svc::decide(state.store(), state.config(), decision, &origin, now).await;
    match result {
        Ok((r, notices)) => {
            tracing::info!(request = %r.id, approver = %Untrusted::new(&user.username), approve, "access request decided");
            notify(&state, notices);
            let msg = format!(
                "Request {} of {} {}.",
                r.id,
                r.requester,
                if approve { "approved" } else { "denied" }
            );
            render(&state, &session, &user, Some(&msg)).await
        }
        Err(Error::Store(e)) => Err(e.into()),
        Err(e) => {
            let status = match &e {
                Error::NotFound(_) => StatusCode::NOT_FOUND,
                Error::Decision(DecisionError::NotPending { .. }) => StatusCode::CONFLICT,
                Error::Decision(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            Err(
                PageError::new(status, "Cannot decide this request", format!("{e}."))
                    .link_to("/requests", "Back to the requests"),
            )
        }
    }
}
