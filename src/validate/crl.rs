//! CRLs given with a validation request (RFC 5280 §5, §6.3), read once and consulted
//! for each certificate of a candidate path. Fail closed: a CRL that names the
//! certificate's issuer but can't be used (signature, issuer without cRLSign, past its
//! nextUpdate, not version 2, no or critical CRL number, a critical extension we don't
//! process such as an issuing distribution point or a delta indicator) leaves the status
//! unknown, which refuses the path.

use std::collections::HashSet;

use der::{Decode, Encode};
use x509_cert::crl::CertificateList;

use super::cert::{signed_parts, Cert};
use super::path::Verifier;

const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_AKI: &str = "2.5.29.35";
const OID_REASON: &str = "2.5.29.21";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";

/// One CRL, read.
pub struct Crl {
    tbs: Vec<u8>,
    sig_alg: Vec<u8>,
    signature: Vec<u8>,
    /// DER of the issuer Name.
    issuer: Vec<u8>,
    next_update: Option<u64>,
    /// Why this CRL can't be used, if it can't.
    problem: Option<String>,
    /// Serial numbers listed (INTEGER contents).
    serials: HashSet<Vec<u8>>,
}

impl Crl {
    /// Read a DER CRL; `Err` when it is not a CRL at all.
    pub fn parse(der: &[u8]) -> Result<Crl, String> {
        let list = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
            .map_err(|e| format!("not a CRL: {e}"))?;
        let (tbs, sig_alg, signature) =
            signed_parts(der).ok_or("its outer structure can't be split")?;
        let t = &list.tbs_cert_list;
        let mut problem = None;
        let mut note = |p: String| {
            if problem.is_none() {
                problem = Some(p);
            }
        };
        if t.version != x509_cert::certificate::Version::V2 {
            note("it is not a version 2 CRL (RFC 5280 §5.1.2.1)".into());
        }
        let mut number = None;
        for ext in t.crl_extensions.iter().flatten() {
            match ext.extn_id.to_string().as_str() {
                OID_CRL_NUMBER => number = Some(ext.critical),
                OID_AKI => {}
                other if ext.critical => note(format!(
                    "it has a critical extension ({other}) this validator does not process"
                )),
                _ => {}
            }
        }
        match number {
            None => note("it has no CRL number (RFC 5280 §5.2.3)".into()),
            Some(true) => note("its CRL number is critical (RFC 5280 §5.2.3)".into()),
            Some(false) => {}
        }
        let mut serials = HashSet::new();
        for entry in t.revoked_certificates.iter().flatten() {
            for ext in entry.crl_entry_extensions.iter().flatten() {
                let oid = ext.extn_id.to_string();
                if ext.critical && oid != OID_REASON && oid != OID_INVALIDITY_DATE {
                    note(format!(
                        "an entry has a critical extension ({oid}) this validator does not process"
                    ));
                }
            }
            serials.insert(entry.serial_number.as_bytes().to_vec());
        }
        Ok(Crl {
            tbs: tbs.to_vec(),
            sig_alg: sig_alg.to_vec(),
            signature: signature.to_vec(),
            issuer: t.issuer.to_der().map_err(|e| e.to_string())?,
            next_update: t.next_update.map(|n| n.to_unix_duration().as_secs()),
            problem,
            serials,
        })
    }
}

/// The revocation status of `cert`, whose issuer in the path is `issuer`, at `time`:
/// `Ok(true)` when a usable CRL of its issuer covers it and does not list it, `Ok(false)`
/// when no CRL names its issuer (its status is simply not known here), Err with a sentence
/// when a CRL lists it or when a CRL that claims to cover it can't be used.
pub fn check(
    crls: &[Crl],
    cert: &Cert,
    issuer: &Cert,
    time: u64,
    verifier: &Verifier,
) -> Result<bool, String> {
    let mut named = 0;
    let mut verified = 0;
    for crl in crls.iter().filter(|c| c.issuer == cert.issuer) {
        named += 1;
        // A spent signature budget counts as "does not verify": fail closed.
        let verified_here = verifier
            .verify(&crl.tbs, &crl.sig_alg, &crl.signature, issuer)
            .unwrap_or(false);
        if !verified_here {
            continue;
        }
        verified += 1;
        if let Some(p) = &crl.problem {
            return Err(format!("a CRL from its issuer can't be used: {p}"));
        }
        if !issuer.may_sign_crls() {
            return Err(
                "a CRL from its issuer can't be used: the issuer's keyUsage lacks cRLSign (RFC 5280 §6.3.3 (f))"
                    .into(),
            );
        }
        if crl.next_update.is_some_and(|n| time > n) {
            return Err(format!(
                "the CRL from its issuer is past its nextUpdate at {}",
                super::instant(time)
            ));
        }
        if crl.serials.contains(&cert.serial) {
            return Err("it is revoked by its issuer's CRL".into());
        }
    }
    if named > 0 && verified == 0 {
        return Err(
            "a CRL naming its issuer does not verify with the issuer's key, so its status is unknown"
                .into(),
        );
    }
    Ok(verified > 0)
}
