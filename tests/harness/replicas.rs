//! Several `credential-issuer serve` processes on one PostgreSQL database behind a TCP load
//! balancer, as a company runs the issuer: one public URL, replicas that can die.
//!
//! Every replica is a real process (so a test can kill it with `SIGKILL` in the middle of a
//! request's life), started with the flags and environment an operator's Deployment gives it:
//! the shared database URL, the shared encryption key (a file for replica a, the environment
//! variable for the others) and the shared serving certificate.
//! The [`LoadBalancer`] stands in for the Kubernetes Service: it sends each new connection to
//! the next replica that accepts it, and tests can steer it to one replica
//! ([`LoadBalancer::route_to`]) to show that state written through one is honoured by another.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::browser::Browser;
use crate::http;
use crate::postgres::Postgres;
use crate::process::{self, Outcome, Reaper};
use crate::wait::{self, Check};

/// A TCP proxy on `127.0.0.1:0` that spreads connections over a set of backends.
#[derive(Debug)]
pub struct LoadBalancer {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    /// Connections handed to each backend so far, by address.
    served: Arc<Mutex<Vec<(SocketAddr, usize)>>>,
}

impl LoadBalancer {
    /// Starts proxying to `backends`.
    #[track_caller]
    #[must_use]
    pub fn start(backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("load balancer: cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("load balancer: {e}"));
        let backends = Arc::new(Mutex::new(backends));
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let (b, s, count) = (backends.clone(), stop.clone(), served.clone());
        let next = Arc::new(AtomicUsize::new(0));
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let candidates = b.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let first = next.fetch_add(1, Ordering::SeqCst);
                let count = count.clone();
                thread::spawn(move || {
                    // Like a Service with a dead endpoint not yet removed: try the next one.
                    for i in 0..candidates.len() {
                        let backend = candidates[(first + i) % candidates.len()];
                        if let Ok(upstream) =
                            TcpStream::connect_timeout(&backend, Duration::from_secs(2))
                        {
                            {
                                let mut c = count.lock().unwrap_or_else(PoisonError::into_inner);
                                match c.iter_mut().find(|(a, _)| *a == backend) {
                                    Some(entry) => entry.1 += 1,
                                    None => c.push((backend, 1)),
                                }
                            }
                            pipe(client, upstream);
                            return;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                });
            }
        });
        Self {
            addr,
            backends,
            stop,
            served,
        }
    }

    /// `https://127.0.0.1:PORT`: the issuer's public URL.
    #[must_use]
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Sends every new connection to these backends only.
    pub fn route_to(&self, backends: &[SocketAddr]) {
        *self.backends.lock().unwrap_or_else(PoisonError::into_inner) = backends.to_vec();
    }

    /// How many connections went to `backend` so far.
    #[must_use]
    pub fn served(&self, backend: SocketAddr) -> usize {
        self.served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(a, _)| *a == backend)
            .map_or(0, |(_, n)| *n)
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies bytes both ways until either side closes.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || copy(client, u2));
    copy(upstream, c2);
    let _ = up.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0_u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// One `credential-issuer serve` process.
#[derive(Debug)]
pub struct Replica {
    name: String,
    addr: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
}

impl Replica {
    /// `127.0.0.1:PORT` it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its name (`a`, `b`, ...), also the last part of its lease holder id's host name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its log so far (stderr).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `SIGKILL`: the replica dies at once, as a node failing would take it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SIGTERM` and wait for the graceful exit.
    #[track_caller]
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_group(child.id(), rustix::process::Signal::TERM);
            if process::wait_for(&mut child, Duration::from_secs(30)).is_none() {
                let _ = child.kill();
                panic!(
                    "replica {} did not stop within 30 s after SIGTERM",
                    self.name
                );
            }
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Several replicas sharing one PostgreSQL database, one encryption key and one certificate,
/// behind a [`LoadBalancer`].
#[derive(Debug)]
pub struct Replicas {
    members: Vec<Replica>,
    lb: LoadBalancer,
    dir: PathBuf,
    config_file: PathBuf,
    database_url: String,
    key_file: PathBuf,
    cert: PathBuf,
    tls_key: PathBuf,
    ca_file: PathBuf,
    _cleanup: Reaper,
}

impl Replicas {
    /// Starts `count` replicas on a fresh database of the shared test PostgreSQL. `config` is
    /// the issuer.toml every replica and every admin command reads (clusters, roles, limits).
    #[track_caller]
    #[must_use]
    pub fn start(count: usize, config: &str) -> Self {
        Self::start_on(Postgres::shared(), count, config)
    }

