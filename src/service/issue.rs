//! Issuing leaves: `issue` (we make the key), `sign` (the client's CSR), `renew`.
//!
//! Order, after Boulder: check the request against policy, make the key (and seal it when
//! the role keeps keys), have the CA's token key sign, verify, then store and flush —
//! only then does the client see the certificate.

use serde::Deserialize;
use zeroize::Zeroizing;

use super::input::{opt_ttl, DurationInput, StringList};
use super::{Pki, Principal, ServiceError};
use crate::ca::leaf_key::{KeyFormat, LeafKey};
use crate::ca::profile::{self, LeafProfile};
use crate::ca::{self, csr, CertificateTemplate, Issuer};
use crate::keys::KeyType;
use crate::limits::Limits;
use crate::policy::{
    self, ApprovedNames, CsrKey, ExtKeyUsage, KeyUsage, RequestedNames, Role, Ttl,
};
use crate::store::{CaRecord, CertRecord, CertSource, SealedKey, StoreError, Ticket};
use crate::types::{new_id, now, Serial};

/// `POST /v1/pki/issue/{role}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    #[serde(default)]
    pub common_name: Option<String>,
    #[serde(default)]
    pub alt_names: StringList,
    #[serde(default)]
    pub ip_sans: StringList,
    #[serde(default)]
    pub uri_sans: StringList,
    #[serde(default)]
    pub ttl: Option<DurationInput>,
    #[serde(default)]
    pub private_key_format: KeyFormat,
    #[serde(default)]
    pub exclude_cn_from_sans: bool,
}

/// `POST /v1/pki/sign/{role}`. Names in the body are used only where the role does not
/// take them from the CSR (`use_csr_common_name`, `use_csr_sans`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    pub csr_pem: String,
    #[serde(default)]
    pub ttl: Option<DurationInput>,
    #[serde(default)]
    pub common_name: Option<String>,
    #[serde(default)]
    pub alt_names: StringList,
    #[serde(default)]
    pub ip_sans: StringList,
    #[serde(default)]
    pub uri_sans: StringList,
    #[serde(default)]
    pub exclude_cn_from_sans: bool,
}

/// `POST /v1/pki/certificates/{id}/renew`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    #[serde(default)]
    pub ttl: Option<DurationInput>,
    #[serde(default)]
    pub private_key_format: KeyFormat,
}

/// A certificate that is signed and written but not yet known to be on disk. Its content
/// can only be had through [`Pki::make_durable`], so no caller can answer a client before
/// the record is durable (ARCHITECTURE rule 3), while the wait itself holds no worker.
#[must_use]
pub struct Pending {
    issued: Issued,
    ticket: Ticket,
}

impl Pending {
    /// The id the certificate will have, for its audit entry.
    pub fn id(&self) -> &str {
        &self.issued.record.id
    }
}

impl Pki {
    /// Wait (as part of a group commit) until the certificate's record is on disk.
    pub fn make_durable(&self, p: Pending) -> Result<Issued, ServiceError> {
        self.make_durable_audited(p, None)
    }

    /// As `make_durable`, with the call's audit entry written before the wait, so one
    /// flush makes both durable instead of the entry waiting for a second one after the
    /// handler. The entry says `success`: it is only written once the certificate is.
    pub fn make_durable_audited(
        &self,
        p: Pending,
        audit: Option<super::audit::AuditEvent>,
    ) -> Result<Issued, ServiceError> {
        let audited = match audit {
            Some(ev) => Some(self.stage_audit(ev)?),
            None => None,
        };
        // Tickets are ordered: a flush that covers the entry covers the certificate.
        self.store.wait_durable(audited.unwrap_or(p.ticket))?;
        if audited.is_some() {
            self.audit_committed();
        }
        let ca_id = p.issued.record.issuer_ca_id.clone().unwrap_or_default();
        metrics::counter!("scaivault_certificates_issued_total", "ca_id" => ca_id, "kind" => "leaf")
            .increment(1);
        Ok(p.issued)
    }
}

/// A certificate just issued, with what the client gets once.
pub struct Issued {
    pub record: CertRecord,
    pub certificate_pem: String,
    pub private_key_pem: Option<Zeroizing<String>>,
    pub ca_chain: Vec<String>,
}

