//! Translation between the domain's managed objects (`domain::grants`) and the RBAC API types
//! of `k8s-openapi`, plus the API paths of each kind. Everything created here carries the
//! managed-by label, and everything read back is what the label selector returned.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::domain::cluster::PolicyRule;
use crate::domain::grants::{
    managed_selector, Binding, ManagedRole, Objects, Subject, GRANT_ID_LABEL, MANAGED_BY,
    MANAGED_BY_LABEL, ROLE_LABEL,
};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const BASE: &str = "/apis/rbac.authorization.k8s.io/v1";

/// `?labelSelector=...` selecting managed objects only.
fn selector_query() -> String {
    format!(
        "?labelSelector={}",
        url::form_urlencoded::byte_serialize(managed_selector().as_bytes()).collect::<String>()
    )
}

/// List path of managed `ClusterRoles`.
#[must_use]
pub fn cluster_roles_list() -> String {
    format!("{BASE}/clusterroles{}", selector_query())
}

/// List path of managed `ClusterRoleBindings`.
#[must_use]
pub fn cluster_role_bindings_list() -> String {
    format!("{BASE}/clusterrolebindings{}", selector_query())
}

/// List path of managed `RoleBindings` in every namespace.
#[must_use]
pub fn role_bindings_list() -> String {
    format!("{BASE}/rolebindings{}", selector_query())
}

/// Collection path a binding is created in.
#[must_use]
pub fn binding_collection(b: &Binding) -> String {
    match &b.namespace {
        Some(ns) => format!("{BASE}/namespaces/{ns}/rolebindings"),
        None => format!("{BASE}/clusterrolebindings"),
    }
}

/// Path of one binding.
#[must_use]
pub fn binding_path(b: &Binding) -> String {
    format!("{}/{}", binding_collection(b), b.name)
}

/// Collection path of `ClusterRoles`.
#[must_use]
pub fn cluster_roles_collection() -> String {
    format!("{BASE}/clusterroles")
}

/// Path of one `ClusterRole` (names may hold `:`, which is fine in a path segment).
#[must_use]
pub fn cluster_role_path(name: &str) -> String {
    format!("{BASE}/clusterroles/{name}")
}

fn labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]);
    for (k, v) in extra {
        l.insert((*k).to_owned(), (*v).to_owned());
    }
    l
}

fn subjects(b: &Binding) -> Vec<rbac::Subject> {
    b.subjects
        .iter()
        .map(|s| rbac::Subject {
            api_group: Some(RBAC_GROUP.to_owned()),
            kind: s.kind.clone(),
            name: s.name.clone(),
            namespace: None,
        })
        .collect()
}

