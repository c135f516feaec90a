//! Handler tests of the auditors' page (`/audit`: sign-in and back, 403 for non-auditors,
//! filters, paging, the download, the view recorded) and of the trail's coverage: every kind of
//! event the issue lists is written, with its fields in their columns, so that a test fails
//! when a handler stops recording one.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use axum::http::{header, StatusCode};
use credential_shared::oauth::TokenResponse;

use super::test_support::{logged_in, Reply, TestApp, USER_PASSWORD};
use crate::domain::audit_chain::Record;
use crate::domain::grants::{Grant, Grantee};
use crate::store::AuditFilter;

async fn app() -> TestApp {
    TestApp::with(|f| {
        f.audit = Some(crate::config::FileAudit {
            auditor_groups: vec!["auditors".into()],
        });
        f.roles = vec![crate::config::FileRole {
            name: "editor".into(),
            cluster_role: Some("edit".into()),
            ..crate::config::FileRole::default()
        }];
    })
    .await
}

/// Signs `user` in on the sign-in page of the browser holding `cookie`; returns the reply.
async fn sign_in(app: &TestApp, cookie: &str, user: &str) -> Reply {
    app.sign_in(cookie, user, USER_PASSWORD).await
}

/// A browser signed in as `user` (who must exist): its cookie.
async fn browser_of(app: &TestApp, user: &str) -> String {
    let (_, cookie) = app.browser("/login").await;
    let r = sign_in(app, &cookie, user).await;
    r.cookie().expect("sign-in sets a new cookie")
}

