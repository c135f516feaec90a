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

/// The commented `[clusters.proxy]` example names only keys the schema has, and without the
/// operator's files it validates into a proxied cluster.
#[test]
fn the_commented_proxy_example_parses() {
    let text = include_str!("../../../install/issuer.example.toml");
    let start = text
        .find("# [clusters.proxy]")
        .unwrap_or_else(|| panic!("the proxy example is missing"));
    let table: Vec<&str> = text[start..]
        .lines()
        .map_while(|l| l.strip_prefix("# "))
        .map(|l| l.split("  #").next().unwrap_or(l).trim_end())
        .collect();
    let toml_text = format!(
        "[[clusters]]\nname = \"staging\"\nserver = \"https://staging-api.example.com:6443\"\n{}",
        table.join("\n")
    );
    let parsed: super::FileConfig =
        toml::from_str(&toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    let proxy = parsed.clusters[0].proxy.as_ref();
    assert!(
        proxy.is_some_and(|p| p.tls_ca_file.is_some()),
        "{toml_text}"
    );
    let without_files: String = toml_text
        .lines()
        .filter(|l| !l.starts_with("tls_"))
        .collect::<Vec<_>>()
        .join("\n");
    let file: super::FileConfig = toml::from_str(&without_files).unwrap_or_else(|e| panic!("{e}"));
    let o = super::Overrides {
        data_dir: Some("/tmp/unused".into()),
        issuer_url: Some("https://issuer.example.com".into()),
        ..super::Overrides::default()
    };
    let config = super::Config::from_parts(file, &o, || None).unwrap_or_else(|e| panic!("{e}"));
    let p = config.clusters[0]
        .proxy
        .as_ref()
        .unwrap_or_else(|| panic!("not proxied"));
    assert_eq!(p.url.as_str(), "https://staging-proxy.example.com:8444/");
    assert_eq!(p.listen.port(), 8444);
    assert_eq!(p.audit, super::ProxyAudit::Metadata);
    assert!(!p.impersonate_uid);
    assert_eq!(p.tls, super::ProxyTls::Generated);
}
