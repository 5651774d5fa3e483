//! `/v1/pki/csr` endpoints: the approval workflow and CSRs generated in the token.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, OptionalJson, PathParam, QueryParams};
use super::{blocking, durable, AppState};
use crate::service::csr::{
    GenerateCsrRequest, ImportCsrRequest, RejectRequest, SignApprovedRequest,
};
use crate::store::{CsrRecord, CsrSource, CsrStatus};
use crate::types::rfc3339;

fn view(r: &CsrRecord, token_label: &str, full: bool) -> Value {
    let key_uri = r.token_key().map(|k| k.uri(token_label));
    let mut v = json!({
        "id": r.id,
        "status": r.status,
        "source": r.source,
        "common_name": r.common_name,
        "subject": r.subject,
        "san_dns": r.san_dns,
        "san_ip": r.san_ip,
        "san_uri": r.san_uri,
        "key_type": r.key_type,
        "key_size": r.key_size,
        "requested_by": r.requested_by,
        "note": r.note,
        "created_at": rfc3339(r.created_at),
        "approved_by": r.approved_by,
        "approved_at": r.approved_at.map(rfc3339),
        "rejected_by": r.rejected_by,
        "rejected_at": r.rejected_at.map(rfc3339),
        "reason": r.reason,
        "certificate_id": r.certificate_id,
        "signed_at": r.signed_at.map(rfc3339),
    });
    if let Some(obj) = v.as_object_mut() {
        if r.source == CsrSource::Generated {
            obj.insert("key_uri".into(), json!(key_uri));
        }
        if full || r.source == CsrSource::Generated {
            obj.insert("csr_pem".into(), json!(r.csr_pem));
        }
    }
    v
}

#[utoipa::path(post, path = "/v1/pki/csr/import", tag = "csrs", operation_id = "importCsr",
    request_body = ImportCsrRequest,
    responses(
        (status = 201, description = "Taken in, `pending`", body = super::openapi::Csr),
        (status = 400, description = "`invalid_csr` (unparseable, bad self-signature, unsupported SAN type), `invalid_json`, `invalid_request`"),
        (status = 422, description = "`key_type_not_allowed`: a key no certificate may have (EC other than P-256/P-384, RSA below 2048 bits, Ed25519, ...)"),
    ))]
pub async fn import(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<ImportCsrRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.import_csr(&who, req)).await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&rec, &st.token_label, false)),
    ))
}

#[utoipa::path(post, path = "/v1/pki/csr", tag = "csrs", operation_id = "generateCsr",
    request_body = GenerateCsrRequest,
    responses(
        (status = 201, description = "A key pair made in the token and a CSR it signed; no private key in the answer", body = super::openapi::Csr),
        (status = 400, description = "`invalid_request` (e.g. a bad IP address or country), `invalid_key_size`, `invalid_json`"),
        (status = 422, description = "`name_not_allowed`: a name is neither a host name nor an IP address"),
        (status = 503, description = "`hsm_unavailable`"),
    ))]
pub async fn generate(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<GenerateCsrRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.generate_csr(&who, req)).await?;
    Ok((StatusCode::CREATED, Json(view(&rec, &st.token_label, true))))
}

#[utoipa::path(get, path = "/v1/pki/csr/{id}", tag = "csrs", operation_id = "getCsr",
    params(("id" = String, Path, description = "CSR id (`csr_…`)")),
    responses(
        (status = 200, description = "The CSR, with `csr_pem`", body = super::openapi::Csr),
        (status = 404, description = "`csr_not_found`"),
    ))]
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(
        &st.pki.csr_for(&who, &id)?,
        &st.token_label,
        true,
    )))
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m)
}

#[utoipa::path(get, path = "/v1/pki/csr", tag = "csrs", operation_id = "listCsrs",
    params(
        ("status" = Option<CsrStatus>, Query, description = "Only CSRs in this state"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<String>, Query, description = "From the previous page"),
    ),
    responses(
        (status = 200, description = "A page of CSRs", body = super::openapi::CsrList),
        (status = 400, description = "`invalid_request`: a bad or unknown query parameter, or a cursor that is not ours"),
    ))]
