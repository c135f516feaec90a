//! Group mapping: which Kubernetes groups a person's identity groups become in a cluster.
//!
//! Rules are ordered; for each identity group the first rule that matches it (and applies to the
//! cluster) decides: it is denied, or it becomes the rule's Kubernetes groups (by default its own
//! name). A group no rule names is dropped: the policy is default-deny. The one exception is an
//! empty rule list, where groups pass unchanged so that a zero-configuration issuer with local
//! accounts keeps working. Nothing here does IO; the explanation is data, rendered by the CLI.

use super::names::validate_group;

/// How a rule matches an identity group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// The exact name.
    Exact(String),
    /// A glob: `*` matches any run of characters, `?` one character.
    Glob(String),
}

impl Pattern {
    /// A pattern from config text: a glob if it holds `*` or `?`.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        if text.contains(['*', '?']) {
            Self::Glob(text.to_owned())
        } else {
            Self::Exact(text.to_owned())
        }
    }

    /// The text as configured.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Exact(s) | Self::Glob(s) => s,
        }
    }

    /// Whether `group` matches.
    #[must_use]
    pub fn matches(&self, group: &str) -> bool {
        match self {
            Self::Exact(s) => s == group,
            Self::Glob(p) => glob(p.as_bytes(), group.as_bytes()),
        }
    }
}

/// Iterative glob match with one backtrack point (linear in practice, no recursion).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// One rule of `[[policy.rules]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which identity groups it is about.
    pub group: Pattern,
    /// Kubernetes groups it gives; empty means "the identity group's own name".
    pub kubernetes_groups: Vec<String>,
    /// Clusters it applies to; `None` means all.
    pub clusters: Option<Vec<String>>,
    /// Denies the matching groups instead.
    pub deny: bool,
}

impl Rule {
    fn applies(&self, group: &str, cluster: &str) -> bool {
        self.clusters
            .as_ref()
            .is_none_or(|cs| cs.iter().any(|c| c == cluster))
            && self.group.matches(group)
    }
}

/// The ordered rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
}

/// A Kubernetes group in the result and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The Kubernetes group.
    pub group: String,
    /// The identity group it came from.
    pub from: String,
    /// Index of the rule that gave it; `None` when no rules are configured (pass-through).
    pub rule: Option<usize>,
}

/// Why an identity group gave nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Rule N denies it.
    Denied(usize),
    /// No rule names it (default deny).
    NoRule,
    /// The name it would become is reserved or invalid (`system:...`).
    Reserved(Option<usize>),
}

/// The outcome of mapping, with the reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Kubernetes groups, sorted by group name, one entry per group (the first rule wins).
    pub granted: Vec<Granted>,
    /// Identity groups that gave nothing, and why.
    pub dropped: Vec<(String, Dropped)>,
}

impl Mapping {
    /// Just the group names, sorted and unique: what goes into the token.
    #[must_use]
    pub fn groups(&self) -> Vec<String> {
        self.granted.iter().map(|g| g.group.clone()).collect()
    }
}

impl Policy {
    /// Maps `identity_groups` for `cluster`.
    #[must_use]
    pub fn map(&self, identity_groups: &[String], cluster: &str) -> Mapping {
        let mut m = Mapping::default();
        let give = |m: &mut Mapping, group: &str, from: &str, rule: Option<usize>| {
            if validate_group(group).is_err() {
                m.dropped.push((from.to_owned(), Dropped::Reserved(rule)));
            } else if !m.granted.iter().any(|g| g.group == group) {
                m.granted.push(Granted {
                    group: group.to_owned(),
                    from: from.to_owned(),
                    rule,
                });
            }
        };
        for g in identity_groups {
            if self.rules.is_empty() {
                give(&mut m, g, g, None);
                continue;
            }
            match self.rules.iter().position(|r| r.applies(g, cluster)) {
                None => m.dropped.push((g.clone(), Dropped::NoRule)),
                Some(i) if self.rules[i].deny => m.dropped.push((g.clone(), Dropped::Denied(i))),
                Some(i) if self.rules[i].kubernetes_groups.is_empty() => {
                    give(&mut m, g, g, Some(i));
                }
                Some(i) => {
                    for k in &self.rules[i].kubernetes_groups {
                        give(&mut m, k, g, Some(i));
                    }
                }
            }
        }
        m.granted.sort_by(|a, b| a.group.cmp(&b.group));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(group: &str, k: &[&str], clusters: Option<&[&str]>, deny: bool) -> Rule {
        Rule {
            group: Pattern::parse(group),
            kubernetes_groups: k.iter().map(|s| (*s).to_owned()).collect(),
            clusters: clusters.map(|cs| cs.iter().map(|s| (*s).to_owned()).collect()),
            deny,
        }
    }

    fn check(policy: &Policy, groups: &[&str], cluster: &str, want: &[&str]) -> Mapping {
        let groups: Vec<String> = groups.iter().map(|s| (*s).to_owned()).collect();
        let m = policy.map(&groups, cluster);
        assert_eq!(m.groups(), want, "{groups:?} in {cluster}: {m:?}");
        m
    }

    #[test]
    fn globs() {
        for (p, s, want) in [
            ("eng-*", "eng-platform", true),
            ("eng-*", "eng-", true),
            ("eng-*", "ops", false),
            ("*-admins", "k8s-admins", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("g?", "g1", true),
            ("g?", "g12", false),
            ("*", "", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(Pattern::parse(p).matches(s), want, "{p} vs {s}");
        }
    }

    #[test]
    fn no_rules_pass_everything_but_reserved_names() {
        let m = check(&Policy::default(), &["dev", "ops"], "c", &["dev", "ops"]);
        assert_eq!(m.granted[0].rule, None);
        let m = check(&Policy::default(), &["system:masters"], "c", &[]);
        assert_eq!(
            m.dropped,
            [("system:masters".to_owned(), Dropped::Reserved(None))]
        );
    }

    #[test]
    fn first_match_wins_default_deny_and_clusters() {
        let p = Policy {
            rules: vec![
                rule("eng-contractors", &[], None, true),
                rule("eng-*", &["developers"], None, false),
                rule("sre", &["admins", "developers"], Some(&["prod"]), false),
                rule("k8s-*", &[], None, false),
            ],
        };
        let m = check(
            &p,
            &["eng-contractors", "eng-web", "sre", "k8s-readers", "sales"],
            "prod",
            &["admins", "developers", "k8s-readers"],
        );
        assert_eq!(
            m.dropped,
            [
                ("eng-contractors".to_owned(), Dropped::Denied(0)),
                ("sales".to_owned(), Dropped::NoRule)
            ]
        );
        assert_eq!(
            m.granted[1],
            Granted {
                group: "developers".into(),
                from: "eng-web".into(),
                rule: Some(1)
            }
        );
        // The sre rule is for prod only.
        let m = check(&p, &["sre"], "staging", &[]);
        assert_eq!(m.dropped, [("sre".to_owned(), Dropped::NoRule)]);
    }

    #[test]
    fn mapping_can_never_produce_system_groups() {
        let p = Policy {
            rules: vec![rule("*", &[], None, false)],
        };
        let m = check(&p, &["system:masters", "ok"], "c", &["ok"]);
        assert_eq!(
            m.dropped,
            [("system:masters".to_owned(), Dropped::Reserved(Some(0)))]
        );
    }
}
