//! `[[roles]]` and `[requests]`: the roles a grant can give (an existing `ClusterRole` or
//! managed rules, a longest grant, who approves a request for one), and how access requests
//! for them are bounded.

use std::time::Duration;

use super::values::{duration_field, duration_within};
use super::{
    duplicate, invalid, ConfigError, FileRequests, FileRole, PolicyRule, RequestPolicy, RoleConfig,
    RolePermissions,
};

/// Longest role name: `credential:role:<name>` must stay a short, readable object name.
const MAX_ROLE_NAME: usize = 40;
/// Longest grant a role allows: a requested grant ends at `now + duration`, which must stay a
/// date.
const MAX_GRANT_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// Every role checked in order, a name given twice refused where it repeats.
pub(super) fn roles(file: Vec<FileRole>) -> Result<Vec<RoleConfig>, ConfigError> {
    let mut roles: Vec<RoleConfig> = Vec::new();
    for (i, r) in file.into_iter().enumerate() {
        let role = role(i, r)?;
        if roles.iter().any(|p| p.name == role.name) {
            return Err(duplicate("roles", i, "name", "role", &role.name));
        }
        roles.push(role);
    }
    Ok(roles)
}

/// One `[[roles]]` table, `roles[i]`.
fn role(i: usize, r: FileRole) -> Result<RoleConfig, ConfigError> {
    let field = |f: &str| format!("roles[{i}].{f}");
    if !crate::domain::grants::is_dns_label(&r.name) || r.name.len() > MAX_ROLE_NAME {
        return Err(invalid(
            field("name"),
            format!("must be 1 to {MAX_ROLE_NAME} characters of [a-z0-9-], starting and ending with a letter or digit"),
        ));
    }
    let permissions = permissions(&field, r.cluster_role, r.rules)?;
    let max_duration = match r.max_duration {
        None => None,
        Some(s) => Some(duration_field(&field("max_duration"), Some(&s), "0s")?),
    };
    if max_duration.is_some_and(|d| d.is_zero() || d > MAX_GRANT_DURATION) {
        return Err(invalid(
            field("max_duration"),
            "must be between 1s and 366d",
        ));
    }
    for (j, g) in r.approvers.iter().enumerate() {
        if crate::domain::names::validate_group(g).is_err() {
            return Err(invalid(
                field(&format!("approvers[{j}]")),
                format!("`{g}` is not a valid group name"),
            ));
        }
    }
    if r.self_approve && !r.break_glass {
        return Err(invalid(
            field("self_approve"),
            "only a break_glass role may be self-approved",
        ));
    }
    if r.requestable && r.approvers.is_empty() && !r.self_approve {
        return Err(invalid(
            field("approvers"),
            "a requestable role needs approvers (or break_glass with self_approve)",
        ));
    }
    if !r.requestable && (r.break_glass || r.reason_required || !r.approvers.is_empty()) {
        return Err(invalid(
            field("requestable"),
            "approvers, reason_required and break_glass only apply to a requestable role",
        ));
    }
    if r.requestable && max_duration.is_none() {
        return Err(invalid(
            field("max_duration"),
            "a requestable role needs a max_duration",
        ));
    }
    Ok(RoleConfig {
        name: r.name,
        permissions,
        max_duration,
        request: RequestPolicy {
            requestable: r.requestable,
            approvers: r.approvers,
            reason_required: r.reason_required || r.break_glass,
            break_glass: r.break_glass,
            self_approve: r.self_approve,
        },
    })
}

/// `cluster_role` or `rules`, exactly one of them.
fn permissions(
    field: &impl Fn(&str) -> String,
    cluster_role: Option<String>,
    rules: Option<Vec<PolicyRule>>,
) -> Result<RolePermissions, ConfigError> {
    match (cluster_role, rules) {
        (Some(_), Some(_)) => Err(invalid(
            field("rules"),
            "set cluster_role or rules, not both",
        )),
        (None, None) => Err(invalid(
            field("cluster_role"),
            "set cluster_role (an existing ClusterRole) or rules",
        )),
        (Some(name), None) => {
            if name.is_empty()
                || name.len() > 253
                || name.chars().any(|c| c.is_whitespace() || c == '/')
            {
                return Err(invalid(field("cluster_role"), "must be a ClusterRole name"));
            }
            Ok(RolePermissions::ClusterRole(name))
        }
        (None, Some(rules)) => {
            check_rules(field, &rules)?;
            Ok(RolePermissions::Rules(rules))
        }
    }
}

/// The rules of a managed `ClusterRole`: at least one, each with verbs and resources, every
/// value one RBAC accepts.
fn check_rules(field: &impl Fn(&str) -> String, rules: &[PolicyRule]) -> Result<(), ConfigError> {
    if rules.is_empty() {
        return Err(invalid(field("rules"), "must hold at least one rule"));
    }
    for (j, rule) in rules.iter().enumerate() {
        if rule.verbs.is_empty() {
            return Err(invalid(
                field(&format!("rules[{j}].verbs")),
                "must name at least one verb",
            ));
        }
        if rule.resources.is_empty() {
            return Err(invalid(
                field(&format!("rules[{j}].resources")),
                "must name at least one resource",
            ));
        }
        let all = rule
            .api_groups
            .iter()
            .chain(&rule.resources)
            .chain(&rule.verbs)
            .chain(&rule.resource_names);
        for v in all {
            if v.len() > 253 || v.chars().any(char::is_whitespace) {
                return Err(invalid(
                    field(&format!("rules[{j}]")),
                    format!("`{v}` is not a valid RBAC value"),
                ));
            }
        }
    }
    Ok(())
}

/// `[requests]`, checked; see the `request_*` fields of [`super::Config`].
#[derive(Debug)]
pub(super) struct Requests {
    pub(super) pending_ttl: Duration,
    pub(super) file_limit: u32,
}

/// `[requests]`: how long a request may wait, and how many one person may file per window.
pub(super) fn requests(file: Option<FileRequests>) -> Result<Requests, ConfigError> {
    let requests = file.unwrap_or_default();
    let pending_ttl = duration_within(
        "requests.pending_ttl",
        requests.pending_ttl.as_deref(),
        "1h",
        Duration::from_secs(60)..=Duration::from_secs(7 * 86_400),
        "must be between 1m and 7d",
    )?;
    let file_limit = requests.file_limit.unwrap_or(20);
    if file_limit == 0 {
        return Err(invalid(
            "requests.file_limit",
            "must be at least 1 (0 would refuse every request)",
        ));
    }
    Ok(Requests {
        pending_ttl,
        file_limit,
    })
}
