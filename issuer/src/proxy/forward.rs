//! The proxy's side towards the real API server: TLS that trusts only the cluster's CA, the
//! proxy's own credential (its client certificate in the handshake, or its bearer token), a
//! pool of HTTP/1.1 keep-alive connections for ordinary requests, and a fresh HTTP/1.1
//! connection per upgrade (exec, attach, port-forward), which the upgraded stream then owns.
//!
//! HTTP/1.1, not HTTP/2, towards the API server: the proxy carries many people's watches, which
//! on shared HTTP/2 connections would hold the API server's streams per connection (250 by
//! Go's default) for hours, and hyper-util's pooled client was measured slower over HTTP/2 than
//! over its HTTP/1.1 pool (docs/benchmarks.md, "The impersonating proxy"). A watch holds one
//! pooled connection while it lasts; idle ones are reused.
//!
//! Bodies are streamed both ways, never collected: a watch or `logs -f` lasts for hours.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Request, Response, Uri, Version};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use url::Url;

use super::ProxyBody;
use crate::kube::kubeconfig::Endpoint;
use crate::secrets::secret::Secret;

/// How long connecting to the API server (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle pooled connections kept.
const POOL_MAX_IDLE: usize = 64;

/// Why a request did not reach the API server, or its answer did not come back.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    /// No connection could be made (refused, unreachable, timed out, TLS refused).
    #[error("cannot connect to the API server: {0}")]
    Connect(String),
    /// The connection broke or the API server answered something that is not HTTP.
    #[error("the API server's answer failed: {0}")]
    Exchange(String),
}

impl Error {
    fn from_client(e: &hyper_util::client::legacy::Error) -> Self {
        if e.is_connect() {
            Self::Connect(causes(e))
        } else {
            Self::Exchange(causes(e))
        }
    }
}

/// `e` and its causes, `: `-separated (none of them holds a header, so no token).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The real API server, as the proxy reaches it.
pub(super) struct Upstream {
    /// Ordinary requests, pooled.
    client: Client<Connector, ProxyBody>,
    /// For upgrades: the same connector, for a connection of their own.
    http1: Connector,
    authority: Authority,
    /// The server URL's path (an API server behind a path prefix), without a trailing `/`.
    base_path: String,
    /// `Bearer <token>` when the proxy authenticates with a token (marked sensitive); replaced
    /// when the token file changes (see [`Upstream::set_token`]).
    credential: std::sync::RwLock<Option<HeaderValue>>,
    server: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Why the API server cannot be set up as the upstream.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The kubeconfig's CA, client certificate or key cannot be used.
    #[error(transparent)]
    Kube(#[from] crate::kube::Error),
    /// The server URL has no host, or the token is not a valid header value.
    #[error("{0}")]
    Invalid(String),
}

impl Upstream {
    /// The upstream for `endpoint` (its server, CA and credential).
    pub(super) fn new(endpoint: &Endpoint) -> Result<Self, SetupError> {
        let (tls, token) = crate::kube::client::client_tls(endpoint)?;
        let server = &endpoint.server;
        let (host, name) = host_of(server)?;
        let port = server.port_or_known_default().unwrap_or(443);
        let authority: Authority = match server.port() {
            Some(p) => format!("{}:{p}", server.host_str().unwrap_or_default()),
            None => server.host_str().unwrap_or_default().to_owned(),
        }
        .parse()
        .map_err(|_| SetupError::Invalid(format!("{server} has no usable host")))?;
        let credential = token.as_ref().map(bearer_value).transpose()?;
        let mut http1 = tls;
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = |config: rustls::ClientConfig| Connector {
            tls: TlsConnector::from(Arc::new(config)),
            host: host.clone(),
            port,
            name: name.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector(http1.clone()));
        Ok(Self {
            client,
            http1: connector(http1),
            authority,
            base_path: server.path().trim_end_matches('/').to_owned(),
            credential: std::sync::RwLock::new(credential),
            server: server.as_str().trim_end_matches('/').to_owned(),
        })
    }

    /// The API server's URL, for messages.
    pub(super) fn server(&self) -> &str {
        &self.server
    }

    /// The proxy's own credential goes in, whatever the caller sent (already removed).
    fn authenticate(&self, headers: &mut HeaderMap) {
        let credential = self
            .credential
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = credential.as_ref() {
            headers.insert(header::AUTHORIZATION, c.clone());
        }
    }

