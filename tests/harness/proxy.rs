//! The issuer's authenticating, impersonating proxy (`credential-issuer proxy --cluster NAME`)
//! as an operator runs it: a process of its own next to the issuer, on the same configuration
//! file, data directory and database, forwarding to a real API server with a credential of its
//! own that may do nothing but impersonate.
//!
//! That credential is made the way `install/` tells operators to: the shipped RBAC file
//! ([`RBAC_FILE`]) applied as it is, and a token of the `ServiceAccount` its binding names.
//! The envtest control plane runs no controller manager, so no token Secret is ever filled in
//! for a `ServiceAccount`; the token comes from the `TokenRequest` API (`kubectl create token`),
//! which is also what a projected pod token is.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::control_plane::ControlPlane;
use crate::http;
use crate::issuer::Issuer;
use crate::process::{self, Reaper};
use crate::wait::{self, Check};

/// The proxy's RBAC in the repository: a `ClusterRole` that may only impersonate, bound to the
/// proxy's `ServiceAccount`.
pub const RBAC_FILE: &str = "install/proxy-rbac.yaml";

/// What the proxy prints on stderr once its listener is bound, before the address.
pub const LISTENING: &str = "listening on https://";

/// The proxy's identity at the API server, made from [`RBAC_FILE`].
#[derive(Debug, Clone)]
pub struct ProxyCredential {
    /// A kubeconfig with the API server's URL and CA and the `ServiceAccount`'s token.
    pub kubeconfig: PathBuf,
    /// `system:serviceaccount:NAMESPACE:NAME`, the `user.username` of the API server's audit
    /// events for requests the proxy forwards.
    pub username: String,
    /// The `ClusterRole` of [`RBAC_FILE`] the `ServiceAccount` is bound to (its only rights).
    pub cluster_role: String,
    /// The `ServiceAccount`'s token (to look for it where it must not be).
    pub token: String,
}

/// Applies [`RBAC_FILE`] to `cp` as the admin (with the namespace and `ServiceAccount` its binding
/// names, when the file does not create them), gets a token of that `ServiceAccount` and writes a
/// kubeconfig for it into `dir`.
#[track_caller]
#[must_use]
pub fn service_account_credential(cp: &ControlPlane, dir: &Path) -> ProxyCredential {
    let file = repo_file(RBAC_FILE);
    let objects = objects_in(cp, &file);
    let kind_of = |o: &serde_json::Value| o["kind"].as_str().unwrap_or_default().to_owned();
    let role = objects
        .iter()
        .find(|o| kind_of(o) == "ClusterRole")
        .and_then(|o| o["metadata"]["name"].as_str())
        .unwrap_or_else(|| panic!("{RBAC_FILE} holds no ClusterRole: {objects:#?}"))
        .to_owned();
    let binding = objects
        .iter()
        .find(|o| kind_of(o) == "ClusterRoleBinding" && o["roleRef"]["name"] == role.as_str())
        .unwrap_or_else(|| panic!("{RBAC_FILE} binds ClusterRole {role} to nobody: {objects:#?}"));
    let subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
    assert!(
        subjects.len() == 1 && subjects[0]["kind"] == "ServiceAccount",
        "{RBAC_FILE} must bind {role} to exactly the proxy's ServiceAccount: {binding:#}"
    );
    let name = subjects[0]["name"].as_str().unwrap_or_default().to_owned();
    let namespace = subjects[0]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !name.is_empty() && !namespace.is_empty(),
        "{RBAC_FILE}: the binding's ServiceAccount needs a name and a namespace: {binding:#}"
    );

    // The file may or may not create them (a Deployment file may); applying is idempotent.
    cp.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
    ));
    cp.kubectl_admin(&["apply", "-f", &file.to_string_lossy()], None)
        .assert_success();

    let out = cp.kubectl_admin(
        &[
            "create",
            "token",
            &name,
            "-n",
            &namespace,
            "--duration",
            "4h",
        ],
        None,
    );
    out.assert_success();
    let token = out.stdout.trim().to_owned();
    assert!(!token.is_empty(), "no token printed: {out}");

    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "upstream",
            "cluster": { "server": cp.server(), "certificate-authority": cp.ca_file() },
        }],
        "users": [{ "name": "proxy", "user": { "token": token } }],
        "contexts": [{ "name": "upstream", "context": { "cluster": "upstream", "user": "proxy" } }],
        "current-context": "upstream",
    });
    let kubeconfig = dir.join("proxy.kubeconfig");
    write_private(
        &kubeconfig,
        &serde_json::to_string_pretty(&doc).unwrap_or_else(|e| panic!("kubeconfig JSON: {e}")),
    );
    ProxyCredential {
        kubeconfig,
        username: format!("system:serviceaccount:{namespace}:{name}"),
        cluster_role: role,
        token,
    }
}

