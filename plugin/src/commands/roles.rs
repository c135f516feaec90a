//! `roles` and the text it prints: the roles the issuer lets one request on the
//! session's cluster, with the longest `--for` as the issuer's config wrote it, who approves
//! and whether `--reason` is needed. Every value comes from the issuer and is escaped.

use std::fmt::Write as _;

use credential_shared::api::RoleList;
use credential_shared::text::Untrusted;

use crate::base::clock::Clock;
use crate::base::target::Target;
use crate::commands::show;
use crate::error::Error;
use crate::flow::session::with_live_token;

/// The table `roles` prints.
pub(crate) fn table(list: &RoleList) -> String {
    let cluster = list.cluster.as_deref().unwrap_or("this cluster");
    if list.roles.is_empty() {
        return format!("no role can be requested on {}\n", Untrusted::new(cluster));
    }
    let mut out = format!(
        "roles you may request on {} (kubectl credential request --role ROLE --for DURATION)\n{:<20}  {:<8}  {:<8}  APPROVAL\n",
        Untrusted::new(cluster),
        "ROLE",
        "AT MOST",
        "REASON"
    );
    for r in &list.roles {
        let approval = if !r.needs_approval {
            "none: approved at once, with an alert".to_owned()
        } else if r.approvers.is_empty() {
            "an administrator".to_owned()
        } else {
            format!("a member of {}", r.approvers.join(", "))
        };
        let row = format!(
            "{:<20}  {:<8}  {:<8}  {}",
            Untrusted::new(&r.name),
            Untrusted::new(&r.max_duration),
            if r.reason_required {
                "required"
            } else {
                "optional"
            },
            Untrusted::long(&approval),
        );
        let _ = writeln!(out, "{}", row.trim_end());
    }
    out
}

/// `roles`: what `request --role` accepts on the session's cluster.
pub(super) fn list_roles(args: &Target, clock: &dyn Clock) -> Result<(), Error> {
    with_live_token(args, clock, |client, token| {
        let list = client.roles(token)?;
        show::print(&table(&list))
    })
}

#[cfg(test)]
mod tests {
    use credential_shared::api::RoleInfo;

    use super::*;

    #[test]
    fn roles_show_their_limit_as_written_and_who_approves() {
        let list = RoleList {
            cluster: Some("prod".into()),
            roles: vec![
                RoleInfo {
                    name: "prod-exec".into(),
                    max_duration_secs: 14_400,
                    max_duration: "4h".into(),
                    needs_approval: true,
                    approvers: vec!["sre-leads".into()],
                    reason_required: true,
                    break_glass: false,
                },
                RoleInfo {
                    name: "glass\u{1b}[2J".into(),
                    max_duration_secs: 3600,
                    max_duration: "1h".into(),
                    needs_approval: false,
                    ..RoleInfo::default()
                },
            ],
        };
        let text = table(&list);
        assert!(text.contains("roles you may request on prod"), "{text}");
        assert!(
            text.contains("prod-exec             4h        required  a member of sre-leads"),
            "{text}"
        );
        assert!(text.contains("approved at once"), "{text}");
        assert!(!text.contains('\u{1b}'), "escaped: {text:?}");
        assert!(!text.contains("14400"), "{text}");
        let none = table(&RoleList::default());
        assert_eq!(none, "no role can be requested on this cluster\n");
    }
}
