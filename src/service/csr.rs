//! The CSR approval workflow (import → approve or reject → sign) and CSRs whose key pair
//! is generated in the token.
//!
//! States: pending → approved | rejected; approved → signed | rejected. Any other move is
//! refused with `InvalidState`. Signing happens only for an approved CSR, with an explicit
//! CA and validity, because a person looked at exactly these names.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::input::StringList;
use super::issue::{LeafPlan, Pending};
use super::{Pki, Principal, ServiceError};
use crate::ca::csr;
use crate::keys::{KeySpec, KeyType};
use crate::policy::{self, CsrKey, ExtKeyUsage, KeyUsage, RequestedNames, Role, RoleKeyType, Ttl};
use crate::store::{CertSource, CsrRecord, CsrSource, CsrStatus};
use crate::types::{new_id, now, SubjectFields};

/// `POST /v1/pki/csr/import`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportCsrRequest {
    pub csr_pem: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub note: Option<String>,
}

/// `POST /v1/pki/csr/{id}/reject`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub reason: Option<String>,
}

/// `POST /v1/pki/csr/{id}/sign`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignApprovedRequest {
    pub ca_id: String,
    #[schema(minimum = 1, maximum = 36500)]
    #[serde(deserialize_with = "super::input::whole_u32")]
    pub validity_days: u32,
    #[serde(default)]
    #[schema(schema_with = crate::service::schema::ext_key_usages_named)]
    pub ext_key_usage: Option<StringList>,
}

/// `POST /v1/pki/csr`: a CSR whose key pair is made in the token.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateCsrRequest {
    pub subject: SubjectRequest,
    #[serde(default)]
    pub san_dns: StringList,
    #[serde(default)]
    pub san_ip: StringList,
    #[serde(default)]
    pub key_type: Option<KeyType>,
    #[serde(default)]
    #[schema(schema_with = crate::service::schema::key_size)]
    #[serde(deserialize_with = "super::input::opt_whole_u32")]
    pub key_size: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectRequest {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub common_name: String,
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
}

/// Most characters of a note or a rejection reason.
const MAX_TEXT: usize = 1024;

fn short_text(field: &str, v: Option<String>) -> Result<Option<String>, ServiceError> {
    match v {
        Some(t) if t.chars().count() > MAX_TEXT => Err(ServiceError::InvalidRequest(format!(
            "{field} may be at most {MAX_TEXT} characters"
        ))),
        other => Ok(other),
    }
}

fn subject_string(name: &x509_cert::name::Name) -> String {
    let mut rdns: Vec<String> = name.iter_rdn().map(|r| r.to_string()).collect();
    rdns.reverse();
    rdns.join(",")
}

fn record_from(
    who: &Principal,
    id: String,
    source: CsrSource,
    pem: String,
    parsed: &csr::VerifiedCsr,
    note: Option<String>,
) -> CsrRecord {
    CsrRecord {
        id,
        tenant: who.tenant.clone(),
        seq: 0,
        status: CsrStatus::Pending,
        source,
        csr_pem: pem,
        common_name: parsed.common_name.clone(),
        subject: subject_string(&parsed.subject),
        san_dns: parsed.dns.clone(),
        san_ip: parsed.ips.iter().map(ToString::to_string).collect(),
        san_uri: parsed.uris.clone(),
        key_type: parsed.key_type,
        key_size: parsed.key_bits,
        requested_by: who.token_id.clone(),
        note,
        created_at: now(),
        approved_by: None,
        approved_at: None,
        rejected_by: None,
        rejected_at: None,
        reason: None,
        certificate_id: None,
        signed_at: None,
        key_label: None,
        key_id: Vec::new(),
        spki_sha256: hex::encode(Sha256::digest(&parsed.spki_der)),
    }
}

/// The workflow has no role: a CSR's key must meet the floor of `key_type: any` (422
/// `key_type_not_allowed`, as `/sign/{role}` answers).
fn check_key(parsed: &csr::VerifiedCsr) -> Result<(), ServiceError> {
    Ok(CsrKey::of(parsed.key_type, parsed.key_bits).certifiable()?)
}

