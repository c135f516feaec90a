//! The shared fixture and the vocabulary the stories are told in: a [`World`] with one issuer
//! and one control plane that trusts it, [`Person`]s with accounts, and [`Laptop`]s on which
//! they run kubectl.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use credential_issuer::config::{FilePolicy, FileRule, FileUpstream};
use credential_shared::exec_credential::ApiVersion;
use e2e::oidc_provider::{Account, Client};
use e2e::plugin::exit;
use e2e::wait::{self, Check};
use e2e::{
    Browser, CachedToken, ControlPlane, Issuer, IssuerOptions, OidcProvider, OidcSettings, Outcome,
    PluginArgs, TokenCache, UserEnv,
};

/// The cluster's name in the issuer and in kubeconfigs.
pub(crate) const CLUSTER: &str = "envtest";
/// The `aud` of its tokens, the API server's `--oidc-client-id`.
pub(crate) const AUDIENCE: &str = "kubernetes";
/// `--oidc-username-prefix` and `--oidc-groups-prefix`.
pub(crate) const PREFIX: &str = "credential:";
/// The issuer group that RBAC lets list namespaces (as `credential:k8s-readers`).
pub(crate) const READERS: &str = "k8s-readers";
/// The issuer group whose members may read the audit trail on `/audit` (`[audit]`).
pub(crate) const AUDITORS: &str = "k8s-auditors";
/// The issuer's `[audit]` table (appended to the config file with the roles).
const AUDIT_CONFIG: &str = "\n[audit]\nauditor_groups = [\"k8s-auditors\"]\n";
/// The access token lifetime configured in the issuer: short, so that expiry can be watched.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(10);
/// How long a whole device login may take.
pub(crate) const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// What the plugin tells a person who must log in again.
pub(crate) const LOGIN_HINT: &str = "kubectl credential login";

/// The upstream provider's id in the issuer (its button on the sign-in page).
pub(crate) const UPSTREAM: &str = "corp";
/// The same provider, accepting only e-mail addresses of [`UPSTREAM_DOMAIN`].
pub(crate) const UPSTREAM_DOMAIN_ONLY: &str = "corp-only";
/// The one e-mail domain [`UPSTREAM_DOMAIN_ONLY`] accepts.
pub(crate) const UPSTREAM_DOMAIN: &str = "corp.example";
/// What the policy maps every upstream `eng-*` group to.
pub(crate) const ENGINEERS: &str = "upstream-engineers";
/// People with an account at the upstream provider: `(username, email, groups)`. Each story
/// uses its own, since the provider's accounts are fixed when the world starts.
pub(crate) const UPSTREAM_PEOPLE: &[(&str, &str, &[&str])] = &[
    ("ann", "ann@corp.example", &["eng-web", "sales"]),
    ("bob", "bob@corp.example", &["eng-web"]),
    ("eve", "eve@elsewhere.example", &["eng-web"]),
];

/// `prefix` made unique in this run: the process id and a counter appended.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The password of an upstream person.
pub(crate) fn upstream_password(username: &str) -> String {
    format!("upstream password of {username}")
}

/// The policy of the world's issuer: `k8s-*` groups (every local account's) pass unchanged,
/// `eng-contractors` is denied, other `eng-*` groups become [`ENGINEERS`]; nothing else passes.
fn world_policy() -> FilePolicy {
    let rule = |group: &str, kubernetes_groups: &[&str], deny: bool| FileRule {
        group: group.to_owned(),
        kubernetes_groups: kubernetes_groups.iter().map(|g| (*g).to_owned()).collect(),
        clusters: if deny {
            None
        } else {
            Some(vec![CLUSTER.to_owned()])
        },
        deny,
    };
    FilePolicy {
        rules: vec![
            rule("k8s-*", &[], false),
            rule("eng-contractors", &[], true),
            rule("eng-*", &[ENGINEERS], false),
        ],
    }
}

/// Lets `credential:k8s-readers` get and list namespaces, and nothing else.
pub(crate) fn rbac() -> String {
    format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: ns-reader
rules:
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list"]
---{}"#,
        ns_reader_binding("ns-reader-credential-readers", "credential:k8s-readers")
    )
}

