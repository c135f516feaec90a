//! The signing keys of the issuers trusted for workload identity (`[[workloads]] issuer`: GitHub
//! Actions, GitLab, another cluster's service-account issuer): found through discovery (only
//! `issuer` and `jwks_uri` are needed; those issuers offer no login) or at a configured
//! `jwks_url`, fetched over TLS (plain http on loopback only), cached for an hour, and fetched
//! again on a key id the cache does not know or a signature that does not verify, at most once
//! per [`super::discovery::JWKS_REFETCH_EVERY`] per issuer, so forged tokens cannot make the issuer hammer them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use super::client::{Client, Req};
#[cfg(test)]
use super::discovery::JWKS_REFETCH_EVERY;
use super::discovery::METADATA_TTL;
use super::Error;
use crate::signing::jws::Jwks;

/// Where the keys of one trusted issuer come from, as configuration validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The `iss`, exactly as tokens carry it.
    pub issuer: String,
    /// Fetch the JWKS here instead of through discovery.
    pub jwks_url: Option<Url>,
    /// PEM CA bundle for the issuer's TLS instead of the web roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Cached {
    jwks: Option<(Arc<Jwks>, OffsetDateTime)>,
    jwks_uri: Option<String>,
    last_refetch: Option<OffsetDateTime>,
}

#[derive(Debug)]
struct One {
    config: TrustedIssuer,
    client: Client,
    cache: Mutex<Cached>,
}

/// Every trusted issuer, by `iss`. Built once at start; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TrustedIssuers {
    by_issuer: Arc<HashMap<String, Arc<One>>>,
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    jwks_uri: String,
}

impl TrustedIssuers {
    /// Builds the clients (reading each `ca_file`).
    pub fn new(configs: &[TrustedIssuer]) -> Result<Self, Error> {
        let mut by_issuer = HashMap::new();
        for c in configs {
            let client = Client::new(&c.issuer, c.ca_file.as_deref())?;
            by_issuer.insert(
                c.issuer.clone(),
                Arc::new(One {
                    config: c.clone(),
                    client,
                    cache: Mutex::new(Cached::default()),
                }),
            );
        }
        Ok(Self {
            by_issuer: Arc::new(by_issuer),
        })
    }

    /// Whether `iss` is trusted at all.
    #[must_use]
    pub fn knows(&self, iss: &str) -> bool {
        self.by_issuer.contains_key(iss)
    }

    /// The issuer's keys, from the cache (an hour) or fetched.
    pub async fn keys(&self, iss: &str, now: OffsetDateTime) -> Result<Arc<Jwks>, Error> {
        let one = self.one(iss)?;
        if let Some(k) = one.fresh(now) {
            return Ok(k);
        }
        one.fetch(now).await
    }

    /// The issuer's keys fetched again after a token that did not verify with the cached ones,
    /// unless that happened less than [`super::discovery::JWKS_REFETCH_EVERY`] ago (then the cached keys, and the
    /// token fails as signed by an unknown key).
    pub async fn refetch(&self, iss: &str, now: OffsetDateTime) -> Result<Arc<Jwks>, Error> {
        let one = self.one(iss)?;
        let allowed = {
            let mut c = one.cache.lock().map_err(|_| poisoned(iss))?;
            super::discovery::may_refetch(&mut c.last_refetch, now)
        };
        if allowed {
            one.fetch(now).await
        } else {
            self.keys(iss, now).await
        }
    }

    fn one(&self, iss: &str) -> Result<&Arc<One>, Error> {
        self.by_issuer.get(iss).ok_or_else(|| Error::Invalid {
            provider: iss.chars().take(64).collect(),
            detail: "not a trusted workload issuer".into(),
        })
    }
}

fn poisoned(iss: &str) -> Error {
    Error::Invalid {
        provider: iss.to_owned(),
        detail: "key cache poisoned".into(),
    }
}

