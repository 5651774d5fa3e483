//! Certificate signing requests from outside: parse, verify the self-signature, and read
//! what they ask for. x509-cert parses CSRs but does not verify them.

use std::net::IpAddr;

use der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extensions;
use x509_cert::name::Name;
use x509_cert::request::CertReq;

use super::verify::{public_key_kind, verify_by_algorithm};
use crate::keys::KeyType;

/// Largest CSR parsed at all, PEM or DER, whatever `limits.max_csr_bytes` allows (the
/// service checks that, lower, limit first). A real CSR is a few kilobytes.
pub const MAX_CSR_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("the CSR is larger than {MAX_CSR_BYTES} bytes")]
    TooLarge,
    #[error("the CSR cannot be parsed: {0}")]
    Malformed(String),
    #[error("the CSR's signature does not verify: {0}")]
    BadSignature(String),
    #[error("the CSR asks for a subject alternative name of a kind we do not issue ({0})")]
    UnsupportedSan(&'static str),
    /// A key no role can allow (README "Keys"): a policy refusal, not a malformed CSR.
    #[error("the CSR's key is {0}; only EC P-256, P-384 and RSA keys can be certified")]
    UnsupportedKey(String),
}

/// A CSR whose self-signature verified, and what it asks for.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    pub subject: Name,
    pub spki_der: Vec<u8>,
    pub key_type: KeyType,
    pub key_bits: u32,
    pub common_name: Option<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub uris: Vec<String>,
}

/// Refuse, by its algorithm identifier, a key we could not certify anyway (Ed25519, other
/// curves, DSA, ...), before trying its signature: that is a 422 for the key type, where a
/// signature we cannot check would read as a broken CSR.
fn supported_key_algorithm(alg: &spki::AlgorithmIdentifierOwned) -> Result<(), CsrError> {
    use const_oid::db::{rfc5912, rfc8410};
    let oid = alg.oid;
    if oid == rfc5912::RSA_ENCRYPTION || oid == rfc5912::ID_RSASSA_PSS {
        return Ok(());
    }
    if oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve = alg
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
        return match curve {
            Some(c) if c == rfc5912::SECP_256_R_1 || c == rfc5912::SECP_384_R_1 => Ok(()),
            Some(c) => Err(CsrError::UnsupportedKey(format!("EC on the curve {c}"))),
            None => Err(CsrError::Malformed("EC key without a named curve".into())),
        };
    }
    let name = match oid {
        o if o == rfc8410::ID_ED_25519 => "Ed25519".to_string(),
        o if o == rfc8410::ID_ED_448 => "Ed448".to_string(),
        o => format!("of the algorithm {o}"),
    };
    Err(CsrError::UnsupportedKey(name))
}

/// Parse a PEM (or base64-less DER in a string is not accepted) CSR and verify it.
pub fn parse_and_verify(pem: &str) -> Result<VerifiedCsr, CsrError> {
    if pem.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge);
    }
    let (label, der) = super::decode_pem(pem).map_err(|e| CsrError::Malformed(e.to_string()))?;
    // Some tools write the "NEW CERTIFICATE REQUEST" label.
    if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
        return Err(CsrError::Malformed(format!(
            "a PEM block labelled {label:?}, not CERTIFICATE REQUEST"
        )));
    }
    // `from_der`, unlike der's `from_pem`, refuses bytes after the CSR's own DER.
    let req = CertReq::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let info_der = req
        .info
        .to_der()
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    let spki_der = req
        .info
        .public_key
        .to_der()
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    supported_key_algorithm(&req.info.public_key.algorithm)?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| CsrError::Malformed("signature has unused bits".into()))?;
    verify_by_algorithm(&spki_der, &req.algorithm, &info_der, sig)
        .map_err(|e| CsrError::BadSignature(e.to_string()))?;
    let (key_type, key_bits) =
        public_key_kind(&spki_der).map_err(|e| CsrError::Malformed(e.to_string()))?;

    let common_name = cn_of(&req.info.subject)?;
    let (mut dns, mut ips, mut uris) = (Vec::new(), Vec::new(), Vec::new());
    for attr in req.info.attributes.iter() {
        if attr.oid != const_oid::db::rfc5912::ID_EXTENSION_REQ {
            continue;
        }
        for value in attr.values.iter() {
            let exts: Extensions = value
                .decode_as()
                .map_err(|e| CsrError::Malformed(format!("extensionRequest: {e}")))?;
            for ext in exts
                .iter()
                .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)
            {
                let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| CsrError::Malformed(format!("subjectAltName: {e}")))?;
                for name in san.0 {
                    match name {
                        GeneralName::DnsName(d) => dns.push(d.to_string()),
                        GeneralName::UniformResourceIdentifier(u) => uris.push(u.to_string()),
                        GeneralName::IpAddress(o) => ips.push(ip_from_octets(o.as_bytes())?),
                        GeneralName::Rfc822Name(_) => {
                            return Err(CsrError::UnsupportedSan("email"))
                        }
                        GeneralName::OtherName(_) => {
                            return Err(CsrError::UnsupportedSan("otherName"))
                        }
                        GeneralName::DirectoryName(_) => {
                            return Err(CsrError::UnsupportedSan("directoryName"))
                        }
                        GeneralName::EdiPartyName(_) => {
                            return Err(CsrError::UnsupportedSan("ediPartyName"))
                        }
                        GeneralName::RegisteredId(_) => {
                            return Err(CsrError::UnsupportedSan("registeredID"))
                        }
                    }
                }
            }
        }
    }
    Ok(VerifiedCsr {
        subject: req.info.subject.clone(),
        spki_der,
        key_type,
        key_bits,
        common_name,
        dns,
        ips,
        uris,
    })
}

