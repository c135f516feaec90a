//! What `install/` ships works as written: the plugin is reachable through kubectl's plugin
//! naming (`kubectl credential ...`), the example kubeconfig is one kubectl accepts, the RBAC
//! example and the Kubernetes manifests are valid for the API server, the plugin installer
//! checks checksums, and the systemd unit is sandboxed. (The API server flags are checked by
//! every test: the shared world starts the API server with `install/apiserver-flags.txt`; the
//! webhook files by the `webhook` test.)

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::Value;

use crate::world::{refused_refresh, shipped_oidc_flags, world, READERS};

fn install_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../install")
        .join(name)
}

#[test]
fn kubectl_finds_the_plugin_as_kubectl_credential() {
    let world = world();
    let (_nora, laptop) = world.signed_in("nora", &[READERS]);
    let refresh_token = laptop.cached_token().refresh_token;

    // kubectl runs `kubectl-credential` from PATH for `kubectl credential ...`.
    let bin_dir = e2e::bins::kubectl_credential()
        .parent()
        .unwrap_or_else(|| panic!("the plugin binary has no directory"))
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = laptop.env.command(&e2e::bins::kubectl());
    cmd.env("PATH", path).arg("credential").arg("logout");
    cmd.args(laptop.plugin.for_subcommand("logout").iter().skip(1));
    let out = e2e::process::run(&mut cmd, None, std::time::Duration::from_secs(30));
    out.assert_success();
    refused_refresh(
        &world.issuer,
        &refresh_token,
        "`kubectl credential logout` did not end the session",
    );
}

#[test]
fn the_example_kubeconfig_and_rbac_are_accepted() {
    let world = world();
    let kubeconfig = install_file("kubeconfig-example.yaml");
    let out = world.control_plane.kubectl_admin(
        &[
            "config",
            "view",
            "--kubeconfig",
            &kubeconfig.to_string_lossy(),
            "-o",
            "jsonpath={.users[0].user.exec.command} {.users[0].user.exec.args[0]} {.users[0].user.exec.interactiveMode}",
        ],
        None,
    );
    out.assert_success();
    assert_eq!(
        out.stdout.trim(),
        "kubectl-credential get IfAvailable",
        "{out}"
    );

    let rbac = std::fs::read_to_string(install_file("rbac-example.yaml"))
        .unwrap_or_else(|e| panic!("rbac-example.yaml: {e}"));
    // Its namespaced example binds in team-b, which the operator creates first.
    world.control_plane.apply(TEAM_B_NAMESPACE);
    world
        .control_plane
        .kubectl_admin(&["apply", "--dry-run=server", "-f", "-"], Some(&rbac))
        .assert_success()
        .assert_stdout_contains("credential-k8s-readers");
    assert!(
        rbac.contains(&format!("credential:{READERS}")),
        "the RBAC example binds another group than the one the flags' prefix produces"
    );
    assert!(
        shipped_oidc_flags().len() >= 8,
        "install/apiserver-flags.txt lost flags"
    );
}

const TEAM_B_NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n";

/// The namespaced case of `install/rbac-example.yaml`, applied as written: a person in the
/// issuer group `k8s-team-b` signs in with the plugin and may work in team-b, and nowhere else.
#[test]
fn the_namespace_example_lets_a_team_into_its_namespace_only() {
    let world = world();
    world.control_plane.apply(TEAM_B_NAMESPACE);
    let rbac = std::fs::read_to_string(install_file("rbac-example.yaml"))
        .unwrap_or_else(|e| panic!("rbac-example.yaml: {e}"));
    world.control_plane.apply(&rbac);
    let (_tess, laptop) = world.signed_in("tess", &["k8s-team-b"]);
    laptop
        .kubectl(&["auth", "can-i", "create", "deployments", "-n", "team-b"])
        .assert_success()
        .assert_stdout_contains("yes");
    laptop
        .kubectl(&["get", "pods", "-n", "team-b"])
        .assert_success();
    let elsewhere = laptop.kubectl(&["get", "pods", "-n", "default"]);
    elsewhere.assert_failure();
    assert!(elsewhere.stderr.contains("Forbidden"), "{elsewhere}");
}

