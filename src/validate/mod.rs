//! Certificate path validation (RFC 5280 §6) for `POST /v1/pki/certificates/validate`.
//!
//! Pure: no HTTP, no store. The caller hands in DER certificates, anchors, CRLs and a
//! lookup into its own revocation records; this module answers with an [`Outcome`].
//!
//! # Choice of validator
//!
//! Path building and the per-certificate checks are rustls-webpki's (0.103), not ours:
//! it is small, audited and maintained; it builds paths over any number of untrusted
//! certificates in any order with loop prevention (RFC 4158 §5.2) and a work budget
//! (100 signature checks, 200,000 build calls, 250,000 name-constraint comparisons per
//! search), so no input — cycles, thousands of candidates, name-constraint bombs — can
//! make it hang; it fails closed (unknown critical extensions, name forms it doesn't
//! implement, v1 intermediates are rejected); and it is run against x509-limbo upstream.
//! It covers signatures, validity at a given time, basicConstraints and pathLen, name
//! constraints, EKU chaining, the subject name and CRLs. Its `verify_path` hook lets us
//! add what it leaves out, on every candidate path, so a rejected candidate makes the
//! search continue with the next one:
//!
//! * keyUsage on CAs (RFC 5280 §6.1.4 (n)): an intermediate that carries keyUsage must
//!   assert keyCertSign; webpki ignores keyUsage on CAs;
//! * `max_chain_depth`: the number of intermediates that are not self-issued (as for
//!   pathLenConstraint, RFC 5280 §6.1.4 (l)); 0 means leaf → anchor only;
//! * our own revocation records, for certificates our CAs issued.
//!
//! Where webpki is stricter than RFC 5280 (it applies pathLen to self-issued
//! intermediates too, rejects every directoryName constraint, allows at most six
//! intermediates) we keep its answer: failing closed is the safe side. CONFORMANCE.md at
//! the repository root lists the x509-limbo cases this decides.
//!
//! # The answer
//!
//! * `chain_valid`: a path from the certificate to a trust anchor exists that passes every
//!   check of RFC 5280 §6 except revocation, including the requested name and purpose.
//!   Validity periods are checked at the validation time, except when the certificate
//!   itself is outside its own validity period then: the path is then checked at the
//!   nearest instant of the certificate's validity period, so an expired certificate with a
//!   sound chain answers `chain_valid: true, not_expired: false`.
//! * `not_expired`: notBefore ≤ validation time ≤ notAfter for the certificate itself.
//! * `not_revoked`: `null` when revocation was not asked for. Otherwise false when our
//!   records or a given CRL revoke a certificate of every path that passes the other
//!   checks, or when a CRL that covers such a certificate can't be used (bad signature,
//!   issuer without cRLSign, past its nextUpdate, unsupported features): fail closed.
//!   When no path is found, only our records for the certificate itself are consulted
//!   (a CRL can't be checked without its issuer's key).
//! * `valid` = `chain_valid && not_expired && not_revoked != false`.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use der::Decode;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptions, RevocationOptionsBuilder, UnknownStatusPolicy,
    VerifiedPath,
};
use x509_cert::ext::pkix::{KeyUsage as KeyUsageExt, KeyUsages};

/// At most this many certificates in `chain_pem`.
pub const MAX_CHAIN_CERTS: usize = 64;
/// At most this many certificates in `trust_anchors_pem`.
pub const MAX_REQUEST_ANCHORS: usize = 16;
/// At most this many CRLs in `crls_pem`.
pub const MAX_CRLS: usize = 16;

/// What the certificate must be good for (RFC 5280 §4.2.1.12). An extKeyUsage extension,
/// where present on the leaf or a CA of the path, must allow it; no extension allows all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// id-kp-serverAuth.
    ServerAuth,
    /// id-kp-clientAuth.
    ClientAuth,
    /// Valid for serverAuth or for clientAuth (each judged over the whole path; a path
    /// whose leaf allows only one and whose CA allows only the other is not valid), or a
    /// path without extKeyUsage at all.
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
    pub crls: Vec<CertRevocationList<'static>>,
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub name: Option<PeerName>,
    pub purpose: Purpose,
    /// The most intermediates that are not self-issued a path may hold.
    pub max_chain_depth: Option<usize>,
    pub check_revocation: bool,
}

