//! The proxy in-process, in front of a fake API server: a TLS server on `127.0.0.1:0` with its
//! own CA that echoes what it received, streams an answer in pieces on command, and answers
//! upgrades by echoing bytes. Tokens come from the real device flow on a temporary store
//! (`http::test_support`); the proxy and its client trust only the CAs they are given.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credential_shared::oauth::AccessTokenClaims;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{oneshot, Notify};

use crate::config::{FileCluster, FileProxy};
use crate::http::test_support::{captured_logs, logged_in, TestApp};
use crate::store::AuditFilter;

/// The token the proxy's kubeconfig holds: what the fake API server must see instead of the
/// caller's.
const PROXY_TOKEN: &str = "proxy-service-account-token";

/// The fake API server.
struct FakeApi {
    addr: SocketAddr,
    ca: PathBuf,
    /// Releases the second half of `/stream`.
    release: Arc<Notify>,
    _dir: tempfile::TempDir,
}

impl FakeApi {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files =
            crate::serve::tls::ensure_generated(&dir.path().join("tls"), &["127.0.0.1".into()])
                .unwrap();
        // HTTP/2 and HTTP/1.1, as kube-apiserver offers them: ordinary requests come over the
        // proxy's HTTP/2 pool, upgrades over HTTP/1.1 connections of their own.
        let mut tls = (*crate::serve::tls::server_config(&files.cert, &files.key).unwrap()).clone();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tls = Arc::new(tls);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(Notify::new());
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let r = Arc::clone(&release);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                // As Go's servers (kube-apiserver) do: no Nagle delay on small HTTP/2 frames.
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let release = Arc::clone(&r);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let release = Arc::clone(&release);
                        async move { Ok::<_, std::convert::Infallible>(fake_answer(req, release)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        Self {
            addr,
            ca: files.ca.unwrap(),
            release,
            _dir: dir,
        }
    }
}

type TestBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// What the fake API server answers: `/stream` in two pieces, an upgrade by echoing, anything
/// else with the method, path and headers it received, as JSON.
fn fake_answer(mut req: Request<Incoming>, release: Arc<Notify>) -> Response<TestBody> {
    if req.headers().contains_key(hyper::header::UPGRADE) {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(up) = on.await else { return };
            let mut io = TokioIo::new(up);
            let mut buf = [0_u8; 1024];
            // Echo until the client half-closes, then say goodbye and close.
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut reply = b"echo:".to_vec();
                        reply.extend_from_slice(&buf[..n]);
                        if io.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = io.write_all(b"bye").await;
            let _ = io.shutdown().await;
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "Upgrade")
            .header("upgrade", "SPDY/3.1")
            .header("x-stream-protocol-version", "v4.channel.k8s.io")
            .body(Empty::new().boxed())
            .unwrap();
    }
    if req.uri().path() == "/api/v1/namespaces/ns/pods/web/log" {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"first line\n")).await;
            release.notified().await;
            let _ = tx.send(Bytes::from_static(b"second line\n")).await;
        });
        return Response::builder()
            .header("content-type", "text/plain")
            .body(Pieces(rx).boxed())
            .unwrap();
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get("host")
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        });
    let body = serde_json::json!({
        "version": format!("{:?}", req.version()),
        "authority": authority,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str().to_owned()),
        "headers": headers,
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

/// A body whose pieces come from a channel, as they are sent.
struct Pieces(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|piece| piece.map(|b| Ok(Frame::data(b))))
    }
}

/// The issuer's state with cluster `default` proxied to `api`, and the proxy running on
/// `127.0.0.1:0`.
struct Proxied {
    app: TestApp,
    addr: SocketAddr,
    /// The CA the published cluster list gives for the proxy.
    ca: Vec<u8>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), super::Error>>>,
    _dir: tempfile::TempDir,
}

fn kubeconfig(dir: &Path, api: &FakeApi) -> PathBuf {
    let path = dir.join("proxy.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://{}
    certificate-authority: {}
users:
- name: proxy
  user:
    token: {PROXY_TOKEN}
contexts:
- name: c
  context:
    cluster: c
    user: proxy
current-context: c
",
            api.addr,
            api.ca.display()
        ),
    )
    .unwrap();
    path
}

