//! The one place where errors become HTTP responses:
//! `{"error": {"code": "snake_case", "message": "sentence"}}` with the right status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::limits::LimitExceeded;
use crate::policy::PolicyError;
use crate::service::ServiceError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        // Details go to the log; the client learns only that it was our fault.
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; the server log has the details",
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use ServiceError as E;
        let (status, code) = match &e {
            E::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            E::InvalidKeySize(_) => (StatusCode::BAD_REQUEST, "invalid_key_size"),
            E::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            E::MissingCapability(_) => (StatusCode::FORBIDDEN, "missing_capability"),
            E::TenantExists(_) => (StatusCode::CONFLICT, "tenant_exists"),
            E::NotFound { kind: "tenant", .. } => (StatusCode::NOT_FOUND, "tenant_not_found"),
            E::NotFound { kind: "token", .. } => (StatusCode::NOT_FOUND, "token_not_found"),
            E::NotFound { kind: "ca", .. } => (StatusCode::NOT_FOUND, "ca_not_found"),
            E::NotFound { kind: "role", .. } => (StatusCode::NOT_FOUND, "role_not_found"),
            E::NotFound { kind: "csr", .. } => (StatusCode::NOT_FOUND, "csr_not_found"),
            E::NotFound {
                kind: "trust_anchor",
                ..
            } => (StatusCode::NOT_FOUND, "trust_anchor_not_found"),
            E::NotFound {
                kind: "certificate",
                ..
            } => (StatusCode::NOT_FOUND, "certificate_not_found"),
            E::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            E::CaNameTaken(_) => (StatusCode::CONFLICT, "ca_name_exists"),
            E::RoleNameTaken(_) => (StatusCode::CONFLICT, "role_exists"),
            E::CertificateExists => (StatusCode::CONFLICT, "certificate_exists"),
            E::TrustAnchorExists(_) => (StatusCode::CONFLICT, "trust_anchor_exists"),
            E::FourEyes => (StatusCode::FORBIDDEN, "four_eyes"),
            E::AmbiguousSerial(_) => (StatusCode::CONFLICT, "ambiguous_serial"),
            E::CannotRevokeRoot => (StatusCode::UNPROCESSABLE_ENTITY, "cannot_revoke_root"),
            E::HoldNotAllowedForCa => (StatusCode::UNPROCESSABLE_ENTITY, "hold_not_allowed_for_ca"),
            E::CaRevoked(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ca_revoked"),
            E::InvalidState(_) => (StatusCode::CONFLICT, "invalid_state"),
            E::CrlNotAvailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "crl_not_available"),
            E::Policy(p) => policy_status(p),
            E::InvalidCsr(_) => (StatusCode::BAD_REQUEST, "invalid_csr"),
            E::PrivateKeyNotStored(_) => (StatusCode::NOT_FOUND, "private_key_not_stored"),
            E::NotRenewable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not_renewable"),
            E::KeyMismatch => (StatusCode::BAD_REQUEST, "key_mismatch"),
            E::InvalidChain(_) => (StatusCode::BAD_REQUEST, "invalid_chain"),
            E::InvalidCertificate(_) => (StatusCode::BAD_REQUEST, "invalid_certificate"),
            E::InvalidCrl(_) => (StatusCode::BAD_REQUEST, "invalid_crl"),
            E::CaInactive(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ca_inactive"),
            E::CaExpired(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ca_expired"),
            E::HsmUnavailable(m) => {
                tracing::warn!(error = %m, "token unavailable");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "hsm_unavailable",
                    "the key token cannot be reached; try again shortly",
                );
            }
            E::Limit(l) => return limit_error(l),
            E::Internal(m) => return ApiError::internal(m),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// Policy refusals are 422 with a code naming the rule; malformed input is 400.
fn policy_status(p: &PolicyError) -> (StatusCode, &'static str) {
    use PolicyError as P;
    match p {
        P::Name(_) => (StatusCode::UNPROCESSABLE_ENTITY, "name_not_allowed"),
        P::IpSansNotAllowed => (StatusCode::UNPROCESSABLE_ENTITY, "ip_sans_not_allowed"),
        P::UriNotAllowed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "uri_not_allowed"),
        P::KeyNotAllowed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "key_type_not_allowed"),
        P::TtlExceedsMax { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "ttl_exceeds_max"),
        P::TtlExceedsCa(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ttl_exceeds_ca"),
        P::CnRequired | P::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        P::Limit(l) => limit_status(l),
    }
}

/// A configured limit: 413 for a request that is too big, 422 for one that asks for
/// too much work; the code names the limit.
fn limit_status(l: &LimitExceeded) -> (StatusCode, &'static str) {
    if l.is_size() {
        (StatusCode::PAYLOAD_TOO_LARGE, l.code())
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, l.code())
    }
}

fn limit_error(l: &LimitExceeded) -> ApiError {
    let (status, code) = limit_status(l);
    ApiError::new(status, code, l.to_string())
}

/// The error code of an error response, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, Json(body)).into_response();
        resp.extensions_mut().insert(ErrorCode(self.code));
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}
