//! Cluster tokens for machines: the token exchange of a CI platform's identity token (RFC 8693)
//! against the `[[workloads]]` rules, and the client credentials grant of a registered machine
//! proving its key with a signed assertion (RFC 7523). Both end the same way: an account of
//! the machine's kind, a session as short as the token (so that disabling revokes it, in
//! webhook mode within seconds), the groups and grants, one audit row, an ES256 token.
//!
//! Every refusal names the check that failed; none quotes the presented token or a claim
//! value an attacker chose beyond the names configured here.

use std::sync::Arc;
use std::time::Duration;

use credential_shared::oauth::{
    AccessTokenClaims, OAuthErrorCode as Code, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN,
    TOKEN_TYPE_JWT,
};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::cluster::ClusterConfig;
use crate::domain::tokens;
use crate::domain::workloads::{self, Refusal, MAX_SUBJECT_TOKEN, SKEW_SECS};
use crate::secrets::secret::{hash, random_token};
use crate::service::state::AppState;
use crate::signing::jws::{self, Algorithm, Jwks, PublicKey};
use crate::store::{AuditEvent, Principal, PrincipalKind, Session};

/// Largest client assertion accepted, in bytes.
pub const MAX_ASSERTION: usize = 8 * 1024;
/// Longest lifetime (`exp - iat`) of a machine's client assertion.
pub const MAX_ASSERTION_LIFETIME: i64 = 300;
/// Prefix of a registered machine's account.
pub const MACHINE_PREFIX: &str = "machine:";

/// Why no token: the OAuth error code and a description that names the check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused; the client can change the request.
    #[error("{description}")]
    Refused {
        /// `invalid_grant`, `invalid_target`, `invalid_client` or `invalid_request`.
        code: Code,
        /// What failed.
        description: String,
    },
    /// The workload issuer's keys could not be had: try again later.
    #[error("the keys of the workload issuer could not be fetched: {0}")]
    Keys(#[source] crate::upstream::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// Signing failed.
    #[error(transparent)]
    Signing(#[from] crate::signing::Error),
}

fn refuse(code: Code, description: impl Into<String>) -> Error {
    Error::Refused {
        code,
        description: description.into(),
    }
}

fn grant(description: impl Into<String>) -> Error {
    refuse(Code::InvalidGrant, description)
}

/// A token handed out.
#[derive(Debug)]
pub struct Minted {
    /// The signed JWT.
    pub token: crate::secrets::secret::Secret,
    /// Its claims.
    pub claims: AccessTokenClaims,
    /// The cluster's API server, as configured.
    pub api_server: Option<String>,
}

/// Where a request came from, for the audit row.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// Client address.
    pub addr: &'a str,
    /// Request id.
    pub request_id: &'a str,
}

/// What the token exchange receives.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// `subject_token`.
    pub subject_token: Option<&'a str>,
    /// `subject_token_type`.
    pub subject_token_type: Option<&'a str>,
    /// `requested_token_type`.
    pub requested_token_type: Option<&'a str>,
    /// `audience`.
    pub audience: Option<&'a str>,
    /// `resource`.
    pub resource: Option<&'a str>,
}

/// The cluster a machine grant asks for: `audience` names it (or its audience), `resource` is
/// its audience or its API server URL.
fn target<'a>(
    state: &'a AppState,
    audience: Option<&str>,
    resource: Option<&str>,
) -> Result<&'a ClusterConfig, Error> {
    let cfg = state.config();
    let trim = |s: &str| s.trim_end_matches('/').to_owned();
    let found = match (
        audience.filter(|a| !a.is_empty()),
        resource.filter(|r| !r.is_empty()),
    ) {
        (None, None) => {
            return Err(refuse(
                Code::InvalidRequest,
                "audience (the cluster's name) or resource is required",
            ))
        }
        (Some(a), _) => cfg
            .cluster(a)
            .or_else(|| cfg.clusters.iter().find(|c| c.audience == a)),
        (None, Some(r)) => cfg.clusters.iter().find(|c| {
            // The real API server, or the proxy in front of it (what a kubeconfig written
            // from the cluster list names).
            c.audience == r
                || c.server
                    .as_ref()
                    .is_some_and(|s| trim(s.as_str()) == trim(r))
                || c.published_server().is_some_and(|s| s == trim(r))
        }),
    };
    found.ok_or_else(|| {
        refuse(
            Code::InvalidTarget,
            "unknown cluster (audience or resource)",
        )
    })
}

