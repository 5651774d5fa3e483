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

pub async fn create_tenant(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<CreateTenantRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.create_tenant(&who, req)).await?;
    Ok((StatusCode::CREATED, Json(tenant_view(&rec))))
}

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

pub async fn token_self(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Value>, ApiError> {
    let pki = st.pki.clone();
    let rec = blocking(move || pki.token_self(&who)).await?;
    Ok(Json(token_view(&rec)))
}

pub async fn revoke_token(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    let pki = st.pki.clone();
    blocking(move || pki.revoke_token(&who, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries after this sequence number.
    #[serde(default)]
    since: u64,
    #[serde(default = "default_audit_limit")]
    limit: usize,
}

fn default_audit_limit() -> usize {
    100
}

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
