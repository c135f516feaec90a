//! The shipped example config (`install/issuer.example.toml`) parses and validates, its
//! commented-out sections included.

#[test]
fn the_shipped_example_config_parses() {
    let text = include_str!("../../../install/issuer.example.toml");
    let parsed: Result<super::FileConfig, _> = toml::from_str(text);
    let file = parsed.unwrap_or_else(|e| panic!("install/issuer.example.toml: {e}"));
    assert!(!file.roles.is_empty(), "the example should show [[roles]]");
    let mut file = file;
    // ca_file in the example names a file that exists only on a real host.
    for c in &mut file.clusters {
        c.ca_file = None;
    }
    let config = super::Config::from_parts(file, &super::Overrides::default(), || {
        Some("/tmp/data".into())
    })
    .unwrap_or_else(|e| panic!("install/issuer.example.toml: {e}"));
    assert!(config.clusters.iter().any(|c| c.access.is_some()));
    let glass = config.role("break-glass").map(|r| r.request.clone());
    assert!(
        glass.is_some_and(|p| p.break_glass && p.self_approve && p.reason_required),
        "the example shows a break-glass role"
    );
    let exec = config
        .role("prod-exec")
        .map(|r| r.request.approvers.clone());
    assert_eq!(exec, Some(vec!["sre-leads".to_owned()]));
    assert!(config.notifications.is_some());
    assert_eq!(
        config.request_pending_ttl,
        std::time::Duration::from_secs(3600)
    );
}

/// The upstream and policy examples are commented out (they need a provider); uncommented,
/// they must parse.
#[test]
fn the_commented_upstream_and_policy_examples_parse() {
    let text = include_str!("../../../install/issuer.example.toml");
    let start = text
        .find("# Upstream OpenID Connect providers")
        .unwrap_or_else(|| panic!("the upstream example is missing"));
    let uncommented: String = text[start..]
        .lines()
        .map(|l| {
            let rest = l.strip_prefix("# ").unwrap_or("");
            let key = rest.split(" =").next().unwrap_or("");
            if rest.starts_with("[[")
                || (!key.is_empty()
                    && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    && rest.contains(" = "))
            {
                rest
            } else {
                ""
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let parsed: super::FileConfig =
        toml::from_str(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(parsed.upstreams.len(), 1);
    assert_eq!(parsed.policy.map_or(0, |p| p.rules.len()), 3);
}
