//! Tests of the issuer client against canned HTTP answers from a local listener.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::thread;

use credential_shared::oauth::OAuthErrorCode;

use super::*;
use crate::base::secret::Secret;
use crate::exit::{EXIT_ISSUER, EXIT_USAGE};

/// A small HTTP/1.1 server on 127.0.0.1:0 that answers each accepted connection with the
/// next canned response (made from its own base URL) and returns the requests it read.
/// Bound before the client starts: no port race, no readiness wait.
pub(crate) fn serve(
    responses: impl FnOnce(&str) -> Vec<(u16, String)>,
) -> (String, thread::JoinHandle<Vec<String>>) {
    serve_with_headers(|base| {
        responses(base)
            .into_iter()
            .map(|(status, body)| (status, String::new(), body))
            .collect()
    })
}

/// [`serve`] with extra header lines (each ending in `\r\n`) in each response.
pub(crate) fn serve_with_headers(
    responses: impl FnOnce(&str) -> Vec<(u16, String, String)>,
) -> (String, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{addr}");
    let responses = responses(&base);
    let handle = thread::spawn(move || {
        let mut requests = Vec::new();
        for (status, headers, body) in responses {
            let Ok((stream, _)) = listener.accept() else {
                break;
            };
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut content_length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body_in = vec![0; content_length];
            let _ = reader.read_exact(&mut body_in);
            requests.push(format!("{head}\r\n{}", String::from_utf8_lossy(&body_in)));
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        requests
    });
    (base, handle)
}

fn canned(responses: &[(u16, &str)]) -> impl FnOnce(&str) -> Vec<(u16, String)> {
    let responses: Vec<_> = responses
        .iter()
        .map(|(s, b)| (*s, (*b).to_owned()))
        .collect();
    move |_| responses
}

fn client(issuer: &str) -> IssuerClient {
    let issuer = normalize_issuer(issuer).unwrap_or_else(|e| panic!("{e}"));
    IssuerClient::new(&issuer, None).unwrap_or_else(|e| panic!("{e}"))
}

fn endpoints(base: &str) -> Endpoints {
    Endpoints {
        device_authorization: format!("{base}/oauth/device_authorization"),
        token: format!("{base}/oauth/token"),
        revocation: format!("{base}/oauth/revoke"),
    }
}

#[test]
fn discovery_checks_the_issuer_and_falls_back_to_default_paths() {
    let (base, server) = serve(|base| {
        vec![
            (
                200,
                format!(
                    r#"{{"issuer":"{base}/","token_endpoint":"{base}/t","jwks_uri":"{base}/j","extra":1}}"#
                ),
            ),
            (
                200,
                format!(
                    r#"{{"issuer":"https://elsewhere.example","token_endpoint":"{base}/t","jwks_uri":"{base}/j"}}"#
                ),
            ),
            (
                200,
                format!(
                    r#"{{"issuer":"{base}","token_endpoint":"ftp://x/t","jwks_uri":"{base}/j"}}"#
                ),
            ),
        ]
    });
    let c = client(&base);
    let ep = c.discover().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ep.token, format!("{base}/t"));
    assert_eq!(
        ep.device_authorization,
        format!("{base}/oauth/device_authorization")
    );
    assert_eq!(ep.revocation, format!("{base}/oauth/revoke"));
    let err = c.discover().err();
    assert!(
        matches!(err, Some(IssuerError::IssuerMismatch { .. })),
        "{err:?}"
    );
    let err = c.discover().err();
    assert!(
        matches!(err, Some(IssuerError::BadEndpoint { .. })),
        "{err:?}"
    );
    let requests = server.join().unwrap_or_default();
    assert!(requests[0].starts_with("GET /.well-known/openid-configuration "));
}