/// The payload of a compact JWS before its signature is checked: only to learn `iss`, which
/// says whose keys verify it. Nothing read here is trusted.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (_, payload) = (parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

/// Words for a verification failure; `None` for the ones a refetch of the keys may cure.
fn verify_words(e: &jws::Error) -> &'static str {
    match e {
        jws::Error::Algorithm(_) | jws::Error::HeaderNotObject => {
            "the subject token's algorithm is not allowed (RS256 or ES256 only; never none or HMAC)"
        }
        jws::Error::UnknownKey | jws::Error::KeyMismatch => {
            "the subject token is signed with a key its issuer does not publish"
        }
        jws::Error::BadSignature => "the subject token's signature does not verify",
        jws::Error::CriticalHeader => "the subject token has critical header extensions",
        _ => "the subject token is not a well-formed JWT",
    }
}

const ALLOWED: &[Algorithm] = &[Algorithm::Rs256, Algorithm::Es256];

fn verify_with(token: &str, keys: &Jwks) -> Result<Map<String, Value>, jws::Error> {
    jws::verify(token, ALLOWED, |alg, kid| keys.find(alg, kid))
}

/// RFC 8693 token exchange: a CI job's identity token for a token of one cluster.
pub async fn exchange(
    state: &AppState,
    req: Exchange<'_>,
    caller: Caller<'_>,
) -> Result<Minted, Error> {
    let subject = req
        .subject_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| refuse(Code::InvalidRequest, "subject_token is required"))?;
    match req.subject_token_type {
        Some(TOKEN_TYPE_JWT | TOKEN_TYPE_ID_TOKEN) => {}
        None | Some("") => {
            return Err(refuse(
                Code::InvalidRequest,
                "subject_token_type is required",
            ))
        }
        Some(_) => {
            return Err(refuse(
                Code::InvalidRequest,
                "subject_token_type must be urn:ietf:params:oauth:token-type:jwt or :id_token",
            ))
        }
    }
    if let Some(t) = req.requested_token_type.filter(|t| !t.is_empty()) {
        if t != TOKEN_TYPE_JWT && t != TOKEN_TYPE_ACCESS_TOKEN {
            return Err(refuse(
                Code::InvalidRequest,
                "requested_token_type must be urn:ietf:params:oauth:token-type:jwt or :access_token",
            ));
        }
    }
    if subject.len() > MAX_SUBJECT_TOKEN {
        return Err(grant(format!(
            "the subject token is too large (more than {MAX_SUBJECT_TOKEN} bytes)"
        )));
    }
    let cluster = target(state, req.audience, req.resource)?;
    let now = state.now();
    let trusted = state.trusted_issuers();
    let iss = unverified_issuer(subject)
        .ok_or_else(|| grant("the subject token is not a well-formed JWT with an iss claim"))?;
    if !trusted.knows(&iss) {
        return Err(grant(Refusal::UntrustedIssuer.to_string()));
    }
    let keys = trusted.keys(&iss, now).await.map_err(Error::Keys)?;
    let claims = match verify_with(subject, &keys) {
        Ok(c) => c,
        // The issuer may have rotated its keys: fetch them again (rate limited) and try once.
        Err(jws::Error::UnknownKey | jws::Error::KeyMismatch | jws::Error::BadSignature) => {
            let keys: Arc<Jwks> = trusted.refetch(&iss, now).await.map_err(Error::Keys)?;
            verify_with(subject, &keys).map_err(|e| grant(verify_words(&e)))?
        }
        Err(e) => return Err(grant(verify_words(&e))),
    };
    let cfg = state.config();
    let rule = workloads::find(&cfg.workloads, &claims).map_err(|r| grant(r.to_string()))?;
    workloads::check_times(&claims, rule.max_age, now.unix_timestamp())
        .map_err(|r| grant(r.to_string()))?;
    if !rule.clusters.contains(&cluster.name) {
        return Err(refuse(
            Code::InvalidTarget,
            format!(
                "workload {} may not get tokens for cluster {}",
                rule.name, cluster.name
            ),
        ));
    }
    let identity = rule
        .identity
        .render(&claims)
        .map_err(|r| grant(r.to_string()))?;
    let principal = state
        .store()
        .principal(PrincipalKind::Workload, &rule.account(), now)
        .await?;
    if principal.disabled_at.is_some() {
        return Err(grant(format!(
            "workload {} is disabled (credential-issuer workload enable {} turns it on again)",
            rule.name, rule.name
        )));
    }
    if rule.single_use {
        let jti = workloads::claim_text(&claims, "jti").filter(|j| !j.is_empty() && j.len() <= 256);
        let Some(jti) = jti else {
            return Err(grant(format!(
                "the subject token has no jti, and workload {} accepts each token once (single_use)",
                rule.name
            )));
        };
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let until = OffsetDateTime::from_unix_timestamp(exp.saturating_add(SKEW_SECS))
            .unwrap_or(now + time::Duration::hours(1));
        if !state.store().reserve_jti(&iss, &jti, until).await? {
            return Err(grant(
                "the subject token was already used (its jti was seen before): request a new one",
            ));
        }
    }
    let detail = serde_json::json!({
        "workload": rule.name,
        "issuer": iss,
        "claims": workloads::evidence(rule, &claims),
    });
    mint(
        state,
        Mint {
            principal: &principal,
            username: &identity,
            groups: &rule.groups,
            cluster,
            lifetime: rule.token_lifetime,
            event: "exchange",
            detail,
        },
        caller,
        now,
    )
    .await
}

