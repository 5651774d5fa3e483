//! Revocation: revoke by serial with an RFC 5280 reason, release a certificate_hold.

use serde::Deserialize;

use super::{Pki, Principal, ServiceError};
use crate::store::{CertRecord, Revocation, RevokeOutcome, Revokee};
use crate::types::{now, RevocationReason, Serial, SerialTextError};
use crate::validate::RecordStatus;

/// `POST /v1/pki/revoke`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    #[schema(pattern = r"^[:-]*(?:[0-9A-Fa-f][:-]*){1,42}$")]
    pub serial_number: String,
    #[serde(default)]
    #[schema(schema_with = crate::service::schema::revocation_reason)]
    pub reason: Option<String>,
}

/// `POST /v1/pki/unrevoke`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnrevokeRequest {
    #[schema(pattern = r"^[:-]*(?:[0-9A-Fa-f][:-]*){1,42}$")]
    pub serial_number: String,
}

/// The answer to a revocation, first or repeated.
pub struct Revoked {
    pub id: String,
    pub serial_hex: String,
    pub revocation: Revocation,
    /// False when the certificate had been revoked before (the first revocation stands)
    /// and nothing changed.
    pub newly_revoked: bool,
    /// True when a certificate_hold took the permanent reason asked for (`newly_revoked`
    /// is then true as well: the revocation changed).
    pub converted_from_hold: bool,
}

/// A serial as clients write it (see [`Serial::parse_text`]), with the error a client
/// gets for one that is not.
pub fn parse_serial(s: &str) -> Result<Serial, ServiceError> {
    match Serial::parse_text(s) {
        Ok(serial) => Ok(serial),
        Err(SerialTextError::NotHex) => Err(ServiceError::InvalidRequest(
            "serial_number must be hexadecimal, e.g. 1A:2B:3C, 1a-2b-3c or 1a2b3c".into(),
        )),
        Err(SerialTextError::TooLong) => Err(ServiceError::InvalidRequest(
            "serial_number is too long: a serial number has at most 20 octets (RFC 5280 §4.1.2.2)"
                .into(),
        )),
    }
}

pub fn parse_reason(s: Option<&str>) -> Result<RevocationReason, ServiceError> {
    match s {
        None => Ok(RevocationReason::Unspecified),
        Some(r) => RevocationReason::parse(r).ok_or_else(|| {
            ServiceError::InvalidRequest(format!(
                "reason {r:?} is not one of: {}",
                RevocationReason::ALL.map(RevocationReason::name).join(", ")
            ))
        }),
    }
}

impl Pki {
    fn id_by_serial(&self, who: &Principal, serial_hex: &str) -> Result<String, ServiceError> {
        let ids = self.store.ids_by_serial(&who.tenant, serial_hex)?;
        match ids.as_slice() {
            [id] => Ok(id.clone()),
            [] => Err(ServiceError::NotFound {
                kind: "certificate",
                id: serial_hex.to_string(),
            }),
            _ => {
                // An imported certificate can carry any serial, including one of ours: it
                // must not make a certificate our CAs issued (and list on their CRLs)
                // impossible to revoke. Among several, the one issued here is meant.
                let ours: Vec<String> = self
                    .serial_matches(ids)?
                    .into_iter()
                    .filter(|m| m.issued_here)
                    .map(|m| m.id)
                    .collect();
                match ours.as_slice() {
                    [id] => Ok(id.clone()),
                    _ => Err(ServiceError::AmbiguousSerial(serial_hex.to_string())),
                }
            }
        }
    }

    /// Revoke a certificate (or an intermediate CA's own certificate) by serial. Expired
    /// certificates can be revoked. Revoking twice answers with the first revocation, except
    /// that a certificate on hold takes a permanent reason (keeping the hold's time).
    pub fn revoke(&self, who: &Principal, req: RevokeRequest) -> Result<Revoked, ServiceError> {
        let serial = parse_serial(&req.serial_number)?;
        let serial_hex = serial.to_hex();
        let reason = parse_reason(req.reason.as_deref())?;
        let id = self.id_by_serial(who, &serial_hex)?;
        let serial = serial.as_bytes();
        let revocation = Revocation {
            revoked_at: now(),
            reason: reason.name().to_string(),
        };
        let (outcome, issuer) = if id.starts_with("ca_") {
            let ca = self.ca_for(who, &id)?;
            let Some(parent) = ca.parent_id.clone() else {
                return Err(ServiceError::CannotRevokeRoot);
            };
            // A CA's revocation cannot be released (what it signed meanwhile would be in
            // doubt), so a hold on one would be a revocation that only looks temporary.
            if reason == RevocationReason::CertificateHold {
                return Err(ServiceError::HoldNotAllowedForCa);
            }
            let o = self.store.revoke(
                Revokee::Ca(&ca),
                &parent,
                serial,
                &revocation,
                reason.code(),
            )?;
            (o, Some(parent))
        } else {
            let cert = self.cert_for(who, &id)?;
            // Imported certificates are marked revoked for tracking; no CA of ours lists them.
            let issuer = cert.issuer_ca_id.clone();
            let index = issuer.clone().unwrap_or_else(|| "imported".into());
            let o = self.store.revoke(
                Revokee::Cert(&cert),
                &index,
                serial,
                &revocation,
                reason.code(),
            )?;
            (o, issuer)
        };
        let (revocation, newly_revoked, converted_from_hold) = match outcome {
            RevokeOutcome::Revoked(r) => (r, true, false),
            RevokeOutcome::AlreadyRevoked(r) => (r, false, false),
            RevokeOutcome::Converted(r) => (r, true, true),
        };
        if newly_revoked {
            if converted_from_hold {
                tracing::info!(id = %id, reason = %revocation.reason, token_id = %who.token_id, "certificate_hold made permanent");
            } else {
                tracing::info!(id = %id, reason = %revocation.reason, token_id = %who.token_id, "revoked");
            }
            if let Some(ca) = issuer {
                self.crl_changed(&ca);
            }
        }
        Ok(Revoked {
            id,
            serial_hex,
            revocation,
            newly_revoked,
            converted_from_hold,
        })
    }