impl CsrRecord {
    /// The key pair made in the token for this CSR, if it was made there.
    pub fn token_key(&self) -> Option<crate::hsm::KeyRef> {
        self.key_label.as_ref().map(|label| crate::hsm::KeyRef {
            label: label.clone(),
            id: self.key_id.clone(),
        })
    }
}

fn wrong_state(rec: &CsrRecord, wanted: &str) -> ServiceError {
    ServiceError::InvalidState(format!("CSR {} is {:?}; {wanted}", rec.id, rec.status))
}

impl Pki {
    /// A CSR of the caller's tenant.
    pub fn csr_for(&self, who: &Principal, id: &str) -> Result<CsrRecord, ServiceError> {
        match self.store.get_csr(id)? {
            Some(r) if r.tenant == who.tenant => Ok(r),
            _ => Err(ServiceError::NotFound {
                kind: "csr",
                id: id.to_string(),
            }),
        }
    }

    /// Take a CSR in for review; its self-signature and its key are checked now, so that
    /// a reviewer never approves a request that could not be signed.
    pub fn import_csr(
        &self,
        who: &Principal,
        req: ImportCsrRequest,
    ) -> Result<CsrRecord, ServiceError> {
        let note = short_text("note", req.note)?;
        super::check_csr_size(&req.csr_pem, self.limits())?;
        let parsed = csr::parse_and_verify(&req.csr_pem)?;
        check_key(&parsed)?;
        let mut rec = record_from(
            who,
            new_id("csr"),
            CsrSource::Imported,
            req.csr_pem.trim().to_string() + "\n",
            &parsed,
            note,
        );
        self.store.insert_csr(&mut rec)?;
        Ok(rec)
    }

    pub fn list_csrs(
        &self,
        who: &Principal,
        status: Option<CsrStatus>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<CsrRecord>, Option<u64>), ServiceError> {
        Ok(self.store.list_csrs(&who.tenant, after, limit, |r| {
            status.is_none_or(|s| r.status == s)
        })?)
    }

