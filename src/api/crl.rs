//! Revocation and CRL endpoints.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, OptionalJson, PathParam, QueryParams};
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

/// `POST /v1/pki/ca/{id}/crl` takes no parameters: an empty body, or `{}`. Anything else
/// is refused like an unknown field anywhere, so a client that thinks it is setting
/// something learns that it is not.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RebuildCrlRequest {}

#[utoipa::path(post, path = "/v1/pki/ca/{id}/crl", tag = "revocation", operation_id = "rebuildCrl",
    params(("id" = String, Path, description = "CA id (`ca_…`)")),
    request_body(content = Option<RebuildCrlRequest>, description = "None, or `{}`"),
    responses(
        (status = 200, description = "A new full CRL was signed and published", body = super::openapi::CrlRebuilt),
        (status = 400, description = "`invalid_request`: a body with fields"),
        (status = 404, description = "`ca_not_found`"),
        (status = 503, description = "`hsm_unavailable`"),
    ))]
/// `POST /v1/pki/ca/{id}/crl`: rebuild now.
pub async fn rebuild(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
    OptionalJson(RebuildCrlRequest {}): OptionalJson<RebuildCrlRequest>,
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
            headers(("ETag" = String, description = "Differs between the DER and PEM forms"), ("Cache-Control" = String), ("Vary" = String, description = "`Accept`")),
            content((super::openapi::Der = "application/pkix-crl"), (String = "application/x-pem-file"))),
        (status = 304, description = "Not modified (`If-None-Match` matched the ETag of the form asked for, weakly: `W/` is ignored)", headers(("ETag" = String, description = "Differs between the DER and PEM forms"), ("Cache-Control" = String), ("Vary" = String, description = "`Accept`"))),
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
            headers(("ETag" = String, description = "Differs between the DER and PEM forms"), ("Cache-Control" = String), ("Vary" = String, description = "`Accept`")),
            content((super::openapi::Der = "application/pkix-crl"), (String = "application/x-pem-file"))),
        (status = 304, description = "Not modified (`If-None-Match` matched the ETag of the form asked for, weakly: `W/` is ignored)", headers(("ETag" = String, description = "Differs between the DER and PEM forms"), ("Cache-Control" = String), ("Vary" = String, description = "`Accept`"))),
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
    // PEM and DER are two representations of one CRL: each has its own ETag, and caches
    // are told the choice depends on Accept, so none hands PEM to a DER client.
    let etag = if wants_pem {
        pem_etag(&crl.etag)
    } else {
        crl.etag.clone()
    };
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| if_none_match_hits(v, &etag));
    let common = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, cache),
        (header::VARY, "Accept".to_string()),
    ];
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    if wants_pem {
        let body = pem("X509 CRL", &crl.der).map_err(ApiError::internal)?;
        return Ok((
            [(header::CONTENT_TYPE, "application/x-pem-file".to_string())],
            common,
            body,
        )
            .into_response());
    }
    Ok((
        [(header::CONTENT_TYPE, "application/pkix-crl".to_string())],
        common,
        crl.der.clone(),
    )
        .into_response())
}

/// The PEM representation's ETag: the DER one's with a suffix inside the quotes.
fn pem_etag(der_etag: &str) -> String {
    match der_etag.strip_suffix('"') {
        Some(open) => format!("{open}-pem\""),
        None => format!("{der_etag}-pem"),
    }
}

/// Whether an `If-None-Match` value names `etag`, by the weak comparison RFC 9110 §13.1.2
/// prescribes for it: `W/"x"` matches `"x"`.
fn if_none_match_hits(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_per_representation() {
        let der = "\"0a1b\"";
        let pem = pem_etag(der);
        assert_eq!(pem, "\"0a1b-pem\"");
        assert!(if_none_match_hits(der, der));
        assert!(if_none_match_hits("W/\"0a1b\"", der));
        assert!(if_none_match_hits("\"zz\", W/\"0a1b\"", der));
        assert!(if_none_match_hits("*", der));
        assert!(!if_none_match_hits(der, &pem));
        assert!(!if_none_match_hits(&pem, der));
        assert!(!if_none_match_hits("\"0a1b", der));
    }
}
