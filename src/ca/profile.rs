//! Certificate profiles: which extensions a CA certificate carries, and the checks every
//! certificate must pass before it leaves the signing core.

use const_oid::AssociatedOid;
use der::asn1::OctetString;
use der::Encode;
use sha1::{Digest, Sha1};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::Certificate;

use super::CaError;

/// Wrap an extension value with its OID and criticality.
pub(crate) fn extension<T: Encode + AssociatedOid>(
    critical: bool,
    value: &T,
) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Whether a SubjectPublicKeyInfo is an RSA key restricted to RSASSA-PSS (RFC 4055).
pub fn is_rsassa_pss_key(spki_der: &[u8]) -> bool {
    <spki::SubjectPublicKeyInfoRef as der::Decode>::from_der(spki_der)
        .is_ok_and(|s| s.algorithm.oid == const_oid::db::rfc5912::ID_RSASSA_PSS)
}

/// Key identifier per RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>, CaError> {
    use der::Decode;
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)?;
    Ok(Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec())
}

/// The CA profile: basicConstraints CA:TRUE and keyUsage keyCertSign + cRLSign, both
/// critical (RFC 5280 §4.2.1.9, §4.2.1.3); SKI always; AKI when the issuer is another CA
/// (§4.2.1.1 lets a self-signed root omit it). An intermediate signed by a CA of ours
/// also gets [`issuer_pointers`] when the daemon knows its public URL; a root has no
/// issuer to point at.
pub fn ca_extensions(
    subject_key_id: &[u8],
    authority_key_id: Option<&[u8]>,
    path_len: Option<u8>,
) -> Result<Vec<Extension>, CaError> {
    let mut exts = vec![
        extension(
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            },
        )?,
        extension(true, &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))?,
        extension(
            false,
            &SubjectKeyIdentifier(OctetString::new(subject_key_id.to_vec())?),
        )?,
    ];
    if let Some(aki) = authority_key_id {
        exts.push(extension(
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(aki.to_vec())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?);
    }
    Ok(exts)
}

/// Checks every certificate passes after signing, whatever its profile (ARCHITECTURE rule 2).
pub fn check_issued(cert: &Certificate, self_signed: bool) -> Result<(), CaError> {
    let tbs = cert.tbs_certificate();
    let serial = tbs.serial_number().as_bytes();
    if serial.is_empty() || serial.len() > 20 || serial[0] & 0x80 != 0 {
        return Err(CaError::Profile(
            "serial number must be positive and at most 20 octets",
        ));
    }
    if tbs.get_extension::<SubjectKeyIdentifier>()?.is_none() {
        return Err(CaError::Profile("subjectKeyIdentifier is missing"));
    }
    if !self_signed && tbs.get_extension::<AuthorityKeyIdentifier>()?.is_none() {
        return Err(CaError::Profile("authorityKeyIdentifier is missing"));
    }
    let v = tbs.validity();
    if v.not_after.to_unix_duration() <= v.not_before.to_unix_duration() {
        return Err(CaError::Profile("notAfter is not after notBefore"));
    }
    Ok(())
}

/// What goes into an end-entity certificate besides its subject and key.
pub struct LeafProfile<'a> {
    pub subject_key_id: &'a [u8],
    pub authority_key_id: &'a [u8],
    pub dns: &'a [String],
    pub ips: &'a [std::net::IpAddr],
    pub uris: &'a [String],
    pub key_usage: flagset::FlagSet<KeyUsages>,
    pub ext_key_usage: Vec<const_oid::ObjectIdentifier>,
    /// Where relying parties fetch the issuer's CRL (`cRLDistributionPoints`).
    pub crl_url: Option<String>,
    /// Where relying parties fetch the issuer's certificate (AIA `caIssuers`).
    pub ca_issuers_url: Option<String>,
    /// RFC 5280 §4.2.1.6: with an empty subject the SAN extension must be critical.
    pub subject_is_empty: bool,
}

/// The leaf profile: basicConstraints CA:FALSE (critical), keyUsage (critical), extKeyUsage,
/// SAN, SKI, AKI, and CRL distribution point / AIA when the daemon knows its public URL.
pub fn leaf_extensions(p: &LeafProfile<'_>) -> Result<Vec<Extension>, CaError> {
    use der::asn1::Ia5String;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

    let mut sans = Vec::with_capacity(p.dns.len() + p.ips.len() + p.uris.len());
    for d in p.dns {
        sans.push(GeneralName::DnsName(Ia5String::new(d)?));
    }
    for ip in p.ips {
        sans.push(GeneralName::from(*ip));
    }
    for u in p.uris {
        sans.push(GeneralName::UniformResourceIdentifier(Ia5String::new(u)?));
    }
    let mut exts = vec![
        extension(
            true,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?,
        extension(true, &KeyUsage(p.key_usage))?,
    ];
    if !p.ext_key_usage.is_empty() {
        // RFC 3161 §2.3: a time-stamping authority's extKeyUsage is critical.
        let critical = p.ext_key_usage == [const_oid::db::rfc5280::ID_KP_TIME_STAMPING];
        exts.push(extension(
            critical,
            &ExtendedKeyUsage(p.ext_key_usage.clone()),
        )?);
    }
    exts.push(extension(p.subject_is_empty, &SubjectAltName(sans))?);
    exts.push(extension(
        false,
        &SubjectKeyIdentifier(OctetString::new(p.subject_key_id.to_vec())?),
    )?);
    exts.push(extension(
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(p.authority_key_id.to_vec())?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )?);
    exts.extend(issuer_pointers(
        p.crl_url.as_deref(),
        p.ca_issuers_url.as_deref(),
    )?);
    Ok(exts)
}

/// Where relying parties find the issuer's CRL (`cRLDistributionPoints`, one full-name
/// URI) and the issuer's certificate (AIA `caIssuers`), both non-critical, for any
/// certificate a CA of ours signs: leaves, and intermediates (so that revoking an
/// intermediate reaches clients that follow distribution points).
pub fn issuer_pointers(
    crl_url: Option<&str>,
    ca_issuers_url: Option<&str>,
) -> Result<Vec<Extension>, CaError> {
    use der::asn1::Ia5String;
    use x509_cert::ext::pkix::crl::dp::DistributionPoint;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    use x509_cert::ext::pkix::{
        AccessDescription, AuthorityInfoAccessSyntax, CrlDistributionPoints,
    };

    let mut exts = Vec::with_capacity(2);
    if let Some(url) = crl_url {
        exts.push(extension(
            false,
            &CrlDistributionPoints(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![
                    GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
                ])),
                reasons: None,
                crl_issuer: None,
            }]),
        )?);
    }
    if let Some(url) = ca_issuers_url {
        exts.push(extension(
            false,
            &AuthorityInfoAccessSyntax(vec![AccessDescription {
                access_method: const_oid::db::rfc5280::ID_AD_CA_ISSUERS,
                access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
            }]),
        )?);
    }
    Ok(exts)
}
