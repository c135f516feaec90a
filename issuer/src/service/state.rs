//! The issuer's state, opened once at start and shared (cheaply cloned) by every handler.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::{Config, SigningKeys};
use crate::signing::{KeySource, Signer};
use crate::store::Store;

/// Everything a request handler may touch. Config reaches handlers only through here.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    store: Store,
    signer: Signer,
    sealer: Arc<crate::secrets::seal::Sealer>,
    clock: SharedClock,
    dummy_password_hash: String,
    metrics: crate::telemetry::metrics::Metrics,
    upstreams: crate::upstream::Upstreams,
    trusted_issuers: crate::upstream::trusted::TrustedIssuers,
    reconcile_wakeup: crate::kube::reconcile::Wakeup,
    review_caches: crate::service::review::caches::Caches,
    health: crate::telemetry::health::Health,
}

/// Why the issuer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be created or used.
    #[error("data directory {}: {problem}", path.display())]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What is wrong and what to do, in words.
        problem: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database failed to open or migrate.
    #[error("cannot open the database")]
    Store(#[from] crate::store::Error),
    /// The signing keys could not be loaded or created.
    #[error("cannot load signing keys")]
    Signing(#[from] crate::signing::Error),
    /// TLS material could not be loaded or generated.
    #[error("cannot set up TLS")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The encryption key for secrets at rest could not be loaded or created.
    #[error("cannot load the encryption key")]
    Seal(#[from] crate::secrets::seal::SealError),
    /// Hashing setup failed.
    #[error("cannot initialise password hashing")]
    Password(#[from] crate::secrets::password::Error),
    /// The listener could not be used.
    #[error("cannot use the listening socket")]
    Listener(#[source] std::io::Error),
    /// An upstream provider's client could not be built (its CA file).
    #[error("cannot set up an upstream identity provider")]
    Upstream(#[from] crate::upstream::Error),
    /// The runtime could not be built.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl AppState {
    /// Opens the database (applying migrations) and the signing keys (under `config.data_dir`
    /// or in the database, as `[signing] keys` says).
    pub async fn open(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        create_private_dir(&config.data_dir)?;
        let store = Store::open(&config.database).await?;
        Self::with_store(config, store, clock).await
    }

    /// As [`AppState::open`], on a database already open (tests choose theirs).
    pub async fn with_store(
        config: Config,
        store: Store,
        clock: SharedClock,
    ) -> Result<Self, StartError> {
        create_private_dir(&config.data_dir)?;
        let sealer = Arc::new(config.sealer(true)?);
        let source = key_source(&config, &store, &sealer);
        let signer = Signer::open_source(source, clock.now()).await?;
        let upstreams = crate::upstream::Upstreams::new(&config.upstreams)?;
        let trusted_issuers =
            crate::upstream::trusted::TrustedIssuers::new(&config.workload_issuers)?;
        let dummy_password_hash = tokio::task::spawn_blocking(crate::secrets::password::dummy_hash)
            .await
            .map_err(|e| crate::secrets::password::Error::from_join(&e))??;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                signer,
                sealer,
                clock,
                dummy_password_hash,
                metrics: crate::telemetry::metrics::Metrics::default(),
                upstreams,
                trusted_issuers,
                reconcile_wakeup: crate::kube::reconcile::Wakeup::default(),
                review_caches: crate::service::review::caches::Caches::default(),
                health: crate::telemetry::health::Health::default(),
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The database's health as last seen (see [`crate::telemetry::health`]).
    #[must_use]
    pub fn health(&self) -> &crate::telemetry::health::Health {
        &self.inner.health
    }

    /// The signing keys.
    #[must_use]
    pub fn signer(&self) -> &Signer {
        &self.inner.signer
    }

    /// Encryption of secrets kept at rest (upstream refresh tokens, TOTP seeds).
    #[must_use]
    pub fn sealer(&self) -> &crate::secrets::seal::Sealer {
        &self.inner.sealer
    }

    /// The clock.
    #[must_use]
    pub fn now(&self) -> time::OffsetDateTime {
        self.inner.clock.now()
    }

    /// The upstream OpenID Connect providers.
    #[must_use]
    pub fn upstreams(&self) -> &crate::upstream::Upstreams {
        &self.inner.upstreams
    }

    /// The keys of the issuers `[[workloads]]` trust.
    #[must_use]
    pub fn trusted_issuers(&self) -> &crate::upstream::trusted::TrustedIssuers {
        &self.inner.trusted_issuers
    }

    /// The counters behind `/metrics`.
    #[must_use]
    pub fn metrics(&self) -> &crate::telemetry::metrics::Metrics {
        &self.inner.metrics
    }

    /// Wakes the grant reconciler; call after changing grants in this process.
    #[must_use]
    pub fn reconcile_wakeup(&self) -> &crate::kube::reconcile::Wakeup {
        &self.inner.reconcile_wakeup
    }

    /// The token-review webhook's caches (verified tokens, session states).
    #[must_use]
    pub fn review_caches(&self) -> &crate::service::review::caches::Caches {
        &self.inner.review_caches
    }

    /// A password hash to verify against when an account does not exist.
    #[must_use]
    pub fn dummy_password_hash(&self) -> &str {
        &self.inner.dummy_password_hash
    }
}

/// Where the signing keys are, as configured: the keys directory, or the database with the
/// encryption key (which configuration guarantees was given explicitly).
#[must_use]
pub fn key_source(
    config: &Config,
    store: &Store,
    sealer: &Arc<crate::secrets::seal::Sealer>,
) -> KeySource {
    match config.signing_keys_source() {
        SigningKeys::Directory => KeySource::Directory(config.keys_dir()),
        SigningKeys::Database => KeySource::Database {
            store: store.clone(),
            sealer: Arc::clone(sealer),
        },
    }
}

/// Creates `path` (and parents) readable only by the issuer's user, and checks that the issuer
/// can write there (its database, keys and TLS material live in it), naming the problem: a
/// read-only file system, a directory owned by someone else, no permission.
pub fn create_private_dir(path: &std::path::Path) -> Result<(), StartError> {
    use std::io::ErrorKind;
    let fail = |problem, source| StartError::DataDir {
        path: path.to_owned(),
        problem,
        source,
    };
    let words = |e: &std::io::Error, doing: &'static str| -> &'static str {
        match (e.kind(), doing) {
            (ErrorKind::ReadOnlyFilesystem, _) => {
                "it is on a read-only file system; the issuer writes its database, keys and TLS \
                 material there: mount it read-write, or choose another --data-dir"
            }
            (ErrorKind::PermissionDenied, "create") => {
                "cannot create it: permission denied (create it for the issuer's user, or choose \
                 another --data-dir)"
            }
            (ErrorKind::PermissionDenied, "restrict") => {
                "cannot restrict it to mode 0700: it belongs to another user (chown it to the \
                 issuer's user)"
            }
            (ErrorKind::PermissionDenied, _) => {
                "the issuer's user cannot write in it (check its owner and mode)"
            }
            (ErrorKind::StorageFull, _) => "its disk is full",
            (_, "create") => "cannot create it",
            _ => "cannot write in it",
        }
    };
    std::fs::create_dir_all(path).map_err(|e| fail(words(&e, "create"), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(words(&e, "restrict"), e))?;
    }
    // A directory can be ours and mode 0700 and still refuse writes (a read-only mount that
    // allowed the chmod of an already-0700 directory, an immutable flag): try.
    // A name of its own: the server and an admin command next to it check the same directory
    // at the same moment.
    let probe = path.join(format!(
        ".write-check-{}-{}",
        std::process::id(),
        crate::secrets::secret::hex(&crate::secrets::secret::random_bytes(6))
    ));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| fail(words(&e, "write"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk_full_tests::SmallDisk;

    /// A data directory on a read-only mount (a `ConfigMap` volume, a read-only root file system)
    /// is reported as read-only, whether it exists or would have to be created, with the path.
    /// Processes checking the same directory at once (a server and admin commands) do not
    /// trip over each other's check.
    #[test]
    fn concurrent_checks_of_one_directory_all_pass() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("data");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| s.spawn(|| (0..20).try_for_each(|_| create_private_dir(&path))))
                .collect();
            for h in handles {
                if let Err(e) = h.join().unwrap_or_else(|_| panic!("a check panicked")) {
                    panic!("a concurrent check failed: {e}");
                }
            }
        });
        let left: Vec<_> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .collect();
        assert!(left.is_empty(), "probe files left behind: {left:?}");
    }

    #[test]
    fn a_read_only_data_directory_says_so() {
        let disk = SmallDisk::mount_with("size=1m,mode=0700,ro");
        for dir in [disk.path().to_owned(), disk.path().join("data")] {
            let err = create_private_dir(&dir)
                .err()
                .unwrap_or_else(|| panic!("{}: a read-only directory was accepted", dir.display()));
            let text = err.to_string();
            assert!(text.contains("read-only file system"), "{text}");
            assert!(text.contains(&dir.display().to_string()), "{text}");
            assert!(!text.contains("cannot create"), "{text}");
        }
    }
}