fn meta(name: &str, namespace: Option<&String>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.cloned(),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn role_ref(b: &Binding) -> rbac::RoleRef {
    rbac::RoleRef {
        api_group: RBAC_GROUP.to_owned(),
        kind: "ClusterRole".to_owned(),
        name: b.cluster_role.clone(),
    }
}

fn binding_labels(b: &Binding) -> BTreeMap<String, String> {
    match &b.grant_id {
        Some(id) => labels(&[(GRANT_ID_LABEL, id)]),
        None => labels(&[]),
    }
}

/// A binding as a `RoleBinding` (namespaced).
#[must_use]
pub fn role_binding(b: &Binding) -> rbac::RoleBinding {
    rbac::RoleBinding {
        metadata: meta(&b.name, b.namespace.as_ref(), binding_labels(b)),
        role_ref: role_ref(b),
        subjects: Some(subjects(b)),
    }
}

/// A binding as a `ClusterRoleBinding` (cluster-wide).
#[must_use]
pub fn cluster_role_binding(b: &Binding) -> rbac::ClusterRoleBinding {
    rbac::ClusterRoleBinding {
        metadata: meta(&b.name, None, binding_labels(b)),
        role_ref: role_ref(b),
        subjects: Some(subjects(b)),
    }
}

fn opt(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// A managed role as a `ClusterRole`.
#[must_use]
pub fn cluster_role(r: &ManagedRole) -> rbac::ClusterRole {
    rbac::ClusterRole {
        aggregation_rule: None,
        metadata: meta(&r.name, None, labels(&[(ROLE_LABEL, &r.role)])),
        rules: Some(
            r.rules
                .iter()
                .map(|rule| rbac::PolicyRule {
                    api_groups: Some(rule.api_groups.clone()),
                    non_resource_urls: None,
                    resource_names: opt(&rule.resource_names),
                    resources: Some(rule.resources.clone()),
                    verbs: rule.verbs.clone(),
                })
                .collect(),
        ),
    }
}

fn from_parts(
    metadata: ObjectMeta,
    role_ref: &rbac::RoleRef,
    subjects: Option<Vec<rbac::Subject>>,
) -> Binding {
    let grant_id = metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(GRANT_ID_LABEL).cloned());
    Binding {
        namespace: metadata.namespace,
        name: metadata.name.unwrap_or_default(),
        // A roleRef to a namespaced Role never comes from the issuer; mark it so that the diff
        // recreates the binding.
        cluster_role: if role_ref.kind == "ClusterRole" {
            role_ref.name.clone()
        } else {
            format!("{}/{}", role_ref.kind, role_ref.name)
        },
        subjects: subjects
            .unwrap_or_default()
            .into_iter()
            .map(|s| Subject {
                kind: s.kind,
                name: s.name,
            })
            .collect(),
        grant_id,
    }
}

/// The managed objects listed from a cluster, in domain terms.
#[must_use]
pub fn actual(
    roles: Vec<rbac::ClusterRole>,
    cluster_bindings: Vec<rbac::ClusterRoleBinding>,
    bindings: Vec<rbac::RoleBinding>,
) -> Objects {
    let mut out = Objects::default();
    for r in roles {
        let role = r
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ROLE_LABEL).cloned())
            .unwrap_or_default();
        out.roles.push(ManagedRole {
            name: r.metadata.name.unwrap_or_default(),
            role,
            rules: r
                .rules
                .unwrap_or_default()
                .into_iter()
                .map(|p| PolicyRule {
                    api_groups: p.api_groups.unwrap_or_default(),
                    resources: p.resources.unwrap_or_default(),
                    verbs: p.verbs,
                    resource_names: p.resource_names.unwrap_or_default(),
                })
                .collect(),
        });
    }
    for b in cluster_bindings {
        out.bindings
            .push(from_parts(b.metadata, &b.role_ref, b.subjects));
    }
    for b in bindings {
        out.bindings
            .push(from_parts(b.metadata, &b.role_ref, b.subjects));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_round_trip_through_the_api_types() {
        let b = Binding {
            namespace: Some("team-a".into()),
            name: "credential-grant-abc".into(),
            cluster_role: "view".into(),
            subjects: vec![Subject {
                kind: "User".into(),
                name: "credential:alice".into(),
            }],
            grant_id: Some("abc".into()),
        };
        let json = serde_json::to_value(role_binding(&b)).unwrap_or_default();
        assert_eq!(json["kind"], "RoleBinding");
        assert_eq!(json["apiVersion"], "rbac.authorization.k8s.io/v1");
        assert_eq!(
            json["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "credential-issuer"
        );
        assert_eq!(
            json["metadata"]["labels"]["credential.kubectl.dev/grant-id"],
            "abc"
        );
        assert_eq!(json["roleRef"]["kind"], "ClusterRole");
        let back: rbac::RoleBinding =
            serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        let objects = actual(vec![], vec![], vec![back]);
        assert_eq!(objects.bindings, [b]);
        assert_eq!(
            role_bindings_list(),
            "/apis/rbac.authorization.k8s.io/v1/rolebindings?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dcredential-issuer"
        );
    }
}
