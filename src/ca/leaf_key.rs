//! End-entity private keys made in this process for `issue` (the client receives them; they
//! are not CA keys and never touch the token), and private keys brought in by `import`.
//!
//! The canonical form is PKCS#8 DER, held in zeroizing memory.

use p256::elliptic_curve::Generate;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use zeroize::Zeroizing;

use super::CaError;
use crate::keys::{KeySpec, KeyType};

/// How `issue` returns the private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyFormat {
    /// `EC PRIVATE KEY` (SEC 1) for EC, `RSA PRIVATE KEY` (PKCS#1) for RSA, as Vault does.
    #[default]
    Pem,
    /// `PRIVATE KEY` (PKCS#8) for either.
    Pkcs8,
}

/// A leaf private key.
pub struct LeafKey {
    pub key_type: KeyType,
    pub spki_der: Vec<u8>,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for LeafKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafKey")
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

fn enc<E: std::fmt::Display>(e: E) -> CaError {
    CaError::Invalid(format!("key encoding: {e}"))
}

impl LeafKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate(spec: KeySpec) -> Result<Self, CaError> {
        match spec {
            KeySpec::EcP256 => {
                let k = p256::SecretKey::try_generate().map_err(enc)?;
                Self::from_pkcs8_der(k.to_pkcs8_der().map_err(enc)?.as_bytes())
            }
            KeySpec::EcP384 => {
                let k = p384::SecretKey::try_generate().map_err(enc)?;
                Self::from_pkcs8_der(k.to_pkcs8_der().map_err(enc)?.as_bytes())
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                let bits = usize::try_from(spec.size()).map_err(enc)?;
                let k = rsa::PrivateKey::new(&mut getrandom::SysRng, bits).map_err(enc)?;
                let der = k.to_pkcs8_der().map_err(enc)?;
                Self::from_pkcs8_der(der.as_bytes())
            }
        }
    }

    /// From PKCS#8 DER of a P-256, P-384 or RSA key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CaError> {
        let pkcs8 = Zeroizing::new(der.to_vec());
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
            let spki = k.public_key().to_public_key_der().map_err(enc)?;
            return Ok(LeafKey {
                key_type: KeyType::Ec,
                spki_der: spki.as_bytes().to_vec(),
                pkcs8,
            });
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
            let spki = k.public_key().to_public_key_der().map_err(enc)?;
            return Ok(LeafKey {
                key_type: KeyType::Ec,
                spki_der: spki.as_bytes().to_vec(),
                pkcs8,
            });
        }
        let k = rsa::PrivateKey::from_pkcs8_der(der)
            .map_err(|_| CaError::Invalid("not a P-256, P-384 or RSA private key".into()))?;
        let spki = k.to_public_key().to_public_key_der().map_err(enc)?;
        Ok(LeafKey {
            key_type: KeyType::Rsa,
            spki_der: spki.as_bytes().to_vec(),
            pkcs8,
        })
    }

    /// From PEM: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC 1) or `RSA PRIVATE KEY` (PKCS#1).
    pub fn from_pem(pem: &str) -> Result<Self, CaError> {
        let pem = pem.trim();
        if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
            return Self::from_pkcs8_der(k.to_pkcs8_der().map_err(enc)?.as_bytes());
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_pem(pem) {
            return Self::from_pkcs8_der(k.to_pkcs8_der().map_err(enc)?.as_bytes());
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
            return Self::from_pkcs8_der(k.to_pkcs8_der().map_err(enc)?.as_bytes());
        }
        if let Ok(k) = p384::SecretKey::from_sec1_pem(pem) {
            return Self::from_pkcs8_der(k.to_pkcs8_der().map_err(enc)?.as_bytes());
        }
        let rsa = rsa::PrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| {
                CaError::Invalid(
                    "private_key_pem is not a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) private key"
                        .into(),
                )
            })?;
        Self::from_pkcs8_der(rsa.to_pkcs8_der().map_err(enc)?.as_bytes())
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key as PEM in the requested format.
    pub fn to_pem(&self, format: KeyFormat) -> Result<Zeroizing<String>, CaError> {
        use p256::pkcs8::LineEnding;
        if format == KeyFormat::Pkcs8 {
            return der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &self.pkcs8)
                .map(Zeroizing::new)
                .map_err(enc);
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(&self.pkcs8) {
            return k.to_sec1_pem(LineEnding::LF).map_err(enc);
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_der(&self.pkcs8) {
            return k.to_sec1_pem(LineEnding::LF).map_err(enc);
        }
        let k = rsa::PrivateKey::from_pkcs8_der(&self.pkcs8).map_err(enc)?;
        k.to_pkcs1_pem(LineEnding::LF).map_err(enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_keys_come_out_as_sec1_or_pkcs8_and_round_trip() {
        let k = LeafKey::generate(KeySpec::EcP256).unwrap();
        let sec1 = k.to_pem(KeyFormat::Pem).unwrap();
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let p8 = k.to_pem(KeyFormat::Pkcs8).unwrap();
        assert!(p8.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = LeafKey::from_pem(&sec1).unwrap();
        assert_eq!(back.spki_der, k.spki_der);
    }

    #[test]
    fn rsa_keys_come_out_as_pkcs1() {
        let k = LeafKey::generate(KeySpec::Rsa2048).unwrap();
        let pem = k.to_pem(KeyFormat::Pem).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert_eq!(LeafKey::from_pem(&pem).unwrap().spki_der, k.spki_der);
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let k = LeafKey::generate(KeySpec::EcP256).unwrap();
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }
}
