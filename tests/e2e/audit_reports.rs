//! The auditor's answers against the real issuer and API server: after a person with a grant
//! in a namespace and a person with group access have logged in and run kubectl, the real
//! `credential-issuer audit access` names both, with the grant's reason, approver and interval,
//! the group and its RBAC binding (read now), and when each got tokens; `report stale` lists
//! people who never got a token or whose last one is old; and an auditor reads the trail on
//! `/audit` in the harness browser while anyone else gets 403.

use std::time::Duration;

use e2e::wait::{self, Check};

use crate::world::{unique, world, Laptop, Person, AUDITORS, CLUSTER, READERS};

const WITHIN: Duration = Duration::from_secs(30);

/// `audit access` of namespace `ns` since 2000 as JSON lines, with `extra` before `--format`.
fn access_args<'a>(ns: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "audit",
        "access",
        "--cluster",
        CLUSTER,
        "--namespace",
        ns,
        "--since",
        "2000-01-01",
    ];
    args.extend_from_slice(extra);
    args.extend(["--format", "jsonl"]);
    args
}

/// Runs SQL on the shared issuer's database (see [`e2e::Issuer::sqlite`]).
fn sql(statement: &str) {
    world().issuer.sqlite(statement);
}

/// The JSON lines of a CLI report.
fn jsonl(args: &[&str]) -> Vec<serde_json::Value> {
    let out = world().issuer.cli(args, None);
    out.assert_success();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn of_kind<'a>(lines: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

fn kubectl_until_allowed(laptop: &Laptop, args: &[&str], what: &str) {
    wait::until(what, WITHIN, || {
        let out = laptop.kubectl(args);
        if out.success() {
            Check::Done(())
        } else {
            Check::Retry(out.stderr.clone())
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn audit_access_names_who_had_access_to_a_namespace_why_and_who_approved() {
    let world = world();
    let ns = unique("audit-payments");
    world
        .control_plane
        .kubectl_admin(&["create", "namespace", &ns], None)
        .assert_success();
    let granted = world.new_person("audit-granted", &[]);
    let member = world.new_person("audit-member", &[READERS]);

    // A grant in the namespace, approved by carol through request req-77 (the fields an
    // approved access request fills).
    let out = world.issuer.cli(
        &[
            "grant",
            "add",
            "--user",
            &granted.name,
            "--cluster",
            CLUSTER,
            "--namespace",
            &ns,
            "--role",
            "pod-reader",
            "--for",
            "1h",
            "--reason",
            "INC-4242 payments outage",
        ],
        None,
    );
    let id = crate::grants::printed_grant_id(&out.assert_success().stdout);
    assert_eq!(id.len(), 10, "no grant id in {out}");
    sql(&format!(
        "UPDATE grants SET approved_by = 'carol', request_id = 'req-77' WHERE id = '{id}';"
    ));

    let granted_laptop = Laptop::new();
    granted_laptop.log_in(&granted);
    kubectl_until_allowed(
        &granted_laptop,
        &["get", "pods", "-n", &ns],
        "the granted person lists pods in the namespace",
    );
    let member_laptop = Laptop::new();
    member_laptop.log_in(&member);
    member_laptop
        .kubectl(&["get", "namespaces"])
        .assert_success();
    // Someone who got tokens for the cluster but has no way into the namespace.
    let outsider = world.new_person("audit-outsider", &["k8s-outsiders"]);
    Laptop::new().log_in(&outsider);

    let args = access_args(&ns, &[]);
    let report = jsonl(&args);

    // (0) Who could reach the namespace, and how: the granted person through the grant, the
    // member through the binding of their group; never the outsider, who appears only in the
    // cluster-wide sections.
    let reached = of_kind(&report, "reached");
    let via = |who: &str| -> String {
        reached.iter().find(|r| r["user"] == who).map_or_else(
            || panic!("{who} not among those who reached {ns}: {reached:?}"),
            |r| r["via"].to_string(),
        )
    };
    assert!(via(&granted.name).contains(&id), "{reached:?}");
    assert!(
        via(&member.name).contains(&format!("credential:{READERS}")),
        "{reached:?}"
    );
    assert!(
        !reached.iter().any(|r| r["user"] == outsider.name.as_str()),
        "{} never had access to {ns} but is listed as reaching it: {reached:?}",
        outsider.name
    );
    assert!(
        of_kind(&report, "person")
            .iter()
            .any(|p| p["user"] == outsider.name.as_str() && p["scope"] == "cluster"),
        "the outsider's tokens belong to the cluster-wide section: {report:?}"
    );
    let table = world.issuer.cli(&args[..args.len() - 2], None);
    table.assert_success();
    let under_namespace = table
        .stdout
        .split("CLUSTER-WIDE")
        .next()
        .unwrap_or_default();
    assert!(
        !under_namespace.contains(&outsider.name),
        "the table lists {} before its cluster-wide part:\n{}",
        outsider.name,
        table.stdout
    );

    // (1) The grant: grantee, role, interval in force, reason, approver, request.
    let grants = of_kind(&report, "grant");
    let grant = grants
        .iter()
        .find(|g| g["grant_id"] == id.as_str())
        .unwrap_or_else(|| panic!("grant {id} not in {grants:?}"));
    assert_eq!(grant["grantee"], format!("user:{}", granted.name));
    assert_eq!(grant["role"], "pod-reader");
    assert_eq!(grant["reason"], "INC-4242 payments outage");
    assert_eq!(grant["approver"], "carol");
    assert_eq!(grant["request_id"], "req-77");
    assert_eq!(grant["status"], "in force");
    let (from, to) = (
        grant["from"].as_str().unwrap_or(""),
        grant["to"].as_str().unwrap_or(""),
    );
    assert!(
        from.ends_with('Z') && to.ends_with('Z') && from < to,
        "{grant}"
    );

    // (2) Group access: the member's group reached the cluster in their token, and RBAC binds
    // it now (ClusterRoleBinding ns-reader-credential-readers).
    let groups = of_kind(&report, "group");
    let readers = groups
        .iter()
        .find(|g| g["group"] == READERS)
        .unwrap_or_else(|| panic!("group {READERS} not in {groups:?}"));
    assert!(
        readers["members"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x == member.name.as_str())),
        "{} not in {readers}; report: {report:#?}",
        member.name
    );
    let bound = of_kind(&report, "binding_now");
    assert!(
        bound
            .iter()
            .any(|b| b["subject"] == format!("credential:{READERS}")
                && b["binding"] == "ClusterRoleBinding ns-reader-credential-readers"),
        "no binding of credential:{READERS} in {bound:?} (all: {report:?})"
    );
    assert!(
        bound.iter().any(|b| b["subject"] == granted.kube_username()
            && b["binding"] == format!("RoleBinding {ns}/credential-grant-{id}")),
        "the grant's RoleBinding is not in {bound:?}"
    );

    // (3) Who obtained tokens.
    let people = of_kind(&report, "person");
    for p in [&granted, &member] {
        let line = people
            .iter()
            .find(|l| l["user"] == p.name.as_str())
            .unwrap_or_else(|| panic!("{} not in {people:?}", p.name));
        assert!(line["logins"].as_u64() >= Some(1), "{line}");
        assert!(line["first"].as_str() <= line["last"].as_str(), "{line}");
    }

    // The table says bindings are read now, not historically.
    let table = world.issuer.cli(&args[..8], None);
    table.assert_success();
    assert!(table.stdout.contains("NOW"), "{table}");
    assert!(table.stdout.contains("approved by: carol"), "{table}");
    assert!(table.stdout.contains(&granted.name) && table.stdout.contains(&member.name));

    // A window before all this names nobody.
    let old = jsonl(&access_args(&ns, &["--until", "2000-01-02"]));
    assert!(
        of_kind(&old, "grant").is_empty() && of_kind(&old, "person").is_empty(),
        "{old:?}"
    );

    // Revoked: the interval in force now ends at the revocation.
    world
        .issuer
        .cli(&["grant", "revoke", &id, "--reason", "done"], None)
        .assert_success();
    let after = jsonl(&args);
    let grant = of_kind(&after, "grant")
        .into_iter()
        .find(|g| g["grant_id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("grant {id} gone from {after:?}"));
    assert_eq!(grant["status"], "revoked", "{grant}");
    assert!(
        grant["to"].as_str() < Some(to),
        "{grant} should end before {to}"
    );
}

#[test]
fn report_stale_lists_people_who_never_got_a_token_or_not_for_days() {
    let world = world();
    let idle = world.new_person("audit-idle", &[]);
    let active = world.new_person("audit-active", &[READERS]);
    let old = world.new_person("audit-old", &[]);
    let newcomer = world.new_person("audit-newcomer", &[]);
    let _ = world
        .issuer
        .login_over_http(CLUSTER, &active.name, &active.password);
    // A login 40 days ago, as the trail of a long-running issuer would hold.
    let forty_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        - 40 * 86_400;
    sql(&format!(
        "INSERT INTO audit_events (at, event, actor, subject, cluster) SELECT {forty_days_ago}, 'login', username, id, '{CLUSTER}' FROM users WHERE username = '{}';",
        old.name
    ));
    // Accounts of a long-running issuer: created 50 days ago (the newcomer just now).
    for person in [&idle, &active, &old] {
        sql(&format!(
            "UPDATE users SET created_at = {} WHERE username = '{}';",
            forty_days_ago - 10 * 86_400,
            person.name
        ));
    }

    let names = |lines: &[serde_json::Value]| -> Vec<String> {
        of_kind(lines, "person")
            .iter()
            .filter_map(|p| p["user"].as_str().map(str::to_owned))
            .collect()
    };
    let month = jsonl(&["report", "stale", "--days", "30", "--format", "jsonl"]);
    let stale = names(&month);
    assert!(stale.contains(&idle.name), "{stale:?}");
    assert!(stale.contains(&old.name), "{stale:?}");
    assert!(!stale.contains(&active.name), "{stale:?}");
    // An account created minutes ago has had no time to be idle.
    assert!(!stale.contains(&newcomer.name), "{stale:?}");
    let old_line = of_kind(&month, "person")
        .into_iter()
        .find(|p| p["user"] == old.name.as_str())
        .cloned()
        .unwrap_or_default();
    assert!(old_line["last_token"].is_string(), "{old_line}");
    let idle_line = of_kind(&month, "person")
        .into_iter()
        .find(|p| p["user"] == idle.name.as_str())
        .cloned()
        .unwrap_or_default();
    assert!(idle_line["last_token"].is_null(), "{idle_line}");

    // Zero days: anyone without a token this very second, the active person included.
    let now = names(&jsonl(&[
        "report", "stale", "--days", "0", "--format", "jsonl",
    ]));
    assert!(
        now.contains(&active.name) && now.contains(&idle.name),
        "{now:?}"
    );
    // A year: the 40-day-old login is recent enough, and an account 50 days old has not been
    // idle for a year either (idle time counts from its creation).
    let year = names(&jsonl(&[
        "report", "stale", "--days", "365", "--format", "jsonl",
    ]));
    assert!(
        !year.contains(&old.name) && !year.contains(&idle.name),
        "{year:?}"
    );
    // The table for people, exit code 0.
    let table = world.issuer.cli(&["report", "stale", "--days", "30"], None);
    table.assert_success();
    assert!(
        table
            .stdout
            .contains(&format!("{}  last token never", idle.name)),
        "{table}"
    );
}

fn sign_in_at_audit(person: &Person, path: &str) -> e2e::Page {
    let browser = world().browser();
    let login = browser.get(path);
    assert_eq!(
        e2e::browser::path_of(&login),
        "/login",
        "not signed in: the sign-in page first: {login:?}"
    );
    browser.sign_in(&login, &person.name, &person.password)
}

#[test]
fn an_auditor_reads_the_trail_in_the_browser_and_others_get_403() {
    let world = world();
    let auditor = world.new_person("audit-auditor", &[AUDITORS]);
    let nosy = world.new_person("audit-nosy", &[READERS]);
    let _ = world
        .issuer
        .login_over_http(CLUSTER, &nosy.name, &nosy.password);

    // Sign-in, then back to the filtered page.
    let page = sign_in_at_audit(
        &auditor,
        &format!("/audit?person={}&event=login", nosy.name),
    );
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(e2e::browser::path_of(&page), "/audit");
    assert!(page.body.contains("<td>login</td>"), "{}", page.body);
    assert!(
        page.body.contains(&format!("<td>{}</td>", nosy.name)),
        "{}",
        page.body
    );
    assert!(page.body.contains("Hash chain"), "{}", page.body);
    assert!(page.body.contains("/audit/export?"), "{}", page.body);
    // The login row names the person in its subject column too, not their opaque id; the
    // export keeps the id.
    let id = jsonl(&["audit", "export", "--user", &nosy.name])
        .iter()
        .find(|e| e["event"] == "login")
        .and_then(|e| e["subject"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no login with a subject in the export"));
    assert!(
        page.body
            .contains(&format!(r#"<td title="{id}">{}</td>"#, nosy.name)),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&format!(">{id}<")), "{}", page.body);
    // Readable at any width: the table scrolls in its own box, the date fields are empty.
    assert!(
        page.body.contains(r#"<div class="scroll"><table"#),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"name="from" value="" placeholder="YYYY-MM-DD""#),
        "{}",
        page.body
    );

    let refused = sign_in_at_audit(&nosy, "/audit");
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("Not an auditor"), "{}", refused.body);
    assert!(!refused.body.contains("<td>login</td>"));

    // Both visits are in the trail.
    let events = jsonl(&["audit", "export", "--since", "2000-01-01"]);
    let by = |event: &str, who: &str| {
        events
            .iter()
            .any(|e| e["event"] == event && e["actor"] == who)
    };
    assert!(
        by("audit.viewed", &auditor.name),
        "no audit.viewed by the auditor"
    );
    assert!(
        by("audit.view_refused", &nosy.name),
        "no audit.view_refused"
    );
}
