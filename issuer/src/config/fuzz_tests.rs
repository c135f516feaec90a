//! Property tests of the config file: TOML text, arbitrary or a valid config with a few values
//! replaced (durations at and past their bounds, numbers no field holds, odd URLs, paths to
//! devices and missing files), through `FileConfig` to a validated `Config`. Loading never
//! panics or hangs, and a config that validates is one the server can run on: every duration
//! the handlers add to the time (for years to come) stays a date and fits the database's
//! integers.
//!
//! `PROPTEST_CASES=N` sets the case count of every property; see docs/fuzzing.md.

use std::fmt::Write as _;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::select;
use time::macros::datetime;

use super::{Config, FileConfig, Overrides};
use crate::fuzz_support::{bounded, config, mutated, text};

/// A config that uses every section, valid as it is.
const TEMPLATE: &str = r#"
issuer_url = "https://issuer.example.com:8443"
listen = "127.0.0.1:8443"
token_ttl = "5m"
session_ttl = "12h"
device_code_ttl = "10m"
poll_interval = "5s"
webhook_cache_ttl = "5s"
clients = ["kubectl-credential", "ci"]

[rate_limits]
user_code_failures = 10
password_failures = 5
totp_failures = 5
device_authorizations = 100
window = "15m"

[accounts]
require_totp = false
invitation_ttl = "24h"

[audit]
auditor_groups = ["auditors"]

[[clusters]]
name = "prod"
server = "https://prod-api.example.com:6443"
certificate_authority_data = "Q0E="
audience = "kubernetes"
kubeconfig = "/etc/credential-issuer/prod.kubeconfig"
reconcile_interval = "30s"

[[clusters]]
name = "staging"
audience = "staging"

[[upstreams]]
id = "corp"
name = "Corporate sign-in"
issuer_url = "https://login.example.com"
client_id = "credential-issuer"
client_secret_env = "HOME"
scopes = ["openid", "email", "groups"]
allowed_email_domains = ["example.com"]

[policy]
[[policy.rules]]
group = "eng-*"
kubernetes_groups = ["dev"]
clusters = ["staging"]

[[roles]]
name = "viewer"
cluster_role = "view"
max_duration = "90d"

[[roles]]
name = "prod-exec"
rules = [{ api_groups = [""], resources = ["pods", "pods/exec"], verbs = ["get", "create"] }]
max_duration = "4h"
requestable = true
approvers = ["sre-leads"]
reason_required = true

[requests]
pending_ttl = "1h"
file_limit = 20

[notifications]
webhook_url = "https://chat.example/hooks/x"

[signing]
keys = "directory"
"#;

/// Loads `text` as a config file would be, with no flags and `/tmp/data` as the data dir.
fn load(text: &str) -> Result<Config, String> {
    let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    Config::from_parts(file, &Overrides::default(), || {
        Some(PathBuf::from("/tmp/data"))
    })
    .map_err(|e| e.to_string())
}

/// What a running server does with a config's durations: adds them to the time. Every one must
/// leave a date for as long as the server may run, and the rate-limit window must fit, added to
/// a time, in a PostgreSQL `bigint`.
fn check_runnable(cfg: &Config) {
    let far = datetime!(2200-01-01 0:00 UTC);
    let mut durations = vec![
        ("token_ttl", cfg.token_ttl),
        ("session_ttl", cfg.session_ttl),
        ("device_code_ttl", cfg.device_code_ttl),
        ("poll_interval", cfg.poll_interval),
        ("webhook_cache_ttl", cfg.webhook_cache_ttl),
        ("leader_lease", cfg.leader_lease),
        ("rate_limits.window", cfg.rate_limits.window),
        ("accounts.invitation_ttl", cfg.accounts.invitation_ttl),
        ("requests.pending_ttl", cfg.request_pending_ttl),
        ("key_retention", cfg.key_retention()),
    ];
    durations.extend(
        cfg.clusters
            .iter()
            .map(|c| ("reconcile_interval", c.reconcile_interval)),
    );
    durations.extend(
        cfg.roles
            .iter()
            .filter_map(|r| Some(("max_duration", r.max_duration?))),
    );
    for (field, d) in durations {
        let added = time::Duration::try_from(d)
            .ok()
            .and_then(|d| far.checked_add(d));
        assert!(
            added.is_some(),
            "{field} = {d:?} validated, but 2200 + it is no date"
        );
    }
    let window = i64::try_from(cfg.rate_limits.window.as_secs()).unwrap_or(i64::MAX);
    assert!(far.unix_timestamp().checked_add(window).is_some());
    assert!(!cfg.clusters.is_empty() && !cfg.clients.is_empty());
}

