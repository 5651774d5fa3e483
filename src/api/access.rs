//! Tenants (`/v1/sys/tenants`), API tokens (`/v1/auth/tokens`) and the audit log
//! (`/v1/audit`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam, QueryParams};
use super::{blocking, AppState};
use crate::service::auth::{CreateTenantRequest, CreateTokenRequest};
use crate::store::{ApiTokenRecord, TenantRecord};
use crate::types::rfc3339;

fn token_view(r: &ApiTokenRecord) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "tenant": r.tenant,
        "capabilities": r.capabilities,
        "created_at": rfc3339(r.created_at),
        "expires_at": r.expires_at.map(rfc3339),
        "revoked_at": r.revoked_at.map(rfc3339),
    })
}

fn tenant_view(r: &TenantRecord) -> Value {
    json!({"name": r.name, "created_at": rfc3339(r.created_at)})
}

#[utoipa::path(post, path = "/v1/sys/tenants", tag = "sys", operation_id = "createTenant",
    request_body = crate::service::auth::CreateTenantRequest,
    responses(
        (status = 201, description = "Created", body = super::openapi::Tenant),
        (status = 409, description = "`tenant_exists`"),
    ))]
pub async fn create_tenant(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<CreateTenantRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.create_tenant(&who, req)).await?;
    Ok((StatusCode::CREATED, Json(tenant_view(&rec))))
}

#[utoipa::path(get, path = "/v1/sys/tenants", tag = "sys", operation_id = "listTenants",
    responses((status = 200, description = "Every tenant", body = super::openapi::TenantList)))]
pub async fn list_tenants(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Value>, ApiError> {
    let pki = st.pki.clone();
    let list = blocking(move || pki.list_tenants(&who)).await?;
    Ok(Json(
        json!({"tenants": list.iter().map(tenant_view).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(post, path = "/v1/auth/tokens", tag = "tokens", operation_id = "createToken",
    request_body = crate::service::auth::CreateTokenRequest,
    responses(
        (status = 201, description = "Created; `token` is the secret, shown this once", body = super::openapi::NewToken),
        (status = 403, description = "`missing_capability`: a token can grant only capabilities it holds, and only a `sys` token other tenants"),
        (status = 404, description = "`tenant_not_found`"),
    ))]
pub async fn create_token(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<CreateTokenRequest>,
) -> Result<super::secret::SecretJson, ApiError> {
    let pki = st.pki.clone();
    let t = blocking(move || pki.create_token(&who, req)).await?;
    let mut v = token_view(&t.record);
    if let Some(o) = v.as_object_mut() {
        o.insert("token".into(), json!(t.secret.as_str()));
    }
    Ok(super::secret::SecretJson(StatusCode::CREATED, v))
}

#[utoipa::path(get, path = "/v1/auth/tokens", tag = "tokens", operation_id = "listTokens",
    responses((status = 200, description = "The tenant's live tokens (never a secret)", body = super::openapi::TokenList)))]
pub async fn list_tokens(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Value>, ApiError> {
    let pki = st.pki.clone();
    let list = blocking(move || pki.list_tokens(&who)).await?;
    Ok(Json(
        json!({"tokens": list.iter().map(token_view).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(get, path = "/v1/auth/tokens/self", tag = "tokens", operation_id = "tokenSelf",
    responses((status = 200, description = "The caller's own token", body = super::openapi::Token)))]
pub async fn token_self(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Value>, ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.token_self(&who)).await?;
    Ok(Json(token_view(&rec)))
}

#[utoipa::path(delete, path = "/v1/auth/tokens/{id}", tag = "tokens", operation_id = "revokeToken",
    params(("id" = String, Path, description = "Token id (`tok_…`)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "`missing_capability`: not the caller's and the caller lacks `admin`, or the token holds a capability the caller could not grant"),
        (status = 404, description = "`token_not_found`, also for another tenant's token"),
        (status = 409, description = "`invalid_state`: the bootstrap token cannot be revoked through the API"),
    ))]
pub async fn revoke_token(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    let pki = st.pki.clone();
    blocking(move || pki.revoke_token(&who, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries after this sequence number.
    #[serde(default)]
    #[param(schema_with = super::openapi::sequence_number)]
    since: u64,
    #[serde(default = "default_audit_limit")]
    #[param(minimum = 1, maximum = 1000)]
    limit: usize,
}

fn default_audit_limit() -> usize {
    100
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", operation_id = "listAudit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries after `since`; `next` is the `since` of the next page", body = crate::service::audit::AuditPage),
        (status = 400, description = "`invalid_request`: a bad or unknown query parameter"),
    ))]
pub async fn audit(
    State(st): State<AppState>,
    Caller(who): Caller,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.limit == 0 || q.limit > crate::service::audit::MAX_AUDIT_PAGE {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "limit must be between 1 and {}",
                crate::service::audit::MAX_AUDIT_PAGE
            ),
        ));
    }
    let pki = st.pki.clone();
    let page = blocking(move || pki.audit_entries(&who, q.since, q.limit)).await?;
    Ok(Json(json!({"entries": page.entries, "next": page.next})))
}
