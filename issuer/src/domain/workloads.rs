//! Workload identity rules (`[[workloads]]`): which CI jobs and automation, known by the claims
//! of their platform's identity token (GitHub Actions, GitLab, a Kubernetes service account),
//! may get a cluster token, under which name, with which groups, for how long.
//!
//! Pure: the token's signature and issuer are verified elsewhere (`signing::jws` over the
//! issuer's JWKS); this module receives its claims and `now` and decides. Every refusal names
//! the check that failed and never quotes the token.

use std::time::Duration;

use serde_json::{Map, Value};

use super::policy::Pattern;

/// Default lifetime of a workload's cluster token.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Longest lifetime a rule may give.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Default oldest `iat` of a subject token accepted.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Clock difference tolerated with the CI platform, in seconds (as an API server does).
pub const SKEW_SECS: i64 = 60;
/// Largest subject token accepted, in bytes (GitHub's are about 1.2 kB).
pub const MAX_SUBJECT_TOKEN: usize = 16 * 1024;

/// Characters a claim value may have to be put into an identity name.
fn identity_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._/@:+-".contains(c)
}

/// One rule, as configuration validated it.
#[derive(Debug, Clone)]
pub struct Workload {
    /// DNS label; shown in audit rows and refusals; its account is `workload:<name>`.
    pub name: String,
    /// The trusted issuer, compared with `iss` exactly.
    pub issuer: String,
    /// The audience the subject token must carry.
    pub audience: String,
    /// Claims that must all match: name and alternatives (any may match).
    pub claims: Vec<(String, Vec<Pattern>)>,
    /// The Kubernetes username.
    pub identity: Template,
    /// Kubernetes groups of its tokens.
    pub groups: Vec<String>,
    /// Clusters it may get tokens for.
    pub clusters: Vec<String>,
    /// Lifetime of its tokens.
    pub token_lifetime: Duration,
    /// Oldest subject token (`iat`) accepted.
    pub max_age: Duration,
    /// Whether a subject token's `jti` is accepted once only.
    pub single_use: bool,
    /// `false`: no token for it (the configuration's switch; `workload disable` is the other).
    pub enabled: bool,
}

impl Workload {
    /// Its account's name.
    #[must_use]
    pub fn account(&self) -> String {
        format!("{ACCOUNT_PREFIX}{}", self.name)
    }
}

/// Prefix of the account of a workload rule.
pub const ACCOUNT_PREFIX: &str = "workload:";

/// An identity template: literal text and `{claim}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Claim(String),
}

/// Why an identity template is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{` without `}`, or an empty or odd claim name.
    #[error("a placeholder is malformed (write {{claim}}, e.g. {{repository}})")]
    Placeholder,
    /// The literal start must contain `:`, so that no workload is named like a person.
    #[error("it must start with literal text containing ':' (for example \"ci:github:\"), so that a job can never be named like a person")]
    Prefix,
    /// `system:` names belong to Kubernetes.
    #[error("it must not start with \"system:\"")]
    System,
}

impl Template {
    /// Parses and checks a template.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or(TemplateError::Placeholder)?;
            let name = &after[..close];
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
            if !ok {
                return Err(TemplateError::Placeholder);
            }
            parts.push(Part::Claim(name.to_owned()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(TemplateError::Placeholder);
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        match parts.first() {
            Some(Part::Literal(l)) if l.starts_with("system:") => Err(TemplateError::System),
            Some(Part::Literal(l)) if l.contains(':') => Ok(Self {
                parts,
                text: text.to_owned(),
            }),
            _ => Err(TemplateError::Prefix),
        }
    }

    /// The template as configured.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The claims the template uses.
    pub fn claims(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Claim(c) => Some(c.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The name for a token with these claims.
    pub fn render(&self, claims: &Map<String, Value>) -> Result<String, Refusal> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Claim(c) => {
                    let v =
                        claim_text(claims, c).ok_or_else(|| Refusal::IdentityClaim(c.clone()))?;
                    if v.is_empty() || !v.chars().all(identity_char) {
                        return Err(Refusal::IdentityClaim(c.clone()));
                    }
                    out.push_str(&v);
                }
            }
        }
        if out.len() > 256 {
            return Err(Refusal::IdentityClaim(
                "(the whole name is too long)".into(),
            ));
        }
        Ok(out)
    }
}

