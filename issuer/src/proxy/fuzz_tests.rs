//! Property tests of the proxy's parsers of what callers send: request paths and queries read
//! into audit attributes, and the headers it reads (bearer token, upgrade, impersonation).
//! Whatever the input: no panic, an answer within the time bound, attributes that do not grow
//! with the path, and nothing refused or read that the rules do not say.
//!
//! `PROPTEST_CASES=N` sets the case count of every property; see docs/fuzzing.md.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use proptest::prelude::*;
use proptest::sample::select;

use super::attributes::parse;
use super::headers;
use crate::fuzz_support::{bounded, config, text};

/// Paths as callers write them: real API shapes with parts replaced by junk, and junk.
fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        3 => select(vec![
            "api", "apis", "v1", "apps", "namespaces", "ns", "pods", "web", "log", "exec",
            "watch", "proxy", "status", "finalize", "", ".", "..",
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ];
    prop_oneof![
        4 => prop::collection::vec(segment, 0..12).prop_map(|s| format!("/{}", s.join("/"))),
        1 => text(),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        select(vec![
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::CONNECT,
        ]),
        "[A-Z]{1,12}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

/// A header map of `(name, value)` pairs that HTTP allows, with the names the proxy reads
/// among them.
fn header_map() -> impl Strategy<Value = HeaderMap> {
    let name = prop_oneof![
        2 => select(vec![
            "authorization", "connection", "upgrade", "impersonate-user", "impersonate-group",
            "impersonate-extra-a%2Fb", "x-impersonate-user", "host", "accept",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z][a-z0-9-]{0,30}",
    ];
    let value = prop_oneof![
        2 => select(vec![
            "Bearer abc", "bearer  x", "Basic abc", "Bearer", "Upgrade", "keep-alive, Upgrade",
            "SPDY/3.1", "websocket", "", " ", "upgrade,upgrade",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~]{0,200}",
    ];
    prop::collection::vec((name, value), 0..8).prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                h.append(k, v);
            }
        }
        h
    })
}

proptest! {
    #![proptest_config(config(2000))]

    /// Any path: attributes within their bound, and a verb the rules can give.
    #[test]
    fn any_path_reads_into_bounded_attributes(
        m in method(),
        p in path(),
        q in prop::option::of(text()),
        upgrade in any::<bool>(),
    ) {
        let a = bounded(move || parse(&m, &p, q.as_deref(), upgrade));
        for field in [&a.api_group, &a.api_version, &a.resource, &a.subresource, &a.namespace, &a.name] {
            prop_assert!(field.chars().count() <= 256, "{a:?}");
        }
        prop_assert!(a.non_resource_path.as_ref().is_none_or(|p| p.chars().count() <= 256));
        if upgrade {
            prop_assert_eq!(a.verb.as_str(), "connect");
        }
        prop_assert!(!a.verb.is_empty() || a.non_resource_path.is_none(), "{a:?}");
    }

    /// Any headers: a token only from one `Bearer` header, impersonation found exactly when an
    /// `impersonate-*` header is there, an upgrade only with both handshake headers.
    #[test]
    fn any_headers_are_read_by_the_rules(h in header_map()) {
        let (token, refused, upgrade) = bounded({
            let h = h.clone();
            move || {
                (
                    headers::bearer(&h).map(str::to_owned),
                    headers::impersonation(&h).map(|n| n.as_str().to_owned()),
                    headers::upgrade(&h),
                )
            }
        });
        let authorizations = h.get_all("authorization").iter().count();
        if let Some(t) = &token {
            prop_assert_eq!(authorizations, 1);
            prop_assert!(!t.is_empty() && !t.starts_with(' '));
        }
        let any_impersonation = h.keys().any(|k| k.as_str().starts_with("impersonate-"));
        prop_assert_eq!(refused.is_some(), any_impersonation);
        if upgrade == Ok(true) {
            prop_assert!(h.contains_key("upgrade"));
        }
        let mut stripped = h.clone();
        headers::strip_request(&mut stripped, upgrade == Ok(true));
        prop_assert!(!stripped.contains_key("authorization"));
        prop_assert!(!stripped.contains_key("host"));
        prop_assert!(!stripped.contains_key("transfer-encoding"));
    }
}
