//! Who is bound to roles in a namespace right now: every `RoleBinding` of the namespace and
//! every `ClusterRoleBinding` (managed by the reconciler or not) whose subjects are issuer
//! identities (`credential:<user>` or `credential:<group>`). `audit access` prints this as the
//! current state: Kubernetes keeps no history of bindings.

use k8s_openapi::api::rbac::v1 as rbac;

use super::reconcile::{blocking, connect, RoundError};
use crate::domain::access::BoundNow;
use crate::domain::cluster::ClusterConfig;

/// The prefix the API server adds to the issuer's user and group names.
pub const PREFIX: &str = "credential:";

fn bound(
    binding: &str,
    role: &rbac::RoleRef,
    subjects: Option<&Vec<rbac::Subject>>,
) -> Vec<BoundNow> {
    subjects
        .into_iter()
        .flatten()
        .filter(|s| s.name.starts_with(PREFIX) && (s.kind == "User" || s.kind == "Group"))
        .map(|s| BoundNow {
            binding: binding.to_owned(),
            role: format!("{}/{}", role.kind, role.name),
            kind: s.kind.clone(),
            subject: s.name.clone(),
        })
        .collect()
}

/// The issuer identities bound in `namespace` of `cluster` now, through the reconciler's
/// kubeconfig. Errors when the cluster has no access configured or cannot be reached.
pub async fn bound_now(
    cluster: &ClusterConfig,
    namespace: &str,
) -> Result<Vec<BoundNow>, RoundError> {
    let client = connect(cluster)?;
    let ns = namespace.to_owned();
    let found = blocking(move || {
        let base = "/apis/rbac.authorization.k8s.io/v1";
        let mut out = Vec::new();
        for b in
            client.list::<rbac::RoleBinding>(&format!("{base}/namespaces/{ns}/rolebindings"))?
        {
            let name = format!("RoleBinding {ns}/{}", b.metadata.name.unwrap_or_default());
            out.extend(bound(&name, &b.role_ref, b.subjects.as_ref()));
        }
        for b in client.list::<rbac::ClusterRoleBinding>(&format!("{base}/clusterrolebindings"))? {
            let name = format!("ClusterRoleBinding {}", b.metadata.name.unwrap_or_default());
            out.extend(bound(&name, &b.role_ref, b.subjects.as_ref()));
        }
        Ok(out)
    })
    .await
    .map_err(|source| RoundError::Failed {
        cluster: cluster.name.clone(),
        source,
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_issuer_users_and_groups_are_reported() {
        let role = rbac::RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "edit".into(),
        };
        let subject = |kind: &str, name: &str| rbac::Subject {
            kind: kind.into(),
            name: name.into(),
            ..rbac::Subject::default()
        };
        let subjects = vec![
            subject("Group", "credential:sre"),
            subject("User", "credential:alice"),
            subject("User", "bob"),
            subject("ServiceAccount", "credential:x"),
        ];
        let got = bound("RoleBinding payments/b", &role, Some(&subjects));
        let names: Vec<(&str, &str)> = got
            .iter()
            .map(|b| (b.kind.as_str(), b.subject.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![("Group", "credential:sre"), ("User", "credential:alice")]
        );
        assert_eq!(got[0].role, "ClusterRole/edit");
    }
}
