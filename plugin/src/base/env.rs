//! Every environment variable the plugin reads, in one place, each with what it does, and the
//! only functions that read the environment (variables, the home, cache and temporary
//! directories derived from it): no other module calls `std::env::var*`.

use std::ffi::OsString;
use std::path::PathBuf;

/// Set by kubectl: the JSON `ExecCredential` request (apiVersion, `spec.interactive`,
/// `spec.cluster` when the kubeconfig sets `provideClusterInfo: true`). Absent when the plugin
/// is run by hand, which means v1beta1 and "interactive if stdin is a terminal".
pub(crate) const KUBERNETES_EXEC_INFO: &str = "KUBERNETES_EXEC_INFO";

/// Default for `--token-cache` (`keyring` or `file`), so a kubeconfig's `exec.env` or a
/// shell profile can switch every invocation to the file cache at once.
pub(crate) const TOKEN_CACHE: &str = "KUBECTL_CREDENTIAL_TOKEN_CACHE";

/// A program to open the sign-in page with; it receives the URL as its one argument. Wins over
/// the platform's opener and over the "no display" check (a terminal browser needs no display),
/// but not over `--no-browser` or an SSH session.
pub(crate) const BROWSER: &str = "BROWSER";

/// Set by sshd. When present the plugin does not open a browser: it would open on the remote
/// machine, not in front of the person.
pub(crate) const SSH_CONNECTION: &str = "SSH_CONNECTION";

/// Set by sshd when a terminal was allocated; same meaning as [`SSH_CONNECTION`].
pub(crate) const SSH_TTY: &str = "SSH_TTY";

/// X11 display. On Linux and the BSDs, without it (or [`WAYLAND_DISPLAY`]) there is no
/// graphical session to open a browser in.
pub(crate) const DISPLAY: &str = "DISPLAY";

/// Wayland display; see [`DISPLAY`].
pub(crate) const WAYLAND_DISPLAY: &str = "WAYLAND_DISPLAY";

/// Read by the `directories` crate, not by the plugin directly: the base of the file token
/// cache (`$XDG_CACHE_HOME/kubectl-credential/tokens`) when it is an absolute path.
#[expect(
    dead_code,
    reason = "read by the directories crate; listed so that every variable is documented here"
)]
pub(crate) const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";

/// Read by the `directories` crate: the cache falls back to `$HOME/.cache` on Linux
/// (`~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows). Also part of what makes two
/// errors shown to one kubectl command "the same" (`handout`): another account's is printed.
pub(crate) const HOME: &str = "HOME";

/// The kubeconfig files, a path list as kubectl reads it: `setup` merges into the first one,
/// and commands without `--issuer`/`--cluster` read the plugin's exec entry from them. Unset
/// or empty means `~/.kube/config`.
pub(crate) const KUBECONFIG: &str = "KUBECONFIG";

/// The per-user runtime directory (a tmpfs on systemd machines): where `get` records which
/// caller received which token, to recognise kubectl's retry after a 401 (`handout`). Without
/// it, a private `kubectl-credential-<uid>` directory in the temporary directory is used.
pub(crate) const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";

/// The value of the variable `name`, if set: the one place the plugin reads a variable.
pub(crate) fn var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// The person's home directory (`HOME`, or the platform's equivalent).
pub(crate) fn home_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().to_owned())
}

/// The person's cache directory (`XDG_CACHE_HOME`, else `~/.cache`, on Linux).
pub(crate) fn cache_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.cache_dir().to_owned())
}

/// The temporary directory (`TMPDIR`, else the platform's default).
pub(crate) fn temp_dir() -> PathBuf {
    std::env::temp_dir()
}

/// Set by the GitHub Actions runner in a job with `permissions: id-token: write`: the URL that
/// hands out the job's identity token (`--identity-token github-actions`).
pub(crate) const ACTIONS_ID_TOKEN_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";

/// Set by the GitHub Actions runner with [`ACTIONS_ID_TOKEN_REQUEST_URL`]: the bearer token
/// that request is made with. A secret: never printed.
pub(crate) const ACTIONS_ID_TOKEN_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