#[test]
fn oauth_errors_statuses_and_transport_failures_are_told_apart() {
    let (base, server) = serve(canned(&[
        (400, r#"{"error":"authorization_pending"}"#),
        (400, r#"{"error":"slow_down","error_description":"easy"}"#),
        (503, "busy"),
        (302, ""),
        (200, "not json"),
    ]));
    let c = client(&base);
    let ep = endpoints(&base);
    let code = Secret::new("DC".to_owned());
    let err = c.poll_device(&ep, "kubectl-credential", &code).err();
    assert_eq!(
        err.as_ref().and_then(IssuerError::oauth_code),
        Some(OAuthErrorCode::AuthorizationPending)
    );
    let err = c.poll_device(&ep, "kubectl-credential", &code).err();
    assert_eq!(
        err.as_ref().and_then(IssuerError::oauth_code),
        Some(OAuthErrorCode::SlowDown)
    );
    let err = c.poll_device(&ep, "kubectl-credential", &code).err();
    assert!(matches!(&err, Some(e @ IssuerError::Status { status: 503, .. }) if e.is_transient()));
    let err = c.poll_device(&ep, "kubectl-credential", &code).err();
    assert!(
        matches!(err, Some(IssuerError::Status { status: 302, .. })),
        "{err:?}"
    );
    let err = c.poll_device(&ep, "kubectl-credential", &code).err();
    assert!(
        matches!(err, Some(IssuerError::Malformed { .. })),
        "{err:?}"
    );
    let requests = server.join().unwrap_or_default();
    assert!(
        requests[0].starts_with("POST /oauth/token "),
        "{}",
        requests[0]
    );
    assert!(requests[0].ends_with(
        "\r\n\r\ngrant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=kubectl-credential&device_code=DC"
    ), "{}", requests[0]);

    // Nothing listens any more: a transport error, exit code 4, not TLS.
    let err = c.poll_device(&ep, "kubectl-credential", &code).err();
    assert!(
        matches!(&err, Some(IssuerError::Unreachable { tls: false, .. })),
        "{err:?}"
    );
    assert_eq!(err.map(|e| e.exit_code()), Some(EXIT_ISSUER));
}

#[test]
fn an_issuer_that_cannot_serve_now_is_heard_out() {
    let unavailable = r#"{"error":"temporarily_unavailable","error_description":"the identity provider cannot be reached; try again shortly"}"#;
    let (base, server) = serve_with_headers(move |_| {
        vec![
            (503, "Retry-After: 7\r\n".to_owned(), unavailable.to_owned()),
            (503, String::new(), unavailable.to_owned()),
            (
                429,
                "Retry-After: 60\r\n".to_owned(),
                r#"{"error":"slow_down","error_description":"too many sign-ins started from this address; try again in 60 s"}"#.to_owned(),
            ),
            (
                502,
                "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n".to_owned(),
                "<html>bad gateway</html>".to_owned(),
            ),
            (500, "Retry-After: 99999999999999999999999\r\n".to_owned(), r#"{"error":"server_error","error_description":"internal error; see the issuer's log"}"#.to_owned()),
        ]
    });
    let c = client(&base);
    let ep = endpoints(&base);
    let rt = Secret::new("RT".to_owned());

    let err = c
        .refresh(&ep, "kubectl-credential", &rt)
        .err()
        .unwrap_or_else(|| panic!("refresh succeeded"));
    assert_eq!(
        err.retry(),
        Some(Retry::Later {
            status: 503,
            retry_after: Some(7),
            description: Some("the identity provider cannot be reached; try again shortly"),
        })
    );
    assert_eq!(err.exit_code(), EXIT_ISSUER);
    let text = err.to_string();
    assert!(
        text.ends_with("cannot serve the request now (HTTP 503): temporarily_unavailable: the identity provider cannot be reached; try again shortly; it asks to wait 7 s"),
        "{text}"
    );

    // No Retry-After: the same, without a wait (the caller picks a short one).
    let err = c.refresh(&ep, "kubectl-credential", &rt).err();
    assert!(
        matches!(
            err.as_ref().and_then(IssuerError::retry),
            Some(Retry::Later {
                status: 503,
                retry_after: None,
                description: Some(_)
            })
        ),
        "{err:?}"
    );

    // A rate limit on starting sign-ins: the reason is shown, not just "HTTP 429".
    let err = c
        .authorize_device(&ep, "kubectl-credential", "prod")
        .err()
        .unwrap_or_else(|| panic!("authorized"));
    assert_eq!(err.oauth_code(), Some(OAuthErrorCode::SlowDown));
    assert!(
        err.to_string().contains(
            "(HTTP 429): slow_down: too many sign-ins started from this address; try again in 60 s; it asks to wait 60 s"
        ),
        "{err}"
    );
    assert!(matches!(
        err.retry(),
        Some(Retry::Later {
            status: 429,
            retry_after: Some(60),
            ..
        })
    ));

    // A proxy's page, with a date: the bare status, no wait read from it.
    let err = c.refresh(&ep, "kubectl-credential", &rt).err();
    assert!(
        matches!(
            &err,
            Some(IssuerError::Status {
                status: 502,
                retry_after: None,
                ..
            })
        ),
        "{err:?}"
    );
    // A number too large is the largest (bounded by the caller), not a parse failure.
    let err = c.refresh(&ep, "kubectl-credential", &rt).err();
    assert!(
        matches!(
            err.as_ref().and_then(IssuerError::retry),
            Some(Retry::Later {
                status: 500,
                retry_after: Some(u64::MAX),
                description: Some("internal error; see the issuer's log"),
            })
        ),
        "{err:?}"
    );
    let _ = server.join();
}

#[test]
fn the_requests_api_explains_server_errors_too() {
    let (base, server) = serve(canned(&[
        (
            503,
            r#"{"error":"server_error","message":"the database is unavailable"}"#,
        ),
        (
            403,
            r#"{"error":"forbidden","message":"no role lets you ask for admin"}"#,
        ),
        (500, "oops"),
    ]));
    let c = client(&base);
    let token = Secret::new("AT".to_owned());
    let err = c.my_requests(&token).err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        text.ends_with("cannot serve the request now (HTTP 503): the database is unavailable"),
        "{text}"
    );
    assert_eq!(err.map(|e| e.exit_code()), Some(EXIT_ISSUER));
    let err = c.my_requests(&token).err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        text.ends_with("refused: no role lets you ask for admin"),
        "{text}"
    );
    let err = c.my_requests(&token).err();
    assert!(
        matches!(err, Some(IssuerError::Status { status: 500, .. })),
        "{err:?}"
    );
    let _ = server.join();
}

#[test]
fn revocation_sends_the_refresh_token_with_its_hint() {
    let (base, server) = serve(canned(&[(200, "")]));
    client(&base)
        .revoke(
            &endpoints(&base),
            "kubectl-credential",
            &Secret::new("RT 1".to_owned()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let requests = server.join().unwrap_or_default();
    assert!(requests[0].starts_with("POST /oauth/revoke "));
    assert!(
        requests[0].ends_with(
            "\r\n\r\ntoken=RT+1&token_type_hint=refresh_token&client_id=kubectl-credential"
        ),
        "{}",
        requests[0]
    );
}

#[test]
fn issuer_ca_must_hold_certificates() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let empty = tmp.path().join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap_or_else(|e| panic!("{e}"));
    let err = tls_config_trusting(&empty).err();
    assert!(matches!(err, Some(IssuerError::CaEmpty { .. })), "{err:?}");
    let err = tls_config_trusting(&tmp.path().join("missing.pem")).err();
    assert!(matches!(&err, Some(IssuerError::CaRead { .. })), "{err:?}");
    assert_eq!(err.map(|e| e.exit_code()), Some(EXIT_USAGE));
}

#[test]
fn tls_errors_are_found_inside_io_errors() {
    // A server that answers a TLS ClientHello with plain HTTP: rustls fails the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let issuer = normalize_issuer(&format!("https://{addr}")).unwrap_or_else(|e| panic!("{e}"));
    let c = IssuerClient::new(&issuer, None).unwrap_or_else(|e| panic!("{e}"));
    let err = c.discover().err();
    assert!(
        matches!(&err, Some(IssuerError::Unreachable { tls: true, .. })),
        "{err:?}"
    );
    assert!(err
        .as_ref()
        .and_then(IssuerError::hint)
        .is_some_and(|h| h.contains("--issuer-ca")));
    let _ = server.join();
}

/// A TLS server reached with `http://`: it reads the plain request as a bad handshake and
/// answers with a TLS alert, which ureq cannot read as a status line.
#[test]
fn an_http_url_to_a_tls_server_names_the_https_url() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0; 512];
            let _ = stream.read(&mut buf);
            // A decode_error alert, as rustls sends it.
            let _ = stream.write_all(&[21, 3, 3, 0, 2, 2, 50]);
        }
    });
    let err = client(&format!("http://{addr}")).discover().err();
    let Some(err @ IssuerError::SpeaksHttps { tls: true, .. }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        err.to_string(),
        format!(
            "the server at http://{addr} did not answer in plain HTTP (it answered with TLS); \
             the issuer speaks https: use --issuer https://{addr}"
        )
    );
    assert_eq!(err.exit_code(), EXIT_USAGE);
    assert!(!err.is_transient(), "a wrong URL is not retried later");
    let _ = server.join();
}