    pub fn approve_csr(&self, who: &Principal, id: &str) -> Result<CsrRecord, ServiceError> {
        let rec = self.csr_for(who, id)?;
        // Parties, not token ids: a token could otherwise mint itself a child that
        // approves what it asked for.
        if self.settings.four_eyes && self.party_of_token(&rec.requested_by)? == who.party {
            return Err(ServiceError::FourEyes);
        }
        self.store
            .update_csr(id, |r| {
                if r.status != CsrStatus::Pending {
                    return Err(wrong_state(r, "only a pending CSR can be approved"));
                }
                r.status = CsrStatus::Approved;
                r.approved_by = Some(who.token_id.clone());
                r.approved_at = Some(now());
                Ok(())
            })?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "csr",
                id: id.to_string(),
            })
    }

    pub fn reject_csr(
        &self,
        who: &Principal,
        id: &str,
        req: RejectRequest,
    ) -> Result<CsrRecord, ServiceError> {
        self.csr_for(who, id)?;
        let reason = short_text("reason", req.reason)?;
        let rec = self
            .store
            .update_csr(id, |r| {
                if !matches!(r.status, CsrStatus::Pending | CsrStatus::Approved) {
                    return Err(wrong_state(
                        r,
                        "only a pending or approved CSR can be rejected",
                    ));
                }
                r.status = CsrStatus::Rejected;
                r.rejected_by = Some(who.token_id.clone());
                r.rejected_at = Some(now());
                r.reason = reason.clone();
                Ok(())
            })?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "csr",
                id: id.to_string(),
            })?;
        // Rejected is final: a key made in the token for this CSR can never be certified,
        // and kept it would only grow the token.
        if let (CsrSource::Generated, Some(key)) = (&rec.source, rec.token_key()) {
            if let Err(e) = self.token.destroy_key_pair(&key) {
                tracing::warn!(csr = %rec.id, key = %key.label, error = %e,
                    "cannot destroy the token key of a rejected CSR");
            }
        }
        Ok(rec)
    }

    /// Sign an approved CSR with a CA: the names a reviewer approved, a plain leaf profile
    /// (keyUsage fitted to the key, extKeyUsage as asked or serverAuth + clientAuth).
    pub fn sign_approved_csr(
        &self,
        who: &Principal,
        id: &str,
        req: SignApprovedRequest,
    ) -> Result<(Pending, String), ServiceError> {
        let rec = self.csr_for(who, id)?;
        if rec.status != CsrStatus::Approved {
            return Err(wrong_state(&rec, "only an approved CSR can be signed"));
        }
        if req.validity_days == 0 || req.validity_days > 36_500 {
            return Err(ServiceError::InvalidRequest(
                "validity_days must be between 1 and 36500".into(),
            ));
        }
        // A certificate without extKeyUsage is good for any purpose: that is not what a
        // reviewer approving a TLS default should get by sending an empty list.
        if req.ext_key_usage.as_ref().is_some_and(|l| l.0.is_empty()) {
            return Err(ServiceError::InvalidRequest(
                "ext_key_usage must not be empty: leave it out for ServerAuth and ClientAuth, or name the usages".into(),
            ));
        }
        let ext_key_usage =
            ExtKeyUsage::parse_list(req.ext_key_usage.as_ref().map(|l| l.0.as_slice()))
                .map_err(ServiceError::InvalidRequest)?;
        let ca = self.ca_for(who, &req.ca_id)?;
        self.ensure_can_sign(&ca)?;
        let parsed = csr::parse_and_verify(&rec.csr_pem)?;
        // Checked at import too; a CSR stored before that check (or under a lower floor)
        // is refused here.
        check_key(&parsed)?;
        let ttl = Ttl::from_secs(u64::from(req.validity_days) * 86_400);
        // The reviewer approved these exact names: a profile that lets them all through,
        // still refusing malformed ones.
        let profile = Role {
            ca_id: ca.id.clone(),
            enforce_hostnames: false,
            allowed_uri_sans: vec!["*".into()],
            ttl: Some(ttl),
            max_ttl: ttl,
            key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
            ext_key_usage,
            not_before_duration: Ttl::from_secs(30),
            ..policy_probe_role(&who.tenant)
        };
        let names = policy::approve_names(
            &profile,
            &RequestedNames {
                common_name: parsed.common_name.clone(),
                dns: parsed.dns.clone(),
                ips: parsed.ips.iter().map(ToString::to_string).collect(),
                uris: parsed.uris.clone(),
                exclude_cn_from_sans: false,
            },
            self.limits(),
        )?;
        let plan = LeafPlan {
            role: &profile,
            names,
            spki_der: parsed.spki_der,
            key_type: parsed.key_type,
            key_bits: parsed.key_bits,
            ttl: Some(ttl),
            source: CertSource::Signed,
            record_role: false,
            csr_id: Some(rec.id.clone()),
            subject: None,
        };
        let pending = self.sign_and_record(who, &ca, plan, None)?;
        Ok((pending, rec.id))
    }

    /// After the certificate is durable: mark the CSR signed and point it at it.
    pub fn mark_csr_signed(&self, id: &str, cert_id: &str) -> Result<CsrRecord, ServiceError> {
        self.store
            .update_csr(id, |r| {
                if r.status != CsrStatus::Approved {
                    return Err(wrong_state(r, "it was signed or rejected meanwhile"));
                }
                r.status = CsrStatus::Signed;
                r.certificate_id = Some(cert_id.to_string());
                r.signed_at = Some(now());
                Ok(())
            })?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "csr",
                id: id.to_string(),
            })
    }

    /// Make a key pair in the token and a CSR signed by it. No private key ever leaves.
    pub fn generate_csr(
        &self,
        who: &Principal,
        req: GenerateCsrRequest,
    ) -> Result<CsrRecord, ServiceError> {
        let spec = KeySpec::from_type_and_size(req.key_type.unwrap_or(KeyType::Ec), req.key_size)?;
        let fields = SubjectFields {
            organization: req.subject.organization.0,
            ou: req.subject.ou.0,
            country: req.subject.country.0,
            locality: req.subject.locality.0,
            province: req.subject.province.0,
        };
        // The same checks a role's names get, with nothing restricted but the forms. With
        // no SAN asked for, the CN (a host name or an IP address, or it is refused) is the
        // SAN, as for `issue`; with SANs, the CSR carries exactly those.
        let no_sans = req.san_dns.0.is_empty() && req.san_ip.0.is_empty();
        let permissive = Role {
            allow_any_name: true,
            require_cn: true,
            ..policy_probe_role(&who.tenant)
        };
        let names = policy::approve_names(
            &permissive,
            &RequestedNames {
                common_name: Some(req.subject.common_name.clone()),
                dns: req.san_dns.0,
                ips: req.san_ip.0,
                uris: vec![],
                exclude_cn_from_sans: !no_sans,
            },
            self.limits(),
        )?;
        check_countries(&fields.country)?;
        let subject = crate::ca::subject_name(names.common_name.as_deref(), &fields)?;
        self.csr_in_token(who, spec, &subject, &names.dns, &names.ips)
    }

    /// Make a key pair in the token and a CSR signed by it, and record the CSR (pending,
    /// linked to the key). Shared by API CSRs and intermediate CSRs of key ceremonies.
    pub(crate) fn csr_in_token(
        &self,
        who: &Principal,
        spec: KeySpec,
        subject: &x509_cert::name::Name,
        dns: &[String],
        ips: &[std::net::IpAddr],
    ) -> Result<CsrRecord, ServiceError> {
        let id = new_id("csr");
        let generated = self
            .token
            .generate_key_pair(spec, &format!("scaivault-csr-{id}"))?;
        let signer = self.token.signer(&generated.key);
        let built =
            crate::ca::csr::build_csr(subject, &generated.spki_der, spec, dns, ips, &signer)
                .and_then(|pem| {
                    Ok((
                        csr::parse_and_verify(&pem)
                            .map_err(|e| crate::ca::CaError::Invalid(e.to_string()))?,
                        pem,
                    ))
                });
        let (parsed, pem) = match built {
            Ok(v) => v,
            Err(e) => {
                let _ = self.token.destroy_key_pair(&generated.key);
                return Err(e.into());
            }
        };
        let mut rec = record_from(who, id, CsrSource::Generated, pem, &parsed, None);
        rec.key_label = Some(generated.key.label.clone());
        rec.key_id = generated.key.id.clone();
        // A key without its CSR record would be an orphan nobody can find or use. A record
        // that was written but not flushed may still reach the disk: its key stays.
        if let Err(e) = self.store.insert_csr(&mut rec) {
            if matches!(self.store.get_csr(&rec.id), Ok(None)) {
                let _ = self.token.destroy_key_pair(&generated.key);
            }
            return Err(e.into());
        }
        Ok(rec)
    }
}

