//! Where the programs under test are: the workspace's own binaries in the cargo target directory,
//! and `kubectl` on `PATH`.
//!
//! Cargo only tells a test where the binaries of its *own* package are (`CARGO_BIN_EXE_*`), and
//! the plugin and issuer binaries live in other packages, so they are found next to the test
//! executable: `target/<profile>/deps/e2e-HASH` sits below `target/<profile>/`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process;

/// The `kubectl-credential` binary built by `cargo build --workspace --bins`.
#[track_caller]
#[must_use]
pub fn kubectl_credential() -> PathBuf {
    workspace_binary("kubectl-credential")
}

/// The `credential-issuer` binary built by `cargo build --workspace --bins`.
#[track_caller]
#[must_use]
pub fn credential_issuer() -> PathBuf {
    workspace_binary("credential-issuer")
}

/// `kubectl` on `PATH`.
#[track_caller]
#[must_use]
pub fn kubectl() -> PathBuf {
    process::require("kubectl", "apt-get install kubernetes-client")
}

/// kubectl's client minor version (`32` for 1.32), or `None` if kubectl does not say.
#[must_use]
pub fn kubectl_minor_version() -> Option<u32> {
    static MINOR: OnceLock<Option<u32>> = OnceLock::new();
    *MINOR.get_or_init(|| {
        let out = process::run(
            Command::new(kubectl()).args(["version", "--client", "-o", "json"]),
            None,
            Duration::from_secs(30),
        );
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        // "32", or "32+" for vendor builds.
        let minor = doc["clientVersion"]["minor"].as_str()?;
        minor.trim_end_matches('+').parse().ok()
    })
}

/// Whether kubectl speaks the exec credential protocol `client.authentication.k8s.io/v1`
/// (kubectl 1.22 and later). Debian 12's own `kubernetes-client` is 1.20 and speaks only
/// v1beta1; the kubectl most machines here have is newer.
#[must_use]
pub fn kubectl_speaks_exec_v1() -> bool {
    kubectl_minor_version().is_none_or(|minor| minor >= 22)
}

/// The directory holding the workspace's binaries for the profile this test was built with.
#[track_caller]
#[must_use]
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot locate the test executable: {e}"));
    let dir = exe
        .parent()
        .unwrap_or_else(|| panic!("{} has no parent directory", exe.display()));
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_owned()
    } else {
        dir.to_owned()
    }
}

#[track_caller]
fn workspace_binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace --bins` first (or `bash tests/run.sh`, which does)",
        path.display()
    );
    path
}

#[cfg(test)]
mod tests {
    #[test]
    fn profile_dir_is_where_cargo_puts_binaries() {
        let dir = super::profile_dir();
        // target/debug or target/release (or a custom profile), never target/debug/deps.
        assert_ne!(
            dir.file_name().and_then(|n| n.to_str()),
            Some("deps"),
            "{}",
            dir.display()
        );
        assert!(
            dir.join("deps").is_dir(),
            "{} has no deps/ directory",
            dir.display()
        );
    }
}
