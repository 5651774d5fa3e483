//! The OpenAPI 3 document (`GET /v1/openapi.json`), generated from the code.
//!
//! Operations come from the `#[utoipa::path]` attribute on each handler, request bodies
//! from the request types' `ToSchema` derives. What is the same for many operations is
//! added here from the code that decides it, so it cannot drift either: who may call an
//! operation and which capability it needs (the `authz` table), and the error answers
//! every authenticated, every body-taking and every operation can give (401, 403, 429,
//! 400, 413, 500), all in the one error shape of `error.rs`.
//!
//! Response bodies that handlers build with `json!` are described by the structs below;
//! they are never serialised, only documented. Each is closed (`additionalProperties:
//! false`), so a field a handler adds without adding it here fails the schemathesis run
//! (`softhsm-test/schemathesis`) instead of going undocumented.

use axum::http::Method;
use axum::Json;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use super::authz::{self, Need};
use crate::keys::KeyType;
use crate::policy::RoleKeyType;
use crate::store::{CertSource, CsrSource, CsrStatus};

/// Name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scaivault-pki",
        description = "A certificate authority whose CA private keys live only in a PKCS#11 token. \
Every error is `{\"error\":{\"code\",\"message\"}}`; the codes are listed in the README. \
Authenticated operations take `Authorization: Bearer <token>` and name the capability they need.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::sys::health,
        super::metrics::scrape,
        super::backup::backup,
        document,
        super::access::create_tenant,
        super::access::list_tenants,
        super::access::create_token,
        super::access::list_tokens,
        super::access::token_self,
        super::access::revoke_token,
        super::access::audit,
        super::ca::create,
        super::ca::list,
        super::ca::get,
        super::ca::patch,
        super::ca::certificate,
        super::crl::get_full,
        super::crl::rebuild,
        super::crl::get_delta,
        super::crl::revoke,
        super::crl::unrevoke,
        super::csr::list,
        super::csr::generate,
        super::csr::import,
        super::csr::get,
        super::csr::approve,
        super::csr::reject,
        super::csr::sign,
        super::trust::list,
        super::trust::create,
        super::trust::get,
        super::trust::delete,
        super::roles::list,
        super::roles::create,
        super::roles::get,
        super::roles::replace,
        super::roles::delete,
        super::certs::issue,
        super::certs::sign,
        super::certs::list,
        super::certs::import,
        super::validate::validate,
        super::certs::get,
        super::certs::private_key,
        super::certs::renew,
    ),
    components(schemas(ErrorBody, CertificateFormat, CrlFormat)),
    modifiers(&Common),
    tags(
        (name = "sys", description = "Health, tenants and this document"),
        (name = "tokens", description = "API tokens"),
        (name = "audit", description = "The audit log"),
        (name = "cas", description = "Root and intermediate CAs"),
        (name = "revocation", description = "Revocation and CRLs"),
        (name = "roles", description = "Issuance roles"),
        (name = "certificates", description = "Issuing, signing, tracking and validating certificates"),
        (name = "csrs", description = "The CSR review workflow and CSRs made in the token"),
        (name = "trust-anchors", description = "Outside CAs trusted for validation"),
    ),
)]
pub struct ApiDoc;

/// The document, built once.
pub fn openapi() -> &'static Document {
    static DOC: std::sync::OnceLock<Document> = std::sync::OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The document as served: [`openapi`] with the links below.
pub fn served() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut v = serde_json::to_value(openapi()).unwrap_or_default();
        add_links(&mut v);
        v
    })
}

