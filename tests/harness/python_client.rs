//! The official Kubernetes Python client (the `kubernetes` package, the version pinned in
//! `tests/python/requirements.txt`), run the way long-lived programs on it run: one Python
//! process that loads the kubeconfig and lists namespaces several times. That client runs the
//! exec plugin on every `load_kube_config` and keeps no credential between loads, so the plugin
//! sees the same parent asking again for the token it already has, as it sees kubectl's retry
//! after a 401.
//!
//! The package lives in a private directory, `target/pydeps`, installed by `tests/run.sh`; a
//! missing or other version fails the test with the install command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::process::{self, Outcome};
use crate::UserEnv;

/// The client's major version the tests are about (the one the issue was reported against).
pub const MAJOR: &str = "37.";

/// What one load and list did, as `tests/python/load_kube_config.py` reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct Load {
    /// 1, 2, ...
    pub load: u32,
    /// The client's `kubernetes.__version__`.
    pub client_version: String,
    /// SHA-256 (hex) of the bearer token the client sent; `None` when it got none.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// 200, or the API server's error status; `None` when the load itself failed.
    #[serde(default)]
    pub status: Option<u16>,
    /// The namespaces listed.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// What went wrong, if anything.
    #[serde(default)]
    pub error: Option<String>,
}

/// The directory holding the client and its dependencies: `target/pydeps`.
#[must_use]
pub fn pydeps() -> PathBuf {
    let profile = crate::bins::profile_dir();
    profile.parent().unwrap_or(&profile).join("pydeps")
}

/// The command that installs the client where the tests look for it.
#[must_use]
pub fn install_command() -> String {
    format!(
        "python3 -m pip install --quiet --target {} -r tests/python/requirements.txt",
        pydeps().display()
    )
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/load_kube_config.py")
}

fn python(env: &UserEnv) -> Command {
    let python3 = process::require("python3", "apt-get install python3 python3-pip");
    let mut cmd = env.command(&python3);
    cmd.env("PYTHONPATH", pydeps())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONNOUSERSITE", "1");
    cmd
}

/// Fails the test, with the install command, unless the pinned client can be imported.
#[track_caller]
pub fn require(env: &UserEnv) {
    let out = process::run(
        python(env)
            .arg("-c")
            .arg("import kubernetes; print(kubernetes.__version__)"),
        None,
        Duration::from_secs(60),
    );
    let version = out.stdout.trim();
    assert!(
        out.code == Some(0) && version.starts_with(MAJOR),
        "the Kubernetes Python client {MAJOR}x is not installed in {} (found {version:?}): run \
         `bash tests/run.sh` (installs every test dependency) or `{}`\n{out}",
        pydeps().display(),
        install_command()
    );
}

/// In one Python process: `loads` times, `interval` apart, `load_kube_config(kubeconfig)` and
/// `CoreV1Api().list_namespace()`. Returns the process's outcome and one [`Load`] per load;
/// fails the test if the script did not run to its end.
#[track_caller]
#[must_use]
pub fn load_and_list(
    env: &UserEnv,
    kubeconfig: &Path,
    loads: u32,
    interval: Duration,
) -> (Outcome, Vec<Load>) {
    require(env);
    let out = process::run(
        python(env)
            .arg(script())
            .arg(kubeconfig)
            .arg(loads.to_string())
            .arg(format!("{:.3}", interval.as_secs_f64())),
        None,
        Duration::from_secs(60) + interval * loads,
    );
    out.assert_success();
    let reports: Vec<Load> = out
        .stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a load report ({e}): {line:?}\n{out}"))
        })
        .collect();
    assert_eq!(
        reports.len(),
        usize::try_from(loads).unwrap_or(usize::MAX),
        "the script reported {} loads of {loads}\n{out}",
        reports.len()
    );
    (out, reports)
}

/// A copy of `kubeconfig` (written by [`UserEnv::write_kubeconfig`], JSON) whose cluster carries
/// its CA as `certificate-authority-data`, as `kubectl credential setup` writes it. The Python
/// client hands the plugin the kubeconfig's cluster as written (data here, a file path in the
/// original), while kubectl reads a CA file itself and always sends the data.
#[track_caller]
#[must_use]
pub fn with_ca_data(kubeconfig: &Path) -> PathBuf {
    let text = std::fs::read_to_string(kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", kubeconfig.display()));
    let mut doc: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", kubeconfig.display()));
    let clusters = doc["clusters"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("{} has no clusters", kubeconfig.display()));
    for cluster in clusters {
        let cluster = &mut cluster["cluster"];
        let ca_file = cluster["certificate-authority"]
            .as_str()
            .unwrap_or_else(|| panic!("a cluster without a CA file: {cluster}"))
            .to_owned();
        let pem = std::fs::read(&ca_file).unwrap_or_else(|e| panic!("cannot read {ca_file}: {e}"));
        let fields = cluster
            .as_object_mut()
            .unwrap_or_else(|| panic!("a cluster that is not an object"));
        fields.remove("certificate-authority");
        fields.insert(
            "certificate-authority-data".to_owned(),
            base64::engine::general_purpose::STANDARD.encode(pem).into(),
        );
    }
    let path = kubeconfig.with_extension("ca-data.json");
    let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| panic!("kubeconfig: {e}"));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}
