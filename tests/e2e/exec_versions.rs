//! kubectl speaks two versions of the exec credential protocol; the plugin must answer each in
//! its own version, or kubectl refuses the credential.

use credential_shared::exec_credential::ApiVersion;
use serde_json::Value;

use crate::world::{world, READERS};

#[test]
fn kubectl_works_with_both_exec_api_versions() {
    let world = world();
    let (_frank, laptop) = world.signed_in("frank", &[READERS]);
    let access_token = laptop.cached_token().access_token;

    for version in [ApiVersion::V1, ApiVersion::V1Beta1] {
        // What kubectl would receive on stdout: one ExecCredential in the requested version.
        let out = laptop.get_credential(version);
        out.assert_success();
        let doc: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {out}"));
        assert_eq!(doc["apiVersion"], version.as_str(), "{out}");
        assert_eq!(doc["kind"], "ExecCredential", "{out}");
        assert_eq!(
            doc["status"]["token"],
            access_token.as_str(),
            "the cached token was not used"
        );
        assert!(
            doc["status"]["expirationTimestamp"].is_string(),
            "no expirationTimestamp: {out}"
        );
    }

    // And kubectl itself, with a kubeconfig in each version, where kubectl speaks it. (The
    // first kubectl takes the login session over for its API server; both versions share it.)
    for version in [ApiVersion::V1, ApiVersion::V1Beta1] {
        if version == ApiVersion::V1 && !e2e::bins::kubectl_speaks_exec_v1() {
            eprintln!(
                "note: kubectl 1.{} predates exec v1 (needs 1.22); v1 was checked against the plugin only",
                e2e::bins::kubectl_minor_version().unwrap_or_default()
            );
            continue;
        }
        let kubeconfig = laptop.kubeconfig_for(version);
        laptop
            .env
            .kubectl(&kubeconfig, &["get", "namespaces"])
            .assert_success()
            .assert_stdout_contains("default");
    }
}
