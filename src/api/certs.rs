//! Issuance and certificate endpoints: issue, sign, list, fetch, private key, renew, import.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::audit::AuditSlot;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, OptionalJson, PathParam, QueryParams};
use super::secret::SecretJson;
use super::{blocking, issue_durably, AppState};
use crate::ca::pem;
use crate::policy::Ttl;
use crate::service::certs::{
    CertFilter, ImportRequest, PrivateKeyRequest, DEFAULT_LIMIT, MAX_LIMIT,
};
use crate::service::issue::{IssueRequest, Issued, RenewRequest, SignRequest};
use crate::store::CertRecord;
use crate::types::{rfc3339, Serial};

fn serial_of(r: &CertRecord) -> String {
    hex::decode(&r.serial_hex)
        .map(|b| Serial::from_der_bytes(&b).to_colon_hex())
        .unwrap_or_default()
}

/// One certificate as a list row (the spec's fields and a few more).
pub fn row(r: &CertRecord) -> Value {
    json!({
        "id": r.id,
        "common_name": r.common_name,
        "issuer_ca_id": r.issuer_ca_id,
        "serial_number": serial_of(r),
        "valid_from": rfc3339(r.not_before),
        "valid_until": rfc3339(r.not_after),
        "is_revoked": r.revocation.is_some(),
        "revoked_at": r.revocation.as_ref().map(|v| rfc3339(v.revoked_at)),
        "revocation_reason": r.revocation.as_ref().map(|v| v.reason.clone()),
        "role": r.role,
        "source": r.source,
        "key_type": r.key_type,
        "has_private_key": r.sealed_key.is_some(),
        "csr_id": r.csr_id,
    })
}

/// The 201 body of issue, sign and renew.
pub(super) fn issued_view(i: &Issued) -> Value {
    let mut v = json!({
        "id": i.record.id,
        "certificate": i.certificate_pem,
        "issuing_ca": i.ca_chain.first(),
        "ca_chain": i.ca_chain,
        "serial_number": serial_of(&i.record),
        "not_before": rfc3339(i.record.not_before),
        "not_after": rfc3339(i.record.not_after),
    });
    if let (Some(key), Some(obj)) = (&i.private_key_pem, v.as_object_mut()) {
        obj.insert("private_key".into(), Value::String(key.to_string()));
        obj.insert("private_key_type".into(), json!(i.record.key_type));
    }
    v
}

#[utoipa::path(post, path = "/v1/pki/issue/{role}", tag = "certificates", operation_id = "issue",
    params(("role" = String, Path, description = "Role name")),
    request_body = IssueRequest,
    responses(
        (status = 201, description = "A new key and its certificate; the key is returned this once", body = super::openapi::IssuedCertificate),
        (status = 400, description = "`invalid_request` (bad names or TTL, missing CN when required, more than 100 SANs), `invalid_json`"),
        (status = 404, description = "`role_not_found`, `ca_not_found`"),
        (status = 422, description = "`name_not_allowed`, `ip_sans_not_allowed`, `uri_not_allowed`, `key_type_not_allowed`, `ttl_exceeds_max`, `ttl_exceeds_ca`, `ca_inactive`, `ca_expired`, `ca_revoked`"),
        (status = 503, description = "`hsm_unavailable`"),
    ))]
pub async fn issue(
    State(st): State<AppState>,
    slot: AuditSlot,
    Caller(who): Caller,
    PathParam(role): PathParam<String>,
    JsonBody(req): JsonBody<IssueRequest>,
) -> Result<SecretJson, ApiError> {
    let pki = st.pki.clone();
    let issued = issue_durably(&st, &slot, move || pki.issue(&who, &role, req)).await?;
    Ok(SecretJson(StatusCode::CREATED, issued_view(&issued)))
}