/// What the client credentials grant receives.
#[derive(Debug, Clone, Copy)]
pub struct ClientCredentials<'a> {
    /// `client_id`: the machine's name.
    pub client_id: &'a str,
    /// `client_assertion_type`.
    pub assertion_type: Option<&'a str>,
    /// `client_assertion`.
    pub assertion: Option<&'a str>,
    /// `audience`.
    pub audience: Option<&'a str>,
    /// `resource`.
    pub resource: Option<&'a str>,
}

fn client(description: impl Into<String>) -> Error {
    refuse(Code::InvalidClient, description)
}

/// The client credentials grant for a registered machine that signs an assertion with its
/// key (RFC 7523 section 2.2, `private_key_jwt`).
pub async fn client_credentials(
    state: &AppState,
    req: ClientCredentials<'_>,
    caller: Caller<'_>,
) -> Result<Minted, Error> {
    if req.client_id.is_empty() {
        return Err(refuse(
            Code::InvalidRequest,
            "client_id (the machine's name) is required",
        ));
    }
    if req.assertion_type != Some(credential_shared::oauth::CLIENT_ASSERTION_JWT_BEARER) {
        return Err(refuse(
            Code::InvalidRequest,
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    let assertion = req
        .assertion
        .filter(|a| !a.is_empty())
        .ok_or_else(|| refuse(Code::InvalidRequest, "client_assertion is required"))?;
    if assertion.len() > MAX_ASSERTION {
        return Err(client("the client assertion is too large"));
    }
    let cluster = target(state, req.audience, req.resource)?;
    let now = state.now();
    let username = format!("{MACHINE_PREFIX}{}", req.client_id);
    let Some(machine) = state.store().machine(&username).await? else {
        return Err(client("unknown machine (client_id)"));
    };
    let claims: Map<String, Value> = jws::verify(assertion, &[Algorithm::Es256], |_, _| {
        Ok::<_, jws::Error>(PublicKey::P256(&machine.public_key))
    })
    .map_err(|e| {
        client(match e {
            jws::Error::Algorithm(_) | jws::Error::HeaderNotObject => {
                "the client assertion's algorithm is not allowed (ES256 only)"
            }
            jws::Error::BadSignature | jws::Error::KeyMismatch => {
                "the client assertion's signature does not verify with the machine's registered key"
            }
            _ => "the client assertion is not a well-formed JWT",
        })
    })?;
    let s = |f: &str| claims.get(f).and_then(Value::as_str);
    let n = |f: &str| claims.get(f).and_then(Value::as_i64);
    if s("iss") != Some(req.client_id) || s("sub") != Some(req.client_id) {
        return Err(client(
            "the client assertion's iss and sub must be the machine's name",
        ));
    }
    let issuer = state.config().issuer();
    let endpoint = format!("{issuer}{}", credential_shared::oauth::PATH_TOKEN);
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !auds
        .iter()
        .any(|a| *a == endpoint || a.trim_end_matches('/') == issuer)
    {
        return Err(client(
            "the client assertion's audience must be the issuer's token endpoint",
        ));
    }
    let t = now.unix_timestamp();
    let (Some(exp), Some(iat)) = (n("exp"), n("iat")) else {
        return Err(client("the client assertion needs exp and iat"));
    };
    if exp + SKEW_SECS <= t {
        return Err(client("the client assertion has expired"));
    }
    if iat - SKEW_SECS > t {
        return Err(client("the client assertion is not yet valid"));
    }
    if exp - iat > MAX_ASSERTION_LIFETIME {
        return Err(client(format!(
            "the client assertion lives too long (exp - iat over {MAX_ASSERTION_LIFETIME} s)"
        )));
    }
    let Some(jti) = s("jti").filter(|j| j.len() >= 16 && j.len() <= 256) else {
        return Err(client(
            "the client assertion needs a jti of 16 to 256 characters",
        ));
    };
    let until = OffsetDateTime::from_unix_timestamp(exp.saturating_add(SKEW_SECS))
        .unwrap_or(now + time::Duration::minutes(10));
    if !state.store().reserve_jti(&username, jti, until).await? {
        return Err(client(
            "the client assertion was already used (its jti was seen before)",
        ));
    }
    let p = &machine.principal;
    if p.disabled_at.is_some() {
        return Err(grant(format!("machine {} is disabled", req.client_id)));
    }
    if p.expires_at.is_some_and(|e| now >= e) {
        return Err(grant(format!(
            "machine {}'s end date has passed",
            req.client_id
        )));
    }
    if !machine.clusters.contains(&cluster.name) {
        return Err(refuse(
            Code::InvalidTarget,
            format!(
                "machine {} may not get tokens for cluster {}",
                req.client_id, cluster.name
            ),
        ));
    }
    let detail = serde_json::json!({ "machine": req.client_id });
    mint(
        state,
        Mint {
            principal: p,
            username: &username,
            groups: &machine.groups,
            cluster,
            lifetime: state.config().token_ttl,
            event: "machine.token",
            detail,
        },
        caller,
        now,
    )
    .await
}

struct Mint<'a> {
    principal: &'a Principal,
    username: &'a str,
    groups: &'a [String],
    cluster: &'a ClusterConfig,
    lifetime: Duration,
    event: &'static str,
    detail: Value,
}

/// The common end of both grants: the session, grants, audit row and signed token.
async fn mint(
    state: &AppState,
    m: Mint<'_>,
    caller: Caller<'_>,
    now: OffsetDateTime,
) -> Result<Minted, Error> {
    let cfg = state.config();
    let store = state.store();
    let lifetime = time::Duration::try_from(m.lifetime).unwrap_or(time::Duration::minutes(5));
    // A token never outlives its account.
    let end = m
        .principal
        .expires_at
        .map_or(now + lifetime, |e| e.min(now + lifetime));
    let session = Session {
        id: random_token(16).expose().to_owned(),
        user_id: m.principal.id.clone(),
        client_id: m.principal.username.clone(),
        cluster: m.cluster.name.clone(),
        created_at: now,
        expires_at: end,
        revoked_at: None,
    };
    let mut groups: Vec<String> = m.groups.to_vec();
    groups.sort();
    groups.dedup();
    let grants = store
        .active_grants_for(m.username, &groups, &m.cluster.name, now)
        .await?;
    // Never handed out: the session of a machine grant cannot be refreshed.
    store
        .create_session(&session, &hash(random_token(32).expose()))
        .await?;
    let jti = random_token(16);
    let mut claims = tokens::access_claims(
        &tokens::Subject {
            user_id: &m.principal.id,
            username: m.username,
            email: None,
            groups: &groups,
        },
        tokens::Minting {
            issuer: cfg.issuer(),
            cluster: &m.cluster.name,
            audience: &m.cluster.audience,
            session_id: &session.id,
            jti: jti.expose(),
            now,
            ttl: m.lifetime,
            session_expires_at: end,
        },
    );
    tokens::add_grants(&mut claims, &grants);
    let mut detail = m.detail;
    if let Value::Object(o) = &mut detail {
        o.insert("session".into(), Value::String(session.id.clone()));
        o.insert("groups".into(), serde_json::json!(claims.groups));
        o.insert("grants".into(), serde_json::json!(claims.grants));
    }
    store
        .audit(
            &AuditEvent {
                event: m.event,
                actor: Some(m.username.to_owned()),
                subject: Some(m.principal.id.clone()),
                cluster: Some(m.cluster.name.clone()),
                client_addr: Some(caller.addr.to_owned()),
                request_id: Some(caller.request_id.to_owned()),
                detail: Some(detail.to_string()),
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    let token = state.signer().sign(&claims)?;
    Ok(Minted {
        token: crate::secrets::secret::Secret::new(token),
        claims,
        api_server: m.cluster.published_server(),
    })
}
