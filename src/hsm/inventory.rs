//! What is in the token, for key ceremonies: every object with its protection
//! attributes, the public half of a key pair as a SubjectPublicKeyInfo, and the
//! mechanisms the daemon needs.

use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};

use super::uri::{ObjectType, Pkcs11Uri};
use super::{encoding, read_spki, HsmError, KeyRef, Token};
use crate::keys::KeySpec;

/// One object in the token, as `list-keys` shows it. Attributes a class does not have
/// (sensitivity of a public key, say) are `None`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenObject {
    #[serde(rename = "type")]
    pub kind: ObjectType,
    pub label: String,
    #[serde(serialize_with = "hex_bytes")]
    pub id: Vec<u8>,
    pub key_type: Option<String>,
    pub bits: Option<u32>,
    pub private: Option<bool>,
    pub sensitive: Option<bool>,
    pub extractable: Option<bool>,
    pub always_sensitive: Option<bool>,
    pub never_extractable: Option<bool>,
    pub sign: Option<bool>,
    pub decrypt: Option<bool>,
    pub unwrap: Option<bool>,
    pub derive: Option<bool>,
    /// RFC 7512 URI of this object.
    pub uri: String,
}

fn hex_bytes<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(b))
}

/// Which of the mechanisms the daemon uses the token offers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mechanisms {
    /// EC key generation and raw ECDSA (P-256, P-384 CAs).
    pub ec: bool,
    /// RSA key generation and PKCS#1 v1.5 signing (RSA CAs).
    pub rsa: bool,
    /// AES key generation and AES-GCM (sealing stored leaf keys).
    pub aes_gcm: bool,
}

fn kind_of(class: ObjectClass) -> ObjectType {
    match class {
        ObjectClass::PRIVATE_KEY => ObjectType::Private,
        ObjectClass::PUBLIC_KEY => ObjectType::Public,
        ObjectClass::SECRET_KEY => ObjectType::SecretKey,
        ObjectClass::CERTIFICATE => ObjectType::Cert,
        ObjectClass::DATA => ObjectType::Data,
        _ => ObjectType::Other,
    }
}

fn key_type_name(t: KeyType) -> String {
    match t {
        KeyType::EC => "ec".into(),
        KeyType::RSA => "rsa".into(),
        KeyType::AES => "aes".into(),
        other => other.to_string(),
    }
}

fn ec_bits(params: &[u8]) -> Option<u32> {
    [KeySpec::EcP256, KeySpec::EcP384]
        .into_iter()
        .find(|s| encoding::ec_params(*s).is_ok_and(|p| p == params))
        .map(KeySpec::size)
        .or_else(|| {
            // P-521's named-curve OID 1.3.132.0.35, which we never make but may find.
            (params == [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]).then_some(521)
        })
}