    /// Like [`Replicas::start`], on a fresh database of `pg` (a private server a fault test
    /// stops or freezes).
    #[track_caller]
    #[must_use]
    pub fn start_on(pg: &Postgres, count: usize, config: &str) -> Self {
        let database_url = pg.fresh_database("replicas");
        let (dir, cleanup) = process::reaped_temp_dir("e2e-replicas.", "the replicas' directory");
        // What a Secret gives every pod: the encryption key and the serving certificate.
        let key_file = dir.join("seal.key");
        credential_issuer::secrets::seal::Sealer::load_or_create(&key_file)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", key_file.display()));
        let tls = credential_issuer::serve::tls::ensure_generated(
            &dir.join("tls"),
            &["127.0.0.1".to_owned(), "localhost".to_owned()],
        )
        .unwrap_or_else(|e| panic!("cannot generate the serving certificate: {e}"));
        let ca_file = tls
            .ca
            .clone()
            .unwrap_or_else(|| panic!("generated TLS material has no CA"));
        let config_file = dir.join("issuer.toml");
        std::fs::write(&config_file, config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_file.display()));

        // The public URL must be known before the replicas start (it is every token's `iss`).
        let lb = LoadBalancer::start(Vec::new());
        let mut set = Self {
            members: Vec::new(),
            lb,
            dir,
            config_file,
            database_url,
            key_file,
            cert: tls.cert,
            tls_key: tls.key,
            ca_file,
            _cleanup: cleanup,
        };
        let names = ["a", "b", "c", "d"];
        for name in names.iter().take(count) {
            let replica = set.spawn(name);
            set.members.push(replica);
        }
        for r in &set.members {
            set.wait_ready(r);
        }
        set.lb.route_to(&set.addrs());
        set
    }