/// One certificate of the path found.
#[derive(Debug, Clone, Serialize)]
pub struct PathEntry {
    /// The subject DN, RFC 4514 string form.
    pub subject: String,
    /// SHA-256 of the DER certificate, upper-case hex with colons (as `openssl -fingerprint`).
    pub sha256_fingerprint: String,
}

/// The answer; see the module documentation for what each field means.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub valid: bool,
    pub chain_valid: bool,
    pub not_expired: bool,
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
}

// ------------------------------------------------------------------ input parsing

/// The DER bodies of the PEM blocks labelled `label` in `text`, at most `max` of them.
/// Text outside blocks is ignored (as openssl does); a block with another label, a block
/// without an END line, bad base64, or non-blank text without any block is an error.
fn pem_blocks(text: &str, field: &str, label: &str, max: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let end = format!("-----END {label}-----");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("-----BEGIN ") else {
            continue;
        };
        let found = rest.strip_suffix("-----").unwrap_or(rest);
        if found != label {
            return Err(format!(
                "{field} holds a PEM block labelled {found:?}; only {label} blocks are accepted"
            ));
        }
        if out.len() == max {
            return Err(format!("{field} holds more than {max} {label} blocks"));
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
            return Err(format!(
                "{field}: PEM block {} has no matching END line",
                out.len() + 1
            ));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| {
                format!(
                    "{field}: PEM block {} is not valid base64: {e}",
                    out.len() + 1
                )
            })?;
        out.push(der);
    }
    if out.is_empty() && !text.trim().is_empty() {
        return Err(format!("{field} holds no PEM {label} block"));
    }
    Ok(out)
}

/// Parse PEM certificates and check each is a well-formed DER X.509 certificate.
pub fn parse_certificates(text: &str, field: &str, max: usize) -> Result<Vec<Vec<u8>>, InputError> {
    let ders = pem_blocks(text, field, "CERTIFICATE", max).map_err(InputError::Certificate)?;
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
    let mut ders = parse_certificates(text, field, 1)?;
    match ders.pop() {
        Some(der) => Ok(der),
        None => Err(InputError::Certificate(format!(
            "{field} must hold one PEM certificate"
        ))),
    }
}