impl Proxied {
    async fn start(api: &FakeApi, impersonate_uid: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kc = kubeconfig(dir.path(), api);
        let server = format!("https://{}", api.addr);
        let ca = api.ca.clone();
        let app = TestApp::with(|f| {
            // Only the revocation feed can make a cached session state stale here: the fake
            // clock does not move.
            f.webhook_cache_ttl = Some("5m".into());
            f.clusters = vec![
                FileCluster {
                    name: "default".into(),
                    server: Some(server),
                    ca_file: Some(ca),
                    proxy: Some(FileProxy {
                        listen: Some("127.0.0.1:0".into()),
                        url: Some("https://127.0.0.1:8444".into()),
                        kubeconfig: Some(kc),
                        impersonate_uid: Some(impersonate_uid),
                        ..FileProxy::default()
                    }),
                    ..FileCluster::default()
                },
                FileCluster {
                    name: "staging".into(),
                    ..FileCluster::default()
                },
            ];
        })
        .await;
        let files = super::tls_files(app.state.config(), "default").unwrap();
        let tls = super::server_tls(&files).unwrap();
        let ca = std::fs::read(files.ca.unwrap()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let state = app.state.clone();
        let task = tokio::spawn(async move {
            super::run(listener, state, "default", tls, async {
                let _ = stopped.await;
            })
            .await
        });
        Self {
            app,
            addr,
            ca,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Stops the proxy (which writes its queued audit events) and returns them.
    async fn stop_and_read_events(
        &mut self,
    ) -> Vec<(Option<String>, Option<String>, serde_json::Value)> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        let filter = AuditFilter {
            event: Some(super::audit::ACTION.into()),
            ..AuditFilter::default()
        };
        self.app
            .state
            .store()
            .audit_page(0, 1000, &filter)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let detail =
                    serde_json::from_str(r.facts.detail.as_deref().unwrap_or("{}")).unwrap();
                (r.facts.actor, r.facts.namespace, detail)
            })
            .collect()
    }

    /// A TLS connection to the proxy offering `alpn`, trusting the published CA only.
    async fn tls(&self, alpn: &[u8]) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// A new HTTP/1.1 connection to the proxy.
    async fn connect(&self) -> hyper::client::conn::http1::SendRequest<TestBody> {
        let tls = self.tls(b"http/1.1").await;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        sender
    }