    fn spawn(&self, name: &str) -> Replica {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let data_dir = self.dir.join(format!("replica-{name}"));
        let log = self.dir.join(format!("replica-{name}.log"));
        let log_file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let mut cmd = Command::new(crate::bins::credential_issuer());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("HOSTNAME", format!("replica-{name}"))
            .env("RUST_LOG", "info")
            // As a Deployment would: the password travels in the environment, not in argv.
            .env("CREDENTIAL_ISSUER_DATABASE_URL", &self.database_url)
            .args(["serve", "--config"])
            .arg(&self.config_file)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", &addr.to_string()])
            .args(["--issuer-url", &self.lb.url()])
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.tls_key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .process_group(0);
        // The shared key as a file for replica a and as an environment variable (base64) for
        // the others: both ways of handing it over must open the same sealed rows.
        if name == "a" {
            cmd.arg("--encryption-key-file").arg(&self.key_file);
        } else {
            let key = std::fs::read(&self.key_file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.key_file.display()));
            cmd.env(
                "CREDENTIAL_ISSUER_ENCRYPTION_KEY",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key),
            );
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start replica {name}: {e}"));
        Replica {
            name: name.to_owned(),
            addr,
            child: Some(child),
            log,
        }
    }

    #[track_caller]
    fn wait_ready(&self, r: &Replica) {
        let agent = http::agent(&self.ca_file);
        let url = format!("https://{}/readyz", r.addr);
        wait::until(
            &format!("replica {} answers /readyz", r.name),
            Duration::from_secs(60),
            || match http::response(agent.get(&url).call()) {
                Ok(resp) if resp.status == 200 => Check::Done(()),
                Ok(resp) => Check::Retry(format!("status {}", resp.status)),
                Err(e) => Check::Retry(e),
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nlog of replica {}:\n{}", r.name, r.log()));
    }

    /// Starts one more replica (a replacement pod) and routes to it as well.
    #[track_caller]
    pub fn add(&mut self, name: &str) -> usize {
        let r = self.spawn(name);
        self.wait_ready(&r);
        self.members.push(r);
        self.lb.route_to(&self.live_addrs());
        self.members.len() - 1
    }

    /// The replicas, in start order.
    #[must_use]
    pub fn replicas(&self) -> &[Replica] {
        &self.members
    }

    /// Replica `i`.
    #[must_use]
    pub fn replica(&self, i: usize) -> &Replica {
        &self.members[i]
    }

    /// Kills replica `i` with `SIGKILL`. The load balancer keeps it in its list (as a Service
    /// does until the endpoint is removed): connections to it fail over to another replica.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Stops replica `i` gracefully (`SIGTERM`).
    #[track_caller]
    pub fn stop(&mut self, i: usize) {
        self.members[i].stop();
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(Replica::addr).collect()
    }

    fn live_addrs(&self) -> Vec<SocketAddr> {
        self.members
            .iter()
            .filter(|r| r.child.is_some())
            .map(Replica::addr)
            .collect()
    }

    /// The load balancer (to steer traffic to one replica).
    #[must_use]
    pub fn lb(&self) -> &LoadBalancer {
        &self.lb
    }

    /// Sends all new connections to replica `i` only.
    pub fn route_to(&self, i: usize) {
        self.lb.route_to(&[self.members[i].addr]);
    }

    /// Spreads connections over every replica again (dead ones included; they fail over).
    pub fn route_to_all(&self) {
        self.lb.route_to(&self.addrs());
    }

    /// The public URL (the load balancer).
    #[must_use]
    pub fn url(&self) -> String {
        self.lb.url()
    }

    /// The CA of the shared serving certificate.
    #[must_use]
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The shared database's URL (with its password; tests only).
    #[must_use]
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Runs a query on the shared database with `psql`.
    #[track_caller]
    #[must_use]
    pub fn sql(&self, query: &str) -> String {
        Postgres::shared().psql(&self.database_url, query)
    }

    /// A browser for the public URL.
    #[must_use]
    pub fn browser(&self) -> Browser {
        Browser::new(&self.url(), &self.ca_file)
    }

    /// Replica `i`'s own URL (not through the load balancer).
    #[must_use]
    pub fn replica_url(&self, i: usize) -> String {
        format!("https://{}", self.members[i].addr)
    }

    /// `credential-issuer ARGS` as an operator runs it against the shared database (from any
    /// machine: its own scratch data directory, the shared config, key and database URL).
    #[track_caller]
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Outcome {
        let mut cmd = Command::new(crate::bins::credential_issuer());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("CREDENTIAL_ISSUER_DATABASE_URL", &self.database_url)
            .args(args)
            .arg("--config")
            .arg(&self.config_file)
            .arg("--data-dir")
            .arg(self.dir.join("admin"))
            .arg("--encryption-key-file")
            .arg(&self.key_file);
        process::run(&mut cmd, stdin.map(str::as_bytes), Duration::from_secs(60))
    }

    /// `credential-issuer user add NAME --group G...` with the password on stdin.
    #[track_caller]
    pub fn add_user(&self, name: &str, groups: &[&str], password: &str) {
        crate::issuer::add_user_with(|args, stdin| self.cli(args, stdin), name, groups, password);
    }

    /// `GET path` on replica `i` directly (not through the load balancer).
    #[track_caller]
    #[must_use]
    pub fn get_from(&self, i: usize, path: &str) -> http::Response {
        let url = format!("https://{}{path}", self.members[i].addr);
        http::response(http::agent(&self.ca_file).get(&url).call())
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// `POST path` with a JSON body to replica `i` directly, as an API server configured with
    /// that replica's address would.
    #[track_caller]
    #[must_use]
    pub fn post_json_to(&self, i: usize, path: &str, body: &str) -> http::Response {
        let url = format!("https://{}{path}", self.members[i].addr);
        http::response(
            http::agent(&self.ca_file)
                .post(&url)
                .set("Content-Type", "application/json")
                .send_string(body),
        )
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    /// `POST path` with a form to the public URL, as an OAuth client.
    #[track_caller]
    #[must_use]
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> http::Response {
        let url = format!("{}{path}", self.url());
        http::response(http::agent(&self.ca_file).post(&url).send_form(fields))
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .map_or_else(|e: io::Error| panic!("{e}"), |a| a.port())
}