/// One step of a path into the TOML document.
#[derive(Debug, Clone)]
enum Seg {
    Key(&'static str),
    At(usize),
}

/// Where edits go: every value of the template, and the optional keys it leaves out.
fn paths() -> Vec<Vec<Seg>> {
    use Seg::{At, Key};
    let mut out: Vec<Vec<Seg>> = [
        "issuer_url",
        "listen",
        "token_ttl",
        "session_ttl",
        "device_code_ttl",
        "poll_interval",
        "webhook_cache_ttl",
        "clients",
        "database_url",
        "database_max_connections",
        "data_dir",
        "tls_cert",
        "tls_key",
        "encryption_key_file",
        "refresh_retry_grace",
        "leader_lease",
        "typo",
    ]
    .into_iter()
    .map(|k| vec![Key(k)])
    .collect();
    let sub = |table: &'static str, keys: &[&'static str]| -> Vec<Vec<Seg>> {
        keys.iter().map(|k| vec![Key(table), Key(k)]).collect()
    };
    out.extend(sub(
        "rate_limits",
        &[
            "user_code_failures",
            "password_failures",
            "totp_failures",
            "device_authorizations",
            "window",
        ],
    ));
    out.extend(sub("accounts", &["require_totp", "invitation_ttl"]));
    out.extend(sub("audit", &["auditor_groups"]));
    out.extend(sub("requests", &["pending_ttl", "file_limit"]));
    out.extend(sub(
        "notifications",
        &["webhook_url", "webhook_secret_file"],
    ));
    out.extend(sub("signing", &["keys"]));
    let item = |table: &'static str, i: usize, keys: &[&'static str]| -> Vec<Vec<Seg>> {
        keys.iter()
            .map(|k| vec![Key(table), At(i), Key(k)])
            .collect()
    };
    for i in 0..2 {
        out.extend(item(
            "clusters",
            i,
            &[
                "name",
                "server",
                "ca_file",
                "certificate_authority_data",
                "audience",
                "kubeconfig",
                "in_cluster",
                "reconcile_interval",
            ],
        ));
        out.extend(item(
            "roles",
            i,
            &[
                "name",
                "cluster_role",
                "rules",
                "max_duration",
                "requestable",
                "approvers",
                "reason_required",
                "break_glass",
                "self_approve",
            ],
        ));
    }
    out.extend(item(
        "upstreams",
        0,
        &[
            "id",
            "name",
            "issuer_url",
            "client_id",
            "client_secret_file",
            "client_secret_env",
            "token_endpoint_auth_method",
            "scopes",
            "username_claim",
            "groups_claim",
            "allowed_email_domains",
            "ca_file",
        ],
    ));
    out.push(vec![Key("policy"), Key("rules"), At(0), Key("group")]);
    out.push(vec![
        Key("policy"),
        Key("rules"),
        At(0),
        Key("kubernetes_groups"),
    ]);
    out.push(vec![Key("policy"), Key("rules"), At(0), Key("clusters")]);
    out.push(vec![Key("policy"), Key("rules"), At(0), Key("deny")]);
    out.push(vec![Key("roles"), At(1), Key("rules"), At(0), Key("verbs")]);
    out
}

/// What a field holds, judged by its name, so that most edits keep the type and test the
/// validation rather than the TOML schema.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Duration,
    Count,
    Flag,
    Url,
    Path,
    List,
    Text,
}

fn kind(path: &[Seg]) -> Kind {
    let Some(Seg::Key(key)) = path.last() else {
        return Kind::Text;
    };
    match *key {
        k if k.ends_with("_ttl") || k.ends_with("interval") || k.ends_with("window") => {
            Kind::Duration
        }
        "max_duration" | "refresh_retry_grace" | "leader_lease" => Kind::Duration,
        k if k.ends_with("_failures") => Kind::Count,
        "device_authorizations" | "file_limit" | "database_max_connections" => Kind::Count,
        "require_totp" | "in_cluster" | "requestable" | "reason_required" | "break_glass"
        | "self_approve" | "deny" => Kind::Flag,
        k if k.ends_with("url") || k == "server" || k == "listen" => Kind::Url,
        k if k.ends_with("_file")
            || k.starts_with("tls_")
            || k == "data_dir"
            || k == "kubeconfig" =>
        {
            Kind::Path
        }
        "clients"
        | "auditor_groups"
        | "approvers"
        | "scopes"
        | "allowed_email_domains"
        | "kubernetes_groups"
        | "clusters"
        | "verbs" => Kind::List,
        _ => Kind::Text,
    }
}

