//! What a request asks the API server to do, read from its method, path and query the way the
//! API server's own `RequestInfo` reads them (verb, API group and version, resource,
//! subresource, namespace, name), so that the proxy's audit events name the same things as the
//! API server's audit log and RBAC. Only for the record: the API server decides what is
//! allowed, after impersonation.

use hyper::Method;

/// The longest value kept for one attribute: a Kubernetes name is at most 253 characters; a
/// longer segment is cut, so an event cannot grow with the path.
const MAX_ATTRIBUTE: usize = 256;

/// The attributes of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `connect` (an upgraded connection), or for a non-resource path the lowercase method.
    pub(super) verb: String,
    /// The API group (`""`: the core group, `apps`, ...).
    pub(super) api_group: String,
    /// The API version (`v1`, ...).
    pub(super) api_version: String,
    /// The resource (`pods`, `deployments`, ...); empty for a non-resource path.
    pub(super) resource: String,
    /// The subresource (`log`, `exec`, `status`, `scale`, ...).
    pub(super) subresource: String,
    /// The namespace; empty for cluster-scoped resources.
    pub(super) namespace: String,
    /// The object's name; empty for collections.
    pub(super) name: String,
    /// For a non-resource request (`/version`, `/apis`, `/openapi/v2`): its path.
    pub(super) non_resource_path: Option<String>,
}

/// Reads `method`, `path` and `query`; `upgrade`: the request asks to upgrade the connection
/// (exec, attach, port-forward), recorded as `connect`.
pub(super) fn parse(method: &Method, path: &str, query: Option<&str>, upgrade: bool) -> Attributes {
    let mut a = resource_request(method, path, query).unwrap_or_else(|| Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        non_resource_path: Some(bounded(path)),
        ..Attributes::default()
    });
    if upgrade {
        "connect".clone_into(&mut a.verb);
    }
    a
}

/// The attributes of a resource request (`/api/v1/...`, `/apis/GROUP/VERSION/...`); `None`
/// for anything else, as `RequestInfoFactory` tells them apart.
fn resource_request(method: &Method, path: &str, query: Option<&str>) -> Option<Attributes> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.len() < 3 {
        return None;
    }
    let mut a = Attributes::default();
    let mut rest: &[&str] = match parts[0] {
        "api" => &parts[1..],
        "apis" => {
            if parts.len() < 4 {
                return None;
            }
            a.api_group = bounded(parts[1]);
            &parts[2..]
        }
        _ => return None,
    };
    a.api_version = bounded(rest[0]);
    rest = &rest[1..];
    // `/api/v1/watch/...` and `/api/v1/proxy/...`: the old special verbs.
    let verb = match rest.first() {
        Some(&special @ ("watch" | "proxy")) if rest.len() >= 2 => {
            rest = &rest[1..];
            special
        }
        _ => match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        },
    };
    if rest.first() == Some(&"namespaces") {
        if let Some(ns) = rest.get(1) {
            a.namespace = bounded(ns);
            // `/namespaces/NS/status` and `/finalize` are the namespace's own subresources;
            // anything else after the namespace is a resource in it.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
    }
    if rest.len() >= 3 && verb != "proxy" {
        a.subresource = bounded(rest[2]);
    }
    if let Some(name) = rest.get(1) {
        a.name = bounded(name);
    }
    if let Some(resource) = rest.first() {
        a.resource = bounded(resource);
    }
    match verb {
        "get" if a.name.is_empty() && watch_requested(query) => "watch",
        "get" if a.name.is_empty() => "list",
        "delete" if a.name.is_empty() => "deletecollection",
        other => other,
    }
    .clone_into(&mut a.verb);
    Some(a)
}

/// Whether the query asks for a watch (`watch=true`, `watch=1`, as Go's `ParseBool` reads).
fn watch_requested(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            k == "watch" && matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
        })
    })
}