    /// Release a certificate_hold; no other reason can be undone.
    pub fn unrevoke(
        &self,
        who: &Principal,
        req: UnrevokeRequest,
    ) -> Result<CertRecord, ServiceError> {
        let serial = parse_serial(&req.serial_number)?;
        let id = self.id_by_serial(who, &serial.to_hex())?;
        if id.starts_with("ca_") {
            return Err(ServiceError::InvalidState(
                "a CA certificate's revocation cannot be released".into(),
            ));
        }
        let cert = self.cert_for(who, &id)?;
        match &cert.revocation {
            None => {
                return Err(ServiceError::InvalidState(
                    "the certificate is not revoked".into(),
                ))
            }
            Some(r) if r.reason != RevocationReason::CertificateHold.name() => {
                return Err(ServiceError::InvalidState(format!(
                    "only certificate_hold can be released; this certificate was revoked for {}",
                    r.reason
                )))
            }
            Some(_) => {}
        }
        let serial = serial.as_bytes();
        let index = cert
            .issuer_ca_id
            .clone()
            .unwrap_or_else(|| "imported".into());
        let Some(rec) = self.store.release_hold(&cert, &index, serial, now())? else {
            // Revoked for good (a conversion) between the check above and the release.
            return Err(ServiceError::InvalidState(
                "only certificate_hold can be released; this certificate's hold was made permanent"
                    .into(),
            ));
        };
        tracing::info!(id = %id, token_id = %who.token_id, "certificate_hold released");
        if let Some(ca) = &cert.issuer_ca_id {
            self.crl_changed(ca);
        }
        Ok(rec)
    }
}

impl Pki {
    /// What our records say of this exact certificate (by DER) for the caller's tenant. For
    /// chain validation: our records are authoritative for what our CAs issued, without
    /// waiting for a CRL, and say nothing of the rest — an imported certificate, or a CA
    /// certificate signed elsewhere — unless it was marked revoked here.
    pub fn our_revocation(
        &self,
        who: &Principal,
        cert_der: &[u8],
    ) -> Result<RecordStatus, ServiceError> {
        use der::Decode;
        let Ok(cert) = x509_cert::Certificate::from_der(cert_der) else {
            return Ok(RecordStatus::NotOurs);
        };
        let status = |revocation: Option<Revocation>, issued_here: bool| match revocation {
            Some(r) => RecordStatus::Revoked(r.reason),
            None if issued_here => RecordStatus::Good,
            None => RecordStatus::NotOurs,
        };
        let serial_hex = hex::encode(cert.tbs_certificate().serial_number().as_bytes());
        for id in self.store.ids_by_serial(&who.tenant, &serial_hex)? {
            if id.starts_with("ca_") {
                if let Some(ca) = self.store.get_ca(&id)? {
                    if ca.certificate_der == cert_der {
                        return Ok(status(ca.revocation, ca.parent_id.is_some()));
                    }
                }
            } else if let Some(c) = self.store.get_cert(&id)? {
                if c.certificate_der == cert_der {
                    return Ok(status(c.revocation, c.issuer_ca_id.is_some()));
                }
            }
        }
        Ok(RecordStatus::NotOurs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_accepted_in_any_case_with_colons_hyphens_or_neither() {
        assert_eq!(parse_serial("1A:2B:03").unwrap().to_hex(), "1a2b03");
        assert_eq!(parse_serial("1a-2b-03").unwrap().to_hex(), "1a2b03");
        assert_eq!(parse_serial("1a2b03").unwrap().to_hex(), "1a2b03");
        assert_eq!(parse_serial("A:2B").unwrap().to_hex(), "0a2b");
        assert!(parse_serial("xyz").is_err());
        assert!(parse_serial("").is_err());
        let e = parse_serial(&"ab".repeat(21)).unwrap_err().to_string();
        assert!(e.contains("too long"), "{e}");
    }

    #[test]
    fn only_the_specs_reason_names_are_accepted() {
        assert_eq!(parse_reason(None).unwrap(), RevocationReason::Unspecified);
        assert_eq!(
            parse_reason(Some("key_compromise")).unwrap(),
            RevocationReason::KeyCompromise
        );
        let e = parse_reason(Some("keyCompromise")).unwrap_err().to_string();
        assert!(e.contains("aa_compromise"), "{e}");
    }
}