/// Subject countries are two-letter ISO 3166 codes in capitals.
pub(crate) fn check_countries(countries: &[String]) -> Result<(), ServiceError> {
    for c in countries {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ServiceError::InvalidRequest(format!(
                "country {c:?} must be a two-letter ISO 3166 code in capitals"
            )));
        }
    }
    Ok(())
}

/// A role that refuses nothing but malformed names, as a base for ad-hoc checks.
fn policy_probe_role(tenant: &str) -> Role {
    Role {
        name: String::new(),
        tenant: tenant.to_string(),
        ca_id: String::new(),
        allowed_domains: vec![],
        allow_subdomains: false,
        allow_bare_domains: false,
        allow_glob_domains: false,
        allow_wildcard_certificates: true,
        allow_localhost: true,
        allow_any_name: true,
        enforce_hostnames: true,
        allow_ip_sans: true,
        allowed_uri_sans: vec![],
        ttl: None,
        max_ttl: Ttl::from_secs(86_400),
        key_type: RoleKeyType::Any,
        key_bits: 0,
        key_usage: vec![KeyUsage::DigitalSignature],
        ext_key_usage: vec![],
        subject: SubjectFields::default(),
        use_csr_common_name: true,
        use_csr_sans: true,
        not_before_duration: Ttl::from_secs(0),
        require_cn: false,
        store_private_keys: false,
        created_at: now(),
        updated_at: now(),
    }
}
