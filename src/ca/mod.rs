//! The signing core: builds TBS certificates, hashes them, has the issuer's key sign the
//! digest, assembles, and verifies the result in software before anyone sees it.
//!
//! It knows nothing of HTTP, the store or PKCS#11: an issuer is a name, a public key and a
//! [`DigestSigner`].

pub mod crl;
pub mod csr;
pub mod leaf_key;
pub mod profile;
pub mod verify;

use std::time::SystemTime;

use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, SHA_256_WITH_RSA_ENCRYPTION};
use der::asn1::{BitString, Utf8StringRef};
use der::{Any, Decode, Encode};
use sha2::{Digest, Sha256, Sha384};
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SubjectPublicKeyInfoOwned,
};
use time::OffsetDateTime;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use crate::keys::{DigestSigner, KeySpec, SignError, SignatureAlgorithm};
use crate::types::{Serial, SubjectFields};
use verify::{verify_signature, VerifyError};

/// Errors of the signing core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("DER encoding: {0}")]
    Der(#[from] der::Error),
    #[error("certificate builder: {0}")]
    Builder(String),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("the signature from the token did not verify: {0}")]
    BadSignature(VerifyError),
    #[error("profile check failed: {0}")]
    Profile(&'static str),
    #[error("{0}")]
    Invalid(String),
}

impl From<x509_cert::builder::Error> for CaError {
    fn from(e: x509_cert::builder::Error) -> Self {
        CaError::Builder(e.to_string())
    }
}

/// Who signs: the issuing CA's name, public key, key identifier and signer.
pub struct Issuer<'a> {
    pub name: Name,
    pub spki_der: Vec<u8>,
    pub key_id: Vec<u8>,
    pub spec: KeySpec,
    /// The issuer certificate's notAfter; nothing it signs may outlive it.
    pub not_after: Option<OffsetDateTime>,
    pub signer: &'a dyn DigestSigner,
}

impl<'a> Issuer<'a> {
    /// An issuer described by its own certificate.
    pub fn from_certificate(
        cert_der: &[u8],
        spec: KeySpec,
        signer: &'a dyn DigestSigner,
    ) -> Result<Self, CaError> {
        let cert = Certificate::from_der(cert_der)?;
        let tbs = cert.tbs_certificate();
        let spki_der = tbs.subject_public_key_info().to_der()?;
        let key_id = match tbs.get_extension::<SubjectKeyIdentifier>()? {
            Some((_, ski)) => ski.0.as_bytes().to_vec(),
            None => profile::key_identifier(&spki_der)?,
        };
        let not_after = to_offset(tbs.validity().not_after)?;
        Ok(Issuer {
            name: tbs.subject().clone(),
            spki_der,
            key_id,
            spec,
            not_after: Some(not_after),
            signer,
        })
    }
}

/// Everything about a certificate except who signs it.
pub struct CertificateTemplate {
    pub subject: Name,
    pub spki_der: Vec<u8>,
    pub serial: Serial,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub extensions: Vec<Extension>,
    /// True for a self-signed certificate (issuer name = subject, no AKI required).
    pub self_signed: bool,
}

/// A certificate that was signed, assembled and verified.
#[derive(Debug, Clone)]
pub struct SignedCertificate {
    pub der: Vec<u8>,
    pub serial: Serial,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub fingerprint_sha256: [u8; 32],
}

/// A subject name holding only a commonName, as a UTF8String (RFC 5280 §4.1.2.6).
pub fn common_name(cn: &str) -> Result<Name, CaError> {
    subject_name(Some(cn), &SubjectFields::default())
}

