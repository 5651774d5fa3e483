//! Request extractors: JSON bodies with our error format, and bearer authentication.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
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
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
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
        state
            .pki
            .authenticate(secret)
            .map(Caller)
            .map_err(|_| unauthorized("the bearer token is not valid"))
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

/// A JSON body that may be left out entirely: an empty body means `T::default()`; any
/// other body is parsed as strictly as [`JsonBody`] does.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        let parsed = parse_json(&bytes).map(OptionalJson);
        wipe(bytes);
        parsed
    }
}
