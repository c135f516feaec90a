//! Unit tests of loading and validating the configuration: defaults, precedence, and every
//! error naming its field.

use super::*;

fn load(toml_text: &str, o: &Overrides) -> Result<Config, ConfigError> {
    let file: FileConfig = toml::from_str(toml_text).map_err(|e| ConfigError::Parse {
        path: "test.toml".into(),
        message: e.to_string(),
    })?;
    Config::from_parts(file, o, || Some(PathBuf::from("/tmp/data")))
}

#[test]
fn auditor_groups_are_read_and_checked() {
    let o = Overrides::default();
    let c = load("", &o).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.audit.auditor_groups.is_empty());
    let c = load("[audit]\nauditor_groups = [\"auditors\"]", &o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.audit.auditor_groups, vec!["auditors"]);
    let err = load("[audit]\nauditor_groups = [\"system:masters\"]", &o)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("audit.auditor_groups[0]"), "{err}");
    let err = load("[audit]\nauditors = []", &o)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("auditors"), "{err}");
}

#[test]
fn the_database_is_sqlite_in_the_data_dir_unless_a_url_says_otherwise() {
    let c = load("", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&c.database, crate::store::Location::Sqlite(p) if p == Path::new("/tmp/data/issuer.db")),
        "{:?}",
        c.database
    );
    let c = load(
        "database_url = \"sqlite:///srv/x.db\"",
        &Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&c.database, crate::store::Location::Sqlite(p) if p == Path::new("/srv/x.db"))
    );

    let url = "postgres://issuer:pa55word@db.example:5432/issuer?sslmode=require";
    let with_key = Overrides {
        database_url: Some(DatabaseUrl(url.into())),
        encryption_key_file: Some("/etc/ci/seal.key".into()),
        ..Overrides::default()
    };
    let c = load("", &with_key).unwrap_or_else(|e| panic!("{e}"));
    let crate::store::Location::Postgres(pg) = &c.database else {
        panic!("{:?}", c.database)
    };
    assert_eq!(pg.url, url);
    assert_eq!(pg.max_connections, 10);
    let c = load("database_max_connections = 40", &with_key).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&c.database, crate::store::Location::Postgres(pg) if pg.max_connections == 40)
    );
    let e = load("database_max_connections = 1", &with_key)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("database_max_connections"), "{e}");
    // Replicas share one database, so by default they keep their signing keys in it.
    assert_eq!(c.signing_keys_source(), SigningKeys::Database);
    // The password is in no printout of the configuration.
    for text in [
        format!("{c:?}"),
        format!("{with_key:?}"),
        c.database_description(),
    ] {
        assert!(!text.contains("pa55word"), "{text}");
    }

    // The key itself may come from the environment instead of a file (never both), and
    // shows in no printout.
    let key = "q2bOqYVCJ6Ms3MhpsG1Df2V1dTlJ1k8m4yc1v0b9t0U=";
    let env_key = Overrides {
        database_url: Some(DatabaseUrl(url.into())),
        encryption_key: Some(crate::secrets::secret::Secret::new(key)),
        ..Overrides::default()
    };
    let c = load("", &env_key).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.signing_keys_source(), SigningKeys::Database);
    assert!(c.sealer(false).is_ok());
    assert!(!format!("{c:?}{env_key:?}").contains(key));
    let both = Overrides {
        encryption_key_file: Some("/k".into()),
        ..env_key.clone()
    };
    let e = load("", &both)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains(env::ENCRYPTION_KEY) && !e.contains(key), "{e}");
    let short = Overrides {
        encryption_key: Some(crate::secrets::secret::Secret::new("c2hvcnQ=")),
        ..env_key
    };
    let c = load("", &short).unwrap_or_else(|e| panic!("{e}"));
    let e = c
        .sealer(false)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains(env::ENCRYPTION_KEY) && !e.contains("c2hvcnQ"),
        "{e}"
    );

    // Replicas must share the sealing key: a generated per-replica key would not do.
    let no_key = Overrides {
        database_url: Some(DatabaseUrl(url.into())),
        ..Overrides::default()
    };
    let e = load("", &no_key)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("encryption_key_file"), "{e}");
    assert!(!e.contains("pa55word"), "{e}");

    for bad in ["mysql://u:pa55word@h/db", "postgres://", "sqlite:"] {
        let o = Overrides {
            database_url: Some(DatabaseUrl(bad.into())),
            encryption_key_file: Some("/k".into()),
            ..Overrides::default()
        };
        let e = load("", &o)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("database_url"), "{bad}: {e}");
        assert!(!e.contains("pa55word"), "{e}");
    }
}