/// Binding `name`, which lets `group` do what the `ClusterRole` `ns-reader` of [`rbac`] allows.
pub(crate) fn ns_reader_binding(name: &str, group: &str) -> String {
    format!(
        r"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {name}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: ns-reader
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: {group}
"
    )
}

/// The `--oidc-*` flags of `install/apiserver-flags.txt` as (name, value) pairs, placeholders
/// (`ISSUER_URL`, `CA_FILE`, `AUDIENCE`) left in.
pub(crate) fn shipped_oidc_flags() -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../install/apiserver-flags.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("--oidc-"))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The issuer and the control plane that trusts it.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) issuer: Issuer,
    pub(crate) control_plane: ControlPlane,
    /// The company's identity provider, which the issuer offers as [`UPSTREAM`].
    pub(crate) idp: OidcProvider,
}

static WORLD: OnceLock<Result<World, String>> = OnceLock::new();

/// The issuer's listener, bound first, and the client an identity provider knows the issuer
/// as, with a secret marked `label` and the callback on that listener's port.
pub(crate) fn issuer_listener(label: &str) -> (std::net::TcpListener, Client) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("listener address: {e}"))
        .port();
    let client = Client {
        id: "credential-issuer".to_owned(),
        secret: format!("{label} client secret {}", std::process::id()),
        redirect_uri: format!("https://127.0.0.1:{port}/upstream/callback"),
    };
    (listener, client)
}

/// Upstream `id`, shown as `name`, at `issuer_url`, that knows the issuer as `client` (its
/// secret in `secret_file`), asked for the scopes a sign-in and a refresh need.
pub(crate) fn upstream_settings(
    id: &str,
    name: &str,
    issuer_url: &str,
    client: &Client,
    secret_file: &std::path::Path,
) -> FileUpstream {
    FileUpstream {
        id: id.to_owned(),
        name: Some(name.to_owned()),
        issuer_url: issuer_url.to_owned(),
        client_id: client.id.clone(),
        client_secret_file: Some(secret_file.to_owned()),
        scopes: Some(
            ["openid", "profile", "email", "groups", "offline_access"]
                .map(str::to_owned)
                .to_vec(),
        ),
        ..FileUpstream::default()
    }
}

/// The shared world, started by the first test that asks. If starting it failed, every test
/// fails with the same message.
pub(crate) fn world() -> &'static World {
    let started = WORLD.get_or_init(|| {
        std::panic::catch_unwind(World::start).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned())
        })
    });
    match started {
        Ok(world) => world,
        Err(e) => panic!("the shared issuer + control plane did not start:\n{e}"),
    }
}

impl World {
    fn start() -> Self {
        Self::start_own(TOKEN_TTL)
    }