/// Every object in the YAML file `file`, as the API server would read them (kubectl parses).
fn objects_in(cp: &ControlPlane, file: &Path) -> Vec<serde_json::Value> {
    let out = cp.kubectl_admin(
        &[
            "create",
            "--dry-run=client",
            "-o",
            "json",
            "-f",
            &file.to_string_lossy(),
        ],
        None,
    );
    out.assert_success();
    // One JSON document per object, one after the other (a `List` for some kubectl versions).
    let mut objects = Vec::new();
    for doc in serde_json::Deserializer::from_str(&out.stdout).into_iter::<serde_json::Value>() {
        let doc = doc.unwrap_or_else(|e| panic!("kubectl printed no JSON ({e}): {out}"));
        if doc["kind"] == "List" {
            objects.extend(doc["items"].as_array().cloned().unwrap_or_default());
        } else {
            objects.push(doc);
        }
    }
    objects
}

/// `path` relative to the repository root; a missing file fails the test.
#[track_caller]
#[must_use]
pub fn repo_file(path: &str) -> PathBuf {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    assert!(
        full.is_file(),
        "{} not found: the proxy's install files ship in install/ (see docs)",
        full.display()
    );
    full
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// A running `credential-issuer proxy --cluster NAME`.
#[derive(Debug)]
pub struct Proxy {
    cluster: String,
    url: String,
    ca_file: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    // Dropped after `child` is stopped: kills the process group should the test process die
    // without dropping (a `static` fixture), and removes the directory.
    _reaper: Reaper,
}

impl Proxy {
    /// Starts the proxy of `cluster` with the configuration file, data directory and database
    /// of `issuer` (which must have been started with [`crate::ProxyOptions`] for `cluster`), and
    /// returns once it has logged its address and answers over TLS with the CA the issuer
    /// publishes for the cluster.
    #[track_caller]
    #[must_use]
    pub fn start(issuer: &Issuer, cluster: &str) -> Self {
        let options = issuer
            .proxy_options(cluster)
            .unwrap_or_else(|| panic!("the issuer was started without a proxy for {cluster}"))
            .clone();
        let config = issuer
            .config_file()
            .unwrap_or_else(|| panic!("an issuer with a proxy has a config file"))
            .to_owned();
        let dir = tempfile::Builder::new()
            .prefix("e2e-proxy.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
            .keep();
        let log = dir.join("proxy.log");
        let log_file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let log_copy = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate {}: {e}", log.display()));
        let mut cmd = Command::new(crate::bins::credential_issuer());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &dir)
            // Verbose, so that a token written to the log at any level would be found.
            .env("RUST_LOG", "info,credential_issuer=debug")
            .args(["proxy", "--cluster", cluster, "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(issuer.data_dir())
            .stdin(Stdio::null())
            .stdout(log_copy)
            .stderr(log_file);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let command = process::describe(&cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let reaper = Reaper::spawn(
            "the credential proxy",
            r#"kill -KILL -- "-$1" 2>/dev/null; [ -n "$3" ] || rm -rf "$2""#,
            &[
                child.id().to_string().as_ref(),
                dir.as_os_str(),
                process::keep_flag().as_ref(),
            ],
        );
        let mut proxy = Self {
            cluster: cluster.to_owned(),
            url: options.url(),
            ca_file: issuer.ca_file().to_owned(),
            log,
            child: Some(child),
            _reaper: reaper,
        };
        let addr = proxy.wait_for_listening_line();
        assert_eq!(
            addr,
            options.addr.to_string(),
            "the proxy logged another address than its configured listen address:\n{}",
            proxy.log()
        );
        // kubectl trusts what the cluster list publishes; so does every raw request here.
        if let Some(ca) = published_ca(issuer, cluster) {
            let path = dir.join("published-ca.crt");
            std::fs::write(&path, ca)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            proxy.ca_file = path;
        }
        proxy.wait_for_tls();
        proxy
    }

    fn wait_for_listening_line(&mut self) -> String {
        let line = wait::until(
            "the proxy logs that it listens",
            Duration::from_secs(60),
            || {
                let log = self.log();
                if let Some(line) = log.lines().find(|l| l.contains(LISTENING)) {
                    return Check::Done(line.to_owned());
                }
                match self.child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(status))) => Check::Fail(format!("it exited with {status}")),
                    _ => Check::Retry("no such line yet".to_owned()),
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n--- proxy log ---\n{}", self.log()));
        let rest = line
            .split_once(LISTENING)
            .map(|(_, r)| r)
            .unwrap_or_default();
        rest.split(|c: char| c.is_whitespace() || c == '"' || c == ')')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned()
    }

    fn wait_for_tls(&mut self) {
        let agent = http::agent_with_timeout(&self.ca_file, Duration::from_secs(5));
        let url = format!("{}/version", self.url);
        let child = &mut self.child;
        let log = &self.log;
        wait::until(
            "the proxy answers over TLS",
            Duration::from_secs(30),
            || match http::response(agent.get(&url).call()) {
                Ok(_) => Check::Done(()),
                Err(e) => match child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(status))) => Check::Fail(format!("it exited with {status}")),
                    _ => Check::Retry(e),
                },
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n--- proxy log ---\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
    }

    /// The cluster it serves.
    #[must_use]
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// `https://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA the issuer publishes for the cluster (what kubeconfigs from `setup` trust), or
    /// the issuer's own CA if it publishes none.
    #[must_use]
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Everything it logged so far (stderr and stdout).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log, for failure messages.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// One request `METHOD path` with `Authorization: Bearer token` (when given) and `headers`,
    /// whatever the client libraries would or would not send: the status and body.
    #[track_caller]
    #[must_use]
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> http::Response {
        let url = format!("{}{path}", self.url);
        let mut req = http::agent(&self.ca_file).request(method, &url);
        if let Some(token) = token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        for (name, value) in headers {
            req = req.set(name, value);
        }
        http::response(req.call()).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// A TLS connection to the proxy (HTTP/1.1, trusting [`Proxy::ca_file`]) for requests no
    /// HTTP client library sends as they are: an `Upgrade` handshake, then raw bytes.
    #[track_caller]
    #[must_use]
    pub fn connect_tls(
        &self,
    ) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
        use rustls::pki_types::{pem::PemObject as _, CertificateDer, ServerName};
        let pem = std::fs::read(&self.ca_file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.ca_file.display()));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.unwrap_or_else(|e| panic!("bad PEM in the proxy's CA: {e}"));
            roots
                .add(cert)
                .unwrap_or_else(|e| panic!("bad certificate in the proxy's CA: {e}"));
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("rustls protocol versions: {e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();
        let addr = self.url.trim_start_matches("https://");
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_owned();
        let name = ServerName::try_from(host.clone())
            .unwrap_or_else(|e| panic!("{host} is not a server name: {e}"));
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
            .unwrap_or_else(|e| panic!("TLS client: {e}"));
        let tcp = std::net::TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("cannot connect to the proxy at {addr}: {e}"));
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap_or_else(|e| panic!("read timeout: {e}"));
        rustls::StreamOwned::new(conn, tcp)
    }

    /// `SIGTERM`, and waits (at most 30 s) for it to exit; fails the test if it does not.
    #[track_caller]
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        process::kill_group(child.id(), rustix::process::Signal::TERM);
        let status = process::wait_for(&mut child, Duration::from_secs(30));
        assert!(
            status.is_some(),
            "the proxy did not stop within 30 s after SIGTERM:\n{}",
            self.log_tail(30)
        );
        status
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_group(child.id(), rustix::process::Signal::TERM);
            if process::wait_for(&mut child, Duration::from_secs(10)).is_none() {
                eprintln!("harness: the proxy did not stop within 10 s after SIGTERM; killed");
            }
        }
    }
}

/// The PEM CA bundle the issuer's cluster list publishes for `cluster`, if any.
fn published_ca(issuer: &Issuer, cluster: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let list = published_cluster(issuer, cluster)?;
    let data = list.certificate_authority_data?;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()
}

/// The entry of `cluster` in the issuer's public cluster list (what `kubectl credential
/// setup` reads).
#[track_caller]
#[must_use]
pub fn published_cluster(
    issuer: &Issuer,
    cluster: &str,
) -> Option<credential_shared::api::ClusterInfo> {
    let resp = issuer.get(credential_shared::api::PATH_CLUSTERS);
    assert_eq!(resp.status, 200, "the cluster list: {resp:?}");
    let list: credential_shared::api::ClusterList = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("the cluster list is not JSON ({e}): {}", resp.body));
    list.clusters.into_iter().find(|c| c.name == cluster)
}
