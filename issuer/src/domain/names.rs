//! Rules for user and group names: they become Kubernetes user and group names (behind the
//! API server's prefix), so they must not be able to pose as `system:` identities or smuggle
//! separators into RBAC subjects. Also the rules a grant and an access request share for their
//! namespaces and free text, so that both refuse the same things with the same words.

/// Prefix of the token groups derived from grants.
pub const GRANT_GROUP_PREFIX: &str = "grant:";

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty or too long.
    #[error("must be 1 to {max} characters")]
    Length {
        /// Maximum length.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("may contain only letters, digits and . _ @ - (got {0:?})")]
    Character(char),
    /// Reserved by Kubernetes.
    #[error("must not start with `system:`")]
    Reserved,
    /// Reserved for the groups that grants add to tokens.
    #[error("must not start with `grant:` (reserved for groups derived from grants)")]
    ReservedForGrants,
}

/// Validates a user name (also used as `preferred_username`).
pub fn validate_username(name: &str) -> Result<(), NameError> {
    validate(name, 64, &['.', '_', '@', '-'])
}

/// Validates a group name (`:` and `/` allowed for names like `team:sre` or `org/team`). Names
/// starting with `grant:` are refused: tokens carry such groups only for grants in force.
pub fn validate_group(name: &str) -> Result<(), NameError> {
    if name.starts_with(GRANT_GROUP_PREFIX) {
        return Err(NameError::ReservedForGrants);
    }
    validate(name, 128, &['.', '_', '@', '-', ':', '/'])
}

fn validate(name: &str, max: usize, extra: &[char]) -> Result<(), NameError> {
    if name.is_empty() || name.len() > max {
        return Err(NameError::Length { max });
    }
    if name.starts_with("system:") {
        return Err(NameError::Reserved);
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(c)))
    {
        Some(c) => Err(NameError::Character(c)),
        None => Ok(()),
    }
}

/// A DNS-1123 label: 1 to 63 of `[a-z0-9-]`, starting and ending with a letter or digit.
#[must_use]
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Longest free text (reason, comment), in characters.
pub const MAX_TEXT: usize = 500;

/// Why the namespaces or the free text of a grant or an access request were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermError {
    /// A namespace name is not a DNS-1123 label.
    #[error("`{0}` is not a valid namespace name (lower-case letters, digits and -, at most 63)")]
    Namespace(String),
    /// The same namespace twice.
    #[error("namespace `{0}` is named twice")]
    DuplicateNamespace(String),
    /// A free-text field is too long or has control characters.
    #[error("`{0}` must be at most 500 printable characters")]
    Text(&'static str),
}

/// Checks a list of namespaces: each a DNS-1123 label, none named twice.
pub fn check_namespaces(namespaces: &[String]) -> Result<(), TermError> {
    for (i, ns) in namespaces.iter().enumerate() {
        if !is_dns_label(ns) {
            return Err(TermError::Namespace(ns.clone()));
        }
        if namespaces[..i].contains(ns) {
            return Err(TermError::DuplicateNamespace(ns.clone()));
        }
    }
    Ok(())
}

/// Checks a free-text field: at most [`MAX_TEXT`] characters, none of them a control character.
pub fn check_text(field: &'static str, text: Option<&str>) -> Result<(), TermError> {
    match text {
        Some(t) if t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) => {
            Err(TermError::Text(field))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_username("alice.smith@corp"), Ok(()));
        assert_eq!(validate_username(""), Err(NameError::Length { max: 64 }));
        assert_eq!(validate_username("system:admin"), Err(NameError::Reserved));
        assert_eq!(validate_username("a b"), Err(NameError::Character(' ')));
        assert_eq!(validate_username("a:b"), Err(NameError::Character(':')));
        assert_eq!(validate_group("team:sre"), Ok(()));
        assert_eq!(validate_group("system:masters"), Err(NameError::Reserved));
        assert_eq!(validate_group("a\nb"), Err(NameError::Character('\n')));
        assert_eq!(
            validate_group("grant:admin"),
            Err(NameError::ReservedForGrants)
        );
    }
}
