//! Machine mode's one step: from a proof of identity (a CI platform's identity token, or a
//! registered machine's key) to a token for the cluster, with no person involved: no browser,
//! no device flow, no prompt, no keyring and no session cache. Local problems (a missing
//! variable, a key file open to others) are reported before anything goes over the network.

use std::io::Read as _;

use credential_shared::oauth::PATH_TOKEN;

use crate::base::clock::Clock;
use crate::base::env;
use crate::base::machine::{IdentitySource, MachineSource, MachineTarget};
use crate::base::secret::Secret;
use crate::cache::{self, Entry, Holds, Opened};
use crate::error::Error;
use crate::issuer::assertion::MachineKey;
use crate::issuer::identity::{self, MAX_IDENTITY_TOKEN_BYTES};
use crate::issuer::IssuerClient;

/// Largest key file read.
const MAX_KEY_BYTES: u64 = 16 * 1024;

/// What is sent to the issuer.
enum Proof {
    /// A CI platform's identity token, for the token exchange.
    Subject(Secret),
    /// A machine and its key, for client credentials.
    Key(String, MachineKey),
}

/// Gets a token for `target`'s cluster from its issuer.
pub(crate) fn obtain(target: &MachineTarget, clock: &dyn Clock) -> Result<Entry, Error> {
    if let Some(ca) = &target.issuer_ca {
        crate::issuer::check_ca(ca)?;
    }
    let proof = match &target.source {
        MachineSource::Identity { token, .. } => {
            Proof::Subject(identity_token(token, target.identity_audience())?)
        }
        MachineSource::Key { machine, key } => Proof::Key(machine.clone(), load_key(key)?),
    };
    let client = IssuerClient::new(&target.issuer, target.issuer_ca.as_deref())?;
    let endpoints = client.discover()?;
    let answer = match proof {
        Proof::Subject(token) => client.exchange(&endpoints, &token, &target.cluster),
        Proof::Key(machine, key) => {
            // The audience is the issuer's token endpoint as the contract names it, not the
            // discovered URL: the issuer checks its own.
            let audience = format!("{}{PATH_TOKEN}", target.issuer);
            let assertion = key
                .assertion(&machine, &audience, clock.now())
                .map_err(Error::Assertion)?;
            client.client_credentials(&endpoints, &machine, &assertion, &target.cluster)
        }
    };
    let answer = answer.map_err(Error::MachineRefused)?;
    Entry::from_token_response(answer, None, clock.now()).map_err(|source| Error::MalformedToken {
        issuer: target.issuer.to_string(),
        source,
    })
}

/// The CI platform's identity token, read afresh (a projected token file is rotated under the
/// job; a runner's token is for one audience).
pub(crate) fn identity_token(source: &IdentitySource, audience: &str) -> Result<Secret, Error> {
    let bad = |reason: &str| Error::IdentityToken {
        source_name: source.to_arg(),
        reason: reason.to_owned(),
    };
    let text = match source {
        IdentitySource::GithubActions => {
            let var = |variable: &'static str| {
                env::var_os(variable)
                    .and_then(|v| v.into_string().ok())
                    .filter(|v| !v.trim().is_empty())
                    .ok_or(Error::GithubActionsNotSet { variable })
            };
            let url = var(env::ACTIONS_ID_TOKEN_REQUEST_URL)?;
            let request_token = Secret::new(var(env::ACTIONS_ID_TOKEN_REQUEST_TOKEN)?);
            return Ok(identity::github_actions_token(
                url.trim(),
                &request_token,
                audience,
            )?);
        }
        IdentitySource::Env(name) => env::var_os(name)
            .ok_or_else(|| Error::IdentityEnvNotSet { name: name.clone() })?
            .into_string()
            .map_err(|_| bad("the variable is not UTF-8"))?,
        IdentitySource::File(path) => {
            let max = MAX_IDENTITY_TOKEN_BYTES as u64;
            let bytes = match cache::read_public(path, max) {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(refusal)) => return Err(bad(&refusal.why.to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(bad("the file is larger than 16 KiB"))
                }
                Err(e) => return Err(bad(&format!("cannot read the file: {e}"))),
            };
            String::from_utf8(bytes).map_err(|_| bad("the file is not UTF-8 text"))?
        }
    };
    let token = text.trim();
    if token.is_empty() {
        if let IdentitySource::Env(name) = source {
            return Err(Error::IdentityEnvNotSet { name: name.clone() });
        }
        return Err(bad("it is empty"));
    }
    if token.len() > MAX_IDENTITY_TOKEN_BYTES {
        return Err(bad("it is larger than 16 KiB"));
    }
    Ok(Secret::new(token.to_owned()))
}

/// Reads `--machine-key`: a regular file of ours, mode 0600 or stricter, holding a P-256
/// PKCS#8 PEM key.
pub(crate) fn load_key(path: &std::path::Path) -> Result<MachineKey, Error> {
    let bad = |reason: String| Error::MachineKey {
        path: path.to_owned(),
        reason,
    };
    let file = match cache::open_named(path, Holds::Secret) {
        Ok(Opened::Trusted(file)) => file,
        Ok(Opened::Missing) => return Err(bad("no such file".to_owned())),
        Ok(Opened::Refused(refusal, _)) => {
            return Err(bad(format!(
                "it {}; a machine key must be a regular file of yours with mode 0600 or \
                 stricter (chmod 600 it)",
                refusal.why
            )))
        }
        Err(e) => return Err(bad(format!("cannot read it: {e}"))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_KEY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_KEY_BYTES {
        return Err(bad("it is larger than 16 KiB, not a key".to_owned()));
    }
    MachineKey::from_pem(&bytes).map_err(|e| bad(e.to_string()))
}