/// A value for a field of `kind`: mostly of that kind, at and past its bounds; now and then
/// of any type.
fn value(kind: Kind) -> BoxedStrategy<toml::Value> {
    use toml::Value as V;
    let durations = select(vec![
        "0s",
        "1s",
        "29s",
        "30s",
        "59s",
        "1m",
        "60m",
        "1h",
        "24h",
        "25h",
        "30d",
        "366d",
        "367d",
        "5",
        "5x",
        "-5s",
        " 5m ",
        "1h30m",
        "",
        "s",
        "18446744073709551615",
        "18446744073709551615s",
        "18446744073709551615d",
        "99999999999d",
        "213503982335d",
        "0x10s",
        "１s",
    ])
    .prop_map(|s| V::String(s.to_owned()));
    let urls = select(vec![
        "https://a.example",
        "https://a.example/",
        "https://a.example/p",
        "https://a.example?q",
        "http://127.0.0.1:1",
        "http://a.example",
        "ftp://a.example",
        "https://",
        "not a url",
        "https://[::1]:8443",
        "https://user:pw@a.example",
        "postgres://u:p@db/x",
        "sqlite:",
        "sqlite:///tmp/x.db",
        "postgres:///x",
        "0.0.0.0:0",
        "[::]:8443",
        "127.0.0.1:99999",
    ])
    .prop_map(|s| V::String(s.to_owned()));
    let paths = select(vec![
        "/dev/zero",
        "/dev/null",
        "/dev/urandom",
        "/nonexistent/file",
        "/tmp",
        "",
        "/proc/self/mem",
    ])
    .prop_map(|s| V::String(s.to_owned()));
    let count = prop_oneof![
        select(vec![
            0,
            1,
            2,
            -1,
            1000,
            1001,
            i64::from(u32::MAX) + 1,
            i64::MAX,
            i64::MIN
        ]),
        any::<i64>(),
    ]
    .prop_map(V::Integer);
    let list = prop::collection::vec(
        prop_oneof![3 => "[a-z0-9:_-]{1,12}", 1 => text()].prop_map(V::String),
        0..4,
    )
    .prop_map(V::Array);
    let any_value = prop_oneof![
        text().prop_map(V::String),
        count.clone(),
        any::<bool>().prop_map(V::Boolean),
        any::<f64>().prop_map(V::Float),
        Just(V::Table(toml::map::Map::new())),
        Just(V::Array(vec![V::Table(toml::map::Map::new())])),
    ];
    let own = match kind {
        Kind::Duration => durations.boxed(),
        Kind::Count => count.boxed(),
        Kind::Flag => any::<bool>().prop_map(V::Boolean).boxed(),
        Kind::Url => urls.boxed(),
        Kind::Path => paths.boxed(),
        Kind::List => list.boxed(),
        Kind::Text => prop_oneof![3 => "[a-z0-9*.-]{0,12}", 1 => text()]
            .prop_map(V::String)
            .boxed(),
    };
    prop_oneof![6 => own, 1 => any_value].boxed()
}

/// Puts `v` at `path` in `doc` (`None`: removes what is there). Steps that do not exist are
/// created when they are keys and skipped when they are positions.
fn edit(doc: &mut toml::Value, path: &[Seg], v: Option<toml::Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = doc;
    for seg in parents {
        at = match (seg, at) {
            (Seg::Key(k), toml::Value::Table(t)) => t
                .entry((*k).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::map::Map::new())),
            (Seg::At(i), toml::Value::Array(a)) => match a.get_mut(*i) {
                Some(x) => x,
                None => return,
            },
            _ => return,
        };
    }
    match (last, at, v) {
        (Seg::Key(k), toml::Value::Table(t), Some(v)) => {
            t.insert((*k).to_owned(), v);
        }
        (Seg::Key(k), toml::Value::Table(t), None) => {
            t.remove(*k);
        }
        (Seg::At(i), toml::Value::Array(a), Some(v)) if *i < a.len() => a[*i] = v,
        _ => {}
    }
}