/// A server that answers, but without the issuer's discovery document (an API server says
/// 401 or 403 to an anonymous caller, a web server 404, a page HTML): not an issuer.
#[test]
fn a_server_without_discovery_is_not_an_issuer() {
    let (base, server) = serve(canned(&[
        (401, r#"{"kind":"Status","code":401}"#),
        (403, r#"{"kind":"Status","code":403}"#),
        (404, "404 page not found"),
        (200, "<html>hello</html>"),
        (503, "busy"),
    ]));
    let c = client(&base);
    for _ in 0..4 {
        let err = c.discover().err();
        let Some(err @ IssuerError::NotAnIssuer { .. }) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            err.to_string(),
            format!(
                "{base} is not a credential issuer (no OpenID discovery at \
                 {base}/.well-known/openid-configuration); the issuer URL is the one your \
                 platform team gave, e.g. https://issuer.example.com, not the Kubernetes API \
                 server's"
            )
        );
        assert_eq!(err.exit_code(), EXIT_USAGE);
    }
    // An issuer that cannot serve now is still an issuer: tried again later.
    let err = c.discover().err();
    assert!(
        matches!(&err, Some(e @ IssuerError::Status { status: 503, .. }) if e.is_transient()),
        "{err:?}"
    );
    let _ = server.join();
}

/// With --issuer-ca given, a refused certificate means the URL is probably not the
/// issuer's: the hint says so instead of asking for the flag already passed.
#[test]
fn a_refused_certificate_with_issuer_ca_points_at_the_url() {
    let unreachable = |ca_given| IssuerError::Unreachable {
        issuer: "https://x".to_owned(),
        source: Box::new(
            ureq::get("http://[::1]:1")
                .call()
                .err()
                .and_then(ureq::Error::into_transport)
                .unwrap_or_else(|| panic!("no transport error")),
        ),
        tls: true,
        ca_given,
    };
    let hint = unreachable(true).hint().unwrap_or_default();
    assert!(hint.contains("not the Kubernetes API server's"), "{hint}");
    assert!(!hint.contains("pass that CA"), "{hint}");
    let hint = unreachable(false).hint().unwrap_or_default();
    assert!(
        hint.contains("pass that CA's PEM bundle with --issuer-ca"),
        "{hint}"
    );
}
