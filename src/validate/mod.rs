//! Certificate path validation (RFC 5280 §6) for `POST /v1/pki/certificates/validate`.
//!
//! Pure: no HTTP, no store. The caller hands in DER certificates, anchors, CRLs and a
//! lookup into its own revocation records; this module answers with an [`Outcome`].
//!
//! # Choice of validator
//!
//! Path building and processing are ours (`path`); signature verification is
//! rustls-webpki's set of algorithms (on ring), and matching the requested DNS name or IP
//! address is rustls-webpki's `verify_is_valid_for_subject_name`. We first built on
//! rustls-webpki's own path validation (`verify_for_usage` with its `verify_path` hook),
//! and measured it against x509-limbo: it cannot express parts of RFC 5280 §6 this API
//! promises, because it refuses before any hook runs — a CA certificate as the
//! certificate to validate, the self-issued exemptions of pathLenConstraint and name
//! constraints (§6.1.4 (l), §6.1.3 (b)), and rfc822Name and directoryName constraints
//! (it rejects every one) — nor check the trust anchor's own certificate (§4 profile,
//! validity, keyUsage for CRL signing). Alone it passed 141 of the suite's 202 cases; ten
//! more are out of reach whatever a hook adds, which with the suite's three forced
//! conflicts caps it at 189 (93.6%), below the 95% target. What we kept from it are its
//! habits: every work dimension is budgeted (`path`: signatures, candidate issuers, name
//! comparisons, path length), unknown critical extensions and unprocessed
//! name-constraint forms refuse the certificate, and every (name form, constraint form)
//! pair is matched explicitly (`names`).
//!
//! # Rules
//!
//! RFC 5280 §6.1 path processing: signatures, validity at the validation time of every
//! certificate including the anchor's, basicConstraints and pathLenConstraint (self-issued
//! intermediates not counted), keyUsage keyCertSign on CAs, name constraints (DNS, IP,
//! email, directory names; URI and other forms fail closed), unknown critical extensions,
//! extKeyUsage along the path; plus the RFC 5280 §4 profile of each certificate in its
//! position (`cert`). For the `server_auth` purpose the CA/Browser Forum Baseline
//! Requirements' certificate profile applies as well (keys, extKeyUsage on the leaf and
//! the root, commonName copied from the SAN, no CA certificate as the leaf...). Policy
//! processing (§6.1.3 (d)) is not implemented: a critical policy extension refuses the
//! certificate. CONFORMANCE.md at the repository root gives the x509-limbo result and
//! the cases decided otherwise.
//!
//! # The answer
//!
//! * `chain_valid`: a path from the certificate to a trust anchor exists that passes every
//!   check except revocation, including the requested name and purpose. Validity periods
//!   are checked at the validation time, except when the certificate itself is outside its
//!   own validity period then: the path is then checked at the nearest instant of the
//!   certificate's validity period, so an expired certificate with a sound chain answers
//!   `chain_valid: true, not_expired: false`.
//! * `not_expired`: notBefore ≤ validation time ≤ notAfter for the certificate itself.
//! * `not_revoked`: `null` when revocation was not asked for, when the certificate itself
//!   can't be read, or when no certificate of the path had a revocation source: neither
//!   our records (a CA of ours issued it) nor a CRL of its issuer in the request. Nothing
//!   was checked then, and saying `true` would claim otherwise (soft fail: `valid` is
//!   decided by the rest). False when our records or a given CRL revoke a certificate of
//!   every path that passes the other checks, or when a CRL that covers such a
//!   certificate can't be used (fail closed, see `crl`). True when at least one
//!   certificate of the path had a source and none is revoked; those without one are not
//!   counted against it. When no path is found, only our records for the certificate
//!   itself are consulted (a CRL can't be checked without its issuer's key).
//! * `valid` = `chain_valid && not_expired && not_revoked != false`.
//! * `reason`: when the certificate itself is outside its validity period at the
//!   validation time, that comes first, followed by what is wrong with its chain if
//!   anything is; otherwise the chain's problem, then revocation.

