//! End-entity private keys made in this process for `issue` (the client receives them; they
//! are not CA keys and never touch the token), and private keys brought in by `import`.
//!
//! The canonical form is PKCS#8 DER, held in zeroizing memory.

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
            KeySpec::EcP256 => Self::generate_ec(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING),
            KeySpec::EcP384 => Self::generate_ec(&ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING),
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                let bits = usize::try_from(spec.size()).map_err(enc)?;
                let k = rsa::PrivateKey::new(&mut getrandom::SysRng, bits).map_err(enc)?;
                let der = k.to_pkcs8_der().map_err(enc)?;
                Self::from_pkcs8_der(der.as_bytes())
            }
        }
    }

    /// An EC key from `ring`: one fixed-base multiplication, ~15 µs for P-256. The RustCrypto
    /// path derived the public key again at every step (generate, PKCS#8, SPKI, SEC 1: ~0.35 ms
    /// per `issue`, BENCHMARKS.md). ring's PKCS#8 carries the public key it computed, so the SPKI
    /// and the SEC 1 form are re-encodings, not arithmetic.
    fn generate_ec(alg: &'static ring::signature::EcdsaSigningAlgorithm) -> Result<Self, CaError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng)
            .map_err(|_| CaError::Invalid("key generation failed".into()))?;
        let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        let parts = EcParts::of(&pkcs8)?;
        let spki_der = parts.spki_der()?;
        Ok(LeafKey {
            key_type: KeyType::Ec,
            spki_der,
            pkcs8,
        })
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
                    "private_key_pem is not a P-256, P-384 or RSA private key in PKCS#8, SEC 1 (EC) \
                     or PKCS#1 (RSA) form; other key types (e.g. Ed25519, secp256k1) are not \
                     supported, and an encrypted key must be decrypted first"
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
        // Our own PKCS#8 (ring's, or one RustCrypto decoded, which checks an embedded public
        // key against the private one) already holds the public key: re-encode, no arithmetic.
        // Only if that key is absent or is not this key's SPKI does RustCrypto derive it.
        if let Ok(parts) = EcParts::of(&self.pkcs8) {
            if parts.spki_der().ok().as_deref() == Some(self.spki_der.as_slice()) {
                let sec1 = parts.sec1_der()?;
                return der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, &sec1)
                    .map(Zeroizing::new)
                    .map_err(enc);
            }
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

/// The pieces of an EC PKCS#8 document (RFC 5915 inside RFC 5958) that its other encodings
/// are made of, borrowed from the document.
struct EcParts<'a> {
    algorithm: spki::AlgorithmIdentifierRef<'a>,
    curve: der::asn1::ObjectIdentifier,
    key: sec1::EcPrivateKey<'a>,
    public_key: &'a [u8],
}

impl<'a> EcParts<'a> {
    fn of(pkcs8: &'a [u8]) -> Result<Self, CaError> {
        use der::Decode;
        let info = p256::pkcs8::PrivateKeyInfoRef::from_der(pkcs8).map_err(enc)?;
        if info.algorithm.oid != const_oid::db::rfc5912::ID_EC_PUBLIC_KEY {
            return Err(CaError::Invalid("not an EC private key".into()));
        }
        let curve = info.algorithm.parameters_oid().map_err(enc)?;
        let key = sec1::EcPrivateKey::from_der(info.private_key.as_bytes()).map_err(enc)?;
        let public_key = key
            .public_key
            .ok_or_else(|| CaError::Invalid("EC private key without its public key".into()))?;
        Ok(EcParts {
            algorithm: info.algorithm,
            curve,
            key,
            public_key,
        })
    }

    fn spki_der(&self) -> Result<Vec<u8>, CaError> {
        use der::Encode;
        spki::SubjectPublicKeyInfoRef {
            algorithm: self.algorithm,
            subject_public_key: der::asn1::BitStringRef::from_bytes(self.public_key)
                .map_err(enc)?,
        }
        .to_der()
        .map_err(enc)
    }

    /// SEC 1 `ECPrivateKey` with the curve named in it, as `EC PRIVATE KEY` carries it
    /// (inside PKCS#8 the curve is in the algorithm identifier instead).
    fn sec1_der(&self) -> Result<Zeroizing<Vec<u8>>, CaError> {
        use der::Encode;
        sec1::EcPrivateKey {
            private_key: self.key.private_key,
            parameters: Some(sec1::EcParameters::NamedCurve(self.curve)),
            public_key: Some(self.public_key),
        }
        .to_der()
        .map(Zeroizing::new)
        .map_err(enc)
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

    /// The re-encoded forms of a ring key are exactly what RustCrypto derives from its scalar.
    #[test]
    fn generated_ec_keys_encode_as_rustcrypto_derives_them() {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let k = LeafKey::generate(KeySpec::EcP256).unwrap();
        let rc = p256::SecretKey::from_pkcs8_der(k.pkcs8_der()).unwrap();
        assert_eq!(
            k.spki_der,
            rc.public_key().to_public_key_der().unwrap().as_bytes()
        );
        assert_eq!(
            *k.to_pem(KeyFormat::Pem).unwrap(),
            *rc.to_sec1_pem(LineEnding::LF).unwrap()
        );
        let k = LeafKey::generate(KeySpec::EcP384).unwrap();
        let rc = p384::SecretKey::from_pkcs8_der(k.pkcs8_der()).unwrap();
        assert_eq!(
            k.spki_der,
            rc.public_key().to_public_key_der().unwrap().as_bytes()
        );
        assert_eq!(
            *k.to_pem(KeyFormat::Pem).unwrap(),
            *rc.to_sec1_pem(LineEnding::LF).unwrap()
        );
        assert_eq!(
            LeafKey::from_pem(&k.to_pem(KeyFormat::Pem).unwrap())
                .unwrap()
                .spki_der,
            k.spki_der
        );
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
