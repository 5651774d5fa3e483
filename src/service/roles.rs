//! Roles: create, read, replace, delete. Input is checked here once, so a stored role is
//! always one the issuance rules can apply without further validation.

use serde::Deserialize;

use super::input::{opt_ttl, DurationInput, StringList};
use super::{Pki, Principal, ServiceError};
use crate::policy::{names, ExtKeyUsage, KeyUsage, Role, RoleKeyType, SubjectFields, Ttl};
use crate::store::StoreError;
use crate::types::now;

fn yes() -> bool {
    true
}

/// `POST /v1/pki/roles` and `PUT /v1/pki/roles/{name}`: the spec's fields plus Vault's.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub name: Option<String>,
    pub ca_id: String,
    #[serde(default)]
    pub allowed_domains: StringList,
    #[serde(default)]
    pub allow_subdomains: bool,
    #[serde(default)]
    pub allow_bare_domains: bool,
    #[serde(default)]
    pub allow_glob_domains: bool,
    #[serde(default = "yes")]
    pub allow_wildcard_certificates: bool,
    #[serde(default = "yes")]
    pub allow_localhost: bool,
    #[serde(default)]
    pub allow_any_name: bool,
    #[serde(default = "yes")]
    pub enforce_hostnames: bool,
    #[serde(default = "yes")]
    pub allow_ip_sans: bool,
    #[serde(default)]
    pub allowed_uri_sans: StringList,
    #[serde(default)]
    pub ttl: Option<DurationInput>,
    #[serde(default)]
    pub max_ttl: Option<DurationInput>,
    #[serde(default)]
    pub key_type: Option<RoleKeyType>,
    #[serde(default)]
    #[serde(deserialize_with = "super::input::opt_whole_u32")]
    pub key_bits: Option<u32>,
    #[serde(default)]
    #[schema(schema_with = crate::service::schema::key_usages)]
    pub key_usage: Option<StringList>,
    #[serde(default)]
    #[schema(schema_with = crate::service::schema::ext_key_usages)]
    pub ext_key_usage: Option<StringList>,
    #[serde(default)]
    pub organization: StringList,
    #[serde(default)]
    pub ou: StringList,
    #[serde(default)]
    pub country: StringList,
    #[serde(default)]
    pub locality: StringList,
    #[serde(default)]
    pub province: StringList,
    #[serde(default = "yes")]
    pub use_csr_common_name: bool,
    #[serde(default = "yes")]
    pub use_csr_sans: bool,
    #[serde(default)]
    pub not_before_duration: Option<DurationInput>,
    #[serde(default = "yes")]
    pub require_cn: bool,
    #[serde(default)]
    pub store_private_keys: bool,
    /// Read-only fields of the role as GET shows it, accepted and ignored, so that a GET's
    /// body can be edited and PUT back (as `vault read` then `vault write` works).
    #[serde(default)]
    #[schema(read_only, value_type = Option<String>)]
    pub created_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(read_only, value_type = Option<String>)]
    pub updated_at: Option<serde::de::IgnoredAny>,
}

const DEFAULT_MAX_TTL: Ttl = Ttl::from_secs(720 * 3600);
const DEFAULT_NOT_BEFORE: Ttl = Ttl::from_secs(30);
/// Backdating more than a day hides clock problems instead of absorbing skew.
const MAX_NOT_BEFORE: Ttl = Ttl::from_secs(86_400);
const MAX_PATTERNS: usize = 1000;

fn invalid(m: impl Into<String>) -> ServiceError {
    ServiceError::InvalidRequest(m.into())
}

fn check_subject_values(field: &str, values: &[String]) -> Result<(), ServiceError> {
    for v in values {
        if v.trim().is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) {
            return Err(invalid(format!(
                "{field}: each value must be 1 to 64 printable characters"
            )));
        }
    }
    Ok(())
}

