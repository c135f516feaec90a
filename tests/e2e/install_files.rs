//! What `install/` ships works as written: the plugin is reachable through kubectl's plugin
//! naming (`kubectl credential ...`), the example kubeconfig is one kubectl accepts, the RBAC
//! example and the Kubernetes manifests are valid for the API server, the plugin installer
//! checks checksums, and the systemd unit is sandboxed. (The API server flags are checked by
//! every test: the shared world starts the API server with `install/apiserver-flags.txt`; the
//! webhook files by the `webhook` test.)

use std::path::PathBuf;

use credential_shared::oauth::OAuthErrorCode;

use crate::world::{shipped_oidc_flags, world, Laptop, READERS};

fn install_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../install")
        .join(name)
}

#[test]
fn kubectl_finds_the_plugin_as_kubectl_credential() {
    let world = world();
    let nora = world.new_person("nora", &[READERS]);
    let laptop = Laptop::new();
    laptop.log_in(&nora);
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
    let refused = world
        .issuer
        .refresh(&refresh_token)
        .err()
        .unwrap_or_else(|| panic!("`kubectl credential logout` did not end the session"));
    assert_eq!(refused.code(), Some(OAuthErrorCode::InvalidGrant));
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

/// The Kubernetes manifests in `install/kubernetes/` are accepted by a real API server
/// (server-side dry run: schema, defaulting and admission, nothing created but the namespace),
/// and the issuer's service account gets exactly the bindings reconciler's permissions.
#[test]
fn the_kubernetes_manifests_pass_a_server_side_dry_run() {
    let cp = &world().control_plane;
    let read = |name: &str| {
        std::fs::read_to_string(install_file("kubernetes").join(name))
            .unwrap_or_else(|e| panic!("install/kubernetes/{name}: {e}"))
    };
    // The namespace for real: the dry run of namespaced objects needs it to exist.
    cp.apply(&read("namespace.yaml"));
    let dry_run = |name: &str, text: &str, expect: &[&str]| {
        let out = cp.kubectl_admin(&["apply", "--dry-run=server", "-f", "-"], Some(text));
        out.assert_success();
        for object in expect {
            assert!(
                out.stdout.contains(object),
                "{name}: expected {object} in {out}"
            );
        }
    };
    dry_run(
        "rbac.yaml",
        &read("rbac.yaml"),
        &[
            "serviceaccount/credential-issuer",
            "clusterrole.rbac.authorization.k8s.io/credential-issuer-bindings",
            "clusterrolebinding.rbac.authorization.k8s.io/credential-issuer-bindings",
        ],
    );
    dry_run(
        "config.yaml",
        &read("config.yaml"),
        &["configmap/credential-issuer", "secret/credential-issuer"],
    );
    dry_run(
        "deployment.yaml",
        &read("deployment.yaml"),
        &[
            "deployment.apps/credential-issuer",
            "persistentvolumeclaim/credential-issuer-data",
            "service/credential-issuer",
        ],
    );
    // The test API server is Kubernetes 1.20, which serves PodDisruptionBudget only as
    // policy/v1beta1 (same fields); the file's comment says so.
    let pdb = read("pdb.yaml");
    assert!(pdb.contains("apiVersion: policy/v1\n"), "{pdb}");
    dry_run(
        "pdb.yaml",
        &pdb.replace("apiVersion: policy/v1\n", "apiVersion: policy/v1beta1\n"),
        &["poddisruptionbudget.policy/credential-issuer"],
    );

    // The configuration in the ConfigMap is one `credential-issuer check-config` accepts
    // (with the issuer URL placeholder given on the command line).
    let config = read("config.yaml");
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
    let mut cmd = std::process::Command::new(e2e::bins::credential_issuer());
    cmd.arg("--config").arg(&path).args([
        "check-config",
        "--issuer-url",
        "https://issuer.example.com",
    ]);
    e2e::process::run(&mut cmd, None, std::time::Duration::from_secs(30))
        .assert_success()
        .assert_stdout_contains("configuration is valid: issuer https://issuer.example.com");
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
