//! Chain validation, `POST /v1/pki/certificates/validate`: gathers the caller's trust
//! anchors and our revocation records, parses and bounds the request, and hands the rest
//! to [`crate::validate`], which does the RFC 5280 §6 work and documents the answer.

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Pki, Principal, ServiceError};
use crate::limits::{count_pem_blocks, LimitExceeded, Limits};
use crate::types::{now, CaType};
use crate::validate::{self, Anchor, InputError, Outcome, Purpose, Request};

/// The request body. Unknown fields are refused so that a typo (`dnsname`) doesn't
/// silently validate less than was asked.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The certificate to validate: exactly one PEM certificate.
    pub certificate_pem: String,
    /// Untrusted certificates for path building: any number of PEM certificates (with
    /// the others, at most `limits.max_pem_certificates`), in any order.
    #[serde(default)]
    pub chain_pem: Option<String>,
    /// Default true: our own records (and `crls_pem`) are consulted. False answers
    /// `not_revoked: null`.
    #[serde(default)]
    pub check_revocation: Option<bool>,
    /// Extra anchors for this call only (counted in `limits.max_pem_certificates`).
    #[serde(default)]
    pub trust_anchors_pem: Option<String>,
    /// RFC 3339; default now.
    #[serde(default)]
    pub validation_time: Option<String>,
    #[serde(default)]
    pub dns_name: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    /// `server_auth`, `client_auth` or `any` (default).
    #[serde(default)]
    pub purpose: Option<Purpose>,
    /// Extra CRLs, PEM `X509 CRL` blocks (at most [`validate::MAX_CRLS`]).
    #[serde(default)]
    pub crls_pem: Option<String>,
    /// The most intermediate CAs (not counting self-issued ones) a path may hold.
    #[serde(default)]
    #[serde(deserialize_with = "super::input::opt_whole_u32")]
    pub max_chain_depth: Option<u32>,
}

impl From<InputError> for ServiceError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Certificate(m) => ServiceError::InvalidCertificate(m),
            InputError::Crl(m) => ServiceError::InvalidCrl(m),
            InputError::Request(m) => ServiceError::InvalidRequest(m),
            InputError::TooMany {
                label: "CERTIFICATE",
                max,
                ..
            } => LimitExceeded::TooManyCertificates { max }.into(),
            InputError::TooMany { field, max, .. } => {
                LimitExceeded::TooManyCrls { what: field, max }.into()
            }
        }
    }
}

/// `validation_time` as Unix seconds: RFC 3339, not before 1970; `None` is now. (Public for
/// the `request_json` fuzz target.)
pub fn validation_time(v: Option<&str>) -> Result<u64, ServiceError> {
    let t = match v {
        None => now(),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
            ServiceError::InvalidRequest(format!(
                "validation_time {s:?} is not an RFC 3339 timestamp: {e}"
            ))
        })?,
    };
    u64::try_from(t.unix_timestamp()).map_err(|_| {
        ServiceError::InvalidRequest("validation_time must not be before 1970-01-01".into())
    })
}

impl Pki {
    /// The trust anchors of the caller's tenant, as (id, DER certificate): today its
    /// active root CAs (ids `ca_…`). Registered trust anchors (`trust_anchor_…`) belong
    /// here too; this is the one place validation learns what the tenant trusts.
    pub(crate) fn anchors_for(
        &self,
        who: &Principal,
    ) -> Result<Vec<(String, Vec<u8>)>, ServiceError> {
        let mut anchors: Vec<(String, Vec<u8>)> = self
            .list_trust_anchors(who)?
            .into_iter()
            .map(|a| (a.id, a.certificate_der))
            .collect();
        anchors.extend(
            self.list_cas(who)?
                .into_iter()
                .filter(|c| c.ca_type == CaType::Root && c.is_active)
                .map(|c| (c.id, c.certificate_der)),
        );
        Ok(anchors)
    }

