//! `/v1/pki/trust-anchors` endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam};
use super::{blocking, AppState};
use crate::service::trust::TrustAnchorRequest;
use crate::store::TrustAnchorRecord;
use crate::types::rfc3339;

fn view(r: &TrustAnchorRecord) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "subject": r.subject,
        "fingerprint_sha256": r.fingerprint_sha256,
        "not_after": rfc3339(r.not_after),
        "created_at": rfc3339(r.created_at),
    })
}

#[utoipa::path(post, path = "/v1/pki/trust-anchors", tag = "trust-anchors", operation_id = "createTrustAnchor",
    request_body = TrustAnchorRequest,
    responses(
        (status = 201, description = "Registered", body = super::openapi::TrustAnchor),
        (status = 400, description = "`invalid_certificate` (unparseable, not a CA, or a keyUsage without keyCertSign), `invalid_request`, `invalid_json`"),
        (status = 409, description = "`trust_anchor_exists`: the name or the certificate"),
    ))]
pub async fn create(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<TrustAnchorRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.create_trust_anchor(&who, req)).await?;
    Ok((StatusCode::CREATED, Json(view(&rec))))
}

#[utoipa::path(get, path = "/v1/pki/trust-anchors", tag = "trust-anchors", operation_id = "listTrustAnchors",
    responses((status = 200, description = "The tenant's trust anchors", body = super::openapi::TrustAnchorList)))]
pub async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Value>, ApiError> {
    let recs = st.pki.list_trust_anchors(&who)?;
    Ok(Json(json!({
        "data": recs.iter().map(view).collect::<Vec<_>>(),
        "cursor": null,
        "has_more": false,
    })))
}

#[utoipa::path(get, path = "/v1/pki/trust-anchors/{id}", tag = "trust-anchors", operation_id = "getTrustAnchor",
    params(("id" = String, Path, description = "Trust anchor id (`trust_anchor_…`)")),
    responses(
        (status = 200, description = "The trust anchor, with its PEM", body = super::openapi::TrustAnchorDetail),
        (status = 404, description = "`trust_anchor_not_found`"),
    ))]
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = st.pki.trust_anchor(&who, &id)?;
    let mut v = view(&rec);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "certificate_pem".into(),
            json!(crate::ca::pem("CERTIFICATE", &rec.certificate_der).map_err(ApiError::internal)?),
        );
    }
    Ok(Json(v))
}

#[utoipa::path(delete, path = "/v1/pki/trust-anchors/{id}", tag = "trust-anchors", operation_id = "deleteTrustAnchor",
    params(("id" = String, Path, description = "Trust anchor id (`trust_anchor_…`)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`trust_anchor_not_found`"),
    ))]
pub async fn delete(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    let pki = st.pki.clone();
    blocking(move || pki.delete_trust_anchor(&who, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