/// Parse PEM CRLs (`X509 CRL` blocks) as webpki reads them.
pub fn parse_crls(text: &str, field: &str) -> Result<Vec<CertRevocationList<'static>>, InputError> {
    let ders = pem_blocks(text, field, "X509 CRL", MAX_CRLS).map_err(InputError::Crl)?;
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            OwnedCertRevocationList::from_der(der)
                .map(CertRevocationList::from)
                .map_err(|e| {
                    InputError::Crl(format!(
                        "{field}: CRL {} can't be used: {}",
                        i + 1,
                        describe(&e)
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
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

fn entry(der: &[u8]) -> PathEntry {
    let subject = x509_cert::Certificate::from_der(der)
        .map(|c| c.tbs_certificate().subject().to_string())
        .unwrap_or_else(|_| "(subject not readable)".into());
    PathEntry {
        subject,
        sha256_fingerprint: fingerprint(der),
    }
}

/// The leaf's validity period, in Unix seconds.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let v = cert.tbs_certificate().validity();
    Some((
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    ))
}

/// RFC 5280 §6.1.4 (n): a CA certificate's keyUsage, when present, must assert keyCertSign.
fn ca_key_usage_problem(der: &[u8]) -> Option<String> {
    let cert = match x509_cert::Certificate::from_der(der) {
        Ok(c) => c,
        Err(e) => return Some(format!("an intermediate can't be read: {e}")),
    };
    match cert.tbs_certificate().get_extension::<KeyUsageExt>() {
        Ok(None) => None,
        Ok(Some((_, ku))) if ku.0.contains(KeyUsages::KeyCertSign) => None,
        Ok(Some(_)) => Some(format!(
            "the CA certificate {:?} has a keyUsage extension without keyCertSign (RFC 5280 §6.1.4 (n))",
            cert.tbs_certificate().subject().to_string()
        )),
        Err(e) => Some(format!(
            "the CA certificate {:?} has a malformed keyUsage extension: {e}",
            cert.tbs_certificate().subject().to_string()
        )),
    }
}

/// A path found: the anchor's index in the request, and the certificates leaf first,
/// anchor last.
struct Found {
    anchor: usize,
    ders: Vec<Vec<u8>>,
}

/// Why a search found nothing: webpki's error, or, when one of our own checks turned the
/// last candidate down, our sentence.
struct Failed {
    error: webpki::Error,
    ours: Option<String>,
}

impl Failed {
    fn sentence(&self) -> String {
        match &self.ours {
            // Our hooks answer with these placeholders; anything ranked higher is webpki's.
            Some(s)
                if matches!(
                    self.error,
                    webpki::Error::ExtensionValueInvalid
                        | webpki::Error::MaximumPathDepthExceeded
                        | webpki::Error::CertRevoked
                        | webpki::Error::UnknownRevocationStatus
                ) =>
            {
                s.clone()
            }
            _ => describe(&self.error),
        }
    }

    fn is_eku(&self) -> bool {
        #[allow(deprecated)]
        let eku = matches!(
            self.error,
            webpki::Error::RequiredEkuNotFound
                | webpki::Error::RequiredEkuNotFoundContext(_)
                | webpki::Error::EmptyEkuExtension
        );
        eku
    }
}

/// Everything one search needs, borrowed from the request.
struct Searcher<'a, E> {
    req: &'a Request,
    leaf: &'a EndEntityCert<'a>,
    anchors: &'a [TrustAnchor<'a>],
    anchor_index: &'a [usize],
    intermediates: &'a [CertificateDer<'a>],
    own: &'a dyn Fn(&[u8]) -> Result<Option<String>, E>,
    /// The first error of our own records; it ends the validation.
    own_error: RefCell<Option<E>>,
}

