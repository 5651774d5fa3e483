//! Key-ceremony use cases that have no HTTP endpoint (yet): a CSR for an intermediate
//! whose key is made in the token, linking the certificate signed outside to that key,
//! and checking every CA's key in the token.
//!
//! Creating roots, intermediates and in-token CSRs is done with the same use cases the API
//! uses (`create_ca`, `generate_csr`); nothing here signs a certificate.

use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::Certificate;

use super::certs::{check_issued_by, same_public_key};
use super::{cas, Pki, Principal, ServiceError};
use crate::ca::{self, verify};
use crate::hsm::{HsmError, KeyAttributes, KeyRef, Pkcs11Uri};
use crate::keys::KeySpec;
use crate::store::{CaRecord, CsrSource, CsrStatus};
use crate::types::{new_id, now, CaType, Serial};

/// Largest certificate or chain file accepted.
const MAX_PEM: usize = 256 * 1024;
/// Most certificates above an imported intermediate.
const MAX_CHAIN: usize = 8;

/// Link a certificate signed outside (by an offline or external root) to the token key
/// of an in-token CSR, making it an intermediate CA of this daemon.
#[derive(Debug, Clone)]
pub struct ImportIntermediateRequest {
    pub name: String,
    pub certificate_pem: String,
    /// The certificates above it, nearest first; each signature is checked.
    pub chain_pem: Option<String>,
    /// The token key the certificate must be for; found from the certificate when absent.
    pub key: Option<Pkcs11Uri>,
}

/// A key pair in the token and a CSR for an intermediate CA that an offline or external
/// root will sign. The subject is taken as written (a CA name, not a host name).
#[derive(Debug, Clone, Default)]
pub struct IntermediateCsrRequest {
    pub common_name: String,
    pub organization: Vec<String>,
    pub ou: Vec<String>,
    pub country: Vec<String>,
    /// Default EC.
    pub key_type: Option<crate::keys::KeyType>,
    pub key_size: Option<u32>,
}

/// One CA's key, as `verify` found it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaKeyCheck {
    pub ca_id: String,
    pub name: String,
    pub tenant: String,
    pub key_uri: String,
    /// The private key is in the token.
    pub present: bool,
    /// The token's public key object is the certificate's public key.
    pub public_key_matches: Option<bool>,
    /// A test signature by the private key verifies under the certificate's public key.
    pub signature_verifies: Option<bool>,
    pub sensitive: Option<bool>,
    pub extractable: Option<bool>,
    pub always_sensitive: Option<bool>,
    pub never_extractable: Option<bool>,
    /// Plain sentences; empty when the key is as it should be.
    pub problems: Vec<String>,
}

impl CaKeyCheck {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Split a PEM bundle as stored by `import_intermediate_ca` (normalised PEM blocks).
pub(crate) fn split_pem_chain(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END)
        .map(str::trim)
        .filter(|b| b.ends_with(END))
        .map(|b| format!("{b}\n"))
        .collect()
}

fn bad_cert(m: impl Into<String>) -> ServiceError {
    ServiceError::InvalidCertificate(m.into())
}

/// Does the certificate allow what a CA of this daemon does: sign certificates and CRLs?
fn check_is_ca(cert: &Certificate) -> Result<(), ServiceError> {
    let tbs = cert.tbs_certificate();
    let bc = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| bad_cert(format!("basicConstraints: {e}")))?;
    if !bc.is_some_and(|(_, bc)| bc.ca) {
        return Err(bad_cert(
            "the certificate is not a CA certificate (basicConstraints cA is not true)",
        ));
    }
    let ku = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| bad_cert(format!("keyUsage: {e}")))?;
    if let Some((_, ku)) = ku {
        if !ku.0.contains(KeyUsages::KeyCertSign) || !ku.0.contains(KeyUsages::CRLSign) {
            return Err(bad_cert(
                "the certificate's keyUsage must include keyCertSign and cRLSign",
            ));
        }
    }
    if tbs.issuer() == tbs.subject() {
        return Err(bad_cert(
            "the certificate is self-signed; an intermediate is signed by another CA",
        ));
    }
    Ok(())
}

impl Pki {
    /// The label of the token this service signs with.
    pub fn token_label(&self) -> &str {
        self.token.label()
    }