/// A claim as text: strings as they are, numbers and booleans written out; anything else
/// (objects, arrays, null) has no text.
#[must_use]
pub fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Why a subject token's claims get no token. Never quotes a claim value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `exp` missing or passed.
    #[error("the subject token has expired")]
    Expired,
    /// `nbf` or `iat` in the future.
    #[error("the subject token is not yet valid")]
    NotYetValid,
    /// `iat` missing, or older than the rule's `max_age`.
    #[error("the subject token is too old (issued more than {0} s ago, or without iat)")]
    TooOld(u64),
    /// No rule names the token's issuer.
    #[error("the subject token's issuer is not a trusted workload issuer")]
    UntrustedIssuer,
    /// Rules of this issuer exist; none matched. Each: the rule and the check that failed.
    #[error("no workload rule matched ({})", describe(.0))]
    NoMatch(Vec<(String, String)>),
    /// A claim the identity template needs is missing or has characters a name cannot have.
    #[error("claim {0:?} cannot be used in the identity name (missing, or characters outside A-Z a-z 0-9 . _ / @ : + -)")]
    IdentityClaim(String),
}

fn describe(misses: &[(String, String)]) -> String {
    misses
        .iter()
        .map(|(rule, why)| format!("{rule}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The time checks of a subject token against `rule` at `now` (Unix seconds): `exp` required
/// and in the future, `nbf` and `iat` not in the future, `iat` within `max_age`; all with
/// [`SKEW_SECS`].
pub fn check_times(
    claims: &Map<String, Value>,
    max_age: Duration,
    now: i64,
) -> Result<(), Refusal> {
    let n = |f: &str| claims.get(f).and_then(Value::as_i64);
    match n("exp") {
        Some(exp) if exp + SKEW_SECS > now => {}
        _ => return Err(Refusal::Expired),
    }
    if n("nbf").is_some_and(|nbf| nbf - SKEW_SECS > now) {
        return Err(Refusal::NotYetValid);
    }
    let max = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    match n("iat") {
        Some(iat) if iat - SKEW_SECS > now => Err(Refusal::NotYetValid),
        Some(iat) if now.saturating_sub(iat) <= max.saturating_add(SKEW_SECS) => Ok(()),
        _ => Err(Refusal::TooOld(max_age.as_secs())),
    }
}

/// The first enabled rule of the token's issuer whose audience and claims all match, in the
/// configured order. A rule disabled in the configuration counts as not matching, with that
/// reason.
pub fn find<'a>(
    rules: &'a [Workload],
    claims: &Map<String, Value>,
) -> Result<&'a Workload, Refusal> {
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut misses = Vec::new();
    let auds = audiences(claims);
    for rule in rules.iter().filter(|r| r.issuer == iss) {
        let miss = if !auds.contains(&rule.audience.as_str()) {
            Some("wrong audience (aud)".to_owned())
        } else if !rule.enabled {
            Some("disabled in the configuration".to_owned())
        } else {
            rule.claims.iter().find_map(|(name, alternatives)| {
                let ok = claim_text(claims, name)
                    .is_some_and(|v| alternatives.iter().any(|p| p.matches(&v)));
                (!ok).then(|| format!("claim {name:?} does not match"))
            })
        };
        match miss {
            None => return Ok(rule),
            Some(why) => misses.push((rule.name.clone(), why)),
        }
    }
    if misses.is_empty() {
        Err(Refusal::UntrustedIssuer)
    } else {
        Err(Refusal::NoMatch(misses))
    }
}

/// The claims an exchange's audit row keeps: what identifies the job and the run (GitHub,
/// GitLab, Kubernetes), plus every claim the rule matched on. Values are bounded.
#[must_use]
pub fn evidence(rule: &Workload, claims: &Map<String, Value>) -> Map<String, Value> {
    evidence_with(claims, rule.claims.iter().map(|(n, _)| n.as_str()))
}

/// The claims a refused exchange's audit row keeps (no rule matched, or the matched one said
/// no): the job and run claims only.
#[must_use]
pub fn refusal_evidence(claims: &Map<String, Value>) -> Map<String, Value> {
    evidence_with(claims, std::iter::empty())
}

fn evidence_with<'a>(
    claims: &Map<String, Value>,
    also: impl Iterator<Item = &'a str>,
) -> Map<String, Value> {
    const KEPT: &[&str] = &[
        "sub",
        "jti",
        "repository",
        "ref",
        "sha",
        "environment",
        "workflow",
        "job_workflow_ref",
        "run_id",
        "run_attempt",
        "actor",
        "event_name",
        "project_path",
        "pipeline_id",
        "job_id",
        "user_login",
        "namespace_path",
    ];
    let mut out = Map::new();
    let names = KEPT.iter().copied().chain(also);
    for name in names {
        if let Some(v) = claim_text(claims, name) {
            out.insert(
                name.to_owned(),
                Value::String(v.chars().take(256).collect()),
            );
        }
    }
    out
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &str) -> Workload {
        Workload {
            name: name.into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            audience: "https://issuer.example".into(),
            claims: vec![
                ("repository".into(), vec![Pattern::parse("acme/deploy")]),
                (
                    "ref".into(),
                    vec![
                        Pattern::parse("refs/heads/main"),
                        Pattern::parse("refs/tags/v*"),
                    ],
                ),
                ("environment".into(), vec![Pattern::parse("production")]),
            ],
            identity: Template::parse("ci:github:{repository}:{environment}").unwrap(),
            groups: vec!["deployers".into()],
            clusters: vec!["prod".into()],
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            max_age: DEFAULT_MAX_AGE,
            single_use: true,
            enabled: true,
        }
    }

    fn claims(v: &serde_json::Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://token.actions.githubusercontent.com",
            "aud": "https://issuer.example",
            "repository": "acme/deploy",
            "ref": "refs/heads/main",
            "environment": "production",
            "run_id": 42,
        });
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        base.as_object().unwrap().clone()
    }

    #[test]
    fn a_matching_job_gets_its_rule_and_name() {
        let rules = [rule("deploy")];
        let c = claims(&json!({}));
        let r = find(&rules, &c).unwrap();
        assert_eq!(r.name, "deploy");
        assert_eq!(
            r.identity.render(&c).unwrap(),
            "ci:github:acme/deploy:production"
        );
        let tag = claims(&json!({"ref": "refs/tags/v1.2"}));
        assert!(find(&rules, &tag).is_ok());
    }

    /// Each failing check is named, per rule, and no claim value is quoted.
    #[test]
    fn each_mismatch_is_named() {
        let rules = [rule("deploy")];
        for (change, word) in [
            (json!({"repository": "evil/deploy"}), "\"repository\""),
            (json!({"ref": "refs/heads/feature"}), "\"ref\""),
            (json!({"environment": "staging"}), "\"environment\""),
            (json!({"aud": "https://other"}), "audience"),
            (json!({"aud": ["https://other", "x"]}), "audience"),
            (json!({"environment": null}), "\"environment\""),
            (json!({"environment": ["production"]}), "\"environment\""),
        ] {
            let e = find(&rules, &claims(&change)).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, Refusal::NoMatch(_)), "{change}: {e}");
            assert!(
                text.contains(word) && text.contains("deploy:"),
                "{change}: {text}"
            );
            assert!(
                !text.contains("evil") && !text.contains("staging"),
                "{text}"
            );
        }
        let untrusted = claims(&json!({"iss": "https://gitlab.com"}));
        assert_eq!(
            find(&rules, &untrusted).unwrap_err(),
            Refusal::UntrustedIssuer
        );
        let mut off = rule("deploy");
        off.enabled = false;
        let e = find(&[off], &claims(&json!({}))).unwrap_err();
        assert!(e.to_string().contains("disabled"), "{e}");
    }

    /// Rules are tried in order; a later one may match what an earlier one refused.
    #[test]
    fn rules_are_tried_in_order() {
        let mut staging = rule("staging");
        staging.claims[2].1 = vec![Pattern::parse("staging")];
        let rules = [rule("deploy"), staging];
        let c = claims(&json!({"environment": "staging"}));
        assert_eq!(find(&rules, &c).unwrap().name, "staging");
    }

    #[test]
    fn times_are_checked_with_skew_and_age() {
        let now = 1_000_000;
        let day = Duration::from_secs(86_400);
        let at = |exp: i64, iat: Option<i64>, nbf: Option<i64>| {
            let mut c = Map::new();
            c.insert("exp".into(), json!(exp));
            if let Some(i) = iat {
                c.insert("iat".into(), json!(i));
            }
            if let Some(n) = nbf {
                c.insert("nbf".into(), json!(n));
            }
            c
        };
        assert_eq!(
            check_times(&at(now + 300, Some(now), None), day, now),
            Ok(())
        );
        assert_eq!(
            check_times(&at(now - 61, Some(now - 400), None), day, now),
            Err(Refusal::Expired)
        );
        assert_eq!(
            check_times(&at(now + 300, Some(now + 120), None), day, now),
            Err(Refusal::NotYetValid)
        );
        assert_eq!(
            check_times(&at(now + 300, Some(now), Some(now + 120)), day, now),
            Err(Refusal::NotYetValid)
        );
        assert_eq!(
            check_times(&at(now + 300, None, None), day, now),
            Err(Refusal::TooOld(86_400))
        );
        let hour = Duration::from_secs(3600);
        assert_eq!(
            check_times(&at(now + 300, Some(now - 7200), None), hour, now),
            Err(Refusal::TooOld(3600))
        );
        assert!(check_times(&Map::new(), hour, now).is_err());
    }

    #[test]
    fn templates_refuse_names_a_person_could_have() {
        assert_eq!(Template::parse("{actor}"), Err(TemplateError::Prefix));
        assert_eq!(Template::parse("ci-{actor}"), Err(TemplateError::Prefix));
        assert_eq!(Template::parse("system:ci:{x}"), Err(TemplateError::System));
        assert_eq!(Template::parse("ci:{"), Err(TemplateError::Placeholder));
        assert_eq!(Template::parse("ci:{}"), Err(TemplateError::Placeholder));
        assert_eq!(Template::parse("ci:}"), Err(TemplateError::Placeholder));
        let t = Template::parse("ci:gitlab:{project_path}@{ref}").unwrap();
        assert_eq!(t.claims().collect::<Vec<_>>(), ["project_path", "ref"]);
        assert!(Template::parse("ci:static-name").is_ok());
    }

    /// A claim value cannot smuggle separators, spaces or control characters into the name.
    #[test]
    fn claim_values_in_names_are_restricted() {
        let t = Template::parse("ci:{repository}").unwrap();
        for bad in [
            json!("a b"),
            json!("a\nb"),
            json!(""),
            json!({"x": 1}),
            json!("é"),
        ] {
            let c = claims(&json!({"repository": bad}));
            assert!(
                matches!(t.render(&c), Err(Refusal::IdentityClaim(_))),
                "{bad}"
            );
        }
        let c = claims(&json!({"repository": "x".repeat(300)}));
        assert!(t.render(&c).is_err());
        assert_eq!(t.render(&claims(&json!({}))).unwrap(), "ci:acme/deploy");
    }

    #[test]
    fn evidence_keeps_the_run_and_the_matched_claims() {
        let mut r = rule("deploy");
        r.claims.push(("custom".into(), vec![Pattern::parse("*")]));
        let e = evidence(&r, &claims(&json!({"custom": "yes", "secret_thing": "no"})));
        assert_eq!(e["run_id"], "42");
        assert_eq!(e["custom"], "yes");
        assert!(!e.contains_key("secret_thing"));
    }
}
