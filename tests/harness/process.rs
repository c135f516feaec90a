//! Running programs: finding them (or failing with the install command), running one to
//! completion with a deadline, and reaping long-running ones even when the test process dies.

use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::wait::{self, Check};

/// Finds `program` on `PATH` (and in the sbin directories, where Debian puts some daemons).
/// A missing program is a failure that says how to install it, never a skipped test.
#[track_caller]
#[must_use]
pub fn require(program: &str, install: &str) -> PathBuf {
    find_on_path(program).unwrap_or_else(|| {
        panic!("{program} not found: run `bash tests/run.sh` (installs every test dependency) or `{install}`")
    })
}

/// [`require`] for each `(program, install command)`, for programs run by a script.
#[track_caller]
pub fn require_all(programs: &[(&str, &str)]) {
    for (program, install) in programs {
        let _path = require(program, install);
    }
}

/// `program`'s full path if it is on `PATH`, `/usr/sbin` or `/sbin`.
#[must_use]
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How a program run to completion ended, with everything it printed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The command line, for messages.
    pub command: String,
    /// The exit code; `None` when a signal ended the program.
    pub code: Option<i32>,
    /// The signal that ended the program, if one did.
    pub signal: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

#[expect(
    clippy::must_use_candidate,
    reason = "assertions are called for their panic; the returned &Self only allows chaining"
)]
impl Outcome {
    /// Whether the program exited with 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Fails the test unless the program exited with 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "expected success, but {self}");
        self
    }

    /// Fails the test unless the program exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}, but {self}"
        );
        self
    }

    /// Fails the test unless the program exited with a non-zero code.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a failure, but {self}"
        );
        self
    }

    /// Fails the test unless stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in stderr, but {self}"
        );
        self
    }

    /// Fails the test unless stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "expected {needle:?} in stdout, but {self}"
        );
        self
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(
                f,
                "`{}` exited with code {code} after {:.1?}",
                self.command, self.elapsed
            )?,
            (None, Some(sig)) => write!(
                f,
                "`{}` was killed by signal {sig} after {:.1?}",
                self.command, self.elapsed
            )?,
            (None, None) => write!(
                f,
                "`{}` ended without a status after {:.1?}",
                self.command, self.elapsed
            )?,
        }
        write!(
            f,
            "\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Starts `cmd` in its own process group (so that a timeout kills it with everything it
/// started) with `stdin` as given and stdout and stderr piped for the caller to collect; a
/// program that cannot start fails the test, naming `command`.
#[track_caller]
pub(crate) fn spawn_captured(cmd: &mut Command, stdin: Stdio, command: &str) -> Child {
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"))
}

/// The command line of `cmd`, shell-like, for messages.
#[must_use]
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with `stdin` as its input (or none), collecting its output. The
/// program gets its own process group so that a timeout kills it with everything it started
/// (kubectl and the plugin it runs, say); the test then fails with whatever it printed so far.
#[track_caller]
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Outcome {
    let command = describe(cmd);
    let started = Instant::now();
    let input = if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = spawn_captured(cmd, input, &command);
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A program that exits without reading its input makes this fail with EPIPE; its exit
        // status then tells the real story.
        let _ = pipe.write_all(input);
    }
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let status = wait_for(&mut child, timeout);
    let outcome = Outcome {
        command,
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stdout: stdout.finish(),
        stderr: stderr.finish(),
        elapsed: started.elapsed(),
    };
    assert!(
        status.is_some(),
        "timed out after {timeout:?} and killed: {outcome}"
    );
    outcome
}

