//! A real Secret Service (gnome-keyring) on a private D-Bus session bus, for the plugin's
//! `--token-cache keyring`.
//!
//! Private, because a test must neither read nor litter the developer's real keyring, and CI
//! has no desktop session at all. The bus is started with a minimal configuration that has no
//! service directories: nothing can be D-Bus-activated on it, so the only Secret Service is the
//! keyring daemon started here, with a fresh login keyring unlocked by a throwaway password.
//! Both daemons share one process group, which [`Drop`] (or the reaper) terminates.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::process::{self, Outcome, Reaper};
use crate::wait::{self, Check};

/// A running session bus with gnome-keyring serving `org.freedesktop.secrets` on it.
#[derive(Debug)]
pub struct SecretService {
    dir: tempfile::TempDir,
    address: String,
    pgid: u32,
    bus: Option<Child>,
    keyring: Option<Child>,
    reaper: Option<Reaper>,
}

const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=@SOCKET@</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

impl SecretService {
    /// Starts `dbus-daemon` and `gnome-keyring-daemon --components=secrets --unlock` in a
    /// temporary directory and waits (at most 30 s) until the Secret Service name is owned.
    #[track_caller]
    #[must_use]
    pub fn start() -> Self {
        let dbus_daemon = process::require("dbus-daemon", "apt-get install dbus");
        let keyring_daemon =
            process::require("gnome-keyring-daemon", "apt-get install gnome-keyring");
        process::require_all(&[
            ("dbus-send", "apt-get install dbus"),
            ("secret-tool", "apt-get install libsecret-tools"),
        ]);
        let dir = tempfile::Builder::new()
            .prefix("e2e-secret-service.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        for sub in ["home", "data", "runtime"] {
            std::fs::create_dir_all(dir.path().join(sub))
                .unwrap_or_else(|e| panic!("cannot create {sub}: {e}"));
        }
        set_private(&dir.path().join("runtime"));
        let config = dir.path().join("bus.conf");
        let socket = dir.path().join("bus");
        std::fs::write(
            &config,
            BUS_CONFIG.replace("@SOCKET@", &socket.display().to_string()),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));

        // The bus leads a new process group that the keyring daemon joins.
        let mut bus = Command::new(dbus_daemon)
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon: {e}"));
        let pgid = bus.id();
        let reaper = Reaper::spawn(
            "the Secret Service",
            r#"kill -TERM -- "-$1" 2>/dev/null || exit 0
for _ in $(seq 1 50); do kill -0 -- "-$1" 2>/dev/null || exit 0; sleep 0.1; done
kill -KILL -- "-$1" 2>/dev/null || true"#,
            &[pgid.to_string()],
        );
        let mut service = Self {
            dir,
            address: String::new(),
            pgid,
            bus: None,
            keyring: None,
            reaper: Some(reaper),
        };
        service.address = read_address(&mut bus);
        service.bus = Some(bus);

