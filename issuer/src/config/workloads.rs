//! `[[workloads]]`: the CI jobs and automation the issuer trusts by their platform's identity
//! token, validated into `domain::workloads::Workload` rules and, one per trusted issuer, where
//! that issuer's keys come from (`upstream::trusted::TrustedIssuer`).

use std::time::Duration;

use url::Url;

use super::values::duration_within;
use super::{duplicate, invalid, ClusterConfig, ConfigError, FileClaimValue, FileWorkload};
use crate::domain::names::{is_dns_label, validate_group};
use crate::domain::policy::Pattern;
use crate::domain::workloads::{Template, Workload, MAX_TOKEN_LIFETIME};
use crate::upstream::trusted::TrustedIssuer;

/// Every rule in order, and the issuers they trust.
pub(super) fn workloads(
    file: Vec<FileWorkload>,
    clusters: &[ClusterConfig],
) -> Result<(Vec<Workload>, Vec<TrustedIssuer>), ConfigError> {
    let mut rules: Vec<Workload> = Vec::new();
    let mut issuers: Vec<TrustedIssuer> = Vec::new();
    for (i, w) in file.into_iter().enumerate() {
        let (rule, trusted) = workload(i, w, clusters)?;
        if rules.iter().any(|r| r.name == rule.name) {
            return Err(duplicate("workloads", i, "name", "workload", &rule.name));
        }
        match issuers.iter().find(|t| t.issuer == trusted.issuer) {
            Some(t) if *t != trusted => {
                return Err(invalid(
                    format!("workloads[{i}]"),
                    "rules of the same issuer must name the same jwks_url and ca_file",
                ))
            }
            Some(_) => {}
            None => issuers.push(trusted),
        }
        rules.push(rule);
    }
    Ok((rules, issuers))
}

fn https_url(field: &str, text: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(text).map_err(|e| invalid(field, format!("`{text}` is not a URL: {e}")))?;
    if !crate::upstream::is_allowed_url(&url) {
        return Err(invalid(
            field,
            "must be an https URL (plain http only for loopback addresses)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(field, "must not have a query or fragment"));
    }
    Ok(url)
}

fn workload(
    i: usize,
    w: FileWorkload,
    clusters: &[ClusterConfig],
) -> Result<(Workload, TrustedIssuer), ConfigError> {
    let field = |f: &str| format!("workloads[{i}].{f}");
    if !is_dns_label(&w.name) {
        return Err(invalid(
            field("name"),
            "must be a DNS label (lower-case letters, digits and -, at most 63)",
        ));
    }
    https_url(&field("issuer"), &w.issuer)?;
    if w.audience.is_empty() || w.audience.len() > 256 {
        return Err(invalid(field("audience"), "must be 1 to 256 characters"));
    }
    let jwks_url = w
        .jwks_url
        .as_deref()
        .map(|u| https_url(&field("jwks_url"), u))
        .transpose()?;
    if let Some(ca) = &w.ca_file {
        if !ca.is_file() {
            return Err(invalid(
                field("ca_file"),
                format!("{} is not a readable file", ca.display()),
            ));
        }
    }
    let identity =
        Template::parse(&w.identity).map_err(|e| invalid(field("identity"), e.to_string()))?;
    for g in &w.groups {
        validate_group(g).map_err(|e| invalid(field("groups"), format!("`{g}`: {e}")))?;
    }
    if w.clusters.is_empty() {
        return Err(invalid(
            field("clusters"),
            "must name at least one cluster the workload may get tokens for",
        ));
    }
    for c in &w.clusters {
        if !clusters.iter().any(|k| k.name == *c) {
            return Err(invalid(
                field("clusters"),
                format!("`{c}` is not a configured cluster"),
            ));
        }
    }
    let mut claims = Vec::new();
    for (name, value) in w.claims {
        let alternatives = match value {
            FileClaimValue::One(p) => vec![p],
            FileClaimValue::Any(ps) => ps,
        };
        if name.is_empty() || alternatives.is_empty() || alternatives.iter().any(String::is_empty) {
            return Err(invalid(
                field(&format!("claims.{name}")),
                "must be a non-empty pattern or list of patterns",
            ));
        }
        claims.push((
            name,
            alternatives.iter().map(|p| Pattern::parse(p)).collect(),
        ));
    }
    // A rule that matches on nothing but the issuer and audience would give every job of the
    // platform (every repository on GitHub) the same access.
    if claims.is_empty() {
        return Err(invalid(
            field("claims"),
            "must name at least one claim condition (repository, project_path, sub, ...): without one every job of the platform would match",
        ));
    }
    let token_lifetime = duration_within(
        &field("token_lifetime"),
        w.token_lifetime.as_deref(),
        "5m",
        Duration::from_secs(30)..=MAX_TOKEN_LIFETIME,
        "must be between 30s and 1h",
    )?;
    let max_age = duration_within(
        &field("max_age"),
        w.max_age.as_deref(),
        "1h",
        Duration::from_secs(60)..=Duration::from_secs(86_400),
        "must be between 1m and 24h",
    )?;
    let trusted = TrustedIssuer {
        issuer: w.issuer.clone(),
        jwks_url,
        ca_file: w.ca_file,
    };
    Ok((
        Workload {
            name: w.name,
            issuer: w.issuer,
            audience: w.audience,
            claims,
            identity,
            groups: w.groups,
            clusters: w.clusters,
            token_lifetime,
            max_age,
            single_use: w.single_use.unwrap_or(true),
            enabled: w.enabled.unwrap_or(true),
        },
        trusted,
    ))
}
