//! The HTML of the auditors' page (`/audit`): the filter form, the chain status, one page of
//! events and the links to the next page and to the JSON-lines download. A maud template:
//! every value escaped, no JavaScript. Field names (`person`, `cluster`, `namespace`, `event`, `from`, `to`,
//! `after`) are a contract tests and bookmarks use.

use maud::{html, Markup};
use std::collections::HashMap;

use super::templates::{constant, layout};
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

/// The page's own styles. Cells never wrap inside a word or a number ("Clust er", "1 0"): they
/// keep one line and the table scrolls sideways in its own box at any width (1280 px shows
/// every column; a phone scrolls). Only the free-text reason wraps, at spaces.
const STYLE: &str = "main{max-width:none;margin:1rem}\
     .scroll{overflow-x:auto;border:1px solid #dde1e8;border-radius:6px;margin:.6rem 0}\
     table.trail{border-collapse:collapse;font-size:.85rem;width:100%}\
     table.trail th,table.trail td{border-bottom:1px solid #dde1e8;padding:.3rem .4rem;text-align:left;vertical-align:top;white-space:nowrap}\
     table.trail th{background:#f4f5f7}table.trail td.num{text-align:right}\
     table.trail td.reason{white-space:normal;min-width:9rem;max-width:15rem;overflow-wrap:break-word}\
     form.filters label{display:inline-block;margin:.3rem .8rem .3rem 0;font-weight:600}\
     form.filters input{width:11rem;padding:.3rem;font-size:.9rem}\
     form.filters input::placeholder{color:#8a94a6;font-style:italic;font-weight:400}\
     .ok{color:#067647}.bad{color:#b42318;font-weight:700}\
     @media (max-width:40rem){main{margin:0;padding:1rem}form.filters label{display:block}form.filters input{width:100%;box-sizing:border-box}}";

fn cell(v: Option<&str>) -> Markup {
    html! { td { (v.unwrap_or("")) } }
}

fn input(name: &str, label: &str, value: &str, hint: &str) -> Markup {
    html! { label { (label) " " input type="text" name=(name) value=(value) placeholder=(hint); } }
}

/// The subject cell: the account's name where the subject is a user id (the id kept in the
/// cell's `title` and in the export), else the subject as recorded.
fn subject_cell(subject: Option<&str>, names: &HashMap<String, String>) -> Markup {
    match subject.and_then(|s| names.get(s).map(|n| (s, n))) {
        Some((id, name)) => html! { td title=(id) { (name) } },
        None => cell(subject),
    }
}

/// The chain's status line.
fn chain_line(chain: &ChainStatus) -> Markup {
    match chain {
        ChainStatus::Verified(s) => {
            let head = s.head.as_ref().map_or_else(
                || "no events chained yet".to_owned(),
                |(seq, _)| format!("verified up to head {seq}"),
            );
            html! {
                p class="ok" id="chain" {
                    "Hash chain intact: " (s.sealed) " event(s) " (head) "; " (s.pending)
                    " newest not sealed yet."
                }
            }
        }
        ChainStatus::Broken(why) => html! {
            p class="bad" id="chain" { "Hash chain BROKEN: " (why) }
        },
    }
}

/// One event as a table row.
fn row(r: &Record, names: &HashMap<String, String>) -> Markup {
    let f = &r.facts;
    html! {
        tr class="event" {
            td class="num" { (r.seq) }
            td { (time(r.at)) }
            (cell(Some(&f.event)))
            (cell(f.actor.as_deref()))
            (subject_cell(f.subject.as_deref(), names))
            (cell(f.cluster.as_deref()))
            (cell(f.namespace.as_deref()))
            (cell(f.role.as_deref()))
            td class="reason" { (f.reason.as_deref().unwrap_or("")) }
            (cell(f.approver.as_deref()))
            (cell(f.client_addr.as_deref()))
            (cell(f.request_id.as_deref()))
        }
    }
}

/// The page: form, chain status, table, links. `names` maps subject user ids to account
/// names.
pub(super) fn audit_page(
    auditor: &str,
    f: &Filters,
    rows: &[Record],
    names: &HashMap<String, String>,
    chain: &ChainStatus,
    after: Option<i64>,
    next: Option<i64>,
) -> String {
    let body = html! {
        style { (constant(STYLE)) }
        p class="muted" {
            "Signed in as " strong { (auditor) }
            ". Times are UTC. This view is recorded in the audit trail."
        }
        (chain_line(chain))
        form class="filters" method="get" action="/audit" {
            (input("person", "Person", &f.person, "name or id"))
            (input("cluster", "Cluster", &f.cluster, "any"))
            (input("namespace", "Namespace", &f.namespace, "any"))
            (input("event", "Event", &f.event, "e.g. login, grant"))
            // Hints that read as hints, not as dates already filled in.
            (input("from", "From", &f.from, "YYYY-MM-DD"))
            (input("to", "To (inclusive date)", &f.to, "YYYY-MM-DD"))
            button type="submit" { "Filter" } " " a href="/audit" { "Reset" }
        }
        p {
            a id="download" href={ "/audit/export?" (f.query(None)) } {
                "Download this selection as JSON lines"
            }
        }
        div class="scroll" {
            table class="trail" {
                thead { tr {
                    th { "#" } th { "Time (UTC)" } th { "Event" } th { "Actor" }
                    th { "Subject" } th { "Cluster" } th { "Namespace" } th { "Role" }
                    th { "Reason" } th { "Approver" } th { "Address" } th { "Request id" }
                } }
                tbody {
                    @if rows.is_empty() {
                        tr { td colspan="12" { "No events match." } }
                    }
                    @for r in rows {
                        (row(r, names))
                    }
                }
            }
        }
        p {
            @if after.is_some() {
                a href={ "/audit?" (f.query(None)) } { "First page" } " "
            }
            @if let Some(n) = next {
                a id="next" href={ "/audit?" (f.query(Some(n))) } { "Next page" }
            }
        }
    };
    layout("Audit trail", &body)
}