impl One {
    fn fresh(&self, now: OffsetDateTime) -> Option<Arc<Jwks>> {
        let c = self.cache.lock().ok()?;
        c.jwks
            .as_ref()
            .filter(|(_, at)| now - *at < METADATA_TTL && *at <= now)
            .map(|(k, _)| Arc::clone(k))
    }

    fn invalid(&self, detail: impl Into<String>) -> Error {
        Error::Invalid {
            provider: self.config.issuer.clone(),
            detail: detail.into(),
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, Error> {
        let resp = self
            .client
            .send(Req::Get {
                url: url.to_owned(),
                bearer: None,
            })
            .await?;
        if resp.status != 200 {
            return Err(Error::Status {
                provider: self.config.issuer.clone(),
                status: resp.status,
            });
        }
        serde_json::from_str(&resp.body).map_err(|e| self.invalid(format!("{what}: {e}")))
    }

    async fn jwks_uri(&self) -> Result<String, Error> {
        if let Some(u) = &self.config.jwks_url {
            return Ok(u.as_str().to_owned());
        }
        if let Some(u) = self.cache.lock().ok().and_then(|c| c.jwks_uri.clone()) {
            return Ok(u);
        }
        let base = self.config.issuer.trim_end_matches('/');
        let doc: Document = self
            .get_json(
                &format!("{base}/.well-known/openid-configuration"),
                "discovery document",
            )
            .await?;
        // Discovery section 4.3: the document must name the issuer it was fetched for.
        if doc.issuer.trim_end_matches('/') != base {
            return Err(self.invalid("the discovery document names another issuer"));
        }
        match Url::parse(&doc.jwks_uri) {
            Ok(u) if super::is_allowed_url(&u) => {}
            _ => return Err(self.invalid("jwks_uri is not an https URL")),
        }
        if let Ok(mut c) = self.cache.lock() {
            c.jwks_uri = Some(doc.jwks_uri.clone());
        }
        Ok(doc.jwks_uri)
    }

    async fn fetch(&self, now: OffsetDateTime) -> Result<Arc<Jwks>, Error> {
        let uri = self.jwks_uri().await?;
        let value: serde_json::Value = self.get_json(&uri, "JWKS").await?;
        let jwks = Arc::new(Jwks::from_json(&value));
        if let Ok(mut c) = self.cache.lock() {
            c.jwks = Some((Arc::clone(&jwks), now));
        }
        Ok(jwks)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn refetches_are_rate_limited_per_issuer() {
        // Nothing listens on port 9 of loopback: every fetch fails, which is what shows
        // whether a fetch was attempted (an error) or the limit answered from the cache.
        let t = TrustedIssuers::new(&[TrustedIssuer {
            issuer: "http://127.0.0.1:9".into(),
            jwks_url: Some(Url::parse("http://127.0.0.1:9/keys").unwrap()),
            ca_file: None,
        }])
        .unwrap();
        let t0 = datetime!(2026-01-01 12:00 UTC);
        assert!(t.refetch("http://127.0.0.1:9", t0).await.is_err());
        // Within the limit the cached keys would be used: here none, so `keys` fetches (and
        // fails); what matters is that the limit was recorded once.
        let one = t.one("http://127.0.0.1:9").unwrap();
        assert_eq!(one.cache.lock().unwrap().last_refetch, Some(t0));
        let _ = t
            .refetch("http://127.0.0.1:9", t0 + time::Duration::seconds(5))
            .await;
        assert_eq!(one.cache.lock().unwrap().last_refetch, Some(t0));
        let _ = t
            .refetch("http://127.0.0.1:9", t0 + JWKS_REFETCH_EVERY)
            .await;
        assert_eq!(
            one.cache.lock().unwrap().last_refetch,
            Some(t0 + JWKS_REFETCH_EVERY)
        );
        assert!(!t.knows("https://gitlab.com"));
        assert!(t.keys("https://gitlab.com", t0).await.is_err());
    }
}
