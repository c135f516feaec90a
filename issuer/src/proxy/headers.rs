//! The headers the proxy reads, refuses, removes and adds: the caller's bearer token (read,
//! then removed), client-sent `Impersonate-*` headers (refused), hop-by-hop headers (removed,
//! except an upgrade's handshake), and the `Impersonate-*` headers that tell the API server
//! who the caller is, with extra keys percent-encoded as Kubernetes requires.

use std::fmt::Write as _;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::domain::review::{Identity, PREFIX};

/// Every impersonation header starts with this (`Impersonate-User`, `-Group`, `-Uid`,
/// `-Extra-*`); header names are lowercase here.
const IMPERSONATE_PREFIX: &str = "impersonate-";
/// `Impersonate-Extra-<key>`.
const IMPERSONATE_EXTRA_PREFIX: &str = "impersonate-extra-";

/// Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1, plus
/// the de facto `Proxy-Connection` and `Keep-Alive`).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The first client-sent impersonation header, if any.
pub(super) fn impersonation(headers: &HeaderMap) -> Option<&HeaderName> {
    headers
        .keys()
        .find(|name| name.as_str().starts_with(IMPERSONATE_PREFIX))
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case); `None` when there is
/// none, another scheme, or several `Authorization` headers.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let value = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether the request asks to upgrade its connection (`Connection: Upgrade` with an
/// `Upgrade` header: SPDY/3.1 or WebSocket). `Err`: `Connection: Upgrade` without saying to
/// what, which no API server can answer.
pub(super) fn upgrade(headers: &HeaderMap) -> Result<bool, &'static str> {
    let asks = connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"));
    match (asks, headers.get(header::UPGRADE)) {
        (false, _) => Ok(false),
        (true, Some(v)) if !v.as_bytes().trim_ascii().is_empty() => Ok(true),
        (true, _) => Err("Connection: Upgrade without an Upgrade header: say which protocol"),
    }
}

/// The comma-separated tokens of every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes what must not reach the API server from the caller's headers: its
/// `Authorization`, the `Host` it sent (the client sets the API server's), and the hop-by-hop
/// headers, including those `Connection` names. With `upgrade`, `Connection: Upgrade` and
/// the `Upgrade` header are kept: they are the handshake the API server answers.
pub(super) fn strip_request(headers: &mut HeaderMap, upgrade: bool) {
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST);
    strip_hop_by_hop(headers);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Removes the hop-by-hop headers of an API server's answer (not of a `101`, whose
/// `Connection`/`Upgrade` headers complete the handshake).
pub(super) fn strip_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.remove(header::UPGRADE);
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter(|t| !t.eq_ignore_ascii_case("upgrade"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Why an identity cannot be sent as headers.
#[derive(Debug, thiserror::Error)]
#[error("the identity's {what} cannot be sent to the API server")]
pub(super) struct Unsendable {
    /// `user name`, `group`, ...
    what: &'static str,
}

/// Adds the `Impersonate-*` headers for `identity`: the user, one `Impersonate-Group` per
/// group, `Impersonate-Uid` when `with_uid` (Kubernetes 1.22 and later), and one
/// `Impersonate-Extra-<key>` per extra value.
pub(super) fn impersonate(
    headers: &mut HeaderMap,
    identity: &Identity,
    with_uid: bool,
) -> Result<(), Unsendable> {
    let value = |what: &'static str, s: &str| {
        HeaderValue::from_bytes(s.as_bytes()).map_err(|_| Unsendable { what })
    };
    // The proxy's credential may impersonate anyone (RBAC cannot limit `impersonate` to a
    // prefix), so it only ever names the issuer's own people: `credential:` user and group
    // names, never `system:masters` or a bare name, whatever the identity holds.
    let ours = |what: &'static str, s: &str| {
        if s.starts_with(PREFIX) && s.len() > PREFIX.len() {
            value(what, s)
        } else {
            Err(Unsendable { what })
        }
    };
    headers.insert(
        HeaderName::from_static("impersonate-user"),
        ours("user name", &identity.username)?,
    );
    for g in &identity.groups {
        headers.append(
            HeaderName::from_static("impersonate-group"),
            ours("group", g)?,
        );
    }
    if with_uid {
        headers.insert(
            HeaderName::from_static("impersonate-uid"),
            value("uid", &identity.uid)?,
        );
    }
    for (key, v) in &identity.extra {
        let name = HeaderName::from_bytes(extra_header(key).as_bytes())
            .map_err(|_| Unsendable { what: "extra key" })?;
        headers.append(name, value("extra value", v)?);
    }
    Ok(())
}

