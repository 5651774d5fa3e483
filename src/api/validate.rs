//! `POST /v1/pki/certificates/validate`: chain validation (RFC 5280 §6).
//!
//! 200 with the outcome whether or not the certificate is valid (`valid`, `chain_valid`,
//! `not_expired`, `not_revoked`, `trusted_anchor`, `chain`, `reason`; see
//! `crate::validate`); 400 `invalid_certificate` / `invalid_crl` / `invalid_request` when
//! the input is malformed.

use axum::extract::State;
use axum::Json;

use super::error::ApiError;
use super::extract::{Caller, JsonBody};
use super::{blocking, AppState};
use crate::service::validate::ValidateRequest;
use crate::validate::Outcome;

#[utoipa::path(post, path = "/v1/pki/certificates/validate", tag = "certificates", operation_id = "validateCertificate",
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "The outcome, valid or not", body = Outcome),
        (status = 400, description = "`invalid_certificate`, `invalid_crl`, `invalid_request`, `invalid_json`"),
    ))]
pub async fn validate(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<ValidateRequest>,
) -> Result<Json<Outcome>, ApiError> {
    let pki = st.pki.clone();
    let outcome = blocking(move || pki.validate_chain(&who, req)).await?;
    Ok(Json(outcome))
}