impl Token {
    /// Every object the logged-in user can see, sorted by label, then type.
    pub fn list_objects(&self) -> Result<Vec<TokenObject>, HsmError> {
        let mut out = self.with_session(|s| {
            let _finding = self.finding();
            let mut objects = Vec::new();
            for h in s.find_objects(&[])? {
                let attrs = s.get_attributes(
                    h,
                    &[
                        AttributeType::Class,
                        AttributeType::Label,
                        AttributeType::Id,
                        AttributeType::KeyType,
                        AttributeType::Private,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::AlwaysSensitive,
                        AttributeType::NeverExtractable,
                        AttributeType::Sign,
                        AttributeType::Decrypt,
                        AttributeType::Unwrap,
                        AttributeType::Derive,
                        AttributeType::EcParams,
                        AttributeType::ModulusBits,
                        AttributeType::Modulus,
                        AttributeType::ValueLen,
                    ],
                )?;
                let mut o = TokenObject {
                    kind: ObjectType::Other,
                    label: String::new(),
                    id: Vec::new(),
                    key_type: None,
                    bits: None,
                    private: None,
                    sensitive: None,
                    extractable: None,
                    always_sensitive: None,
                    never_extractable: None,
                    sign: None,
                    decrypt: None,
                    unwrap: None,
                    derive: None,
                    uri: String::new(),
                };
                for a in attrs {
                    match a {
                        Attribute::Class(c) => o.kind = kind_of(c),
                        Attribute::Label(l) => o.label = String::from_utf8_lossy(&l).into_owned(),
                        Attribute::Id(i) => o.id = i,
                        Attribute::KeyType(t) => o.key_type = Some(key_type_name(t)),
                        Attribute::Private(v) => o.private = Some(v),
                        Attribute::Sensitive(v) => o.sensitive = Some(v),
                        Attribute::Extractable(v) => o.extractable = Some(v),
                        Attribute::AlwaysSensitive(v) => o.always_sensitive = Some(v),
                        Attribute::NeverExtractable(v) => o.never_extractable = Some(v),
                        Attribute::Sign(v) => o.sign = Some(v),
                        Attribute::Decrypt(v) => o.decrypt = Some(v),
                        Attribute::Unwrap(v) => o.unwrap = Some(v),
                        Attribute::Derive(v) => o.derive = Some(v),
                        Attribute::EcParams(p) => o.bits = o.bits.or(ec_bits(&p)),
                        Attribute::ModulusBits(b) => {
                            o.bits = u32::try_from(u64::from(b)).ok().or(o.bits)
                        }
                        Attribute::Modulus(m) if !m.is_empty() => {
                            let lead = m.iter().take_while(|b| **b == 0).count();
                            o.bits = o.bits.or(u32::try_from((m.len() - lead) * 8).ok())
                        }
                        Attribute::ValueLen(n) => {
                            o.bits = u32::try_from(u64::from(n).saturating_mul(8)).ok()
                        }
                        _ => {}
                    }
                }
                objects.push(o);
            }
            Ok(objects)
        })?;
        for o in &mut out {
            o.uri = Pkcs11Uri {
                token: Some(self.label.clone()),
                object: Some(o.label.clone()),
                id: Some(o.id.clone()),
                object_type: Some(o.kind),
            }
            .to_string();
        }
        out.sort_by(|a, b| {
            a.label
                .cmp(&b.label)
                .then(a.kind.name().cmp(b.kind.name()))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// The public half of a key pair (the public key object with the key's CKA_ID), as a
    /// DER SubjectPublicKeyInfo.
    pub fn public_key_spki(&self, key: &KeyRef, spec: KeySpec) -> Result<Vec<u8>, HsmError> {
        self.with_session(|s| {
            let _finding = self.finding();
            let found = s.find_objects(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Id(key.id.clone()),
            ])?;
            match found.as_slice() {
                [h] => read_spki(s, *h, spec),
                [] => Err(HsmError::KeyNotFound(format!(
                    "{} (public half)",
                    key.label
                ))),
                _ => Err(HsmError::Operation(format!(
                    "more than one public key has the id of {}",
                    key.label
                ))),
            }
        })
    }

    /// The mechanisms of the token that the daemon relies on.
    pub fn mechanisms(&self) -> Result<Mechanisms, HsmError> {
        // One query per mechanism: the whole list would include vendor mechanisms that
        // cryptoki does not know and logs an error for each.
        self.with_session(|_| {
            let slot = self.find_slot()?;
            let has = |m: MechanismType| self.ctx.get_mechanism_info(slot, m).is_ok();
            Ok(Mechanisms {
                ec: has(MechanismType::ECC_KEY_PAIR_GEN) && has(MechanismType::ECDSA),
                rsa: has(MechanismType::RSA_PKCS_KEY_PAIR_GEN) && has(MechanismType::RSA_PKCS),
                aes_gcm: has(MechanismType::AES_KEY_GEN) && has(MechanismType::AES_GCM),
            })
        })
    }
}