fn read_manifest(name: &str) -> String {
    std::fs::read_to_string(install_file("kubernetes").join(name))
        .unwrap_or_else(|e| panic!("install/kubernetes/{name}: {e}"))
}

/// `kubectl apply --dry-run=server -o json` of `text`: the objects as the API server would
/// store them (validated, defaulted, through admission), nothing created.
fn server_dry_run(cp: &e2e::control_plane::ControlPlane, name: &str, text: &str) -> Vec<Value> {
    let out = cp.kubectl_admin(
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(text),
    );
    out.assert_success();
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: the dry run printed no JSON ({e}): {out}"));
    if doc["kind"] == "List" {
        doc["items"].as_array().cloned().unwrap_or_default()
    } else {
        vec![doc]
    }
}

/// The object of `kind` called `name` among `objects`.
#[track_caller]
fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among {objects:#?}"))
}

/// The Kubernetes manifests in `install/kubernetes/` are accepted by a real API server
/// (server-side dry run: schema, defaulting and admission, nothing created but the namespace)
/// and have the production shape: two replicas rolled one at a time and spread over nodes, no
/// volume that ties the issuer to one node, the database URL (it holds a password) from a
/// Secret and never a literal, a disruption budget that keeps one replica, and a service
/// account holding exactly the reconciler's permissions of `install/reconciler-rbac.yaml`.
#[test]
fn the_kubernetes_manifests_pass_a_server_side_dry_run() {
    let cp = &world().control_plane;
    // The namespace for real: the dry run of namespaced objects needs it to exist.
    cp.apply(&read_manifest("namespace.yaml"));

    let rbac = server_dry_run(cp, "rbac.yaml", &read_manifest("rbac.yaml"));
    object(&rbac, "ServiceAccount", "credential-issuer");
    let role = object(&rbac, "ClusterRole", "credential-issuer-reconciler");
    let reference = std::fs::read_to_string(install_file("reconciler-rbac.yaml"))
        .unwrap_or_else(|e| panic!("reconciler-rbac.yaml: {e}"));
    let reference = server_dry_run(cp, "reconciler-rbac.yaml", &reference);
    assert_eq!(
        role["rules"],
        object(&reference, "ClusterRole", "credential-issuer-reconciler")["rules"],
        "install/kubernetes/rbac.yaml must give the service account exactly the rules of \
         install/reconciler-rbac.yaml (what the reconciler is tested with)"
    );
    let binding = object(&rbac, "ClusterRoleBinding", "credential-issuer");
    assert_eq!(binding["roleRef"]["name"], "credential-issuer-reconciler");
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "credential-issuer", "namespace": "credential-issuer"}])
    );

    let config = server_dry_run(cp, "config.yaml", &read_manifest("config.yaml"));
    let toml_text = object(&config, "ConfigMap", "credential-issuer")["data"]["issuer.toml"]
        .as_str()
        .unwrap_or_else(|| panic!("the ConfigMap has no issuer.toml"))
        .to_owned();
    assert!(
        !toml_text.contains("database_url") && !toml_text.contains("postgres"),
        "the database URL (with its password) belongs in the Secret, not the ConfigMap:\n{toml_text}"
    );
    object(&config, "Secret", "credential-issuer");
    let database = object(&config, "Secret", "credential-issuer-database");
    assert!(
        database["data"]["url"].is_string(),
        "the database Secret has no `url`: {database:#}"
    );

    let deployment = server_dry_run(cp, "deployment.yaml", &read_manifest("deployment.yaml"));
    object(&deployment, "Service", "credential-issuer");
    assert!(
        !deployment
            .iter()
            .any(|o| o["kind"] == "PersistentVolumeClaim"),
        "several replicas share the database, not a volume"
    );
    let spec = &object(&deployment, "Deployment", "credential-issuer")["spec"];
    let replicas = spec["replicas"].as_i64().unwrap_or(0);
    assert!(replicas >= 2, "replicas: {replicas}");
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
            ["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert!(
        pod["topologySpreadConstraints"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{pod:#}"
    );
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    assert!(
        volumes.iter().all(|v| v["persistentVolumeClaim"].is_null()),
        "{volumes:#?}"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env = container["env"].as_array().cloned().unwrap_or_default();
    let url = env
        .iter()
        .find(|e| e["name"] == "CREDENTIAL_ISSUER_DATABASE_URL")
        .unwrap_or_else(|| panic!("no CREDENTIAL_ISSUER_DATABASE_URL in {env:#?}"));
    assert!(url["value"].is_null(), "a literal database URL: {url:#}");
    assert_eq!(
        url["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "credential-issuer-database", "key": "url"})
    );
    for var in &env {
        let value = var["value"].as_str().unwrap_or("");
        assert!(
            !value.contains("://"),
            "a literal URL in the environment: {var:#}"
        );
    }

    // The test API server is Kubernetes 1.20, which serves PodDisruptionBudget only as
    // policy/v1beta1 (same fields); the file's comment says so.
    let pdb = read_manifest("pdb.yaml");
    assert!(pdb.contains("apiVersion: policy/v1\n"), "{pdb}");
    let pdb = server_dry_run(
        cp,
        "pdb.yaml",
        &pdb.replace("apiVersion: policy/v1\n", "apiVersion: policy/v1beta1\n"),
    );
    let min_available = object(&pdb, "PodDisruptionBudget", "credential-issuer")["spec"]
        ["minAvailable"]
        .as_i64()
        .unwrap_or(0);
    assert!(
        (1..replicas).contains(&min_available),
        "minAvailable {min_available} with {replicas} replicas: a drain must keep one and move one"
    );
}

/// The configuration in `config.yaml` is one `credential-issuer check-config` accepts, with
/// what the Deployment adds (the database URL from the Secret in the environment) and the
/// issuer URL placeholder given on the command line; the database password is not printed.
#[test]
fn the_kubernetes_config_passes_check_config() {
    let config = read_manifest("config.yaml");
    let toml_lines: Vec<&str> = config
        .split("issuer.toml: |\n")
        .nth(1)
        .unwrap_or_else(|| panic!("config.yaml has no issuer.toml"))
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(str::trim_start)
        .collect();
    let toml_text = toml_lines.join("\n");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("issuer.toml");
    std::fs::write(&path, &toml_text).unwrap_or_else(|e| panic!("write: {e}"));
    // The Secret's key file, as Kubernetes mounts it: base64 of 32 bytes.
    let key_file = dir.path().join("seal.key");
    std::fs::write(
        &key_file,
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let password = "db-password-not-to-print";
    let mut cmd = std::process::Command::new(e2e::bins::credential_issuer());
    cmd.env(
        "CREDENTIAL_ISSUER_DATABASE_URL",
        format!("postgres://issuer:{password}@db.invalid:5432/issuer?sslmode=require"),
    )
    .env("CREDENTIAL_ISSUER_ENCRYPTION_KEY_FILE", &key_file)
    .arg("--config")
    .arg(&path)
    .args(["check-config", "--issuer-url", "https://issuer.example.com"]);
    let out = e2e::process::run(&mut cmd, None, std::time::Duration::from_secs(30));
    out.assert_success()
        .assert_stdout_contains("configuration is valid: issuer https://issuer.example.com");
    assert!(
        !out.stdout.contains(password) && !out.stderr.contains(password),
        "check-config printed the database password: {out}"
    );
}

/// `install/install-plugin.sh` installs a release archive only when its SHA-256 matches (here
/// a release directory served over `file://`, holding the plugin this workspace built).
#[test]
fn install_plugin_verifies_the_checksum_before_installing() {
    use std::process::Command;
    let run = |cmd: &mut Command| e2e::process::run(cmd, None, std::time::Duration::from_secs(60));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let version = "0.1.0";
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let release = tmp.path().join("releases").join(format!("v{version}"));
    let stage = tmp.path().join("stage");
    for dir in [&release, &stage] {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    }
    std::fs::copy(
        e2e::bins::kubectl_credential(),
        stage.join("kubectl-credential"),
    )
    .unwrap_or_else(|e| panic!("copy the plugin: {e}"));
    let archive = release.join(format!("kubectl-credential-{version}-{target}.tar.gz"));
    run(Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&stage)
        .arg("kubectl-credential"))
    .assert_success();
    let sum = run(Command::new("sha256sum").arg(&archive))
        .assert_success()
        .stdout
        .clone();
    let checksum_file = release.join(format!(
        "kubectl-credential-{version}-{target}.tar.gz.sha256"
    ));
    let install = |bin_dir: &std::path::Path| {
        let mut cmd = Command::new("bash");
        cmd.arg(install_file("install-plugin.sh"))
            .args(["--version", version, "--bin-dir"])
            .arg(bin_dir)
            .env(
                "KUBECTL_CREDENTIAL_RELEASE_URL",
                format!("file://{}", tmp.path().join("releases").display()),
            );
        run(&mut cmd)
    };

    // A checksum that does not match: refused, nothing installed.
    std::fs::write(&checksum_file, format!("{}  x\n", "0".repeat(64)))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let bad_dir = tmp.path().join("bad-bin");
    install(&bad_dir)
        .assert_failure()
        .assert_stderr_contains("checksum mismatch");
    assert!(
        !bad_dir.join("kubectl-credential").exists(),
        "installed despite a bad checksum"
    );

    // The right one: installed, executable, the same program.
    std::fs::write(&checksum_file, &sum).unwrap_or_else(|e| panic!("write: {e}"));
    let bin_dir = tmp.path().join("bin");
    install(&bin_dir)
        .assert_success()
        .assert_stdout_contains("installed");
    run(Command::new(bin_dir.join("kubectl-credential")).arg("--version"))
        .assert_success()
        .assert_stdout_contains("kubectl-credential 0.1.0");

    // The script as checked out names no release: it says to install from source.
    let plain = run(Command::new("bash")
        .arg(install_file("install-plugin.sh"))
        .arg("--bin-dir")
        .arg(tmp.path().join("plain-bin"))
        .env_remove("KUBECTL_CREDENTIAL_RELEASE_URL"));
    plain
        .assert_failure()
        .assert_stderr_contains("--from-source");
    // The copy the release process publishes has its RELEASE_URL filled in
    // (docs/releasing.md): it installs without any variable.
    let script = std::fs::read_to_string(install_file("install-plugin.sh"))
        .unwrap_or_else(|e| panic!("install-plugin.sh: {e}"));
    assert_eq!(
        script.matches("\nRELEASE_URL=\"\"\n").count(),
        1,
        "the release process fills exactly this line"
    );
    let published = tmp.path().join("install-plugin.sh");
    std::fs::write(
        &published,
        script.replace(
            "\nRELEASE_URL=\"\"\n",
            &format!(
                "\nRELEASE_URL=\"file://{}\"\n",
                tmp.path().join("releases").display()
            ),
        ),
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let from_release = tmp.path().join("release-bin");
    run(Command::new("bash")
        .arg(&published)
        .args(["--version", version, "--bin-dir"])
        .arg(&from_release)
        .env_remove("KUBECTL_CREDENTIAL_RELEASE_URL"))
    .assert_success()
    .assert_stdout_contains("installed");
}

/// The systemd unit keeps the sandbox the operations guide promises.
#[test]
fn the_systemd_unit_is_sandboxed() {
    let path = install_file("systemd").join("credential-issuer.service");
    let unit = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for required in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "StateDirectory=credential-issuer",
        "StateDirectoryMode=0700",
        "DynamicUser=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
    ] {
        assert!(
            lines.contains(&required),
            "{} lacks {required}",
            path.display()
        );
    }
    let exec = lines
        .iter()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart"));
    assert!(
        exec.contains("credential-issuer serve")
            && exec.contains("--data-dir /var/lib/credential-issuer"),
        "{exec}"
    );
}
