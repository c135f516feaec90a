//! `[policy]`: the group mapping applied to every identity when a token is minted, rules
//! matched in order (first match wins), each naming only configured clusters.

use super::{invalid, ClusterConfig, ConfigError, FilePolicy};
use crate::domain::policy::{Pattern, Policy, Rule};

/// `[[policy.rules]]`, each checked against the configured `clusters`.
pub(super) fn policy(p: FilePolicy, clusters: &[ClusterConfig]) -> Result<Policy, ConfigError> {
    let mut rules = Vec::new();
    for (i, r) in p.rules.into_iter().enumerate() {
        let field = |f: &str| format!("policy.rules[{i}].{f}");
        if r.group.is_empty() || r.group.len() > 128 {
            return Err(invalid(field("group"), "must be 1 to 128 characters"));
        }
        if r.deny && !r.kubernetes_groups.is_empty() {
            return Err(invalid(
                field("kubernetes_groups"),
                "a rule with deny = true gives no groups",
            ));
        }
        for (j, g) in r.kubernetes_groups.iter().enumerate() {
            crate::domain::names::validate_group(g).map_err(|e| {
                invalid(
                    format!("policy.rules[{i}].kubernetes_groups[{j}]"),
                    e.to_string(),
                )
            })?;
        }
        if let Some(cs) = &r.clusters {
            if cs.is_empty() {
                return Err(invalid(
                    field("clusters"),
                    "must name at least one cluster (leave it out for all clusters)",
                ));
            }
            for (j, c) in cs.iter().enumerate() {
                if !clusters.iter().any(|k| &k.name == c) {
                    return Err(invalid(
                        format!("policy.rules[{i}].clusters[{j}]"),
                        format!("`{c}` is not a configured cluster"),
                    ));
                }
            }
        }
        rules.push(Rule {
            group: Pattern::parse(&r.group),
            kubernetes_groups: r.kubernetes_groups,
            clusters: r.clusters,
            deny: r.deny,
        });
    }
    Ok(Policy { rules })
}