    /// An issuer and control plane of one test's own, issuing tokens that live `token_ttl`:
    /// for tests that count on the issuer's `/metrics` (other tests' logins do not count) and
    /// need an API server trusting that issuer. Costs a control plane start.
    pub(crate) fn start_own(token_ttl: Duration) -> Self {
        let t0 = Instant::now();
        // The provider must know the issuer's callback URL, so the issuer's port comes first.
        let (listener, client) = issuer_listener("e2e");
        let idp = OidcProvider::start(
            &client,
            &UPSTREAM_PEOPLE
                .iter()
                .map(|(username, email, groups)| Account {
                    username: (*username).to_owned(),
                    password: upstream_password(username),
                    email: (*email).to_owned(),
                    groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                })
                .collect::<Vec<_>>(),
        );
        let secret_file = idp.dir().join("client-secret");
        std::fs::write(&secret_file, &client.secret)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", secret_file.display()));
        let upstream = |id: &str, name: &str, domains: &[&str]| FileUpstream {
            allowed_email_domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            ..upstream_settings(id, name, idp.url(), &client, &secret_file)
        };
        let issuer = Issuer::start_on(
            listener,
            &IssuerOptions {
                clusters: vec![(CLUSTER.to_owned(), AUDIENCE.to_owned())],
                token_ttl: format!("{}s", token_ttl.as_secs()),
                poll_interval: "1s".to_owned(),
                api_server: None,
                upstreams: vec![
                    upstream(UPSTREAM, "Corp SSO", &[]),
                    upstream(
                        UPSTREAM_DOMAIN_ONLY,
                        "Corp SSO (corp.example only)",
                        &[UPSTREAM_DOMAIN],
                    ),
                ],
                policy: Some(world_policy()),
                grant_roles: Some(format!(
                    "{}{}{AUDIT_CONFIG}",
                    crate::grants::ROLES,
                    crate::requests::config()
                )),
                ..IssuerOptions::default()
            },
        );
        // The API server runs with exactly the flags install/ tells operators to use.
        let flags = shipped_oidc_flags();
        let flag = |name: &str| {
            flags.iter().find(|(k, _)| k == name).map_or_else(
                || panic!("install/apiserver-flags.txt lacks {name}"),
                |(_, v)| v.clone(),
            )
        };
        assert_eq!(flag("--oidc-signing-algs"), "ES256");
        assert_eq!(flag("--oidc-username-prefix"), PREFIX);
        assert_eq!(flag("--oidc-groups-prefix"), PREFIX);
        let control_plane = ControlPlane::start(&OidcSettings {
            issuer_url: flag("--oidc-issuer-url").replace("ISSUER_URL", issuer.url()),
            ca_file: PathBuf::from(
                flag("--oidc-ca-file").replace("CA_FILE", &issuer.ca_file().to_string_lossy()),
            ),
            client_id: flag("--oidc-client-id").replace("AUDIENCE", AUDIENCE),
            username_claim: flag("--oidc-username-claim"),
            username_prefix: flag("--oidc-username-prefix"),
            groups_claim: flag("--oidc-groups-claim"),
            groups_prefix: flag("--oidc-groups-prefix"),
        });
        control_plane.apply(&rbac());
        crate::grants::give_the_reconciler_access(
            &control_plane,
            &issuer.reconciler_kubeconfig(CLUSTER),
        );
        let world = Self {
            issuer,
            control_plane,
            idp,
        };
        world.wait_for_oidc();
        eprintln!(
            "e2e: issuer {} and API server {} ready in {:.1?}",
            world.issuer.url(),
            world.control_plane.server(),
            t0.elapsed()
        );
        world
    }

    /// Kubernetes 1.20 fetches the issuer's discovery document about 10 s after start and
    /// retries every 10 s; until then every OIDC token gets 401. So a token obtained over plain
    /// HTTP (not through the plugin under test) is presented until the API server accepts it.
    fn wait_for_oidc(&self) {
        let probe = self.new_person("oidc-probe", &[READERS]);
        let mut tokens = self
            .issuer
            .login_over_http(CLUSTER, &probe.name, &probe.password);
        let mut issued = Instant::now();
        let accepted = wait::until(
            "the API server accepts the issuer's tokens",
            Duration::from_secs(90),
            || {
                if issued.elapsed() + Duration::from_secs(3) > TOKEN_TTL {
                    match self.issuer.refresh(&tokens.refresh_token) {
                        Ok(fresh) => {
                            tokens = fresh;
                            issued = Instant::now();
                        }
                        Err(e) => {
                            return Check::Fail(format!(
                                "refreshing the probe's token failed: {e:?}"
                            ))
                        }
                    }
                }
                let resp = self
                    .control_plane
                    .get_with_token("/api", &tokens.access_token);
                match resp.status {
                    200 => Check::Done(()),
                    401 => Check::Retry(format!("401 {}", resp.body.trim())),
                    other => Check::Fail(format!("unexpected status {other}: {}", resp.body)),
                }
            },
        );
        if let Err(e) = accepted {
            panic!(
                "{e}\n--- kube-apiserver log (tail) ---\n{}",
                self.control_plane.apiserver_log_tail(40)
            );
        }
    }

