//! Revocation and CRL endpoints.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam, QueryParams};
use super::{blocking, AppState};
use crate::ca::pem;
use crate::service::revoke::{RevokeRequest, UnrevokeRequest};
use crate::types::{rfc3339, Serial};

fn colon_hex(h: &str) -> String {
    hex::decode(h)
        .map(|b| Serial::from_der_bytes(&b).to_colon_hex())
        .unwrap_or_default()
}

#[utoipa::path(post, path = "/v1/pki/revoke", tag = "revocation", operation_id = "revoke",
    request_body = crate::service::revoke::RevokeRequest,
    responses(
        (status = 200, description = "Revoked, now or before (`already_revoked`); a `certificate_hold` given a permanent reason keeps its time and answers `already_revoked: false`", body = super::openapi::Revoked),
        (status = 400, description = "`invalid_request`: a serial that is not hex or longer than 20 octets, an unknown reason"),
        (status = 404, description = "`certificate_not_found`"),
        (status = 409, description = "`ambiguous_serial`: two tracked certificates share the serial"),
        (status = 422, description = "`cannot_revoke_root`, `hold_not_allowed_for_ca`"),
    ))]
pub async fn revoke(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<RevokeRequest>,
) -> Result<Json<Value>, ApiError> {
    let pki = st.pki.clone();
    let r = blocking(move || pki.revoke(&who, req)).await?;
    Ok(Json(json!({
        "id": r.id,
        "serial_number": colon_hex(&r.serial_hex),
        "revocation_time": rfc3339(r.revocation.revoked_at),
        "reason": r.revocation.reason,
        "already_revoked": !r.newly_revoked,
    })))
}

#[utoipa::path(post, path = "/v1/pki/unrevoke", tag = "revocation", operation_id = "unrevoke",
    request_body = crate::service::revoke::UnrevokeRequest,
    responses(
        (status = 200, description = "Released from `certificate_hold`", body = super::openapi::Unrevoked),
        (status = 404, description = "`certificate_not_found`"),
        (status = 409, description = "`invalid_state`: not on hold, or `ambiguous_serial`"),
    ))]
pub async fn unrevoke(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<UnrevokeRequest>,
) -> Result<Json<Value>, ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.unrevoke(&who, req)).await?;
    Ok(Json(json!({
        "id": rec.id,
        "serial_number": colon_hex(&rec.serial_hex),
        "is_revoked": false,
    })))
}

#[utoipa::path(post, path = "/v1/pki/ca/{id}/crl", tag = "revocation", operation_id = "rebuildCrl",
    params(("id" = String, Path, description = "CA id (`ca_…`)")),
    responses(
        (status = 200, description = "A new full CRL was signed and published", body = super::openapi::CrlRebuilt),
        (status = 404, description = "`ca_not_found`"),
        (status = 503, description = "`hsm_unavailable`"),
    ))]
/// `POST /v1/pki/ca/{id}/crl`: rebuild now.
pub async fn rebuild(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<Value>, ApiError> {
    st.pki.ca_for(&who, &id)?;
    let pki = st.pki.clone();
    let meta = blocking(move || pki.rebuild_crl(&id)).await?;
    Ok(Json(json!({
        "crl_number": meta.number,
        "this_update": rfc3339(meta.this_update),
        "next_update": rfc3339(meta.next_update),
        "entries": meta.entries,
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CrlQuery {
    #[param(value_type = Option<super::openapi::CrlFormat>)]
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/pki/ca/{id}/crl", tag = "revocation", operation_id = "getCrl",
    params(
        ("id" = String, Path, description = "CA id (`ca_…`)"),
        CrlQuery,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer"),
    ),
    responses(
        (status = 200, description = "The current full CRL: DER, or PEM with `Accept: application/x-pem-file` or `text/plain` or `?format=pem`",
            headers(("ETag" = String), ("Cache-Control" = String)),
            content((super::openapi::Der = "application/pkix-crl"), (String = "application/x-pem-file"))),
        (status = 304, description = "Not modified (`If-None-Match` matched)", headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 400, description = "`invalid_request`: an unknown `format` or query parameter"),
        (status = 404, description = "`ca_not_found`"),
        (status = 503, description = "`crl_not_available`: none published yet"),
    ))]
/// `GET /v1/pki/ca/{id}/crl`: public, from memory; DER unless PEM is asked for.
pub async fn get_full(
    State(st): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<CrlQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(st, id, q, headers, false).await
}

#[utoipa::path(get, path = "/v1/pki/ca/{id}/crl/delta", tag = "revocation", operation_id = "getDeltaCrl",
    params(
        ("id" = String, Path, description = "CA id (`ca_…`)"),
        CrlQuery,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer"),
    ),
    responses(
        (status = 200, description = "The current delta CRL, in the same forms as the full CRL",
            headers(("ETag" = String), ("Cache-Control" = String)),
            content((super::openapi::Der = "application/pkix-crl"), (String = "application/x-pem-file"))),
        (status = 304, description = "Not modified (`If-None-Match` matched)", headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 400, description = "`invalid_request`: an unknown `format` or query parameter"),
        (status = 404, description = "`ca_not_found`"),
        (status = 503, description = "`crl_not_available`: none published yet, or delta CRLs are switched off"),
    ))]
/// `GET /v1/pki/ca/{id}/crl/delta`.
pub async fn get_delta(
    State(st): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<CrlQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(st, id, q, headers, true).await
}

async fn serve(
    st: AppState,
    id: String,
    q: CrlQuery,
    headers: HeaderMap,
    delta: bool,
) -> Result<Response, ApiError> {
    let pki = st.pki.clone();
    // The first GET after a start may read the file from disk; later ones are in memory.
    let crl = blocking(move || pki.published_crl(&id, delta)).await?;
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(",");
    let wants_pem = match q.format.as_deref() {
        Some("pem") => true,
        Some("der") => false,
        None => accept.contains("application/x-pem-file") || accept.contains("text/plain"),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "format must be der or pem",
            ))
        }
    };
    let max_age = (crl.next_update - crate::types::now())
        .whole_seconds()
        .clamp(0, 300);
    let cache = format!("public, max-age={max_age}, must-revalidate");
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == crl.etag || t.trim() == "*")
        });
    if not_modified {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, crl.etag.clone()),
                (header::CACHE_CONTROL, cache),
            ],
        )
            .into_response());
    }
    if wants_pem {
        let body = pem("X509 CRL", &crl.der).map_err(ApiError::internal)?;
        return Ok((
            [
                (header::CONTENT_TYPE, "application/x-pem-file".to_string()),
                (header::ETAG, crl.etag.clone()),
                (header::CACHE_CONTROL, cache),
            ],
            body,
        )
            .into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/pkix-crl".to_string()),
            (header::ETAG, crl.etag.clone()),
            (header::CACHE_CONTROL, cache),
        ],
        crl.der.clone(),
    )
        .into_response())
}
