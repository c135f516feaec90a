//! A CI platform's OpenID issuer: `tests/oidc-provider/ci.mjs` (the real `oidc-provider`
//! package on Node) playing what `https://token.actions.githubusercontent.com` is to GitHub
//! Actions, for the machine-identity stories (issue 16). Started on `127.0.0.1` with a port it
//! picks and prints, stopped on drop.
//!
//! Each [`Job`] is a client of the provider; [`CiIssuer::job_token`] gets its token with the
//! provider's own `client_credentials` grant (a JWT signed with the key its JWKS publishes,
//! carrying the job's claims), so the issuer under test verifies a real platform token through
//! real discovery. [`CiIssuer::forge`] builds what no honest platform signs (expired, wrong
//! audience, unknown key, `alg: none`, HS256 keyed with the JWKS), and
//! [`CiIssuer::github_request_url`] is the runner endpoint the plugin's
//! `--identity-token github-actions` calls.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::oidc_provider::INSTALL_HINT;
use crate::process::{self, Collector, Reaper};

/// How long Node may take to load the provider and listen (see `oidc_provider.rs`: CI once
/// needed more than 30 s while other programs started on the same cores).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// One CI job: a client of the platform's issuer and the claims its tokens carry.
#[derive(Debug, Clone)]
pub struct Job {
    /// The client id at the provider, and the `job` of [`CiIssuer::github_request_url`].
    pub id: String,
    /// The job's claims (`repository`, `ref`, `environment`, `workflow`, ...), as a JSON object.
    pub claims: serde_json::Value,
}

impl Job {
    /// A GitHub Actions job of `repository` (`owner/name`) on `git_ref` (`refs/heads/main`),
    /// deploying to `environment` if any: the claims GitHub puts in its tokens, with a
    /// workflow, run, actor and commit made up for it.
    #[must_use]
    pub fn github(id: &str, repository: &str, git_ref: &str, environment: Option<&str>) -> Self {
        let owner = repository.split('/').next().unwrap_or(repository);
        let mut claims = serde_json::json!({
            "repository": repository,
            "repository_owner": owner,
            "ref": git_ref,
            "workflow": "deploy",
            "job_workflow_ref": format!("{repository}/.github/workflows/deploy.yml@{git_ref}"),
            "run_id": "4242",
            "actor": "octocat",
            "sha": "3f786850e387550fdab836ed7e6dc881de23001b",
        });
        if let Some(environment) = environment {
            claims["environment"] = environment.into();
        }
        Self {
            id: id.to_owned(),
            claims,
        }
    }
}

/// Which key [`CiIssuer::forge`] signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeKey {
    /// RS256 with the key the provider's JWKS publishes: a valid signature on any claims.
    Published,
    /// RS256 with a key the JWKS does not have (kid `unknown-rs256`).
    Unknown,
    /// `alg: none` and an empty signature.
    None,
    /// HS256 keyed with the JWKS document's text: the key-confusion attack.
    Hs256Jwks,
}

impl ForgeKey {
    fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Unknown => "unknown",
            Self::None => "none",
            Self::Hs256Jwks => "hs256-jwks",
        }
    }
}

/// A running CI issuer. The process sits behind a `Mutex` so that it is `Sync` and can live in
/// a shared fixture (a `static`).
#[derive(Debug)]
pub struct CiIssuer {
    url: String,
    admin_token: String,
    runner_token: String,
    secrets: HashMap<String, String>,
    pgid: u32,
    _dir: tempfile::TempDir,
    procs: Mutex<Procs>,
}

#[derive(Debug)]
struct Procs {
    child: Option<Child>,
    stderr: Option<Collector>,
    reaper: Option<Reaper>,
}

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

/// The claims of `jwt`, decoded without any verification (the tests read what they were
/// given or build a forgery from it; verifying is the issuer's job).
#[track_caller]
#[must_use]
pub fn claims_of(jwt: &str) -> serde_json::Value {
    part_of(jwt, 1)
}