    /// `GET path` over a new HTTP/2 connection (as kubectl makes ordinary requests).
    async fn get_h2(&self, path: &str, token: &str) -> (StatusCode, String) {
        let tls = self.tls(b"h2").await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = Request::get(format!("https://127.0.0.1:8444{path}"))
            .header("authorization", bearer(token))
            .body(Empty::<Bytes>::new().boxed())
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Sends `req` (its `Host` set) and returns the answer, body still streaming.
    async fn send(&self, mut req: Request<TestBody>) -> Response<Incoming> {
        req.headers_mut()
            .insert("host", "127.0.0.1:8444".parse().unwrap());
        self.connect().await.send_request(req).await.unwrap()
    }

    /// `GET path` with `headers`; status and whole body.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let mut b = Request::get(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let res = self.send(b.body(Empty::new().boxed()).unwrap()).await;
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The Status body's `(code, reason, message)`.
fn status_of(body: &str) -> (u64, String, String) {
    let v = json(body);
    assert_eq!(v["kind"], "Status", "{body}");
    assert_eq!(v["status"], "Failure", "{body}");
    (
        v["code"].as_u64().unwrap_or(0),
        v["reason"].as_str().unwrap_or_default().to_owned(),
        v["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn claims_of(token: &str) -> AccessTokenClaims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn requests_reach_the_api_server_as_the_caller_with_the_proxys_credential() {
    let api = FakeApi::start().await;
    let mut p = Proxied::start(&api, true).await;
    let t = logged_in(&p.app, "alice").await;
    // The plugin hands the token only to the API server the issuer names: the proxy.
    assert_eq!(t.api_server.as_deref(), Some("https://127.0.0.1:8444"));
    let claims = claims_of(&t.access_token);
    let (status, body) = p
        .get(
            "/api/v1/namespaces/team/pods?limit=5",
            &[
                ("authorization", &bearer(&t.access_token)),
                ("accept", "application/json"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = json(&body);
    assert_eq!(seen["method"], "GET");
    assert_eq!(
        seen["path"], "/api/v1/namespaces/team/pods?limit=5",
        "path and query unchanged"
    );
    let h = &seen["headers"];
    assert_eq!(
        h["authorization"],
        serde_json::json!([format!("Bearer {PROXY_TOKEN}")]),
        "{body}"
    );
    assert_eq!(
        h["impersonate-user"],
        serde_json::json!(["credential:alice"])
    );
    assert_eq!(
        h["impersonate-group"],
        serde_json::json!(["credential:dev"])
    );
    assert_eq!(h["impersonate-uid"], serde_json::json!([claims.sub]));
    assert_eq!(
        h["impersonate-extra-credential.kubectl.dev%2fsession-id"],
        serde_json::json!([claims.sid.clone().unwrap()])
    );
    assert_eq!(
        h["impersonate-extra-credential.kubectl.dev%2fcluster"],
        serde_json::json!(["default"])
    );
    assert_eq!(
        h["impersonate-extra-credential.kubectl.dev%2fclient-id"],
        serde_json::json!(["kubectl-credential"])
    );
    assert_eq!(h["accept"], serde_json::json!(["application/json"]));
    assert_eq!(
        seen["authority"],
        api.addr.to_string(),
        "the API server's host"
    );
    assert_eq!(
        seen["version"], "HTTP/1.1",
        "HTTP/1.1 towards the API server, though it offers HTTP/2"
    );
    assert_eq!(
        h["host"],
        serde_json::json!([api.addr.to_string()]),
        "not the proxy's host: {body}"
    );
    assert!(
        !body.contains(&t.access_token),
        "the caller's token must not reach the API server"
    );

    // A watch lasts: it holds an HTTP/1.1 connection of the pool while it runs.
    let (status, body) = p
        .get(
            "/api/v1/namespaces/team/pods?watch=true",
            &[("authorization", &bearer(&t.access_token))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["version"], "HTTP/1.1", "{body}");

    let events = p.stop_and_read_events().await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].2["verb"], "watch");
    let (actor, namespace, d) = &events[0];
    assert_eq!(actor.as_deref(), Some("alice"));
    assert_eq!(namespace.as_deref(), Some("team"));
    assert_eq!(d["verb"], "list");
    assert_eq!(d["resource"], "pods");
    assert_eq!(d["api_group"], "");
    assert_eq!(d["code"], 200);
    assert_eq!(d["session_id"], serde_json::json!(claims.sid));
    assert_eq!(d["upgrade"], false);
    assert!(d["response_bytes"].as_u64().unwrap_or(0) > 0, "{d}");
    assert!(d["duration_ms"].is_u64(), "{d}");
}

#[tokio::test]
async fn impersonate_uid_is_sent_only_when_configured() {
    let api = FakeApi::start().await;
    let p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "bob").await;
    let (status, body) = p
        .get(
            "/api/v1/namespaces/a/pods/x",
            &[("authorization", &bearer(&t.access_token))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        json(&body)["headers"].get("impersonate-uid").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn client_impersonation_is_refused_with_a_forbidden_status_and_recorded() {
    let api = FakeApi::start().await;
    let mut p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "carol").await;
    for header in [
        "impersonate-user",
        "Impersonate-Group",
        "impersonate-extra-scopes",
        "impersonate-uid",
    ] {
        let (status, body) = p
            .get(
                "/api/v1/namespaces/kube-system/secrets",
                &[
                    ("authorization", &bearer(&t.access_token)),
                    (header, "admin"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{header}: {body}");
        let (code, reason, message) = status_of(&body);
        assert_eq!((code, reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            message,
            "impersonation headers are not accepted through the credential proxy"
        );
        assert!(!body.contains("\"method\""), "not forwarded: {body}");
    }
    let events = p.stop_and_read_events().await;
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events
        .iter()
        .all(|(actor, _, d)| actor.as_deref() == Some("carol") && d["code"] == 403));
}

/// A case: its name, the headers sent, what the message must say.
type Unauthorized = (&'static str, Vec<(&'static str, String)>, &'static str);

#[tokio::test]
async fn missing_invalid_and_other_cluster_tokens_are_unauthorized() {
    let api = FakeApi::start().await;
    let mut p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "dave").await;
    let mut other = claims_of(&t.access_token);
    other.aud = "staging".into();
    other.cluster = Some("staging".into());
    let other = p.app.state.signer().sign(&other).unwrap();
    let cases: [Unauthorized; 4] = [
        ("no token", vec![], "bearer token"),
        (
            "basic auth",
            vec![("authorization", "Basic YWRtaW46YWRtaW4=".into())],
            "bearer token",
        ),
        (
            "garbage",
            vec![("authorization", bearer("not-a-token"))],
            "invalid token",
        ),
        (
            "other cluster",
            vec![("authorization", bearer(&other))],
            "another cluster",
        ),
    ];
    for (name, headers, why) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = p.get("/api/v1/namespaces", &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        let (code, reason, message) = status_of(&body);
        assert_eq!((code, reason.as_str()), (401, "Unauthorized"), "{name}");
        assert!(message.contains(why), "{name}: {message}");
        assert!(!message.contains(&other), "{name}: no token in the message");
    }
    let events = p.stop_and_read_events().await;
    assert_eq!(events.len(), 4, "refusals are events too: {events:?}");
    assert!(events
        .iter()
        .all(|(actor, _, d)| actor.is_none() && d["code"] == 401));
}

#[tokio::test]
async fn a_disabled_account_is_refused_within_seconds_through_the_revocation_feed() {
    let api = FakeApi::start().await;
    let p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "erin").await;
    let auth = bearer(&t.access_token);
    let (status, _) = p.get("/api/v1/pods", &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::OK);
    // As the admin CLI does from another process: only the database changes, so only the
    // proxy's revocation feed can tell its cache.
    p.app
        .state
        .store()
        .disable_user("erin", p.app.state.now())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = p.get("/api/v1/pods", &[("authorization", &auth)]).await;
        if status == StatusCode::UNAUTHORIZED {
            assert!(status_of(&body).2.contains("account disabled"), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {status} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn answers_stream_through_piece_by_piece() {
    let api = FakeApi::start().await;
    let mut p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "frank").await;
    let req = Request::get("/api/v1/namespaces/ns/pods/web/log?follow=true")
        .header("authorization", bearer(&t.access_token))
        .body(Empty::new().boxed())
        .unwrap();
    let res = p.send(req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    // The first piece arrives while the fake API server is still holding the second one back.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first piece must arrive before the answer ends")
        .unwrap()
        .unwrap();
    assert_eq!(
        first.into_data().unwrap(),
        Bytes::from_static(b"first line\n")
    );
    api.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from_static(b"second line\n"));
    let events = p.stop_and_read_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let d = &events[0].2;
    assert_eq!(d["verb"], "get");
    assert_eq!(d["subresource"], "log");
    assert_eq!(d["name"], "web");
    assert_eq!(d["response_bytes"], 23);
}

#[tokio::test]
async fn upgrades_switch_and_carry_bytes_both_ways_with_half_close() {
    let api = FakeApi::start().await;
    let mut p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "grace").await;
    let req = Request::post("/api/v1/namespaces/ns/pods/web/exec?command=sh&stdin=true")
        .header("authorization", bearer(&t.access_token))
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .header("x-stream-protocol-version", "v4.channel.k8s.io")
        .body(Empty::new().boxed())
        .unwrap();
    let mut res = p.send(req).await;
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        res.headers()
            .get("x-stream-protocol-version")
            .map(hyper::header::HeaderValue::as_bytes),
        Some(&b"v4.channel.k8s.io"[..])
    );
    let up = hyper::upgrade::on(&mut res).await.unwrap();
    let mut io = TokioIo::new(up);
    io.write_all(b"hello").await.unwrap();
    let mut buf = [0_u8; 10];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"echo:hello");
    // Half-close: the API server sees the end of input and still answers.
    io.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut rest))
        .await
        .expect("the upgraded stream must end after the half-close")
        .unwrap();
    assert_eq!(rest, b"bye");
    drop(io);

    // The event is written when the stream ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while p
        .app
        .state
        .store()
        .count_events(super::audit::ACTION)
        .await
        .unwrap()
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event for the upgrade"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = p.stop_and_read_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let d = &events[0].2;
    assert_eq!(d["verb"], "connect");
    assert_eq!(d["subresource"], "exec");
    assert_eq!(d["upgrade"], true);
    assert_eq!(d["code"], 101);
    assert_eq!(d["request_bytes"], 5);
    assert_eq!(d["response_bytes"], 13);
}

/// An exec stream outlives its token but not its session: disabling the account (from another
/// process: only the database changes) cuts the open stream within seconds.
#[tokio::test]
async fn an_open_upgraded_stream_is_cut_when_its_account_is_disabled() {
    let api = FakeApi::start().await;
    let mut p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "ivan").await;
    let req = Request::post("/api/v1/namespaces/ns/pods/web/exec?command=sh&stdin=true")
        .header("authorization", bearer(&t.access_token))
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .header("x-stream-protocol-version", "v4.channel.k8s.io")
        .body(Empty::new().boxed())
        .unwrap();
    let mut res = p.send(req).await;
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(&mut res).await.unwrap());
    io.write_all(b"hello").await.unwrap();
    let mut buf = [0_u8; 10];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"echo:hello");
    // Still open two seconds on: a live session is not cut.
    let mut one = [0_u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_secs(2), io.read(&mut one))
            .await
            .is_err(),
        "the stream ended without a reason"
    );
    p.app
        .state
        .store()
        .disable_user("ivan", p.app.state.now())
        .await
        .unwrap();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut rest)).await;
    assert!(
        ended.is_ok(),
        "the stream stayed open after the account was disabled"
    );
    assert!(
        !rest.ends_with(b"bye"),
        "the API server ended it, not the proxy"
    );
    drop(io);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while p
        .app
        .state
        .store()
        .count_events(super::audit::ACTION)
        .await
        .unwrap()
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event for the cut stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = p.stop_and_read_events().await;
    assert_eq!(events[0].2["incomplete"], true, "{:?}", events[0].2);
}

