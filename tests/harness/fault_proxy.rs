//! A fault-injecting HTTP proxy on `127.0.0.1`, put between the issuer (and the browser) and
//! the upstream OpenID provider, so that tests can show what the issuer does when the provider
//! is down, frozen, slow or answers nonsense, with the real provider behind it.
//!
//! It handles one request per connection (it answers with `Connection: close`) and speaks
//! HTTP/1.0 to the provider, so that an answer is simply everything up to the provider closing
//! the connection; that is all the tests need and keeps the proxy small. The fault in force is
//! read when a connection is accepted (for [`Fault::Refuse`]) and when its request is complete.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does to the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Passes everything through.
    Forward,
    /// Closes its listening socket: connections are refused, as by a stopped provider.
    Refuse,
    /// Accepts and reads requests but never answers, as a frozen provider.
    Freeze,
    /// Waits this long before passing a request on, as a slow provider.
    Delay(Duration),
    /// Answers requests to the token endpoint (a path ending in `/token`) with this status and
    /// body (JSON or not) without asking the provider; everything else passes through.
    TokenAnswer {
        /// HTTP status.
        status: u16,
        /// Body, sent as `application/json` whatever it holds.
        body: String,
    },
    /// Passes everything through, but removes `id_token` from the token endpoint's answers to
    /// refresh grants (OpenID Connect Core 12.2 allows a provider to leave it out).
    StripIdTokenOnRefresh,
}

#[derive(Debug)]
struct Shared {
    fault: Mutex<Fault>,
    upstream: Mutex<Option<SocketAddr>>,
    stop: AtomicBool,
    /// Whether the accept loop holds its listening socket.
    listening: AtomicBool,
}

impl Shared {
    fn fault(&self) -> Fault {
        match self.fault.lock() {
            Ok(f) => f.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// A running proxy; stopped on drop.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// How often the accept loop looks at the fault and the stop flag.
const TICK: Duration = Duration::from_millis(10);

impl FaultProxy {
    /// Binds `127.0.0.1:0`; it forwards once [`FaultProxy::set_upstream`] names the provider
    /// (until then requests are answered 502), so that its URL can be given to the provider
    /// as its issuer before the provider starts.
    #[must_use]
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("fault proxy: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fault proxy: listener address: {e}"));
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::Forward),
            upstream: Mutex::new(None),
            stop: AtomicBool::new(false),
            listening: AtomicBool::new(true),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || accept_loop(Some(listener), addr, &s));
        Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where requests go.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        if let Ok(mut u) = self.shared.upstream.lock() {
            *u = Some(upstream);
        }
    }

    /// Puts `fault` in force for the requests that follow. For [`Fault::Refuse`] and back,
    /// returns once the listening socket is closed (or open again).
    #[track_caller]
    pub fn set(&self, fault: Fault) {
        let listen = fault != Fault::Refuse;
        match self.shared.fault.lock() {
            Ok(mut f) => *f = fault,
            Err(p) => *p.into_inner() = fault,
        }
        let followed = crate::wait::until(
            "the fault proxy's accept loop",
            Duration::from_secs(5),
            || {
                if self.shared.listening.load(Ordering::SeqCst) == listen {
                    crate::wait::Check::Done(())
                } else {
                    crate::wait::Check::Retry(format!("listening: {}", !listen))
                }
            },
        );
        if let Err(e) = followed {
            panic!("{e}");
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(mut listener: Option<TcpListener>, addr: SocketAddr, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.fault() == Fault::Refuse {
            // Closing the socket is what makes the kernel refuse connections.
            listener = None;
            shared.listening.store(false, Ordering::SeqCst);
            std::thread::sleep(TICK);
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr) {
                Ok(l) => l,
                Err(e) => panic!("fault proxy: cannot bind {addr} again: {e}"),
            },
        };
        if let Err(e) = l.set_nonblocking(true) {
            panic!("fault proxy: cannot make the listener non-blocking: {e}");
        }
        shared.listening.store(true, Ordering::SeqCst);
        match l.accept() {
            Ok((stream, _)) => {
                let s = Arc::clone(shared);
                std::thread::spawn(move || {
                    let _ = handle(stream, &s);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(e) => eprintln!("fault proxy: accept failed: {e}"),
        }
        listener = Some(l);
    }
}

/// A request as read from the client.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn canned(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

fn handle(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let Some(req) = read_request(&mut client)? else {
        return Ok(());
    };
    let is_token = req
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .ends_with("/token");
    let answer = match shared.fault() {
        Fault::Freeze => {
            // Hold the connection open and say nothing until the fault changes.
            while shared.fault() == Fault::Freeze && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(TICK);
            }
            return Ok(());
        }
        Fault::Refuse => return client.shutdown(Shutdown::Both),
        Fault::Delay(d) => {
            std::thread::sleep(d);
            forward(&req, shared, false)
        }
        Fault::TokenAnswer { status, body } if is_token => canned(status, &body),
        Fault::StripIdTokenOnRefresh => {
            let refresh =
                is_token && String::from_utf8_lossy(&req.body).contains("grant_type=refresh_token");
            forward(&req, shared, refresh)
        }
        Fault::Forward | Fault::TokenAnswer { .. } => forward(&req, shared, false),
    };
    client.write_all(&answer)?;
    client.flush()?;
    client.shutdown(Shutdown::Both)
}

/// Sends `req` to the provider and returns its answer, rewritten to close the connection
/// (and without `id_token` when `strip_id_token`).
fn forward(req: &Request, shared: &Shared, strip_id_token: bool) -> Vec<u8> {
    let upstream = shared.upstream.lock().ok().and_then(|u| *u);
    let Some(upstream) = upstream else {
        return canned(502, r#"{"error":"no upstream yet"}"#);
    };
    let mut out = format!("{} {} HTTP/1.0\r\n", req.method, req.path).into_bytes();
    for (k, v) in &req.headers {
        if ["connection", "keep-alive", "proxy-connection"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&req.body);
    let mut raw = Vec::new();
    let sent = TcpStream::connect(upstream).and_then(|mut s| {
        s.write_all(&out)?;
        s.read_to_end(&mut raw)
    });
    if let Err(e) = sent {
        return canned(502, &format!(r#"{{"error":"proxy: {e}"}}"#));
    }
    let Some(head_end) = find(&raw, b"\r\n\r\n") else {
        return raw;
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut body = raw[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let mut headers: Vec<String> = lines
        .filter(|l| {
            let name = l.split(':').next().unwrap_or_default().trim();
            ![
                "connection",
                "keep-alive",
                "content-length",
                "transfer-encoding",
            ]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        })
        .map(str::to_owned)
        .collect();
    if strip_id_token && status_line.contains(" 200") {
        if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice(&body) {
            m.remove("id_token");
            body = serde_json::Value::Object(m).to_string().into_bytes();
        }
    }
    headers.push(format!("content-length: {}", body.len()));
    headers.push("connection: close".to_owned());
    let mut answer = format!("{status_line}\r\n{}\r\n\r\n", headers.join("\r\n")).into_bytes();
    answer.extend_from_slice(&body);
    answer
}