pub async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
    QueryParams(q): QueryParams<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    use base64::Engine;
    let (mut status, mut limit, mut after) = (None, 100usize, None);
    for (k, v) in q {
        match k.as_str() {
            "status" => {
                status = Some(match v.as_str() {
                    "pending" => CsrStatus::Pending,
                    "approved" => CsrStatus::Approved,
                    "rejected" => CsrStatus::Rejected,
                    "signed" => CsrStatus::Signed,
                    _ => return Err(bad("status must be pending, approved, rejected or signed")),
                })
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad("limit must be between 1 and 1000"))?
            }
            "cursor" if !v.is_empty() => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&v)
                    .ok()
                    .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                    .ok_or_else(|| bad("cursor is not valid"))?;
                after = Some(u64::from_be_bytes(raw));
            }
            "cursor" => {}
            other => return Err(bad(format!("unknown query parameter {other:?}"))),
        }
    }
    let pki = st.pki.clone();
    let (recs, next) = blocking(move || pki.list_csrs(&who, status, after, limit)).await?;
    let cursor =
        next.map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n.to_be_bytes()));
    Ok(Json(json!({
        "data": recs.iter().map(|r| view(r, &st.token_label, false)).collect::<Vec<_>>(),
        "has_more": cursor.is_some(),
        "cursor": cursor,
    })))
}

/// Approval takes no fields; a body, if any, must be `{}` (a typo must not pass silently).
#[derive(serde::Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {}

#[utoipa::path(post, path = "/v1/pki/csr/{id}/approve", tag = "csrs", operation_id = "approveCsr",
    params(("id" = String, Path, description = "CSR id (`csr_…`)")),
    request_body(content = Option<ApproveRequest>, description = "Nothing, or `{}`"),
    responses(
        (status = 200, description = "Approved", body = super::openapi::Csr),
        (status = 400, description = "`invalid_json`, `invalid_request` (a body other than `{}`)"),
        (status = 403, description = "`four_eyes`: a token of the party that imported or generated it may not approve it; or `missing_capability`"),
        (status = 404, description = "`csr_not_found`"),
        (status = 409, description = "`invalid_state`: not pending"),
    ))]
pub async fn approve(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
    OptionalJson(ApproveRequest {}): OptionalJson<ApproveRequest>,
) -> Result<Json<Value>, ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.approve_csr(&who, &id)).await?;
    Ok(Json(view(&rec, &st.token_label, false)))
}

#[utoipa::path(post, path = "/v1/pki/csr/{id}/reject", tag = "csrs", operation_id = "rejectCsr",
    params(("id" = String, Path, description = "CSR id (`csr_…`)")),
    request_body(content = Option<RejectRequest>, description = "Nothing, or `{\"reason\": …}`"),
    responses(
        (status = 200, description = "Rejected", body = super::openapi::Csr),
        (status = 404, description = "`csr_not_found`"),
        (status = 409, description = "`invalid_state`: neither pending nor approved"),
    ))]
pub async fn reject(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
    OptionalJson(req): OptionalJson<RejectRequest>,
) -> Result<Json<Value>, ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.reject_csr(&who, &id, req)).await?;
    Ok(Json(view(&rec, &st.token_label, false)))
}

#[utoipa::path(post, path = "/v1/pki/csr/{id}/sign", tag = "csrs", operation_id = "signApprovedCsr",
    params(("id" = String, Path, description = "CSR id (`csr_…`)")),
    request_body = SignApprovedRequest,
    responses(
        (status = 201, description = "Signed; the CSR is now `signed`", body = super::openapi::CsrCertificate),
        (status = 404, description = "`csr_not_found`, `ca_not_found`"),
        (status = 409, description = "`invalid_state`: not approved"),
        (status = 422, description = "`ttl_exceeds_ca`, `ca_inactive`, `ca_expired`, `ca_revoked`, `key_type_not_allowed`"),
        (status = 503, description = "`hsm_unavailable`"),
    ))]
pub async fn sign(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<SignApprovedRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pki = st.pki.clone();
    let (pending, csr_id) = blocking(move || pki.sign_approved_csr(&who, &id, req)).await?;
    // Audited by the middleware: the call succeeds only once the CSR is marked signed.
    let issued = durable(&st, pending).await?;
    let pki = st.pki.clone();
    let cert_id = issued.record.id.clone();
    let csr = csr_id.clone();
    blocking(move || pki.mark_csr_signed(&csr, &cert_id)).await?;
    let mut v = super::certs::issued_view(&issued);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("csr_id".into(), json!(csr_id));
    }
    Ok((StatusCode::CREATED, Json(v)))
}
