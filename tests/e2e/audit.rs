//! The audit trail an auditor is handed: a person's sign-in, approval, token and refresh are
//! events with who, where and from which address, exported as JSON lines by the real
//! `credential-issuer audit export`; `audit verify` passes on the live trail and names the
//! first event once someone with the database file edits one (after removing the database's
//! own append-only guard), and a head kept from before catches events cut off the end.

use std::time::Duration;

use e2e::wait::{self, Check};

use crate::procs::OwnIssuer;
use crate::world::CLUSTER;

#[test]
fn the_trail_exports_who_did_what_and_detects_an_edited_or_truncated_history() {
    let own = OwnIssuer::start("ava-audit", e2e::IssuerOptions::default());
    let issuer = &own.issuer;
    let tokens = issuer.login_over_http(CLUSTER, &own.username, &own.password);
    issuer
        .refresh(&tokens.refresh_token)
        .unwrap_or_else(|e| panic!("refresh: {e:?}"));

    // The server chains new events within a second or so.
    let head = wait::until(
        "the server chains the new events",
        Duration::from_secs(20),
        || {
            let out = issuer.cli(&["audit", "verify"], None);
            if !out.success() {
                return Check::Fail(format!("audit verify failed on an intact trail: {out}"));
            }
            if out.stdout.contains(" 0 newest not sealed yet") {
                Check::Done(out.stdout.clone())
            } else {
                Check::Retry(out.stdout.clone())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let head = head
        .lines()
        .find_map(|l| l.strip_prefix("head "))
        .unwrap_or_else(|| panic!("no head printed:\n{head}"))
        .to_owned();

    // What an auditor gets for this person.
    let export = issuer.cli(&["audit", "export", "--user", &own.username], None);
    export.assert_success();
    let events: Vec<serde_json::Value> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for expected in ["device.approved", "login", "refresh"] {
        assert!(
            names.contains(&expected),
            "no {expected} event in {names:?}"
        );
    }
    let login = events
        .iter()
        .find(|e| e["event"] == "login")
        .unwrap_or_else(|| panic!("no login"));
    assert_eq!(login["cluster"], CLUSTER, "{login}");
    assert_eq!(login["client_addr"], "127.0.0.1", "{login}");
    assert!(
        login["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{login}"
    );
    assert_eq!(login["hash"].as_str().map(str::len), Some(64), "{login}");
    assert!(
        !export.stdout.contains(&tokens.refresh_token) && !export.stdout.contains(&own.password),
        "a secret reached the audit export"
    );
    // A time window that ends before everything selects nothing.
    let none = issuer.cli(&["audit", "export", "--until", "2000-01-01"], None);
    none.assert_success();
    assert_eq!(none.stdout, "", "events before 2000 exported");
    issuer
        .cli(&["audit", "export", "--since", "yesterday"], None)
        .assert_code(1);

    let db = issuer.data_dir().join("issuer.db");
    // The database itself refuses edits and deletions of the trail...
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('DELETE FROM audit_events WHERE seq = 2'); c.commit()",
        ])
        .arg(&db)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("append-only"),
        "deleting an audit event was not refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and when the guard is removed and the login is rewritten, verify names the event.
    let login_seq = login["seq"].as_i64().unwrap_or_else(|| panic!("{login}"));
    own.issuer.sqlite(
        &format!(
            "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET client_addr = '10.9.9.9' WHERE seq = {login_seq};"
        ),
    );
    let broken = issuer.cli(&["audit", "verify"], None);
    broken.assert_code(1);
    assert!(
        broken
            .stderr
            .contains(&format!("the chain breaks at event {login_seq}")),
        "{broken}"
    );

    // Cutting events off the end keeps the rest of the chain valid; the kept head catches it.
    let own2 = OwnIssuer::start("ben-audit", e2e::IssuerOptions::default());
    let _ = own2
        .issuer
        .login_over_http(CLUSTER, &own2.username, &own2.password);
    let head2 = wait::until("events chained", Duration::from_secs(20), || {
        let out = own2.issuer.cli(&["audit", "verify"], None);
        match out.stdout.lines().find_map(|l| l.strip_prefix("head ")) {
            Some(h) if out.stdout.contains(" 0 newest") => Check::Done(h.to_owned()),
            _ => Check::Retry(out.to_string()),
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let (last, _) = head2.split_once(':').unwrap_or_else(|| panic!("{head2}"));
    own2.issuer.sqlite(&format!(
        "DROP TRIGGER audit_events_no_delete; DELETE FROM audit_events WHERE seq = {last};"
    ));
    own2.issuer.cli(&["audit", "verify"], None).assert_success();
    let cut = own2
        .issuer
        .cli(&["audit", "verify", "--expect-head", &head2], None);
    cut.assert_code(1);
    assert!(cut.stderr.contains("expected head"), "{cut}");
    let _ = head;
}
