//! `GET /audit`: the auditors' page. Members of `[audit] auditor_groups` filter the trail
//! (person, cluster, namespace, event, dates), page through it, see whether the hash chain
//! verifies, and download the same selection as JSON lines (`GET /audit/export`). Read-only:
//! plain GET forms, so no CSRF token; the one write is the audit row recording the view.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::audit_templates::{self, ChainStatus, Filters};
use super::browser::{current, sign_in_then};
use super::{ClientAddr, PageError, RequestId};
use crate::service::admin;
use crate::service::state::AppState;
use crate::store::{AuditEvent, AuditFilter, User};

/// Events per page.
const PAGE: u32 = 50;

/// The page's path; a sign-in started here comes back to it.
const PATH: &str = "/audit";

/// The filter form's fields (all optional; empty means "any").
#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditQuery {
    #[serde(default)]
    person: String,
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Paging cursor: events after this sequence number.
    after: Option<i64>,
}

fn field(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.chars().take(256).collect())
}

impl AuditQuery {
    fn filters(&self) -> Filters {
        Filters {
            person: self.person.trim().to_owned(),
            cluster: self.cluster.trim().to_owned(),
            namespace: self.namespace.trim().to_owned(),
            event: self.event.trim().to_owned(),
            from: self.from.trim().to_owned(),
            to: self.to.trim().to_owned(),
        }
    }
}

fn bad_filter(message: String) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, "Invalid filter", message)
        .link_to("/audit", "Back to the audit trail")
}

/// The store filter for the form's values.
async fn store_filter(state: &AppState, q: &AuditQuery) -> Result<AuditFilter, PageError> {
    let person = field(&q.person);
    let person_alias = match &person {
        Some(name) => state.store().user_by_name(name).await?.map(|u| u.id),
        None => None,
    };
    let time = |flag: &'static str, s: &str, end: bool| {
        field(s)
            .map(|v| admin::parse_time(flag, &v, end))
            .transpose()
            .map_err(|e| bad_filter(e.to_string()))
    };
    Ok(AuditFilter {
        since: time("from", &q.from, false)?,
        until: time("to", &q.to, true)?,
        person,
        person_alias,
        cluster: field(&q.cluster),
        namespace: field(&q.namespace),
        event: field(&q.event),
    })
}

/// The signed-in auditor, or the response to send instead: the sign-in page (and back here
/// afterwards) for a browser not signed in, a 403 page for anyone else.
async fn auditor(
    state: &AppState,
    headers: &HeaderMap,
    addr: &str,
    rid: &str,
    back: &str,
) -> Result<Result<User, Response>, PageError> {
    let signed_in = match current(state, headers).await? {
        Some(s) => match s.user_id.as_deref() {
            Some(id) => state.store().user_by_id(id).await?,
            None => None,
        },
        None => None,
    };
    let now = state.now();
    let Some(user) = signed_in.filter(|u| u.disabled_at.is_none() && !u.is_expired(now)) else {
        return Ok(Err(sign_in_then(state, headers, addr, back, PATH).await?));
    };
    let groups = &state.config().audit.auditor_groups;
    if !user.groups.iter().any(|g| groups.contains(g)) {
        let e = AuditEvent {
            event: "audit.view_refused",
            actor: Some(user.username.clone()),
            subject: Some(user.id.clone()),
            client_addr: Some(addr.to_owned()),
            request_id: Some(rid.to_owned()),
            ..AuditEvent::default()
        };
        if let Err(err) = state.store().audit(&e, now).await {
            tracing::error!(error = %err, "audit write failed");
        }
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Not an auditor",
            format!(
                "You are signed in as {}, who is not in an auditor group, so the audit trail is not shown. Ask your security team to add you to one of the groups in the issuer's [audit] auditor_groups setting.",
                user.username
            ),
        )
        .without_link());
    }
    Ok(Ok(user))
}