fn ip_from_octets(b: &[u8]) -> Result<IpAddr, CsrError> {
    match b.len() {
        4 => Ok(IpAddr::from(
            <[u8; 4]>::try_from(b).map_err(|_| CsrError::Malformed("ip".into()))?,
        )),
        16 => Ok(IpAddr::from(
            <[u8; 16]>::try_from(b).map_err(|_| CsrError::Malformed("ip".into()))?,
        )),
        n => Err(CsrError::Malformed(format!(
            "an IP address SAN of {n} bytes"
        ))),
    }
}

/// The subject's commonName, if it has exactly one.
pub fn cn_of(name: &Name) -> Result<Option<String>, CsrError> {
    let mut found = None;
    for atv in name.iter() {
        if atv.oid == const_oid::db::rfc4519::CN {
            if found.is_some() {
                return Err(CsrError::Malformed("more than one commonName".into()));
            }
            let s = x509_cert::ext::pkix::name::DirectoryString::try_from(&atv.value)
                .map(|d| d.value().into_owned())
                .or_else(|_| {
                    atv.value
                        .decode_as::<der::asn1::Ia5StringRef<'_>>()
                        .map(|s| s.to_string())
                })
                .map_err(|e| CsrError::Malformed(format!("commonName: {e}")))?;
            found = Some(s);
        }
    }
    Ok(found)
}