/// A subject name: C, ST, L, O, OU, then CN, one attribute per RDN. Country is a
/// PrintableString (X.520); the rest are UTF8Strings.
pub fn subject_name(cn: Option<&str>, fields: &SubjectFields) -> Result<Name, CaError> {
    use const_oid::db::rfc4519::{C, CN, L, O, OU, ST};
    let mut seq = RdnSequence::default();
    let mut push = |oid, value: Any| -> Result<(), CaError> {
        let mut rdn = RelativeDistinguishedName::default();
        rdn.insert(AttributeTypeAndValue { oid, value })?;
        seq.push(rdn);
        Ok(())
    };
    for c in &fields.country {
        push(C, Any::from(der::asn1::PrintableStringRef::new(c)?))?;
    }
    for (oid, values) in [
        (ST, &fields.province),
        (L, &fields.locality),
        (O, &fields.organization),
        (OU, &fields.ou),
    ] {
        for v in values {
            push(oid, Any::from(Utf8StringRef::new(v)?))?;
        }
    }
    if let Some(cn) = cn {
        push(CN, Any::from(Utf8StringRef::new(cn)?))?;
    }
    // `Name` has no public constructor from an RdnSequence; the DER is the same.
    Ok(Name::from_der(&seq.to_der()?)?)
}

fn to_time(t: OffsetDateTime) -> Result<Time, CaError> {
    Ok(Time::try_from(SystemTime::from(t))?)
}

pub(crate) fn to_offset(t: Time) -> Result<OffsetDateTime, CaError> {
    let secs = i64::try_from(t.to_unix_duration().as_secs())
        .map_err(|_| CaError::Invalid("time out of range".into()))?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| CaError::Invalid(e.to_string()))
}

pub(crate) fn algorithm_identifier(alg: SignatureAlgorithm) -> AlgorithmIdentifierOwned {
    match alg {
        // RFC 5758 §3.2: the parameters field MUST be absent for ECDSA.
        SignatureAlgorithm::EcdsaSha256 => AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA_256,
            parameters: None,
        },
        SignatureAlgorithm::EcdsaSha384 => AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA_384,
            parameters: None,
        },
        // RFC 4055 §5: NULL parameters for sha256WithRSAEncryption.
        SignatureAlgorithm::RsaPkcs1Sha256 => AlgorithmIdentifierOwned {
            oid: SHA_256_WITH_RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
    }
}

/// The digest the token signs for `alg`.
pub fn digest(alg: SignatureAlgorithm, data: &[u8]) -> Vec<u8> {
    match alg {
        SignatureAlgorithm::EcdsaSha256 | SignatureAlgorithm::RsaPkcs1Sha256 => {
            Sha256::digest(data).to_vec()
        }
        SignatureAlgorithm::EcdsaSha384 => Sha384::digest(data).to_vec(),
    }
}

/// What a token signature is for: the `object` label of the token metrics.
#[derive(Debug, Clone, Copy)]
pub enum SignedObject {
    Certificate,
    Crl,
    Csr,
}

impl SignedObject {
    fn label(self) -> &'static str {
        match self {
            SignedObject::Certificate => "certificate",
            SignedObject::Crl => "crl",
            SignedObject::Csr => "csr",
        }
    }
}

fn algorithm_label(alg: SignatureAlgorithm) -> &'static str {
    match alg {
        SignatureAlgorithm::EcdsaSha256 => "ecdsa_sha256",
        SignatureAlgorithm::EcdsaSha384 => "ecdsa_sha384",
        SignatureAlgorithm::RsaPkcs1Sha256 => "rsa_pkcs1_sha256",
    }
}

/// Hash `tbs` and have the token sign the digest, timing the token's part: the latency
/// and errors of the key token are what `scaivault_token_sign_*` report.
pub(crate) fn token_sign(
    signer: &dyn DigestSigner,
    alg: SignatureAlgorithm,
    tbs: &[u8],
    object: SignedObject,
) -> Result<Vec<u8>, SignError> {
    let digest = digest(alg, tbs);
    let started = std::time::Instant::now();
    let result = signer.sign_digest(alg, &digest);
    let labels = [
        ("object", object.label()),
        ("algorithm", algorithm_label(alg)),
    ];
    match &result {
        Ok(_) => metrics::histogram!("scaivault_token_sign_duration_seconds", &labels)
            .record(started.elapsed().as_secs_f64()),
        Err(_) => metrics::counter!("scaivault_token_sign_errors_total", &labels).increment(1),
    }
    result
}

