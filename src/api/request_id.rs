//! One id per request: taken from a sane incoming `X-Request-Id` or made here, echoed in
//! the response, put in the request extensions as [`RequestId`] (for the audit log) and
//! on every log line of the request through a tracing span.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl RequestId {
    /// A client's id is kept when it is 1 to 64 characters of `A-Z a-z 0-9 - _ . :`, so
    /// it can go into logs and headers as it is; anything else is replaced.
    fn from_client(value: &HeaderValue) -> Option<RequestId> {
        let s = value.to_str().ok()?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| RequestId(s.to_string()))
    }

    fn new() -> RequestId {
        RequestId(crate::types::new_id("req"))
    }
}

/// The route template for labels and logs: `/v1/pki/ca/{id}`, never the raw path, which
/// carries ids (and would make one time series per certificate).
pub(super) fn route_label(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string())
}

/// Methods outside the standard set share one label, so clients cannot mint series.
pub(super) fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The outermost layer: request id, span, access log line and HTTP metrics.
pub(super) async fn observe(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::new);
    req.extensions_mut().insert(id.clone());
    let method = method_label(req.method());
    let route = route_label(&req);
    // Paths are ASCII (percent-encoded); a long one is cut, not logged whole.
    let path: String = req.uri().path().chars().take(256).collect();
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    super::metrics::record_request(method, &route, status, elapsed);
    span.in_scope(|| {
        tracing::info!(
            target: "access",
            method,
            path = %path,
            route = %route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_harmless() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(RequestId::from_client(&ok).unwrap().0, "abc-123_x.y:z");
        for bad in ["", "a b", "a\"b", "ä", &"x".repeat(65)] {
            if let Ok(v) = HeaderValue::from_str(bad) {
                assert!(RequestId::from_client(&v).is_none(), "{bad:?}");
            }
        }
        assert!(RequestId::new().0.starts_with("req_"));
    }
}