/// Build a CSR for a key held elsewhere (the token) and have `signer` sign it: subject,
/// public key, and the SANs as an extensionRequest attribute (RFC 2986, RFC 2985 §5.4.2).
/// The result is parsed and verified like any CSR from outside before it is returned.
pub fn build_csr(
    subject: &Name,
    spki_der: &[u8],
    spec: crate::keys::KeySpec,
    dns: &[String],
    ips: &[IpAddr],
    signer: &dyn crate::keys::DigestSigner,
) -> Result<String, super::CaError> {
    use der::asn1::{BitString, Ia5String, SetOfVec};
    use der::Any;
    use x509_cert::attr::Attribute;
    use x509_cert::request::{CertReqInfo, Version};

    let mut sans = Vec::new();
    for d in dns {
        sans.push(GeneralName::DnsName(Ia5String::new(d)?));
    }
    for ip in ips {
        sans.push(GeneralName::from(*ip));
    }
    let mut attributes = SetOfVec::new();
    if !sans.is_empty() {
        let exts: Extensions = vec![super::profile::extension(false, &SubjectAltName(sans))?];
        let mut values = SetOfVec::new();
        values.insert(Any::encode_from(&exts)?)?;
        attributes.insert(Attribute {
            oid: const_oid::db::rfc5912::ID_EXTENSION_REQ,
            values,
        })?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key: spki::SubjectPublicKeyInfoOwned::from_der(spki_der)?,
        attributes,
    };
    let info_der = info.to_der()?;
    let alg = spec.signature_algorithm();
    let signature = super::token_sign(signer, alg, &info_der, super::SignedObject::Csr)?;
    let req = CertReq {
        info,
        algorithm: super::algorithm_identifier(alg),
        signature: BitString::from_bytes(&signature)?,
    };
    let pem = super::pem("CERTIFICATE REQUEST", &req.to_der()?)?;
    // Never hand out a CSR that would not pass our own import.
    parse_and_verify(&pem).map_err(|e| super::CaError::Invalid(e.to_string()))?;
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIGUMEgCAQAwFTETMBEGA1UEAwwKZWQuZXhhbXBsZTAqMAUGAytlcAMhAJLIxbUM
VKb9yqB20bshVdh+lghTYtGTJMDzy8fGRQSJoAAwBQYDK2VwA0EAflOCra9bLZHX
BeZxCwMCjB0BkHPpO8FXgOeBOHOfcK9eOePQv8vvmeXPIiGOped3dtLWY226R9+K
vmrcl4/ADw==
-----END CERTIFICATE REQUEST-----";

    const P521_CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIIBVzCBuQIBADAUMRIwEAYDVQQDDAlwLmV4YW1wbGUwgZswEAYHKoZIzj0CAQYF
K4EEACMDgYYABAE7h64WMz1ZUa8z4kknwui5DUGwduU3PJ1GiZPVIpsNj5cgnQim
KFpGlqcZ5+v4Yhdeea66WNRygoeOAe51Vhm32wDlJ8HpvLDqvIaB/KPaZaMLg5Lh
HBsq8hqU58EAydI/lVjZm8qmwV855euAmBjykhmH+6F9tk+XVvBAeuvYiLpBhKAA
MAoGCCqGSM49BAMCA4GMADCBiAJCARTiZ1HgGtZvUT6o3TMi6KGK+hItgDyhvR1J
B6GDl1CO409NBqKGf0UE0ZFPRA/b8wB3avO0jMrFQ5cphxSuDuT9AkIBxSMb9SVd
G7NU4NZZOQkzypuhpJ4uL/k7VIE0YYpGj8E2KbRxHRr9iw+cV8G8vQxRqQRRwdVZ
B7H6o8Ds24DsRII=
-----END CERTIFICATE REQUEST-----";

    /// A key no role can allow is a policy refusal (422 key_type_not_allowed), not a
    /// broken CSR, even though we cannot check its signature.
    #[test]
    fn keys_we_cannot_certify_are_refused_as_unsupported_keys() {
        for (pem, what) in [(ED25519_CSR, "Ed25519"), (P521_CSR, "1.3.132.0.35")] {
            match parse_and_verify(pem) {
                Err(CsrError::UnsupportedKey(m)) => assert!(m.contains(what), "{m}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }
    use crate::keys::{DigestSigner, KeySpec, SignError, SignatureAlgorithm};

    struct SoftP256(p256::ecdsa::SigningKey);

    impl DigestSigner for SoftP256 {
        fn sign_digest(&self, _: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, SignError> {
            use p256::ecdsa::signature::hazmat::PrehashSigner;
            let sig: p256::ecdsa::Signature = self
                .0
                .sign_prehash(digest)
                .map_err(|e| SignError::Failed(e.to_string()))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
    }

    fn csr_der() -> Vec<u8> {
        use p256::pkcs8::EncodePublicKey;
        let sk = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap();
        let spki = sk.verifying_key().to_public_key_der().unwrap();
        let pem = build_csr(
            &crate::ca::common_name("a.internal").unwrap(),
            spki.as_bytes(),
            KeySpec::EcP256,
            &["a.internal".to_string()],
            &[],
            &SoftP256(sk),
        )
        .unwrap();
        der::pem::decode_vec(pem.as_bytes()).unwrap().1
    }

    #[test]
    fn both_labels_are_read() {
        let der = csr_der();
        for label in ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"] {
            let v = parse_and_verify(&crate::ca::pem(label, &der).unwrap()).unwrap();
            assert_eq!(v.dns, vec!["a.internal"]);
        }
        let e = parse_and_verify(&crate::ca::pem("CERTIFICATE", &der).unwrap()).unwrap_err();
        assert!(matches!(e, CsrError::Malformed(_)), "{e:?}");
    }

    /// Found by the `csr` fuzz target: der's `from_pem` ignored bytes after the CSR, so a
    /// CSR with trailing garbage was accepted.
    #[test]
    fn bytes_after_the_csr_are_refused() {
        let mut der = csr_der();
        der.extend_from_slice(&[0xff, 0xff, 0xff, 0x07]);
        let e =
            parse_and_verify(&crate::ca::pem("CERTIFICATE REQUEST", &der).unwrap()).unwrap_err();
        assert!(matches!(e, CsrError::Malformed(_)), "{e:?}");
    }
}
