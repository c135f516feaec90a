//! The issuer's HTTPS serving certificate: loading a configured one, or generating a local CA
//! and a certificate signed by it when none is configured.
//!
//! kube-apiserver only accepts an `https` OIDC issuer, so the issuer serves TLS even with zero
//! configuration. The generated CA is kept across restarts and leaf re-issues, so a client (or
//! an API server's `--oidc-ca-file`) that trusts `ca.crt` once keeps working.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::OffsetDateTime;

use crate::secrets::private_file;

/// Common name of the generated CA. It must stay fixed: re-issuing a leaf rebuilds the issuer
/// name from it rather than parsing `ca.crt`.
const CA_COMMON_NAME: &str = "credential-issuer local CA";
/// Common name of generated serving certificates (clients match the SANs, not this).
const LEAF_COMMON_NAME: &str = "credential-issuer";
const CA_VALIDITY: time::Duration = time::Duration::days(3650);
const LEAF_VALIDITY: time::Duration = time::Duration::days(365);
/// A leaf that expires sooner than this is replaced at start.
const RENEW_BEFORE: time::Duration = time::Duration::days(30);
/// Backdating of `notBefore`, for clients whose clock is a little behind.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// Why the serving certificate could not be generated or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No host name was given to generate a certificate for.
    #[error("cannot generate a TLS certificate without a host name")]
    NoHosts,
    /// A host is neither an IP address nor a valid DNS name (wildcards are not supported).
    #[error("{host:?} is not a DNS name or IP address to generate a TLS certificate for")]
    InvalidHost {
        /// The host as given.
        host: String,
    },
    /// The certificate directory could not be created.
    #[error("cannot create TLS directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A certificate or key file could not be read (this includes a missing file).
    #[error("cannot read {what} {}", path.display())]
    Read {
        /// `TLS certificate`, `TLS private key`, ...
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A generated file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("{what} {} is not valid PEM", path.display())]
    InvalidPem {
        /// `TLS certificate`, `TLS private key`, ...
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: pem::Error,
    },
    /// A certificate file holds no `CERTIFICATE` block.
    #[error("TLS certificate {} contains no certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no private key block.
    #[error("TLS private key {} contains no private key", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The generated CA's certificate exists but its key does not. A new CA is not generated
    /// silently, since clients may trust the old one.
    #[error(
        "the CA key {} is missing; restore it, or delete the directory to generate a new CA \
         (which clients must then trust again)",
        path.display()
    )]
    MissingCaKey {
        /// The missing key file.
        path: PathBuf,
    },
    /// The generated CA's key cannot be used.
    #[error("CA key {} is invalid", path.display())]
    InvalidCaKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// The CA certificate cannot be used as a trust anchor.
    #[error("CA certificate {} is invalid", path.display())]
    InvalidCa {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// A certificate verifier could not be built for the CA.
    #[error("cannot check certificates against CA {}", path.display())]
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::client::VerifierBuilderError,
    },
    /// A newly issued certificate does not verify against `ca.crt`: `ca.crt` and `ca.key` next
    /// to it do not belong together, or `ca.crt` was not generated by the issuer.
    #[error(
        "a certificate for {host} signed with the CA key does not verify against {}; \
         delete the directory to generate a new CA",
        ca.display()
    )]
    CaMismatch {
        /// The CA certificate.
        ca: PathBuf,
        /// The host that failed.
        host: String,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// Generating a key or certificate failed.
    #[error("cannot generate a TLS certificate")]
    Generate(#[source] rcgen::Error),
    /// The certificate and key do not make a usable server configuration (for example, the key
    /// does not belong to the certificate).
    #[error(
        "TLS certificate {} and private key {} cannot be used together",
        cert.display(),
        key.display()
    )]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
}

/// The files of a serving certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate (chain), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// The CA to trust when the certificate was generated.
    pub ca: Option<PathBuf>,
}

/// A host the certificate is for, as rcgen and as rustls want it.
struct Host {
    /// Without brackets, as given to rcgen (which tells IP addresses from DNS names itself).
    san: String,
    name: ServerName<'static>,
}

