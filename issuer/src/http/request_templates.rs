//! The HTML of the approvals page (`/requests`): the roles one may request, then the pending
//! requests. A maud template: every value escaped, no JavaScript. Field names (`action` =
//! `approve` or `deny`, `comment`, hidden `csrf_token`) are a contract that tests and
//! automation use.

use credential_shared::api::RoleInfo;
use maud::{html, Markup};

use super::templates::{constant, csrf_field, layout};
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

/// The page's own styles.
const STYLE: &str = "h2{font-size:1.1rem;margin:1.4rem 0 .5rem}\
     table.roles{border-collapse:collapse;font-size:.9rem;width:100%}\
     table.roles th,table.roles td{text-align:left;vertical-align:top;padding:.25rem .4rem;border-bottom:1px solid #dde1e8}\
     table.roles td:first-child,table.roles td:nth-child(2){white-space:nowrap}\
     .scroll{overflow-x:auto;max-width:100%}";

/// The approvals page.
pub(super) fn requests_page(
    csrf: &str,
    username: &str,
    approver: bool,
    rows: &[Row<'_>],
    roles: &[RoleInfo],
    notice: Option<&str>,
) -> String {
    let body = html! {
        p class="muted" { "Signed in as " strong { (username) } "." }
        @if let Some(n) = notice {
            p class="warn" id="notice" { (n) }
        }
        @if !approver {
            p {
                "You are not an approver of any role. Your own pending requests are listed \
                 below."
            }
        }
        (roles_section(roles))
        h2 { "Pending requests" }
        @if rows.is_empty() {
            p id="empty" { "No pending requests." }
        }
        @for row in rows {
            (request(csrf, row))
        }
    };
    layout("Access requests", &body)
}

/// One pending request, with its decision form unless the viewer filed it.
fn request(csrf: &str, row: &Row<'_>) -> Markup {
    let r = row.r;
    let scope = if r.namespaces.is_empty() {
        "(cluster-wide)".to_owned()
    } else {
        r.namespaces.join(", ")
    };
    html! {
        section class="request" id={ "request-" (r.id) } {
            h2 { "Request " (r.id) }
            dl {
                dt { "Requester" } dd { (r.requester) }
                dt { "Cluster" } dd { (r.cluster) }
                dt { "Role" } dd { (r.role) }
                dt { "Namespaces" } dd { (scope) }
                dt { "Reason" } dd { (r.reason.as_deref().unwrap_or("")) }
                dt { "Duration" } dd { (format_duration(r.duration)) }
                dt { "Age" } dd { (row.age_minutes) " min" }
            }
            @if row.own {
                p class="muted own" { "Your own request: another approver decides it." }
            } @else {
                form method="post" action={ "/requests/" (r.id) } {
                    (csrf_field(csrf))
                    label for={ "comment-" (r.id) } { "Comment" }
                    input type="text" id={ "comment-" (r.id) } name="comment" maxlength="500";
                    button type="submit" name="action" value="approve" { "Approve" }
                    button type="submit" name="action" value="deny" class="deny" { "Deny" }
                }
            }
        }
    }
}

/// The roles one may request: name, longest duration, who approves, whether a reason is
/// needed, and the command that asks for one.
fn roles_section(roles: &[RoleInfo]) -> Markup {
    html! {
        style { (constant(STYLE)) }
        section id="roles" {
            h2 { "Roles you may request" }
            @if roles.is_empty() {
                p { "No role can be requested on this issuer." }
            } @else {
                div class="scroll" {
                    table class="roles" {
                        thead { tr {
                            th { "Role" } th { "At most" } th { "Approval" } th { "Reason" }
                        } }
                        tbody {
                            @for r in roles {
                                (role(r))
                            }
                        }
                    }
                }
                p class="muted" {
                    "Ask with "
                    code { "kubectl credential request --role ROLE --for 1h --reason TEXT" }
                    "."
                }
            }
        }
    }
}

/// One role as a table row.
fn role(r: &RoleInfo) -> Markup {
    let approval = if !r.needs_approval {
        "none: approved at once, and an alert is sent".to_owned()
    } else if r.approvers.is_empty() {
        "an administrator".to_owned()
    } else {
        format!("a member of {}", r.approvers.join(", "))
    };
    html! {
        tr class="role" id={ "role-" (r.name) } {
            td {
                code { (r.name) }
                @if r.break_glass {
                    br; "(break-glass)"
                }
            }
            td { (r.max_duration) }
            td { (approval) }
            td { (if r.reason_required { "required" } else { "optional" }) }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::templates::{assert_escaped, HOSTILE};
    use super::*;
    use crate::domain::requests::RequestStatus;

    #[test]
    fn every_value_on_the_requests_page_is_escaped() {
        let h = HOSTILE.to_owned();
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let request = AccessRequest {
            id: h.clone(),
            requester: h.clone(),
            cluster: h.clone(),
            role: h.clone(),
            namespaces: vec![h.clone()],
            reason: Some(h.clone()),
            duration: Duration::from_secs(3600),
            created_at: at,
            expires_at: at,
            status: RequestStatus::Pending,
            decided_by: None,
            comment: None,
            decided_at: None,
            grant_id: None,
            client_addr: None,
        };
        let rows = [Row {
            r: &request,
            own: false,
            age_minutes: 1,
        }];
        let roles = [RoleInfo {
            name: h.clone(),
            max_duration: h.clone(),
            needs_approval: true,
            approvers: vec![h.clone()],
            ..RoleInfo::default()
        }];
        let page = requests_page(&h, &h, false, &rows, &roles, Some(&h));
        // The viewer and the notice; the role's id, name, limit and approvers; the request's
        // id (section, heading, form action, comment label and field), five fields and the
        // form's CSRF token.
        assert_escaped(&page, 17);
    }
}