mod cert;
mod crl;
mod keys;
mod names;
mod path;

use std::cell::{Cell, RefCell};
use std::net::IpAddr;

use base64::Engine as _;
use der::Decode;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use cert::{Cert, Usage};
pub use crl::Crl;
pub use path::Budgets;
use path::{Found, LimitHit, Search, Verifier};

/// At most this many CRLs in `crls_pem`. (Certificates are bounded by the caller:
/// `limits.max_pem_certificates`.)
pub const MAX_CRLS: usize = 16;

/// What the certificate must be good for (RFC 5280 §4.2.1.12). An extKeyUsage extension,
/// where present on the leaf or a CA of the path, must allow it; no extension allows all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// id-kp-serverAuth, with the CA/Browser Forum certificate profile.
    ServerAuth,
    /// id-kp-clientAuth.
    ClientAuth,
    /// Valid for serverAuth or for clientAuth, each judged over the whole path (a path
    /// whose leaf allows only one and whose CA allows only the other is not valid); a path
    /// without extKeyUsage allows both.
    #[default]
    Any,
}

/// The name the certificate must hold, matched against its subjectAltName only
/// (RFC 6125 §6.4.4; no fallback to the subject's commonName).
#[derive(Debug, Clone)]
pub enum PeerName {
    Dns(ServerName<'static>),
    Ip(IpAddr),
}

/// A certificate trusted as the end of a path; `label` is what `trusted_anchor` reports
/// when a path ends there.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub label: String,
    pub der: Vec<u8>,
}

/// One validation, with every input already parsed and bounded.
pub struct Request {
    /// The certificate to validate (DER).
    pub leaf: Vec<u8>,
    /// Untrusted certificates for path building, any order.
    pub intermediates: Vec<Vec<u8>>,
    pub anchors: Vec<Anchor>,
    /// CRLs consulted for certificates not in our records.
    pub crls: Vec<Crl>,
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub name: Option<PeerName>,
    pub purpose: Purpose,
    /// The most intermediates that are not self-issued a path may hold.
    pub max_chain_depth: Option<usize>,
    pub check_revocation: bool,
    /// The work this validation may do (`[limits]`).
    pub budgets: Budgets,
}

/// One certificate of the path found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PathEntry {
    /// The subject DN, RFC 4514 string form.
    pub subject: String,
    /// SHA-256 of the DER certificate, upper-case hex with colons (as `openssl -fingerprint`).
    pub sha256_fingerprint: String,
}

/// The answer; see the module documentation for what each field means.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    pub valid: bool,
    pub chain_valid: bool,
    pub not_expired: bool,
    /// `null` when revocation was not asked for, or when no certificate of the path had a
    /// revocation source (our records, or a CRL of its issuer in `crls_pem`).
    pub not_revoked: Option<bool>,
    /// The label of the anchor the path ends at.
    pub trusted_anchor: Option<String>,
    /// The path found, leaf first, anchor last; `null` when none was found.
    pub chain: Option<Vec<PathEntry>>,
    /// Why the certificate is not valid; `null` when it is.
    pub reason: Option<String>,
}

/// Input that is malformed, as opposed to a certificate that is merely not valid.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A certificate field doesn't hold well-formed PEM X.509 certificates.
    #[error("{0}")]
    Certificate(String),
    /// `crls_pem` doesn't hold well-formed PEM CRLs.
    #[error("{0}")]
    Crl(String),
    /// Any other field.
    #[error("{0}")]
    Request(String),
    /// More PEM blocks than the caller allows.
    #[error("{field} holds more than {max} {label} blocks")]
    TooMany {
        field: String,
        label: &'static str,
        max: usize,
    },
}

/// Why PEM text was refused.
#[derive(Debug)]
enum PemError {
    TooMany(usize),
    Bad(String),
}

// ------------------------------------------------------------------ input parsing