    /// Uses `token` from now on, if the proxy authenticates with a token: a service account's
    /// token file is rotated by the kubelet, so it is read again from time to time. Returns
    /// whether it changed.
    pub(super) fn set_token(&self, token: &Secret) -> Result<bool, SetupError> {
        let value = bearer_value(token)?;
        let mut credential = self
            .credential
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match credential.as_ref() {
            Some(current) if current.as_bytes() != value.as_bytes() => {
                *credential = Some(value);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The same path and query on the API server.
    fn path_and_query(&self, uri: &Uri) -> Result<PathAndQuery, Error> {
        let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        format!("{}{pq}", self.base_path)
            .parse()
            .map_err(|_| Error::Exchange("the request path cannot be forwarded".into()))
    }

    /// Sends an ordinary request (headers already prepared) through the pool.
    pub(super) async fn send(
        &self,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, Error> {
        let pq = self.path_and_query(req.uri())?;
        *req.uri_mut() = Uri::builder()
            .scheme(Scheme::HTTPS)
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| Error::Exchange(e.to_string()))?;
        // An HTTP/2 caller's request goes on as HTTP/1.1 (the pool speaks nothing else).
        *req.version_mut() = Version::HTTP_11;
        self.authenticate(req.headers_mut());
        self.client
            .request(req)
            .await
            .map_err(|e| Error::from_client(&e))
    }

    /// Sends an upgrade request over a new HTTP/1.1 connection of its own; with a `101`
    /// answer, `hyper::upgrade::on` of the answer yields the upgraded stream.
    pub(super) async fn send_upgrade(
        &self,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, Error> {
        let pq = self.path_and_query(req.uri())?;
        // An HTTP/1.1 connection of our own sends the request line as given: origin form, and
        // the host in its header.
        *req.uri_mut() = Uri::from(pq);
        *req.version_mut() = Version::HTTP_11;
        let host = HeaderValue::from_str(self.authority.as_str())
            .map_err(|e| Error::Exchange(e.to_string()))?;
        req.headers_mut().insert(header::HOST, host);
        self.authenticate(req.headers_mut());
        let io = self.http1.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| Error::Connect(causes(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %causes(&e), "upgrade connection to the API server ended");
            }
        });
        sender
            .send_request(req)
            .await
            .map_err(|e| Error::Exchange(causes(&e)))
    }
}

/// `Bearer <token>`, marked sensitive (never shown by `Debug`, never indexed by HPACK).
fn bearer_value(token: &Secret) -> Result<HeaderValue, SetupError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| SetupError::Invalid("the proxy's token is not a valid header value".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// The host to connect to (brackets off an IPv6 address) and the name its certificate must
/// carry.
fn host_of(server: &Url) -> Result<(String, ServerName<'static>), SetupError> {
    let invalid = || SetupError::Invalid(format!("{server} has no usable host"));
    match server.host().ok_or_else(invalid)? {
        url::Host::Domain(d) => {
            let name = ServerName::try_from(d.to_owned()).map_err(|_| invalid())?;
            Ok((d.to_owned(), name))
        }
        url::Host::Ipv4(ip) => Ok((
            ip.to_string(),
            ServerName::IpAddress(std::net::IpAddr::V4(ip).into()),
        )),
        url::Host::Ipv6(ip) => Ok((
            ip.to_string(),
            ServerName::IpAddress(std::net::IpAddr::V6(ip).into()),
        )),
    }
}

/// Connects to the API server, whatever URI the pool asks for: the proxy never connects
/// anywhere else.
#[derive(Clone)]
struct Connector {
    tls: TlsConnector,
    host: String,
    port: u16,
    name: ServerName<'static>,
}

impl Connector {
    async fn connect(&self) -> Result<TlsIo, Error> {
        let attempt = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
            tcp.set_nodelay(true)?;
            self.tls.connect(self.name.clone(), tcp).await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(stream)) => Ok(TlsIo(TokioIo::new(stream))),
            Ok(Err(e)) => Err(Error::Connect(causes(&e))),
            Err(_) => Err(Error::Connect(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TlsIo;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<TlsIo, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect().await })
    }
}

/// A TLS connection to the API server, as hyper reads and writes it.
struct TlsIo(TokioIo<TlsStream<TcpStream>>);

impl Connection for TlsIo {
    fn connected(&self) -> Connected {
        // HTTP/1.1 only (ALPN offers nothing else): see the module's comment.
        Connected::new()
    }
}

impl hyper::rt::Read for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}