    /// A new account, named `ROLE-N` (unique in this run), in `groups`, created with the
    /// operator CLI while the issuer runs.
    pub(crate) fn new_person(&self, role: &str, groups: &[&str]) -> Person {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("{role}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let password = format!("correct horse battery staple {name}");
        self.issuer.add_user(&name, groups, &password);
        Person { name, password }
    }

    /// The plugin arguments for this world's issuer and cluster.
    /// The control plane's API server and its CA, as an issuer publishes them.
    pub(crate) fn api_server(&self) -> (String, PathBuf) {
        (
            self.control_plane.server().to_owned(),
            self.control_plane.ca_file().to_owned(),
        )
    }

    /// `kubeconfig` in `env`'s home: the control plane, reached with exec v1 and `plugin`.
    pub(crate) fn kubeconfig(&self, env: &UserEnv, plugin: &PluginArgs) -> PathBuf {
        env.write_kubeconfig(
            "kubeconfig",
            self.control_plane.server(),
            self.control_plane.ca_file(),
            ApiVersion::V1,
            plugin,
        )
    }

    /// A new person (see [`World::new_person`]) signed in on a new laptop.
    pub(crate) fn signed_in(&self, role: &str, groups: &[&str]) -> (Person, Laptop) {
        let person = self.new_person(role, groups);
        let laptop = Laptop::new();
        laptop.log_in(&person);
        (person, laptop)
    }

    pub(crate) fn plugin_args(&self, token_cache: TokenCache) -> PluginArgs {
        PluginArgs {
            issuer: self.issuer.url().to_owned(),
            cluster: CLUSTER.to_owned(),
            issuer_ca: self.issuer.ca_file().to_owned(),
            token_cache,
        }
    }

    /// A fresh browser (no cookies) for this world's issuer.
    pub(crate) fn browser(&self) -> Browser {
        self.issuer.browser()
    }
}

/// Someone with an account at the issuer.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub(crate) name: String,
    pub(crate) password: String,
}

impl Person {
    /// The Kubernetes user name the API server sees: `credential:NAME`.
    pub(crate) fn kube_username(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }
}

/// A person's machine: a private home, the plugin's arguments and a kubeconfig using them.
#[derive(Debug)]
pub(crate) struct Laptop {
    pub(crate) env: UserEnv,
    pub(crate) plugin: PluginArgs,
    pub(crate) kubeconfig: PathBuf,
}

impl Laptop {
    /// A fresh machine caching tokens in files, with an exec kubeconfig in the newest protocol
    /// version kubectl speaks.
    pub(crate) fn new() -> Self {
        Self::with(UserEnv::new(), TokenCache::File)
    }

    /// A fresh machine whose sessions go to the Secret Service `secrets`.
    pub(crate) fn with_keyring(secrets: &e2e::SecretService) -> Self {
        Self::with(
            UserEnv::new().with_session_bus(secrets.address()),
            TokenCache::Keyring,
        )
    }

    /// A machine with `env` and `token_cache`, with an exec kubeconfig in the newest protocol
    /// version kubectl speaks.
    pub(crate) fn with(env: UserEnv, token_cache: TokenCache) -> Self {
        let world = world();
        let plugin = world.plugin_args(token_cache);
        let kubeconfig = env.write_kubeconfig(
            "kubeconfig",
            world.control_plane.server(),
            world.control_plane.ca_file(),
            if e2e::bins::kubectl_speaks_exec_v1() {
                ApiVersion::V1
            } else {
                ApiVersion::V1Beta1
            },
            &plugin,
        );
        Self {
            env,
            plugin,
            kubeconfig,
        }
    }

    /// A second kubeconfig on this machine, for exec protocol `version`.
    pub(crate) fn kubeconfig_for(&self, version: ApiVersion) -> PathBuf {
        let world = world();
        let name = format!(
            "kubeconfig-{}",
            version.as_str().rsplit('/').next().unwrap_or("x")
        );
        self.env.write_kubeconfig(
            &name,
            world.control_plane.server(),
            world.control_plane.ca_file(),
            version,
            &self.plugin,
        )
    }

    /// `kubectl-credential login` approved by `person` in a browser: the whole device flow.
    /// Fails the test unless the login succeeds without opening a browser.
    pub(crate) fn log_in(&self, person: &Person) {
        let login = self.env.start_login(&self.plugin);
        let _ = world()
            .browser()
            .approve(login.user_code(), &person.name, &person.password);
        login.finish(LOGIN_TIMEOUT).assert_success();
        assert!(
            self.env.browser_launches().is_empty(),
            "--no-browser opened a browser: {:?}",
            self.env.browser_launches()
        );
    }

    /// `kubectl ARGS` with this machine's kubeconfig, not interactive.
    pub(crate) fn kubectl(&self, args: &[&str]) -> Outcome {
        self.env.kubectl(&self.kubeconfig, args)
    }

