//! PKCS#11 URIs (RFC 7512): how keys are named to and by operators, e.g.
//! `pkcs11:token=ca;object=scaivault-ca-ca_1;id=%01%AB;type=private`.
//!
//! Only the attributes that pick an object in the one configured token are used (`token`,
//! `object`, `id`, `type`); the other standard path attributes are accepted and ignored.
//! A PIN in a URI (`pin-value`) is refused: command lines are visible to every local user.

use std::fmt;
use std::str::FromStr;

use percent_encoding::percent_decode_str;

/// The object classes RFC 7512 names in its `type` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectType {
    Private,
    Public,
    SecretKey,
    Cert,
    Data,
    /// A class RFC 7512 has no name for (shown, never parsed).
    Other,
}

impl ObjectType {
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::SecretKey => "secret-key",
            ObjectType::Cert => "cert",
            ObjectType::Data => "data",
            ObjectType::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{uri:?} is not a usable PKCS#11 URI: {reason}")]
pub struct UriError {
    uri: String,
    reason: String,
}

/// A parsed PKCS#11 URI, reduced to what selects an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub object_type: Option<ObjectType>,
}

/// Standard path attributes that do not select an object in a known token.
const IGNORED_PATH: &[&str] = &[
    "manufacturer",
    "model",
    "serial",
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
];

/// Percent-encode everything outside RFC 7512's unreserved set.
fn pct_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token={}", pct_encode(t.as_bytes())));
        }
        if let Some(o) = &self.object {
            parts.push(format!("object={}", pct_encode(o.as_bytes())));
        }
        if let Some(id) = &self.id {
            // Always encoded, byte by byte: ids are binary.
            let id: String = id.iter().map(|b| format!("%{b:02X}")).collect();
            parts.push(format!("id={id}"));
        }
        if let Some(t) = self.object_type {
            parts.push(format!("type={}", t.name()));
        }
        write!(f, "pkcs11:{}", parts.join(";"))
    }
}

impl FromStr for Pkcs11Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        let err = |reason: String| UriError {
            uri: s.to_string(),
            reason,
        };
        let rest = match s.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("pkcs11:") => &s[7..],
            _ => return Err(err("it does not start with \"pkcs11:\"".into())),
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Pkcs11Uri::default();
        let mut seen = Vec::new();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| err(format!("attribute {attr:?} has no '='")))?;
            let name = name.to_ascii_lowercase();
            if seen.contains(&name) {
                return Err(err(format!("attribute {name:?} appears twice")));
            }
            seen.push(name.clone());
            // A '%' not followed by two hex digits would be taken literally by the decoder:
            // `id=%zz` would name the bytes "%zz" and quietly match nothing.
            if !well_percent_encoded(value) {
                return Err(err(format!(
                    "the value of {name:?} has a '%' not followed by two hex digits"
                )));
            }
            let bytes: Vec<u8> = percent_decode_str(value).collect();
            let text = || {
                String::from_utf8(bytes.clone())
                    .map_err(|_| err(format!("the value of {name:?} is not UTF-8")))
            };
            match name.as_str() {
                "token" => uri.token = Some(text()?),
                "object" => uri.object = Some(text()?),
                "id" => uri.id = Some(bytes),
                "type" => {
                    uri.object_type = Some(match text()?.as_str() {
                        "private" => ObjectType::Private,
                        "public" => ObjectType::Public,
                        "secret-key" => ObjectType::SecretKey,
                        "cert" => ObjectType::Cert,
                        "data" => ObjectType::Data,
                        other => return Err(err(format!("unknown type {other:?}"))),
                    })
                }
                n if IGNORED_PATH.contains(&n) || n.starts_with("x-") => {}
                n => return Err(err(format!("unknown attribute {n:?}"))),
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let name = attr.split_once('=').map_or(attr, |(n, _)| n);
            if name.eq_ignore_ascii_case("pin-value") {
                return Err(err(
                    "a PIN does not belong in a URI; the PIN comes from the configuration".into(),
                ));
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(err("it names no object: give object= or id=".into()));
        }
        Ok(uri)
    }
}

impl Pkcs11Uri {
    /// Does this URI select an object with these properties in the token `token_label`?
    pub fn selects(&self, token_label: &str, label: &str, id: &[u8], kind: ObjectType) -> bool {
        self.token.as_deref().is_none_or(|t| t == token_label)
            && self.object.as_deref().is_none_or(|o| o == label)
            && self.id.as_deref().is_none_or(|i| i == id)
            && self.object_type.is_none_or(|t| t == kind)
    }
}

/// Every '%' starts a `%XX` escape (RFC 3986 pct-encoded, as RFC 7512 requires).
fn well_percent_encoded(value: &str) -> bool {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match b.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_percent_decoding() {
        let u: Pkcs11Uri =
            "pkcs11:token=my%20token;object=scaivault-ca-ca_1;id=%01%AB;type=private"
                .parse()
                .unwrap();
        assert_eq!(u.token.as_deref(), Some("my token"));
        assert_eq!(u.object.as_deref(), Some("scaivault-ca-ca_1"));
        assert_eq!(u.id.as_deref(), Some([0x01, 0xab].as_slice()));
        assert_eq!(u.object_type, Some(ObjectType::Private));
        assert_eq!(
            u.to_string(),
            "pkcs11:token=my%20token;object=scaivault-ca-ca_1;id=%01%AB;type=private"
        );
        // RFC 7512 §3.3: unreserved characters may be given encoded or not.
        let v: Pkcs11Uri =
            "PKCS11:object=%61bc;manufacturer=SoftHSM;x-vendor=1?module-name=softhsm2"
                .parse()
                .unwrap();
        assert_eq!(v.object.as_deref(), Some("abc"));
        assert!(v.selects("any", "abc", b"\x01", ObjectType::Public));
        assert!(!u.selects(
            "other token",
            "scaivault-ca-ca_1",
            &[1, 0xab],
            ObjectType::Private
        ));
    }

    #[test]
    fn bad_uris_are_refused_with_a_reason() {
        for bad in [
            "scaivault-ca-1",
            "pkcs11:",
            "pkcs11:token=t",
            "pkcs11:object=a;object=b",
            "pkcs11:object=a;colour=red",
            "pkcs11:object=a;type=key",
            "pkcs11:object=a?pin-value=1234",
            "pkcs11:object",
            "pkcs11:id=%zz",
            "pkcs11:id=%0",
            "pkcs11:object=a%",
        ] {
            let e = bad.parse::<Pkcs11Uri>().unwrap_err();
            assert!(
                e.to_string().contains("not a usable PKCS#11 URI"),
                "{bad}: {e}"
            );
        }
    }
}