/// A CA loaded from, or just written to, the directory.
struct Ca {
    cert: CertificateDer<'static>,
    /// Never `Debug`-printed: rcgen's derived `Debug` shows the key bytes.
    key: KeyPair,
}

/// Makes sure `dir` (created with mode 0700) holds a CA (`ca.crt`, `ca.key`) and a serving
/// certificate signed by it (`tls.crt`, `tls.key`) for every one of `hosts` (DNS names or IP
/// addresses, IPv6 with or without brackets).
///
/// Files from an earlier start are reused while the certificate covers the hosts and does not
/// expire within 30 days; otherwise the certificate is re-issued from the same CA. Keys have
/// mode 0600. The directory belongs to the issuer: do not put other certificates in it.
pub fn ensure_generated(dir: &Path, hosts: &[String]) -> Result<TlsFiles, Error> {
    ensure_generated_at(dir, hosts, OffsetDateTime::now_utc())
}

/// As [`ensure_generated`], for another serving certificate signed by the same CA, kept as
/// `{leaf}.crt` and `{leaf}.key` (the impersonating proxy's, `proxy-<cluster>`), so that
/// clients trusting `ca.crt` for the issuer trust the proxy too. `leaf` must be a plain file
/// stem (letters, digits, `.`, `_`, `-`) and not `tls` or `ca`.
pub fn ensure_generated_leaf(dir: &Path, hosts: &[String], leaf: &str) -> Result<TlsFiles, Error> {
    let plain = !leaf.is_empty()
        && !leaf.starts_with('.')
        && leaf
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plain || leaf == "tls" || leaf == "ca" {
        return Err(Error::InvalidHost {
            host: format!("(certificate file name {leaf:?})"),
        });
    }
    generate_in(dir, hosts, leaf, OffsetDateTime::now_utc())
}

fn ensure_generated_at(
    dir: &Path,
    hosts: &[String],
    now: OffsetDateTime,
) -> Result<TlsFiles, Error> {
    generate_in(dir, hosts, "tls", now)
}

