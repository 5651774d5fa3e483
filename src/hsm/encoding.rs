//! Byte-level conversions between what a PKCS#11 token speaks and what X.509 needs.
//!
//! Pure functions, no token access, so they can be tested against known vectors: ECDSA raw
//! `r‖s` to DER, the PKCS#1 v1.5 `DigestInfo`, and public keys read from token attributes
//! turned into a `SubjectPublicKeyInfo`.

use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1};
use der::asn1::{BitString, UintRef};
use der::{Any, Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::keys::{KeySpec, SignatureAlgorithm};

/// Errors in converting token output. Each one means the token answered something we
/// cannot turn into a valid X.509 structure, which we treat as a token fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodingError {
    #[error("digest is {got} bytes, {alg:?} needs {want}")]
    DigestLength {
        alg: SignatureAlgorithm,
        got: usize,
        want: usize,
    },
    #[error("ECDSA signature from the token is {0} bytes, not a valid r||s")]
    RawSignature(usize),
    #[error("EC point from the token is malformed ({0} bytes)")]
    EcPoint(usize),
    #[error("DER encoding failed: {0}")]
    Der(String),
}

impl From<der::Error> for EncodingError {
    fn from(e: der::Error) -> Self {
        EncodingError::Der(e.to_string())
    }
}

/// DER prefix of `DigestInfo { sha256, NULL }` before the 32 digest bytes (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Refuse a digest whose length doesn't match its algorithm before it reaches the token,
/// as Boulder's PKCS#11 helper does: a short digest would be signed without complaint.
pub fn check_digest(alg: SignatureAlgorithm, digest: &[u8]) -> Result<(), EncodingError> {
    if digest.len() != alg.digest_len() {
        return Err(EncodingError::DigestLength {
            alg,
            got: digest.len(),
            want: alg.digest_len(),
        });
    }
    Ok(())
}

/// The data `CKM_RSA_PKCS` signs for an RSASSA-PKCS1-v1_5 SHA-256 signature.
pub fn rsa_sha256_digest_info(digest: &[u8]) -> Result<Vec<u8>, EncodingError> {
    check_digest(SignatureAlgorithm::RsaPkcs1Sha256, digest)?;
    let mut out = Vec::with_capacity(SHA256_DIGEST_INFO_PREFIX.len() + digest.len());
    out.extend_from_slice(&SHA256_DIGEST_INFO_PREFIX);
    out.extend_from_slice(digest);
    Ok(out)
}

/// `CKM_ECDSA` returns `r‖s` as two fixed-width big-endian integers; X.509 carries
/// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3).
/// The curve's own type does the conversion so that out-of-range scalars are refused.
pub fn ecdsa_raw_to_der(alg: SignatureAlgorithm, raw: &[u8]) -> Result<Vec<u8>, EncodingError> {
    match alg {
        SignatureAlgorithm::EcdsaSha256 => {
            let sig = p256::ecdsa::Signature::from_slice(raw)
                .map_err(|_| EncodingError::RawSignature(raw.len()))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        SignatureAlgorithm::EcdsaSha384 => {
            let sig = p384::ecdsa::Signature::from_slice(raw)
                .map_err(|_| EncodingError::RawSignature(raw.len()))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        SignatureAlgorithm::RsaPkcs1Sha256 => Err(EncodingError::RawSignature(raw.len())),
    }
}

/// `CKA_EC_POINT` is specified as a DER OCTET STRING around the point, but some tokens
/// return the bare point. Tell them apart by length: a bare uncompressed point is exactly
/// 1 + 2·field bytes; "try DER first" misparses about one point in 256.
pub fn unwrap_ec_point(spec: KeySpec, attr: &[u8]) -> Result<Vec<u8>, EncodingError> {
    let field = match spec {
        KeySpec::EcP256 => 32,
        KeySpec::EcP384 => 48,
        _ => return Err(EncodingError::EcPoint(attr.len())),
    };
    let bare = 1 + 2 * field;
    let point = if attr.len() == bare {
        attr.to_vec()
    } else {
        der::asn1::OctetString::from_der(attr)
            .map_err(|_| EncodingError::EcPoint(attr.len()))?
            .as_bytes()
            .to_vec()
    };
    if point.len() != bare || point.first() != Some(&0x04) {
        return Err(EncodingError::EcPoint(attr.len()));
    }
    Ok(point)
}

/// SubjectPublicKeyInfo for an uncompressed EC point on the key's named curve (RFC 5480).
pub fn ec_spki(spec: KeySpec, point: &[u8]) -> Result<Vec<u8>, EncodingError> {
    let curve = match spec {
        KeySpec::EcP256 => SECP_256_R_1,
        KeySpec::EcP384 => SECP_384_R_1,
        _ => return Err(EncodingError::EcPoint(point.len())),
    };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ID_EC_PUBLIC_KEY,
            parameters: Some(Any::from(curve)),
        },
        subject_public_key: BitString::from_bytes(point)?,
    };
    Ok(spki.to_der()?)
}