#[utoipa::path(post, path = "/v1/pki/sign/{role}", tag = "certificates", operation_id = "sign",
    params(("role" = String, Path, description = "Role name")),
    request_body = SignRequest,
    responses(
        (status = 201, description = "A certificate for the CSR's key", body = super::openapi::IssuedCertificate),
        (status = 400, description = "`invalid_csr` (unparseable, bad self-signature, unsupported SAN type), `invalid_request`, `invalid_json`"),
        (status = 404, description = "`role_not_found`, `ca_not_found`"),
        (status = 422, description = "`name_not_allowed`, `ip_sans_not_allowed`, `uri_not_allowed`, `key_type_not_allowed`, `ttl_exceeds_max`, `ttl_exceeds_ca`, `ca_inactive`, `ca_expired`, `ca_revoked`"),
        (status = 503, description = "`hsm_unavailable`"),
    ))]
pub async fn sign(
    State(st): State<AppState>,
    slot: AuditSlot,
    Caller(who): Caller,
    PathParam(role): PathParam<String>,
    JsonBody(req): JsonBody<SignRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pki = st.pki.clone();
    let issued = issue_durably(&st, &slot, move || pki.sign_csr(&who, &role, req)).await?;
    Ok((StatusCode::CREATED, Json(issued_view(&issued))))
}

#[utoipa::path(post, path = "/v1/pki/certificates/{id}/renew", tag = "certificates", operation_id = "renew",
    params(("id" = String, Path, description = "Certificate id (`cert_…`)")),
    request_body(content = Option<RenewRequest>, description = "Nothing, or `{ttl?, private_key_format?}`"),
    responses(
        (status = 201, description = "A new key and certificate for the same names, under the role as it is now", body = super::openapi::IssuedCertificate),
        (status = 400, description = "`invalid_request` (e.g. the role's rules no longer admit the names' form), `invalid_json`"),
        (status = 403, description = "`missing_capability`: renewal needs `issue:` of the certificate's role"),
        (status = 404, description = "`certificate_not_found`, `role_not_found`"),
        (status = 422, description = "`not_renewable` (imported, or its role is gone), and the refusals of issue"),
        (status = 503, description = "`hsm_unavailable`"),
    ))]
pub async fn renew(
    State(st): State<AppState>,
    slot: AuditSlot,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
    // An empty body means "renew with the defaults".
    OptionalJson(req): OptionalJson<RenewRequest>,
) -> Result<SecretJson, ApiError> {
    let pki = st.pki.clone();
    let issued = issue_durably(&st, &slot, move || pki.renew(&who, &id, req)).await?;
    Ok(SecretJson(StatusCode::CREATED, issued_view(&issued)))
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m)
}

/// Parse the list query. Unknown parameters are refused so a typo doesn't silently widen
/// the listing.
fn filter_from(q: HashMap<String, String>) -> Result<CertFilter, ApiError> {
    let mut f = CertFilter {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    for (k, v) in q {
        match k.as_str() {
            "ca_id" => f.ca_id = Some(v),
            "expiring_within" => {
                f.expiring_within =
                    Some(Ttl::parse(&v).map_err(|e| bad(format!("expiring_within: {e}")))?)
            }
            "common_name" => f.common_name = Some(v),
            "role" => f.role = Some(v),
            "revoked" => {
                f.revoked = Some(match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("revoked must be true or false")),
                })
            }
            "limit" => {
                let n: usize = v.parse().map_err(|_| bad("limit must be a number"))?;
                if n == 0 || n > MAX_LIMIT {
                    return Err(bad(format!("limit must be between 1 and {MAX_LIMIT}")));
                }
                f.limit = n;
            }
            "cursor" => f.cursor = Some(v).filter(|c| !c.is_empty()),
            other => return Err(bad(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(f)
}

#[utoipa::path(get, path = "/v1/pki/certificates", tag = "certificates", operation_id = "listCertificates",
    params(
        ("ca_id" = Option<String>, Query, description = "Only this issuer's"),
        ("expiring_within" = Option<String>, Query, pattern = "^(?:[0-9]{1,9}|(?:[0-9]{1,4}[smhd]){1,3})$",
            description = "A duration: only certificates not yet expired whose notAfter is within it, soonest first"),
        ("common_name" = Option<String>, Query, description = "Exact, case-insensitive"),
        ("role" = Option<String>, Query, description = "Only this role's"),
        ("revoked" = Option<bool>, Query, description = "Only revoked, or only not revoked"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<String>, Query, description = "From the previous page, with the same filters"),
    ),
    responses(
        (status = 200, description = "A page of certificates", body = super::openapi::CertificateList),
        (status = 400, description = "`invalid_request`: a bad or unknown query parameter, or a cursor that is not ours"),
        (status = 404, description = "`ca_not_found`: `ca_id` names no CA of the tenant"),
    ))]
pub async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
    QueryParams(q): QueryParams<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let f = filter_from(q)?;
    let pki = st.pki.clone();
    let page = blocking(move || pki.list_certs(&who, f)).await?;
    Ok(Json(json!({
        "data": page.items.iter().map(row).collect::<Vec<_>>(),
        "has_more": page.cursor.is_some(),
        "cursor": page.cursor,
    })))
}