/// `impersonate-extra-<key>` with `key` percent-encoded as client-go does (`headerKeyEscape`):
/// every byte that is not a header token character, and `%` itself, becomes `%XX`, so
/// `credential.kubectl.dev/session-id` is sent as `...kubectl.dev%2Fsession-id`. The API server
/// decodes it back (Kubernetes 1.16 and later).
pub(super) fn extra_header(key: &str) -> String {
    let mut out = String::with_capacity(IMPERSONATE_EXTRA_PREFIX.len() + key.len() + 8);
    out.push_str(IMPERSONATE_EXTRA_PREFIX);
    for b in key.bytes() {
        let token = b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
        if token {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap_or(header::ACCEPT),
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn extra_keys_are_percent_encoded_like_client_go() {
        assert_eq!(
            extra_header("credential.kubectl.dev/session-id"),
            "impersonate-extra-credential.kubectl.dev%2Fsession-id"
        );
        assert_eq!(extra_header("a%b c"), "impersonate-extra-a%25b%20c");
        assert_eq!(extra_header("scopes"), "impersonate-extra-scopes");
    }

    #[test]
    fn bearer_tokens_are_read_only_from_one_bearer_header() {
        assert_eq!(
            bearer(&map(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            bearer(&map(&[("authorization", "bearer abc ")])),
            Some("abc")
        );
        assert_eq!(bearer(&map(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&map(&[("authorization", "Bearer ")])), None);
        assert_eq!(
            bearer(&map(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ])),
            None
        );
        assert_eq!(bearer(&map(&[])), None);
    }

    #[test]
    fn upgrades_need_both_headers() {
        assert_eq!(
            upgrade(&map(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")])),
            Ok(true)
        );
        assert_eq!(
            upgrade(&map(&[
                ("connection", "keep-alive, upgrade"),
                ("upgrade", "websocket")
            ])),
            Ok(true)
        );
        assert!(upgrade(&map(&[("connection", "Upgrade")])).is_err());
        assert_eq!(upgrade(&map(&[("upgrade", "websocket")])), Ok(false));
        assert_eq!(upgrade(&map(&[])), Ok(false));
    }

    #[test]
    fn stripping_keeps_only_what_the_api_server_may_see() {
        let mut h = map(&[
            ("authorization", "Bearer secret"),
            ("host", "proxy.example"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "application/json"),
        ]);
        strip_request(&mut h, false);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept"]);

        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ]);
        strip_request(&mut h, true);
        assert_eq!(
            h.get("connection").map(HeaderValue::as_bytes),
            Some(&b"Upgrade"[..])
        );
        assert_eq!(
            h.get("upgrade").map(HeaderValue::as_bytes),
            Some(&b"SPDY/3.1"[..])
        );
        assert!(h.contains_key("x-stream-protocol-version"));
    }

    #[test]
    fn impersonation_headers_carry_the_identity() {
        let id = Identity {
            username: "credential:alice".into(),
            uid: "u1".into(),
            groups: vec!["credential:dev".into(), "credential:ops".into()],
            extra: vec![("credential.kubectl.dev/session-id", "s1".into())],
        };
        let mut h = HeaderMap::new();
        impersonate(&mut h, &id, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            h.get("impersonate-user").map(HeaderValue::as_bytes),
            Some(&b"credential:alice"[..])
        );
        let groups: Vec<&[u8]> = h
            .get_all("impersonate-group")
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(groups, [&b"credential:dev"[..], &b"credential:ops"[..]]);
        assert!(!h.contains_key("impersonate-uid"));
        assert_eq!(
            h.get("impersonate-extra-credential.kubectl.dev%2fsession-id")
                .map(HeaderValue::as_bytes),
            Some(&b"s1"[..])
        );
        impersonate(&mut h, &id, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            h.get("impersonate-uid").map(HeaderValue::as_bytes),
            Some(&b"u1"[..])
        );
        assert_eq!(
            impersonation(&h).map(HeaderName::as_str),
            Some("impersonate-user")
        );
        assert_eq!(impersonation(&map(&[("accept", "x")])), None);
        // Only the issuer's own names are ever impersonated.
        for bad in [
            Identity {
                username: "admin".into(),
                ..id.clone()
            },
            Identity {
                username: "credential:".into(),
                ..id.clone()
            },
            Identity {
                groups: vec!["system:masters".into()],
                ..id.clone()
            },
        ] {
            assert!(
                impersonate(&mut HeaderMap::new(), &bad, false).is_err(),
                "{bad:?}"
            );
        }
    }
}
