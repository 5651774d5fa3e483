//! `/v1/pki/ca` endpoints.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam, QueryParams};
use super::{blocking, AppState};
use crate::ca::pem;
use crate::service::cas::CreateCaRequest;
use crate::store::CaRecord;
use crate::types::{rfc3339, CaType, Serial};

/// A CA as the API shows it: the spec's fields plus serial, fingerprint, key URI and,
/// like certificate rows, its revocation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CaView {
    id: String,
    name: String,
    common_name: String,
    ca_type: CaType,
    parent_ca_id: Option<String>,
    key_type: crate::keys::KeyType,
    key_size: u32,
    valid_from: String,
    valid_until: String,
    is_active: bool,
    certificates_issued: u64,
    created_at: String,
    serial_number: String,
    fingerprint_sha256: String,
    key_uri: String,
    /// Whether the CA's own certificate is revoked (listed on its parent's CRL).
    is_revoked: bool,
    #[schema(required = true)]
    revoked_at: Option<String>,
    #[schema(required = true)]
    revocation_reason: Option<String>,
}

impl CaView {
    fn new(rec: &CaRecord, token_label: &str) -> Self {
        let serial = hex::decode(&rec.serial_hex)
            .map(|b| Serial::from_der_bytes(&b).to_colon_hex())
            .unwrap_or_default();
        CaView {
            id: rec.id.clone(),
            name: rec.name.clone(),
            common_name: rec.common_name.clone(),
            ca_type: rec.ca_type,
            parent_ca_id: rec.parent_id.clone(),
            key_type: rec.key_spec.key_type(),
            key_size: rec.key_spec.size(),
            valid_from: rfc3339(rec.not_before),
            valid_until: rfc3339(rec.not_after),
            is_active: rec.is_active,
            certificates_issued: rec.certificates_issued,
            created_at: rfc3339(rec.created_at),
            serial_number: serial,
            fingerprint_sha256: hex::encode(Sha256::digest(&rec.certificate_der)),
            key_uri: rec.key_ref().uri(token_label),
            is_revoked: rec.revocation.is_some(),
            revoked_at: rec.revocation.as_ref().map(|r| rfc3339(r.revoked_at)),
            revocation_reason: rec.revocation.as_ref().map(|r| r.reason.clone()),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CaList {
    data: Vec<CaView>,
    cursor: Option<String>,
    has_more: bool,
}

#[utoipa::path(post, path = "/v1/pki/ca", tag = "cas", operation_id = "createCa",
    request_body = CreateCaRequest,
    responses(
        (status = 201, description = "Created; the key was made in the token", body = CaView),
        (status = 400, description = "`invalid_json`, `invalid_request`, `invalid_key_size`, `invalid_body`"),
        (status = 404, description = "`ca_not_found`: the parent"),
        (status = 409, description = "`ca_name_exists`"),
        (status = 422, description = "`ca_inactive`, `ca_expired`, `ca_revoked`: the parent cannot sign"),
        (status = 503, description = "`hsm_unavailable`"),
    ))]
pub async fn create(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<CreateCaRequest>,
) -> Result<(StatusCode, Json<CaView>), ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.create_ca(&who, req)).await?;
    Ok((
        StatusCode::CREATED,
        Json(CaView::new(&rec, &st.token_label)),
    ))
}

#[utoipa::path(get, path = "/v1/pki/ca", tag = "cas", operation_id = "listCas",
    responses((status = 200, description = "The tenant's CAs", body = CaList)))]
pub async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<CaList>, ApiError> {
    let recs = st.pki.list_cas(&who)?;
    Ok(Json(CaList {
        data: recs
            .iter()
            .map(|r| CaView::new(r, &st.token_label))
            .collect(),
        cursor: None,
        has_more: false,
    }))
}

#[utoipa::path(get, path = "/v1/pki/ca/{id}", tag = "cas", operation_id = "getCa",
    params(("id" = String, Path, description = "CA id (`ca_…`)")),
    responses(
        (status = 200, description = "The CA", body = CaView),
        (status = 404, description = "`ca_not_found`"),
    ))]
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<CaView>, ApiError> {
    let rec = st.pki.ca_for(&who, &id)?;
    Ok(Json(CaView::new(&rec, &st.token_label)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCa {
    /// Stop (`false`) or resume (`true`) signing.
    #[schema(value_type = bool, required = true)]
    is_active: Option<bool>,
}

#[utoipa::path(patch, path = "/v1/pki/ca/{id}", tag = "cas", operation_id = "updateCa",
    params(("id" = String, Path, description = "CA id (`ca_…`)")),
    request_body = PatchCa,
    responses(
        (status = 200, description = "The CA as it is now", body = CaView),
        (status = 404, description = "`ca_not_found`"),
    ))]
pub async fn patch(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<PatchCa>,
) -> Result<Json<CaView>, ApiError> {
    let Some(active) = body.is_active else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "nothing to change: the body may set is_active",
        ));
    };
    let pki = st.pki.clone();
    let rec = blocking(move || pki.set_ca_active(&who, &id, active)).await?;
    Ok(Json(CaView::new(&rec, &st.token_label)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    #[param(value_type = Option<super::openapi::CertificateFormat>)]
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/pki/ca/{id}/certificate", tag = "cas", operation_id = "getCaCertificate",
    params(("id" = String, Path, description = "CA id (`ca_…`)"), FormatQuery),
    responses(
        (status = 200, description = "JSON with PEM by default; DER for `Accept: application/pkix-cert` or `?format=der`; bare PEM for `?format=pem`",
            content(
                (super::openapi::CaCertificate = "application/json"),
                (super::openapi::Der = "application/pkix-cert"),
                (String = "application/x-pem-file"),
            )),
        (status = 400, description = "`invalid_request`: an unknown `format` or query parameter"),
        (status = 404, description = "`ca_not_found`"),
    ))]
/// The CA certificate is public (relying parties need it): no token required.
/// JSON with PEM by default; DER for `Accept: application/pkix-cert` or `?format=der`
/// (what AIA caIssuers URLs point at, since fetchers send no Accept header); bare PEM
/// for `?format=pem`.
pub async fn certificate(
    State(st): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = st.pki.ca_public(&id)?;
    let accept_der = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("application/pkix-cert"));
    let wants_der = match q.format.as_deref() {
        Some("der") => true,
        Some("pem") => {
            let pem = pem("CERTIFICATE", &rec.certificate_der).map_err(ApiError::internal)?;
            return Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response());
        }
        Some("json") | None => accept_der,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "format must be der, pem or json",
            ))
        }
    };
    if wants_der {
        return Ok((
            [(header::CONTENT_TYPE, "application/pkix-cert")],
            rec.certificate_der,
        )
            .into_response());
    }
    let pem = pem("CERTIFICATE", &rec.certificate_der).map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({ "certificate_pem": pem })).into_response())
}