/// The template with one to three values replaced or removed, as TOML text.
fn edited_config() -> BoxedStrategy<String> {
    let one = select(paths()).prop_flat_map(|path| {
        let v = prop::option::weighted(0.9, value(kind(&path)));
        (Just(path), v)
    });
    prop::collection::vec(one, 1..4)
        .prop_map(|edits| {
            let mut doc: toml::Value = toml::from_str(TEMPLATE).unwrap_or_else(|e| panic!("{e}"));
            for (path, v) in edits {
                edit(&mut doc, &path, v);
            }
            // toml_write 0.1 counts a run of quotes in a `u8` and overflows (a panic in debug
            // builds) past 255 of them: only the test writes TOML, so such a case is skipped.
            std::panic::catch_unwind(|| toml::to_string(&doc))
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        })
        .boxed()
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary text, text that looks like TOML, and the template with its bytes disturbed:
    /// loading answers a config or an error, in time.
    #[test]
    fn any_text_loads_or_fails_with_a_message(
        raw in prop_oneof![
            2 => any::<String>(),
            2 => prop::collection::vec((text(), text()), 0..6)
                .prop_map(|kv| {
                    kv.iter().fold(String::new(), |mut doc, (k, v)| {
                        let _ = writeln!(doc, "{k} = {v}");
                        doc
                    })
                }),
            4 => mutated(Just(TEMPLATE.to_owned())).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ]
    ) {
        bounded(move || match load(&raw) {
            Ok(cfg) => check_runnable(&cfg),
            Err(message) => assert!(!message.is_empty()),
        });
    }

    /// The template with values replaced: a config that validates is one the server can run
    /// on, and one that does not names what is wrong.
    #[test]
    fn edited_configs_validate_only_when_the_server_can_run_them(text in edited_config()) {
        bounded(move || match load(&text) {
            Ok(cfg) => check_runnable(&cfg),
            Err(message) => assert!(!message.is_empty()),
        });
    }
}

#[test]
fn the_template_is_valid() {
    let cfg = load(TEMPLATE).unwrap_or_else(|e| panic!("{e}"));
    check_runnable(&cfg);
    assert_eq!(cfg.roles.len(), 2);
    assert_eq!(cfg.upstreams.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Regression tests: what the properties above found.

/// Found by `edited_configs_validate_only_when_the_server_can_run_them`: `session_ttl` had no
/// upper bound, and `now + session_ttl` in the token endpoint panicked at the first login
/// (`session_ttl = "213503982335d"`); a huge `rate_limits.window` overflowed PostgreSQL's
/// `bigint` at the first failure counted (a 500 on every wrong code); a role's `max_duration`
/// let a grant end past the last date.
#[test]
fn durations_the_server_cannot_add_to_the_time_are_refused() {
    let cases = [
        ("session_ttl = \"213503982335d\"", "session_ttl"),
        ("session_ttl = \"367d\"", "session_ttl"),
        (
            "[rate_limits]\nwindow = \"18446744073709551615s\"",
            "rate_limits.window",
        ),
        ("[rate_limits]\nwindow = \"2d\"", "rate_limits.window"),
        (
            "[[roles]]\nname = \"r\"\ncluster_role = \"view\"\nmax_duration = \"99999999999d\"",
            "roles[0].max_duration",
        ),
    ];
    for (text, field) in cases {
        let err = load(text).err().unwrap_or_default();
        assert!(err.contains(field), "{text}: {err}");
    }
    for fine in ["session_ttl = \"366d\"", "[rate_limits]\nwindow = \"1d\""] {
        let cfg = load(fine).unwrap_or_else(|e| panic!("{fine}: {e}"));
        check_runnable(&cfg);
    }
}

/// Found by the same property: a CA or secret file named as `/dev/zero` was read until memory
/// ran out, and a FIFO made the start wait forever for a writer. Now only regular files of a
/// bounded size are read, and anything else names its field.
#[test]
fn config_files_that_are_devices_fifos_or_huge_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "mkfifo (coreutils) is needed"
    );
    let huge = dir.path().join("huge.pem");
    std::fs::write(
        &huge,
        [b"-----BEGIN".as_slice(), &vec![b'A'; 2 << 20]].concat(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for path in [PathBuf::from("/dev/zero"), fifo.clone(), huge] {
        let path = path.display().to_string();
        let cluster = format!("[[clusters]]\nname = \"c\"\nca_file = \"{path}\"");
        let webhook = format!(
            "[notifications]\nwebhook_url = \"https://chat.example/x\"\nwebhook_secret_file = \"{path}\""
        );
        let upstream = format!(
            "[[upstreams]]\nid = \"u\"\nissuer_url = \"https://login.example\"\nclient_id = \"c\"\nclient_secret_file = \"{path}\""
        );
        for (text, field) in [
            (cluster, "clusters[0].ca_file"),
            (webhook, "notifications.webhook_secret_file"),
            (upstream, "upstreams[0].client_secret_file"),
        ] {
            let err = bounded(move || load(&text).err().unwrap_or_default());
            assert!(err.contains(field), "{path}: {err}");
        }
    }
    let err = Config::read_file(&fifo).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("cannot read config file")));
}
