//! Trust anchors: register, list, fetch, delete. Chain validation consults them.

use der::Encode;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};

use super::{Pki, Principal, ServiceError};
use crate::store::{StoreError, TrustAnchorRecord};
use crate::types::{new_id, now};

/// `POST /v1/pki/trust-anchors`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustAnchorRequest {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub name: String,
    pub certificate_pem: String,
}

/// RFC 4514 string form, most specific RDN first (`CN=…,O=…`), as openssl prints with
/// `-nameopt RFC2253`.
fn rfc4514(name: &x509_cert::name::Name) -> String {
    let mut rdns: Vec<String> = name.iter_rdn().map(|r| r.to_string()).collect();
    rdns.reverse();
    rdns.join(",")
}

impl Pki {
    /// Register a CA certificate as a trust anchor. It must parse, and it must be a CA
    /// (basicConstraints cA TRUE): trusting a leaf as an anchor is almost always a mistake.
    /// A keyUsage, when present, must allow keyCertSign: validation refuses every path
    /// through an anchor that may not sign certificates, so registering one would only
    /// hide the problem until then. Validity is not checked: operators register anchors
    /// before they start, or keep an expired one for old signatures.
    pub fn create_trust_anchor(
        &self,
        who: &Principal,
        req: TrustAnchorRequest,
    ) -> Result<TrustAnchorRecord, ServiceError> {
        super::cas::check_name(&req.name)?;
        if req.certificate_pem.len() > 64 * 1024 {
            return Err(ServiceError::InvalidCertificate(
                "certificate_pem is larger than 64 KiB".into(),
            ));
        }
        let cert = crate::ca::certificate_from_pem(&req.certificate_pem)
            .map_err(|e| ServiceError::InvalidCertificate(format!("certificate_pem: {e}")))?;
        let is_ca = cert
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .map_err(|e| ServiceError::InvalidCertificate(format!("basicConstraints: {e}")))?
            .is_some_and(|(_, bc)| bc.ca);
        if !is_ca {
            return Err(ServiceError::InvalidCertificate(
                "a trust anchor must be a CA certificate (basicConstraints cA TRUE)".into(),
            ));
        }
        let key_usage = cert
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .map_err(|e| ServiceError::InvalidCertificate(format!("keyUsage: {e}")))?;
        if key_usage.is_some_and(|(_, ku)| !ku.0.contains(KeyUsages::KeyCertSign)) {
            return Err(ServiceError::InvalidCertificate(
                "a trust anchor's keyUsage must include keyCertSign (RFC 5280 §4.2.1.3); this one may not sign certificates".into(),
            ));
        }
        let der = cert.to_der()?;
        let rec = TrustAnchorRecord {
            id: new_id("trust_anchor"),
            tenant: who.tenant.clone(),
            name: req.name,
            subject: rfc4514(cert.tbs_certificate().subject()),
            fingerprint_sha256: hex::encode(Sha256::digest(&der)),
            not_after: crate::ca::to_offset(cert.tbs_certificate().validity().not_after)?,
            certificate_der: der,
            created_at: now(),
        };
        match self.store.insert_trust_anchor(&rec) {
            Ok(()) => Ok(rec),
            Err(StoreError::NameTaken(what)) => Err(ServiceError::TrustAnchorExists(what)),
            Err(e) => Err(e.into()),
        }
    }

    pub fn list_trust_anchors(
        &self,
        who: &Principal,
    ) -> Result<Vec<TrustAnchorRecord>, ServiceError> {
        Ok(self.store.list_trust_anchors(&who.tenant)?)
    }

    pub fn trust_anchor(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<TrustAnchorRecord, ServiceError> {
        self.store
            .get_trust_anchor(&who.tenant, id)?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "trust_anchor",
                id: id.to_string(),
            })
    }

    pub fn delete_trust_anchor(&self, who: &Principal, id: &str) -> Result<(), ServiceError> {
        if self.store.delete_trust_anchor(&who.tenant, id)? {
            Ok(())
        } else {
            Err(ServiceError::NotFound {
                kind: "trust_anchor",
                id: id.to_string(),
            })
        }
    }
}
