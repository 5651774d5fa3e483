//! Key kinds and signature algorithms shared by the token layer and the signing core.
//!
//! These are plain values with no behaviour that touches a token or a certificate, so
//! `hsm/`, `ca/` and `service/` can all speak of "a P-256 key" without depending on each other.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The key family a client asks for (`key_type` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Rsa,
    Ec,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Rsa => "rsa",
            KeyType::Ec => "ec",
        })
    }
}

/// A concrete key: family plus size. Only these exist; anything else is refused at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySpec {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// A `key_size` that the `key_type` does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key_size {size} is not available for key_type {key_type}; allowed: {allowed}")]
pub struct InvalidKeySize {
    pub key_type: KeyType,
    pub size: u32,
    pub allowed: &'static str,
}

impl KeySpec {
    /// The API's defaults: RSA 2048 and EC 256 when no size is given.
    pub fn from_type_and_size(
        key_type: KeyType,
        size: Option<u32>,
    ) -> Result<Self, InvalidKeySize> {
        let err = |size, allowed| InvalidKeySize {
            key_type,
            size,
            allowed,
        };
        match key_type {
            KeyType::Ec => match size.unwrap_or(256) {
                256 => Ok(KeySpec::EcP256),
                384 => Ok(KeySpec::EcP384),
                other => Err(err(other, "256, 384")),
            },
            KeyType::Rsa => match size.unwrap_or(2048) {
                2048 => Ok(KeySpec::Rsa2048),
                3072 => Ok(KeySpec::Rsa3072),
                4096 => Ok(KeySpec::Rsa4096),
                other => Err(err(other, "2048, 3072, 4096")),
            },
        }
    }

    pub fn key_type(self) -> KeyType {
        match self {
            KeySpec::EcP256 | KeySpec::EcP384 => KeyType::Ec,
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => KeyType::Rsa,
        }
    }

    /// Curve size in bits for EC, modulus size for RSA.
    pub fn size(self) -> u32 {
        match self {
            KeySpec::EcP256 => 256,
            KeySpec::EcP384 => 384,
            KeySpec::Rsa2048 => 2048,
            KeySpec::Rsa3072 => 3072,
            KeySpec::Rsa4096 => 4096,
        }
    }

    /// The algorithm this key signs with. P-384 pairs with SHA-384 so the hash is not the
    /// weaker link; everything else uses SHA-256.
    pub fn signature_algorithm(self) -> SignatureAlgorithm {
        match self {
            KeySpec::EcP256 => SignatureAlgorithm::EcdsaSha256,
            KeySpec::EcP384 => SignatureAlgorithm::EcdsaSha384,
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                SignatureAlgorithm::RsaPkcs1Sha256
            }
        }
    }
}

/// How a CA key signs. The digest is computed by the caller; the token only sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    EcdsaSha256,
    EcdsaSha384,
    RsaPkcs1Sha256,
}

impl SignatureAlgorithm {
    /// Length in bytes of the digest this algorithm signs.
    pub fn digest_len(self) -> usize {
        match self {
            SignatureAlgorithm::EcdsaSha256 | SignatureAlgorithm::RsaPkcs1Sha256 => 32,
            SignatureAlgorithm::EcdsaSha384 => 48,
        }
    }
}

/// Anything that can sign a precomputed digest with one fixed key.
///
/// The token implements it for its keys; unit tests of the signing core may implement it in
/// software. The returned bytes are the X.509 signature value: a DER `Ecdsa-Sig-Value` for
/// ECDSA, the raw PKCS#1 v1.5 signature block for RSA.
pub trait DigestSigner {
    fn sign_digest(&self, alg: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// Why a digest could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The token could not be reached; the caller may retry later.
    #[error("the token is unavailable: {0}")]
    Unavailable(String),
    /// Anything else the signer refused or failed at.
    #[error("signing failed: {0}")]
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rsa_2048_and_ec_256() {
        assert_eq!(
            KeySpec::from_type_and_size(KeyType::Rsa, None),
            Ok(KeySpec::Rsa2048)
        );
        assert_eq!(
            KeySpec::from_type_and_size(KeyType::Ec, None),
            Ok(KeySpec::EcP256)
        );
    }

    #[test]
    fn a_size_the_type_does_not_have_is_refused() {
        assert!(KeySpec::from_type_and_size(KeyType::Ec, Some(2048)).is_err());
        assert!(KeySpec::from_type_and_size(KeyType::Rsa, Some(1024)).is_err());
        assert!(KeySpec::from_type_and_size(KeyType::Rsa, Some(256)).is_err());
    }

    #[test]
    fn p384_signs_with_sha384() {
        assert_eq!(KeySpec::EcP384.signature_algorithm().digest_len(), 48);
    }
}
