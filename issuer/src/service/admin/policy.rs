//! `policy explain`: which Kubernetes groups a user gets in a cluster, and by which rule.

use credential_shared::text::Untrusted;

/// What `policy explain` prints: the Kubernetes groups `user` would get in `cluster`, the rule
/// that gave each, and the identity groups that gave nothing and why.
#[must_use]
pub fn explain(
    policy: &crate::domain::policy::Policy,
    username: &str,
    identity_groups: &[String],
    cluster: &str,
) -> String {
    use crate::domain::policy::Dropped;
    use std::fmt::Write as _;
    let rule = |i: usize| {
        policy.rules.get(i).map_or_else(String::new, |r| {
            format!("rule {i} ({})", Untrusted::new(r.group.as_str()))
        })
    };
    let m = policy.map(identity_groups, cluster);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "user {} in cluster {}: identity groups [{}]",
        Untrusted::new(username),
        Untrusted::new(cluster),
        Untrusted::long(identity_groups.join(", "))
    );
    if policy.rules.is_empty() {
        let _ = writeln!(
            out,
            "no policy rules are configured: groups pass unchanged (except system: names)"
        );
    }
    let _ = writeln!(out, "kubernetes groups:");
    if m.granted.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for g in &m.granted {
        let by = g
            .rule
            .map_or_else(|| "no rules (pass-through)".to_owned(), rule);
        let _ = writeln!(
            out,
            "  {}  <- {} by {by}",
            Untrusted::new(&g.group),
            Untrusted::new(&g.from)
        );
    }
    if !m.dropped.is_empty() {
        let _ = writeln!(out, "dropped:");
    }
    for (g, why) in &m.dropped {
        let why = match why {
            Dropped::Denied(i) => format!("denied by {}", rule(*i)),
            Dropped::NoRule => "no rule matches (default deny)".to_owned(),
            Dropped::Reserved(Some(i)) => {
                format!("{} would give a reserved or invalid name", rule(*i))
            }
            Dropped::Reserved(None) => "reserved or invalid name".to_owned(),
        };
        let _ = writeln!(out, "  {}  {why}", Untrusted::new(g));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_names_the_rule_behind_each_group() {
        let text = r#"
[[clusters]]
name = "prod"
[[clusters]]
name = "staging"
[[policy.rules]]
group = "eng-contractors"
deny = true
[[policy.rules]]
group = "eng-*"
kubernetes_groups = ["developers"]
[[policy.rules]]
group = "sre"
kubernetes_groups = ["cluster-admins"]
clusters = ["prod"]
"#;
        let file: crate::config::FileConfig =
            toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let cfg =
            crate::config::Config::from_parts(file, &crate::config::Overrides::default(), || {
                Some("/tmp/x".into())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let groups: Vec<String> = ["eng-contractors", "eng-web", "sales", "sre"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        insta::assert_snapshot!(explain(&cfg.policy, "ann", &groups, "prod"), @r"
        user ann in cluster prod: identity groups [eng-contractors, eng-web, sales, sre]
        kubernetes groups:
          cluster-admins  <- sre by rule 2 (sre)
          developers  <- eng-web by rule 1 (eng-*)
        dropped:
          eng-contractors  denied by rule 0 (eng-contractors)
          sales  no rule matches (default deny)
        ");
        assert!(explain(&cfg.policy, "ann", &groups, "staging").contains("sre  no rule matches"));
    }
}
