//! What the process tells about itself: log set-up ([`logging`]), the Prometheus metrics
//! ([`metrics`]) and the database's health as last probed ([`health`]). Handlers and
//! background loops write here; `/metrics` and `/readyz` read from here.

mod buckets;
pub mod health;
pub mod logging;
pub mod metrics;
