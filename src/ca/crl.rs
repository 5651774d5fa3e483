//! CRLs (RFC 5280 §5), built by streaming: the revoked-certificates list is written as DER
//! straight into one buffer while the store is scanned, so a million entries cost one
//! allocation of about 40 MB, not a million small ones. Everything else — names, the
//! algorithm identifier, the extensions — is encoded with the `der`/`x509-cert` types.

use der::asn1::OctetString;
use der::Encode;
use time::OffsetDateTime;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, BaseCrlNumber, CrlNumber, FreshestCrl};

use super::profile::extension;
use super::verify::verify_signature;
use super::{algorithm_identifier, CaError, Issuer};

/// CRLReason removeFromCRL (§5.3.1): only in delta CRLs, for a released hold.
pub const REMOVE_FROM_CRL: u8 = 8;

/// A DER length in a stack buffer: (bytes, how many are used).
fn der_len(len: usize) -> ([u8; 9], usize) {
    let mut out = [0u8; 9];
    if len < 0x80 {
        out[0] = len as u8;
        return (out, 1);
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let n = bytes.len() - skip;
    out[0] = 0x80 | n as u8;
    out[1..=n].copy_from_slice(&bytes[skip..]);
    (out, n + 1)
}

/// Append a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn push_2digits(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
fn push_time(out: &mut Vec<u8>, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (y, mo, d, h, mi, s) = (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    if (1950..2050).contains(&y) {
        let text = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
        out.push(0x17);
        push_len(out, text.len());
        out.extend_from_slice(text.as_bytes());
    } else {
        let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        out.push(0x18);
        push_len(out, text.len());
        out.extend_from_slice(text.as_bytes());
    }
}

/// The revokedCertificates list, written entry by entry.
#[derive(Default)]
pub struct RevokedList {
    buf: Vec<u8>,
    count: u64,
}

impl RevokedList {
    pub fn with_capacity(entries: usize) -> Self {
        RevokedList {
            buf: Vec::with_capacity(entries.saturating_mul(40)),
            count: 0,
        }
    }

    /// One entry: serial (DER INTEGER content octets), revocation date, and a reasonCode
    /// extension unless the reason is unspecified (§5.3.1 says to omit it then).
    ///
    /// Written straight into the buffer with lengths computed up front: this runs a million
    /// times for a large CRL, and per-entry allocations cost five times the rest of it.
    pub fn push(&mut self, serial: &[u8], revoked_at: OffsetDateTime, reason: u8) {
        let t = revoked_at.to_offset(time::UtcOffset::UTC);
        let utc = (1950..2050).contains(&t.year());
        let time_len = if utc { 13 } else { 15 };
        // SEQUENCE { SEQUENCE { OID 2.5.29.21, OCTET STRING { ENUMERATED reason } } }
        const REASON_EXT: [u8; 12] = [
            0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a,
        ];
        let ext_len = if reason != 0 { REASON_EXT.len() + 2 } else { 0 };
        let (len_buf, len_n) = der_len(serial.len());
        let serial_len_bytes = &len_buf[..len_n];
        let content = 1 + len_n + serial.len() + 2 + time_len + ext_len;
        self.buf.push(0x30);
        push_len(&mut self.buf, content);
        self.buf.push(0x02);
        self.buf.extend_from_slice(serial_len_bytes);
        self.buf.extend_from_slice(serial);
        self.buf.push(if utc { 0x17 } else { 0x18 });
        self.buf.push(time_len as u8);
        let year = t.year().unsigned_abs();
        if utc {
            push_2digits(&mut self.buf, year % 100);
        } else {
            push_2digits(&mut self.buf, year / 100);
            push_2digits(&mut self.buf, year % 100);
        }
        for v in [
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
        ] {
            push_2digits(&mut self.buf, u32::from(v));
        }
        self.buf.push(b'Z');
        if reason != 0 {
            self.buf.extend_from_slice(&REASON_EXT);
            self.buf.extend_from_slice(&[0x01, reason]);
        }
        self.count += 1;
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// What kind of CRL to build.
pub enum CrlKind<'a> {
    /// A complete CRL; `freshest` is the URL of its delta CRL, when there is one.
    Full { freshest: Option<&'a str> },
    /// A delta CRL against the complete CRL numbered `base` (§5.2.4).
    Delta { base: u64 },
}

/// A signed and verified CRL.
pub struct SignedCrl {
    pub der: Vec<u8>,
    pub entries: u64,
}

fn crl_number(n: u64) -> Result<der::asn1::Uint, CaError> {
    Ok(der::asn1::Uint::new(&n.to_be_bytes())?)
}

/// Build, sign in the token, verify, and return a v2 CRL.
pub fn sign_crl(
    issuer: &Issuer<'_>,
    number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    revoked: RevokedList,
    kind: CrlKind<'_>,
) -> Result<SignedCrl, CaError> {
    // rcgen refuses this too: a CRL that is already stale when made is a bug.
    if next_update <= this_update {
        return Err(CaError::Invalid(
            "nextUpdate must be after thisUpdate".into(),
        ));
    }
    let alg = issuer.spec.signature_algorithm();
    let alg_der = algorithm_identifier(alg).to_der()?;

    // §5.2.1 AKI: the issuer's own key identifier (not its certificate's AKI).
    let mut exts = vec![
        extension(
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(issuer.key_id.clone())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        // §5.2.3 CRL Number, non-critical, shared by complete and delta CRLs.
        extension(false, &CrlNumber(crl_number(number)?))?,
    ];
    match kind {
        CrlKind::Full {
            freshest: Some(url),
        } => exts.push(extension(
            false,
            &FreshestCrl(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![
                    GeneralName::UniformResourceIdentifier(der::asn1::Ia5String::new(url)?),
                ])),
                reasons: None,
                crl_issuer: None,
            }]),
        )?),
        CrlKind::Full { freshest: None } => {}
        // §5.2.4 Delta CRL Indicator, critical.
        CrlKind::Delta { base } => exts.push(extension(true, &BaseCrlNumber(crl_number(base)?))?),
    }
    let mut ext_seq = Vec::new();
    for e in &exts {
        ext_seq.extend_from_slice(&e.to_der()?);
    }

    let mut tbs_content = Vec::with_capacity(revoked.buf.len() + 512);
    tbs_content.extend_from_slice(&[0x02, 0x01, 0x01]); // version v2
    tbs_content.extend_from_slice(&alg_der);
    tbs_content.extend_from_slice(&issuer.name.to_der()?);
    push_time(&mut tbs_content, this_update);
    push_time(&mut tbs_content, next_update);
    let entries = revoked.count;
    // §5.1.2.6: absent, not empty, when nothing is revoked.
    if !revoked.is_empty() {
        tbs_content.push(0x30);
        push_len(&mut tbs_content, revoked.buf.len());
        tbs_content.extend_from_slice(&revoked.buf);
    }
    drop(revoked);
    tbs_content.extend_from_slice(&tlv(0xa0, &tlv(0x30, &ext_seq)));
    let mut tbs = Vec::with_capacity(tbs_content.len() + 6);
    tbs.push(0x30);
    push_len(&mut tbs, tbs_content.len());
    tbs.extend_from_slice(&tbs_content);
    drop(tbs_content);

    let signature = super::token_sign(issuer.signer, alg, &tbs, super::SignedObject::Crl)?;
    verify_signature(&issuer.spki_der, alg, &tbs, &signature).map_err(CaError::BadSignature)?;

    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0);
    bits.extend_from_slice(&signature);
    let tail = [alg_der, tlv(0x03, &bits)].concat();
    let mut der = Vec::with_capacity(tbs.len() + tail.len() + 6);
    der.push(0x30);
    push_len(&mut der, tbs.len() + tail.len());
    der.extend_from_slice(&tbs);
    der.extend_from_slice(&tail);
    Ok(SignedCrl { der, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_use_the_minimal_long_form() {
        let mut v = Vec::new();
        push_len(&mut v, 0x7f);
        push_len(&mut v, 0x80);
        push_len(&mut v, 0x1_0000);
        assert_eq!(v, vec![0x7f, 0x81, 0x80, 0x83, 0x01, 0x00, 0x00]);
    }

    #[test]
    fn times_switch_to_generalized_in_2050() {
        let mut v = Vec::new();
        push_time(&mut v, time::macros::datetime!(2049-12-31 23:59:59 UTC));
        assert_eq!(&v[..2], &[0x17, 13]);
        v.clear();
        push_time(&mut v, time::macros::datetime!(2050-01-01 00:00:00 UTC));
        assert_eq!(&v[..2], &[0x18, 15]);
    }

    #[test]
    fn entries_parse_back_with_their_dates_in_both_time_forms() {
        use der::Decode;
        for (at, reason) in [
            (time::macros::datetime!(2026-03-04 05:06:07 UTC), 0u8),
            (time::macros::datetime!(2051-12-31 23:59:59 UTC), 6u8),
        ] {
            let mut l = RevokedList::default();
            l.push(&[0x7f; 16], at, reason);
            let rc: x509_cert::crl::RevokedCert =
                x509_cert::crl::RevokedCert::from_der(&l.buf).unwrap();
            assert_eq!(
                rc.revocation_date.to_unix_duration().as_secs() as i64,
                at.unix_timestamp()
            );
            assert_eq!(rc.crl_entry_extensions.is_some(), reason != 0);
        }
    }

    #[test]
    fn an_entry_parses_back_with_its_reason() {
        use der::Decode;
        let mut l = RevokedList::default();
        l.push(
            &[0x01, 0x02],
            time::macros::datetime!(2026-01-01 00:00:00 UTC),
            1,
        );
        let rc: x509_cert::crl::RevokedCert =
            x509_cert::crl::RevokedCert::from_der(&l.buf).unwrap();
        assert_eq!(rc.serial_number.as_bytes(), &[0x01, 0x02]);
        let exts = rc.crl_entry_extensions.unwrap();
        assert_eq!(exts[0].extn_id, const_oid::db::rfc5280::ID_CE_CRL_REASONS);
    }

    #[test]
    fn a_crl_signature_that_does_not_verify_is_never_returned() {
        use crate::keys::{DigestSigner, KeySpec, SignError, SignatureAlgorithm};
        use p256::pkcs8::EncodePublicKey;
        struct Lying;
        impl DigestSigner for Lying {
            fn sign_digest(&self, _: SignatureAlgorithm, _: &[u8]) -> Result<Vec<u8>, SignError> {
                Ok(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])
            }
        }
        struct Failing;
        impl DigestSigner for Failing {
            fn sign_digest(&self, _: SignatureAlgorithm, _: &[u8]) -> Result<Vec<u8>, SignError> {
                Err(SignError::Unavailable("gone".into()))
            }
        }
        let mut seed = [7u8; 32];
        seed[0] = 1;
        let sk = p256::ecdsa::SigningKey::from_slice(&seed).unwrap();
        let spki = sk.verifying_key().to_public_key_der().unwrap();
        let now = crate::types::now();
        for signer in [&Lying as &dyn DigestSigner, &Failing] {
            let issuer = Issuer {
                name: super::super::common_name("CRL Issuer").unwrap(),
                spki_der: spki.as_bytes().to_vec(),
                key_id: vec![1; 20],
                spec: KeySpec::EcP256,
                not_after: None,
                signer,
            };
            let r = sign_crl(
                &issuer,
                1,
                now,
                now + time::Duration::hours(1),
                RevokedList::default(),
                CrlKind::Full { freshest: None },
            );
            assert!(r.is_err());
        }
    }
}