impl<E> Searcher<'_, E> {
    /// One path search for one purpose. With `revocation`, our records and the CRLs are
    /// consulted for every certificate of each candidate path.
    fn search(
        &self,
        usage: KeyUsage,
        time: UnixTime,
        revocation: bool,
        crls: Option<RevocationOptions<'_>>,
    ) -> Result<Found, Failed> {
        let note: RefCell<Option<String>> = RefCell::new(None);
        let reject = |why: String, as_error: webpki::Error| {
            *note.borrow_mut() = Some(why);
            Err(as_error)
        };
        let hook = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            if let Some(max) = self.req.max_chain_depth {
                let n = path
                    .intermediate_certificates()
                    .filter(|c| c.subject() != c.issuer())
                    .count();
                if n > max {
                    return reject(
                        format!("the path needs {n} intermediate CAs; max_chain_depth is {max}"),
                        webpki::Error::MaximumPathDepthExceeded,
                    );
                }
            }
            for c in path.intermediate_certificates() {
                if let Some(why) = ca_key_usage_problem(c.der().as_ref()) {
                    return reject(why, webpki::Error::ExtensionValueInvalid);
                }
            }
            if revocation {
                let leaf = path.end_entity().der();
                let mut certs = vec![leaf];
                certs.extend(path.intermediate_certificates().map(|c| c.der()));
                for der in certs {
                    match (self.own)(der.as_ref()) {
                        Ok(None) => {}
                        Ok(Some(why)) => {
                            return reject(
                                format!(
                                    "{:?} was revoked by its issuing CA here ({why})",
                                    entry(der.as_ref()).subject
                                ),
                                webpki::Error::CertRevoked,
                            )
                        }
                        Err(e) => {
                            let mut slot = self.own_error.borrow_mut();
                            if slot.is_none() {
                                *slot = Some(e);
                            }
                            return reject(
                                "our revocation records could not be read".into(),
                                webpki::Error::UnknownRevocationStatus,
                            );
                        }
                    }
                }
            }
            Ok(())
        };
        match self.leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            self.anchors,
            self.intermediates,
            time,
            usage,
            crls,
            Some(&hook),
        ) {
            Ok(path) => {
                let anchor = self
                    .anchors
                    .iter()
                    .position(|a| std::ptr::eq(a, path.anchor()))
                    .and_then(|i| self.anchor_index.get(i).copied())
                    .unwrap_or(usize::MAX);
                let mut ders = vec![path.end_entity().der().as_ref().to_vec()];
                ders.extend(
                    path.intermediate_certificates()
                        .map(|c| c.der().as_ref().to_vec()),
                );
                if let Some(a) = self.req.anchors.get(anchor) {
                    ders.push(a.der.clone());
                }
                Ok(Found { anchor, ders })
            }
            Err(error) => Err(Failed {
                error,
                ours: note.into_inner(),
            }),
        }
    }

    /// A search for the request's purpose: `any` tries serverAuth, then clientAuth.
    fn search_purpose(
        &self,
        time: UnixTime,
        revocation: bool,
        crls: Option<RevocationOptions<'_>>,
    ) -> Result<Found, Failed> {
        let usages: &[KeyUsage] = match self.req.purpose {
            Purpose::ServerAuth => &[KeyUsage::server_auth()],
            Purpose::ClientAuth => &[KeyUsage::client_auth()],
            Purpose::Any => &[KeyUsage::server_auth(), KeyUsage::client_auth()],
        };
        let mut first: Option<Failed> = None;
        for usage in usages {
            match self.search(*usage, time, revocation, crls) {
                Ok(found) => return Ok(found),
                // Report the first purpose's failure, unless it was only about EKU.
                Err(f) => match &first {
                    Some(prev) if !prev.is_eku() => {}
                    _ => first = Some(f),
                },
            }
        }
        Err(first.unwrap_or(Failed {
            error: webpki::Error::UnknownIssuer,
            ours: None,
        }))
    }
}