/// Which answer's field feeds which operation's path parameter: what a client (and
/// schemathesis' stateful phase) does next with an object it just made. Added to the
/// JSON because utoipa 5 writes Link objects with snake_case field names.
const LINKS: &[(&str, &str, &str, &[&str])] = &[
    // (operation, status, path parameter <- $response.body#/field, operations)
    (
        "createCa",
        "201",
        "id",
        &[
            "getCa",
            "updateCa",
            "getCaCertificate",
            "getCrl",
            "getDeltaCrl",
            "rebuildCrl",
        ],
    ),
    (
        "createRole",
        "201",
        "name",
        &["getRole", "replaceRole", "deleteRole", "issue", "sign"],
    ),
    (
        "generateCsr",
        "201",
        "id",
        &["getCsr", "approveCsr", "rejectCsr", "signApprovedCsr"],
    ),
    (
        "importCsr",
        "201",
        "id",
        &["getCsr", "approveCsr", "rejectCsr", "signApprovedCsr"],
    ),
    ("approveCsr", "200", "id", &["signApprovedCsr", "rejectCsr"]),
    (
        "createTrustAnchor",
        "201",
        "id",
        &["getTrustAnchor", "deleteTrustAnchor"],
    ),
    (
        "issue",
        "201",
        "id",
        &["getCertificate", "renew", "getPrivateKey"],
    ),
    (
        "sign",
        "201",
        "id",
        &["getCertificate", "renew", "getPrivateKey"],
    ),
    (
        "renew",
        "201",
        "id",
        &["getCertificate", "renew", "getPrivateKey"],
    ),
    (
        "importCertificate",
        "201",
        "id",
        &["getCertificate", "renew", "getPrivateKey"],
    ),
    ("createToken", "201", "id", &["revokeToken"]),
];

fn add_links(doc: &mut serde_json::Value) {
    use serde_json::{json, Map, Value};
    // operationId -> (path, method, its one path parameter's name)
    let mut ops: std::collections::HashMap<String, (String, String, Option<String>)> =
        Default::default();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for (method, op) in item.as_object().into_iter().flatten() {
                if let Some(id) = op["operationId"].as_str() {
                    let param = path
                        .split('/')
                        .find_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                        .map(str::to_string);
                    ops.insert(id.to_string(), (path.clone(), method.clone(), param));
                }
            }
        }
    }
    for (from, status, field, targets) in LINKS {
        let Some((path, method, _)) = ops.get(*from).cloned() else {
            continue;
        };
        let mut links = Map::new();
        for to in *targets {
            let Some((_, _, Some(param))) = ops.get(*to) else {
                continue;
            };
            links.insert(
                (*to).to_string(),
                json!({
                    "operationId": to,
                    "parameters": {param.as_str(): format!("$response.body#/{field}")},
                }),
            );
        }
        if let Some(resp) = doc["paths"][&path][&method]["responses"][*status].as_object_mut() {
            resp.insert("links".into(), Value::Object(links));
        }
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "sys",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)),
)]
pub async fn document() -> Json<&'static serde_json::Value> {
    Json(served())
}

/// Operation-wide parts that other code decides: security and capability from `authz`,
/// the common error answers, and the error body on every error answer.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        split_role_request(doc);
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                let Some(rule) = authz::rule_for(&method, path) else {
                    // The test `every_operation_has_an_access_rule` catches this; here the
                    // document just says nothing about access.
                    continue;
                };
                complete(op, &rule.need);
            }
        }
    }
}