    /// `kubectl-credential SUBCOMMAND` with this machine's plugin arguments.
    pub(crate) fn plugin(&self, subcommand: &str) -> Outcome {
        self.env.plugin(&self.plugin.for_subcommand(subcommand))
    }

    /// `kubectl-credential get` as kubectl runs it without a terminal (`interactive: false`).
    /// kubectl fails with the login hint, and no browser was opened.
    #[track_caller]
    pub(crate) fn assert_kubectl_asks_for_login(&self) {
        self.kubectl(&["get", "namespaces"])
            .assert_failure()
            .assert_stderr_contains(LOGIN_HINT);
        assert!(
            self.env.browser_launches().is_empty(),
            "a non-interactive call opened a browser: {:?}",
            self.env.browser_launches()
        );
    }

    pub(crate) fn get_credential(&self, version: ApiVersion) -> Outcome {
        self.env.plugin_as_kubectl_would(
            &self.plugin.for_subcommand("get"),
            &e2e::plugin::exec_info(version, false),
        )
    }

    /// The token cache file's content (file cache only).
    pub(crate) fn cached_token(&self) -> CachedToken {
        self.env.cached_token()
    }
}

/// Waits until the API server refuses `token` with 401 (it has expired), at most twice the
/// token lifetime plus the API server's 10 s authentication cache.
pub(crate) fn wait_until_rejected(token: &str) {
    let cp = &world().control_plane;
    wait::until(
        "the API server rejects the old token",
        TOKEN_TTL * 2 + Duration::from_secs(15),
        || {
            let resp = cp.get_with_token("/api", token);
            match resp.status {
                401 => Check::Done(()),
                200 => Check::Retry("still accepted".to_owned()),
                other => Check::Fail(format!("unexpected status {other}: {}", resp.body)),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Fails the test unless `out` is the plugin's "log in again" failure: exit 3 with the hint.
/// The issuer's refusal of `refresh_token` as `invalid_grant`; `why` is what it means if the
/// token still works.
#[track_caller]
pub(crate) fn refused_refresh(
    issuer: &Issuer,
    refresh_token: &str,
    why: &str,
) -> e2e::issuer::TokenError {
    let refused = issuer
        .refresh(refresh_token)
        .err()
        .unwrap_or_else(|| panic!("{why}"));
    assert_eq!(
        refused.code(),
        Some(credential_shared::oauth::OAuthErrorCode::InvalidGrant),
        "{refused:?}"
    );
    refused
}

/// `out` is the plugin's exit 6 for a token cache it cannot use, with nothing on stdout and no
/// token file written instead.
#[track_caller]
pub(crate) fn assert_cache_unavailable(laptop: &Laptop, out: &Outcome) {
    out.assert_code(exit::CACHE_UNAVAILABLE)
        .assert_stderr_contains("--token-cache=file");
    assert!(
        out.stdout.is_empty(),
        "nothing but an ExecCredential may go to stdout: {out}"
    );
    assert!(
        laptop.env.token_files().is_empty(),
        "the plugin fell back to token files: {:?}",
        laptop.env.token_files()
    );
}

pub(crate) fn assert_login_required(out: &Outcome) {
    out.assert_code(exit::LOGIN_REQUIRED)
        .assert_stderr_contains(LOGIN_HINT);
}

/// `out` asks for a login (see [`assert_login_required`]) at once, with nothing on stdout.
#[track_caller]
pub(crate) fn assert_login_required_at_once(out: &Outcome) {
    assert_login_required(out);
    assert!(
        out.stdout.is_empty(),
        "nothing but an ExecCredential may go to stdout: {out}"
    );
    assert!(
        out.elapsed < Duration::from_secs(10),
        "a non-interactive call must fail fast: {out}"
    );
}

/// The token of the ExecCredential on `stdout`.
#[track_caller]
pub(crate) fn token_in(stdout: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not one ExecCredential ({e}): {stdout:?}"));
    doc["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Fails the test unless kubectl failed because the API server forbade `person` something.
pub(crate) fn assert_forbidden(out: &Outcome, person: &Person) {
    out.assert_failure();
    assert!(
        out.stderr.to_lowercase().contains("forbidden"),
        "expected Forbidden, but {out}"
    );
    assert!(
        out.stderr.contains(&person.kube_username()),
        "expected the user name {} in the message, but {out}",
        person.kube_username()
    );
}