/// Waits for `child` until `timeout`; on timeout kills its process group (the harness starts
/// every child as a group leader) and returns `None`.
pub fn wait_for(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let waited = wait::until("program exits", timeout, || match child.try_wait() {
        Ok(Some(status)) => Check::Done(status),
        Ok(None) => Check::Retry("still running".into()),
        Err(e) => Check::Fail(e.to_string()),
    });
    if let Ok(status) = waited {
        return Some(status);
    }
    kill_group(child.id(), rustix::process::Signal::KILL);
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Sends `signal` to the process group `pgid`; a group that is already gone is not an error.
pub fn kill_group(pgid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Output of a pipe, read on its own thread so that a chatty program never blocks on a full pipe.
#[derive(Debug)]
pub struct Collector(Option<mpsc::Receiver<Vec<u8>>>);

impl Collector {
    /// Everything read, once the writer closed the pipe (or after 5 s, if a grandchild that
    /// outlived the program still holds it open).
    #[must_use]
    pub fn finish(self) -> String {
        let bytes = self
            .0
            .and_then(|rx| rx.recv_timeout(Duration::from_secs(5)).ok())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Starts reading `pipe` to its end on a thread.
#[must_use]
pub fn collect(pipe: Option<impl Read + Send + 'static>) -> Collector {
    Collector(pipe.map(|mut pipe| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
        rx
    }))
}

/// A program left running while the test does something else (a `kubectl get --watch`): its
/// own process group, stdout and stderr collected as they come, killed with everything it
/// started when the handle drops.
#[derive(Debug)]
pub struct Background {
    command: String,
    child: Option<Child>,
    stdout: Shared,
    stderr: Shared,
    started: Instant,
}

impl Background {
    /// Starts `cmd` with stdin closed.
    #[track_caller]
    #[must_use]
    pub fn spawn(cmd: &mut Command) -> Self {
        let command = describe(cmd);
        let mut child = spawn_captured(cmd, Stdio::null(), &command);
        let stdout = std::sync::Arc::default();
        let stderr = std::sync::Arc::default();
        stream_into(child.stdout.take(), &stdout);
        stream_into(child.stderr.take(), &stderr);
        Self {
            command,
            child: Some(child),
            stdout,
            stderr,
            started: Instant::now(),
        }
    }

    /// Everything written to stdout so far.
    #[must_use]
    pub fn stdout(&self) -> String {
        text_of(&self.stdout)
    }

    /// Everything written to stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        text_of(&self.stderr)
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills it (and its process group) if it still runs, and returns what it printed.
    #[must_use]
    pub fn stop(mut self) -> Outcome {
        let status = self.child.take().and_then(|mut child| {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            kill_group(child.id(), rustix::process::Signal::KILL);
            let _ = child.kill();
            child.wait().ok()
        });
        Outcome {
            command: self.command.clone(),
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            stdout: self.stdout(),
            stderr: self.stderr(),
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(child.id(), rustix::process::Signal::KILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Bytes a pipe yielded so far, shared with the thread reading it.
type Shared = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

fn text_of(shared: &Shared) -> String {
    shared
        .lock()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Appends what `pipe` yields to `sink` as it comes, on a thread.
fn stream_into(pipe: Option<impl Read + Send + 'static>, sink: &Shared) {
    let Some(mut pipe) = pipe else { return };
    let sink = std::sync::Arc::clone(sink);
    std::thread::spawn(move || {
        let mut buf = [0_u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.extend_from_slice(&buf[..n]);
            }
        }
    });
}

/// A small `bash` process that runs a cleanup script when its stdin reaches end-of-file.
///
/// Its stdin is a pipe whose only writer is this handle, so end-of-file comes either from
/// [`Drop`] or from the kernel closing the pipe when the test process dies in any way (a panic
/// in a `static` fixture that never drops, `SIGKILL` from a test runner's timeout). So an etcd or
/// a keyring daemon never outlives its test run. The reaper has its own process group, so a
/// Ctrl-C in the terminal, which signals the test process's group, does not stop it from
/// cleaning up.
#[derive(Debug)]
pub struct Reaper {
    what: String,
    stdin: Option<ChildStdin>,
    child: Option<Child>,
}

impl Reaper {
    /// Starts a reaper that will run `script` with `args` as `$1`, `$2`, ... (so paths need no
    /// quoting). `what` names it in messages.
    #[track_caller]
    #[must_use]
    pub fn spawn<S: AsRef<OsStr>>(what: &str, script: &str, args: &[S]) -> Self {
        let bash = require("bash", "apt-get install bash");
        let mut child = Command::new(bash)
            .arg("-c")
            .arg(format!("read -r _ || true\n{script}"))
            .arg("reaper")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the reaper for {what}: {e}"));
        Self {
            what: what.to_owned(),
            stdin: child.stdin.take(),
            child: Some(child),
        }
    }
}

/// `"1"` when the tests were asked to keep their temporary directories (`E2E_KEEP`), else `""`:
/// the second argument reaper scripts test with `[ -n "$2" ]`.
#[must_use]
pub fn keep_flag() -> &'static str {
    if std::env::var_os(crate::control_plane::KEEP_ENV).is_some() {
        "1"
    } else {
        ""
    }
}

/// A new temporary directory named `PREFIX...`, removed by a [`Reaper`] when the returned
/// handle drops or the test process dies (kept with `E2E_KEEP`). `what` names it in messages.
#[track_caller]
#[must_use]
pub fn reaped_temp_dir(prefix: &str, what: &str) -> (std::path::PathBuf, Reaper) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
        .keep();
    let cleanup = Reaper::spawn(
        what,
        r#"[ -n "$2" ] || rm -rf "$1""#,
        &[dir.as_os_str(), keep_flag().as_ref()],
    );
    (dir, cleanup)
}

impl Drop for Reaper {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            if wait_for(&mut child, Duration::from_secs(60)).is_none() {
                eprintln!(
                    "harness: cleanup of {} did not finish within 60 s and was killed",
                    self.what
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_collects_output_and_exit_code() {
        let out = run(
            Command::new("sh").args(["-c", "cat; echo oops >&2; exit 3"]),
            Some(b"hello"),
            Duration::from_secs(10),
        );
        out.assert_code(3)
            .assert_stdout_contains("hello")
            .assert_stderr_contains("oops");
    }

    #[test]
    fn missing_program_says_how_to_install_it() {
        let err = std::panic::catch_unwind(|| {
            require("surely-not-installed-e2e", "apt-get install nothing")
        })
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
        assert!(
            err.contains("bash tests/run.sh") && err.contains("apt-get install nothing"),
            "{err}"
        );
    }

    #[test]
    fn reaper_runs_its_script_on_drop() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let marker = dir.path().join("reaped");
        drop(Reaper::spawn("a test", r#"echo done > "$1""#, &[&marker]));
        assert!(marker.exists(), "the reaper did not run its cleanup script");
    }
}
