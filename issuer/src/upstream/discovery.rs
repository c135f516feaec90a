//! Provider metadata (OpenID Connect Discovery 1.0) and its signing keys, cached per provider.
//!
//! Discovery and the JWKS are fetched on first use and kept for an hour. An ID token signed with
//! a key id the cache does not know, or whose signature does not verify with the cached key of
//! its key id (a provider that rotated its key but kept the key id), makes the provider's JWKS
//! be fetched again, at most once per [`JWKS_REFETCH_EVERY`], so bad tokens cannot make the
//! issuer hammer the provider. The fetch that comes with the metadata does not count: the
//! first bad signature after it refetches at once.

use std::sync::{Arc, Mutex};

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use super::client::{Client, Req};
use super::Error;
use crate::signing::jws::Jwks;
use crate::upstream::settings::UpstreamConfig;

/// How long discovery and keys are trusted without asking again.
pub const METADATA_TTL: Duration = Duration::hours(1);
/// Least time between two JWKS fetches caused by a token that did not verify.
pub const JWKS_REFETCH_EVERY: Duration = Duration::seconds(30);

/// What the issuer uses from a provider's metadata.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// `issuer`, equal to the configured issuer URL.
    pub issuer: String,
    /// Where browsers are sent.
    pub authorization_endpoint: String,
    /// Code exchange and refresh.
    pub token_endpoint: String,
    /// Userinfo, when offered.
    pub userinfo_endpoint: Option<String>,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// The signing keys.
    pub jwks: Arc<Jwks>,
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
}

/// The per-provider cache.
#[derive(Debug, Default)]
pub struct Cache {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    metadata: Option<(Metadata, OffsetDateTime)>,
    last_jwks_refetch: Option<OffsetDateTime>,
}

impl Cache {
    fn fresh(&self, now: OffsetDateTime) -> Option<Metadata> {
        let state = self.inner.lock().ok()?;
        state
            .metadata
            .as_ref()
            .filter(|(_, at)| now - *at < METADATA_TTL && *at <= now)
            .map(|(m, _)| m.clone())
    }

    fn store(&self, m: Metadata, now: OffsetDateTime) {
        if let Ok(mut state) = self.inner.lock() {
            state.metadata = Some((m, now));
        }
    }

    /// Whether a token that did not verify may trigger a fetch now; records the fetch if so.
    pub fn may_refetch_jwks(&self, now: OffsetDateTime) -> bool {
        let Ok(mut state) = self.inner.lock() else {
            return false;
        };
        may_refetch(&mut state.last_jwks_refetch, now)
    }

    fn replace_jwks(&self, jwks: Arc<Jwks>) {
        if let Ok(mut state) = self.inner.lock() {
            if let Some((m, _)) = state.metadata.as_mut() {
                m.jwks = jwks;
            }
        }
    }
}

/// Whether a key fetch caused by a token that did not verify may happen now, given the last
/// one (`last`, updated when it may): at most one per [`JWKS_REFETCH_EVERY`]; a clock that went
/// back allows one. Shared by the upstream providers and the trusted workload issuers.
pub(super) fn may_refetch(last: &mut Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    let allowed = last.is_none_or(|at| now - at >= JWKS_REFETCH_EVERY || at > now);
    if allowed {
        *last = Some(now);
    }
    allowed
}

fn invalid(cfg: &UpstreamConfig, detail: impl Into<String>) -> Error {
    Error::Invalid {
        provider: cfg.id.clone(),
        detail: detail.into(),
    }
}

async fn get_json<T: for<'de> Deserialize<'de>>(
    client: &Client,
    cfg: &UpstreamConfig,
    url: &str,
    what: &str,
) -> Result<T, Error> {
    let resp = client
        .send(Req::Get {
            url: url.to_owned(),
            bearer: None,
        })
        .await?;
    if resp.status != 200 {
        return Err(Error::Status {
            provider: cfg.id.clone(),
            status: resp.status,
        });
    }
    serde_json::from_str(&resp.body).map_err(|e| invalid(cfg, format!("{what}: {e}")))
}

