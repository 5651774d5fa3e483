//! Tracked certificates: list with filters and cursors, fetch, stored-key retrieval, import.

use base64::Engine;
use der::{Decode, Encode};
use serde::Deserialize;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::{Pki, Principal, ServiceError};
use crate::ca::leaf_key::{KeyFormat, LeafKey};
use crate::ca::{self, csr, verify};
use crate::hsm::Sealed;
use crate::policy::Ttl;
use crate::store::{CertQuery, CertRecord, CertSource, SealedKey, StoreError};
use crate::types::{new_id, now, Serial};

/// `POST /v1/pki/certificates/{id}/private-key`: the body is optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivateKeyRequest {
    /// `pem` (default: SEC 1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`) or `pkcs8`.
    #[serde(default)]
    pub private_key_format: KeyFormat,
}

/// Filters of `GET /v1/pki/certificates`, already parsed from the query string.
#[derive(Debug, Clone, Default)]
pub struct CertFilter {
    pub ca_id: Option<String>,
    pub expiring_within: Option<Ttl>,
    pub common_name: Option<String>,
    pub role: Option<String>,
    pub revoked: Option<bool>,
    pub limit: usize,
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

pub struct CertList {
    pub items: Vec<CertRecord>,
    pub cursor: Option<String>,
}

/// Cursors name the index they walk, so one from another query shape is refused.
fn cursor_mode(f: &CertFilter) -> u8 {
    match (f.ca_id.is_some(), f.expiring_within.is_some()) {
        (false, false) => b't',
        (true, false) => b'c',
        (false, true) => b'T',
        (true, true) => b'C',
    }
}

/// `POST /v1/pki/certificates/import`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    pub certificate_pem: String,
    /// Wiped on drop, and never printed by `Debug`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub private_key_pem: Option<secrecy::SecretString>,
    #[serde(default)]
    pub chain_pem: Option<String>,
}

impl Pki {
    /// A certificate of the caller's tenant.
    pub fn cert_for(&self, who: &Principal, id: &str) -> Result<CertRecord, ServiceError> {
        match self.store.get_cert(id)? {
            Some(rec) if rec.tenant == who.tenant => Ok(rec),
            _ => Err(ServiceError::NotFound {
                kind: "certificate",
                id: id.to_string(),
            }),
        }
    }

