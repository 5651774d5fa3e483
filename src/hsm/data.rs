//! Small records the token keeps for us as PKCS#11 data objects (CKO_DATA): state that
//! must not roll back with the files on the host, such as the audit log's anchor.
//!
//! A data object is private (readable only after login) and found by its label (data
//! objects have no CKA_ID). SoftHSM2 keeps a data object's CKA_VALUE read-only once made,
//! so a new value is a new object: it is made before the old one is destroyed, and a
//! crash in between leaves both, never neither — readers get every value under the label.

use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::{HsmError, Token};

/// CKA_APPLICATION of every data object we make.
const APPLICATION: &str = "scaivault-pki";

/// Callers hold the token's lookup or change lock (see `Token::catalogue`).
fn find(s: &Session, label: &str) -> Result<Vec<ObjectHandle>, HsmError> {
    Ok(s.find_objects(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?)
}

impl Token {
    /// The values of the data objects labelled `label`: none, one, or (after a crash in
    /// [`Token::replace_data_object`]) the old and the new.
    pub fn read_data_objects(&self, label: &str) -> Result<Vec<Vec<u8>>, HsmError> {
        self.with_session(|s| {
            let _finding = self.finding();
            let mut out = Vec::new();
            for h in find(s, label)? {
                for a in s.get_attributes(h, &[AttributeType::Value])? {
                    if let Attribute::Value(v) = a {
                        out.push(v);
                    }
                }
            }
            Ok(out)
        })
    }

    /// Make `value` the one data object labelled `label`.
    pub fn replace_data_object(&self, label: &str, value: &[u8]) -> Result<(), HsmError> {
        self.with_session(|s| {
            let _changing = self.changing();
            let old = find(s, label)?;
            s.create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Application(APPLICATION.as_bytes().to_vec()),
                Attribute::Value(value.to_vec()),
            ])?;
            for h in old {
                s.destroy_object(h)?;
            }
            Ok(())
        })
    }
}