#[derive(Sequence)]
struct RsaPublicKeyDer<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// SubjectPublicKeyInfo for an RSA key from its modulus and public exponent (RFC 3279 §2.3.1).
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, EncodingError> {
    let key = RsaPublicKeyDer {
        modulus: UintRef::new(modulus)?,
        public_exponent: UintRef::new(exponent)?,
    }
    .to_der()?;
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        subject_public_key: BitString::from_bytes(&key)?,
    };
    Ok(spki.to_der()?)
}

/// DER of a named curve's OID, the value of `CKA_EC_PARAMS`.
pub fn ec_params(spec: KeySpec) -> Result<Vec<u8>, EncodingError> {
    match spec {
        KeySpec::EcP256 => Ok(SECP_256_R_1.to_der()?),
        KeySpec::EcP384 => Ok(SECP_384_R_1.to_der()?),
        _ => Err(EncodingError::Der("not an EC key".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    #[test]
    fn digest_info_matches_rfc8017_sha256_prefix() {
        let digest = [0xabu8; 32];
        let di = rsa_sha256_digest_info(&digest).unwrap();
        assert_eq!(
            &di[..19],
            unhex("3031300d060960864801650304020105000420").as_slice()
        );
        assert_eq!(&di[19..], &digest);
        assert_eq!(di.len(), 51);
    }

    #[test]
    fn a_digest_of_the_wrong_length_is_refused_before_signing() {
        assert!(rsa_sha256_digest_info(&[0u8; 20]).is_err());
        assert!(check_digest(SignatureAlgorithm::EcdsaSha384, &[0u8; 32]).is_err());
        assert!(check_digest(SignatureAlgorithm::EcdsaSha256, &[0u8; 32]).is_ok());
    }

    #[test]
    fn ecdsa_raw_signature_becomes_der_with_sign_padding() {
        // r has its top bit set (needs a 0x00 pad), s has leading zero bytes (must be stripped).
        let r = unhex("8000000000000000000000000000000000000000000000000000000000000001");
        let s = unhex("0000000000000000000000000000000000000000000000000000000000000102");
        let raw = [r, s].concat();
        let der = ecdsa_raw_to_der(SignatureAlgorithm::EcdsaSha256, &raw).unwrap();
        let want = unhex(
            "3027 0221 00 8000000000000000000000000000000000000000000000000000000000000001 0202 0102",
        );
        assert_eq!(der, want);
    }

    #[test]
    fn ecdsa_der_from_raw_verifies_like_a_software_signature() {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        // Known vector from RFC 6979 A.2.5 (P-256, SHA-256, message "sample").
        let x = unhex("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6");
        let y = unhex("7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299");
        let r = unhex("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716");
        let s = unhex("F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8");
        let point = [vec![4u8], x, y].concat();
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
        let digest = {
            use sha2::Digest;
            sha2::Sha256::digest(b"sample")
        };
        let der = ecdsa_raw_to_der(SignatureAlgorithm::EcdsaSha256, &[r, s].concat()).unwrap();
        let sig = p256::ecdsa::DerSignature::from_bytes(&der).unwrap();
        let sig = p256::ecdsa::Signature::try_from(sig).unwrap();
        vk.verify_prehash(&digest, &sig).unwrap();
    }

    #[test]
    fn a_zero_or_short_raw_signature_is_refused() {
        assert!(ecdsa_raw_to_der(SignatureAlgorithm::EcdsaSha256, &[0u8; 64]).is_err());
        assert!(ecdsa_raw_to_der(SignatureAlgorithm::EcdsaSha256, &[1u8; 63]).is_err());
        assert!(ecdsa_raw_to_der(SignatureAlgorithm::EcdsaSha384, &[1u8; 64]).is_err());
    }

    #[test]
    fn ec_point_is_unwrapped_by_length_not_by_trial_parse() {
        let mut bare = vec![0x04u8];
        // A bare point whose x starts like a DER OCTET STRING header must stay bare.
        bare.extend_from_slice(&[0x04, 0x41]);
        bare.extend(std::iter::repeat_n(7u8, 62));
        assert_eq!(unwrap_ec_point(KeySpec::EcP256, &bare).unwrap(), bare);
        let wrapped = [vec![0x04, 0x41], bare.clone()].concat();
        assert_eq!(unwrap_ec_point(KeySpec::EcP256, &wrapped).unwrap(), bare);
        assert!(unwrap_ec_point(KeySpec::EcP384, &wrapped).is_err());
    }
}
