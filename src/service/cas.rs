//! Certificate authorities: create roots and intermediates, list, fetch, (de)activate.

use serde::Deserialize;

use super::{Pki, Principal, ServiceError};
use crate::ca::{self, profile, CaError, CertificateTemplate, Issuer};
use crate::hsm::KeyRef;
use crate::keys::{KeySpec, KeyType};
use crate::store::{CaRecord, StoreError};
use crate::types::{new_id, now, CaType, Serial};

/// `POST /v1/pki/ca`, as the spec defines it. Unknown fields are refused so that a typo
/// (`validity_day`) doesn't silently fall back to a default. Its OpenAPI schema, which
/// says which fields go together, is in `schema.rs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCaRequest {
    pub name: String,
    pub common_name: String,
    pub ca_type: CaType,
    #[serde(default)]
    pub parent_ca_id: Option<String>,
    #[serde(default)]
    pub key_type: Option<KeyType>,
    #[serde(default)]
    #[serde(deserialize_with = "super::input::opt_whole_u32")]
    pub key_size: Option<u32>,
    #[serde(default)]
    #[serde(deserialize_with = "super::input::opt_whole_u32")]
    pub validity_days: Option<u32>,
}

/// Default lifetimes from the spec: ten years for roots, five for intermediates.
const ROOT_DAYS: u32 = 3650;
const INTERMEDIATE_DAYS: u32 = 1825;
/// A hundred years is more than any CA should live; it also keeps dates inside X.509's range.
const MAX_DAYS: u32 = 36_500;
/// X.520 upper bound for commonName (ub-common-name).
const MAX_CN_LEN: usize = 64;

/// Names are identifiers in URLs and scripts: letters, digits, `.`, `_`, `-`; not `.` or
/// `..`, which clients resolve away as path segments before the request is sent.
pub(crate) fn check_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::InvalidRequest(
            "name must be 1 to 128 characters of letters, digits, '.', '_' or '-', and not \".\" or \"..\"".into(),
        ))
    }
}

pub(crate) fn check_common_name(cn: &str) -> Result<(), ServiceError> {
    if cn.trim().is_empty() || cn.chars().count() > MAX_CN_LEN || cn.chars().any(char::is_control) {
        return Err(ServiceError::InvalidRequest(format!(
            "common_name must be 1 to {MAX_CN_LEN} printable characters"
        )));
    }
    Ok(())
}

impl CaRecord {
    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            label: self.key_label.clone(),
            id: self.key_id.clone(),
        }
    }
}

impl Pki {
    /// A CA of the caller's tenant; another tenant's CA is "not found", never "forbidden".
    pub fn ca_for(&self, who: &Principal, id: &str) -> Result<CaRecord, ServiceError> {
        match self.store.get_ca(id)? {
            Some(rec) if rec.tenant == who.tenant => Ok(rec),
            _ => Err(ServiceError::NotFound {
                kind: "ca",
                id: id.to_string(),
            }),
        }
    }