/// What the leaf will carry, decided before anything is signed.
pub(super) struct LeafPlan<'a> {
    pub(super) role: &'a Role,
    pub(super) names: ApprovedNames,
    pub(super) spki_der: Vec<u8>,
    pub(super) key_type: KeyType,
    pub(super) key_bits: u32,
    pub(super) ttl: Option<Ttl>,
    pub(super) source: CertSource,
    /// Whether the record names the role (false for the approval workflow's ad-hoc profile).
    pub(super) record_role: bool,
    pub(super) csr_id: Option<String>,
    /// The subject to use as it is (renewal keeps the old certificate's); None builds it
    /// from the approved common name and the role's subject fields.
    pub(super) subject: Option<x509_cert::name::Name>,
}

impl Pki {
    pub fn issue(
        &self,
        who: &Principal,
        role_name: &str,
        req: IssueRequest,
    ) -> Result<Pending, ServiceError> {
        let role = self.role_for(who, role_name)?;
        let format = req.private_key_format;
        let (names, ttl) = issue_names(&role, req, self.limits())?;
        self.issue_new_key(who, &role, names, ttl, format, None)
    }

    fn issue_new_key(
        &self,
        who: &Principal,
        role: &Role,
        names: ApprovedNames,
        ttl: Option<Ttl>,
        format: KeyFormat,
        subject: Option<x509_cert::name::Name>,
    ) -> Result<Pending, ServiceError> {
        let spec = role.issue_key_spec()?;
        // Check the CA before spending time on a key (RSA generation takes a while).
        let ca = self.ca_for(who, &role.ca_id)?;
        self.ensure_can_sign(&ca)?;
        let key = LeafKey::generate(spec)?;
        let plan = LeafPlan {
            role,
            names,
            spki_der: key.spki_der.clone(),
            key_type: spec.key_type(),
            key_bits: spec.size(),
            ttl,
            source: CertSource::Issued,
            record_role: true,
            csr_id: None,
            subject,
        };
        let mut pending = self.sign_and_record(who, &ca, plan, Some(&key))?;
        pending.issued.private_key_pem = Some(key.to_pem(format)?);
        Ok(pending)
    }

    pub fn sign_csr(
        &self,
        who: &Principal,
        role_name: &str,
        req: SignRequest,
    ) -> Result<Pending, ServiceError> {
        let role = self.role_for(who, role_name)?;
        let (csr, names, ttl) = sign_names(&role, req, self.limits())?;
        let ca = self.ca_for(who, &role.ca_id)?;
        self.ensure_can_sign(&ca)?;
        let plan = LeafPlan {
            role: &role,
            names,
            spki_der: csr.spki_der,
            key_type: csr.key_type,
            key_bits: csr.key_bits,
            ttl,
            source: CertSource::Signed,
            record_role: true,
            csr_id: None,
            subject: None,
        };
        self.sign_and_record(who, &ca, plan, None)
    }

    /// A new key and certificate for the same subject and SANs, under the role as it is
    /// now. The old certificate is left as it is.
    pub fn renew(
        &self,
        who: &Principal,
        cert_id: &str,
        req: RenewRequest,
    ) -> Result<Pending, ServiceError> {
        let old = self.cert_for(who, cert_id)?;
        // A revoked (or held) certificate's holder must not get a fresh one by renewing it.
        if let Some(r) = &old.revocation {
            return Err(ServiceError::NotRenewable(format!(
                "it is revoked ({}); issue a new certificate instead",
                r.reason
            )));
        }
        let role_name = match (&old.source, &old.role) {
            (CertSource::Imported, _) | (_, None) => {
                return Err(ServiceError::NotRenewable(
                    "only certificates issued under a role can be renewed".into(),
                ))
            }
            (_, Some(r)) => r.clone(),
        };
        // A renewal is a new issuance under the role: it needs what issuing needs.
        who.require(&super::access::Capability::Issue(
            super::access::RoleSel::Named(role_name.clone()),
        ))?;
        let role = self.role_for(who, &role_name).map_err(|_| {
            ServiceError::NotRenewable(format!("its role {role_name:?} no longer exists"))
        })?;
        let names = policy::approve_names(
            &role,
            &RequestedNames {
                common_name: (!old.common_name.is_empty()).then(|| old.common_name.clone()),
                dns: old.san_dns.clone(),
                ips: old.san_ip.clone(),
                uris: old.san_uri.clone(),
                exclude_cn_from_sans: !old.san_dns.contains(&old.common_name),
            },
            self.limits(),
        )?;
        let ttl = opt_ttl(&req.ttl, "ttl")?;
        // The same subject, as the spec says, even if the role's subject fields have changed
        // since: its names were checked against the role as it is now just above.
        let subject = <x509_cert::Certificate as der::Decode>::from_der(&old.certificate_der)
            .map_err(|e| ServiceError::Internal(format!("stored certificate {cert_id}: {e}")))?
            .tbs_certificate()
            .subject()
            .clone();
        self.issue_new_key(
            who,
            &role,
            names,
            ttl,
            req.private_key_format,
            Some(subject),
        )
    }