/// The DER bodies of the PEM blocks labelled `label` in `text`, at most `max` of them.
/// Text outside blocks is ignored (as openssl does); a block with another label, a block
/// without an END line, bad base64, or non-blank text without any block is an error.
fn pem_blocks(text: &str, field: &str, label: &str, max: usize) -> Result<Vec<Vec<u8>>, PemError> {
    let mut out = Vec::new();
    let end = format!("-----END {label}-----");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("-----BEGIN ") else {
            continue;
        };
        let found = rest.strip_suffix("-----").unwrap_or(rest);
        if found != label {
            return Err(PemError::Bad(format!(
                "{field} holds a PEM block labelled {found:?}; only {label} blocks are accepted"
            )));
        }
        if out.len() == max {
            return Err(PemError::TooMany(max));
        }
        let mut b64 = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            let l = l.trim();
            if l == end {
                closed = true;
                break;
            }
            if l.starts_with("-----") {
                break;
            }
            b64.extend(l.chars().filter(|c| !c.is_whitespace()));
        }
        if !closed {
            return Err(PemError::Bad(format!(
                "{field}: PEM block {} has no matching END line",
                out.len() + 1
            )));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| {
                PemError::Bad(format!(
                    "{field}: PEM block {} is not valid base64: {e}",
                    out.len() + 1
                ))
            })?;
        out.push(der);
    }
    if out.is_empty() && !text.trim().is_empty() {
        return Err(PemError::Bad(format!("{field} holds no PEM {label} block")));
    }
    Ok(out)
}

fn pem_error<'a>(
    field: &'a str,
    label: &'static str,
    bad: fn(String) -> InputError,
) -> impl Fn(PemError) -> InputError + 'a {
    move |e| match e {
        PemError::TooMany(max) => InputError::TooMany {
            field: field.to_string(),
            label,
            max,
        },
        PemError::Bad(m) => bad(m),
    }
}

/// Parse PEM certificates and check each is a well-formed DER X.509 certificate.
pub fn parse_certificates(text: &str, field: &str, max: usize) -> Result<Vec<Vec<u8>>, InputError> {
    let ders = pem_blocks(text, field, "CERTIFICATE", max).map_err(pem_error(
        field,
        "CERTIFICATE",
        InputError::Certificate,
    ))?;
    for (i, der) in ders.iter().enumerate() {
        x509_cert::Certificate::from_der(der).map_err(|e| {
            InputError::Certificate(format!(
                "{field}: certificate {} is not a well-formed X.509 certificate: {e}",
                i + 1
            ))
        })?;
    }
    Ok(ders)
}

/// Parse exactly one PEM certificate.
pub fn parse_one_certificate(text: &str, field: &str) -> Result<Vec<u8>, InputError> {
    let mut ders = parse_certificates(text, field, 1).map_err(|e| match e {
        InputError::TooMany { .. } => {
            InputError::Certificate(format!("{field} must hold one PEM certificate, not more"))
        }
        other => other,
    })?;
    match ders.pop() {
        Some(der) => Ok(der),
        None => Err(InputError::Certificate(format!(
            "{field} must hold one PEM certificate"
        ))),
    }
}

/// Parse PEM CRLs (`X509 CRL` blocks).
pub fn parse_crls(text: &str, field: &str) -> Result<Vec<Crl>, InputError> {
    let ders = pem_blocks(text, field, "X509 CRL", MAX_CRLS).map_err(pem_error(
        field,
        "X509 CRL",
        InputError::Crl,
    ))?;
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            Crl::parse(der).map_err(|e| {
                InputError::Crl(format!(
                    "{field}: CRL {} is not a well-formed CRL: {e}",
                    i + 1
                ))
            })
        })
        .collect()
}

/// A DNS name to match (RFC 1034 syntax; wildcards are not names).
pub fn parse_dns_name(s: &str) -> Result<PeerName, InputError> {
    ServerName::try_from(s)
        .ok()
        .filter(|n| matches!(n, ServerName::DnsName(_)))
        .map(|n| PeerName::Dns(n.to_owned()))
        .ok_or_else(|| InputError::Request(format!("dns_name {s:?} is not a valid DNS name")))
}