fn unix(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// Validate `req`. `own` looks a DER certificate up in our revocation records: `Some(reason)`
/// when a CA of ours issued it and it is revoked. Its errors end the validation.
pub fn validate<E>(
    req: &Request,
    own: &dyn Fn(&[u8]) -> Result<Option<String>, E>,
) -> Result<Outcome, E> {
    let time = req.time;
    let (not_expired, check_time, time_reason) = match validity(&req.leaf) {
        Some((nb, _)) if time < nb => (
            false,
            nb,
            Some("the certificate is not valid yet at the validation time".to_string()),
        ),
        Some((_, na)) if time > na => (
            false,
            na,
            Some("the certificate has expired at the validation time".to_string()),
        ),
        _ => (true, time, None),
    };

    let leaf_der = CertificateDer::from(req.leaf.as_slice());
    let leaf = match EndEntityCert::try_from(&leaf_der) {
        Ok(l) => l,
        Err(e) => {
            let not_revoked = if req.check_revocation {
                Some(own(&req.leaf)?.is_none())
            } else {
                None
            };
            return Ok(Outcome {
                valid: false,
                chain_valid: false,
                not_expired,
                not_revoked,
                trusted_anchor: None,
                chain: None,
                reason: Some(format!(
                    "the certificate can't be used as an end-entity certificate: {}",
                    describe(&e)
                )),
            });
        }
    };

    let anchor_ders: Vec<CertificateDer<'_>> = req
        .anchors
        .iter()
        .map(|a| CertificateDer::from(a.der.as_slice()))
        .collect();
    let mut anchors = Vec::with_capacity(anchor_ders.len());
    let mut anchor_index = Vec::with_capacity(anchor_ders.len());
    for (i, der) in anchor_ders.iter().enumerate() {
        // An anchor webpki can't read (a malformed registered anchor) anchors nothing.
        if let Ok(a) = webpki::anchor_from_trusted_cert(der) {
            anchors.push(a);
            anchor_index.push(i);
        }
    }
    let intermediates: Vec<CertificateDer<'_>> = req
        .intermediates
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();

    let searcher = Searcher {
        req,
        leaf: &leaf,
        anchors: &anchors,
        anchor_index: &anchor_index,
        intermediates: &intermediates,
        own,
        own_error: RefCell::new(None),
    };

    // 1. The path, without revocation.
    let base = searcher.search_purpose(unix(check_time), false, None);
    let mut chain_reason = base.as_ref().err().map(Failed::sentence);
    if chain_reason.is_none() {
        if let Some(name) = &req.name {
            let checked = match name {
                PeerName::Dns(n) => leaf.verify_is_valid_for_subject_name(n),
                PeerName::Ip(ip) => {
                    leaf.verify_is_valid_for_subject_name(&ServerName::IpAddress((*ip).into()))
                }
            };
            if let Err(e) = checked {
                chain_reason = Some(describe(&e));
            }
        }
    }
    let chain_valid = chain_reason.is_none();

    // 2. Revocation, over every path that passes the rest.
    let mut found = base.ok().filter(|_| chain_valid);
    let mut revocation_reason = None;
    let not_revoked = if !req.check_revocation {
        None
    } else if found.is_none() {
        let revoked = own(&req.leaf)?;
        if let Some(why) = &revoked {
            revocation_reason = Some(format!("the certificate was revoked ({why})"));
        }
        Some(revoked.is_none())
    } else {
        let crl_list: Vec<&CertRevocationList<'_>> = req.crls.iter().collect();
        let crls = RevocationOptionsBuilder::new(&crl_list).ok().map(|b| {
            b.with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(UnknownStatusPolicy::Allow)
                .with_expiration_policy(ExpirationPolicy::Enforce)
                .build()
        });
        let checked = searcher.search_purpose(unix(check_time), true, crls);
        if let Some(e) = searcher.own_error.borrow_mut().take() {
            return Err(e);
        }
        match checked {
            Ok(f) => {
                found = Some(f);
                Some(true)
            }
            Err(f) => {
                revocation_reason = Some(revocation_sentence(&f));
                Some(false)
            }
        }
    };

    let valid = chain_valid && not_expired && not_revoked != Some(false);
    let reason = if valid {
        None
    } else {
        chain_reason.or(time_reason).or(revocation_reason)
    };
    let trusted_anchor = found
        .as_ref()
        .and_then(|f| req.anchors.get(f.anchor))
        .map(|a| a.label.clone());
    let chain = found.map(|f| f.ders.iter().map(|d| entry(d)).collect());
    Ok(Outcome {
        valid,
        chain_valid,
        not_expired,
        not_revoked,
        trusted_anchor,
        chain,
        reason,
    })
}

fn revocation_sentence(f: &Failed) -> String {
    match (&f.error, &f.ours) {
        (webpki::Error::CertRevoked, None) => {
            "a certificate of the path is revoked by a given CRL".into()
        }
        (webpki::Error::CertRevoked | webpki::Error::UnknownRevocationStatus, Some(_)) => {
            f.sentence()
        }
        _ => format!(
            "the revocation status could not be established: {}",
            describe(&f.error)
        ),
    }
}

/// A sentence for a webpki error.
pub fn describe(e: &webpki::Error) -> String {
    use webpki::Error as W;
    #[allow(deprecated)]
    let s = match e {
        W::BadDer | W::BadDerTime | W::TrailingData(_) => {
            "a certificate is not valid DER".to_string()
        }
        W::CaUsedAsEndEntity => "the certificate is a CA certificate, not an end-entity certificate".into(),
        W::CertDistrusted => "a certificate of the path is explicitly distrusted".into(),
        W::CertExpired { .. } => "a certificate of the path has expired at the validation time".into(),
        W::CertNotValidYet { .. } => {
            "a certificate of the path is not valid yet at the validation time".into()
        }
        W::CertNotValidForName(ctx) => format!(
            "the certificate is not valid for the requested name (it holds {})",
            if ctx.presented.is_empty() {
                "no subjectAltName of that type".to_string()
            } else {
                ctx.presented.join(", ")
            }
        ),
        W::CertRevoked => "a certificate of the path is revoked".into(),
        W::CrlExpired { .. } => "a CRL that covers the path is past its nextUpdate".into(),
        W::EmptyEkuExtension => "a certificate has an empty extKeyUsage extension".into(),
        W::EndEntityUsedAsCa => {
            "an issuer in the path is not a CA (basicConstraints cA is not set)".into()
        }
        W::ExtensionValueInvalid => "a certificate has an invalid extension value".into(),
        W::InvalidCertValidity => "a certificate's notAfter is before its notBefore".into(),
        W::InvalidCrlNumber => "a CRL has an invalid CRL number".into(),
        W::InvalidNetworkMaskConstraint => "a name constraint has an invalid IP network mask".into(),
        W::InvalidSerialNumber => "a certificate has an invalid serial number".into(),
        W::InvalidCrlSignatureForPublicKey => "a CRL's signature does not verify with its issuer's key".into(),
        W::InvalidSignatureForPublicKey => {
            "a certificate's signature does not verify with its issuer's key".into()
        }
        W::IssuerNotCrlSigner => "a CRL's issuer does not have the cRLSign key usage".into(),
        W::MalformedDnsIdentifier => "a certificate holds a malformed DNS name".into(),
        W::MalformedExtensions => "a certificate has malformed or duplicate extensions".into(),
        W::MalformedNameConstraint => "a CA has a malformed name constraint".into(),
        W::MaximumNameConstraintComparisonsExceeded => {
            "path building gave up: too many name-constraint comparisons".into()
        }
        W::MaximumPathBuildCallsExceeded => "path building gave up: too many candidate paths".into(),
        W::MaximumPathDepthExceeded => "the path would be longer than allowed".into(),
        W::MaximumSignatureChecksExceeded => {
            "path building gave up: too many signature checks".into()
        }
        W::NameConstraintViolation => "a name in the path violates a CA's name constraints".into(),
        W::PathLenConstraintViolated => "a CA's pathLenConstraint is exceeded".into(),
        W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => {
            "a certificate's extKeyUsage does not allow the requested purpose".into()
        }
        W::SignatureAlgorithmMismatch => {
            "a certificate's signature algorithm differs from the one in its TBSCertificate".into()
        }
        W::UnknownIssuer => "no path to a trusted anchor was found".into(),
        W::UnknownRevocationStatus => "the revocation status is unknown".into(),
        W::UnsupportedCertVersion => "a certificate is not X.509 version 3".into(),
        W::UnsupportedCriticalExtension => {
            "a certificate has a critical extension this validator does not process".into()
        }
        W::UnsupportedCrlIssuingDistributionPoint => {
            "a CRL has an issuing distribution point that is not supported".into()
        }
        W::UnsupportedCrlVersion => "a CRL is not version 2".into(),
        W::UnsupportedDeltaCrl => "delta CRLs are not supported".into(),
        W::UnsupportedIndirectCrl => "indirect CRLs are not supported".into(),
        W::UnsupportedNameType => "the requested name type is not supported".into(),
        W::UnsupportedRevocationReason => "a CRL entry has an unsupported reason code".into(),
        W::UnsupportedRevocationReasonsPartitioning => {
            "CRLs partitioned by reason are not supported".into()
        }
        W::UnsupportedCrlSignatureAlgorithm
        | W::UnsupportedCrlSignatureAlgorithmContext(_)
        | W::UnsupportedCrlSignatureAlgorithmForPublicKey
        | W::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => {
            "a CRL uses a signature algorithm or key that is not accepted".into()
        }
        W::UnsupportedSignatureAlgorithm
        | W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKey
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a certificate uses a signature algorithm or key that is not accepted (weak, unknown or mismatched)".into()
        }
        other => format!("the path was rejected ({other:?})"),
    };
    s
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