/// A builder profile with everything decided up front by our own profile functions.
struct FixedProfile {
    subject: Name,
    issuer: Name,
    extensions: Vec<Extension>,
}

impl BuilderProfile for FixedProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        _spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}

/// Lets x509-cert's builder ask "what is the issuer's key and algorithm" without a
/// software key: the real signing happens between `finalize` and `assemble`.
#[derive(Clone)]
struct IssuerKey {
    spki_der: Vec<u8>,
    alg: AlgorithmIdentifierOwned,
}

impl EncodePublicKey for IssuerKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::from_der(&self.spki_der)?)
    }
}

impl signature::Keypair for IssuerKey {
    type VerifyingKey = IssuerKey;
    fn verifying_key(&self) -> IssuerKey {
        self.clone()
    }
}

impl DynSignatureAlgorithmIdentifier for IssuerKey {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.alg.clone())
    }
}

/// Sign `template` with `issuer`'s key: build the TBS once, hash it, have the token sign
/// the digest, assemble, then check the result before returning it.
pub fn sign_certificate(
    template: CertificateTemplate,
    issuer: &Issuer<'_>,
) -> Result<SignedCertificate, CaError> {
    if let Some(limit) = issuer.not_after {
        if template.not_after > limit {
            return Err(CaError::Invalid(
                "the certificate would outlive its issuer".into(),
            ));
        }
    }
    let alg = issuer.spec.signature_algorithm();
    let spki = SubjectPublicKeyInfoOwned::from_der(&template.spki_der)?;
    let serial = SerialNumber::new(template.serial.as_bytes())?;
    let validity = Validity::new(to_time(template.not_before)?, to_time(template.not_after)?);
    let profile = FixedProfile {
        subject: template.subject,
        issuer: issuer.name.clone(),
        extensions: template.extensions,
    };
    let key = IssuerKey {
        spki_der: issuer.spki_der.clone(),
        alg: algorithm_identifier(alg),
    };
    let mut builder = CertificateBuilder::new(profile, serial, validity, spki)?;
    // `finalize` may be called once only: it appends the profile's extensions each time.
    let tbs_der = builder.finalize(&key)?;
    let signature = token_sign(issuer.signer, alg, &tbs_der, SignedObject::Certificate)?;
    verify_signature(&issuer.spki_der, alg, &tbs_der, &signature).map_err(CaError::BadSignature)?;
    let cert = builder.assemble(BitString::from_bytes(&signature)?, &key)?;
    let der = cert.to_der()?;

    // What we hand out must be exactly what was signed.
    if cert.tbs_certificate().to_der()? != tbs_der {
        return Err(CaError::Profile(
            "assembled TBS differs from the signed TBS",
        ));
    }
    profile::check_issued(&cert, template.self_signed)?;
    Ok(SignedCertificate {
        fingerprint_sha256: Sha256::digest(&der).into(),
        der,
        serial: template.serial,
        not_before: template.not_before,
        not_after: template.not_after,
    })
}

/// Encode DER as PEM with the given label.
pub fn pem(label: &str, der: &[u8]) -> Result<String, CaError> {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der)
        .map_err(|e| CaError::Invalid(format!("PEM encoding: {e}")))
}