#[test]
fn signing_keys_in_the_database_need_an_explicit_encryption_key() {
    let none = Overrides::default();
    let c = load("", &none).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.signing_keys_source(), SigningKeys::Directory);
    let c = load("[signing]\nkeys = \"directory\"", &none).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.signing_keys_source(), SigningKeys::Directory);

    let database = "[signing]\nkeys = \"database\"";
    let e = err(database, &none);
    for part in [
        "signing.keys",
        "encryption_key_file",
        env::ENCRYPTION_KEY_FILE,
        "openssl rand",
    ] {
        assert!(e.contains(part), "{part:?} missing in {e}");
    }
    let c = load(
        &format!("encryption_key_file = \"/run/secrets/seal.key\"\n{database}"),
        &none,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.signing_keys_source(), SigningKeys::Database);
    let flag = Overrides {
        encryption_key_file: Some("/run/secrets/seal.key".into()),
        ..Overrides::default()
    };
    let c = load(database, &flag).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.signing_keys_source(), SigningKeys::Database);

    assert!(err("[signing]\nkeys = \"vault\"", &none).contains("signing.keys"));
    assert!(err("[signing]\nkey = \"database\"", &none).contains("key"));
}

#[test]
fn zero_configuration_defaults() {
    let c = load("", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
    assert_eq!(c.issuer(), "https://127.0.0.1:8443");
    assert_eq!(c.token_ttl, Duration::from_secs(300));
    assert_eq!(c.session_ttl, Duration::from_secs(12 * 3600));
    assert_eq!(c.device_code_ttl, Duration::from_secs(600));
    assert_eq!(c.tls, TlsSource::Generated);
    assert_eq!(c.clusters[0].name, "default");
    assert_eq!(c.data_dir, PathBuf::from("/tmp/data"));
}

#[test]
fn flags_override_file() {
    let o = Overrides {
        token_ttl: Some("1m".into()),
        listen: Some("127.0.0.1:9000".into()),
        ..Overrides::default()
    };
    let c =
        load("token_ttl = \"10m\"\nlisten = \"0.0.0.0:1\"\n", &o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.token_ttl, Duration::from_secs(60));
    assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
}

fn err(toml_text: &str, o: &Overrides) -> String {
    match load(toml_text, o) {
        Ok(_) => panic!("expected an error for {toml_text:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_values_name_their_field() {
    let none = Overrides::default();
    let cases = [
        ("token_ttl = \"5 minutes\"", "token_ttl"),
        ("session_ttl = \"1s\"", "session_ttl"),
        ("issuer_url = \"http://x\"", "issuer_url"),
        ("listen = \"nope\"", "listen"),
        ("tls_cert = \"/a\"", "tls_key"),
        ("[[clusters]]\nname = \"bad name\"", "clusters[0].name"),
        (
            "[[clusters]]\nname = \"a\"\nserver = \"http://x\"",
            "clusters[0].server",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[[clusters]]\nname = \"a\"",
            "clusters[1].name",
        ),
        ("tokn_ttl = \"5m\"", "tokn_ttl"),
        (
            "[accounts]\ninvitation_ttl = \"10s\"",
            "accounts.invitation_ttl",
        ),
        (
            "[accounts]\ninvitation_ttl = \"soon\"",
            "accounts.invitation_ttl",
        ),
        ("[accounts]\nrequire_totp = \"yes\"", "require_totp"),
        ("[accounts]\nrequire_2fa = true", "require_2fa"),
        (
            "[rate_limits]\ntotp_failures = 0",
            "rate_limits.totp_failures",
        ),
        (
            "[[upstreams]]\nid = \"a b\"\nissuer_url = \"https://i\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"",
            "upstreams[0].id",
        ),
        (
            "[[upstreams]]\nid = \"a\"\nissuer_url = \"http://idp.example\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"",
            "upstreams[0].issuer_url",
        ),
        (
            "[[upstreams]]\nid = \"a\"\nissuer_url = \"https://i\"\nclient_id = \"c\"",
            "upstreams[0].client_secret_file",
        ),
        (
            "[[upstreams]]\nid = \"a\"\nissuer_url = \"https://i\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"\noffline_grace = \"13h\"",
            "upstreams[0].offline_grace",
        ),
        (
            "[[upstreams]]\nid = \"a\"\nissuer_url = \"https://i\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"\noffline_grace = \"a while\"",
            "upstreams[0].offline_grace",
        ),
        (
            "[[upstreams]]\nid = \"a\"\nissuer_url = \"https://i\"\nclient_id = \"c\"\nclient_secret_env = \"CREDENTIAL_TEST_UNSET_VARIABLE\"",
            "upstreams[0].client_secret_env",
        ),
        (
            "[[upstreams]]\nid = \"a\"\nissuer_url = \"https://i\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"\ntoken_endpoint_auth_method = \"private_key_jwt\"",
            "upstreams[0].token_endpoint_auth_method",
        ),
        (
            "[[upstreams]]\nid = \"a\"\nissuer_url = \"https://i\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"\nallowed_email_domains = [\"nodot\"]",
            "upstreams[0].allowed_email_domains[0]",
        ),
        ("[[policy.rules]]\ngroup = \"\"", "policy.rules[0].group"),
        (
            "[[policy.rules]]\ngroup = \"a\"\nkubernetes_groups = [\"system:masters\"]",
            "policy.rules[0].kubernetes_groups[0]",
        ),
        (
            "[[policy.rules]]\ngroup = \"a\"\nclusters = [\"nope\"]",
            "policy.rules[0].clusters[0]",
        ),
        (
            "[[policy.rules]]\ngroup = \"a\"\ndeny = true\nkubernetes_groups = [\"b\"]",
            "policy.rules[0].kubernetes_groups",
        ),
        ("[[policy.rules]]\ngroup = \"a\"\nallow = true", "allow"),
        (
            "[[clusters]]\nname = \"a\"\nkubeconfig = \"/k\"\nin_cluster = true",
            "clusters[0].in_cluster",
        ),
        (
            "[[clusters]]\nname = \"a\"\nreconcile_interval = \"0s\"",
            "clusters[0].reconcile_interval",
        ),
        ("[[roles]]\nname = \"Bad_Name\"\ncluster_role = \"view\"", "roles[0].name"),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nurl = \"https://p\"\nin_cluster = true",
            "clusters[0].proxy.listen",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nlisten = \"0.0.0.0\"\nurl = \"https://p\"\nin_cluster = true",
            "clusters[0].proxy.listen",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nlisten = \"0.0.0.0:1\"\nin_cluster = true",
            "clusters[0].proxy.url",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nlisten = \"0.0.0.0:1\"\nurl = \"http://p\"\nin_cluster = true",
            "clusters[0].proxy.url",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nlisten = \"0.0.0.0:1\"\nurl = \"https://p/x\"\nin_cluster = true",
            "clusters[0].proxy.url",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nlisten = \"0.0.0.0:1\"\nurl = \"https://p\"",
            "clusters[0].proxy.kubeconfig",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nlisten = \"0.0.0.0:1\"\nurl = \"https://p\"\nkubeconfig = \"/k\"\nin_cluster = true",
            "clusters[0].proxy.in_cluster",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nlisten = \"0.0.0.0:1\"\nurl = \"https://p\"\nin_cluster = true\naudit = \"full\"",
            "clusters[0].proxy.audit",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nlisten = \"0.0.0.0:1\"\nurl = \"https://p\"\nin_cluster = true\ntls_cert_file = \"/c\"",
            "clusters[0].proxy.tls_cert_file",
        ),
        (
            "[[clusters]]\nname = \"a\"\n[clusters.proxy]\nlisten = \"0.0.0.0:1\"\nurl = \"https://p\"\nin_cluster = true\ntypo = 1",
            "typo",
        ),
        ("[[roles]]\nname = \"r\"", "roles[0].cluster_role"),
        (
            "[[roles]]\nname = \"r\"\ncluster_role = \"view\"\nrules = []",
            "roles[0].rules",
        ),
        ("[[roles]]\nname = \"r\"\nrules = []", "roles[0].rules"),
        (
            "[[roles]]\nname = \"r\"\nrules = [{ resources = [\"pods\"] }]",
            "roles[0].rules[0].verbs",
        ),
        (
            "[[roles]]\nname = \"r\"\nrules = [{ verbs = [\"get\"], resourcez = [\"pods\"] }]",
            "resourcez",
        ),
        (
            "[[roles]]\nname = \"r\"\ncluster_role = \"view\"\nmax_duration = \"soon\"",
            "roles[0].max_duration",
        ),
        (
            "[[roles]]\nname = \"r\"\ncluster_role = \"view\"\n[[roles]]\nname = \"r\"\ncluster_role = \"edit\"",
            "roles[1].name",
        ),
        (
            "[[roles]]\nname = \"r\"\ncluster_role = \"view\"\nmax_duration = \"1h\"\nrequestable = true",
            "roles[0].approvers",
        ),
        (
            "[[roles]]\nname = \"r\"\ncluster_role = \"view\"\nrequestable = true\napprovers = [\"a\"]",
            "roles[0].max_duration",
        ),
        (
            "[[roles]]\nname = \"r\"\ncluster_role = \"view\"\nmax_duration = \"1h\"\nrequestable = true\nself_approve = true",
            "roles[0].self_approve",
        ),
        (
            "[[roles]]\nname = \"r\"\ncluster_role = \"view\"\napprovers = [\"a\"]",
            "roles[0].requestable",
        ),
        (
            "[[roles]]\nname = \"r\"\ncluster_role = \"view\"\nmax_duration = \"1h\"\nrequestable = true\napprovers = [\"\"]",
            "roles[0].approvers[0]",
        ),
        ("[requests]\npending_ttl = \"5s\"", "requests.pending_ttl"),
        ("[requests]\nfile_limit = 0", "requests.file_limit"),
        ("[notifications]\nwebhook_url = \"ftp://x\"", "notifications.webhook_url"),
        (
            "[notifications]\nwebhook_secret_file = \"/nonexistent\"",
            "notifications.webhook_secret_file",
        ),
        (
            "[notifications]\nwebhook_url = \"https://x\"\nwebhook_secret_file = \"/nonexistent\"",
            "notifications.webhook_secret_file",
        ),
        ("[notifications]\nurl = \"https://x\"", "url"),
    ];
    for (text, field) in cases {
        let e = err(text, &none);
        assert!(
            e.contains(field),
            "{text:?} gave {e:?}, which does not name {field}"
        );
    }
}

#[test]
fn accounts_defaults_and_file_values() {
    let c = load("", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.accounts, Accounts::default());
    assert!(!c.accounts.require_totp);
    assert_eq!(c.accounts.invitation_ttl, Duration::from_secs(86_400));
    assert_eq!(c.rate_limits.totp_failures, 5);
    let c = load(
        "[accounts]\nrequire_totp = true\ninvitation_ttl = \"2d\"\n[rate_limits]\ntotp_failures = 3\n",
        &Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.accounts.require_totp);
    assert_eq!(c.accounts.invitation_ttl, Duration::from_secs(2 * 86_400));
    assert_eq!(c.rate_limits.totp_failures, 3);
}

#[test]
fn upstream_defaults_and_loopback_http() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "[[upstreams]]\nid = \"corp\"\nissuer_url = \"http://127.0.0.1:9999\"\nclient_id = \"c\"\nclient_secret_file = {:?}\nscopes = [\"email\"]\nallowed_email_domains = [\"@Corp.Example\"]\n",
        secret.display().to_string()
    );
    let c = load(&text, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    let u = &c.upstreams[0];
    assert_eq!(u.name, "corp");
    assert_eq!(u.client_secret.expose(), "s3cret");
    assert_eq!(u.scopes, ["openid", "email"]);
    assert_eq!(u.username_claim, "email");
    assert_eq!(u.groups_claim, "groups");
    assert_eq!(u.client_auth, ClientAuth::Basic);
    assert_eq!(u.allowed_email_domains, ["corp.example"]);
    assert_eq!(u.offline_grace, Duration::from_secs(3600));
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "the secret leaks in Debug"
    );
    let c = load("", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.upstreams.is_empty() && c.policy.rules.is_empty());
}

#[test]
fn roles_and_reconciler_access() {
    let c = load(
        r#"
[[clusters]]
name = "prod"
kubeconfig = "/etc/credential-issuer/prod.kubeconfig"
reconcile_interval = "10s"
[[clusters]]
name = "here"
in_cluster = true
[[clusters]]
name = "tokens-only"

[[roles]]
name = "viewer"
cluster_role = "view"
[[roles]]
name = "deployer"
rules = [{ api_groups = ["apps"], resources = ["deployments"], verbs = ["get", "update"] }]
max_duration = "30d"
"#,
        &Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.clusters[0].access,
        Some(KubeAccess::Kubeconfig(
            "/etc/credential-issuer/prod.kubeconfig".into()
        ))
    );
    assert_eq!(c.clusters[0].reconcile_interval, Duration::from_secs(10));
    assert_eq!(c.clusters[1].access, Some(KubeAccess::InCluster));
    assert_eq!(c.clusters[1].reconcile_interval, DEFAULT_RECONCILE_INTERVAL);
    assert_eq!(c.clusters[2].access, None);
    assert_eq!(
        c.role("viewer").map(|r| &r.permissions),
        Some(&RolePermissions::ClusterRole("view".into()))
    );
    let deployer = c.role("deployer").unwrap_or_else(|| panic!("no deployer"));
    assert_eq!(
        deployer.max_duration,
        Some(Duration::from_secs(30 * 86_400))
    );
    match &deployer.permissions {
        RolePermissions::Rules(rules) => {
            assert_eq!(rules[0].api_groups, ["apps"]);
            assert_eq!(rules[0].verbs, ["get", "update"]);
        }
        other @ RolePermissions::ClusterRole(_) => panic!("{other:?}"),
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
    assert_eq!(parse_duration("30d"), Some(Duration::from_secs(2_592_000)));
    assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_duration("5w"), None);
    assert_eq!(parse_duration(""), None);
    assert_eq!(parse_duration("99999999999999999999d"), None);
}

#[test]
fn webhook_cache_ttl_defaults_to_5s_allows_0s_and_is_bounded() {
    let o = Overrides::default();
    let c = load("", &o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.webhook_cache_ttl, Duration::from_secs(5));
    let c = load("webhook_cache_ttl = \"0s\"", &o).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.webhook_cache_ttl.is_zero());
    let err = load("webhook_cache_ttl = \"6m\"", &o)
        .err()
        .unwrap_or_else(|| panic!("6m was accepted"));
    assert!(err.to_string().contains("webhook_cache_ttl"), "{err}");
}

