//! `[[upstreams]]`: the OpenID Connect providers offered on the sign-in page, each with its
//! client credentials (read at start), scopes, claims, allowed e-mail domains and offline grace.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::values::{duration_within, read_small_text, MAX_SECRET_FILE};
use super::{
    duplicate, invalid, ClientAuth, ConfigError, FileUpstream, UpstreamConfig,
    DEFAULT_OFFLINE_GRACE, DEFAULT_UPSTREAM_SCOPES, MAX_OFFLINE_GRACE,
};
use crate::secrets::secret::Secret;

/// Every provider checked in order, an id given twice refused where it repeats.
pub(super) fn upstreams(file: Vec<FileUpstream>) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let mut upstreams: Vec<UpstreamConfig> = Vec::new();
    for (i, u) in file.into_iter().enumerate() {
        let u = upstream(i, u)?;
        if upstreams.iter().any(|p| p.id == u.id) {
            return Err(duplicate("upstreams", i, "id", "upstream", &u.id));
        }
        upstreams.push(u);
    }
    Ok(upstreams)
}

/// One `[[upstreams]]` table, `upstreams[i]`.
fn upstream(i: usize, u: FileUpstream) -> Result<UpstreamConfig, ConfigError> {
    let field = |f: &str| format!("upstreams[{i}].{f}");
    if u.id.is_empty()
        || u.id.len() > 32
        || !u
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            field("id"),
            "must be 1 to 32 characters of [A-Za-z0-9_-]",
        ));
    }
    let name = u.name.unwrap_or_else(|| u.id.clone());
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(invalid(field("name"), "must be 1 to 64 characters"));
    }
    let issuer_url = issuer_url(&field, &u.issuer_url)?;
    if u.client_id.is_empty() || u.client_id.len() > 256 {
        return Err(invalid(field("client_id"), "must be 1 to 256 characters"));
    }
    let client_secret = client_secret(&field, u.client_secret_file, u.client_secret_env)?;
    let client_auth = match u.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => ClientAuth::Basic,
        Some("client_secret_post") => ClientAuth::Post,
        Some(other) => {
            return Err(invalid(
                field("token_endpoint_auth_method"),
                format!("`{other}` is not client_secret_basic or client_secret_post"),
            ))
        }
    };
    let scopes = scopes(&field, u.scopes)?;
    let claim = |f: &str, v: Option<String>, default: &str| {
        let v = v.unwrap_or_else(|| default.to_owned());
        if v.is_empty() || v.len() > 64 {
            Err(invalid(field(f), "must be 1 to 64 characters"))
        } else {
            Ok(v)
        }
    };
    let username_claim = claim("username_claim", u.username_claim, "email")?;
    let groups_claim = claim("groups_claim", u.groups_claim, "groups")?;
    let allowed_email_domains = email_domains(i, &u.allowed_email_domains)?;
    if let Some(ca) = &u.ca_file {
        if !ca.is_file() {
            return Err(invalid(
                field("ca_file"),
                format!("{} is not a readable file", ca.display()),
            ));
        }
    }
    let offline_grace = duration_within(
        &field("offline_grace"),
        u.offline_grace.as_deref(),
        DEFAULT_OFFLINE_GRACE,
        Duration::ZERO..=MAX_OFFLINE_GRACE,
        "must be at most 12h (a longer grace keeps removed people in for too long)",
    )?;
    Ok(UpstreamConfig {
        id: u.id,
        name,
        issuer_url,
        client_id: u.client_id,
        client_secret: Secret::new(client_secret),
        client_auth,
        scopes,
        username_claim,
        groups_claim,
        allowed_email_domains,
        ca_file: u.ca_file,
        offline_grace,
    })
}

/// The provider's issuer: https (plain http only on loopback), no query or fragment.
fn issuer_url(field: &impl Fn(&str) -> String, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text)
        .map_err(|e| invalid(field("issuer_url"), format!("`{text}` is not a URL: {e}")))?;
    if !crate::upstream::is_allowed_url(&url) {
        return Err(invalid(
            field("issuer_url"),
            "must be an https URL (plain http only for loopback addresses)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            field("issuer_url"),
            "must not have a query or fragment",
        ));
    }
    Ok(url)
}

/// The client secret, read from `client_secret_file` (trailing newline ignored) or the
/// variable `client_secret_env` names: exactly one of them, not empty.
fn client_secret(
    field: &impl Fn(&str) -> String,
    file: Option<PathBuf>,
    var: Option<String>,
) -> Result<String, ConfigError> {
    let secret = match (file, var) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                field("client_secret_file"),
                "set client_secret_file or client_secret_env, not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                field("client_secret_file"),
                "set client_secret_file or client_secret_env",
            ))
        }
        (Some(path), None) => read_small_text(&path, MAX_SECRET_FILE)
            .map_err(|e| {
                invalid(
                    field("client_secret_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        (None, Some(var)) => std::env::var(&var).map_err(|_| {
            invalid(
                field("client_secret_env"),
                format!("environment variable {var} is not set"),
            )
        })?,
    };
    if secret.is_empty() {
        return Err(invalid(
            field("client_secret_file"),
            "the client secret is empty",
        ));
    }
    Ok(secret)
}

/// `scopes`, [`DEFAULT_UPSTREAM_SCOPES`] unless given; `openid` is always asked for.
fn scopes(
    field: &impl Fn(&str) -> String,
    given: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let mut scopes = given.unwrap_or_else(|| {
        DEFAULT_UPSTREAM_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    });
    if scopes.iter().any(|s| {
        s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    }) {
        return Err(invalid(
            field("scopes"),
            "each scope must be visible ASCII without spaces",
        ));
    }
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    Ok(scopes)
}

/// `allowed_email_domains`, lower-cased and without a leading `@`.
fn email_domains(i: usize, given: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut domains = Vec::new();
    for (j, d) in given.iter().enumerate() {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if d.is_empty() || !d.contains('.') || d.contains(['@', ' ', '/']) {
            return Err(invalid(
                format!("upstreams[{i}].allowed_email_domains[{j}]"),
                "must be a domain like example.com",
            ));
        }
        domains.push(d);
    }
    Ok(domains)
}
