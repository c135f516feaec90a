//! The HTML of the auditors' page (`/audit`): the filter form, the chain status, one page of
//! events and the links to the next page and to the JSON-lines download. Every value escaped,
//! no JavaScript. Field names (`person`, `cluster`, `namespace`, `event`, `from`, `to`,
//! `after`) are a contract tests and bookmarks use.

use std::fmt::Write as _;

use super::templates::{escape, layout};
use crate::domain::audit_chain::{Record, Summary};

/// The filter values as typed (shown back in the form and carried into the links).
#[derive(Debug, Clone, Default)]
pub(super) struct Filters {
    pub(super) person: String,
    pub(super) cluster: String,
    pub(super) namespace: String,
    pub(super) event: String,
    pub(super) from: String,
    pub(super) to: String,
}

impl Filters {
    /// The query string for these filters (and a paging cursor).
    fn query(&self, after: Option<i64>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("person", &self.person),
            ("cluster", &self.cluster),
            ("namespace", &self.namespace),
            ("event", &self.event),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if let Some(a) = after {
            q.append_pair("after", &a.to_string());
        }
        q.finish()
    }
}

/// Whether the hash chain verified.
#[derive(Debug)]
pub(super) enum ChainStatus {
    /// Intact up to its head.
    Verified(Summary),
    /// Where and how it breaks.
    Broken(String),
}

fn time(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .map_or_else(|| at.to_string(), |t| format!("{t}Z"))
}

fn cell(v: Option<&str>) -> String {
    format!("<td>{}</td>", escape(v.unwrap_or("")))
}

fn input(name: &str, label: &str, value: &str, hint: &str) -> String {
    format!(
        r#"<label>{label} <input type="text" name="{name}" value="{}" placeholder="{hint}"></label>"#,
        escape(value)
    )
}

/// The page: form, chain status, table, links.
pub(super) fn audit_page(
    auditor: &str,
    f: &Filters,
    rows: &[Record],
    chain: &ChainStatus,
    after: Option<i64>,
    next: Option<i64>,
) -> String {
    let mut b = String::new();
    b.push_str(
        "<style>main{max-width:none;margin:1rem}table{border-collapse:collapse;font-size:.85rem;width:100%}\
         th,td{border-bottom:1px solid #dde1e8;padding:.3rem .4rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}\
         form.filters label{display:inline-block;margin:.3rem .8rem .3rem 0;font-weight:600}\
         form.filters input{width:11rem;padding:.3rem;font-size:.9rem}.ok{color:#067647}.bad{color:#b42318;font-weight:700}</style>",
    );
    let _ = write!(
        b,
        "<p class=\"muted\">Signed in as <strong>{}</strong>. Times are UTC. This view is recorded in the audit trail.</p>",
        escape(auditor)
    );
    match chain {
        ChainStatus::Verified(s) => {
            let head = s.head.as_ref().map_or_else(
                || "no events chained yet".to_owned(),
                |(seq, _)| format!("verified up to head {seq}"),
            );
            let _ = write!(
                b,
                "<p class=\"ok\" id=\"chain\">Hash chain intact: {} event(s) {}; {} newest not sealed yet.</p>",
                s.sealed,
                escape(&head),
                s.pending
            );
        }
        ChainStatus::Broken(why) => {
            let _ = write!(
                b,
                "<p class=\"bad\" id=\"chain\">Hash chain BROKEN: {}</p>",
                escape(why)
            );
        }
    }
    b.push_str(r#"<form class="filters" method="get" action="/audit">"#);
    b.push_str(&input("person", "Person", &f.person, "name or id"));
    b.push_str(&input("cluster", "Cluster", &f.cluster, "any"));
    b.push_str(&input("namespace", "Namespace", &f.namespace, "any"));
    b.push_str(&input("event", "Event", &f.event, "e.g. login, grant"));
    b.push_str(&input("from", "From", &f.from, "2026-11-01"));
    b.push_str(&input("to", "To (inclusive date)", &f.to, "2026-11-30"));
    b.push_str(r#"<button type="submit">Filter</button> <a href="/audit">Reset</a></form>"#);
    let _ = write!(
        b,
        r#"<p><a id="download" href="/audit/export?{}">Download this selection as JSON lines</a></p>"#,
        escape(&f.query(None))
    );
    b.push_str("<table><thead><tr><th>#</th><th>Time (UTC)</th><th>Event</th><th>Actor</th><th>Subject</th><th>Cluster</th><th>Namespace</th><th>Role</th><th>Reason</th><th>Approver</th><th>Address</th><th>Request id</th></tr></thead><tbody>");
    if rows.is_empty() {
        b.push_str(r#"<tr><td colspan="12">No events match.</td></tr>"#);
    }
    for r in rows {
        let _ = write!(
            b,
            "<tr class=\"event\"><td>{}</td><td>{}</td>{}{}{}{}{}{}{}{}{}{}</tr>",
            r.seq,
            time(r.at),
            cell(Some(&r.event)),
            cell(r.actor.as_deref()),
            cell(r.subject.as_deref()),
            cell(r.cluster.as_deref()),
            cell(r.namespace.as_deref()),
            cell(r.role.as_deref()),
            cell(r.reason.as_deref()),
            cell(r.approver.as_deref()),
            cell(r.client_addr.as_deref()),
            cell(r.request_id.as_deref()),
        );
    }
    b.push_str("</tbody></table><p>");
    if after.is_some() {
        let _ = write!(
            b,
            r#"<a href="/audit?{}">First page</a> "#,
            escape(&f.query(None))
        );
    }
    if let Some(n) = next {
        let _ = write!(
            b,
            r#"<a id="next" href="/audit?{}">Next page</a>"#,
            escape(&f.query(Some(n)))
        );
    }
    b.push_str("</p>");
    layout("Audit trail", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_links_keep_the_filters() {
        let f = Filters {
            person: "<script>".into(),
            cluster: "prod".into(),
            ..Filters::default()
        };
        let r = Record {
            seq: 7,
            at: 1_800_000_000,
            event: "login".into(),
            actor: Some("<b>mallory</b>".into()),
            ..Record::default()
        };
        let chain = ChainStatus::Broken("the chain breaks at event 3".into());
        let html = audit_page("ann", &f, &[r], &chain, None, Some(7));
        assert!(!html.contains("<b>mallory"), "{html}");
        assert!(html.contains("&lt;b&gt;mallory"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("Hash chain BROKEN: the chain breaks at event 3"));
        assert!(
            html.contains(r#"href="/audit/export?person=%3Cscript%3E&amp;cluster=prod""#),
            "{html}"
        );
        assert!(html.contains(r#"href="/audit?person=%3Cscript%3E&amp;cluster=prod&amp;after=7""#));
        assert!(html.contains("2027-01-15 08:00:00Z"), "{html}");
    }
}