#[test]
fn refresh_retry_grace_defaults_to_10s_allows_0s_and_is_bounded() {
    let o = Overrides::default();
    let c = load("", &o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.refresh_retry_grace, Duration::from_secs(10));
    let c = load("refresh_retry_grace = \"0s\"", &o).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.refresh_retry_grace.is_zero());
    let err = load("refresh_retry_grace = \"3m\"", &o)
        .err()
        .unwrap_or_else(|| panic!("3m was accepted"));
    assert!(err.to_string().contains("refresh_retry_grace"), "{err}");
}

#[test]
fn leader_lease_defaults_to_15s_and_is_bounded() {
    let o = Overrides::default();
    let c = load("", &o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.leader_lease, Duration::from_secs(15));
    for (text, secs) in [("5s", 5), ("1m", 60), ("5m", 300)] {
        let c = load(&format!("leader_lease = \"{text}\""), &o)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c.leader_lease, Duration::from_secs(secs), "{text}");
    }
    for text in ["4s", "0s", "301s", "1h", "soon"] {
        let err = load(&format!("leader_lease = \"{text}\""), &o)
            .err()
            .unwrap_or_else(|| panic!("{text} was accepted"));
        assert!(err.to_string().contains("leader_lease"), "{text}: {err}");
    }
}