    pub fn list_certs(&self, who: &Principal, f: CertFilter) -> Result<CertList, ServiceError> {
        if let Some(ca) = &f.ca_id {
            self.ca_for(who, ca)?;
        }
        let mode = cursor_mode(&f);
        let after = match &f.cursor {
            None => None,
            Some(c) => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    // The mode byte, then the position: a sequence number, after an
                    // expiry when the index is ordered by expiry.
                    .filter(|r| {
                        let want = if mode.is_ascii_uppercase() { 17 } else { 9 };
                        r.first() == Some(&mode) && r.len() == want
                    })
                    .ok_or_else(|| {
                        ServiceError::InvalidRequest(
                            "cursor is not valid for this query (use the cursor from the previous page with the same filters)".into(),
                        )
                    })?;
                Some(raw[1..].to_vec())
            }
        };
        let t = now();
        let q = CertQuery {
            tenant: &who.tenant,
            ca_id: f.ca_id.as_deref(),
            expiring: f.expiring_within.map(|w| (t, t + w.as_duration())),
            limit: f.limit,
            after,
            scan_budget: f.limit.saturating_mul(20).max(10_000),
        };
        let cn = f.common_name.as_ref().map(|c| c.to_ascii_lowercase());
        let page = self.store.list_certs(&q, |r| {
            cn.as_ref()
                .is_none_or(|c| r.common_name.to_ascii_lowercase() == *c)
                && f.role
                    .as_ref()
                    .is_none_or(|role| r.role.as_ref() == Some(role))
                && f.revoked.is_none_or(|want| r.revocation.is_some() == want)
        })?;
        let cursor = page.next.map(|k| {
            let mut raw = vec![mode];
            raw.extend_from_slice(&k);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        });
        Ok(CertList {
            items: page.items,
            cursor,
        })
    }

    /// The chain a certificate was issued under (our CA and its parents), or the chain
    /// given at import.
    pub fn chain_for(&self, rec: &CertRecord) -> Result<Vec<String>, ServiceError> {
        if let Some(ca_id) = &rec.issuer_ca_id {
            if let Some(ca) = self.store.get_ca(ca_id)? {
                return self.chain_pems(&ca);
            }
        }
        let Some(chain) = &rec.chain_pem else {
            return Ok(Vec::new());
        };
        let certs = ca::certificates_from_pem(chain)
            .map_err(|e| ServiceError::Internal(format!("stored chain unreadable: {e}")))?;
        certs
            .iter()
            .map(|c| Ok(ca::pem("CERTIFICATE", &c.to_der()?)?))
            .collect()
    }

    /// A stored private key, decrypted in the token. 404 for certificates without one.
    pub fn stored_private_key(
        &self,
        who: &Principal,
        id: &str,
        format: KeyFormat,
    ) -> Result<(Zeroizing<String>, crate::keys::KeyType), ServiceError> {
        let rec = self.cert_for(who, id)?;
        let Some(sealed) = rec.sealed_key else {
            return Err(ServiceError::PrivateKeyNotStored(id.to_string()));
        };
        let pkcs8 = self.token.unseal(
            &Sealed {
                key_label: sealed.key_label,
                iv: sealed.iv,
                ciphertext: sealed.ciphertext,
            },
            rec.id.as_bytes(),
        )?;
        let key = LeafKey::from_pkcs8_der(&pkcs8)?;
        tracing::info!(cert_id = %id, token_id = %who.token_id, "stored private key retrieved");
        Ok((key.to_pem(format)?, key.key_type))
    }

    /// Track a certificate issued elsewhere. The key (if any) must match it and the chain
    /// (if any) must be its issuers, each signature checked; the key is stored sealed.
    pub fn import(&self, who: &Principal, req: ImportRequest) -> Result<CertRecord, ServiceError> {
        let bad = |m: String| ServiceError::InvalidCertificate(m);
        if req.certificate_pem.len() > 64 * 1024 {
            return Err(bad("certificate_pem is larger than 64 KiB".into()));
        }
        let cert = ca::certificate_from_pem(&req.certificate_pem)
            .map_err(|e| bad(format!("certificate_pem: {e}")))?;
        let der = cert.to_der()?;
        let tbs = cert.tbs_certificate();
        let spki_der = tbs.subject_public_key_info().to_der()?;
        let serial_hex = Serial::from_der_bytes(tbs.serial_number().as_bytes()).to_hex();
        // One this daemon issued is tracked already: a second, imported row would share its
        // serial and make revocation by serial ambiguous.
        if self.already_tracked(who, &serial_hex, &der)? {
            return Err(ServiceError::CertificateExists);
        }

        let key = match &req.private_key_pem {
            Some(pem) => {
                use secrecy::ExposeSecret;
                let k = LeafKey::from_pem(pem.expose_secret())
                    .map_err(|e| ServiceError::InvalidRequest(e.to_string()))?;
                if !same_public_key(&k.spki_der, &spki_der) {
                    return Err(ServiceError::KeyMismatch);
                }
                Some(k)
            }
            None => None,
        };

        let chain_pem = match &req.chain_pem {
            Some(pem) if !pem.trim().is_empty() => {
                // The certificate itself counts too; counted before anything is decoded.
                let max = self.limits().max_pem_certificates;
                if 1 + crate::limits::count_pem_blocks(pem, "CERTIFICATE") > max {
                    return Err(crate::limits::LimitExceeded::TooManyCertificates { max }.into());
                }
                let chain = ca::certificates_from_pem(pem)
                    .map_err(|e| ServiceError::InvalidChain(format!("chain_pem: {e}")))?;
                if 1 + chain.len() > max {
                    return Err(crate::limits::LimitExceeded::TooManyCertificates { max }.into());
                }
                let mut child = &cert;
                for parent in &chain {
                    check_issued_by(child, parent)?;
                    child = parent;
                }
                Some(pem.clone())
            }
            _ => None,
        };

        let (dns, ips, uris) = sans_of(&cert)?;
        let (key_type, key_bits) = match verify::public_key_kind(&spki_der) {
            Ok((t, b)) => (Some(t), Some(b)),
            Err(_) => (None, None),
        };
        let id = new_id("cert");
        let sealed_key = match &key {
            Some(k) => {
                let s = self.token.seal(k.pkcs8_der(), id.as_bytes())?;
                Some(SealedKey {
                    key_label: s.key_label,
                    iv: s.iv,
                    ciphertext: s.ciphertext,
                })
            }
            None => None,
        };
        // A certificate for a CSR whose key was made in the token: link it to that key.
        let linked = match &key {
            Some(_) => None,
            None => {
                use sha2::Digest;
                let fp = hex::encode(sha2::Sha256::digest(&spki_der));
                self.store
                    .csr_by_spki(&fp)?
                    .filter(|c| c.tenant == who.tenant && c.key_label.is_some())
            }
        };
        let validity = tbs.validity();
        let mut rec = CertRecord {
            id,
            tenant: who.tenant.clone(),
            seq: 0,
            issuer_ca_id: None,
            role: None,
            source: CertSource::Imported,
            common_name: csr::cn_of(tbs.subject()).ok().flatten().unwrap_or_default(),
            san_dns: dns,
            san_ip: ips,
            san_uri: uris,
            serial_hex,
            not_before: ca::to_offset(validity.not_before)?,
            not_after: ca::to_offset(validity.not_after)?,
            key_type,
            key_bits,
            certificate_der: der,
            chain_pem,
            sealed_key,
            revocation: None,
            requested_by: who.token_id.clone(),
            created_at: now(),
            token_key_label: linked.as_ref().and_then(|c| c.key_label.clone()),
            token_key_id: linked
                .as_ref()
                .map(|c| c.key_id.clone())
                .unwrap_or_default(),
            csr_id: linked.map(|c| c.id),
        };
        match self.store.insert_cert(&mut rec) {
            Ok(()) => Ok(rec),
            Err(StoreError::SerialTaken(_)) => Err(ServiceError::CertificateExists),
            Err(e) => Err(e.into()),
        }
    }
}