    /// Sign the leaf with the CA's token key, verify it, and store it durably.
    pub(super) fn sign_and_record(
        &self,
        who: &Principal,
        ca: &CaRecord,
        plan: LeafPlan<'_>,
        key: Option<&LeafKey>,
    ) -> Result<Pending, ServiceError> {
        let role = plan.role;
        let (not_before, not_after) = policy::validity(role, plan.ttl, ca.not_after, now())?;
        let not_before = not_before.max(ca.not_before);
        let id = new_id("cert");

        // Sealed before signing, so a token that can't seal costs no serial and no record.
        let sealed_key = match (role.store_private_keys, key) {
            (true, Some(k)) => {
                let s = self.token.seal(k.pkcs8_der(), id.as_bytes())?;
                Some(SealedKey {
                    key_label: s.key_label,
                    iv: s.iv,
                    ciphertext: s.ciphertext,
                })
            }
            _ => None,
        };

        let ca_key = ca.key_ref();
        let signer = self.token.signer(&ca_key);
        let issuer = Issuer::from_certificate(&ca.certificate_der, ca.key_spec, &signer)?;
        let (subject, subject_is_empty) = match plan.subject {
            Some(name) => {
                let empty = name.is_empty();
                (name, empty)
            }
            None => (
                ca::subject_name(plan.names.common_name.as_deref(), &role.subject)?,
                plan.names.common_name.is_none() && role.subject == Default::default(),
            ),
        };
        let ski = profile::key_identifier(&plan.spki_der)?;
        let usages = role.key_usage_for(plan.key_type, profile::is_rsassa_pss_key(&plan.spki_der));
        let key_usage = usages
            .into_iter()
            .fold(flagset::FlagSet::default(), |acc, u| acc | key_usage_bit(u));
        let ext_key_usage = role.ext_key_usage.iter().map(|e| eku_oid(*e)).collect();
        let (crl_url, ca_issuers_url) = self.issuer_urls(&ca.id).unzip();
        let leaf = LeafProfile {
            subject_key_id: &ski,
            authority_key_id: &issuer.key_id,
            dns: &plan.names.dns,
            ips: &plan.names.ips,
            uris: &plan.names.uris,
            key_usage,
            ext_key_usage,
            crl_url,
            ca_issuers_url,
            subject_is_empty,
        };
        let extensions = profile::leaf_extensions(&leaf)?;

        let (rec, ticket) = sign_and_stage(
            &self.store,
            &issuer,
            |serial| CertificateTemplate {
                subject: subject.clone(),
                spki_der: plan.spki_der.clone(),
                serial,
                not_before,
                not_after,
                extensions: extensions.clone(),
                self_signed: false,
            },
            |cert| CertRecord {
                id: id.clone(),
                tenant: who.tenant.clone(),
                seq: 0,
                issuer_ca_id: Some(ca.id.clone()),
                role: plan.record_role.then(|| role.name.clone()),
                source: plan.source,
                common_name: plan.names.common_name.clone().unwrap_or_default(),
                san_dns: plan.names.dns.clone(),
                san_ip: plan.names.ips.iter().map(ToString::to_string).collect(),
                san_uri: plan.names.uris.clone(),
                serial_hex: cert.serial.to_hex(),
                not_before: cert.not_before,
                not_after: cert.not_after,
                key_type: Some(plan.key_type),
                key_bits: Some(plan.key_bits),
                certificate_der: cert.der,
                chain_pem: None,
                sealed_key: sealed_key.clone(),
                revocation: None,
                requested_by: who.token_id.clone(),
                created_at: now(),
                token_key_label: None,
                token_key_id: Vec::new(),
                csr_id: plan.csr_id.clone(),
            },
        )?;
        tracing::info!(cert_id = %rec.id, ca_id = %ca.id, role = %role.name,
            serial = %hex::decode(&rec.serial_hex).map(|b| Serial::from_der_bytes(&b).to_colon_hex()).unwrap_or_default(),
            "certificate issued");
        Ok(Pending {
            issued: Issued {
                certificate_pem: ca::pem("CERTIFICATE", &rec.certificate_der)?,
                ca_chain: self.chain_pems(ca)?,
                record: rec,
                private_key_pem: None,
            },
            ticket,
        })
    }