/// An IPv4 or IPv6 address to match.
pub fn parse_ip_address(s: &str) -> Result<PeerName, InputError> {
    s.parse::<IpAddr>()
        .map(PeerName::Ip)
        .map_err(|_| InputError::Request(format!("ip_address {s:?} is not an IP address")))
}

// ------------------------------------------------------------------ validation

fn fingerprint(der: &[u8]) -> String {
    crate::types::colon_hex(&Sha256::digest(der))
}

fn entry(c: &Cert) -> PathEntry {
    PathEntry {
        subject: c.subject_text(),
        sha256_fingerprint: fingerprint(&c.der),
    }
}

/// Everything one validation shares between its searches.
struct Validation<'a> {
    req: &'a Request,
    leaf: Cert,
    intermediates: Vec<Cert>,
    anchors: Vec<Cert>,
    /// Index into `req.anchors` of each parsed anchor.
    anchor_labels: Vec<String>,
    verifier: Verifier,
}

impl Validation<'_> {
    fn usages(&self) -> &'static [Usage] {
        match self.req.purpose {
            Purpose::ServerAuth => &[Usage::ServerAuth],
            Purpose::ClientAuth => &[Usage::ClientAuth],
            Purpose::Any => &[Usage::ServerAuth, Usage::ClientAuth],
        }
    }

    /// A search for each purpose in turn; the first path found wins, else the first
    /// purpose's reason.
    fn search(&self, time: u64, extra: Option<path::PathCheck<'_>>) -> Result<Found, String> {
        let mut first_error = None;
        for usage in self.usages() {
            let s = Search {
                leaf: &self.leaf,
                intermediates: &self.intermediates,
                anchors: &self.anchors,
                time,
                usage: *usage,
                max_chain_depth: self.req.max_chain_depth,
                verifier: &self.verifier,
                extra,
            };
            match s.run() {
                Ok(found) => return Ok(found),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| "no path to a trusted anchor was found".into()))
    }

    fn path_entries(&self, f: &Found) -> Vec<PathEntry> {
        let mut out = vec![entry(&self.leaf)];
        out.extend(
            f.intermediates
                .iter()
                .map(|i| entry(&self.intermediates[*i])),
        );
        out.push(entry(&self.anchors[f.anchor]));
        out
    }

    /// The requested name, matched by rustls-webpki against the SAN.
    fn name_problem(&self) -> Option<String> {
        let name = self.req.name.as_ref()?;
        let der = CertificateDer::from(self.leaf.der.as_slice());
        let ee = match webpki::EndEntityCert::try_from(&der) {
            Ok(ee) => ee,
            Err(e) => return Some(format!("the certificate's names can't be read ({e:?})")),
        };
        let checked = match name {
            PeerName::Dns(n) => ee.verify_is_valid_for_subject_name(n),
            PeerName::Ip(ip) => {
                ee.verify_is_valid_for_subject_name(&ServerName::IpAddress((*ip).into()))
            }
        };
        let shown = match name {
            PeerName::Dns(n) => n.to_str().into_owned(),
            PeerName::Ip(ip) => ip.to_string(),
        };
        match checked {
            Ok(()) => None,
            Err(webpki::Error::CertNotValidForName(ctx)) => Some(format!(
                "the certificate is not valid for {shown} (its subjectAltName holds {})",
                if ctx.presented.is_empty() {
                    "no name of that kind".to_string()
                } else {
                    ctx.presented.join(", ")
                }
            )),
            Err(e) => Some(format!("the certificate is not valid for {shown} ({e:?})")),
        }
    }
}

/// What our own records say of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordStatus {
    /// No CA of ours issued it: our records are not a revocation source for it.
    NotOurs,
    /// A CA of ours issued it and it is not revoked.
    Good,
    /// We track it and it is revoked, for this reason.
    Revoked(String),
}

/// A lookup of a DER certificate in our revocation records.
pub type OwnRecords<'a, E> = &'a dyn Fn(&[u8]) -> Result<RecordStatus, E>;