/// Records that `user` read the trail with these filters.
async fn audit_view(
    state: &AppState,
    user: &User,
    addr: &str,
    rid: &str,
    filters: &Filters,
    download: bool,
) {
    let detail = serde_json::json!({
        "person": filters.person,
        "cluster": filters.cluster,
        "namespace": filters.namespace,
        "event": filters.event,
        "from": filters.from,
        "to": filters.to,
        "download": download,
    });
    let e = AuditEvent {
        event: "audit.viewed",
        actor: Some(user.username.clone()),
        subject: Some(user.id.clone()),
        client_addr: Some(addr.to_owned()),
        request_id: Some(rid.to_owned()),
        detail: Some(detail.to_string()),
        ..AuditEvent::default()
    };
    if let Err(err) = state.store().audit(&e, state.now()).await {
        tracing::error!(error = %err, "audit write failed");
    }
}

fn query(q: Result<Query<AuditQuery>, QueryRejection>) -> Result<AuditQuery, PageError> {
    q.map(|Query(q)| q)
        .map_err(|_| bad_filter("The filter could not be read. Reset it and try again.".into()))
}

fn back_path(raw: Option<&str>) -> String {
    match raw {
        Some(q) if !q.is_empty() => format!("{PATH}?{q}"),
        _ => PATH.to_owned(),
    }
}

/// `GET /audit`.
pub(super) async fn audit_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    RawQuery(raw): RawQuery,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let user = match auditor(&state, &headers, &addr, &rid, &back_path(raw.as_deref())).await? {
        Ok(u) => u,
        Err(res) => return Ok(res),
    };
    let q = query(q)?;
    let filter = store_filter(&state, &q).await?;
    let mut rows = state
        .store()
        .audit_page(q.after.unwrap_or(0).max(0), PAGE + 1, &filter)
        .await?;
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let chain = match admin::audit_verify(state.store(), None).await {
        Ok(s) => ChainStatus::Verified(s),
        Err(admin::Error::Audit(p)) => ChainStatus::Broken(p.to_string()),
        Err(e) => return Err(PageError::internal(&e)),
    };
    let filters = q.filters();
    audit_view(&state, &user, &addr, &rid, &filters, false).await;
    let next = more.then(|| rows.last().map(|r| r.seq)).flatten();
    let names = subject_names(&state, &rows).await?;
    let page = audit_templates::audit_page(
        &user.username,
        &filters,
        &rows,
        &names,
        &chain,
        q.after,
        next,
    );
    Ok(Html(page).into_response())
}

/// The account names of the subjects on a page that are user ids (`u-...` for local accounts,
/// a random id for a provider's people; written by sign-in, token and logout events), so that
/// every row names a person one can read. Other subjects (`user:NAME`, `group:NAME`, a name)
/// already read as names and match no id. The export keeps the ids.
async fn subject_names(
    state: &AppState,
    rows: &[crate::domain::audit_chain::Record],
) -> Result<HashMap<String, String>, PageError> {
    let mut names = HashMap::new();
    for id in rows.iter().filter_map(|r| r.facts.subject.as_deref()) {
        if names.contains_key(id) || id.contains(':') {
            continue;
        }
        if let Some(u) = state.store().user_by_id(id).await? {
            names.insert(id.to_owned(), u.username);
        }
    }
    Ok(names)
}

/// `GET /audit/export`: the page's selection (all of it, not one page) as JSON lines.
pub(super) async fn audit_download(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    RequestId(rid): RequestId,
    RawQuery(raw): RawQuery,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let back = raw
        .as_deref()
        .map_or_else(|| PATH.to_owned(), |r| format!("{PATH}?{r}"));
    let user = match auditor(&state, &headers, &addr, &rid, &back).await? {
        Ok(u) => u,
        Err(res) => return Ok(res),
    };
    let q = query(q)?;
    let filter = store_filter(&state, &q).await?;
    let mut body = Vec::new();
    admin::audit_export(state.store(), &filter, &mut body)
        .await
        .map_err(|e| PageError::internal(&e))?;
    audit_view(&state, &user, &addr, &rid, &q.filters(), true).await;
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"audit.jsonl\""),
            ),
        ],
        body,
    )
        .into_response())
}
