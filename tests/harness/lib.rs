//! The end-to-end test harness: it starts the real programs the system is made of (etcd and
//! kube-apiserver, the issuer and its impersonating proxy, the plugin, kubectl, a Secret
//! Service, an upstream OpenID provider, a CI platform's OpenID issuer, PostgreSQL), each in its
//! own temporary directory, and stops them again, so that the tests in `tests/e2e/` read like a
//! person's story.
//!
//! Rules every module keeps (see STYLE.md, "Tests"):
//! - A missing program fails the test with the command that installs it; nothing is skipped.
//! - Nothing sleeps to wait for readiness: [`wait::until`] polls a condition with a deadline.
//! - Every program is stopped when its handle drops and, through a [`process::Reaper`], also when
//!   the test process dies without running destructors (a `static` fixture, a killed run).
//! - Failures panic with what was expected, what happened and the program's stderr.

pub mod bins;
pub mod browser;
pub mod chromium;
pub mod ci_issuer;
pub mod control_plane;
pub mod fault_proxy;
pub mod http;
pub mod issuer;
pub mod oidc_provider;
pub mod plugin;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod python_client;
pub mod replicas;
pub mod secret_service;
pub mod small_disk;
pub mod wait;

pub use browser::{Browser, Page};
pub use ci_issuer::{CiIssuer, ForgeKey, Job};
pub use control_plane::{ControlPlane, OidcSettings, WebhookSettings};
pub use fault_proxy::{Fault, FaultProxy};
pub use issuer::{Issuer, IssuerOptions, ProxyOptions};
pub use oidc_provider::OidcProvider;
pub use plugin::{CachedToken, LoginProcess, PluginArgs, TokenCache, UserEnv};
pub use postgres::Postgres;
pub use process::{Background, Outcome};
pub use proxy::{Proxy, ProxyCredential};
pub use secret_service::SecretService;
