//! The token endpoint (code exchange and refresh, with `client_secret_basic` or `_post`), the
//! userinfo endpoint, and turning validated claims into the person the issuer knows.

use serde::Deserialize;

use super::client::{Client, Req};
use super::discovery::Metadata;
use super::id_token::Claims;
use super::Error;
use crate::domain::names::{validate_group, validate_username};
use crate::secrets::secret::Secret;
use crate::upstream::settings::{ClientAuth, UpstreamConfig};

/// Tokens from the provider. No `Debug` derive: every field is secret.
pub struct Tokens {
    /// For userinfo.
    pub access_token: Secret,
    /// The ID token (always sent on a code exchange; usually on refresh).
    pub id_token: Option<Secret>,
    /// The provider's refresh token, when it issues one (`offline_access`).
    pub refresh_token: Option<Secret>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("id_token", &self.id_token.is_some())
            .field("refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

pub use crate::domain::identity::Identity;

/// The token endpoint's answer (RFC 6749 section 5.1); the names are the wire's.
#[derive(Deserialize)]
#[expect(
    clippy::struct_field_names,
    reason = "field names are the OAuth wire names"
)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

async fn token_request(
    client: &Client,
    cfg: &UpstreamConfig,
    meta: &Metadata,
    mut fields: Vec<(&'static str, Secret)>,
) -> Result<Tokens, Error> {
    let basic = match cfg.client_auth {
        ClientAuth::Basic => Some((cfg.client_id.clone(), cfg.client_secret.clone())),
        ClientAuth::Post => {
            fields.push(("client_id", Secret::new(cfg.client_id.clone())));
            fields.push(("client_secret", cfg.client_secret.clone()));
            None
        }
    };
    let resp = client
        .send(Req::Form {
            url: meta.token_endpoint.clone(),
            fields,
            basic,
        })
        .await?;
    if resp.status == 200 {
        let body: TokenBody = serde_json::from_str(&resp.body).map_err(|e| Error::Invalid {
            provider: cfg.id.clone(),
            detail: format!("token response: {e}"),
        })?;
        return Ok(Tokens {
            access_token: Secret::new(body.access_token),
            id_token: body.id_token.map(Secret::new),
            refresh_token: body.refresh_token.map(Secret::new),
        });
    }
    match serde_json::from_str::<ErrorBody>(&resp.body) {
        // RFC 6749 section 5.2: an OAuth error is a refusal (5xx bodies are not trusted as one).
        Ok(e) if resp.status < 500 => Err(Error::Refused {
            provider: cfg.id.clone(),
            error: e.error.chars().take(40).collect(),
        }),
        _ => Err(Error::Status {
            provider: cfg.id.clone(),
            status: resp.status,
        }),
    }
}

/// Exchanges an authorization code (with the PKCE verifier).
pub(super) async fn exchange(
    client: &Client,
    cfg: &UpstreamConfig,
    meta: &Metadata,
    code: &Secret,
    verifier: &Secret,
    redirect_uri: &str,
) -> Result<Tokens, Error> {
    token_request(
        client,
        cfg,
        meta,
        vec![
            ("grant_type", Secret::new("authorization_code")),
            ("code", code.clone()),
            ("redirect_uri", Secret::new(redirect_uri)),
            ("code_verifier", verifier.clone()),
        ],
    )
    .await
}

/// `grant_type=refresh_token`.
pub(super) async fn refresh(
    client: &Client,
    cfg: &UpstreamConfig,
    meta: &Metadata,
    refresh_token: &Secret,
) -> Result<Tokens, Error> {
    token_request(
        client,
        cfg,
        meta,
        vec![
            ("grant_type", Secret::new("refresh_token")),
            ("refresh_token", refresh_token.clone()),
        ],
    )
    .await
}

/// The userinfo claims (Core section 5.3).
pub(super) async fn userinfo(
    client: &Client,
    cfg: &UpstreamConfig,
    endpoint: &str,
    access_token: &Secret,
) -> Result<Claims, Error> {
    let resp = client
        .send(Req::Get {
            url: endpoint.to_owned(),
            bearer: Some(access_token.clone()),
        })
        .await?;
    match resp.status {
        200 => serde_json::from_str(&resp.body).map_err(|e| Error::Invalid {
            provider: cfg.id.clone(),
            detail: format!("userinfo: {e}"),
        }),
        401 | 403 => Err(Error::Refused {
            provider: cfg.id.clone(),
            error: "userinfo refused".into(),
        }),
        status => Err(Error::Status {
            provider: cfg.id.clone(),
            status,
        }),
    }
}

/// Reads the person from the ID token's claims (and userinfo, whose `sub` must match).
pub fn identity(
    cfg: &UpstreamConfig,
    claims: &Claims,
    userinfo: Option<&Claims>,
) -> Result<Identity, Error> {
    let invalid = |detail: String| Error::Invalid {
        provider: cfg.id.clone(),
        detail,
    };
    let s = |c: &Claims, f: &str| {
        c.get(f)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let subject = s(claims, "sub").unwrap_or_default();
    if let Some(u) = userinfo {
        if s(u, "sub").as_deref() != Some(subject.as_str()) {
            return Err(invalid("userinfo is about another subject".into()));
        }
    }
    let get = |f: &str| {
        claims
            .get(f)
            .or_else(|| userinfo.and_then(|u| u.get(f)))
            .cloned()
    };
    let username = get(&cfg.username_claim)
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| invalid(format!("no `{}` claim", cfg.username_claim)))?;
    validate_username(&username).map_err(|e| {
        invalid(format!(
            "the `{}` claim is not a usable name: {e}",
            cfg.username_claim
        ))
    })?;
    let email = get("email").and_then(|v| v.as_str().map(str::to_owned));
    let groups = match get(&cfg.groups_claim) {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(serde_json::Value::as_str)
            .filter(|g| validate_group(g).is_ok())
            .map(str::to_owned)
            .collect(),
        Some(serde_json::Value::String(g)) if validate_group(&g).is_ok() => vec![g],
        _ => Vec::new(),
    };
    let mut groups: Vec<String> = groups;
    groups.sort();
    groups.dedup();
    Ok(Identity {
        issuer: s(claims, "iss").unwrap_or_default(),
        subject,
        username,
        email,
        email_verified: get("email_verified").and_then(|v| v.as_bool()),
        groups,
    })
}

/// Whether `identity` may sign in under `cfg.allowed_email_domains`: always when the list is
/// empty, else only with an e-mail in one of the domains that the provider has not marked
/// unverified.
#[must_use]
pub fn email_allowed(cfg: &UpstreamConfig, identity: &Identity) -> bool {
    if cfg.allowed_email_domains.is_empty() {
        return true;
    }
    let Some(email) = identity.email.as_deref() else {
        return false;
    };
    let Some((_, domain)) = email.rsplit_once('@') else {
        return false;
    };
    identity.email_verified != Some(false)
        && cfg
            .allowed_email_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg(domains: &[&str]) -> UpstreamConfig {
        UpstreamConfig {
            id: "corp".into(),
            name: "Corp".into(),
            issuer_url: url::Url::parse("https://idp.example").unwrap(),
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            client_auth: ClientAuth::Basic,
            scopes: vec!["openid".into()],
            username_claim: "email".into(),
            groups_claim: "groups".into(),
            allowed_email_domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            ca_file: None,
            offline_grace: std::time::Duration::from_secs(3600),
        }
    }

    fn claims(v: serde_json::Value) -> Claims {
        match v {
            serde_json::Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn identity_from_id_token_or_userinfo() {
        let c = cfg(&[]);
        let id = claims(serde_json::json!({
            "iss": "https://idp.example", "sub": "s1", "email": "ann@corp.example",
            "groups": ["eng", "system:masters", "bad group", "eng"],
        }));
        let who = identity(&c, &id, None).unwrap();
        assert_eq!(who.username, "ann@corp.example");
        // Unusable names are left out, duplicates removed.
        assert_eq!(who.groups, ["eng"]);
        // Groups from userinfo when the ID token has none; userinfo about someone else is refused.
        let id = claims(serde_json::json!({"iss": "i", "sub": "s1", "email": "ann@corp.example"}));
        let info = claims(serde_json::json!({"sub": "s1", "groups": "ops"}));
        assert_eq!(identity(&c, &id, Some(&info)).unwrap().groups, ["ops"]);
        let other = claims(serde_json::json!({"sub": "s2", "groups": ["ops"]}));
        assert!(identity(&c, &id, Some(&other)).is_err());
        // A username that cannot be a Kubernetes user name is refused.
        let id = claims(serde_json::json!({"iss": "i", "sub": "s1", "email": "system:admin"}));
        assert!(identity(&c, &id, None).is_err());
        let id = claims(serde_json::json!({"iss": "i", "sub": "s1"}));
        assert!(identity(&c, &id, None).is_err());
    }

    #[test]
    fn email_domains() {
        let who = |email: Option<&str>, verified: Option<bool>| Identity {
            issuer: "i".into(),
            subject: "s".into(),
            username: "u".into(),
            email: email.map(str::to_owned),
            email_verified: verified,
            groups: vec![],
        };
        assert!(email_allowed(&cfg(&[]), &who(None, None)));
        let c = cfg(&["corp.example"]);
        assert!(email_allowed(&c, &who(Some("a@CORP.example"), Some(true))));
        assert!(email_allowed(&c, &who(Some("a@corp.example"), None)));
        assert!(!email_allowed(
            &c,
            &who(Some("a@corp.example"), Some(false))
        ));
        assert!(!email_allowed(
            &c,
            &who(Some("a@evilcorp.example"), Some(true))
        ));
        assert!(!email_allowed(
            &c,
            &who(Some("a@corp.example.evil"), Some(true))
        ));
        assert!(!email_allowed(&c, &who(None, None)));
    }
}
