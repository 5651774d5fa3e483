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

/// Verify `signature` over `message` with the key in `spki_der`.
pub fn verify_signature(
    spki_der: &[u8],
    alg: SignatureAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    match alg {
        SignatureAlgorithm::EcdsaSha256 => {
            let vk = p256::ecdsa::VerifyingKey::from_public_key_der(spki_der)
                .map_err(|e| VerifyError::Key(e.to_string()))?;
            let sig = p256::ecdsa::DerSignature::from_bytes(signature)
                .map_err(|_| VerifyError::Malformed)?;
            vk.verify(message, &sig).map_err(|_| VerifyError::Invalid)
        }
        SignatureAlgorithm::EcdsaSha384 => {
            let vk = p384::ecdsa::VerifyingKey::from_public_key_der(spki_der)
                .map_err(|e| VerifyError::Key(e.to_string()))?;
            let sig = p384::ecdsa::DerSignature::from_bytes(signature)
                .map_err(|_| VerifyError::Malformed)?;
            vk.verify(message, &sig).map_err(|_| VerifyError::Invalid)
        }
        SignatureAlgorithm::RsaPkcs1Sha256 => {
            let pk = rsa::PublicKey::from_public_key_der(spki_der)
                .map_err(|e| VerifyError::Key(e.to_string()))?;
            let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk);
            let sig = rsa::pkcs1v15::Signature::try_from(signature)
                .map_err(|_| VerifyError::Malformed)?;
            vk.verify(message, &sig).map_err(|_| VerifyError::Invalid)
        }
    }
}