fn check_endpoint(cfg: &UpstreamConfig, name: &str, value: &str) -> Result<(), Error> {
    match url::Url::parse(value) {
        Ok(u) if super::is_allowed_url(&u) => Ok(()),
        _ => Err(invalid(cfg, format!("{name} is not an https URL"))),
    }
}

/// The provider's metadata, from the cache or fetched.
pub(super) async fn metadata(
    client: &Client,
    cfg: &UpstreamConfig,
    cache: &Cache,
    now: OffsetDateTime,
) -> Result<Metadata, Error> {
    if let Some(m) = cache.fresh(now) {
        return Ok(m);
    }
    let base = cfg.issuer_url.as_str().trim_end_matches('/');
    let url = format!("{base}/.well-known/openid-configuration");
    let doc: Document = get_json(client, cfg, &url, "discovery document").await?;
    // OpenID Connect Discovery section 4.3: the issuer must be exactly the one configured, which
    // is also what stops a provider from speaking for another (mix-up).
    if doc.issuer.trim_end_matches('/') != base {
        return Err(invalid(cfg, "the discovery document names another issuer"));
    }
    check_endpoint(cfg, "authorization_endpoint", &doc.authorization_endpoint)?;
    check_endpoint(cfg, "token_endpoint", &doc.token_endpoint)?;
    check_endpoint(cfg, "jwks_uri", &doc.jwks_uri)?;
    if let Some(u) = &doc.userinfo_endpoint {
        check_endpoint(cfg, "userinfo_endpoint", u)?;
    }
    let jwks = fetch_jwks(client, cfg, &doc.jwks_uri).await?;
    let m = Metadata {
        issuer: doc.issuer,
        authorization_endpoint: doc.authorization_endpoint,
        token_endpoint: doc.token_endpoint,
        userinfo_endpoint: doc.userinfo_endpoint,
        jwks_uri: doc.jwks_uri,
        jwks: Arc::new(jwks),
    };
    cache.store(m.clone(), now);
    Ok(m)
}

async fn fetch_jwks(client: &Client, cfg: &UpstreamConfig, url: &str) -> Result<Jwks, Error> {
    let value: serde_json::Value = get_json(client, cfg, url, "JWKS").await?;
    Ok(Jwks::from_json(&value))
}

/// Fetches the JWKS again after a token that did not verify, unless that happened too recently (then
/// the cached keys are returned and the token fails as signed by an unknown key).
pub(super) async fn refresh_jwks(
    client: &Client,
    cfg: &UpstreamConfig,
    cache: &Cache,
    now: OffsetDateTime,
) -> Result<Arc<Jwks>, Error> {
    let current = metadata(client, cfg, cache, now).await?;
    if !cache.may_refetch_jwks(now) {
        return Ok(current.jwks);
    }
    let jwks = Arc::new(fetch_jwks(client, cfg, &current.jwks_uri).await?);
    cache.replace_jwks(Arc::clone(&jwks));
    Ok(jwks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn unknown_kid_refetches_are_rate_limited() {
        let cache = Cache::default();
        let t0 = datetime!(2026-01-01 12:00 UTC);
        assert!(cache.may_refetch_jwks(t0));
        assert!(!cache.may_refetch_jwks(t0 + Duration::seconds(5)));
        assert!(cache.may_refetch_jwks(t0 + JWKS_REFETCH_EVERY));
    }

    /// The fetch that comes with the metadata does not count against the limit: a key rotated
    /// (under the same key id) just after it is picked up by the first token that fails.
    #[test]
    fn the_first_failure_after_loading_the_metadata_refetches() {
        let cache = Cache::default();
        let t0 = datetime!(2026-01-01 12:00 UTC);
        let m = Metadata {
            issuer: "https://idp".into(),
            authorization_endpoint: "https://idp/a".into(),
            token_endpoint: "https://idp/t".into(),
            userinfo_endpoint: None,
            jwks_uri: "https://idp/k".into(),
            jwks: Arc::new(Jwks::default()),
        };
        cache.store(m, t0);
        assert!(cache.may_refetch_jwks(t0 + Duration::seconds(1)));
        assert!(!cache.may_refetch_jwks(t0 + Duration::seconds(2)));
    }
}