#[tokio::test]
async fn a_malformed_upgrade_is_a_bad_request() {
    let api = FakeApi::start().await;
    let p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "heidi").await;
    let (status, body) = p
        .get(
            "/api/v1/namespaces/ns/pods/web/exec",
            &[
                ("authorization", &bearer(&t.access_token)),
                ("connection", "Upgrade"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(status_of(&body).1, "BadRequest");
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_service_unavailable_status() {
    let api = FakeApi::start().await;
    let p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "ivan").await;
    // The same proxy, pointed at a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = FakeApi {
        addr: closed.local_addr().unwrap(),
        ca: api.ca.clone(),
        release: Arc::new(Notify::new()),
        _dir: tempfile::tempdir().unwrap(),
    };
    drop(closed);
    let q = Proxied::start(&dead, false).await;
    let t2 = logged_in(&q.app, "ivan").await;
    let (status, body) = q
        .get(
            "/api/v1/pods",
            &[("authorization", &bearer(&t2.access_token))],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (code, reason, message) = status_of(&body);
    assert_eq!((code, reason.as_str()), (503, "ServiceUnavailable"));
    assert!(
        message.contains("could not reach the API server"),
        "{message}"
    );
    // The healthy one still answers.
    let (status, _) = p
        .get("/version", &[("authorization", &bearer(&t.access_token))])
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_start_line_names_the_bound_address_and_the_cluster_list_names_the_proxy() {
    // Before the proxy starts (setting the subscriber rebuilds every call site's interest).
    let _ = captured_logs();
    let api = FakeApi::start().await;
    let p = Proxied::start(&api, false).await;
    // The line is logged before the first connection is accepted.
    let (status, _) = p.get("/version", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let logs = captured_logs().text();
    let line = format!("proxy for cluster default listening on https://{}", p.addr);
    assert!(logs.contains(&line), "{line} not in the logs");

    let list = p.app.get("/api/v1/clusters", None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let v = json(&list.body);
    let default = v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "default")
        .unwrap()
        .clone();
    assert_eq!(default["server"], "https://127.0.0.1:8444");
    let ca = base64::engine::general_purpose::STANDARD
        .decode(default["certificate_authority_data"].as_str().unwrap())
        .unwrap();
    assert_eq!(ca, p.ca, "the CA that signed the proxy's certificate");
}

#[tokio::test]
async fn http2_callers_are_served_like_http1_callers() {
    let api = FakeApi::start().await;
    let mut p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "judy").await;
    let (status, body) = p
        .get_h2("/apis/apps/v1/namespaces/ns/deployments", &t.access_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = json(&body);
    assert_eq!(
        seen["headers"]["impersonate-user"],
        serde_json::json!(["credential:judy"])
    );
    assert_eq!(seen["path"], "/apis/apps/v1/namespaces/ns/deployments");
    let (status, body) = p.get_h2("/api/v1/pods", "forged").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let events = p.stop_and_read_events().await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].2["api_group"], "apps");
    assert_eq!(events[0].2["verb"], "list");
}

#[tokio::test]
async fn a_new_token_of_the_proxy_is_used_for_the_next_request() {
    let api = FakeApi::start().await;
    let endpoint = crate::kube::kubeconfig::Endpoint {
        server: format!("https://{}", api.addr).parse().unwrap(),
        ca_pem: Some(std::fs::read(&api.ca).unwrap()),
        auth: crate::kube::kubeconfig::Auth::Token(crate::secrets::secret::Secret::new("old")),
    };
    let upstream = super::forward::Upstream::new(&endpoint).unwrap();
    let seen = |res: Response<Incoming>| async move {
        let body = res.into_body().collect().await.unwrap().to_bytes();
        json(&String::from_utf8_lossy(&body))["headers"]["authorization"].clone()
    };
    let get = || {
        Request::get("/version")
            .body(super::status::full(Bytes::new()))
            .unwrap()
    };
    assert_eq!(
        seen(upstream.send(get()).await.unwrap()).await,
        serde_json::json!(["Bearer old"])
    );
    let same = crate::secrets::secret::Secret::new("old");
    assert!(!upstream.set_token(&same).unwrap());
    let rotated = crate::secrets::secret::Secret::new("new");
    assert!(upstream.set_token(&rotated).unwrap());
    assert_eq!(
        seen(upstream.send(get()).await.unwrap()).await,
        serde_json::json!(["Bearer new"])
    );
}

#[tokio::test]
async fn shutdown_ends_long_lived_answers_at_once_and_keeps_their_events() {
    let api = FakeApi::start().await;
    let mut p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "kim").await;
    let req = Request::get("/api/v1/namespaces/ns/pods/web/log?follow=true")
        .header("authorization", bearer(&t.access_token))
        .body(Empty::new().boxed())
        .unwrap();
    let res = p.send(req).await;
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(
        first.into_data().unwrap(),
        Bytes::from_static(b"first line\n")
    );
    // The fake API server never sends the rest: only the proxy's shutdown ends this answer,
    // well within the grace period that short answers get.
    let started = std::time::Instant::now();
    let events = tokio::time::timeout(super::GRACE / 2, p.stop_and_read_events())
        .await
        .expect("a followed log must not hold the shutdown for the grace period");
    assert!(started.elapsed() < super::GRACE / 2);
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect()).await;
    assert!(rest.is_ok(), "the caller sees the answer end");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].2["incomplete"], true);
    assert_eq!(events[0].2["response_bytes"], 11);
}