async fn trail(app: &TestApp) -> Vec<Record> {
    app.state
        .store()
        .audit_page(0, 10_000, &AuditFilter::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn strangers_sign_in_and_come_back_and_non_auditors_get_403() {
    let app = app().await;
    app.add_user("ann", &["auditors"]).await;
    app.add_user("bob", &["dev"]).await;

    // Not signed in: to the sign-in page, remembering where to come back to.
    let r = app.get("/audit?cluster=default&event=login", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/login");
    let cookie = r.cookie().expect("a browser session for the sign-in");
    let r = sign_in(&app, &cookie, "ann").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.headers[header::LOCATION],
        "/audit?cluster=default&event=login"
    );
    let ann = r.cookie().unwrap();
    let page = app
        .get("/audit?cluster=default&event=login", Some(&ann))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Audit trail"), "{}", page.body);
    assert!(
        page.body.contains(r#"value="default""#),
        "filters shown back"
    );

    // Signed in, not an auditor: a clear 403 page, and the attempt is recorded.
    let bob = browser_of(&app, "bob").await;
    let r = app.get("/audit", Some(&bob)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("Not an auditor"), "{}", r.body);
    assert!(r.body.contains("bob"), "{}", r.body);
    assert!(!r.body.contains("<table>"), "no events for a non-auditor");
    assert!(!r.body.contains(r#"href="/device""#), "{}", r.body);
    let r = app.get("/audit/export", Some(&bob)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let events: Vec<String> = trail(&app)
        .await
        .into_iter()
        .map(|r| r.facts.event)
        .collect();
    assert!(
        events.iter().any(|e| e == "audit.view_refused"),
        "{events:?}"
    );

    // A sign-in page visit never redirects anywhere but the audit page.
    let r = app
        .get("/audit?x=%0d%0aLocation:%20https://evil", None)
        .await;
    let cookie = r.cookie().unwrap();
    let r = sign_in(&app, &cookie, "ann").await;
    let to = r.headers[header::LOCATION].to_str().unwrap().to_owned();
    assert!(to.starts_with("/audit?"), "{to}");
    assert!(!to.contains('\n'), "{to}");
}

#[tokio::test]
async fn filters_page_and_download_select_the_same_events_and_views_are_audited() {
    let app = app().await;
    app.add_user("ann", &["auditors"]).await;
    let erin: TokenResponse = logged_in(&app, "erin").await;
    app.advance(60);
    let r = app.refresh(&erin.refresh_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let _ = logged_in(&app, "fred").await;
    crate::service::admin::seal_audit_trail(app.state.store())
        .await
        .unwrap();
    let ann = browser_of(&app, "ann").await;

    let page = app.get("/audit?person=erin&event=login", Some(&ann)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let rows = page.body.matches(r#"<tr class="event">"#).count();
    assert_eq!(rows, 1, "only erin's login: {}", page.body);
    assert!(page.body.contains("<td>login</td>"));
    assert!(page.body.contains("<td>erin</td>"));
    assert!(!page.body.contains("<td>fred</td>"));
    assert!(page.body.contains("Hash chain intact"), "{}", page.body);
    assert!(
        page.body
            .contains(r#"href="/audit/export?person=erin&amp;event=login""#),
        "{}",
        page.body
    );

    // The download has the same selection, all of it, as JSON lines.
    let dl = app.get("/audit/export?person=erin", Some(&ann)).await;
    assert_eq!(dl.status, StatusCode::OK, "{}", dl.body);
    assert!(dl.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/x-ndjson"));
    let lines: Vec<serde_json::Value> = dl
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    assert!(
        names.contains(&"login") && names.contains(&"refresh"),
        "{names:?}"
    );
    assert!(!dl.body.contains("fred"), "{}", dl.body);

    // Login and refresh rows name the person, not their opaque id; the export keeps the id.
    let erin_id = app.user("erin").await.id;
    let page = app.get("/audit?person=erin", Some(&ann)).await;
    assert!(
        page.body
            .contains(&format!(r#"<td title="{erin_id}">erin</td>"#)),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&format!(">{erin_id}<")),
        "no cell shows the id: {}",
        page.body
    );
    assert!(
        lines.iter().any(|l| l["subject"] == erin_id.as_str()),
        "{}",
        dl.body
    );

    // Paging: one event per page would need 50+; instead check the cursor skips what it saw.
    let all = trail(&app).await;
    let first = all.first().unwrap().seq;
    let after = app.get(&format!("/audit?after={first}"), Some(&ann)).await;
    assert!(!after.body.contains(&format!(
        "<tr class=\"event\"><td class=\"num\">{first}</td>"
    )));

    // Bad dates are a clear 400 page.
    let bad = app.get("/audit?from=yesterday", Some(&ann)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("yesterday"), "{}", bad.body);
    // Its way on is the trail again, not a device sign-in.
    assert!(bad.body.contains(r#"href="/audit""#), "{}", bad.body);
    assert!(!bad.body.contains(r#"href="/device""#), "{}", bad.body);

    // Every view is itself an audit event, with the filters in its detail.
    let viewed: Vec<Record> = trail(&app)
        .await
        .into_iter()
        .filter(|r| r.facts.event == "audit.viewed")
        .collect();
    assert!(viewed.len() >= 3, "{viewed:?}");
    assert_eq!(viewed[0].facts.actor.as_deref(), Some("ann"));
    assert!(viewed[0]
        .facts
        .detail
        .as_deref()
        .unwrap()
        .contains(r#""person":"erin""#));
    assert_eq!(viewed[0].facts.client_addr.as_deref(), Some("192.0.2.7"));
}

#[tokio::test]
async fn a_broken_chain_is_shown_on_the_page() {
    let app = app().await;
    app.add_user("ann", &["auditors"]).await;
    crate::service::admin::seal_audit_trail(app.state.store())
        .await
        .unwrap();
    app.state.store().tamper_for_tests().await;
    let ann = browser_of(&app, "ann").await;
    let page = app.get("/audit", Some(&ann)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Hash chain BROKEN"), "{}", page.body);
}

fn find<'a>(trail: &'a [Record], event: &str) -> &'a Record {
    trail
        .iter()
        .find(|r| r.facts.event == event)
        .unwrap_or_else(|| {
            panic!(
                "no {event} event in {:?}",
                trail.iter().map(|r| &r.facts.event).collect::<Vec<_>>()
            )
        })
}

/// The issue's list, event by event: login, token issued (login and refresh, with groups and
/// grant ids), approval, denial, grant changes, revocations and failed attempts.
#[tokio::test]
async fn every_kind_of_event_is_recorded_with_its_fields() {
    let app = app().await;
    let gina = logged_in(&app, "gina").await;
    let now = app.clock.now_for_tests();
    let grant = crate::service::admin::add_grant(
        app.state.store(),
        app.state.config(),
        &Grant {
            id: crate::service::admin::grant_id(),
            grantee: Grantee::User("gina".into()),
            cluster: "default".into(),
            namespaces: vec!["payments".into()],
            role: "editor".into(),
            starts_at: now,
            ends_at: now + time::Duration::hours(2),
            reason: Some("INC-42".into()),
            created_by: "admin-cli".into(),
            approved_by: Some("carol".into()),
            request_id: Some("req-7".into()),
            revoked_at: None,
            revoked_by: None,
        },
        now,
    )
    .await
    .unwrap();
    app.advance(60);
    let r = app.refresh(&gina.refresh_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let refreshed: TokenResponse = r.json();
    crate::service::admin::revoke_grant(
        app.state.store(),
        &grant.id,
        Some("done"),
        "admin-cli",
        app.clock.now_for_tests(),
    )
    .await
    .unwrap();
    // A denial and a failed sign-in.
    app.add_user("hal", &["dev"]).await;
    let d = app.start().await;
    app.decide(&d.user_code, "hal", "deny").await;
    let (page, cookie) = app.browser("/login").await;
    app.sign_in_form(&cookie, &page.csrf(), "hal", "wrong")
        .await;
    // A revocation by the client (logout).
    app.revoke(&refreshed.refresh_token).await;

    let t = trail(&app).await;
    let login = find(&t, "login");
    assert_eq!(login.facts.actor.as_deref(), Some("gina"));
    assert_eq!(login.facts.cluster.as_deref(), Some("default"));
    assert_eq!(login.facts.client_addr.as_deref(), Some("192.0.2.7"));
    assert!(login.facts.request_id.is_some());
    let detail: serde_json::Value =
        serde_json::from_str(login.facts.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["groups"], serde_json::json!(["dev"]), "{detail}");
    assert_eq!(detail["grants"], serde_json::json!([]), "{detail}");

    let refresh = find(&t, "refresh");
    assert_eq!(refresh.facts.actor.as_deref(), Some("gina"));
    assert_eq!(refresh.facts.cluster.as_deref(), Some("default"));
    assert_eq!(refresh.facts.client_addr.as_deref(), Some("192.0.2.7"));
    let detail: serde_json::Value =
        serde_json::from_str(refresh.facts.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["grants"], serde_json::json!([grant.id]), "{detail}");
    assert!(
        detail["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "grant:editor:payments"),
        "{detail}"
    );
    assert_eq!(
        t.iter().filter(|r| r.facts.event == "refresh").count(),
        1,
        "one row per refresh"
    );

    for event in ["grant.created", "grant.revoked"] {
        let g = find(&t, event);
        assert_eq!(g.facts.namespace.as_deref(), Some("payments"), "{event}");
        assert_eq!(g.facts.role.as_deref(), Some("editor"), "{event}");
        assert_eq!(g.facts.approver.as_deref(), Some("carol"), "{event}");
        assert_eq!(g.facts.subject.as_deref(), Some("user:gina"), "{event}");
    }
    assert_eq!(
        find(&t, "grant.created").facts.reason.as_deref(),
        Some("INC-42")
    );
    assert_eq!(
        find(&t, "grant.created").facts.request_id.as_deref(),
        Some("req-7")
    );
    assert_eq!(
        find(&t, "grant.revoked").facts.reason.as_deref(),
        Some("done")
    );

    assert_eq!(
        find(&t, "device.approved").facts.cluster.as_deref(),
        Some("default")
    );
    let denied = find(&t, "device.denied");
    assert_eq!(denied.facts.cluster.as_deref(), Some("default"));
    assert_eq!(denied.facts.client_addr.as_deref(), Some("192.0.2.7"));
    let failed = find(&t, "login.failed");
    assert_eq!(failed.facts.client_addr.as_deref(), Some("192.0.2.7"));
    assert!(failed.facts.request_id.is_some());
    let logout = find(&t, "logout");
    assert!(logout.facts.subject.is_some() && logout.facts.client_addr.is_some());
}

/// The events `docs/operations.md` ("What is recorded") names, as written there (`*` patterns
/// included), from the table's "events" column; text in parentheses explains, it names none.
fn documented_events() -> Vec<String> {
    let docs = include_str!("../../../docs/operations.md");
    let section = &docs[docs.find("### What is recorded").expect("the section")..];
    let mut events = Vec::new();
    for line in section.lines().skip(1).take_while(|l| !l.starts_with('#')) {
        let cells: Vec<&str> = line.split('|').collect();
        if cells.len() < 4 || cells[2].trim().starts_with("---") || cells[2].trim() == "events" {
            continue;
        }
        let mut cell = String::new();
        let mut depth = 0_u32;
        for c in cells[2].chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ if depth == 0 => cell.push(c),
                _ => {}
            }
        }
        events.extend(cell.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    events
}

/// Every string literal of the issuer's non-test code that looks like an event name.
fn event_literals_in_code() -> std::collections::BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut std::collections::BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.extension().is_none_or(|e| e != "rs") || name.ends_with("_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests sit at the bottom of a file; what they write proves nothing.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for lit in code.split('"').skip(1).step_by(2) {
                if !lit.is_empty()
                    && lit
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
                {
                    out.insert(lit.to_owned());
                }
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut out,
    );
    out
}

/// Every state change the operations guide names has its event in the code: each documented
/// name is written by the issuer (a `*` pattern by at least one event), and the main ones are
/// produced live by the tests above.
#[test]
fn every_documented_event_is_written_by_the_code() {
    let documented = documented_events();
    assert!(
        documented.len() >= 30,
        "the table was not read: {documented:?}"
    );
    let code = event_literals_in_code();
    let mut missing = Vec::new();
    for event in &documented {
        let found = match event.strip_suffix('*') {
            // `login.refused.*`, `login.upstream*`, `invitation.*`: some event of that family.
            Some(prefix) => code
                .iter()
                .any(|c| c.starts_with(prefix) && c.len() > prefix.len()),
            None => code.contains(event),
        };
        if !found {
            missing.push(event.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "documented in docs/operations.md but written nowhere in issuer/src: {missing:?}"
    );
    // The events this file and requests_tests.rs see written by a walk through the handlers
    // are among the documented ones (a renamed event fails here or there).
    for live in [
        "login",
        "refresh",
        "logout",
        "login.failed",
        "device.approved",
        "device.denied",
        "grant.created",
        "grant.revoked",
        "audit.viewed",
        "audit.view_refused",
        "request.filed",
        "request.approved",
        "request.break_glass",
    ] {
        assert!(
            documented.iter().any(|d| d == live),
            "`{live}` is recorded but not documented"
        );
    }
}