/// The operations of a path item, with their methods.
pub fn operations(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    let PathItem {
        get,
        put,
        post,
        delete,
        options,
        head,
        patch,
        trace,
        ..
    } = item;
    [
        (Method::GET, get),
        (Method::PUT, put),
        (Method::POST, post),
        (Method::DELETE, delete),
        (Method::OPTIONS, options),
        (Method::HEAD, head),
        (Method::PATCH, patch),
        (Method::TRACE, trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
    .collect()
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

fn add_if_absent(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::T(error_response(description)));
}

fn complete(op: &mut Operation, need: &Need) {
    let authenticated = !matches!(need, Need::Public);
    let needs = match need {
        Need::Public => None,
        Need::Token => Some("any valid token (the operation checks the rest)".to_string()),
        Need::Cap(c) => Some(format!("`{c}`")),
        Need::IssueRole => Some("`issue:<role>` (or `issue:*`, or `admin`)".to_string()),
        Need::SignRole => Some("`sign:<role>` (or `sign:*`, or `admin`)".to_string()),
    };
    match needs {
        None => {
            op.security = Some(Vec::new());
            let d = op.description.get_or_insert_with(String::new);
            if !d.is_empty() {
                d.push_str("\n\n");
            }
            d.push_str("Public: no token needed.");
        }
        Some(needs) => {
            op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
            let d = op.description.get_or_insert_with(String::new);
            if !d.is_empty() {
                d.push_str("\n\n");
            }
            d.push_str(&format!("Needs: {needs}."));
            add_if_absent(
                op,
                "401",
                "`unauthorized`: no bearer token, or an unknown, expired or revoked one",
            );
            add_if_absent(
                op,
                "403",
                "`missing_capability`: the token lacks the capability this operation needs",
            );
            let mut throttled = error_response(
                "`too_many_auth_failures`: too many failed authentications from this address; see `Retry-After`",
            );
            throttled.headers.insert(
                "Retry-After".to_string(),
                utoipa::openapi::header::HeaderBuilder::new()
                    .schema(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::Type::Integer),
                    )
                    .description(Some("seconds until the address may try again"))
                    .build(),
            );
            op.responses
                .responses
                .entry("429".to_string())
                .or_insert(RefOr::T(throttled));
        }
    }
    if op.request_body.is_some() {
        add_if_absent(
            op,
            "400",
            "`invalid_json` (not JSON), `invalid_request` (wrong shape, unknown field, bad value), `invalid_body`",
        );
        add_if_absent(
            op,
            "413",
            "`body_too_large`: the body exceeds the limit (1 MiB)",
        );
    }
    if authenticated {
        // After the body's 400, so that one keeps its codes and gains this one.
        const TWO_HEADERS: &str = "`invalid_authorization`: more than one `Authorization` header";
        match op.responses.responses.get_mut("400") {
            Some(RefOr::T(r)) => {
                r.description.push_str("; ");
                r.description.push_str(TWO_HEADERS);
            }
            _ => add_if_absent(op, "400", TWO_HEADERS),
        }
    }
    add_if_absent(
        op,
        "500",
        "`internal_error`: our fault; the details are in the server log",
    );
    // Every error answer carries the error body; handlers list only status and meaning.
    for (status, resp) in op.responses.responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let RefOr::T(r) = resp {
            if is_error && r.content.is_empty() {
                *r = {
                    let mut e = error_response(&r.description);
                    e.headers = std::mem::take(&mut r.headers);
                    e
                };
            }
        }
    }
}

/// The one request type behind both `POST /v1/pki/roles` and `PUT /v1/pki/roles/{name}`,
/// documented as two: creating needs `name`; replacing takes the name from the path (a
/// body `name` that differs is refused), so its body schema leaves `name` out.
fn split_role_request(doc: &mut Document) {
    use utoipa::openapi::schema::Schema;
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(req))) = components.schemas.get("RoleRequest").cloned() else {
        return;
    };
    let mut create = req.clone();
    create.properties.insert(
        "name".into(),
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(r"^[A-Za-z0-9._-]{1,128}$"))
            .description(Some("Unique within the tenant"))
            .into(),
    );
    if !create.required.iter().any(|r| r == "name") {
        create.required.insert(0, "name".into());
    }
    let mut replace = req;
    replace.properties.shift_remove("name");
    replace.required.retain(|r| r != "name");
    components.schemas.remove("RoleRequest");
    components
        .schemas
        .insert("CreateRoleRequest".into(), RefOr::T(Schema::Object(create)));
    components.schemas.insert(
        "ReplaceRoleRequest".into(),
        RefOr::T(Schema::Object(replace)),
    );
    for (path, new) in [
        ("/v1/pki/roles", "CreateRoleRequest"),
        ("/v1/pki/roles/{name}", "ReplaceRoleRequest"),
    ] {
        let op = doc.paths.paths.get_mut(path).and_then(|item| {
            if path.ends_with('}') {
                item.put.as_mut()
            } else {
                item.post.as_mut()
            }
        });
        if let Some(body) = op.and_then(|op| op.request_body.as_mut()) {
            for content in body.content.values_mut() {
                content.schema = Some(RefOr::Ref(Ref::from_schema_name(new)));
            }
        }
    }
}

