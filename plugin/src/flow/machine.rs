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
    Key(String, Box<MachineKey>),
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
        MachineSource::Key { machine, key } => {
            Proof::Key(machine.clone(), Box::new(load_key(key)?))
        }
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

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt as _};
    use std::path::{Path, PathBuf};

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use credential_shared::oauth::OAuthErrorCode;

    use super::*;
    use crate::base::clock::fake::FakeClock;
    use crate::base::jwt::tests::token;
    use crate::base::target::normalize_issuer;
    use crate::exit::{EXIT_ISSUER, EXIT_LOGIN_REFUSED, EXIT_USAGE};
    use crate::issuer::tests::serve;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
        path
    }

    pub(crate) fn target(issuer: &str, source: MachineSource) -> MachineTarget {
        MachineTarget {
            issuer: normalize_issuer(issuer).unwrap_or_else(|e| panic!("{e}")),
            cluster: "prod".to_owned(),
            issuer_ca: None,
            source,
            token_cache_file: None,
        }
    }

    /// The issuer's discovery document and then one token endpoint answer.
    pub(crate) fn issuer_answers(base: &str, token_answer: (u16, String)) -> Vec<(u16, String)> {
        vec![
            (
                200,
                format!(
                    r#"{{"issuer":"{base}","token_endpoint":"{base}/oauth/token","jwks_uri":"{base}/j"}}"#
                ),
            ),
            token_answer,
        ]
    }

    pub(crate) fn granted(api_server: &str) -> (u16, String) {
        let jwt = token(
            1_000,
            1_300,
            "ci:github:acme/deploy:production",
            &["deployers"],
        );
        (
            200,
            format!(
                r#"{{"access_token":"{jwt}","token_type":"Bearer","expires_in":300,"issued_token_type":"urn:ietf:params:oauth:token-type:jwt","api_server":"{api_server}"}}"#
            ),
        )
    }

    fn form(request: &str) -> Vec<(String, String)> {
        let body = request.split("\r\n\r\n").nth(1).unwrap_or_default();
        url::form_urlencoded::parse(body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_file_token_is_exchanged_for_a_cluster_token() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // World-readable and behind a link, like a projected service-account token.
        let real = write(dir.path(), "..data-token", "  eyJ.projected.jwt\n", 0o644);
        let link = dir.path().join("token");
        symlink(&real, &link).unwrap_or_else(|e| panic!("{e}"));
        let (base, server) = serve(|base| issuer_answers(base, granted("https://api:6443")));
        let source = MachineSource::Identity {
            token: IdentitySource::File(link),
            audience: None,
        };
        let entry =
            obtain(&target(&base, source), &FakeClock::at(5_000)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entry.exp, 5_300);
        assert!(entry.refresh_token.is_none());
        assert_eq!(entry.api_server.as_deref(), Some("https://api:6443"));
        let requests = server.join().unwrap_or_default();
        assert!(
            requests[1].starts_with("POST /oauth/token "),
            "{}",
            requests[1]
        );
        let form = form(&requests[1]);
        assert_eq!(
            field(&form, "grant_type"),
            Some("urn:ietf:params:oauth:grant-type:token-exchange")
        );
        assert_eq!(field(&form, "subject_token"), Some("eyJ.projected.jwt"));
        assert_eq!(
            field(&form, "subject_token_type"),
            Some("urn:ietf:params:oauth:token-type:jwt")
        );
        assert_eq!(field(&form, "audience"), Some("prod"));
    }

    #[test]
    fn a_machine_key_signs_a_client_credentials_request() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let new = MachineKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let key = write(dir.path(), "bot.pem", new.private_pem.expose(), 0o600);
        let (base, server) = serve(|base| issuer_answers(base, granted("https://api:6443")));
        let source = MachineSource::Key {
            machine: "deploy-bot".to_owned(),
            key,
        };
        obtain(&target(&base, source), &FakeClock::at(5_000)).unwrap_or_else(|e| panic!("{e}"));
        let requests = server.join().unwrap_or_default();
        let form = form(&requests[1]);
        assert_eq!(field(&form, "grant_type"), Some("client_credentials"));
        assert_eq!(field(&form, "client_id"), Some("deploy-bot"));
        assert_eq!(field(&form, "audience"), Some("prod"));
        assert_eq!(
            field(&form, "client_assertion_type"),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        let assertion = field(&form, "client_assertion").unwrap_or_default();
        let claims = assertion.split('.').nth(1).unwrap_or_default();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims["aud"], format!("{base}/oauth/token"));
        assert_eq!(claims["iss"], "deploy-bot");
        assert_eq!(
            (claims["iat"].as_i64(), claims["exp"].as_i64()),
            (Some(5_000), Some(5_060))
        );
    }

    #[test]
    fn the_issuers_refusal_is_printed_escaped_and_ends_with_exit_5() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = write(dir.path(), "t", "eyJ.ci.jwt", 0o644);
        let refusal = r#"{"error":"invalid_grant","error_description":"no workload rule matched (deploy-production: claim \"ref\" does not match)\u001b[2J"}"#;
        let (base, _server) = serve(|base| issuer_answers(base, (400, refusal.to_owned())));
        let source = MachineSource::Identity {
            token: IdentitySource::File(file),
            audience: None,
        };
        let err = obtain(&target(&base, source), &FakeClock::at(5_000))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(
            matches!(&err, Error::MachineRefused(e) if e.oauth_code() == Some(OAuthErrorCode::InvalidGrant))
        );
        assert_eq!(err.exit_code(), EXIT_LOGIN_REFUSED);
        let text = crate::error::report(&err);
        assert!(
            text.contains(r#"refused the request: invalid_grant: no workload rule matched (deploy-production: claim "ref" does not match)\x1b[2J"#),
            "{text}"
        );
        assert!(!text.contains("eyJ.ci.jwt"), "{text}");
        // A 503 is the issuer's, not a refusal.
        let (base, _server) = serve(|base| {
            issuer_answers(
                base,
                (503, r#"{"error":"temporarily_unavailable"}"#.to_owned()),
            )
        });
        let source = MachineSource::Identity {
            token: IdentitySource::File(dir.path().join("t")),
            audience: None,
        };
        let err = obtain(&target(&base, source), &FakeClock::at(5_000)).err();
        assert_eq!(err.map(|e| e.exit_code()), Some(EXIT_ISSUER));
    }

    #[test]
    fn env_and_file_sources_are_read_trimmed_and_bounded() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ok = write(dir.path(), "ok", "\n eyJ.a.b \n", 0o644);
        let token =
            identity_token(&IdentitySource::File(ok), "aud").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(token.expose(), "eyJ.a.b");
        let big = write(dir.path(), "big", &"a".repeat(16 * 1024 + 1), 0o600);
        let empty = write(dir.path(), "empty", " \n", 0o600);
        for (path, why) in [
            (big, "larger than 16 KiB"),
            (empty, "it is empty"),
            (dir.path().to_owned(), "is not a regular file"),
            (dir.path().join("missing"), "cannot read the file"),
        ] {
            let err = identity_token(&IdentitySource::File(path), "aud")
                .err()
                .unwrap_or_else(|| panic!("accepted"));
            assert_eq!(err.exit_code(), EXIT_USAGE);
            assert!(err.to_string().contains(why), "{err}");
        }
        // A variable is read as it is now (PATH is set wherever tests run).
        let path = identity_token(&IdentitySource::Env("PATH".to_owned()), "aud")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!path.expose().is_empty());
        let err = identity_token(
            &IdentitySource::Env("KUBECTL_CREDENTIAL_TEST_SURELY_UNSET".to_owned()),
            "aud",
        )
        .err();
        assert!(
            matches!(err, Some(Error::IdentityEnvNotSet { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn outside_github_actions_the_error_names_the_permission() {
        if env::var_os(env::ACTIONS_ID_TOKEN_REQUEST_URL).is_some() {
            return; // Running inside a GitHub Actions job with id-token: write.
        }
        let err = identity_token(&IdentitySource::GithubActions, "aud")
            .err()
            .unwrap_or_else(|| panic!("a token without the runner"));
        assert_eq!(err.exit_code(), EXIT_USAGE);
        assert!(
            err.to_string().contains("permissions: id-token: write"),
            "{err}"
        );
    }

    #[test]
    fn a_key_file_open_to_others_or_not_a_key_is_refused_before_any_request() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let new = MachineKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let loose = write(dir.path(), "loose.pem", new.private_pem.expose(), 0o640);
        let err = load_key(&loose).err().unwrap_or_else(|| panic!("accepted"));
        let text = crate::error::report(&err);
        assert!(text.contains("is readable by others (mode 0640)"), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert_eq!(err.exit_code(), EXIT_USAGE);
        let link = dir.path().join("link.pem");
        let tight = write(dir.path(), "tight.pem", new.private_pem.expose(), 0o600);
        symlink(&tight, &link).unwrap_or_else(|e| panic!("{e}"));
        let err = load_key(&link)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is a symbolic link"), "{err}");
        assert!(load_key(&tight).is_ok());
        let junk = write(dir.path(), "junk.pem", "hello", 0o600);
        let err = load_key(&junk)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no PKCS#8 PEM block"), "{err}");
        // Nothing listens on port 9 of loopback: the key is refused before any connection.
        let source = MachineSource::Key {
            machine: "bot".to_owned(),
            key: loose,
        };
        let err = obtain(&target("http://127.0.0.1:9", source), &FakeClock::at(1)).err();
        assert!(matches!(err, Some(Error::MachineKey { .. })), "{err:?}");
    }
}