    /// PEMs from this CA up to its root. CA certificates never change once stored, so
    /// each chain is built once and then served from memory.
    pub fn chain_pems(&self, ca: &CaRecord) -> Result<Vec<String>, ServiceError> {
        if let Some(c) = self
            .chains
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ca.id)
        {
            return Ok(c.as_ref().clone());
        }
        let chain = self.build_chain_pems(ca)?;
        self.chains
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ca.id.clone(), std::sync::Arc::new(chain.clone()));
        Ok(chain)
    }

    fn build_chain_pems(&self, ca: &CaRecord) -> Result<Vec<String>, ServiceError> {
        let mut out = vec![ca::pem("CERTIFICATE", &ca.certificate_der)?];
        let mut parent = ca.parent_id.clone();
        let mut top_chain = ca.issuer_chain_pem.clone();
        // CA chains are short; the bound only guards against a corrupt store with a loop.
        for _ in 0..16 {
            let Some(pid) = parent else { break };
            let Some(p) = self.store.get_ca(&pid)? else {
                break;
            };
            out.push(ca::pem("CERTIFICATE", &p.certificate_der)?);
            parent = p.parent_id.clone();
            top_chain = p.issuer_chain_pem.clone();
        }
        // An intermediate signed outside: the issuers given when it was imported.
        out.extend(
            top_chain
                .iter()
                .flat_map(|c| crate::service::ceremony::split_pem_chain(c)),
        );
        Ok(out)
    }
}

/// `issue`'s names and TTL: the body checked against the role, nothing stored or signed.
/// Public so that the `request_json` fuzz target runs exactly these steps.
pub fn issue_names(
    role: &Role,
    req: IssueRequest,
    limits: &Limits,
) -> Result<(ApprovedNames, Option<Ttl>), ServiceError> {
    let names = policy::approve_names(
        role,
        &RequestedNames {
            common_name: req.common_name,
            dns: req.alt_names.0,
            ips: req.ip_sans.0,
            uris: req.uri_sans.0,
            exclude_cn_from_sans: req.exclude_cn_from_sans,
        },
        limits,
    )?;
    Ok((names, opt_ttl(&req.ttl, "ttl")?))
}

/// `sign`'s CSR (size, self-signature, key), names and TTL, checked against the role;
/// nothing stored or signed. Public for the `request_json` fuzz target, as `issue_names`.
pub fn sign_names(
    role: &Role,
    req: SignRequest,
    limits: &Limits,
) -> Result<(csr::VerifiedCsr, ApprovedNames, Option<Ttl>), ServiceError> {
    super::check_csr_size(&req.csr_pem, limits)?;
    let csr = csr::parse_and_verify(&req.csr_pem)?;
    let key = match csr.key_type {
        KeyType::Ec => CsrKey::Ec(csr.key_bits),
        KeyType::Rsa => CsrKey::Rsa(csr.key_bits),
    };
    role.allows_csr_key(key)?;
    let common_name = if role.use_csr_common_name {
        csr.common_name.clone().or(req.common_name)
    } else {
        req.common_name
    };
    let (dns, ips, uris) = if role.use_csr_sans {
        (
            csr.dns.clone(),
            csr.ips.iter().map(ToString::to_string).collect(),
            csr.uris.clone(),
        )
    } else {
        (req.alt_names.0, req.ip_sans.0, req.uri_sans.0)
    };
    let names = policy::approve_names(
        role,
        &RequestedNames {
            common_name,
            dns,
            ips,
            uris,
            exclude_cn_from_sans: req.exclude_cn_from_sans,
        },
        limits,
    )?;
    Ok((csr, names, opt_ttl(&req.ttl, "ttl")?))
}