/// `since` of the audit log: any sequence number (a `u64`, beyond `int64`).
pub fn sequence_number() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Integer)
        .minimum(Some(0))
        .maximum(Some(u64::MAX))
        .description(Some("Entries after this sequence number (default 0)"))
        .into()
}

// ---------------------------------------------------------------- response bodies

/// Every error answer.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `ca_not_found`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

/// `GET /v1/sys/health` when the token answers.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// `ok`
    pub status: String,
    pub token: HealthToken,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthToken {
    pub label: String,
    /// `ready`
    pub state: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub sessions_open: u64,
    pub sessions_idle: u64,
}

/// `GET /v1/sys/health` when the token cannot be reached.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthUnavailable {
    /// `unavailable`
    pub status: String,
    pub token: HealthTokenDown,
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthTokenDown {
    pub label: String,
    /// `unavailable`
    pub state: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub name: String,
    pub created_at: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

/// An API token as the API shows it; never its secret, except once in [`NewToken`].
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// `tok_…`
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub capabilities: Vec<String>,
    pub created_at: String,
    /// `null`: never expires (the bootstrap token).
    #[schema(required = true)]
    pub expires_at: Option<String>,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
}

/// A token just made, with its secret, shown this once.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub capabilities: Vec<String>,
    pub created_at: String,
    #[schema(required = true)]
    pub expires_at: Option<String>,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    /// The bearer secret. Only its SHA-256 is stored.
    pub token: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenList {
    pub tokens: Vec<Token>,
}

/// `GET /v1/pki/ca/{id}/certificate` as JSON.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaCertificate {
    pub certificate_pem: String,
}

/// How `GET /v1/pki/ca/{id}/certificate` answers.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CertificateFormat {
    Json,
    Der,
    Pem,
}

/// A DER body (a certificate or a CRL).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Der(pub Vec<u8>);

/// How a CRL is served.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CrlFormat {
    Der,
    Pem,
}

/// `POST /v1/pki/ca/{id}/crl`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrlRebuilt {
    pub crl_number: u64,
    pub this_update: String,
    pub next_update: String,
    /// Revoked certificates listed.
    pub entries: u64,
}

/// `POST /v1/pki/revoke`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    /// The certificate's id.
    pub id: String,
    pub serial_number: String,
    pub revocation_time: String,
    pub reason: String,
    /// True when it had been revoked before: the first revocation stands.
    pub already_revoked: bool,
}

/// `POST /v1/pki/unrevoke`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Unrevoked {
    pub id: String,
    pub serial_number: String,
    pub is_revoked: bool,
}

/// A role, every field shown (defaults included).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    pub ca_id: String,
    pub allowed_domains: Vec<String>,
    pub allow_subdomains: bool,
    pub allow_bare_domains: bool,
    pub allow_glob_domains: bool,
    pub allow_wildcard_certificates: bool,
    pub allow_localhost: bool,
    pub allow_any_name: bool,
    pub enforce_hostnames: bool,
    pub allow_ip_sans: bool,
    pub allowed_uri_sans: Vec<String>,
    pub ttl: String,
    pub max_ttl: String,
    pub key_type: RoleKeyType,
    pub key_bits: u32,
    pub key_usage: Vec<String>,
    pub ext_key_usage: Vec<String>,
    pub organization: Vec<String>,
    pub ou: Vec<String>,
    pub country: Vec<String>,
    pub locality: Vec<String>,
    pub province: Vec<String>,
    pub use_csr_common_name: bool,
    pub use_csr_sans: bool,
    pub not_before_duration: String,
    pub require_cn: bool,
    pub store_private_keys: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleList {
    pub data: Vec<Role>,
    /// Always `null`: one page.
    #[schema(required = true)]
    pub cursor: Option<String>,
    pub has_more: bool,
}