/// `s`, cut to [`MAX_ATTRIBUTE`] characters.
fn bounded(s: &str) -> String {
    s.chars().take(MAX_ATTRIBUTE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One case: method, path and query, upgrade; then verb, group, resource, subresource,
    /// namespace, name.
    type Case = (&'static str, &'static str, bool, [&'static str; 6]);

    fn check(cases: &[Case]) {
        for (method_path, query, upgrade, want) in cases {
            let (method, path) = method_path.split_once(' ').unwrap_or(("GET", method_path));
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            let q = (!query.is_empty()).then_some(*query);
            let a = parse(&method, path, q, *upgrade);
            let got = [
                a.verb.as_str(),
                a.api_group.as_str(),
                a.resource.as_str(),
                a.subresource.as_str(),
                a.namespace.as_str(),
                a.name.as_str(),
            ];
            assert_eq!(got, *want, "{method_path}?{query} (upgrade {upgrade})");
        }
    }

    #[test]
    fn request_paths_read_like_the_api_servers_request_info() {
        check(&[
            (
                "GET /api/v1/namespaces/ns/pods",
                "",
                false,
                ["list", "", "pods", "", "ns", ""],
            ),
            (
                "GET /api/v1/namespaces/ns/pods",
                "watch=true",
                false,
                ["watch", "", "pods", "", "ns", ""],
            ),
            (
                "GET /api/v1/namespaces/ns/pods",
                "watch=1&resourceVersion=5",
                false,
                ["watch", "", "pods", "", "ns", ""],
            ),
            (
                "GET /api/v1/namespaces/ns/pods",
                "watch=false",
                false,
                ["list", "", "pods", "", "ns", ""],
            ),
            (
                "GET /api/v1/namespaces/ns/pods/web",
                "",
                false,
                ["get", "", "pods", "", "ns", "web"],
            ),
            (
                "GET /api/v1/namespaces/ns/pods/web/log",
                "follow=true",
                false,
                ["get", "", "pods", "log", "ns", "web"],
            ),
            (
                "POST /api/v1/namespaces/ns/pods/web/exec",
                "command=sh",
                true,
                ["connect", "", "pods", "exec", "ns", "web"],
            ),
            (
                "GET /api/v1/namespaces/ns/pods/web/portforward",
                "",
                true,
                ["connect", "", "pods", "portforward", "ns", "web"],
            ),
            (
                "POST /api/v1/namespaces/ns/configmaps",
                "",
                false,
                ["create", "", "configmaps", "", "ns", ""],
            ),
            (
                "PUT /api/v1/namespaces/ns/configmaps/c",
                "",
                false,
                ["update", "", "configmaps", "", "ns", "c"],
            ),
            (
                "PATCH /apis/apps/v1/namespaces/ns/deployments/d",
                "",
                false,
                ["patch", "apps", "deployments", "", "ns", "d"],
            ),
            (
                "PUT /apis/apps/v1/namespaces/ns/deployments/d/scale",
                "",
                false,
                ["update", "apps", "deployments", "scale", "ns", "d"],
            ),
            (
                "DELETE /api/v1/namespaces/ns/pods/web",
                "",
                false,
                ["delete", "", "pods", "", "ns", "web"],
            ),
            (
                "DELETE /api/v1/namespaces/ns/pods",
                "",
                false,
                ["deletecollection", "", "pods", "", "ns", ""],
            ),
            (
                "GET /apis/rbac.authorization.k8s.io/v1/clusterroles",
                "",
                false,
                [
                    "list",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "",
                    "",
                    "",
                ],
            ),
            (
                "GET /api/v1/nodes/n1",
                "",
                false,
                ["get", "", "nodes", "", "", "n1"],
            ),
            // The namespace object itself, and its own subresources.
            (
                "GET /api/v1/namespaces",
                "",
                false,
                ["list", "", "namespaces", "", "", ""],
            ),
            (
                "GET /api/v1/namespaces/ns",
                "",
                false,
                ["get", "", "namespaces", "", "ns", "ns"],
            ),
            (
                "PUT /api/v1/namespaces/ns/finalize",
                "",
                false,
                ["update", "", "namespaces", "finalize", "ns", "ns"],
            ),
            // The old watch prefix.
            (
                "GET /api/v1/watch/namespaces/ns/pods",
                "",
                false,
                ["watch", "", "pods", "", "ns", ""],
            ),
            (
                "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "",
                false,
                [
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                    "",
                ],
            ),
            // Non-resource paths: the method is the verb.
            ("GET /version", "", false, ["get", "", "", "", "", ""]),
            ("GET /api", "", false, ["get", "", "", "", "", ""]),
            ("GET /api/v1", "", false, ["get", "", "", "", "", ""]),
            ("GET /apis/apps/v1", "", false, ["get", "", "", "", "", ""]),
            ("GET /openapi/v2", "", false, ["get", "", "", "", "", ""]),
            ("GET /", "", false, ["get", "", "", "", "", ""]),
        ]);
    }

    #[test]
    fn non_resource_paths_are_kept_and_long_segments_cut() {
        let a = parse(&Method::GET, "/apis", None, false);
        assert_eq!(a.non_resource_path.as_deref(), Some("/apis"));
        let long = "x".repeat(10_000);
        let a = parse(
            &Method::GET,
            &format!("/api/v1/namespaces/{long}/pods/{long}"),
            None,
            false,
        );
        assert_eq!(a.namespace.len(), MAX_ATTRIBUTE);
        assert_eq!(a.name.len(), MAX_ATTRIBUTE);
        let a = parse(&Method::GET, &format!("/{long}"), None, false);
        assert_eq!(a.non_resource_path.map(|p| p.len()), Some(MAX_ATTRIBUTE));
    }
}