/// Unix seconds as RFC 3339, for reasons.
fn instant(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(crate::types::rfc3339)
        .unwrap_or_else(|| format!("{t} seconds after 1970"))
}

/// The refusal when no answer was found and a limit, not the certificates, may be why.
fn limit_refusal(v: &Verifier) -> Option<crate::limits::LimitExceeded> {
    use crate::limits::LimitExceeded as L;
    v.limit_hit().map(|hit| match hit {
        LimitHit::Depth(max) => L::ChainTooDeep(format!(
            "no acceptable path was found within {max} intermediate certificates, and a longer one was not searched"
        )),
        LimitHit::Budget(what) => L::PathBudget(what),
    })
}

/// Validate `req`. `own` looks a DER certificate up in our revocation records; its errors
/// end the validation.
///
/// When no acceptable path is found and a limit of `req.budgets` cut the search short, the
/// answer is not known: that is an error (`chain_too_deep`, `path_budget_exceeded`), not
/// `valid: false`.
pub fn validate<E: From<crate::limits::LimitExceeded>>(
    req: &Request,
    own: OwnRecords<'_, E>,
) -> Result<Outcome, E> {
    let leaf = match Cert::parse(&req.leaf) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome {
                valid: false,
                chain_valid: false,
                not_expired: false,
                not_revoked: None,
                trusted_anchor: None,
                chain: None,
                reason: Some(format!("the certificate can't be read: {e}")),
            })
        }
    };
    let mut seen: Vec<&[u8]> = vec![&req.leaf];
    let mut intermediates = Vec::new();
    for der in &req.intermediates {
        if seen.contains(&der.as_slice()) {
            continue;
        }
        seen.push(der);
        if let Ok(c) = Cert::parse(der) {
            intermediates.push(c);
        }
    }
    let mut anchors = Vec::new();
    let mut anchor_labels = Vec::new();
    for a in &req.anchors {
        // An anchor that can't be read (a malformed registered anchor) anchors nothing.
        if let Ok(c) = Cert::parse(&a.der) {
            anchors.push(c);
            anchor_labels.push(a.label.clone());
        }
    }

    let time = req.time;
    let (not_expired, check_time, time_reason) = if time < leaf.not_before {
        (
            false,
            leaf.not_before,
            Some("the certificate is not valid yet at the validation time".to_string()),
        )
    } else if time > leaf.not_after {
        (
            false,
            leaf.not_after,
            Some("the certificate has expired at the validation time".to_string()),
        )
    } else {
        (true, time, None)
    };

    let v = Validation {
        req,
        leaf,
        intermediates,
        anchors,
        anchor_labels,
        verifier: Verifier::new(req.budgets),
    };

    // 1. The path, without revocation; then the name.
    let base = v.search(check_time, None);
    if base.is_err() {
        if let Some(e) = limit_refusal(&v.verifier) {
            return Err(e.into());
        }
    }
    let chain_reason = match &base {
        Err(why) => Some(why.clone()),
        Ok(_) => v.name_problem(),
    };
    let chain_valid = chain_reason.is_none();
    let mut found = base.ok().filter(|_| chain_valid);

    // 2. Revocation, over every path that passes the rest.
    let mut revocation_reason = None;
    let not_revoked = if !req.check_revocation {
        None
    } else if found.is_none() {
        match own(&req.leaf)? {
            RecordStatus::Revoked(why) => {
                revocation_reason = Some(format!("the certificate has been revoked ({why})"));
                Some(false)
            }
            RecordStatus::Good => Some(true),
            RecordStatus::NotOurs => None,
        }
    } else {
        let own_error: RefCell<Option<E>> = RefCell::new(None);
        // How many certificates of the last path that passed had a revocation source; the
        // search stops at the first path that passes, so this is the found path's count.
        let sourced = Cell::new(0usize);
        let check = |chain: &[&Cert], verifier: &Verifier| -> Result<(), String> {
            // chain: leaf first, anchor last; the anchor itself is trusted as given.
            let mut with_source = 0;
            for pair in chain.windows(2) {
                let (c, issuer) = (pair[0], pair[1]);
                let ours = match own(&c.der) {
                    Ok(RecordStatus::NotOurs) => false,
                    Ok(RecordStatus::Good) => true,
                    Ok(RecordStatus::Revoked(why)) => {
                        return Err(format!(
                            "{:?} has been revoked by its issuing CA here ({why})",
                            c.subject_text()
                        ))
                    }
                    Err(e) => {
                        own_error.borrow_mut().get_or_insert(e);
                        return Err("our revocation records could not be read".into());
                    }
                };
                let by_crl = crl::check(&req.crls, c, issuer, check_time, verifier)
                    .map_err(|e| format!("{:?}: {e}", c.subject_text()))?;
                if ours || by_crl {
                    with_source += 1;
                }
            }
            sourced.set(with_source);
            Ok(())
        };
        let checked = v.search(check_time, Some(&check));
        if let Some(e) = own_error.into_inner() {
            return Err(e);
        }
        match checked {
            Ok(f) => {
                found = Some(f);
                (sourced.get() > 0).then_some(true)
            }
            Err(why) => {
                if let Some(e) = limit_refusal(&v.verifier) {
                    return Err(e.into());
                }
                revocation_reason = Some(why);
                Some(false)
            }
        }
    };

    let valid = chain_valid && not_expired && not_revoked != Some(false);
    // The certificate's own dates first: an expired certificate is expired whatever its
    // chain looks like at its last valid instant.
    let reason = if valid {
        None
    } else {
        match (time_reason, chain_reason) {
            (Some(t), Some(c)) => Some(format!("{t}; also, {c}")),
            (t, c) => t.or(c).or(revocation_reason),
        }
    };
    Ok(Outcome {
        valid,
        chain_valid,
        not_expired,
        not_revoked,
        trusted_anchor: found
            .as_ref()
            .and_then(|f| v.anchor_labels.get(f.anchor).cloned()),
        chain: found.as_ref().map(|f| v.path_entries(f)),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_text_outside_blocks_is_ignored_but_blank_of_blocks_is_refused() {
        let pem = "subject=CN=x\n-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_blocks(pem, "f", "CERTIFICATE", 4).unwrap(),
            vec![vec![0, 1, 2]]
        );
        assert!(pem_blocks("", "f", "CERTIFICATE", 4).unwrap().is_empty());
        assert!(pem_blocks("garbage", "f", "CERTIFICATE", 4).is_err());
    }

    #[test]
    fn pem_blocks_with_bad_base64_or_no_end_or_another_label_are_refused() {
        let bad = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(pem_blocks(bad, "f", "CERTIFICATE", 4).is_err());
        let open = "-----BEGIN CERTIFICATE-----\nAAEC\n";
        assert!(pem_blocks(open, "f", "CERTIFICATE", 4).is_err());
        let key = "-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n";
        assert!(pem_blocks(key, "f", "CERTIFICATE", 4).is_err());
    }

    #[test]
    fn more_pem_blocks_than_the_limit_are_refused() {
        let one = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        assert!(pem_blocks(&one.repeat(3), "f", "CERTIFICATE", 2).is_err());
        assert_eq!(
            pem_blocks(&one.repeat(2), "f", "CERTIFICATE", 2)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn well_formed_base64_that_is_not_a_certificate_is_refused() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse_certificates(pem, "f", 4),
            Err(InputError::Certificate(_))
        ));
    }

    #[test]
    fn names_are_checked_for_syntax() {
        assert!(parse_dns_name("example.com").is_ok());
        assert!(parse_dns_name("not a name").is_err());
        assert!(parse_ip_address("10.0.0.1").is_ok());
        assert!(parse_ip_address("::1").is_ok());
        assert!(parse_ip_address("10.0.0.256").is_err());
    }

    #[test]
    fn fingerprints_are_colon_separated_upper_hex() {
        let f = fingerprint(b"");
        assert!(f.starts_with("E3:B0:C4:42"), "{f}");
        assert_eq!(f.len(), 32 * 3 - 1);
    }
}