        let mut keyring = Command::new(keyring_daemon)
            .args(["--foreground", "--components=secrets", "--unlock"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", service.dir.path().join("home"))
            .env("XDG_DATA_HOME", service.dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", service.dir.path().join("runtime"))
            .env("DBUS_SESSION_BUS_ADDRESS", &service.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(i32::try_from(pgid).unwrap_or(0))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gnome-keyring-daemon: {e}"));
        // `--unlock` reads the login keyring's password from stdin until end-of-file; the
        // keyring is created with it and stays unlocked, so no prompt ever appears.
        if let Some(mut stdin) = keyring.stdin.take() {
            let _ = stdin.write_all(b"e2e-keyring-password");
        }
        let keyring_stderr = process::collect(keyring.stderr.take());
        service.keyring = Some(keyring);

        let ready = wait::until(
            "gnome-keyring owns org.freedesktop.secrets",
            Duration::from_secs(30),
            || {
                if let Some(Ok(Some(status))) = service.keyring.as_mut().map(Child::try_wait) {
                    return Check::Fail(format!("gnome-keyring-daemon exited with {status}"));
                }
                let out = service.dbus_send(&[
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ]);
                if out.success() && out.stdout.contains("boolean true") {
                    Check::Done(())
                } else {
                    Check::Retry(format!("{}{}", out.stdout.trim(), out.stderr.trim()))
                }
            },
        );
        if let Err(e) = ready {
            drop(service);
            panic!(
                "{e}\ngnome-keyring-daemon stderr:\n{}",
                keyring_stderr.finish()
            );
        }
        service
    }

    /// Like [`SecretService::start`], but the login collection (the default one) is locked
    /// right away, as a screen locker or `secret-tool lock` leaves it: the daemon runs and owns
    /// `org.freedesktop.secrets`, but nothing in the collection can be read or written without
    /// an unlock prompt, and no prompter can run on this bus.
    #[track_caller]
    #[must_use]
    pub fn start_locked() -> Self {
        let service = Self::start();
        service.lock();
        service
    }

    /// The object path of the login collection, the default one.
    pub const LOGIN_COLLECTION: &'static str = "/org/freedesktop/secrets/collection/login";

    /// Locks the login collection over D-Bus (`org.freedesktop.Secret.Service.Lock`, which
    /// gnome-keyring performs without a prompt) and waits (at most 10 s) until the collection
    /// reports `Locked = true`.
    #[track_caller]
    pub fn lock(&self) {
        let out = self.dbus_send(&[
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            &format!("array:objpath:{}", Self::LOGIN_COLLECTION),
        ]);
        out.assert_success();
        wait::until(
            "the login collection reports Locked = true",
            Duration::from_secs(10),
            || match self.is_locked() {
                Ok(true) => Check::Done(()),
                Ok(false) => Check::Retry("still unlocked".to_owned()),
                Err(e) => Check::Retry(e),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Whether the login collection is locked (its `Locked` property), or why that could not
    /// be read.
    pub fn is_locked(&self) -> Result<bool, String> {
        let out = self.dbus_send(&[
            "--dest=org.freedesktop.secrets",
            Self::LOGIN_COLLECTION,
            "org.freedesktop.DBus.Properties.Get",
            "string:org.freedesktop.Secret.Collection",
            "string:Locked",
        ]);
        if !out.success() {
            return Err(format!("{}{}", out.stdout.trim(), out.stderr.trim()));
        }
        if out.stdout.contains("boolean true") {
            Ok(true)
        } else if out.stdout.contains("boolean false") {
            Ok(false)
        } else {
            Err(format!("unexpected reply: {}", out.stdout.trim()))
        }
    }

    /// `DBUS_SESSION_BUS_ADDRESS` of the private bus.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The temporary directory of both daemons.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A command with this bus as its session bus and nothing else from the test's environment.
    #[must_use]
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        cmd
    }

    /// Runs `secret-tool ARGS` against this Secret Service.
    #[track_caller]
    pub fn secret_tool(&self, args: &[&str], stdin: Option<&str>) -> Outcome {
        let mut cmd = self.command(&process::require(
            "secret-tool",
            "apt-get install libsecret-tools",
        ));
        cmd.args(args);
        process::run(&mut cmd, stdin.map(str::as_bytes), Duration::from_secs(30))
    }

    #[track_caller]
    fn dbus_send(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.command(&process::require("dbus-send", "apt-get install dbus"));
        cmd.args(["--session", "--print-reply", "--reply-timeout=2000"])
            .args(args);
        process::run(&mut cmd, None, Duration::from_secs(10))
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        process::kill_group(self.pgid, rustix::process::Signal::TERM);
        for child in [self.keyring.take(), self.bus.take()].into_iter().flatten() {
            let mut child = child;
            if process::wait_for(&mut child, Duration::from_secs(10)).is_none() {
                eprintln!("harness: a Secret Service daemon ignored SIGTERM and was killed");
            }
        }
        // Both are reaped now; the reaper finds an empty group and exits at once.
        drop(self.reaper.take());
    }
}

/// Reads the bus address dbus-daemon prints as its first line (at most 30 s).
#[track_caller]
fn read_address(bus: &mut Child) -> String {
    let stdout = bus
        .stdout
        .take()
        .unwrap_or_else(|| panic!("dbus-daemon has no stdout pipe"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) if line.starts_with("unix:") => line.trim().to_owned(),
        Ok(line) => panic!("dbus-daemon printed {line:?} instead of its address"),
        Err(e) => panic!("dbus-daemon printed no address within 30 s ({e})"),
    }
}

fn set_private(path: &PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real thing: a secret stored with secret-tool can be looked up and found by attribute,
    /// and the daemons are gone after drop.
    #[test]
    fn stores_and_finds_a_secret_then_stops() {
        let service = SecretService::start();
        service
            .secret_tool(
                &[
                    "store",
                    "--label=e2e self-test",
                    "service",
                    "e2e-selftest",
                    "username",
                    "alice",
                ],
                Some("s3cret"),
            )
            .assert_success();
        let found = service.secret_tool(
            &["lookup", "service", "e2e-selftest", "username", "alice"],
            None,
        );
        assert_eq!(found.assert_success().stdout, "s3cret");
        let search = service.secret_tool(&["search", "--all", "service", "e2e-selftest"], None);
        search.assert_success();
        assert!(
            format!("{}{}", search.stdout, search.stderr).contains("attribute.username = alice"),
            "{search}"
        );

        let pgid = service.pgid;
        drop(service);
        let alive = rustix::process::Pid::from_raw(i32::try_from(pgid).unwrap_or(0))
            .is_some_and(|pid| rustix::process::test_kill_process_group(pid).is_ok());
        assert!(
            !alive,
            "the Secret Service's process group {pgid} still exists after drop"
        );
    }
}