/// The certificates in a PEM text, strictly: every block labelled CERTIFICATE, each
/// block exactly one certificate in DER. x509-cert's `from_pem` and `load_pem_chain` decode
/// the certificate and ignore bytes after it inside the block, so a certificate with
/// something smuggled behind it would be accepted and stored; the `csr` fuzz target found
/// the same for CSRs. Whitespace between blocks is allowed, any other text is not.
pub fn certificates_from_pem(text: &str) -> Result<Vec<Certificate>, String> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    for block in text.split_inclusive(END).map(str::trim) {
        if block.is_empty() {
            continue;
        }
        let n = out.len() + 1;
        // Said plainly: the PEM decoder reports other text as a "preamble" error.
        if !block.starts_with("-----BEGIN ") {
            return Err(format!(
                "PEM block {n}: expected \"-----BEGIN CERTIFICATE-----\", found other text"
            ));
        }
        let (label, der) = decode_pem(block).map_err(|e| format!("PEM block {n}: {e}"))?;
        if label != "CERTIFICATE" {
            return Err(format!(
                "PEM block {n} is labelled {label:?}, not CERTIFICATE"
            ));
        }
        let cert = Certificate::from_der(&der).map_err(|e| format!("certificate {n}: {e}"))?;
        // x509-cert accepts some non-DER forms (an explicit v1 version, found by the
        // `pem_bundle` fuzz target) and re-encodes them differently: what we store and
        // hand out would not be the certificate that was signed.
        if cert.to_der().ok().as_deref() != Some(der.as_slice()) {
            return Err(format!(
                "certificate {n} is not in DER (its encoding is not the distinguished one)"
            ));
        }
        out.push(cert);
    }
    if out.is_empty() {
        return Err("no PEM CERTIFICATE block".into());
    }
    Ok(out)
}

/// One PEM block, as RFC 7468's strict form or with its base64 wrapped at another
/// width: the PEM decoder wants 64-column lines, while OpenSSL, Java (76 columns) and
/// tools that write one long line are read by everyone else. Blocks with headers
/// (`Proc-Type:` of an encrypted key) are left to the decoder to refuse.
pub fn decode_pem(block: &str) -> Result<(String, Vec<u8>), der::pem::Error> {
    let strict = der::pem::decode_vec(block.trim().as_bytes());
    if strict.is_ok() {
        return strict.map(|(label, der)| (label.to_string(), der));
    }
    match rewrap_pem(block) {
        Some(rewrapped) => {
            der::pem::decode_vec(rewrapped.as_bytes()).map(|(label, der)| (label.to_string(), der))
        }
        None => strict.map(|(label, der)| (label.to_string(), der)),
    }
}

/// The block with its base64 body re-wrapped at 64 columns, or None when it is not
/// one BEGIN line, base64 lines and one END line.
fn rewrap_pem(block: &str) -> Option<String> {
    let mut lines = block.trim().lines().map(str::trim);
    let begin = lines
        .next()
        .filter(|l| l.starts_with("-----BEGIN ") && l.ends_with("-----"))?;
    let mut body = String::new();
    let mut end = None;
    for line in lines {
        if end.is_some() {
            return None;
        }
        if line.starts_with("-----END ") {
            end = Some(line);
        } else if line.contains(':') {
            return None;
        } else {
            body.extend(line.chars().filter(|c| !c.is_whitespace()));
        }
    }
    let end = end?;
    let mut out = String::with_capacity(body.len() + body.len() / 64 + begin.len() + end.len() + 4);
    out.push_str(begin);
    out.push('\n');
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).ok()?);
        out.push('\n');
    }
    out.push_str(end);
    out.push('\n');
    Some(out)
}