#[cfg(test)]
mod tests {
    use super::super::templates::{assert_escaped, HOSTILE};
    use super::*;
    use crate::domain::audit_chain::Facts;

    #[test]
    fn every_value_on_the_audit_page_is_escaped() {
        let h = HOSTILE.to_owned();
        let f = Filters {
            person: h.clone(),
            cluster: h.clone(),
            namespace: h.clone(),
            event: h.clone(),
            from: h.clone(),
            to: h.clone(),
        };
        let r = Record {
            seq: 1,
            at: 1_800_000_000,
            facts: Facts {
                event: h.clone(),
                actor: Some(h.clone()),
                subject: Some(h.clone()),
                cluster: Some(h.clone()),
                namespace: Some(h.clone()),
                role: Some(h.clone()),
                reason: Some(h.clone()),
                approver: Some(h.clone()),
                client_addr: Some(h.clone()),
                request_id: Some(h.clone()),
                ..Facts::default()
            },
            ..Record::default()
        };
        let names = HashMap::from([(h.clone(), h.clone())]);
        let chain = ChainStatus::Broken(h.clone());
        let html = audit_page(&h, &f, &[r], &names, &chain, Some(1), Some(2));
        // The auditor, the chain, six filters and eleven cells (the subject's name and id).
        assert_escaped(&html, 19);
        // The links carry the filters percent-encoded: download, first and next page.
        assert_eq!(
            html.matches("person=%3Cscript%3E%22%27%26x&amp;").count(),
            3,
            "{html}"
        );
    }

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
            facts: Facts {
                event: "login".into(),
                actor: Some("<b>mallory</b>".into()),
                ..Facts::default()
            },
            ..Record::default()
        };
        let chain = ChainStatus::Broken("the chain breaks at event 3".into());
        let html = audit_page("ann", &f, &[r], &HashMap::new(), &chain, None, Some(7));
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

    /// The table stays readable at any width: no cell breaks inside a word, the table scrolls
    /// in its own box, and the date fields are empty with a hint, not prefilled-looking dates.
    #[test]
    fn cells_keep_one_line_in_a_scroll_box_and_hints_are_placeholders() {
        let r = Record {
            seq: 10,
            at: 1_800_000_000,
            facts: Facts {
                event: "login".into(),
                subject: Some("u-tjMlBurBKbHsJKea".into()),
                cluster: Some("default".into()),
                client_addr: Some("127.0.0.1".into()),
                ..Facts::default()
            },
            ..Record::default()
        };
        let names = HashMap::from([("u-tjMlBurBKbHsJKea".to_owned(), "gina".to_owned())]);
        let chain = ChainStatus::Broken("x".into());
        let html = audit_page("ann", &Filters::default(), &[r], &names, &chain, None, None);
        let marker = "table.trail th,table.trail td{";
        let rule = &html[html
            .find(marker)
            .unwrap_or_else(|| panic!("no rule for the cells: {html}"))
            + marker.len()..];
        let rule = &rule[..rule.find('}').unwrap_or(rule.len())];
        assert!(rule.contains("white-space:nowrap"), "{rule}");
        assert!(!rule.contains("overflow-wrap"), "{rule}");
        let scroll = html
            .find(r#"<div class="scroll">"#)
            .unwrap_or_else(|| panic!("no scroll box: {html}"));
        let table = html
            .find(r#"<table class="trail">"#)
            .unwrap_or_else(|| panic!("no table: {html}"));
        assert!(scroll < table, "the table is inside the scroll box");
        assert!(html.contains(".scroll{overflow-x:auto"), "{html}");
        for name in ["from", "to"] {
            assert!(
                html.contains(&format!(
                    r#"name="{name}" value="" placeholder="YYYY-MM-DD""#
                )),
                "{name}: {html}"
            );
        }
        assert!(
            !html.contains("2026-11-"),
            "no example date that reads as a value"
        );
        assert!(
            html.contains(r#"<td title="u-tjMlBurBKbHsJKea">gina</td>"#),
            "the subject reads as a name, its id on hover: {html}"
        );
    }
}
