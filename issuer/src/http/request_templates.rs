//! The HTML of the approvals page (`/requests`): the roles one may request, then the pending
//! requests. Field names (`action` = `approve` or `deny`,
//! `comment`, hidden `csrf_token`) are a contract that tests and automation use.

use std::fmt::Write as _;

use super::templates::{csrf_field, escape, layout};
use credential_shared::api::RoleInfo;

use crate::domain::requests::{format_duration, AccessRequest};

/// One pending request on the page.
pub(super) struct Row<'a> {
    /// The request.
    pub(super) r: &'a AccessRequest,
    /// Filed by the viewer: shown, never decidable by them.
    pub(super) own: bool,
    /// Minutes since it was filed.
    pub(super) age_minutes: i64,
}

/// The approvals page.
pub(super) fn requests_page(
    csrf: &str,
    username: &str,
    approver: bool,
    rows: &[Row<'_>],
    roles: &[RoleInfo],
    notice: Option<&str>,
) -> String {
    let mut body = format!(
        "<p class=\"muted\">Signed in as <strong>{}</strong>.</p>",
        escape(username)
    );
    if let Some(n) = notice {
        let _ = write!(body, "<p class=\"warn\" id=\"notice\">{}</p>", escape(n));
    }
    if !approver {
        body.push_str("<p>You are not an approver of any role. Your own pending requests are listed below.</p>");
    }
    roles_section(&mut body, roles);
    body.push_str("<h2>Pending requests</h2>");
    if rows.is_empty() {
        body.push_str("<p id=\"empty\">No pending requests.</p>");
    }
    for row in rows {
        let r = row.r;
        let scope = if r.namespaces.is_empty() {
            "(cluster-wide)".to_owned()
        } else {
            r.namespaces.join(", ")
        };
        let _ = write!(
            body,
            "<section class=\"request\" id=\"request-{id}\"><h2>Request {id}</h2><dl>\
<dt>Requester</dt><dd>{who}</dd><dt>Cluster</dt><dd>{cluster}</dd><dt>Role</dt><dd>{role}</dd>\
<dt>Namespaces</dt><dd>{scope}</dd><dt>Reason</dt><dd>{reason}</dd><dt>Duration</dt><dd>{dur}</dd>\
<dt>Age</dt><dd>{age} min</dd></dl>",
            id = escape(&r.id),
            who = escape(&r.requester),
            cluster = escape(&r.cluster),
            role = escape(&r.role),
            scope = escape(&scope),
            reason = escape(r.reason.as_deref().unwrap_or("")),
            dur = format_duration(r.duration),
            age = row.age_minutes,
        );
        if row.own {
            body.push_str(
                "<p class=\"muted own\">Your own request: another approver decides it.</p>",
            );
        } else {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/requests/{id}\">{csrf}\
<label for=\"comment-{id}\">Comment</label><input type=\"text\" id=\"comment-{id}\" name=\"comment\" maxlength=\"500\">\
<button type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
<button type=\"submit\" name=\"action\" value=\"deny\" class=\"deny\">Deny</button></form>",
                id = escape(&r.id),
                csrf = csrf_field(csrf),
            );
        }
        body.push_str("</section>");
    }
    layout("Access requests", &body)
}

/// The roles one may request: name, longest duration, who approves, whether a reason is
/// needed, and the command that asks for one.
fn roles_section(body: &mut String, roles: &[RoleInfo]) {
    body.push_str(
        "<style>h2{font-size:1.1rem;margin:1.4rem 0 .5rem}\
         table.roles{border-collapse:collapse;font-size:.9rem;width:100%}\
         table.roles th,table.roles td{text-align:left;vertical-align:top;padding:.25rem .4rem;border-bottom:1px solid #dde1e8}\
         table.roles td:first-child,table.roles td:nth-child(2){white-space:nowrap}\
         .scroll{overflow-x:auto;max-width:100%}</style>\
         <section id=\"roles\"><h2>Roles you may request</h2>",
    );
    if roles.is_empty() {
        body.push_str("<p>No role can be requested on this issuer.</p></section>");
        return;
    }
    body.push_str("<div class=\"scroll\"><table class=\"roles\"><thead><tr><th>Role</th><th>At most</th><th>Approval</th><th>Reason</th></tr></thead><tbody>");
    for r in roles {
        let approval = if !r.needs_approval {
            "none: approved at once, and an alert is sent".to_owned()
        } else if r.approvers.is_empty() {
            "an administrator".to_owned()
        } else {
            format!("a member of {}", r.approvers.join(", "))
        };
        let _ = write!(
            body,
            "<tr class=\"role\" id=\"role-{name}\"><td><code>{name}</code>{glass}</td><td>{max}</td><td>{approval}</td><td>{reason}</td></tr>",
            name = escape(&r.name),
            glass = if r.break_glass { "<br>(break-glass)" } else { "" },
            max = escape(&r.max_duration),
            approval = escape(&approval),
            reason = if r.reason_required { "required" } else { "optional" },
        );
    }
    body.push_str("</tbody></table></div><p class=\"muted\">Ask with <code>kubectl credential request --role ROLE --for 1h --reason TEXT</code>.</p></section>");
}