/// Sign a certificate (a fresh serial per attempt, three attempts) and stage its record.
///
/// A signing call that fails, or a signature that does not verify against the issuer's
/// public key, returns here before anything is written: `ca::sign_certificate` verifies,
/// and only a certificate it returned reaches the store. So no record, and no response
/// with a certificate, ever comes from a faulty token.
pub(super) fn sign_and_stage(
    store: &crate::store::Store,
    issuer: &Issuer<'_>,
    template: impl Fn(Serial) -> CertificateTemplate,
    record: impl Fn(ca::SignedCertificate) -> CertRecord,
) -> Result<(CertRecord, Ticket), ServiceError> {
    for _ in 0..3 {
        let cert = ca::sign_certificate(template(Serial::random()), issuer)?;
        let mut rec = record(cert);
        match store.stage_cert(&mut rec) {
            Ok(ticket) => return Ok((rec, ticket)),
            Err(StoreError::SerialTaken(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Internal(
        "could not find an unused serial number".into(),
    ))
}

fn key_usage_bit(u: KeyUsage) -> x509_cert::ext::pkix::KeyUsages {
    use x509_cert::ext::pkix::KeyUsages as K;
    match u {
        KeyUsage::DigitalSignature => K::DigitalSignature,
        KeyUsage::ContentCommitment => K::NonRepudiation,
        KeyUsage::KeyEncipherment => K::KeyEncipherment,
        KeyUsage::DataEncipherment => K::DataEncipherment,
        KeyUsage::KeyAgreement => K::KeyAgreement,
    }
}

fn eku_oid(e: ExtKeyUsage) -> const_oid::ObjectIdentifier {
    use const_oid::db::rfc5280 as o;
    match e {
        ExtKeyUsage::ServerAuth => o::ID_KP_SERVER_AUTH,
        ExtKeyUsage::ClientAuth => o::ID_KP_CLIENT_AUTH,
        ExtKeyUsage::CodeSigning => o::ID_KP_CODE_SIGNING,
        ExtKeyUsage::EmailProtection => o::ID_KP_EMAIL_PROTECTION,
        ExtKeyUsage::TimeStamping => o::ID_KP_TIME_STAMPING,
        ExtKeyUsage::OcspSigning => o::ID_KP_OCSP_SIGNING,
    }
}

#[cfg(test)]
mod tests {
    //! A token that fails or lies, seen from the use case: no stored record, no certificate.
    //! (The signers here are software fakes; the integration tests use the real token.)

    use super::*;
    use crate::ca::{common_name, profile};
    use crate::keys::{DigestSigner, KeySpec, SignError, SignatureAlgorithm};
    use crate::store::{CertQuery, Store};
    use p256::pkcs8::EncodePublicKey;

    struct Soft(p256::ecdsa::SigningKey);

    impl DigestSigner for Soft {
        fn sign_digest(&self, _: SignatureAlgorithm, d: &[u8]) -> Result<Vec<u8>, SignError> {
            use p256::ecdsa::signature::hazmat::PrehashSigner;
            let sig: p256::ecdsa::Signature = self
                .0
                .sign_prehash(d)
                .map_err(|e| SignError::Failed(e.to_string()))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
    }

    /// The token call fails.
    struct Failing;
    impl DigestSigner for Failing {
        fn sign_digest(&self, _: SignatureAlgorithm, _: &[u8]) -> Result<Vec<u8>, SignError> {
            Err(SignError::Failed("CKR_FUNCTION_FAILED".into()))
        }
    }

    /// The token is gone.
    struct Gone;
    impl DigestSigner for Gone {
        fn sign_digest(&self, _: SignatureAlgorithm, _: &[u8]) -> Result<Vec<u8>, SignError> {
            Err(SignError::Unavailable("CKR_DEVICE_REMOVED".into()))
        }
    }

    /// A well-formed ECDSA signature (r = s = 1) that verifies for nothing.
    struct Garbage;
    impl DigestSigner for Garbage {
        fn sign_digest(&self, _: SignatureAlgorithm, _: &[u8]) -> Result<Vec<u8>, SignError> {
            Ok(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])
        }
    }

    /// Not even DER.
    struct Truncated;
    impl DigestSigner for Truncated {
        fn sign_digest(&self, _: SignatureAlgorithm, _: &[u8]) -> Result<Vec<u8>, SignError> {
            Ok(vec![0x30, 0x45, 0x02])
        }
    }

    fn soft_key() -> (Soft, Vec<u8>) {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        seed[0] = 1;
        let sk = p256::ecdsa::SigningKey::from_slice(&seed).unwrap();
        let spki = sk.verifying_key().to_public_key_der().unwrap();
        (Soft(sk), spki.as_bytes().to_vec())
    }

    fn attempt(
        store: &Store,
        signer: &dyn DigestSigner,
        spki: &[u8],
    ) -> Result<(CertRecord, Ticket), ServiceError> {
        let ski = profile::key_identifier(spki).unwrap();
        let issuer = Issuer {
            name: common_name("Fault Root").unwrap(),
            spki_der: spki.to_vec(),
            key_id: ski.clone(),
            spec: KeySpec::EcP256,
            not_after: None,
            signer,
        };
        let start = now();
        sign_and_stage(
            store,
            &issuer,
            |serial| CertificateTemplate {
                subject: common_name("Fault Root").unwrap(),
                spki_der: spki.to_vec(),
                serial,
                not_before: start,
                not_after: start + time::Duration::days(1),
                extensions: profile::ca_extensions(&ski, None, None).unwrap(),
                self_signed: true,
            },
            |cert| CertRecord {
                id: new_id("cert"),
                tenant: "default".into(),
                seq: 0,
                issuer_ca_id: Some("ca_fault".into()),
                role: None,
                source: CertSource::Issued,
                common_name: "Fault Root".into(),
                san_dns: vec![],
                san_ip: vec![],
                san_uri: vec![],
                serial_hex: cert.serial.to_hex(),
                not_before: cert.not_before,
                not_after: cert.not_after,
                key_type: Some(KeyType::Ec),
                key_bits: Some(256),
                certificate_der: cert.der,
                chain_pem: None,
                sealed_key: None,
                revocation: None,
                requested_by: "tok_test".into(),
                created_at: now(),
                token_key_label: None,
                token_key_id: Vec::new(),
                csr_id: None,
            },
        )
    }

    fn stored(store: &Store) -> usize {
        let q = CertQuery {
            tenant: "default",
            ca_id: Some("ca_fault"),
            expiring: None,
            limit: 100,
            after: None,
            scan_budget: 1000,
        };
        store.list_certs(&q, |_| true).unwrap().items.len()
    }

    #[test]
    fn a_failing_or_lying_token_leaves_no_record_and_no_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (good, spki) = soft_key();
        let (other, _) = soft_key();
        let bad: [(&str, &dyn DigestSigner); 5] = [
            ("a failing call", &Failing),
            ("a vanished token", &Gone),
            ("a signature that verifies for nothing", &Garbage),
            ("a signature that is not DER", &Truncated),
            ("a signature by another key", &other),
        ];
        for (what, signer) in bad {
            let r = attempt(&store, signer, &spki);
            assert!(r.is_err(), "{what}: a certificate came back");
            assert_eq!(stored(&store), 0, "{what}: a record was stored");
        }
        // A vanished token is a 503 to the client, not a 500.
        assert!(matches!(
            attempt(&store, &Gone, &spki),
            Err(ServiceError::HsmUnavailable(_))
        ));
        // The same path with an honest signer stores exactly one record.
        let (rec, ticket) = attempt(&store, &good, &spki).unwrap();
        store.wait_durable(ticket).unwrap();
        assert_eq!(stored(&store), 1);
        assert_eq!(store.get_cert(&rec.id).unwrap().unwrap().id, rec.id);
    }
}
