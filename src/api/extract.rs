//! Request extractors: JSON bodies with our error format, and bearer authentication.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath};

use super::audit::AuditSlot;
use super::authz;
use super::error::ApiError;
use super::AppState;
use crate::service::auth::AuthFailure;
use crate::service::Principal;

/// A JSON body. Unlike `axum::Json` it doesn't insist on a Content-Type header (curl users
/// forget it), and every failure is one of our JSON errors: malformed JSON is
/// `invalid_json`, well-formed JSON of the wrong shape is `invalid_request`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        let parsed = parse_json(&bytes).map(JsonBody);
        wipe(bytes);
        parsed
    }
}

/// Wipe a request body once it has been parsed: some carry private keys (import). Only
/// possible when nothing else holds the buffer, which is the usual case.
fn wipe(bytes: Bytes) {
    use zeroize::Zeroize;
    if let Ok(mut b) = bytes.try_into_mut() {
        b.as_mut().zeroize();
    }
}

/// The request body, with our errors: 413 `body_too_large` past the configured limit.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body exceeds the configured limit",
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
        }
    })
}

/// Parse JSON with our error codes: `invalid_json` for syntax, `invalid_request` for shape.
/// Every body the API takes is an object (or `null` where a body is optional): serde's
/// derived structs would also take an array and read it field by field, in declaration
/// order, which no client means.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body must be a JSON object, not an array",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
            }
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid JSON: {e}"),
            ),
        }
    })
}

/// The authenticated and authorized caller, from `Authorization: Bearer <token>`.
///
/// Order: throttled address → 429; more than one `Authorization` header → 400
/// `invalid_authorization`; no, unknown, expired or revoked token → 401; token without
/// the capability the route needs (see `authz`) → 403 naming it. Objects of other
/// tenants are then "not found" in the use cases, so ids don't leak.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(secs) = ip.and_then(|ip| state.throttle.blocked(ip)) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_auth_failures",
                "too many failed authentications from this address; try again later",
            )
            .with_retry_after(secs));
        }
        // Two headers are ambiguous: a proxy may have added one, and which the daemon
        // would read is not something a client should have to guess. RFC 6750 §3.1 calls
        // a repeated credential a malformed request (400), not a failed authentication,
        // so the throttle does not count it; no secret is looked at.
        if parts
            .headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .nth(1)
            .is_some()
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_authorization",
                "the request has more than one Authorization header; send exactly one",
            ));
        }
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("an Authorization: Bearer token is required"))?;
        let value = value
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
        let secret = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => {
                return Err(unauthorized(
                    "the Authorization header must be 'Bearer <token>'",
                ))
            }
        };
        if secret.is_empty() {
            return Err(unauthorized("the bearer token is empty"));
        }
        let who = match state.pki.authenticate(secret) {
            Ok(p) => p,
            Err(f) => {
                if let Some(ip) = ip {
                    state.throttle.failed(ip);
                }
                return Err(unauthorized(match f {
                    AuthFailure::Unknown => "the bearer token is not valid",
                    AuthFailure::Expired => "the bearer token has expired",
                    AuthFailure::Revoked => "the bearer token has been revoked",
                }));
            }
        };
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.set(&who);
        }
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let Some(rule) = authz::rule_for(&parts.method, &route) else {
            tracing::error!(method = %parts.method, %route, "route has no access rule; refused");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing_capability",
                "this endpoint has no access rule; nobody may call it",
            ));
        };
        let role = super::audit::path_param(&route, parts.uri.path(), "role");
        if let Some(cap) = rule.need.capability(role.as_deref()) {
            who.require(&cap).map_err(ApiError::from)?;
        }
        Ok(Caller(who))
    }
}

/// Query parameters, with our JSON error (400 `invalid_request`) instead of axum's text.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
    }
}

/// A path parameter, with our JSON error instead of axum's text.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
    }
}

/// A JSON body that may be left out entirely: an empty body, or `null`, means
/// `T::default()`; any other body is parsed as strictly as [`JsonBody`] does, so one of
/// whitespace only is not JSON (400), as it is not for any other endpoint.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJson(T::default()));
        }
        let parsed = parse_json::<Option<T>>(&bytes).map(|v| OptionalJson(v.unwrap_or_default()));
        wipe(bytes);
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        common_name: String,
    }

    #[test]
    fn a_body_must_be_an_object_not_an_array() {
        assert!(parse_json::<Body>(br#"{"common_name":"a.example"}"#).is_ok());
        let err = parse_json::<Body>(br#" ["a.example"]"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code, "invalid_request");
        assert!(parse_json::<Option<Body>>(b"null").unwrap().is_none());
    }
}
