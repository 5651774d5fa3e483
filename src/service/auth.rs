//! Bearer-token authentication, API tokens, tenants and the bootstrap admin token.
//!
//! Secrets are 32 random bytes, base64url; only their SHA-256 is stored, and a token is
//! found by that hash, so no stored secret is ever compared byte by byte with input.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use serde::Deserialize;
use time::OffsetDateTime;

use super::access::{self, Capability};
use super::input::DurationInput;
use super::{Pki, ServiceError};
use crate::policy::{is_invisible_format, Ttl};
use crate::store::{ApiTokenRecord, StoreError, TenantRecord};
use crate::types::{new_id, now};

/// The tenant every object belongs to until tenants are configured.
pub const DEFAULT_TENANT: &str = "default";

/// Who is calling, once their token checked out.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    pub tenant: String,
    pub capabilities: Vec<String>,
    /// None: never.
    pub expires_at: Option<OffsetDateTime>,
    /// Whom the token acts for, as four-eyes compares it (see [`Pki::party_of`]).
    pub party: String,
}

impl Principal {
    /// Does this token hold a capability covering `wanted`?
    pub fn holds(&self, wanted: &Capability) -> bool {
        access::holds(&self.capabilities, wanted)
    }

    /// 403 naming the capability, unless this token holds it.
    pub fn require(&self, wanted: &Capability) -> Result<(), ServiceError> {
        if self.holds(wanted) {
            Ok(())
        } else {
            Err(ServiceError::MissingCapability(wanted.to_string()))
        }
    }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Unknown,
    Expired,
    Revoked,
}

/// Default lifetime of a token made through the API (Vault's default, 32 days).
pub const DEFAULT_TOKEN_TTL: &str = "768h";

/// `POST /v1/auth/tokens`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// No control characters, no invisible formatting characters (as for common names).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff][^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]*$"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub tenant: Option<String>,
    #[schema(schema_with = crate::service::schema::capabilities)]
    pub capabilities: Vec<String>,
    /// Like every other duration: `"720h"`, `"60"` or `60`.
    #[serde(default)]
    pub ttl: Option<DurationInput>,
}

/// A token just made: the record and its secret, which is shown this once.
pub struct NewToken {
    pub record: ApiTokenRecord,
    pub secret: Zeroizing<String>,
}

/// `POST /v1/sys/tenants`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    #[schema(pattern = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
}

/// Tenant names: lower-case letters, digits and `-`, 1 to 63 characters, like a DNS label.
fn valid_tenant_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Name of the file, in the data directory, that receives the bootstrap token's secret.
pub const ROOT_TOKEN_FILE: &str = "root-token";

fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn principal_of(rec: ApiTokenRecord, party: String) -> Principal {
    Principal {
        token_id: rec.id,
        tenant: rec.tenant,
        capabilities: rec.capabilities,
        expires_at: rec.expires_at,
        party,
    }
}

/// Does a token holding `caps` start a new party with each token it mints? An `admin` or
/// `sys` token may mint tokens for other people anyway, so what it mints acts for someone
/// else; what any other token mints acts for its minter, however deep the chain.
fn mints_new_party(caps: &[String]) -> bool {
    access::holds(caps, &Capability::Admin) || access::holds(caps, &Capability::Sys)
}

/// Could `who` grant `c` to a token (in another tenant when `cross_tenant`)? A `sys`
/// token grants anything but `sys`, and `sys` only in its own tenant; any other token
/// only what it holds. The rule for revoking too: a token undoes only what it could make.
fn may_grant(who: &Principal, c: &Capability, cross_tenant: bool) -> bool {
    if *c == Capability::Sys {
        !cross_tenant && who.holds(c)
    } else {
        who.holds(&Capability::Sys) || who.holds(c)
    }
}

/// 403 naming every capability of `caps` that `who` could not grant.
fn require_grantable(
    who: &Principal,
    caps: &[Capability],
    cross_tenant: bool,
) -> Result<(), ServiceError> {
    let missing: Vec<String> = caps
        .iter()
        .filter(|c| !may_grant(who, c, cross_tenant))
        .map(|c| match c {
            // No token holds this: like any grant beyond the granter's, a 403.
            Capability::Sys if cross_tenant => "sys in another tenant".to_string(),
            c => c.to_string(),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::MissingCapability(missing.join(", ")))
    }
}

/// How many `created_by` links [`Pki::party_of`] follows. Ids are never reused, so a
/// chain cannot loop; the bound only keeps a damaged store from costing more.
const MAX_PARTY_DEPTH: usize = 64;