/// A tracked certificate with a given serial: a leaf's record or one of the tenant's CA
/// certificates.
pub(super) struct SerialMatch {
    pub(super) id: String,
    pub(super) certificate_der: Vec<u8>,
    /// Signed by one of our CAs (and so on its CRL), as opposed to imported.
    pub(super) issued_here: bool,
}

impl Pki {
    /// The records behind ids from `Store::ids_by_serial`; ids whose record is gone (a
    /// crash between index and record) are left out.
    pub(super) fn serial_matches(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<SerialMatch>, ServiceError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let found = if id.starts_with("ca_") {
                self.store.get_ca(&id)?.map(|c| (c.certificate_der, true))
            } else {
                self.store
                    .get_cert(&id)?
                    .map(|c| (c.certificate_der, c.issuer_ca_id.is_some()))
            };
            if let Some((certificate_der, issued_here)) = found {
                out.push(SerialMatch {
                    id,
                    certificate_der,
                    issued_here,
                });
            }
        }
        Ok(out)
    }

    /// Whether the tenant tracks this very certificate already (issued, imported, or one
    /// of its CAs').
    fn already_tracked(
        &self,
        who: &Principal,
        serial_hex: &str,
        der: &[u8],
    ) -> Result<bool, ServiceError> {
        let ids = self.store.ids_by_serial(&who.tenant, serial_hex)?;
        Ok(self
            .serial_matches(ids)?
            .iter()
            .any(|m| m.certificate_der == der))
    }
}