/// A CSR under review, or one made in the token.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Csr {
    /// `csr_…`
    pub id: String,
    pub status: CsrStatus,
    pub source: CsrSource,
    #[schema(required = true)]
    pub common_name: Option<String>,
    pub subject: String,
    pub san_dns: Vec<String>,
    pub san_ip: Vec<String>,
    pub san_uri: Vec<String>,
    pub key_type: KeyType,
    pub key_size: u32,
    /// The token id that imported or made it.
    pub requested_by: String,
    #[schema(required = true)]
    pub note: Option<String>,
    pub created_at: String,
    #[schema(required = true)]
    pub approved_by: Option<String>,
    #[schema(required = true)]
    pub approved_at: Option<String>,
    #[schema(required = true)]
    pub rejected_by: Option<String>,
    #[schema(required = true)]
    pub rejected_at: Option<String>,
    /// The rejection reason.
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(required = true)]
    pub certificate_id: Option<String>,
    #[schema(required = true)]
    pub signed_at: Option<String>,
    /// CSRs made in the token: the RFC 7512 URI of their key pair.
    pub key_uri: Option<String>,
    /// In single-CSR answers, and for CSRs made in the token.
    pub csr_pem: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsrList {
    pub data: Vec<Csr>,
    pub has_more: bool,
    /// Pass as `cursor` for the next page.
    #[schema(required = true)]
    pub cursor: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustAnchor {
    /// `trust_anchor_…`
    pub id: String,
    pub name: String,
    /// RFC 4514 form.
    pub subject: String,
    pub fingerprint_sha256: String,
    pub not_after: String,
    pub created_at: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustAnchorDetail {
    pub id: String,
    pub name: String,
    pub subject: String,
    pub fingerprint_sha256: String,
    pub not_after: String,
    pub created_at: String,
    pub certificate_pem: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustAnchorList {
    pub data: Vec<TrustAnchor>,
    /// Always `null`: one page.
    #[schema(required = true)]
    pub cursor: Option<String>,
    pub has_more: bool,
}

/// One tracked certificate as a list row.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRow {
    /// `cert_…`
    pub id: String,
    pub common_name: String,
    /// `null` for imported certificates.
    #[schema(required = true)]
    pub issuer_ca_id: Option<String>,
    pub serial_number: String,
    pub valid_from: String,
    pub valid_until: String,
    pub is_revoked: bool,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    #[schema(required = true)]
    pub revocation_reason: Option<String>,
    #[schema(required = true)]
    pub role: Option<String>,
    pub source: CertSource,
    #[schema(required = true)]
    pub key_type: Option<KeyType>,
    pub has_private_key: bool,
    /// The CSR it was signed for, if any.
    #[schema(required = true)]
    pub csr_id: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateList {
    pub data: Vec<CertificateRow>,
    pub has_more: bool,
    /// Pass as `cursor`, with the same filters, for the next page.
    #[schema(required = true)]
    pub cursor: Option<String>,
}

/// One certificate in full.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateDetail {
    pub id: String,
    pub common_name: String,
    #[schema(required = true)]
    pub issuer_ca_id: Option<String>,
    pub serial_number: String,
    pub valid_from: String,
    pub valid_until: String,
    pub is_revoked: bool,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    #[schema(required = true)]
    pub revocation_reason: Option<String>,
    #[schema(required = true)]
    pub role: Option<String>,
    pub source: CertSource,
    #[schema(required = true)]
    pub key_type: Option<KeyType>,
    pub has_private_key: bool,
    #[schema(required = true)]
    pub csr_id: Option<String>,
    pub certificate: String,
    /// From the issuing CA up to the root.
    pub ca_chain: Vec<String>,
    pub san_dns: Vec<String>,
    pub san_ip: Vec<String>,
    pub san_uri: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub created_at: String,
    /// When the key lives in the token (a CSR made by `POST /v1/pki/csr`).
    pub token_key_uri: Option<String>,
}

/// A certificate just imported.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportedCertificate {
    pub id: String,
    pub common_name: String,
    #[schema(required = true)]
    pub issuer_ca_id: Option<String>,
    pub serial_number: String,
    pub valid_from: String,
    pub valid_until: String,
    pub is_revoked: bool,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    #[schema(required = true)]
    pub revocation_reason: Option<String>,
    #[schema(required = true)]
    pub role: Option<String>,
    pub source: CertSource,
    #[schema(required = true)]
    pub key_type: Option<KeyType>,
    pub has_private_key: bool,
    #[schema(required = true)]
    pub csr_id: Option<String>,
    pub certificate: String,
}

/// The answer of issue, sign and renew.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuedCertificate {
    pub id: String,
    pub certificate: String,
    /// The issuing CA's certificate.
    #[schema(required = true)]
    pub issuing_ca: Option<String>,
    /// From the issuing CA up to the root.
    pub ca_chain: Vec<String>,
    pub serial_number: String,
    pub not_before: String,
    pub not_after: String,
    /// Issue and renew only; returned this once.
    pub private_key: Option<String>,
    pub private_key_type: Option<KeyType>,
}

