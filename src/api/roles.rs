//! `/v1/pki/roles` endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam};
use super::{blocking, AppState};
use crate::policy::Role;
use crate::service::roles::RoleRequest;
use crate::types::rfc3339;

/// A role as the API shows it: durations as strings, usages by name.
pub fn role_view(r: &Role) -> Value {
    json!({
        "name": r.name,
        "ca_id": r.ca_id,
        "allowed_domains": r.allowed_domains,
        "allow_subdomains": r.allow_subdomains,
        "allow_bare_domains": r.allow_bare_domains,
        "allow_glob_domains": r.allow_glob_domains,
        "allow_wildcard_certificates": r.allow_wildcard_certificates,
        "allow_localhost": r.allow_localhost,
        "allow_any_name": r.allow_any_name,
        "enforce_hostnames": r.enforce_hostnames,
        "allow_ip_sans": r.allow_ip_sans,
        "allowed_uri_sans": r.allowed_uri_sans,
        "ttl": r.ttl.unwrap_or(r.max_ttl).to_string(),
        "max_ttl": r.max_ttl.to_string(),
        "key_type": r.key_type,
        "key_bits": r.key_bits,
        "key_usage": r.key_usage.iter().map(|u| u.name()).collect::<Vec<_>>(),
        "ext_key_usage": r.ext_key_usage.iter().map(|u| u.name()).collect::<Vec<_>>(),
        "organization": r.subject.organization,
        "ou": r.subject.ou,
        "country": r.subject.country,
        "locality": r.subject.locality,
        "province": r.subject.province,
        "use_csr_common_name": r.use_csr_common_name,
        "use_csr_sans": r.use_csr_sans,
        "not_before_duration": r.not_before_duration.to_string(),
        "require_cn": r.require_cn,
        "store_private_keys": r.store_private_keys,
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
    })
}

#[utoipa::path(post, path = "/v1/pki/roles", tag = "roles", operation_id = "createRole",
    request_body = RoleRequest,
    responses(
        (status = 201, description = "Created; every field shown, defaults included", body = super::openapi::Role),
        (status = 404, description = "`ca_not_found`"),
        (status = 409, description = "`role_exists`"),
    ))]
pub async fn create(
    State(st): State<AppState>,
    Caller(who): Caller,
    JsonBody(req): JsonBody<RoleRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pki = st.pki.clone();
    let role = blocking(move || pki.create_role(&who, req)).await?;
    Ok((StatusCode::CREATED, Json(role_view(&role))))
}

#[utoipa::path(get, path = "/v1/pki/roles", tag = "roles", operation_id = "listRoles",
    responses((status = 200, description = "The tenant's roles", body = super::openapi::RoleList)))]
pub async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Value>, ApiError> {
    let roles = st.pki.list_roles(&who)?;
    Ok(Json(json!({
        "data": roles.iter().map(role_view).collect::<Vec<_>>(),
        "cursor": null,
        "has_more": false,
    })))
}

#[utoipa::path(get, path = "/v1/pki/roles/{name}", tag = "roles", operation_id = "getRole",
    params(("name" = String, Path, description = "Role name")),
    responses(
        (status = 200, description = "The role", body = super::openapi::Role),
        (status = 404, description = "`role_not_found`"),
    ))]
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(name): PathParam<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(role_view(&st.pki.role_for(&who, &name)?)))
}

#[utoipa::path(put, path = "/v1/pki/roles/{name}", tag = "roles", operation_id = "replaceRole",
    params(("name" = String, Path, description = "Role name")),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "Replaced; fields left out took their defaults", body = super::openapi::Role),
        (status = 404, description = "`role_not_found`, `ca_not_found`"),
    ))]
pub async fn replace(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(name): PathParam<String>,
    JsonBody(req): JsonBody<RoleRequest>,
) -> Result<Json<Value>, ApiError> {
    let pki = st.pki.clone();
    let role = blocking(move || pki.replace_role(&who, &name, req)).await?;
    Ok(Json(role_view(&role)))
}

#[utoipa::path(delete, path = "/v1/pki/roles/{name}", tag = "roles", operation_id = "deleteRole",
    params(("name" = String, Path, description = "Role name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`role_not_found`"),
    ))]
pub async fn delete(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    let pki = st.pki.clone();
    blocking(move || pki.delete_role(&who, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}