    /// Validate a certificate chain for the caller.
    ///
    /// Anchors are [`Pki::anchors_for`] followed by the request's `trust_anchors_pem`.
    /// `trusted_anchor` names the anchor a path ends at: its id for the tenant's anchors,
    /// `request:<n>` for the n-th certificate (from 1) of `trust_anchors_pem`. When a
    /// certificate is both, the tenant's id is reported.
    ///
    /// Malformed input is an error (400); a certificate that is merely not valid is an
    /// `Ok` outcome with `valid: false` and a reason.
    pub fn validate_chain(
        &self,
        who: &Principal,
        req: ValidateRequest,
    ) -> Result<Outcome, ServiceError> {
        let mut request = validation_request(req, self.limits(), validation_time(None)?)?;
        // The tenant's anchors first: a certificate that is both is reported by its id.
        let tenant: Vec<Anchor> = self
            .anchors_for(who)?
            .into_iter()
            .map(|(label, der)| Anchor { label, der })
            .collect();
        request.anchors.splice(0..0, tenant);
        let own = |der: &[u8]| self.our_revocation(who, der);
        validate::validate(&request, &own)
    }
}

/// A validate body as a validation request, every input limit applied, with the
/// request's own `trust_anchors_pem` as its only anchors (labelled `request:<n>`); the
/// caller puts the tenant's anchors in front. `default_time` is used when the body names
/// no `validation_time`. Public so that the `request_json` fuzz target runs these steps.
pub fn validation_request(
    req: ValidateRequest,
    limits: &Limits,
    default_time: u64,
) -> Result<Request, ServiceError> {
    // Counted before anything is decoded: all fields together.
    let max = limits.max_pem_certificates;
    let count: usize = [
        Some(&req.certificate_pem),
        req.chain_pem.as_ref(),
        req.trust_anchors_pem.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|t| count_pem_blocks(t, "CERTIFICATE"))
    .sum();
    if count > max {
        return Err(LimitExceeded::TooManyCertificates { max }.into());
    }
    let leaf = validate::parse_one_certificate(&req.certificate_pem, "certificate_pem")?;
    let intermediates = match req.chain_pem.as_deref() {
        Some(text) => validate::parse_certificates(text, "chain_pem", max)?,
        None => Vec::new(),
    };
    let extra_anchors = match req.trust_anchors_pem.as_deref() {
        Some(text) => validate::parse_certificates(text, "trust_anchors_pem", max)?,
        None => Vec::new(),
    };
    if 1 + intermediates.len() + extra_anchors.len() > max {
        return Err(LimitExceeded::TooManyCertificates { max }.into());
    }
    let crls = match req.crls_pem.as_deref() {
        Some(text) => validate::parse_crls(text, "crls_pem")?,
        None => Vec::new(),
    };
    let name = match (req.dns_name.as_deref(), req.ip_address.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ServiceError::InvalidRequest(
                "give dns_name or ip_address, not both".into(),
            ))
        }
        (Some(d), None) => Some(validate::parse_dns_name(d)?),
        (None, Some(ip)) => Some(validate::parse_ip_address(ip)?),
        (None, None) => None,
    };
    let time = match req.validation_time.as_deref() {
        Some(t) => validation_time(Some(t))?,
        None => default_time,
    };
    let anchors = extra_anchors
        .into_iter()
        .enumerate()
        .map(|(i, der)| Anchor {
            label: format!("request:{}", i + 1),
            der,
        })
        .collect();
    Ok(Request {
        leaf,
        intermediates,
        anchors,
        crls,
        time,
        name,
        purpose: req.purpose.unwrap_or_default(),
        max_chain_depth: req.max_chain_depth.map(|d| d as usize),
        check_revocation: req.check_revocation.unwrap_or(true),
        budgets: validate::Budgets::from(limits),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_time_is_rfc3339_and_not_before_the_epoch() {
        assert_eq!(
            validation_time(Some("2024-01-01T00:00:00+00:00")).unwrap(),
            1_704_067_200
        );
        assert_eq!(validation_time(Some("1970-01-01T00:00:03Z")).unwrap(), 3);
        assert!(validation_time(Some("1969-12-31T23:59:59Z")).is_err());
        assert!(validation_time(Some("yesterday")).is_err());
        assert!(validation_time(None).unwrap() > 1_700_000_000);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<ValidateRequest, _> =
            serde_json::from_str(r#"{"certificate_pem": "x", "dnsname": "a"}"#);
        assert!(r.is_err());
        let r: Result<ValidateRequest, _> =
            serde_json::from_str(r#"{"certificate_pem": "x", "purpose": "any"}"#);
        assert!(r.is_ok());
    }
}
