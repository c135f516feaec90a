//! What `machine` and `workload` do: register machine clients by their public key (the issuer
//! never holds their secret), end-date, disable, enable and re-key them; list the workload
//! rules with their state, and disable or enable a rule on every replica at once.

use time::OffsetDateTime;

use super::{record, Error};
use crate::config::Config;
use crate::domain::names::{is_dns_label, validate_group};
use crate::domain::workloads::Workload;
use crate::service::machines::MACHINE_PREFIX;
use crate::store::{Machine, NewMachine, Principal, PrincipalKind, Store};

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` with an uncompressed point: SEQUENCE {
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn key_error(message: &str) -> Error {
    Error::Time {
        flag: "--public-key",
        message: message.to_owned(),
    }
}

/// The uncompressed P-256 point of a `-----BEGIN PUBLIC KEY-----` PEM (what
/// `kubectl credential machine keygen` and `openssl ec -pubout` print). Checked to be a point
/// on the curve by parsing it as a verification key.
pub fn parse_public_key(pem: &str) -> Result<Vec<u8>, Error> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
        .skip(1)
        .take_while(|l| *l != "-----END PUBLIC KEY-----")
        .collect();
    if body.is_empty() {
        return Err(key_error(
            "not a PEM public key (expected -----BEGIN PUBLIC KEY-----, as `kubectl credential machine keygen` prints)",
        ));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| key_error("the PEM body is not base64"))?;
    let point = der
        .strip_prefix(&P256_SPKI_PREFIX[..])
        .filter(|p| p.len() == 65 && p[0] == 4)
        .ok_or_else(|| key_error("not an uncompressed ECDSA P-256 public key (ES256)"))?;
    // A coordinate at or above the field prime can never verify anything: refused now, rather
    // than at the machine's first token.
    let p256_prime: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff,
    ];
    if point[1..33] >= p256_prime[..] || point[33..] >= p256_prime[..] {
        return Err(key_error("not a point of the P-256 curve"));
    }
    Ok(point.to_vec())
}

/// What `machine add` asks for.
#[derive(Debug, Clone)]
pub struct MachineRequest<'a> {
    /// The machine's name (a DNS label); its account is `machine:<name>`.
    pub name: &'a str,
    /// PEM text of its public key.
    pub public_key_pem: &'a str,
    /// Its Kubernetes groups.
    pub groups: &'a [String],
    /// Clusters it may get tokens for.
    pub clusters: &'a [String],
    /// `--until`: a date, or a duration from now.
    pub until: &'a str,
}

fn account(name: &str) -> Result<String, Error> {
    if !is_dns_label(name) {
        return Err(Error::Time {
            flag: "NAME",
            message: format!(
                "{:?} is not a DNS label (lower-case letters, digits and -, at most 63)",
                name.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(format!("{MACHINE_PREFIX}{name}"))
}

/// Registers a machine client.
pub async fn add_machine(
    store: &Store,
    config: &Config,
    req: &MachineRequest<'_>,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let username = account(req.name)?;
    let public_key = parse_public_key(req.public_key_pem)?;
    for g in req.groups {
        validate_group(g).map_err(|source| Error::Name {
            what: "group",
            value: g.clone(),
            source,
        })?;
    }
    if req.clusters.is_empty() {
        return Err(Error::Time {
            flag: "--cluster",
            message: "name at least one cluster the machine may get tokens for".into(),
        });
    }
    for c in req.clusters {
        if config.cluster(c).is_none() {
            return Err(Error::Time {
                flag: "--cluster",
                message: format!("no cluster called {c:?} is configured"),
            });
        }
    }
    let expires_at = super::parse_expiry(req.until, now)?;
    let mut groups = req.groups.to_vec();
    groups.sort();
    groups.dedup();
    store
        .add_machine(
            &NewMachine {
                username: username.clone(),
                groups: groups.clone(),
                clusters: req.clusters.to_vec(),
                public_key,
                expires_at,
            },
            now,
        )
        .await?;
    let detail = serde_json::json!({
        "groups": groups,
        "clusters": req.clusters,
        "until": expires_at.unix_timestamp(),
    });
    record(
        store,
        "machine.created",
        &username,
        Some(detail.to_string()),
        now,
    )
    .await
}

/// Every machine client.
pub async fn list_machines(store: &Store) -> Result<Vec<Machine>, Error> {
    Ok(store.list_machines().await?)
}

async fn existing_machine(store: &Store, name: &str) -> Result<String, Error> {
    let username = account(name)?;
    if store.machine(&username).await?.is_none() {
        return Err(Error::NoSuchUser(username));
    }
    Ok(username)
}

/// Disables a machine and ends its sessions (its tokens stop at once in webhook mode).
pub async fn disable_machine(store: &Store, name: &str, now: OffsetDateTime) -> Result<u64, Error> {
    let username = existing_machine(store, name).await?;
    let ended = store.disable_user(&username, now).await?;
    let detail = format!("{{\"sessions_ended\":{ended}}}");
    record(store, "machine.disabled", &username, Some(detail), now).await?;
    Ok(ended)
}

/// Enables a disabled machine again.
pub async fn enable_machine(store: &Store, name: &str, now: OffsetDateTime) -> Result<bool, Error> {
    let username = existing_machine(store, name).await?;
    let changed = store.enable_principal(&username).await?;
    record(store, "machine.enabled", &username, None, now).await?;
    Ok(changed)
}

/// Replaces a machine's public key; assertions signed with the old key stop at once.
pub async fn rotate_machine_key(
    store: &Store,
    name: &str,
    public_key_pem: &str,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let username = existing_machine(store, name).await?;
    let key = parse_public_key(public_key_pem)?;
    store.rotate_machine_key(&username, &key, now).await?;
    record(store, "machine.key_rotated", &username, None, now).await
}

/// A workload rule and the state of its account.
#[derive(Debug, Clone)]
pub struct WorkloadState {
    /// The rule.
    pub rule: Workload,
    /// Its account, once it was used or disabled.
    pub account: Option<Principal>,
}

/// Every rule of the configuration with its state, and accounts of rules no longer configured.
pub async fn list_workloads(
    store: &Store,
    config: &Config,
) -> Result<(Vec<WorkloadState>, Vec<Principal>), Error> {
    let accounts = store.principals(PrincipalKind::Workload).await?;
    let states = config
        .workloads
        .iter()
        .map(|w| WorkloadState {
            account: accounts.iter().find(|a| a.username == w.account()).cloned(),
            rule: w.clone(),
        })
        .collect();
    let gone = accounts
        .iter()
        .filter(|a| !config.workloads.iter().any(|w| w.account() == a.username))
        .cloned()
        .collect();
    Ok((states, gone))
}

fn workload_account(config: &Config, name: &str) -> Result<String, Error> {
    config
        .workload(name)
        .map(Workload::account)
        .ok_or_else(|| Error::Time {
            flag: "NAME",
            message: format!(
                "no [[workloads]] rule called {:?} is configured",
                name.chars().take(64).collect::<String>()
            ),
        })
}

/// Disables a workload rule on every replica: no new token from now, and the tokens already
/// out refused by the webhook within seconds. Returns the sessions ended.
pub async fn disable_workload(
    store: &Store,
    config: &Config,
    name: &str,
    now: OffsetDateTime,
) -> Result<u64, Error> {
    let username = workload_account(config, name)?;
    store
        .principal(PrincipalKind::Workload, &username, now)
        .await?;
    let ended = store.disable_user(&username, now).await?;
    let detail = format!("{{\"sessions_ended\":{ended}}}");
    record(store, "workload.disabled", &username, Some(detail), now).await?;
    Ok(ended)
}

/// Enables a workload rule again.
pub async fn enable_workload(
    store: &Store,
    config: &Config,
    name: &str,
    now: OffsetDateTime,
) -> Result<bool, Error> {
    let username = workload_account(config, name)?;
    store
        .principal(PrincipalKind::Workload, &username, now)
        .await?;
    let changed = store.enable_principal(&username).await?;
    record(store, "workload.enabled", &username, None, now).await?;
    Ok(changed)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    /// A key made by `openssl ecparam -name prime256v1 -genkey | openssl ec -pubout`.
    const OPENSSL_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQVvAhGbvf2sXQ5Rt9j9nruiFw6Gx
SQ+oI7AVoEFtqPycA9Ktso/21QGvrrHBzXVDiZfE2hzffEMkSDWI04RE9g==
-----END PUBLIC KEY-----
";

    #[test]
    fn public_keys_are_p256_spki_only() {
        let point = parse_public_key(OPENSSL_PUB).unwrap();
        assert_eq!(point.len(), 65);
        assert_eq!(point[0], 4);
        for bad in [
            "",
            "hello",
            "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n",
            // An RSA key.
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(parse_public_key(bad).is_err(), "{bad}");
        }
    }
}
