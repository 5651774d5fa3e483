//! Software signature verification, independent of the token that produced the signature.
//!
//! The signing core runs every signature it gets from the token through here before the
//! result is stored or returned (a token fault must never become a bad certificate).

use p256::pkcs8::DecodePublicKey;
use signature::Verifier;

use crate::keys::SignatureAlgorithm;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the public key does not fit the signature algorithm: {0}")]
    Key(String),
    #[error("the signature is malformed")]
    Malformed,
    #[error("the signature does not verify")]
    Invalid,
}

/// The key bits of a SubjectPublicKeyInfo: an EC point, or an RSAPublicKey in DER —
/// the form `ring` takes.
fn key_bits(spki_der: &[u8]) -> Result<&[u8], VerifyError> {
    use der::Decode;
    spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map(|s| s.subject_public_key.raw_bytes())
        .map_err(|e| VerifyError::Key(e.to_string()))
}

/// Verify with one of `ring`'s algorithms. `ring` is about three times faster than the
/// RustCrypto verifiers here (P-256: ~70 µs against ~220 µs, measured on the 2-core CI
/// machine; see BENCHMARKS.md), and issuance verifies two signatures per certificate.
fn ring_verify(
    alg: &'static dyn ring::signature::VerificationAlgorithm,
    spki_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    ring::signature::UnparsedPublicKey::new(alg, key_bits(spki_der)?)
        .verify(message, signature)
        .map_err(|_| VerifyError::Invalid)
}

/// Verify `signature` over `message` with the key in `spki_der`.
pub fn verify_signature(
    spki_der: &[u8],
    alg: SignatureAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    use ring::signature as r;
    match alg {
        SignatureAlgorithm::EcdsaSha256 => {
            ring_verify(&r::ECDSA_P256_SHA256_ASN1, spki_der, message, signature)
        }
        SignatureAlgorithm::EcdsaSha384 => {
            ring_verify(&r::ECDSA_P384_SHA384_ASN1, spki_der, message, signature)
        }
        SignatureAlgorithm::RsaPkcs1Sha256 => {
            ring_verify(&r::RSA_PKCS1_2048_8192_SHA256, spki_der, message, signature)
        }
    }
}

/// Which curve an EC SubjectPublicKeyInfo names, if it is one we know.
fn ec_curve(spki_der: &[u8]) -> Option<u32> {
    use der::Decode;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    if spki.algorithm.oid != const_oid::db::rfc5912::ID_EC_PUBLIC_KEY {
        return None;
    }
    let curve = spki
        .algorithm
        .parameters?
        .decode_as::<const_oid::ObjectIdentifier>()
        .ok()?;
    match curve {
        c if c == const_oid::db::rfc5912::SECP_256_R_1 => Some(256),
        c if c == const_oid::db::rfc5912::SECP_384_R_1 => Some(384),
        _ => None,
    }
}

