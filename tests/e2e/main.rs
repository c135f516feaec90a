//! End-to-end tests: a person logs in with `kubectl-credential` through the issuer's pages, and a
//! real kube-apiserver accepts (or forbids) what kubectl then does with the issued tokens.
//!
//! One test binary with one module per story, sharing one [`world::World`] (issuer + control
//! plane): the API server's OIDC issuer is fixed at its start, and starting it costs seconds.
//! Tests run in parallel threads, so each creates its own uniquely named people and machines.
//! Run everything with `bash tests/run.sh`; it installs and builds what these tests need.

mod world;

mod api_server_keys;
mod audit;
mod audit_reports;
mod backoff;
mod browser;
mod cache_permissions;
mod concurrency;
mod corrupt_cache;
mod ctrl_c;
mod database_down;
mod denial;
mod device_flow;
mod device_phishing;
mod disabled_user;
mod disk_full;
mod exec_versions;
mod grants;
mod idp_faults;
mod install_files;
mod invitation;
mod issuer_log;
mod journeys_cli;
mod key_rotation;
mod keyring;
mod keyring_large_token;
mod keyring_locked;
mod logout;
mod logout_one_cluster;
mod machines;
mod pages;
mod procs;
mod proxy;
mod refresh;
mod refresh_reuse;
mod replicas;
mod requests;
mod retry_after_401;
mod screenshots;
mod setup;
mod switch_user;
mod terminal_escapes;
mod upstream;
mod webhook;