    /// Prove a key in the token is the certificate's: the public key object equals the
    /// certificate's key, and a fresh signature by the private key verifies under it.
    fn check_key_matches(
        &self,
        key: &KeyRef,
        spec: KeySpec,
        cert_spki: &[u8],
    ) -> Result<(bool, bool), ServiceError> {
        let public = match self.token.public_key_spki(key, spec) {
            Ok(spki) => same_public_key(&spki, cert_spki),
            Err(HsmError::KeyNotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        let mut challenge = [0u8; 32];
        getrandom::fill(&mut challenge).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let alg = spec.signature_algorithm();
        let sig = self
            .token
            .sign_digest(key, alg, &ca::digest(alg, &challenge))?;
        let signs = verify::verify_signature(cert_spki, alg, &challenge, &sig).is_ok();
        Ok((public, signs))
    }

    /// Check every CA's key (all tenants): present in the token, the certificate's key,
    /// sensitive and not extractable.
    pub fn verify_ca_keys(&self) -> Result<Vec<CaKeyCheck>, ServiceError> {
        let mut out = Vec::new();
        let mut ids = self.store.all_ca_ids()?;
        ids.sort();
        for id in ids {
            let Some(ca) = self.store.get_ca(&id)? else {
                continue;
            };
            out.push(self.verify_ca_key(&ca)?);
        }
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    fn verify_ca_key(&self, ca: &CaRecord) -> Result<CaKeyCheck, ServiceError> {
        let key = ca.key_ref();
        let mut check = CaKeyCheck {
            ca_id: ca.id.clone(),
            name: ca.name.clone(),
            tenant: ca.tenant.clone(),
            key_uri: key.uri(self.token.label()),
            present: false,
            public_key_matches: None,
            signature_verifies: None,
            sensitive: None,
            extractable: None,
            always_sensitive: None,
            never_extractable: None,
            problems: Vec::new(),
        };
        let attrs: KeyAttributes = match self.token.key_attributes(&key) {
            Ok(a) => a,
            Err(HsmError::KeyNotFound(_)) => {
                check.problems.push(format!(
                    "its private key {} is not in the token",
                    check.key_uri
                ));
                return Ok(check);
            }
            Err(e) => return Err(e.into()),
        };
        check.present = true;
        check.sensitive = Some(attrs.sensitive);
        check.extractable = Some(attrs.extractable);
        check.always_sensitive = Some(attrs.always_sensitive);
        check.never_extractable = Some(attrs.never_extractable);
        if !attrs.sensitive {
            check
                .problems
                .push("its private key is not sensitive".into());
        }
        if attrs.extractable {
            check.problems.push("its private key is extractable".into());
        }
        let cert = Certificate::from_der(&ca.certificate_der)?;
        let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
        let (public, signs) = self.check_key_matches(&key, ca.key_spec, &spki)?;
        check.public_key_matches = Some(public);
        check.signature_verifies = Some(signs);
        if !public {
            check
                .problems
                .push("the token's public key is not the certificate's".into());
        }
        if !signs {
            check.problems.push(
                "a signature by its private key does not verify under the certificate".into(),
            );
        }
        Ok(check)
    }

    /// A key pair in the token and a CSR for an intermediate CA (see
    /// [`IntermediateCsrRequest`]). The CSR is recorded like any in-token CSR, which is how
    /// `import_intermediate_ca` finds the key again.
    pub fn generate_intermediate_csr(
        &self,
        who: &Principal,
        req: IntermediateCsrRequest,
    ) -> Result<crate::store::CsrRecord, ServiceError> {
        let spec = KeySpec::from_type_and_size(
            req.key_type.unwrap_or(crate::keys::KeyType::Ec),
            req.key_size,
        )?;
        cas::check_common_name(&req.common_name)?;
        super::csr::check_countries(&req.country)?;
        let fields = crate::types::SubjectFields {
            organization: req.organization,
            ou: req.ou,
            country: req.country,
            ..Default::default()
        };
        let subject = ca::subject_name(Some(req.common_name.trim()), &fields)?;
        self.csr_in_token(who, spec, &subject, &[], &[])
    }

    /// Make an intermediate CA from a certificate signed outside for a key that
    /// `generate_csr` made in the token. The certificate must be a CA certificate for
    /// exactly that key (checked against the token, with a test signature).
    pub fn import_intermediate_ca(
        &self,
        who: &Principal,
        req: ImportIntermediateRequest,
    ) -> Result<CaRecord, ServiceError> {
        cas::check_name(&req.name)?;
        if req.certificate_pem.len() > MAX_PEM {
            return Err(bad_cert("the certificate file is larger than 256 KiB"));
        }
        let cert = ca::certificate_from_pem(&req.certificate_pem)
            .map_err(|e| bad_cert(format!("the certificate is not a PEM certificate: {e}")))?;
        check_is_ca(&cert)?;
        let tbs = cert.tbs_certificate();
        let not_before = ca::to_offset(tbs.validity().not_before)?;
        let not_after = ca::to_offset(tbs.validity().not_after)?;
        if not_after <= now() {
            return Err(bad_cert("the certificate has expired"));
        }
        let spki_der = tbs.subject_public_key_info().to_der()?;

        // The in-token CSR this certificate answers, found by its public key.
        let fp = hex::encode(Sha256::digest(&spki_der));
        let csr = self
            .store
            .csr_by_spki(&fp)?
            .filter(|c| {
                c.tenant == who.tenant && c.source == CsrSource::Generated && c.key_label.is_some()
            })
            .ok_or_else(|| {
                bad_cert(
                    "no key made in the token for an intermediate CSR has this certificate's \
                     public key",
                )
            })?;
        let key = KeyRef {
            label: csr.key_label.clone().unwrap_or_default(),
            id: csr.key_id.clone(),
        };
        if let Some(uri) = &req.key {
            let named = uri.selects(
                self.token.label(),
                &key.label,
                &key.id,
                crate::hsm::ObjectType::Private,
            );
            if !named {
                return Err(ServiceError::InvalidRequest(format!(
                    "the certificate is for the key {}, not for {uri}",
                    key.uri(self.token.label())
                )));
            }
        }
        if csr.status == CsrStatus::Signed {
            return Err(ServiceError::InvalidState(format!(
                "the key of CSR {} already backs CA {}",
                csr.id,
                csr.certificate_id.as_deref().unwrap_or("?")
            )));
        }
        let spec = KeySpec::from_type_and_size(csr.key_type, Some(csr.key_size))?;
        match self.token.key_attributes(&key) {
            Ok(_) => {}
            Err(HsmError::KeyNotFound(_)) => {
                return Err(ServiceError::InvalidRequest(format!(
                    "the key {} is no longer in the token",
                    key.uri(self.token.label())
                )))
            }
            Err(e) => return Err(e.into()),
        }
        if self.check_key_matches(&key, spec, &spki_der)? != (true, true) {
            return Err(ServiceError::KeyMismatch);
        }

        let issuer_chain_pem = match req.chain_pem.as_deref().map(str::trim) {
            Some(pem) if !pem.is_empty() => {
                if pem.len() > MAX_PEM {
                    return Err(ServiceError::InvalidChain(
                        "the chain file is larger than 256 KiB".into(),
                    ));
                }
                let chain = ca::certificates_from_pem(pem)
                    .map_err(|e| ServiceError::InvalidChain(format!("the chain: {e}")))?;
                if chain.len() > MAX_CHAIN {
                    return Err(ServiceError::InvalidChain(format!(
                        "more than {MAX_CHAIN} certificates"
                    )));
                }
                let mut child = &cert;
                let mut out = String::new();
                for parent in &chain {
                    check_issued_by(child, parent)?;
                    out.push_str(&ca::pem("CERTIFICATE", &parent.to_der()?)?);
                    child = parent;
                }
                Some(out)
            }
            _ => None,
        };

        if self.store.ca_name_taken(&who.tenant, &req.name)? {
            return Err(ServiceError::CaNameTaken(req.name));
        }
        let common_name = crate::ca::csr::cn_of(tbs.subject())
            .ok()
            .flatten()
            .unwrap_or_default();
        let rec = CaRecord {
            id: new_id("ca"),
            tenant: who.tenant.clone(),
            name: req.name,
            common_name,
            ca_type: CaType::Intermediate,
            parent_id: None,
            key_spec: spec,
            key_label: key.label.clone(),
            key_id: key.id.clone(),
            certificate_der: cert.to_der()?,
            serial_hex: Serial::from_der_bytes(tbs.serial_number().as_bytes()).to_hex(),
            not_before,
            not_after,
            is_active: true,
            certificates_issued: 0,
            created_at: now(),
            revocation: None,
            issuer_chain_pem,
        };
        self.store.insert_ca(&rec)?;
        let ca_id = rec.id.clone();
        self.store.update_csr(&csr.id, |r| {
            r.status = CsrStatus::Signed;
            r.certificate_id = Some(ca_id.clone());
            r.signed_at = Some(now());
            Ok::<(), crate::store::StoreError>(())
        })?;
        if let Err(e) = self.rebuild_crl(&rec.id) {
            tracing::warn!(ca_id = %rec.id, error = %e, "first CRL failed; the worker will retry");
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_chain_splits_into_its_certificates() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let two = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n";
        assert_eq!(split_pem_chain(&format!("{one}{two}")), vec![one, two]);
        assert!(split_pem_chain("").is_empty());
    }
}