    /// Any CA by id, for endpoints that are public by design (the CA certificate).
    pub fn ca_public(&self, id: &str) -> Result<CaRecord, ServiceError> {
        self.store
            .get_ca(id)?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "ca",
                id: id.to_string(),
            })
    }

    pub fn list_cas(&self, who: &Principal) -> Result<Vec<CaRecord>, ServiceError> {
        Ok(self.store.list_cas(&who.tenant)?)
    }

    pub fn set_ca_active(
        &self,
        who: &Principal,
        id: &str,
        active: bool,
    ) -> Result<CaRecord, ServiceError> {
        self.ca_for(who, id)?;
        self.store
            .update_ca(id, |r| r.is_active = active)?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "ca",
                id: id.to_string(),
            })
    }

    /// Check that a CA may sign right now.
    pub(crate) fn ensure_can_sign(&self, ca: &CaRecord) -> Result<(), ServiceError> {
        if ca.revocation.is_some() {
            return Err(ServiceError::CaRevoked(ca.id.clone()));
        }
        if !ca.is_active {
            return Err(ServiceError::CaInactive(ca.id.clone()));
        }
        if ca.not_after <= now() {
            return Err(ServiceError::CaExpired(ca.id.clone()));
        }
        Ok(())
    }

    /// Create a root or intermediate CA: a key pair in the token, a certificate signed by
    /// the CA itself (root) or by its parent's token key (intermediate), verified, stored.
    ///
    /// An intermediate asked to live past its parent is clipped to the parent's notAfter.
    pub fn create_ca(
        &self,
        who: &Principal,
        req: CreateCaRequest,
    ) -> Result<CaRecord, ServiceError> {
        check_name(&req.name)?;
        check_common_name(&req.common_name)?;
        let spec = KeySpec::from_type_and_size(req.key_type.unwrap_or(KeyType::Rsa), req.key_size)?;
        let days = req.validity_days.unwrap_or(match req.ca_type {
            CaType::Root => ROOT_DAYS,
            CaType::Intermediate => INTERMEDIATE_DAYS,
        });
        if days == 0 || days > MAX_DAYS {
            return Err(ServiceError::InvalidRequest(format!(
                "validity_days must be between 1 and {MAX_DAYS}"
            )));
        }
        let parent = match (req.ca_type, req.parent_ca_id.as_deref()) {
            (CaType::Root, None) => None,
            (CaType::Root, Some(_)) => {
                return Err(ServiceError::InvalidRequest(
                    "a root CA has no parent_ca_id".into(),
                ))
            }
            (CaType::Intermediate, None) => {
                return Err(ServiceError::InvalidRequest(
                    "an intermediate CA needs parent_ca_id".into(),
                ))
            }
            (CaType::Intermediate, Some(pid)) => {
                let p = self.ca_for(who, pid)?;
                self.ensure_can_sign(&p)?;
                self.check_hierarchy_depth(&p)?;
                Some(p)
            }
        };
        if self.store.ca_name_taken(&who.tenant, &req.name)? {
            return Err(ServiceError::CaNameTaken(req.name));
        }

        let id = new_id("ca");
        let generated = self
            .token
            .generate_key_pair(spec, &format!("scaivault-ca-{id}"))?;
        let result =
            self.sign_and_store_ca(who, &req, &id, spec, days, parent.as_ref(), &generated);
        if let Ok(rec) = &result {
            let issuer = rec.parent_id.clone().unwrap_or_else(|| rec.id.clone());
            metrics::counter!("scaivault_certificates_issued_total", "ca_id" => issuer, "kind" => "ca")
                .increment(1);
            // A CA has a valid, empty CRL from its creation on. Should the token fail right
            // here, the CRL worker builds it at its next run.
            if let Err(e) = self.rebuild_crl(&rec.id) {
                tracing::warn!(ca_id = %rec.id, error = %e, "first CRL failed; the worker will retry");
            }
        }
        if result.is_err() {
            // The key would otherwise be an orphan in the token that no record points to.
            if let Err(e) = self.token.destroy_key_pair(&generated.key) {
                tracing::warn!(ca_id = %id, error = %e, "could not remove the key of a CA that was not created");
            }
        }
        result
    }

    /// A new intermediate under `parent` must leave every leaf's path within
    /// `limits.max_chain_depth` intermediates, or our own validation would refuse it.
    fn check_hierarchy_depth(&self, parent: &CaRecord) -> Result<(), ServiceError> {
        let max = self.limits().max_chain_depth;
        // Intermediates from the root down to the new CA, the new one included.
        let mut depth = 1usize;
        let mut up = parent.parent_id.clone();
        while let Some(id) = up {
            depth += 1;
            if depth > max {
                return Err(crate::limits::LimitExceeded::ChainTooDeep(format!(
                    "an intermediate under {} would be more than {max} CAs below its root",
                    parent.id
                ))
                .into());
            }
            up = self.store.get_ca(&id)?.and_then(|p| p.parent_id);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn sign_and_store_ca(
        &self,
        who: &Principal,
        req: &CreateCaRequest,
        id: &str,
        spec: KeySpec,
        days: u32,
        parent: Option<&CaRecord>,
        generated: &crate::hsm::GeneratedKey,
    ) -> Result<CaRecord, ServiceError> {
        let subject = ca::common_name(&req.common_name)?;
        let ski = profile::key_identifier(&generated.spki_der)?;
        let created = now();
        let mut not_after = created + time::Duration::days(i64::from(days));
        if let Some(p) = parent {
            not_after = not_after.min(p.not_after);
        }

        let own_signer = self.token.signer(&generated.key);
        let parent_key = parent.map(CaRecord::key_ref);
        let parent_signer = parent_key.as_ref().map(|k| self.token.signer(k));
        let issuer = match (parent, &parent_signer) {
            (Some(p), Some(signer)) => {
                Issuer::from_certificate(&p.certificate_der, p.key_spec, signer)?
            }
            _ => Issuer {
                name: subject.clone(),
                spki_der: generated.spki_der.clone(),
                key_id: ski.clone(),
                spec,
                not_after: None,
                signer: &own_signer,
            },
        };
        let aki = parent.map(|_| issuer.key_id.clone());
        let mut extensions = profile::ca_extensions(&ski, aki.as_deref(), None)?;
        // Like a leaf, an intermediate points at its issuer's CRL and certificate.
        if let Some((crl, ca_issuers)) = parent.and_then(|p| self.issuer_urls(&p.id)) {
            extensions.extend(profile::issuer_pointers(Some(&crl), Some(&ca_issuers))?);
        }

        // A serial collision is a 2^-127 event, but "checked unique per issuer" means
        // we retry rather than fail when it happens.
        for _ in 0..3 {
            let template = CertificateTemplate {
                subject: subject.clone(),
                spki_der: generated.spki_der.clone(),
                serial: Serial::random(),
                not_before: created,
                not_after,
                extensions: extensions.clone(),
                self_signed: parent.is_none(),
            };
            let cert = ca::sign_certificate(template, &issuer).map_err(|e| match e {
                CaError::Invalid(m) => ServiceError::InvalidRequest(m),
                other => other.into(),
            })?;
            let rec = CaRecord {
                id: id.to_string(),
                tenant: who.tenant.clone(),
                name: req.name.clone(),
                common_name: req.common_name.clone(),
                ca_type: req.ca_type,
                parent_id: parent.map(|p| p.id.clone()),
                key_spec: spec,
                key_label: generated.key.label.clone(),
                key_id: generated.key.id.clone(),
                certificate_der: cert.der,
                serial_hex: cert.serial.to_hex(),
                not_before: cert.not_before,
                not_after: cert.not_after,
                is_active: true,
                certificates_issued: 0,
                created_at: created,
                revocation: None,
                issuer_chain_pem: None,
            };
            match self.store.insert_ca(&rec) {
                Ok(()) => return Ok(rec),
                Err(StoreError::SerialTaken(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Internal(
            "could not find an unused serial number".into(),
        ))
    }
}
