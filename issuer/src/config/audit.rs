//! `[audit]`: who may read the audit trail on the `/audit` page.

use super::{invalid, ConfigError, FileAudit};

/// `[audit]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditConfig {
    /// Members of any of these (identity) groups may open `/audit`; empty: nobody may.
    pub auditor_groups: Vec<String>,
}

/// `[audit]`: every auditor group a valid group name.
pub(super) fn audit(file: Option<FileAudit>) -> Result<AuditConfig, ConfigError> {
    let audit = AuditConfig {
        auditor_groups: file.map(|a| a.auditor_groups).unwrap_or_default(),
    };
    for (i, g) in audit.auditor_groups.iter().enumerate() {
        crate::domain::names::validate_group(g)
            .map_err(|e| invalid(format!("audit.auditor_groups[{i}]"), e.to_string()))?;
    }
    Ok(audit)
}