/// The protected header of `jwt`, decoded without verification.
#[track_caller]
#[must_use]
pub fn header_of(jwt: &str) -> serde_json::Value {
    part_of(jwt, 0)
}

#[track_caller]
fn part_of(jwt: &str, i: usize) -> serde_json::Value {
    let part = jwt.split('.').nth(i).unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|e| panic!("JWT part {i} is not base64url ({e})"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT part {i} is not JSON ({e})"))
}

impl CiIssuer {
    /// Starts the CI issuer with `jobs`; returns once it prints its URL (at most
    /// [`START_TIMEOUT`]). Fails the test, saying how to install, when Node or the package is
    /// missing.
    #[track_caller]
    #[must_use]
    pub fn start(jobs: &[Job]) -> Self {
        let node = process::require(
            "node",
            "install Node.js 20.19 or newer (Debian: apt-get install nodejs npm)",
        );
        let pkg = package_dir();
        assert!(
            pkg.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "the CI issuer's packages (oidc-provider) are not installed: {INSTALL_HINT}"
        );
        let dir = tempfile::Builder::new()
            .prefix("e2e-ci-issuer.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let test_pid = std::process::id();
        let secrets: HashMap<String, String> = jobs
            .iter()
            .map(|j| {
                (
                    j.id.clone(),
                    format!("client secret of {} {test_pid}", j.id),
                )
            })
            .collect();
        let jobs_json: Vec<serde_json::Value> = jobs
            .iter()
            .map(|j| {
                serde_json::json!({
                    "client_id": j.id, "client_secret": secrets[&j.id], "claims": j.claims,
                })
            })
            .collect();
        let jobs_file = dir.path().join("jobs.json");
        std::fs::write(&jobs_file, serde_json::Value::from(jobs_json).to_string())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", jobs_file.display()));
        let admin_token = format!("ci-admin-{test_pid}");
        let runner_token = format!("ci-runner-{test_pid}");
        let mut child = Command::new(node)
            .arg(pkg.join("ci.mjs"))
            .current_dir(&pkg)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CI_JOBS_FILE", &jobs_file)
            .env("CI_ADMIN_TOKEN", &admin_token)
            .env("CI_RUNNER_TOKEN", &runner_token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {}: {e}", pkg.display()));
        let pgid = child.id();
        let reaper = Reaper::spawn(
            "the CI issuer",
            r#"kill -TERM -- "-$1" 2>/dev/null || exit 0
for _ in $(seq 1 50); do kill -0 -- "-$1" 2>/dev/null || exit 0; sleep 0.1; done
kill -KILL -- "-$1" 2>/dev/null || true"#,
            &[pgid.to_string()],
        );
        let stderr = process::collect(child.stderr.take());
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(url) = line.strip_prefix("listening ") {
                        let _ = tx.send(url.trim().to_owned());
                    }
                }
            });
        }
        let mut ci = Self {
            url: String::new(),
            admin_token,
            runner_token,
            secrets,
            pgid,
            _dir: dir,
            procs: Mutex::new(Procs {
                child: Some(child),
                stderr: Some(stderr),
                reaper: Some(reaper),
            }),
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => ci.url = url,
            Err(e) => {
                let how = match e {
                    mpsc::RecvTimeoutError::Disconnected => {
                        "exited before printing its URL".to_owned()
                    }
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("did not print its URL within {START_TIMEOUT:?}")
                    }
                };
                let log = ci.stop();
                panic!("the CI issuer {how}; its stderr:\n{log}\n(if a package is missing: {INSTALL_HINT})");
            }
        }
        ci
    }

    /// `http://127.0.0.1:PORT`, the `iss` of its tokens.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bearer token its runner endpoint requires (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    #[must_use]
    pub fn runner_token(&self) -> &str {
        &self.runner_token
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL` for `job`: the runner endpoint, to which the plugin
    /// appends `&audience=AUD`, as GitHub's runner is called.
    #[must_use]
    pub fn github_request_url(&self, job: &str) -> String {
        format!("{}/github/token?api-version=2.0&job={job}", self.url)
    }

    /// A token of `job` for `audience`, from the provider's token endpoint with the
    /// `client_credentials` grant and `resource=audience`, as the job's platform issues it.
    #[track_caller]
    #[must_use]
    pub fn job_token(&self, job: &str, audience: &str) -> String {
        let secret = self
            .secrets
            .get(job)
            .unwrap_or_else(|| panic!("the CI issuer has no job {job:?}"));
        // RFC 6749 2.3.1: the client id and secret are form-encoded before Basic.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(job),
            enc(secret)
        ));
        let url = format!("{}/token", self.url);
        let resource = if url::Url::parse(audience).is_ok() {
            audience.to_owned()
        } else {
            // What ci.mjs turns back into the plain audience (resource indicators are URIs).
            format!("urn:ci-audience:{}", enc(audience).replace('+', "%20"))
        };
        let resp = crate::http::response(
            ureq::post(&url)
                .set("Authorization", &format!("Basic {basic}"))
                .send_form(&[
                    ("grant_type", "client_credentials"),
                    ("resource", &resource),
                    ("scope", "ci"),
                ]),
        )
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(
            resp.status, 200,
            "the CI issuer refused a token for job {job}: {}",
            resp.body
        );
        let body: serde_json::Value = serde_json::from_str(&resp.body)
            .unwrap_or_else(|e| panic!("bad token response ({e}): {}", resp.body));
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {}", resp.body))
            .to_owned()
    }

    /// A JWT with `claims` (exactly these), signed as `key` says.
    #[track_caller]
    #[must_use]
    pub fn forge(&self, claims: &serde_json::Value, key: ForgeKey) -> String {
        self.forge_with_header(&serde_json::json!({}), claims, key)
    }

    /// Like [`CiIssuer::forge`], with `header` fields over the default `alg`, `typ` and `kid`.
    #[track_caller]
    #[must_use]
    pub fn forge_with_header(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
        key: ForgeKey,
    ) -> String {
        let url = format!("{}/admin/forge", self.url);
        let body = serde_json::json!({ "claims": claims, "header": header, "key": key.as_str() });
        let resp = crate::http::response(
            ureq::post(&url)
                .set("Authorization", &format!("Bearer {}", self.admin_token))
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        )
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(
            resp.status, 200,
            "the CI issuer did not forge: {}",
            resp.body
        );
        let value: serde_json::Value = serde_json::from_str(&resp.body)
            .unwrap_or_else(|e| panic!("bad forge response ({e}): {}", resp.body));
        value["value"].as_str().unwrap_or_default().to_owned()
    }

    fn stop(&mut self) -> String {
        process::kill_group(self.pgid, rustix::process::Signal::TERM);
        let procs = match self.procs.get_mut() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(mut child) = procs.child.take() {
            if process::wait_for(&mut child, Duration::from_secs(10)).is_none() {
                eprintln!("harness: the CI issuer ignored SIGTERM and was killed");
            }
        }
        drop(procs.reaper.take());
        procs
            .stderr
            .take()
            .map(Collector::finish)
            .unwrap_or_default()
    }
}

impl Drop for CiIssuer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIENCE: &str = "https://credential-issuer.example.com";

    fn get(url: &str, bearer: Option<&str>) -> crate::http::Response {
        let mut req = ureq::get(url);
        if let Some(token) = bearer {
            req = req.set("Authorization", &format!("bearer {token}"));
        }
        crate::http::response(req.call()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// The provider itself issues the job tokens: discovery names it, its JWKS holds the key
    /// the token names, and the token carries the job's claims in GitHub's shape.
    #[test]
    fn the_ci_issuer_issues_github_shaped_job_tokens_from_its_discovered_keys() {
        let job = Job::github(
            "deploy-main",
            "acme/deploy",
            "refs/heads/main",
            Some("production"),
        );
        let branch = Job::github("build-feature", "acme/deploy", "refs/heads/feature", None);
        let ci = CiIssuer::start(&[job, branch]);

        let discovery = get(
            &format!("{}/.well-known/openid-configuration", ci.url()),
            None,
        );
        assert_eq!(discovery.status, 200, "{discovery:?}");
        let discovery: serde_json::Value =
            serde_json::from_str(&discovery.body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(discovery["issuer"], ci.url());
        let jwks_uri = discovery["jwks_uri"].as_str().unwrap_or_default();
        let jwks: serde_json::Value =
            serde_json::from_str(&get(jwks_uri, None).body).unwrap_or_else(|e| panic!("JWKS: {e}"));

        let token = ci.job_token("deploy-main", AUDIENCE);
        let header = header_of(&token);
        assert_eq!(header["alg"], "RS256", "{header}");
        assert_eq!(header["typ"], "JWT", "{header}");
        let kid = header["kid"].as_str().unwrap_or_default();
        assert!(
            jwks["keys"]
                .as_array()
                .is_some_and(|keys| keys.iter().any(|k| k["kid"] == kid && k["d"].is_null())),
            "the token's kid {kid} is not a public key of the JWKS: {jwks}"
        );
        let claims = claims_of(&token);
        assert_eq!(claims["iss"], ci.url(), "{claims}");
        assert_eq!(claims["aud"], AUDIENCE, "{claims}");
        assert_eq!(
            claims["sub"], "repo:acme/deploy:environment:production",
            "{claims}"
        );
        for (name, value) in [
            ("repository", "acme/deploy"),
            ("repository_owner", "acme"),
            ("ref", "refs/heads/main"),
            ("environment", "production"),
            ("actor", "octocat"),
        ] {
            assert_eq!(claims[name], value, "{claims}");
        }
        let (iat, nbf, exp) = (
            claims["iat"].as_i64().unwrap_or_default(),
            claims["nbf"].as_i64().unwrap_or_default(),
            claims["exp"].as_i64().unwrap_or_default(),
        );
        assert!(iat > 0 && nbf == iat && exp > iat, "{claims}");
        assert!(
            claims["jti"].as_str().is_some_and(|j| j.len() >= 16),
            "{claims}"
        );
        let again = claims_of(&ci.job_token("deploy-main", AUDIENCE));
        assert_ne!(again["jti"], claims["jti"], "every token has its own jti");

        // A job without an environment is named by its ref.
        let branch = claims_of(&ci.job_token("build-feature", "plain-audience"));
        assert_eq!(branch["sub"], "repo:acme/deploy:ref:refs/heads/feature");
        assert_eq!(branch["aud"], "plain-audience");

        // The runner endpoint: the bearer token is required, the answer is the job's token.
        let url = format!(
            "{}&audience={AUDIENCE}",
            ci.github_request_url("deploy-main")
        );
        assert_eq!(get(&url, None).status, 401);
        assert_eq!(get(&url, Some("wrong")).status, 401);
        let resp = get(&url, Some(ci.runner_token()));
        assert_eq!(resp.status, 200, "{resp:?}");
        let value: serde_json::Value =
            serde_json::from_str(&resp.body).unwrap_or_else(|e| panic!("{e}"));
        let from_runner = claims_of(value["value"].as_str().unwrap_or_default());
        assert_eq!(from_runner["aud"], AUDIENCE);
        assert_eq!(from_runner["repository"], "acme/deploy");

        // Forgeries carry exactly the claims asked for, under the header each kind implies.
        let forged_claims = serde_json::json!({ "iss": ci.url(), "sub": "x" });
        for (key, alg, kid) in [
            (ForgeKey::Published, "RS256", Some(kid)),
            (ForgeKey::Unknown, "RS256", Some("unknown-rs256")),
            (ForgeKey::None, "none", None),
            (ForgeKey::Hs256Jwks, "HS256", Some(kid)),
        ] {
            let forged = ci.forge(&forged_claims, key);
            assert_eq!(claims_of(&forged), forged_claims, "{key:?}");
            let header = header_of(&forged);
            assert_eq!(header["alg"], alg, "{key:?}: {header}");
            assert_eq!(header["kid"].as_str(), kid, "{key:?}: {header}");
            assert_eq!(
                forged.ends_with('.'),
                key == ForgeKey::None,
                "{key:?}: {forged}"
            );
        }
    }
}