/// Every value a flag (or its environment variable) can give beats the file's, and the file's
/// stands when no flag is given.
#[test]
fn every_override_beats_the_file() {
    let file = "listen = \"127.0.0.1:1\"\nissuer_url = \"https://file.example\"\n\
                data_dir = \"/file\"\ntls_cert = \"/file/cert\"\ntls_key = \"/file/key\"\n\
                token_ttl = \"10m\"\nsession_ttl = \"1d\"\n\
                encryption_key_file = \"/file/seal.key\"\n\
                database_url = \"sqlite:/file/issuer.db\"\n";
    let o = Overrides {
        listen: Some("127.0.0.1:2".into()),
        issuer_url: Some("https://flag.example".into()),
        data_dir: Some("/flag".into()),
        tls_cert: Some("/flag/cert".into()),
        tls_key: Some("/flag/key".into()),
        token_ttl: Some("1m".into()),
        session_ttl: Some("2h".into()),
        encryption_key_file: Some("/flag/seal.key".into()),
        database_url: Some(DatabaseUrl("sqlite:/flag/issuer.db".into())),
        ..Overrides::default()
    };
    let c = load(file, &o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen.to_string(), "127.0.0.1:2");
    assert_eq!(c.issuer(), "https://flag.example");
    assert_eq!(c.data_dir, PathBuf::from("/flag"));
    assert_eq!(
        c.tls,
        TlsSource::Files {
            cert: "/flag/cert".into(),
            key: "/flag/key".into()
        }
    );
    assert_eq!(c.token_ttl, Duration::from_secs(60));
    assert_eq!(c.session_ttl, Duration::from_secs(2 * 3600));
    assert_eq!(c.seal_key_file(), PathBuf::from("/flag/seal.key"));
    assert!(
        matches!(&c.database, crate::store::Location::Sqlite(p) if p == Path::new("/flag/issuer.db"))
    );
    assert!(c.store_origin.database_url_overridden);
    assert!(c.store_origin.encryption_key_file_overridden);

    let c = load(file, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen.to_string(), "127.0.0.1:1");
    assert_eq!(c.issuer(), "https://file.example");
    assert_eq!(c.data_dir, PathBuf::from("/file"));
    assert_eq!(c.token_ttl, Duration::from_secs(600));
    assert_eq!(c.session_ttl, Duration::from_secs(86_400));
    assert_eq!(c.seal_key_file(), PathBuf::from("/file/seal.key"));
    assert!(
        matches!(&c.database, crate::store::Location::Sqlite(p) if p == Path::new("/file/issuer.db"))
    );
    assert_eq!(c.store_origin, StoreOrigin::default());
}