impl Pki {
    /// A role of the caller's tenant.
    pub fn role_for(&self, who: &Principal, name: &str) -> Result<Role, ServiceError> {
        self.store
            .get_role(&who.tenant, name)?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "role",
                id: name.to_string(),
            })
    }

    pub fn list_roles(&self, who: &Principal) -> Result<Vec<Role>, ServiceError> {
        Ok(self.store.list_roles(&who.tenant)?)
    }

    pub fn create_role(&self, who: &Principal, req: RoleRequest) -> Result<Role, ServiceError> {
        let name = req
            .name
            .clone()
            .ok_or_else(|| invalid("missing field `name`"))?;
        let role = self.build_role(who, &name, req, None)?;
        match self.store.insert_role(&role) {
            Ok(()) => Ok(role),
            Err(StoreError::NameTaken(n)) => Err(ServiceError::RoleNameTaken(n)),
            Err(e) => Err(e.into()),
        }
    }

    pub fn replace_role(
        &self,
        who: &Principal,
        name: &str,
        req: RoleRequest,
    ) -> Result<Role, ServiceError> {
        if req.name.as_deref().is_some_and(|n| n != name) {
            return Err(invalid("the body's name differs from the role in the path"));
        }
        let old = self.role_for(who, name)?;
        let role = self.build_role(who, name, req, Some(old.created_at))?;
        if !self.store.replace_role(&role)? {
            return Err(ServiceError::NotFound {
                kind: "role",
                id: name.to_string(),
            });
        }
        Ok(role)
    }

    pub fn delete_role(&self, who: &Principal, name: &str) -> Result<(), ServiceError> {
        if self.store.delete_role(&who.tenant, name)? {
            Ok(())
        } else {
            Err(ServiceError::NotFound {
                kind: "role",
                id: name.to_string(),
            })
        }
    }

    fn build_role(
        &self,
        who: &Principal,
        name: &str,
        req: RoleRequest,
        created_at: Option<time::OffsetDateTime>,
    ) -> Result<Role, ServiceError> {
        super::cas::check_name(name)?;
        self.ca_for(who, &req.ca_id)?;

        let max_ttl = opt_ttl(&req.max_ttl, "max_ttl")?.unwrap_or(DEFAULT_MAX_TTL);
        let ttl = opt_ttl(&req.ttl, "ttl")?;
        if max_ttl.as_secs() == 0 {
            return Err(invalid("max_ttl must be positive"));
        }
        if ttl.is_some_and(|t| t > max_ttl || t.as_secs() == 0) {
            return Err(invalid("ttl must be positive and at most max_ttl"));
        }
        let not_before_duration =
            opt_ttl(&req.not_before_duration, "not_before_duration")?.unwrap_or(DEFAULT_NOT_BEFORE);
        if not_before_duration > MAX_NOT_BEFORE {
            return Err(invalid("not_before_duration may be at most 24h"));
        }

        let key_type = req.key_type.unwrap_or(RoleKeyType::Ec);
        let key_bits = match (key_type, req.key_bits) {
            (RoleKeyType::Ec, None) => 256,
            (RoleKeyType::Rsa, None) => 2048,
            (RoleKeyType::Any, None) => 0,
            (RoleKeyType::Ec, Some(b @ (0 | 256 | 384))) => b,
            (RoleKeyType::Rsa, Some(b @ (0 | 2048 | 3072 | 4096))) => b,
            (RoleKeyType::Any, Some(0)) => 0,
            (t, Some(b)) => {
                return Err(ServiceError::InvalidRequest(format!(
                    "key_bits {b} is not available for key_type {t}; ec: 256, 384; rsa: 2048, 3072, 4096; 0 = any"
                )))
            }
        };

        let key_usage = match &req.key_usage {
            None => match key_type {
                RoleKeyType::Rsa => vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
                RoleKeyType::Ec | RoleKeyType::Any => vec![KeyUsage::DigitalSignature],
            },
            Some(list) => list
                .0
                .iter()
                .map(|u| {
                    KeyUsage::parse(u).ok_or_else(|| {
                        invalid(format!(
                            "key_usage {u:?} is not one of {}",
                            KeyUsage::ALL.map(KeyUsage::name).join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let ext_key_usage =
            ExtKeyUsage::parse_list(req.ext_key_usage.as_ref().map(|l| l.0.as_slice()))
                .map_err(invalid)?;

        if req.allowed_domains.0.len() > MAX_PATTERNS || req.allowed_uri_sans.0.len() > MAX_PATTERNS
        {
            return Err(invalid(format!("at most {MAX_PATTERNS} patterns per list")));
        }
        let allowed_domains = req
            .allowed_domains
            .0
            .iter()
            .map(|d| {
                let n = names::normalize(d);
                let ok = !n.is_empty()
                    && n.len() <= 253
                    && n.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'_')
                    });
                ok.then_some(n).ok_or_else(|| {
                    invalid(format!("allowed_domains: {d:?} is not a domain pattern"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for u in &req.allowed_uri_sans.0 {
            if u.is_empty() || u.len() > 2048 || !u.is_ascii() {
                return Err(invalid(format!(
                    "allowed_uri_sans: {u:?} is not a URI pattern"
                )));
            }
        }

        let subject = SubjectFields {
            organization: req.organization.0,
            ou: req.ou.0,
            country: req.country.0,
            locality: req.locality.0,
            province: req.province.0,
        };
        check_subject_values("organization", &subject.organization)?;
        check_subject_values("ou", &subject.ou)?;
        check_subject_values("locality", &subject.locality)?;
        check_subject_values("province", &subject.province)?;
        for c in &subject.country {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(format!(
                    "country {c:?} must be a two-letter ISO 3166 code in capitals"
                )));
            }
        }

        let t = now();
        Ok(Role {
            name: name.to_string(),
            tenant: who.tenant.clone(),
            ca_id: req.ca_id,
            allowed_domains,
            allow_subdomains: req.allow_subdomains,
            allow_bare_domains: req.allow_bare_domains,
            allow_glob_domains: req.allow_glob_domains,
            allow_wildcard_certificates: req.allow_wildcard_certificates,
            allow_localhost: req.allow_localhost,
            allow_any_name: req.allow_any_name,
            enforce_hostnames: req.enforce_hostnames,
            allow_ip_sans: req.allow_ip_sans,
            allowed_uri_sans: req.allowed_uri_sans.0,
            ttl,
            max_ttl,
            key_type,
            key_bits,
            key_usage,
            ext_key_usage,
            subject,
            use_csr_common_name: req.use_csr_common_name,
            use_csr_sans: req.use_csr_sans,
            not_before_duration,
            require_cn: req.require_cn,
            store_private_keys: req.store_private_keys,
            created_at: created_at.unwrap_or(t),
            updated_at: t,
        })
    }
}