#[utoipa::path(get, path = "/v1/pki/certificates/{id}", tag = "certificates", operation_id = "getCertificate",
    params(("id" = String, Path, description = "Certificate id (`cert_…`)")),
    responses(
        (status = 200, description = "The certificate with PEM, chain and SANs", body = super::openapi::CertificateDetail),
        (status = 404, description = "`certificate_not_found`"),
    ))]
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = st.pki.cert_for(&who, &id)?;
    let chain = st.pki.chain_for(&rec)?;
    let mut v = row(&rec);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "certificate".into(),
            json!(pem("CERTIFICATE", &rec.certificate_der).map_err(ApiError::internal)?),
        );
        obj.insert("ca_chain".into(), json!(chain));
        obj.insert("san_dns".into(), json!(rec.san_dns));
        obj.insert("san_ip".into(), json!(rec.san_ip));
        obj.insert("san_uri".into(), json!(rec.san_uri));
        obj.insert("not_before".into(), json!(rfc3339(rec.not_before)));
        obj.insert("not_after".into(), json!(rfc3339(rec.not_after)));
        obj.insert("created_at".into(), json!(rfc3339(rec.created_at)));
        if let Some(label) = &rec.token_key_label {
            let key = crate::hsm::KeyRef {
                label: label.clone(),
                id: rec.token_key_id.clone(),
            };
            obj.insert("token_key_uri".into(), json!(key.uri(&st.token_label)));
        }
    }
    Ok(Json(v))
}

#[utoipa::path(post, path = "/v1/pki/certificates/{id}/private-key", tag = "certificates", operation_id = "getPrivateKey",
    params(("id" = String, Path, description = "Certificate id (`cert_…`)")),
    request_body(content = Option<PrivateKeyRequest>, description = "Nothing, or `{private_key_format?}`"),
    responses(
        (status = 200, description = "The stored key, decrypted in the token", body = super::openapi::PrivateKey),
        (status = 400, description = "`invalid_request` (unknown field, bad format), `invalid_json`"),
        (status = 404, description = "`certificate_not_found`, `private_key_not_stored`"),
        (status = 503, description = "`hsm_unavailable`"),
    ))]
pub async fn private_key(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
    OptionalJson(req): OptionalJson<PrivateKeyRequest>,
) -> Result<SecretJson, ApiError> {
    let pki = st.pki.clone();
    let (pem, key_type) =
        blocking(move || pki.stored_private_key(&who, &id, req.private_key_format)).await?;
    Ok(SecretJson(
        StatusCode::OK,
        json!({ "private_key": pem.as_str(), "private_key_type": key_type }),
    ))
}

#[utoipa::path(post, path = "/v1/pki/certificates/import", tag = "certificates", operation_id = "importCertificate",
    request_body = ImportRequest,
    responses(
        (status = 201, description = "Tracked", body = super::openapi::ImportedCertificate),
        (status = 400, description = "`invalid_certificate`, `invalid_chain`, `key_mismatch`, `invalid_request`, `invalid_json`"),
        (status = 409, description = "`certificate_exists`"),
        (status = 503, description = "`hsm_unavailable` (sealing a given private key)"),
    ))]
pub async fn import(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<ImportRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.import(&who, req)).await?;
    let mut v = row(&rec);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "certificate".into(),
            json!(pem("CERTIFICATE", &rec.certificate_der).map_err(ApiError::internal)?),
        );
    }
    Ok((StatusCode::CREATED, Json(v)))
}