/// Exactly one certificate from PEM, as strictly as `certificates_from_pem`.
pub fn certificate_from_pem(text: &str) -> Result<Certificate, String> {
    let mut certs = certificates_from_pem(text)?;
    match (certs.pop(), certs.is_empty()) {
        (Some(cert), true) => Ok(cert),
        _ => Err(format!(
            "{} certificates where one was expected",
            certs.len() + 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A software signer, for unit tests of this module only.
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

    /// A signer that returns a well-formed signature by the wrong key.
    struct WrongKey(SoftP256);

    impl DigestSigner for WrongKey {
        fn sign_digest(&self, a: SignatureAlgorithm, d: &[u8]) -> Result<Vec<u8>, SignError> {
            self.0.sign_digest(a, d)
        }
    }

    fn soft_key() -> (SoftP256, Vec<u8>) {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        seed[0] = 1;
        let sk = p256::ecdsa::SigningKey::from_slice(&seed).unwrap();
        let spki = sk
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        (SoftP256(sk), spki)
    }

    fn root_template(spki: &[u8], not_after_days: i64) -> CertificateTemplate {
        let ski = profile::key_identifier(spki).unwrap();
        let now = crate::types::now();
        CertificateTemplate {
            subject: common_name("Test Root").unwrap(),
            spki_der: spki.to_vec(),
            serial: Serial::random(),
            not_before: now,
            not_after: now + time::Duration::days(not_after_days),
            extensions: profile::ca_extensions(&ski, None, None).unwrap(),
            self_signed: true,
        }
    }

    #[test]
    fn a_self_signed_root_verifies_and_carries_the_ca_profile() {
        let (signer, spki) = soft_key();
        let issuer = Issuer {
            name: common_name("Test Root").unwrap(),
            key_id: profile::key_identifier(&spki).unwrap(),
            spki_der: spki.clone(),
            spec: KeySpec::EcP256,
            not_after: None,
            signer: &signer,
        };
        let cert = sign_certificate(root_template(&spki, 10), &issuer).unwrap();
        let parsed = Certificate::from_der(&cert.der).unwrap();
        let bc = parsed
            .tbs_certificate()
            .get_extension::<x509_cert::ext::pkix::BasicConstraints>()
            .unwrap()
            .unwrap();
        assert!(bc.0 && bc.1.ca);
    }

    fn test_root_der() -> Vec<u8> {
        let (signer, spki) = soft_key();
        let issuer = Issuer {
            name: common_name("Test Root").unwrap(),
            key_id: profile::key_identifier(&spki).unwrap(),
            spki_der: spki.clone(),
            spec: KeySpec::EcP256,
            not_after: None,
            signer: &signer,
        };
        sign_certificate(root_template(&spki, 10), &issuer)
            .unwrap()
            .der
    }

    /// From the `pem_bundle` fuzz target: a certificate with an explicit v1 version.
    fn pem_bundle_crash_v1() -> Vec<u8> {
        hex::decode(
            [
                "308201b93082015fa003020100020203f6300a06082a8648ce3d0403023010310e300c0603554403",
                "0c05496e742032301e170d3234303130393030303030305a170d3334303130313030303030305a30",
                "183116301406035504030c0d612e6578616d9092652e636f6d3059301306072a8648ce3d02010608",
                "2a8648ce3d03010703420004356870594e16a411a0a5bacaa49334d3c69595c7c44a217e9f681360",
                "2773ae767884ab1ec219634411106aaf3e73f0d0a94099916eac743a931b80ef1f745620a381a030",
                "819d301d0603551d0e041684149c3a4e77c4eedeadcb222c1b10a4ccd6291d0ba5301f0603551d23",
                "0418301680142ac46d81af20cdfd35986540ff2faa19387613db300c0603551d130101ff04023100",
                "300e0603551d0f0101ff04040b020780301e0603551d1104173015820d612e6578616d706c3b2e63",
                "6f6d87040a000001301d0603551d250416301406082b0601050507030106082b0601050507030230",
                "0a06082a8648ce3d0403020348003045022100c95be6de38fc657ce1ca6f8ac6c922daa1b4514846",
                "4a392100000052ca5214300220de611ac8927c41cd9961479b9033045c3066e538d21c08d1ca5ccc",
                "f43fe7189d",
            ]
            .concat(),
        )
        .unwrap()
    }

    #[test]
    fn pem_certificates_are_read_strictly() {
        let der = test_root_der();
        let one = pem("CERTIFICATE", &der).unwrap();
        assert_eq!(certificate_from_pem(&one).unwrap().to_der().unwrap(), der);
        let two = format!("{one}\n  \n{one}");
        assert_eq!(certificates_from_pem(&two).unwrap().len(), 2);
        assert!(
            certificate_from_pem(&two).is_err(),
            "two where one is expected"
        );

        // Bytes behind the certificate inside its block: x509-cert's from_pem accepts this.
        let mut padded = der.clone();
        padded.extend_from_slice(b"smuggled");
        let padded = pem("CERTIFICATE", &padded).unwrap();
        assert!(<Certificate as der::DecodePem>::from_pem(padded.as_bytes()).is_ok());
        let e = certificate_from_pem(&padded).unwrap_err();
        assert!(e.contains("certificate 1"), "{e}");
        assert!(certificates_from_pem(&format!("{one}{padded}")).is_err());

        // An explicit v1 version (DEFAULT, so DER omits it): parsed, but not DER.
        let v1 = pem_bundle_crash_v1();
        assert!(Certificate::from_der(&v1).is_ok());
        let e = certificate_from_pem(&pem("CERTIFICATE", &v1).unwrap()).unwrap_err();
        assert!(e.contains("not in DER"), "{e}");

        let key = pem("PRIVATE KEY", &der).unwrap();
        assert!(certificate_from_pem(&key)
            .unwrap_err()
            .contains("PRIVATE KEY"));
        assert!(certificate_from_pem("").is_err());
        assert!(certificate_from_pem("garbage").is_err());
        assert!(certificates_from_pem(&format!("{one}garbage")).is_err());
        let unterminated = one.replace("-----END CERTIFICATE-----", "");
        assert!(certificate_from_pem(&unterminated).is_err());
        assert!(certificate_from_pem("garbage")
            .unwrap_err()
            .contains("expected \"-----BEGIN CERTIFICATE-----\""));
    }

    /// OpenSSL reads base64 wrapped at any width; so do we (one long line, Java's 76).
    #[test]
    fn pem_wrapped_at_another_width_is_read() {
        use base64::Engine;
        let der = test_root_der();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let one_line = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        assert_eq!(
            certificate_from_pem(&one_line).unwrap().to_der().unwrap(),
            der
        );
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let wide = format!(
            "-----BEGIN CERTIFICATE-----\r\n{}\r\n-----END CERTIFICATE-----",
            lines.join("\r\n")
        );
        assert_eq!(certificate_from_pem(&wide).unwrap().to_der().unwrap(), der);
        // Headers (an encrypted key's) and text after the END line stay refused.
        let headers = one_line.replace("-----\n", "-----\nProc-Type: 4,ENCRYPTED\n");
        assert!(decode_pem(&headers).is_err());
        assert!(decode_pem(&format!("{one_line}junk")).is_err());
        assert!(decode_pem("-----BEGIN X-----\n\u{e9}\u{e9}\n-----END X-----").is_err());
    }

    #[test]
    fn a_signature_by_the_wrong_key_is_never_returned() {
        let (_, spki) = soft_key();
        let (other, _) = soft_key();
        let wrong = WrongKey(other);
        let issuer = Issuer {
            name: common_name("Test Root").unwrap(),
            key_id: profile::key_identifier(&spki).unwrap(),
            spki_der: spki.clone(),
            spec: KeySpec::EcP256,
            not_after: None,
            signer: &wrong,
        };
        let err = sign_certificate(root_template(&spki, 10), &issuer).unwrap_err();
        assert!(matches!(err, CaError::BadSignature(_)));
    }

    #[test]
    fn a_certificate_may_not_outlive_its_issuer() {
        let (signer, spki) = soft_key();
        let issuer = Issuer {
            name: common_name("Test Root").unwrap(),
            key_id: profile::key_identifier(&spki).unwrap(),
            spki_der: spki.clone(),
            spec: KeySpec::EcP256,
            not_after: Some(crate::types::now() + time::Duration::days(1)),
            signer: &signer,
        };
        assert!(sign_certificate(root_template(&spki, 10), &issuer).is_err());
    }
}
