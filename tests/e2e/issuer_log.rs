//! The issuer's log as an operator keeps it: `credential-issuer serve 2> issuer.log`, or a
//! journal. Stderr is a file there, so the log must hold no colour codes; latencies must read
//! as numbers (`ms=0.031`, not `ms=0.030527000000000002`); and text from a request (here a
//! token's `kid` made to look like a log line, with an escape sequence) stays inside its line.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use e2e::process::{self, Reaper};
use e2e::wait::{self, Check};
use e2e::{bins, http};

/// A `kid` that would end the line and start a forged one, recolour the terminal and reverse
/// the rest of the line, if it were written raw (the issuer quotes at most 64 characters).
const HOSTILE_KID: &str = "k\u{1b}[31m\nFORGED  INFO signed in user=admin\u{202e}x";

#[test]
fn the_issuer_log_in_a_file_has_no_colour_codes_rounded_latencies_and_no_forged_lines() {
    let (dir, _cleanup) = process::reaped_temp_dir("e2e-issuer-log.", "the issuer's directory");
    let log_path = dir.join("issuer.log");
    let mut issuer = Running::start(&dir, &log_path);
    let addr = wait::until(
        "the issuer logs the address it listens on",
        Duration::from_secs(60),
        || {
            let log = read(&log_path);
            if let Some(addr) = listen_addr(&log) {
                return Check::Done(addr);
            }
            match issuer.child.try_wait() {
                Ok(Some(status)) => Check::Fail(format!("the issuer exited ({status}):\n{log}")),
                _ => Check::Retry(log),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let agent = http::agent(&dir.join("data/tls/ca.crt"));
    let base = format!("https://{addr}");

    let health = http::response(agent.get(&format!("{base}/healthz")).call())
        .unwrap_or_else(|e| panic!("GET /healthz: {e}"));
    assert_eq!(health.status, 200, "{health:?}");
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": { "token": token_with_kid(HOSTILE_KID) },
    });
    let refused = http::response(
        agent
            .post(&format!("{base}/authenticate"))
            .set("Content-Type", "application/json")
            .send_string(&review.to_string()),
    )
    .unwrap_or_else(|e| panic!("POST /authenticate: {e}"));
    assert_eq!(
        refused.status, 200,
        "a refused review is a 200: {refused:?}"
    );
    assert!(
        refused.body.contains("\"authenticated\":false"),
        "{refused:?}"
    );

    let log = wait::until(
        "the issuer logs both requests",
        Duration::from_secs(30),
        || {
            let log = read(&log_path);
            let done = log.contains("route=\"/healthz\"")
                && log.contains("route=\"/authenticate\"")
                && log.contains("token review: token not verified");
            if done {
                Check::Done(log)
            } else {
                Check::Retry(log)
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    issuer.stop();
    let bytes = std::fs::read(&log_path).unwrap_or_default();

    // No colour: stderr is a file.
    assert!(
        !bytes.contains(&0x1b),
        "the log holds escape codes although stderr is a file:\n{log}"
    );
    // Latencies are rounded to the microsecond.
    let latencies: Vec<&str> = log
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("ms="))
        .collect();
    assert!(latencies.len() >= 2, "no ms= fields:\n{log}");
    for ms in &latencies {
        let decimals = ms.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(
            ms.parse::<f64>().is_ok() && decimals <= 3,
            "latency ms={ms} is not rounded to 3 decimals:\n{log}"
        );
    }
    // The hostile kid is on the line of the event that quoted it, escaped; no line of its own.
    let line = log
        .lines()
        .find(|l| l.contains("token review: token not verified"))
        .unwrap_or_else(|| panic!("no token review line:\n{log}"));
    assert!(
        line.contains(r"\nFORGED  INFO signed in user=admin"),
        "{line}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a forged line:\n{log}"
    );
    assert!(!log.contains('\u{202e}'), "a raw bidi override:\n{log}");
}

/// A JWS-shaped token whose header names `kid`; the signature does not matter, the issuer
/// refuses it at the key lookup.
fn token_with_kid(kid: &str) -> String {
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
    let claims = serde_json::json!({ "sub": "x" });
    format!("{}.{}.c2ln", b64(&header), b64(&claims))
}

/// `127.0.0.1:PORT` from the issuer's `credential-issuer serving ... listen=...` line.
fn listen_addr(log: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains("credential-issuer serving"))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .map(str::to_owned)
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// `credential-issuer serve` as an operator runs it, its stderr going to a file.
struct Running {
    child: Child,
    _reaper: Reaper,
}

impl Running {
    #[track_caller]
    fn start(dir: &Path, log: &Path) -> Self {
        let log_file =
            File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let child = Command::new(bins::credential_issuer())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("RUST_LOG", "info,credential_issuer=debug")
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.join("data"))
            // Port 0: the system picks a free port, and the log says which.
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start credential-issuer: {e}"));
        let reaper = Reaper::spawn(
            "the issuer",
            r#"kill -KILL -- "-$1" 2>/dev/null || true"#,
            &[child.id().to_string()],
        );
        Self {
            child,
            _reaper: reaper,
        }
    }

    /// `SIGTERM`, and the graceful exit.
    #[track_caller]
    fn stop(&mut self) {
        process::kill_group(self.child.id(), rustix::process::Signal::TERM);
        if process::wait_for(&mut self.child, Duration::from_secs(30)).is_none() {
            let _ = self.child.kill();
            panic!("the issuer did not stop within 30 s after SIGTERM");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
