//! The answers the proxy gives itself (a refused token, a refused impersonation header, a
//! malformed upgrade, an unreachable API server) as Kubernetes `Status` objects, so that
//! kubectl prints their message the way it prints the API server's own refusals.

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::ProxyBody;

/// `reason` of a 401.
pub(super) const UNAUTHORIZED: &str = "Unauthorized";
/// `reason` of a 403.
pub(super) const FORBIDDEN: &str = "Forbidden";
/// `reason` of a 400.
pub(super) const BAD_REQUEST: &str = "BadRequest";
/// `reason` of a 503.
pub(super) const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
/// `reason` of a 500 or 502.
pub(super) const INTERNAL_ERROR: &str = "InternalError";

/// A `Status` answer with `code`, `reason` and `message` (which must hold no secret: it is
/// shown to the caller and may be logged).
pub(super) fn status(code: StatusCode, reason: &'static str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    })
    .to_string();
    let mut res = Response::new(full(body));
    *res.status_mut() = code;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// A body held whole in memory (the proxy's own small answers).
pub(super) fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_status_is_what_kubectl_reads() {
        let res = status(StatusCode::FORBIDDEN, FORBIDDEN, "no \"quotes\" break it");
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            res.headers().get(CONTENT_TYPE).map(HeaderValue::as_bytes),
            Some(&b"application/json"[..])
        );
        let body = res
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "Forbidden");
        assert_eq!(v["code"], 403);
        assert_eq!(v["message"], "no \"quotes\" break it");
    }
}
