//! Text from outside the plugin reaches the person's terminal escaped and bounded: the real
//! binary, run as kubectl runs it, is fed escape sequences, forged lines, bidi overrides,
//! invalid UTF-8 and a 120 KB value through `KUBERNETES_EXEC_INFO`, and through the answers of
//! an issuer (here a small fake one on loopback HTTP, since the real issuer never sends such
//! text: its error descriptions and cluster names are what a compromised or impostor issuer
//! would choose). Whatever the path, stderr holds no raw control or format character and stays
//! short.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use e2e::plugin::{UserEnv, CALL_TIMEOUT};
use e2e::process::{self, Outcome};

/// An escape sequence zoo: set the window title (OSC), clear the screen (CSI), a C1 CSI,
/// recolour, a newline that forges a line of its own, a bidi override.
const EVIL: &str =
    "\x1b]0;owned\x07\x1b[2J\u{9b}31m\x1b[31m\r\nerror: forged line\u{202e}txt.exe\u{200b}";

/// Bound on what the plugin may print for one failed call (its messages are a few hundred
/// characters; outside values are cut at 200 or 1,000).
const STDERR_MAX: usize = 8 * 1024;

/// `EVIL` followed by 120 KB.
fn huge() -> String {
    format!("{EVIL}{}", "A".repeat(120 * 1024))
}

/// Asserts that `out`'s stderr is printable text, one line per message, and short; and that
/// the escaped form of `EVIL` is there (the value was shown, not dropped).
#[track_caller]
fn assert_escaped(out: &Outcome) {
    let stderr = &out.stderr;
    let head: String = stderr.chars().take(2000).collect();
    let raw = stderr
        .chars()
        .find(|&c| (c.is_control() && c != '\n') || matches!(c, '\u{200b}' | '\u{202e}'));
    assert!(raw.is_none(), "raw {raw:?} on stderr: {head:?}");
    assert!(
        !stderr.contains('\u{fffd}'),
        "stderr is not UTF-8: {head:?}"
    );
    assert!(
        stderr.len() <= STDERR_MAX,
        "stderr is {} bytes: {head:?}",
        stderr.len()
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with("error: forged line")),
        "a forged line: {head:?}"
    );
    assert!(
        stderr.contains(r"\x1b]0;owned\x07\x1b[2J\u{9b}31m\x1b[31m\r\nerror: forged line\u{202e}"),
        "the value is not shown escaped: {head:?}"
    );
}

#[test]
fn exec_info_with_escapes_and_a_huge_api_version_is_reported_escaped_and_bounded() {
    let env = UserEnv::new();
    let args: Vec<String> = [
        "get",
        "--issuer",
        "https://issuer.invalid",
        "--cluster",
        "prod",
        "--token-cache",
        "file",
    ]
    .map(str::to_owned)
    .to_vec();
    let exec_info = serde_json::json!({
        "kind": "ExecCredential",
        "apiVersion": huge(),
        "spec": { "interactive": false },
    })
    .to_string();
    let out = env.plugin_as_kubectl_would(&args, &exec_info);
    out.assert_code(2)
        .assert_stderr_contains("KUBERNETES_EXEC_INFO asks for apiVersion")
        .assert_stderr_contains("…[+");
    assert_escaped(&out);
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);

    // Not UTF-8 at all: refused without echoing it.
    let mut cmd = env.command(&e2e::bins::kubectl_credential());
    cmd.args(&args).env(
        "KUBERNETES_EXEC_INFO",
        OsStr::from_bytes(b"{\"apiVersion\":\"\xff\xfe\x1b[2J\"}"),
    );
    let out = process::run(&mut cmd, None, CALL_TIMEOUT);
    out.assert_code(2)
        .assert_stderr_contains("KUBERNETES_EXEC_INFO is not valid UTF-8");
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);
}

#[test]
fn an_issuers_error_description_and_cluster_names_are_escaped_and_bounded() {
    let issuer = FakeIssuer::start();
    let env = UserEnv::new();

    // `login`: the device authorization is refused with a hostile description.
    let out = env.plugin(&[
        "login".to_owned(),
        "--issuer".to_owned(),
        issuer.url.clone(),
        "--cluster".to_owned(),
        "prod".to_owned(),
        "--token-cache".to_owned(),
        "file".to_owned(),
        "--no-browser".to_owned(),
    ]);
    out.assert_failure()
        .assert_stderr_contains("refused the request: invalid_client: ")
        .assert_stderr_contains("…[+");
    assert_escaped(&out);

    // `setup`: a cluster name from the issuer, printed in the note about a skipped cluster.
    let kubeconfig = env.home().join("kubeconfig");
    let out = env.plugin(&[
        "setup".to_owned(),
        "--issuer".to_owned(),
        issuer.url.clone(),
        "--output".to_owned(),
        kubeconfig.display().to_string(),
    ]);
    out.assert_success()
        .assert_stderr_contains("note: skipped cluster \"")
        .assert_stderr_contains("…[+");
    assert_escaped(&out);
}

/// An issuer on loopback HTTP (the plugin allows plain http for a loopback issuer) that
/// publishes a discovery document, refuses every device authorization with [`huge`] as its
/// description, and lists a cluster named [`huge`] without an API server (which `setup` skips
/// with a note) besides a usable one. Stopped on drop.
struct FakeIssuer {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeIssuer {
    fn start() -> Self {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no address: {e}"));
        let url = format!("http://{addr}");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (url, stop) = (url.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        answer(stream, &url);
                    }
                }
            })
        };
        Self {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request and answers it by path (one request per connection).
fn answer(stream: TcpStream, base: &str) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    let _ = reader
        .by_ref()
        .take(content_length)
        .read_to_end(&mut Vec::new());
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/.well-known/openid-configuration" => (
            200,
            serde_json::json!({
                "issuer": base,
                "device_authorization_endpoint": format!("{base}/device/code"),
                "token_endpoint": format!("{base}/token"),
                "jwks_uri": format!("{base}/jwks"),
            }),
        ),
        "/device/code" => (
            400,
            serde_json::json!({ "error": "invalid_client", "error_description": huge() }),
        ),
        "/api/v1/clusters" => (
            200,
            serde_json::json!({
                "issuer": base,
                "clusters": [
                    { "name": huge(), "audience": "evil" },
                    { "name": "prod", "audience": "prod", "server": "https://127.0.0.1:6443" },
                ],
            }),
        ),
        _ => (404, serde_json::json!({ "error": "not_found" })),
    };
    let body = body.to_string();
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