impl Pki {
    /// Find the caller by bearer secret. The secret is looked up by its SHA-256, so no
    /// stored value is ever compared with input byte by byte (no timing to learn from).
    pub fn authenticate(&self, secret: &str) -> Result<Principal, AuthFailure> {
        let rec = match self.store.api_token_by_hash(&hash_secret(secret)) {
            Ok(Some(rec)) => rec,
            Ok(None) => return Err(AuthFailure::Unknown),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the token store");
                return Err(AuthFailure::Unknown);
            }
        };
        if rec.revoked_at.is_some() {
            return Err(AuthFailure::Revoked);
        }
        if rec.expires_at.is_some_and(|t| t <= now()) {
            return Err(AuthFailure::Expired);
        }
        let party = match self.party_of(&rec) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the token store");
                return Err(AuthFailure::Unknown);
            }
        };
        Ok(principal_of(rec, party))
    }

    /// The party a token acts for. Stored on every record made since parties exist; for
    /// an older record, found the way `create_token` would have set it: follow
    /// `created_by` up to the first token that was minted by an `admin` or `sys` token,
    /// or by nobody (the bootstrap token), or whose maker is gone. That token's id is the
    /// party.
    pub fn party_of(&self, rec: &ApiTokenRecord) -> Result<String, StoreError> {
        // Every record made since parties exist carries its own: no copy, no walk.
        if let Some(p) = &rec.party {
            return Ok(p.clone());
        }
        let mut cur = rec.clone();
        for _ in 0..MAX_PARTY_DEPTH {
            if let Some(p) = cur.party {
                return Ok(p);
            }
            let Some(maker_id) = cur.created_by.as_deref() else {
                return Ok(cur.id);
            };
            match self.store.api_token_by_id(maker_id)? {
                Some(maker) if !mints_new_party(&maker.capabilities) => cur = maker,
                _ => return Ok(cur.id),
            }
        }
        Ok(cur.id)
    }

    /// The party of the token with this id, revoked or expired or not: what a token asked
    /// for stays its party's. An id without a record (the host operator, `cli:<user>`)
    /// is a party of its own.
    pub fn party_of_token(&self, id: &str) -> Result<String, ServiceError> {
        Ok(match self.store.api_token_by_id(id)? {
            Some(rec) => self.party_of(&rec)?,
            None => id.to_string(),
        })
    }

    /// Make a token. The caller may grant only capabilities it holds, and only in its own
    /// tenant; a `sys` token may make tokens in any tenant, with any capability but `sys`.
    /// The new token expires no later than the caller's. Made by an `admin` or `sys`
    /// token it is a new party; made by any other token it acts for its maker's party.
    pub fn create_token(
        &self,
        who: &Principal,
        req: CreateTokenRequest,
    ) -> Result<NewToken, ServiceError> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(ServiceError::InvalidRequest(
                "name must be 1 to 128 characters".into(),
            ));
        }
        // Names show up in lists, logs and terminals: a newline forges a log line, a bidi
        // override makes `exe.png` read as `gnp.exe`.
        if name
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c))
        {
            return Err(ServiceError::InvalidRequest(
                "name must not contain control characters or invisible formatting characters (bidi overrides, zero-width characters)".into(),
            ));
        }
        if req.capabilities.is_empty() {
            return Err(ServiceError::InvalidRequest(
                "capabilities must name at least one capability".into(),
            ));
        }
        let caps = access::parse_capabilities(&req.capabilities)
            .map_err(|e| ServiceError::InvalidRequest(e.to_string()))?;
        let tenant = req.tenant.clone().unwrap_or_else(|| who.tenant.clone());
        let cross_tenant = tenant != who.tenant;
        if cross_tenant {
            who.require(&Capability::Sys)?;
            if self.store.get_tenant(&tenant)?.is_none() {
                return Err(ServiceError::NotFound {
                    kind: "tenant",
                    id: tenant,
                });
            }
        }
        require_grantable(who, &caps, cross_tenant)?;
        let ttl = match &req.ttl {
            Some(t) => t.parse("ttl")?,
            None => Ttl::parse(DEFAULT_TOKEN_TTL)
                .map_err(|e| ServiceError::Internal(format!("default token ttl: {e}")))?,
        };
        if ttl.as_secs() == 0 {
            return Err(ServiceError::InvalidRequest("ttl must be positive".into()));
        }
        let created = now();
        let mut expires = created + ttl.as_duration();
        if let Some(parent) = who.expires_at {
            expires = expires.min(parent);
        }
        let secret = new_secret()?;
        let id = new_id("tok");
        let party = if mints_new_party(&who.capabilities) {
            id.clone()
        } else {
            who.party.clone()
        };
        let record = ApiTokenRecord {
            id,
            name: name.to_string(),
            tenant,
            capabilities: caps.iter().map(ToString::to_string).collect(),
            created_at: created,
            expires_at: Some(expires),
            revoked_at: None,
            created_by: Some(who.token_id.clone()),
            party: Some(party),
        };
        self.store
            .insert_api_token(&hash_secret(&secret), &record)?;
        Ok(NewToken { record, secret })
    }

    /// The caller's tenant's tokens that are neither revoked nor expired (no secrets).
    pub fn list_tokens(&self, who: &Principal) -> Result<Vec<ApiTokenRecord>, ServiceError> {
        let t = now();
        Ok(self
            .store
            .list_api_tokens(&who.tenant)?
            .into_iter()
            .filter(|r| r.revoked_at.is_none() && r.expires_at.is_none_or(|e| e > t))
            .collect())
    }

    /// The caller's own token record.
    pub fn token_self(&self, who: &Principal) -> Result<ApiTokenRecord, ServiceError> {
        self.store
            .api_token_by_id(&who.token_id)?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "token",
                id: who.token_id.clone(),
            })
    }

    /// Revoke a token at once: the caller's own, or any of its tenant's with `admin`
    /// (any tenant's with `sys`), provided the caller could have made it: it holds every
    /// capability the token holds, so `admin` cannot revoke a `sys` token. Another
    /// tenant's token is "not found".
    pub fn revoke_token(&self, who: &Principal, id: &str) -> Result<ApiTokenRecord, ServiceError> {
        let not_found = || ServiceError::NotFound {
            kind: "token",
            id: id.to_string(),
        };
        let rec = self.store.api_token_by_id(id)?.ok_or_else(not_found)?;
        let sys = who.holds(&Capability::Sys);
        if rec.tenant != who.tenant && !sys {
            return Err(not_found());
        }
        if rec.id != who.token_id && !sys {
            who.require(&Capability::Admin)?;
        }
        if self.store.bootstrap_token_id()?.as_deref() == Some(rec.id.as_str()) {
            return Err(ServiceError::InvalidState(
                "the bootstrap admin token cannot be revoked through the API".into(),
            ));
        }
        // Strings that are no capability grant nothing, so they need nothing to revoke.
        let caps: Vec<Capability> = rec
            .capabilities
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        require_grantable(who, &caps, rec.tenant != who.tenant)?;
        self.store
            .revoke_api_token(id, now())?
            .ok_or_else(not_found)
    }

    /// Make a tenant (`sys` only; the API layer checks).
    pub fn create_tenant(
        &self,
        who: &Principal,
        req: CreateTenantRequest,
    ) -> Result<TenantRecord, ServiceError> {
        who.require(&Capability::Sys)?;
        if !valid_tenant_name(&req.name) {
            return Err(ServiceError::InvalidRequest(
                "a tenant name is 1 to 63 lower-case letters, digits or '-', not at either end"
                    .into(),
            ));
        }
        let rec = TenantRecord {
            name: req.name,
            created_at: now(),
            created_by: Some(who.token_id.clone()),
        };
        match self.store.insert_tenant(&rec) {
            Ok(()) => Ok(rec),
            Err(StoreError::NameTaken(n)) => Err(ServiceError::TenantExists(n)),
            Err(e) => Err(e.into()),
        }
    }

    pub fn list_tenants(&self, who: &Principal) -> Result<Vec<TenantRecord>, ServiceError> {
        who.require(&Capability::Sys)?;
        Ok(self.store.list_tenants()?)
    }

    /// At first start, make the bootstrap admin token: the secret goes to
    /// `<data_dir>/root-token` (mode 0600) before its hash is stored, so a crash in between
    /// leaves no token whose secret nobody has. Returns the token id when one was made.
    pub fn ensure_bootstrap_token(&self) -> Result<Option<String>, ServiceError> {
        if self.store.bootstrap_token_id()?.is_some() {
            return Ok(None);
        }
        if self.store.get_tenant(DEFAULT_TENANT)?.is_none() {
            match self.store.insert_tenant(&TenantRecord {
                name: DEFAULT_TENANT.into(),
                created_at: now(),
                created_by: None,
            }) {
                Ok(()) | Err(StoreError::NameTaken(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let secret = new_secret()?;
        write_secret_file(&self.settings.data_dir.join(ROOT_TOKEN_FILE), &secret)
            .map_err(|e| ServiceError::Internal(format!("writing the root token file: {e}")))?;
        let id = new_id("tok");
        let rec = ApiTokenRecord {
            id: id.clone(),
            name: "bootstrap admin".into(),
            tenant: DEFAULT_TENANT.into(),
            capabilities: vec!["sys".into(), "admin".into()],
            created_at: now(),
            expires_at: None,
            revoked_at: None,
            created_by: None,
            party: Some(id),
        };
        self.store
            .insert_bootstrap_token(&hash_secret(&secret), &rec)?;
        Ok(Some(rec.id))
    }
}

/// 32 random bytes, base64url without padding.
fn new_secret() -> Result<Zeroizing<String>, ServiceError> {
    let mut raw = Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut()).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref()),
    ))
}

/// Write a secret to `path` with mode 0600, atomically (temp file, fsync, rename).
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}
