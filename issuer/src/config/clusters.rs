//! `[[clusters]]`: the clusters tokens are issued for, each with its API server, CA bundle,
//! audience and the reconciler's way in. None configured means one called `default`.

use std::time::Duration;

use base64::Engine as _;
use url::Url;

use super::values::{duration_within, read_small_file};
use super::{
    duplicate, invalid, ClusterConfig, ConfigError, FileCluster, FileProxy, KubeAccess, ProxyAudit,
    ProxyConfig, ProxyTls, DEFAULT_RECONCILE_INTERVAL,
};

/// Largest CA bundle read for a cluster.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// Every cluster checked, then their names checked for repeats; without any, the default one.
pub(super) fn clusters(file: Vec<FileCluster>) -> Result<Vec<ClusterConfig>, ConfigError> {
    let mut clusters = Vec::new();
    for (i, c) in file.into_iter().enumerate() {
        clusters.push(cluster(i, c)?);
    }
    if clusters.is_empty() {
        // Zero configuration: one cluster whose API server is configured with
        // `--oidc-client-id=kubernetes`, as install/ documents.
        clusters.push(ClusterConfig {
            name: "default".to_owned(),
            server: None,
            certificate_authority_data: None,
            audience: "kubernetes".to_owned(),
            access: None,
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            proxy: None,
        });
    }
    for (i, c) in clusters.iter().enumerate() {
        if clusters[..i].iter().any(|p| p.name == c.name) {
            return Err(duplicate("clusters", i, "name", "cluster", &c.name));
        }
    }
    Ok(clusters)
}

/// One `[[clusters]]` table, `clusters[i]`.
fn cluster(i: usize, c: FileCluster) -> Result<ClusterConfig, ConfigError> {
    let field = |f: &str| format!("clusters[{i}].{f}");
    if c.name.is_empty()
        || c.name.len() > 63
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
    {
        return Err(invalid(
            field("name"),
            "must be 1 to 63 characters of [A-Za-z0-9._-]",
        ));
    }
    let server = match c.server {
        None => None,
        Some(s) => {
            let u = Url::parse(&s)
                .map_err(|e| invalid(field("server"), format!("`{s}` is not a URL: {e}")))?;
            if u.scheme() != "https" {
                return Err(invalid(field("server"), "must be an https URL"));
            }
            Some(u)
        }
    };
    let certificate_authority_data = match (c.ca_file, c.certificate_authority_data) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                field("ca_file"),
                "set ca_file or certificate_authority_data, not both",
            ))
        }
        (Some(path), None) => {
            let pem = read_small_file(&path, MAX_CA_FILE).map_err(|e| {
                invalid(
                    field("ca_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            if !pem.starts_with(b"-----BEGIN") {
                return Err(invalid(
                    field("ca_file"),
                    format!("{} is not a PEM file", path.display()),
                ));
            }
            Some(base64::engine::general_purpose::STANDARD.encode(pem))
        }
        (None, data) => data,
    };
    let audience = c.audience.unwrap_or_else(|| c.name.clone());
    if audience.is_empty() || audience.len() > 256 {
        return Err(invalid(field("audience"), "must be 1 to 256 characters"));
    }
    let access = match (c.kubeconfig, c.in_cluster.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(invalid(
                field("in_cluster"),
                "set kubeconfig or in_cluster = true, not both",
            ))
        }
        (Some(path), false) => {
            if path.as_os_str().is_empty() {
                return Err(invalid(field("kubeconfig"), "must not be empty"));
            }
            Some(KubeAccess::Kubeconfig(path))
        }
        (None, true) => Some(KubeAccess::InCluster),
        (None, false) => None,
    };
    let reconcile_interval = duration_within(
        &field("reconcile_interval"),
        c.reconcile_interval.as_deref(),
        "30s",
        Duration::from_secs(1)..=Duration::from_secs(3600),
        "must be between 1s and 1h",
    )?;
    let proxy = match c.proxy {
        None => None,
        Some(p) => Some(proxy(&field("proxy"), p)?),
    };
    Ok(ClusterConfig {
        name: c.name,
        server,
        certificate_authority_data,
        audience,
        access,
        reconcile_interval,
        proxy,
    })
}

/// `clusters[i].proxy`, named `at`.
fn proxy(at: &str, p: FileProxy) -> Result<ProxyConfig, ConfigError> {
    let field = |f: &str| format!("{at}.{f}");
    let listen = p
        .listen
        .ok_or_else(|| invalid(field("listen"), "is required (e.g. \"0.0.0.0:8443\")"))?;
    let listen = listen.parse().map_err(|_| {
        invalid(
            field("listen"),
            format!("`{listen}` is not an address and port such as 0.0.0.0:8443"),
        )
    })?;
    let url = p.url.ok_or_else(|| {
        invalid(
            field("url"),
            "is required: the https URL kubeconfigs point at",
        )
    })?;
    let url = Url::parse(&url)
        .map_err(|e| invalid(field("url"), format!("`{url}` is not a URL: {e}")))?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field("url"), "must be an https URL with a host"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(invalid(
            field("url"),
            "must be the proxy's origin, without a path or query",
        ));
    }
    let upstream = match (p.kubeconfig, p.in_cluster.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(invalid(
                field("in_cluster"),
                "set kubeconfig or in_cluster = true, not both",
            ))
        }
        (Some(path), false) if path.as_os_str().is_empty() => {
            return Err(invalid(field("kubeconfig"), "must not be empty"))
        }
        (Some(path), false) => KubeAccess::Kubeconfig(path),
        (None, true) => KubeAccess::InCluster,
        (None, false) => {
            return Err(invalid(
                field("kubeconfig"),
                "the proxy needs its own credential: set kubeconfig or in_cluster = true",
            ))
        }
    };
    let audit = match p.audit.as_deref() {
        None | Some("metadata") => ProxyAudit::Metadata,
        Some("none") => ProxyAudit::None,
        Some(other) => {
            return Err(invalid(
                field("audit"),
                format!("`{other}` is not \"none\" or \"metadata\""),
            ))
        }
    };
    let tls = match (p.tls_cert_file, p.tls_key_file, p.tls_ca_file) {
        (None, None, None) => ProxyTls::Generated,
        (Some(cert), Some(key), Some(ca)) => {
            let pem = read_small_file(&ca, MAX_CA_FILE).map_err(|e| {
                invalid(
                    field("tls_ca_file"),
                    format!("cannot read {}: {e}", ca.display()),
                )
            })?;
            if !pem.starts_with(b"-----BEGIN") {
                return Err(invalid(
                    field("tls_ca_file"),
                    format!("{} is not a PEM file", ca.display()),
                ));
            }
            ProxyTls::Files {
                cert,
                key,
                ca_data: base64::engine::general_purpose::STANDARD.encode(pem),
            }
        }
        _ => {
            return Err(invalid(
                field("tls_cert_file"),
                "set tls_cert_file, tls_key_file and tls_ca_file together, or none of them",
            ))
        }
    };
    Ok(ProxyConfig {
        listen,
        url,
        upstream,
        impersonate_uid: p.impersonate_uid.unwrap_or(false),
        audit,
        tls,
    })
}