/// Verify a signature made by someone else (a CSR's self-signature, an imported chain),
/// choosing the algorithm from its AlgorithmIdentifier. Anything we don't know is refused.
pub fn verify_by_algorithm(
    spki_der: &[u8],
    alg: &spki::AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    use const_oid::db::rfc5912 as oids;
    use sha2::{Digest, Sha256, Sha384, Sha512};

    let unsupported = || VerifyError::Key(format!("unsupported signature algorithm {}", alg.oid));

    // Fast path: the combinations `ring` implements. A failed verification here is final;
    // only combinations `ring` lacks (ECDSA with SHA-512, RSA below 2048 bits, PSS with a
    // salt other than the hash length) go on to the RustCrypto verifiers below.
    {
        use ring::signature as r;
        let ring_alg: Option<&'static dyn r::VerificationAlgorithm> =
            match (alg.oid, ec_curve(spki_der)) {
                (o, Some(256)) if o == oids::ECDSA_WITH_SHA_256 => Some(&r::ECDSA_P256_SHA256_ASN1),
                (o, Some(256)) if o == oids::ECDSA_WITH_SHA_384 => Some(&r::ECDSA_P256_SHA384_ASN1),
                (o, Some(384)) if o == oids::ECDSA_WITH_SHA_256 => Some(&r::ECDSA_P384_SHA256_ASN1),
                (o, Some(384)) if o == oids::ECDSA_WITH_SHA_384 => Some(&r::ECDSA_P384_SHA384_ASN1),
                _ => None,
            };
        // Parsing an RSA key is not free: only when the algorithm says RSA.
        let rsa_ok = ring_alg.is_none()
            && public_key_kind(spki_der)
                .is_ok_and(|(t, bits)| t == crate::keys::KeyType::Rsa && bits >= 2048);
        let ring_rsa: Option<&'static dyn r::VerificationAlgorithm> = match alg.oid {
            o if rsa_ok && o == oids::SHA_256_WITH_RSA_ENCRYPTION => {
                Some(&r::RSA_PKCS1_2048_8192_SHA256)
            }
            o if rsa_ok && o == oids::SHA_384_WITH_RSA_ENCRYPTION => {
                Some(&r::RSA_PKCS1_2048_8192_SHA384)
            }
            o if rsa_ok && o == oids::SHA_512_WITH_RSA_ENCRYPTION => {
                Some(&r::RSA_PKCS1_2048_8192_SHA512)
            }
            _ => None,
        };
        if let Some(a) = ring_alg.or(ring_rsa) {
            return ring_verify(a, spki_der, message, signature);
        }
    }
    let digest = |oid: const_oid::ObjectIdentifier| -> Option<Vec<u8>> {
        Some(match oid {
            o if o == oids::ID_SHA_256 => Sha256::digest(message).to_vec(),
            o if o == oids::ID_SHA_384 => Sha384::digest(message).to_vec(),
            o if o == oids::ID_SHA_512 => Sha512::digest(message).to_vec(),
            _ => return None,
        })
    };
    let ecdsa_hash = match alg.oid {
        o if o == oids::ECDSA_WITH_SHA_256 => Some(oids::ID_SHA_256),
        o if o == oids::ECDSA_WITH_SHA_384 => Some(oids::ID_SHA_384),
        o if o == oids::ECDSA_WITH_SHA_512 => Some(oids::ID_SHA_512),
        _ => None,
    };
    if let Some(h) = ecdsa_hash {
        use signature::hazmat::PrehashVerifier;
        let d = digest(h).ok_or_else(unsupported)?;
        if let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_der(spki_der) {
            let sig = p256::ecdsa::DerSignature::from_bytes(signature)
                .map_err(|_| VerifyError::Malformed)?;
            return vk
                .verify_prehash(&d, &sig)
                .map_err(|_| VerifyError::Invalid);
        }
        let vk = p384::ecdsa::VerifyingKey::from_public_key_der(spki_der)
            .map_err(|e| VerifyError::Key(e.to_string()))?;
        let sig =
            p384::ecdsa::DerSignature::from_bytes(signature).map_err(|_| VerifyError::Malformed)?;
        return vk
            .verify_prehash(&d, &sig)
            .map_err(|_| VerifyError::Invalid);
    }

    let key = || {
        rsa::PublicKey::from_public_key_der(spki_der).map_err(|e| VerifyError::Key(e.to_string()))
    };
    let pkcs1 =
        |sig: &[u8]| rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| VerifyError::Malformed);
    match alg.oid {
        o if o == oids::SHA_256_WITH_RSA_ENCRYPTION => {
            rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key()?)
                .verify(message, &pkcs1(signature)?)
                .map_err(|_| VerifyError::Invalid)
        }
        o if o == oids::SHA_384_WITH_RSA_ENCRYPTION => {
            rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key()?)
                .verify(message, &pkcs1(signature)?)
                .map_err(|_| VerifyError::Invalid)
        }
        o if o == oids::SHA_512_WITH_RSA_ENCRYPTION => {
            rsa::pkcs1v15::VerifyingKey::<Sha512>::new(key()?)
                .verify(message, &pkcs1(signature)?)
                .map_err(|_| VerifyError::Invalid)
        }
        o if o == oids::ID_RSASSA_PSS => verify_pss(key()?, alg, message, signature),
        _ => Err(unsupported()),
    }
}

/// RSASSA-PSS (RFC 4055): the hash and the MGF1 hash must agree; the salt length comes
/// from the parameters.
fn verify_pss(
    key: rsa::PublicKey,
    alg: &spki::AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    use const_oid::db::rfc5912 as oids;
    use der::Encode;
    use sha2::{Sha256, Sha384, Sha512};

    let params_der = alg
        .parameters
        .as_ref()
        .ok_or_else(|| VerifyError::Key("RSASSA-PSS without parameters".into()))?
        .to_der()
        .map_err(|_| VerifyError::Malformed)?;
    let params = rsa::pkcs1::RsaPssParams::<der::Any>::try_from(params_der.as_slice())
        .map_err(|e| VerifyError::Key(format!("RSASSA-PSS parameters: {e}")))?;
    if params.mask_gen.oid != oids::ID_MGF_1
        || params.mask_gen.parameters.as_ref().map(|p| p.oid) != Some(params.hash.oid)
    {
        return Err(VerifyError::Key(
            "RSASSA-PSS MGF must be MGF1 with the same hash".into(),
        ));
    }
    let salt = usize::from(params.salt_len);
    let sig = rsa::pss::Signature::try_from(signature).map_err(|_| VerifyError::Malformed)?;
    let ok = match params.hash.oid {
        o if o == oids::ID_SHA_256 => {
            rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(key, salt).verify(message, &sig)
        }
        o if o == oids::ID_SHA_384 => {
            rsa::pss::VerifyingKey::<Sha384>::new_with_salt_len(key, salt).verify(message, &sig)
        }
        o if o == oids::ID_SHA_512 => {
            rsa::pss::VerifyingKey::<Sha512>::new_with_salt_len(key, salt).verify(message, &sig)
        }
        other => {
            return Err(VerifyError::Key(format!(
                "RSASSA-PSS with unsupported hash {other}"
            )))
        }
    };
    ok.map_err(|_| VerifyError::Invalid)
}

/// A public key's family and size, for policy checks.
pub fn public_key_kind(spki_der: &[u8]) -> Result<(crate::keys::KeyType, u32), VerifyError> {
    use crate::keys::KeyType;
    use rsa::traits::PublicKeyParts;
    if p256::ecdsa::VerifyingKey::from_public_key_der(spki_der).is_ok() {
        return Ok((KeyType::Ec, 256));
    }
    if p384::ecdsa::VerifyingKey::from_public_key_der(spki_der).is_ok() {
        return Ok((KeyType::Ec, 384));
    }
    let rsa = rsa::PublicKey::from_public_key_der(spki_der)
        .map_err(|_| VerifyError::Key("only EC P-256, P-384 and RSA keys are supported".into()))?;
    let bits = rsa.n().bit_width();
    Ok((KeyType::Rsa, bits))
}