/// Compare public keys by their key bits, not by the encoding of their parameters.
pub(crate) fn same_public_key(a: &[u8], b: &[u8]) -> bool {
    let bits = |d: &[u8]| {
        spki::SubjectPublicKeyInfoRef::from_der(d)
            .ok()
            .map(|s| s.subject_public_key.raw_bytes().to_vec())
    };
    matches!((bits(a), bits(b)), (Some(x), Some(y)) if x == y)
}

pub(crate) fn check_issued_by(
    child: &Certificate,
    parent: &Certificate,
) -> Result<(), ServiceError> {
    let bad = |m: &str| ServiceError::InvalidChain(m.to_string());
    if child.tbs_certificate().issuer() != parent.tbs_certificate().subject() {
        return Err(bad(
            "a chain certificate is not the issuer of the one before it",
        ));
    }
    if !may_issue(parent)? {
        return Err(bad(
            "a chain certificate is not a CA certificate (basicConstraints cA and, when keyUsage is present, keyCertSign), so it cannot be an issuer",
        ));
    }
    let parent_spki = parent
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()?;
    let tbs = child.tbs_certificate().to_der()?;
    let sig = child
        .signature()
        .as_bytes()
        .ok_or_else(|| bad("signature has unused bits"))?;
    verify::verify_by_algorithm(&parent_spki, child.signature_algorithm(), &tbs, sig).map_err(|e| {
        ServiceError::InvalidChain(format!("a signature in the chain does not verify: {e}"))
    })
}

/// Whether a certificate may sign others, as RFC 5280 §6.1.4 (k) and (n) require of every
/// issuer in a path: basicConstraints with cA true, and keyCertSign when keyUsage is there.
/// A version 1 certificate has no extensions; like OpenSSL, accept it as an issuer (old
/// roots), since nothing in it says otherwise.
fn may_issue(cert: &Certificate) -> Result<bool, ServiceError> {
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
    let tbs = cert.tbs_certificate();
    if tbs.version() == x509_cert::Version::V1 {
        return Ok(true);
    }
    let bad = |what: &str, e: der::Error| ServiceError::InvalidChain(format!("{what}: {e}"));
    let is_ca = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| bad("basicConstraints", e))?
        .is_some_and(|(_, bc)| bc.ca);
    let can_sign_certs = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| bad("keyUsage", e))?
        .is_none_or(|(_, ku)| ku.0.contains(KeyUsages::KeyCertSign));
    Ok(is_ca && can_sign_certs)
}

/// DNS names, IP addresses and URIs in a certificate's SAN.
type Sans = (Vec<String>, Vec<String>, Vec<String>);

fn sans_of(cert: &Certificate) -> Result<Sans, ServiceError> {
    let (mut dns, mut ips, mut uris) = (Vec::new(), Vec::new(), Vec::new());
    let san = cert
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .map_err(|e| ServiceError::InvalidCertificate(format!("subjectAltName: {e}")))?;
    if let Some((_, san)) = san {
        for n in san.0 {
            match n {
                GeneralName::DnsName(d) => dns.push(d.to_string()),
                GeneralName::UniformResourceIdentifier(u) => uris.push(u.to_string()),
                GeneralName::IpAddress(o) => {
                    let b = o.as_bytes();
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(b).map(std::net::IpAddr::from).ok(),
                        16 => <[u8; 16]>::try_from(b).map(std::net::IpAddr::from).ok(),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        ips.push(ip.to_string());
                    }
                }
                // Other name forms are kept in the certificate, just not indexed.
                _ => {}
            }
        }
    }
    Ok((dns, ips, uris))
}