/// A keep-alive HTTP/1.1 connection to `addr`, trusting `ca_pem` only.
async fn keep_alive(
    addr: SocketAddr,
    ca_pem: &[u8],
) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// `workers` keep-alive connections to `addr` sending `per_worker` GETs each: requests per
/// second.
async fn load(
    addr: SocketAddr,
    ca_pem: &[u8],
    token: &str,
    workers: usize,
    per_worker: usize,
) -> f64 {
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let mut sender = keep_alive(addr, ca_pem).await;
        let auth = bearer(token);
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                sender.ready().await.unwrap();
                let req = Request::get("/api/v1/namespaces/ns/pods/web")
                    .header("host", "127.0.0.1")
                    .header("authorization", &auth)
                    .body(Empty::new().boxed())
                    .unwrap();
                let res = sender.send_request(req).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                res.into_body().collect().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    #[expect(clippy::cast_precision_loss, reason = "a rate for people to read")]
    let n = (workers * per_worker) as f64;
    n / started.elapsed().as_secs_f64()
}

/// Not a check but a measurement (docs/benchmarks.md, "The impersonating proxy"): the same
/// GETs straight to the fake API server and through the proxy (token review from the cache,
/// impersonation, audit events written in batches).
///
/// `cargo test --release -p credential-issuer --lib proxy::tests::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn throughput_through_the_proxy_and_direct() {
    let api = FakeApi::start().await;
    let p = Proxied::start(&api, false).await;
    let t = logged_in(&p.app, "lee").await;
    let api_ca = std::fs::read(&api.ca).unwrap();
    // Warm both paths (TLS sessions, caches, pools).
    load(api.addr, &api_ca, &t.access_token, 8, 20).await;
    load(p.addr, &p.ca, &t.access_token, 8, 20).await;
    for (workers, per_worker) in [(1, 2000), (8, 500)] {
        let direct = load(api.addr, &api_ca, &t.access_token, workers, per_worker).await;
        let proxied = load(p.addr, &p.ca, &t.access_token, workers, per_worker).await;
        eprintln!(
            "{workers} keep-alive connection(s): direct {direct:.0} req/s, through the proxy \
             {proxied:.0} req/s ({:.2}x; {:.0} µs added per request and connection)",
            proxied / direct,
            (1.0 / proxied - 1.0 / direct) * 1e6 * f64::from(u32::try_from(workers).unwrap_or(1)),
        );
    }
}