fn generate_in(
    dir: &Path,
    hosts: &[String],
    leaf: &str,
    now: OffsetDateTime,
) -> Result<TlsFiles, Error> {
    let hosts = parse_hosts(hosts)?;
    private_file::create_private_dir(dir).map_err(|source| Error::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let files = TlsFiles {
        cert: dir.join(format!("{leaf}.crt")),
        key: dir.join(format!("{leaf}.key")),
        ca: Some(ca_cert_path.clone()),
    };

    let ca = match read_optional("CA certificate", &ca_cert_path)? {
        Some(pem) => load_ca(&ca_cert_path, &pem, &ca_key_path)?,
        // The key is written first, so a `ca.key` without `ca.crt` is the trace of a first start
        // that crashed: no client can trust that CA yet, and it is replaced.
        None => generate_ca(&ca_cert_path, &ca_key_path, now)?,
    };
    let verifier = verifier(&ca_cert_path, &ca.cert)?;

    match leaf_problem(&files, &verifier, &hosts, now)? {
        None => {
            tracing::debug!(cert = %files.cert.display(), "reusing generated TLS certificate");
            return Ok(files);
        }
        Some(reason) => {
            tracing::info!(cert = %files.cert.display(), %reason, "issuing TLS certificate");
        }
    }

    let (cert_pem, key_pem) = issue_leaf(&ca.key, &hosts, now)?;
    // Check before writing: a CA key that does not match `ca.crt` would otherwise produce a
    // certificate no client accepts, and the next start would try again forever.
    let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|source| {
        Error::InvalidPem {
            what: "generated certificate",
            path: files.cert.clone(),
            source,
        }
    })?;
    if let Err((host, source)) = check_leaf(&verifier, &leaf, &hosts, now) {
        return Err(Error::CaMismatch {
            ca: ca_cert_path,
            host,
            source,
        });
    }
    // Key first: a crash in between leaves a certificate that does not match its key, which
    // the next start detects and repairs.
    write(
        &files.key,
        key_pem.as_bytes(),
        private_file::PRIVATE_FILE_MODE,
    )?;
    write(
        &files.cert,
        cert_pem.as_bytes(),
        private_file::PUBLIC_FILE_MODE,
    )?;
    Ok(files)
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`) serving the
/// certificate chain in `cert` with the private key in `key`, both PEM.
///
/// The files are re-read without a restart when they change (a renewed certificate, a
/// Kubernetes Secret update): see [`ReloadingCert`].
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    ReloadingCert::load(cert, key, RECHECK_EVERY)?.server_config()
}

/// How often, at most, a TLS handshake looks at the certificate files' metadata.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// What identifies a version of a file without reading it: modification time, length and, on
/// Unix, the inode (a Kubernetes Secret update swaps a symlink to new files).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<std::time::SystemTime>, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some(Stamp(m.modified().ok(), m.len(), ino))
}

/// The serving certificate and key, re-read when their files change: on a TLS handshake, at
/// most once per `recheck` (so no connection waits on more than two `stat` calls), the files'
/// metadata is compared with what was loaded; if it differs they are read and parsed again.
/// A half-written or invalid pair is logged and ignored: the current certificate stays in use
/// until a valid pair is in place.
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    recheck: Duration,
    current: std::sync::RwLock<(
        Arc<rustls::sign::CertifiedKey>,
        Option<Stamp>,
        Option<Stamp>,
    )>,
    last_check: std::sync::Mutex<std::time::Instant>,
}

impl std::fmt::Debug for ReloadingCert {
    // Written by hand: only the paths, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the pair; fails (naming the file) if it is missing or invalid.
    pub fn load(cert: &Path, key: &Path, recheck: Duration) -> Result<Arc<Self>, Error> {
        let stamps = (stamp(cert), stamp(key));
        let certified = certified_key(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            recheck,
            current: std::sync::RwLock::new((certified, stamps.0, stamps.1)),
            last_check: std::sync::Mutex::new(std::time::Instant::now()),
        }))
    }

    /// A server configuration whose certificate comes from `self`.
    pub fn server_config(self: Arc<Self>) -> Result<Arc<rustls::ServerConfig>, Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| Error::Config {
                cert: self.cert.clone(),
                key: self.key.clone(),
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(self);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Re-reads the files if their metadata changed; `Ok(true)` if a new pair is in use. On
    /// error the current pair stays in use.
    pub fn reload(&self) -> Result<bool, Error> {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        {
            let current = self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.1 == stamps.0 && current.2 == stamps.1 {
                return Ok(false);
            }
        }
        let certified = certified_key(&self.cert, &self.key)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (certified, stamps.0, stamps.1);
        Ok(true)
    }

    fn recheck_if_due(&self) {
        {
            let mut last = self
                .last_check
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.elapsed() < self.recheck {
                return;
            }
            *last = std::time::Instant::now();
        }
        match self.reload() {
            Ok(true) => tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "TLS certificate files changed but cannot be loaded; keeping the current certificate"
            ),
        }
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.recheck_if_due();
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0,
        ))
    }
}

/// Reads and parses a certificate chain and its private key, checking that they belong
/// together.
fn certified_key(cert: &Path, key: &Path) -> Result<Arc<rustls::sign::CertifiedKey>, Error> {
    let cert_pem = read("TLS certificate", cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::InvalidPem {
            what: "TLS certificate",
            path: cert.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(Error::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let key_pem = read("TLS private key", key)?;
    let private_key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(private_key) => private_key,
        Err(pem::Error::NoItemsFound) => {
            return Err(Error::NoPrivateKey {
                path: key.to_owned(),
            })
        }
        Err(source) => {
            return Err(Error::InvalidPem {
                what: "TLS private key",
                path: key.to_owned(),
                source,
            })
        }
    };
    // Also checks that the key belongs to the certificate.
    rustls::sign::CertifiedKey::from_der(chain, private_key, &provider())
        .map(Arc::new)
        .map_err(|source| Error::Config {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parse_hosts(hosts: &[String]) -> Result<Vec<Host>, Error> {
    let mut parsed: Vec<Host> = Vec::with_capacity(hosts.len());
    for host in hosts {
        let invalid = || Error::InvalidHost { host: host.clone() };
        let trimmed = host.trim();
        // URL hosts write IPv6 addresses in brackets.
        let bare = trimmed
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(trimmed);
        let name = match bare.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => match ServerName::try_from(bare.to_owned()) {
                Ok(name @ ServerName::DnsName(_)) => name,
                _ => return Err(invalid()),
            },
        };
        if !parsed.iter().any(|h| h.name == name) {
            parsed.push(Host {
                san: bare.to_owned(),
                name,
            });
        }
    }
    if parsed.is_empty() {
        return Err(Error::NoHosts);
    }
    Ok(parsed)
}

fn load_ca(cert_path: &Path, cert_pem: &[u8], key_path: &Path) -> Result<Ca, Error> {
    let cert = CertificateDer::from_pem_slice(cert_pem).map_err(|source| Error::InvalidPem {
        what: "CA certificate",
        path: cert_path.to_owned(),
        source,
    })?;
    let Some(key_pem) = read_optional("CA key", key_path)? else {
        return Err(Error::MissingCaKey {
            path: key_path.to_owned(),
        });
    };
    let invalid_key = |source| Error::InvalidCaKey {
        path: key_path.to_owned(),
        source,
    };
    let key_pem =
        String::from_utf8(key_pem).map_err(|_| invalid_key(rcgen::Error::CouldNotParseKeyPair))?;
    let key = KeyPair::from_pem(&key_pem).map_err(invalid_key)?;
    Ok(Ca { cert, key })
}

fn generate_ca(cert_path: &Path, key_path: &Path, now: OffsetDateTime) -> Result<Ca, Error> {
    let key = KeyPair::generate().map_err(Error::Generate)?;
    let mut params = ca_params();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + CA_VALIDITY;
    let cert = params.self_signed(&key).map_err(Error::Generate)?;
    write(
        key_path,
        key.serialize_pem().as_bytes(),
        private_file::PRIVATE_FILE_MODE,
    )?;
    write(
        cert_path,
        cert.pem().as_bytes(),
        private_file::PUBLIC_FILE_MODE,
    )?;
    tracing::info!(ca = %cert_path.display(), "generated local CA");
    Ok(Ca {
        cert: cert.der().clone(),
        key,
    })
}

/// The parts of the CA certificate that a certificate it signs depends on: its name, its key
/// usages and how its key identifier is derived. rcgen 0.13 (without its `x509-parser` feature)
/// cannot parse `ca.crt`, so re-issuing rebuilds the issuer from these fixed values and the
/// stored key, which yields the same issuer name and authority key identifier.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = name;
    // Path length 0: the CA signs serving certificates, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Issues a serving certificate for `hosts`; returns the certificate and key PEM.
fn issue_leaf(
    ca_key: &KeyPair,
    hosts: &[Host],
    now: OffsetDateTime,
) -> Result<(String, String), Error> {
    let issuer = ca_params().self_signed(ca_key).map_err(Error::Generate)?;
    let key = KeyPair::generate().map_err(Error::Generate)?;
    let sans: Vec<String> = hosts.iter().map(|h| h.san.clone()).collect();
    let mut params = CertificateParams::new(sans).map_err(Error::Generate)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, LEAF_COMMON_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + LEAF_VALIDITY;
    let cert = params
        .signed_by(&key, &issuer, ca_key)
        .map_err(Error::Generate)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Why the generated leaf in `files` cannot be reused, or `None` if it can.
fn leaf_problem(
    files: &TlsFiles,
    verifier: &WebPkiServerVerifier,
    hosts: &[Host],
    now: OffsetDateTime,
) -> Result<Option<String>, Error> {
    let Some(cert_pem) = read_optional("TLS certificate", &files.cert)? else {
        return Ok(Some("no certificate yet".into()));
    };
    let leaf = match CertificateDer::from_pem_slice(&cert_pem) {
        Ok(leaf) => leaf,
        Err(e) => return Ok(Some(format!("certificate is unreadable: {e}"))),
    };
    // Verifying as a client would, 30 days from now, checks in one go that the certificate
    // chains to the CA, names every host, is for servers and does not expire within 30 days.
    if let Err((host, e)) = check_leaf(verifier, &leaf, hosts, now + RENEW_BEFORE) {
        return Ok(Some(format!(
            "certificate will not be valid for {host}: {e}"
        )));
    }
    // Also checks that the key exists and belongs to the certificate.
    if let Err(e) = server_config(&files.cert, &files.key) {
        return Ok(Some(e.to_string()));
    }
    Ok(None)
}

/// Verifies `leaf` for every host at time `at`; on failure, returns the host and the reason.
fn check_leaf(
    verifier: &WebPkiServerVerifier,
    leaf: &CertificateDer<'_>,
    hosts: &[Host],
    at: OffsetDateTime,
) -> Result<(), (String, rustls::Error)> {
    let at = UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
    ));
    for host in hosts {
        verifier
            .verify_server_cert(leaf, &[], &host.name, &[], at)
            .map_err(|e| (host.san.clone(), e))?;
    }
    Ok(())
}

fn verifier(
    ca_path: &Path,
    ca: &CertificateDer<'static>,
) -> Result<Arc<WebPkiServerVerifier>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|source| Error::InvalidCa {
        path: ca_path.to_owned(),
        source,
    })?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|source| Error::Verifier {
            path: ca_path.to_owned(),
            source,
        })
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|source| Error::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Reads a file that may legitimately not exist yet.
fn read_optional(what: &'static str, path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            what,
            path: path.to_owned(),
            source,
        }),
    }
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    private_file::write(path, bytes, mode).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

impl From<Error> for crate::service::state::StartError {
    fn from(e: Error) -> Self {
        Self::Tls(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection};

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|&h| h.to_owned()).collect()
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn generate(dir: &Path, names: &[&str], now: OffsetDateTime) -> TlsFiles {
        ensure_generated_at(dir, &hosts(names), now)
            .unwrap_or_else(|e| panic!("ensure_generated {}: {e}", dir.display()))
    }

    fn read_all(files: &TlsFiles) -> Vec<Vec<u8>> {
        let ca = files.ca.clone().unwrap_or_default();
        let ca_key = ca.with_file_name("ca.key");
        [&files.cert, &files.key, &ca, &ca_key]
            .iter()
            .map(|p| fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
            .collect()
    }

    /// A full TLS handshake over memory between `server` and a client trusting only `ca`.
    fn handshake(
        server: Arc<rustls::ServerConfig>,
        ca: &Path,
        host: &str,
    ) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(&fs::read(ca).unwrap_or_default())
            .unwrap_or_else(|e| panic!("ca pem: {e}"));
        roots.add(ca)?;
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(host.to_owned())
            .unwrap_or_else(|e| panic!("server name {host}: {e}"));
        let mut client = ClientConnection::new(Arc::new(client), name)?;
        let mut server = ServerConnection::new(server)?;
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                assert_eq!(client.alpn_protocol(), Some(&b"http/1.1"[..]));
                return Ok(());
            }
            let mut buf = Vec::new();
            while client.wants_write() {
                client
                    .write_tls(&mut buf)
                    .unwrap_or_else(|e| panic!("write_tls: {e}"));
            }
            server
                .read_tls(&mut buf.as_slice())
                .unwrap_or_else(|e| panic!("read_tls: {e}"));
            server.process_new_packets()?;
            let mut buf = Vec::new();
            while server.wants_write() {
                server
                    .write_tls(&mut buf)
                    .unwrap_or_else(|e| panic!("write_tls: {e}"));
            }
            client
                .read_tls(&mut buf.as_slice())
                .unwrap_or_else(|e| panic!("read_tls: {e}"));
            client.process_new_packets()?;
        }
        panic!("handshake with {host} did not finish")
    }

    fn config(files: &TlsFiles) -> Arc<rustls::ServerConfig> {
        server_config(&files.cert, &files.key).unwrap_or_else(|e| panic!("server_config: {e}"))
    }

    #[test]
    fn generates_once_then_reuses_the_same_files() {
        let tmp = tempdir();
        let dir = tmp.path().join("tls");
        let first = ensure_generated(&dir, &hosts(&["localhost", "127.0.0.1", "[::1]"]))
            .unwrap_or_else(|e| panic!("ensure_generated: {e}"));
        assert_eq!(first.cert, dir.join("tls.crt"));
        assert_eq!(first.key, dir.join("tls.key"));
        assert_eq!(first.ca, Some(dir.join("ca.crt")));
        let second = ensure_generated(&dir, &hosts(&["localhost", "127.0.0.1", "::1"]))
            .unwrap_or_else(|e| panic!("ensure_generated: {e}"));
        assert_eq!(read_all(&first), read_all(&second));
        // A subset of the hosts is covered too.
        let third = ensure_generated(&dir, &hosts(&["127.0.0.1"]))
            .unwrap_or_else(|e| panic!("ensure_generated: {e}"));
        assert_eq!(read_all(&first), read_all(&third));
    }

    #[test]
    fn the_generated_certificate_verifies_against_the_ca() {
        let tmp = tempdir();
        let files = generate(
            tmp.path(),
            &["localhost", "127.0.0.1", "::1"],
            OffsetDateTime::now_utc(),
        );
        let ca = files.ca.clone().unwrap_or_default();
        for host in ["localhost", "127.0.0.1", "::1"] {
            handshake(config(&files), &ca, host)
                .unwrap_or_else(|e| panic!("handshake {host}: {e}"));
        }
        let err = handshake(config(&files), &ca, "example.com").err();
        assert!(
            matches!(err, Some(rustls::Error::InvalidCertificate(_))),
            "{err:?}"
        );
    }

    #[test]
    fn new_hosts_or_near_expiry_reissue_the_leaf_from_the_same_ca() {
        let tmp = tempdir();
        let dir = tmp.path();
        let now = OffsetDateTime::now_utc();
        let first = read_all(&generate(dir, &["localhost"], now));

        let files = generate(dir, &["localhost", "issuer.example.test"], now);
        let second = read_all(&files);
        assert_ne!(first[0], second[0], "certificate re-issued");
        assert_ne!(first[1], second[1], "with a new key");
        assert_eq!(first[2..], second[2..], "by the same CA");
        let ca = files.ca.clone().unwrap_or_default();
        handshake(config(&files), &ca, "issuer.example.test")
            .unwrap_or_else(|e| panic!("handshake: {e}"));

        // 29 days before expiry: re-issued. Until then: reused.
        let later = now + LEAF_VALIDITY - RENEW_BEFORE - time::Duration::days(1);
        let hosts = ["localhost", "issuer.example.test"];
        assert_eq!(read_all(&generate(dir, &hosts, later)), second);
        let third = read_all(&generate(dir, &hosts, later + time::Duration::days(2)));
        assert_ne!(third[0], second[0]);
        assert_eq!(third[2..], second[2..]);
    }

    #[test]
    fn a_leaf_that_lost_its_key_is_reissued() {
        let tmp = tempdir();
        let dir = tmp.path();
        let now = OffsetDateTime::now_utc();
        let files = generate(dir, &["localhost"], now);
        let before = read_all(&files);
        // The key of another certificate: the pair no longer matches.
        fs::copy(dir.join("ca.key"), &files.key).unwrap_or_else(|e| panic!("cp: {e}"));
        let err = server_config(&files.cert, &files.key)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&files.key.display().to_string()), "{err}");
        let after = read_all(&generate(dir, &["localhost"], now));
        assert_ne!(before[0], after[0]);
        handshake(config(&files), &dir.join("ca.crt"), "localhost")
            .unwrap_or_else(|e| panic!("handshake: {e}"));
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempdir();
        let dir = tmp.path().join("tls");
        generate(&dir, &["localhost"], OffsetDateTime::now_utc());
        let mode = |name: &str| {
            let metadata =
                fs::metadata(dir.join(name)).unwrap_or_else(|e| panic!("stat {name}: {e}"));
            metadata.permissions().mode() & 0o777
        };
        assert_eq!(mode("."), 0o700);
        assert_eq!(mode("tls.key"), 0o600);
        assert_eq!(mode("ca.key"), 0o600);
        assert_eq!(mode("tls.crt") & 0o600, 0o600);
    }

    #[test]
    fn missing_or_invalid_files_are_errors_naming_them() {
        let tmp = tempdir();
        let files = generate(tmp.path(), &["localhost"], OffsetDateTime::now_utc());
        let missing = tmp.path().join("nope.key");
        let err = server_config(&files.cert, &missing)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&missing.display().to_string()), "{err}");

        let missing = tmp.path().join("nope.crt");
        let err = server_config(&missing, &files.key)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&missing.display().to_string()), "{err}");

        // A certificate file given as the key, and garbage as the certificate.
        let err = server_config(&files.cert, &files.cert).err();
        assert!(
            matches!(&err, Some(Error::NoPrivateKey { path }) if *path == files.cert),
            "{err:?}"
        );
        let garbage = tmp.path().join("garbage.crt");
        fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        let err = server_config(&garbage, &files.key)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&garbage.display().to_string()), "{err}");
        fs::write(&garbage, "").unwrap_or_else(|e| panic!("write: {e}"));
        let err = server_config(&garbage, &files.key).err();
        assert!(matches!(&err, Some(Error::NoCertificate { .. })), "{err:?}");
    }

    #[test]
    fn changed_certificate_files_are_served_without_a_restart() {
        let tmp = tempdir();
        let a = generate(
            &tmp.path().join("a"),
            &["localhost"],
            OffsetDateTime::now_utc(),
        );
        let b = generate(
            &tmp.path().join("b"),
            &["localhost"],
            OffsetDateTime::now_utc(),
        );
        let (ca_a, ca_b) = (
            a.ca.clone().unwrap_or_default(),
            b.ca.clone().unwrap_or_default(),
        );
        let live = tmp.path().join("live");
        fs::create_dir_all(&live).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let (cert, key) = (live.join("tls.crt"), live.join("tls.key"));
        let install = |from: &TlsFiles| {
            // As a Secret update or certbot does it: new files renamed into place.
            for (src, dst) in [(&from.cert, &cert), (&from.key, &key)] {
                let tmp_file = dst.with_extension("new");
                fs::copy(src, &tmp_file).unwrap_or_else(|e| panic!("copy: {e}"));
                fs::rename(&tmp_file, dst).unwrap_or_else(|e| panic!("rename: {e}"));
            }
        };
        install(&a);
        // Rechecked on every handshake, so the test needs no waiting.
        let reloading = ReloadingCert::load(&cert, &key, Duration::ZERO)
            .unwrap_or_else(|e| panic!("load: {e}"));
        let server = Arc::clone(&reloading)
            .server_config()
            .unwrap_or_else(|e| panic!("config: {e}"));
        assert!(handshake(Arc::clone(&server), &ca_a, "localhost").is_ok());
        assert!(!reloading.reload().unwrap_or(true), "nothing changed yet");

        install(&b);
        assert!(
            handshake(Arc::clone(&server), &ca_b, "localhost").is_ok(),
            "the handshake after the change serves the new certificate"
        );
        assert!(handshake(Arc::clone(&server), &ca_a, "localhost").is_err());

        // A broken pair (the key of another certificate) is refused; the last good one stays.
        fs::copy(&a.key, &key).unwrap_or_else(|e| panic!("copy: {e}"));
        assert!(matches!(reloading.reload(), Err(Error::Config { .. })));
        assert!(handshake(server, &ca_b, "localhost").is_ok());
    }

    #[test]
    fn a_ca_without_its_key_is_not_replaced() {
        let tmp = tempdir();
        let dir = tmp.path();
        generate(dir, &["localhost"], OffsetDateTime::now_utc());
        fs::remove_file(dir.join("ca.key")).unwrap_or_else(|e| panic!("rm: {e}"));
        fs::remove_file(dir.join("tls.crt")).unwrap_or_else(|e| panic!("rm: {e}"));
        let err = ensure_generated(dir, &hosts(&["localhost"])).err();
        assert!(
            matches!(&err, Some(Error::MissingCaKey { path }) if *path == dir.join("ca.key")),
            "{err:?}"
        );
    }

    #[test]
    fn hosts_must_be_names_or_addresses() {
        let tmp = tempdir();
        for bad in [&[][..], &["*.example.com"], &["not a host"], &[""]] {
            assert!(
                ensure_generated(tmp.path(), &hosts(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
