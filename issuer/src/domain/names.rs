//! Rules for user and group names: they become Kubernetes user and group names (behind the
//! API server's prefix), so they must not be able to pose as `system:` identities or smuggle
//! separators into RBAC subjects.

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