/// The answer of `POST /v1/pki/csr/{id}/sign`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsrCertificate {
    pub id: String,
    pub certificate: String,
    #[schema(required = true)]
    pub issuing_ca: Option<String>,
    pub ca_chain: Vec<String>,
    pub serial_number: String,
    pub not_before: String,
    pub not_after: String,
    pub csr_id: String,
}

/// A stored private key.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivateKey {
    pub private_key: String,
    pub private_key_type: KeyType,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn doc_operations() -> BTreeSet<(String, String)> {
        let mut doc = ApiDoc::openapi();
        let mut set = BTreeSet::new();
        for (path, item) in doc.paths.paths.iter_mut() {
            for (m, _) in operations(item) {
                set.insert((m.to_string(), path.clone()));
            }
        }
        set
    }

    /// The document lists exactly the routes of the access table (which the router's
    /// every authenticated route must be in, or nobody may call it), no more, no fewer.
    #[test]
    fn the_document_has_exactly_the_routes_of_the_access_table() {
        let doc = doc_operations();
        let table: BTreeSet<(String, String)> = authz::rules()
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let missing: Vec<_> = table.difference(&doc).collect();
        let extra: Vec<_> = doc.difference(&table).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "not documented: {missing:?}; documented but not in the access table: {extra:?}"
        );
    }

    #[test]
    fn operation_ids_are_unique_and_every_operation_says_who_may_call_it() {
        let doc = openapi();
        let mut ids = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            let mut item = item.clone();
            for (m, op) in operations(&mut item) {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(!id.is_empty(), "{m} {path} has no operationId");
                assert!(ids.insert(id.clone()), "operationId {id} twice");
                assert!(op.security.is_some(), "{m} {path}: no security");
                assert!(op.responses.responses.contains_key("500"), "{m} {path}");
                let public = matches!(
                    authz::rule_for(&m, path).map(|r| &r.need),
                    Some(Need::Public)
                );
                assert_eq!(
                    op.security.as_ref().is_some_and(Vec::is_empty),
                    public,
                    "{m} {path}"
                );
                if !public {
                    for s in ["401", "403", "429"] {
                        assert!(op.responses.responses.contains_key(s), "{m} {path} {s}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_link_joins_two_operations_of_the_document() {
        let v = served();
        let ids: BTreeSet<String> = v["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str().map(str::to_string))
            .collect();
        let mut n = 0;
        for (from, status, _, targets) in LINKS {
            assert!(ids.contains(*from), "{from}");
            for to in *targets {
                assert!(ids.contains(*to), "{to}");
                n += 1;
            }
            assert!(status.starts_with('2'), "{from} {status}");
        }
        let served_links = serde_json::to_string(v)
            .unwrap()
            .matches("$response.body#/")
            .count();
        assert_eq!(served_links, n);
    }

    #[test]
    fn the_document_is_openapi_3_json() {
        let v = serde_json::to_value(openapi()).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3."));
        assert!(v["components"]["schemas"]["ErrorBody"].is_object());
        assert_eq!(
            v["components"]["securitySchemes"][BEARER]["scheme"].as_str(),
            Some("bearer")
        );
    }
}
