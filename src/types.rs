//! Small typed values shared across layers: identifiers, serial numbers, timestamps.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A random identifier with a type prefix (`ca_…`, `cert_…`, `tok_…`): opaque to clients.
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 12];
    // getrandom only fails when the OS has no entropy source at all; there is no safe
    // fallback for that, and ids must never repeat.
    if getrandom::fill(&mut b).is_err() {
        panic!("the operating system's random number generator is unavailable");
    }
    format!("{prefix}_{}", hex::encode(b))
}

/// Uppercase hex with a colon between bytes (`1A:2B:03`), as OpenSSL prints serials and
/// fingerprints. Written into one string: serials are on every issuance answer.
pub fn colon_hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        // Writing into a String cannot fail.
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// A certificate serial number: the content octets of a positive DER INTEGER.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// 16 random octets from the OS CSPRNG with the top bit cleared, so the number is
    /// positive and fits RFC 5280's 20-octet limit (ARCHITECTURE rule 4).
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        if getrandom::fill(&mut b).is_err() {
            panic!("the operating system's random number generator is unavailable");
        }
        b[0] &= 0x7f;
        // Keep the encoding at exactly 16 octets: a leading zero octet is not minimal DER.
        if b[0] == 0 {
            b[0] = 0x01;
        }
        Serial(b.to_vec())
    }

    /// From DER INTEGER content octets as found in a parsed certificate.
    pub fn from_der_bytes(bytes: &[u8]) -> Self {
        Serial(bytes.to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Uppercase colon-separated hex, as `openssl x509 -serial` and Vault print it.
    pub fn to_colon_hex(&self) -> String {
        colon_hex(&self.0)
    }

    /// Lowercase hex without separators, for index keys.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// A serial as clients write it: hex in any case, with `:` (OpenSSL) or `-` (Vault)
    /// between octets or without separators, whitespace ignored. An odd number of digits is
    /// a dropped leading zero. At most 20 octets (RFC 5280 §4.1.2.2), or 21 when the first
    /// is the zero octet that keeps a serial with its top bit set positive.
    pub fn parse_text(s: &str) -> Result<Self, SerialTextError> {
        let mut digits: String = s
            .chars()
            .filter(|c| !matches!(c, ':' | '-') && !c.is_whitespace())
            .collect();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SerialTextError::NotHex);
        }
        if digits.len() % 2 == 1 {
            digits.insert(0, '0');
        }
        let bytes = hex::decode(&digits).map_err(|_| SerialTextError::NotHex)?;
        let limit = if bytes.first() == Some(&0) { 21 } else { 20 };
        if bytes.len() > limit {
            return Err(SerialTextError::TooLong);
        }
        Ok(Serial(bytes))
    }
}

/// Why [`Serial::parse_text`] refused a serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialTextError {
    /// Empty, or a character that is neither a hex digit nor a separator.
    NotHex,
    /// More than 20 octets (21 with a leading zero octet).
    TooLong,
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_colon_hex())
    }
}

/// RFC 3339 UTC with whole seconds, the form every timestamp in the API takes.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Now, truncated to whole seconds (X.509 times have no fractions).
pub fn now() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_sixteen_octets() {
        for _ in 0..1000 {
            let s = Serial::random();
            assert_eq!(s.as_bytes().len(), 16);
            assert!(s.as_bytes()[0] & 0x80 == 0 && s.as_bytes()[0] != 0);
        }
    }

    #[test]
    fn serial_prints_as_uppercase_colon_hex() {
        assert_eq!(Serial(vec![0x1a, 0x2b, 0x03]).to_colon_hex(), "1A:2B:03");
    }

    #[test]
    fn serials_are_read_in_openssl_vault_and_plain_forms() {
        let want = Serial(vec![0x3e, 0x1f, 0xa0]);
        for text in ["3E:1F:A0", "3e-1f-a0", "3e1fa0", "E1FA0", " 3e:1f:a0 "] {
            let got = Serial::parse_text(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            if text == "E1FA0" {
                assert_eq!(got, Serial(vec![0x0e, 0x1f, 0xa0]));
            } else {
                assert_eq!(got, want, "{text}");
            }
        }
        for bad in ["", ":", "xyz", "1A:2G", "0x1a"] {
            assert_eq!(
                Serial::parse_text(bad),
                Err(SerialTextError::NotHex),
                "{bad}"
            );
        }
        let twenty = "7f".repeat(20);
        assert!(Serial::parse_text(&twenty).is_ok());
        assert!(Serial::parse_text(&format!("00{}", "ff".repeat(20))).is_ok());
        for long in [
            "7f".repeat(21),
            format!("00{}", "ff".repeat(21)),
            "7f-".repeat(22),
        ] {
            assert_eq!(
                Serial::parse_text(&long),
                Err(SerialTextError::TooLong),
                "{long}"
            );
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_seconds() {
        let t = time::macros::datetime!(2026-04-23 14:00:00.75 UTC);
        assert_eq!(rfc3339(t), "2026-04-23T14:00:00Z");
    }
}

/// Whether a CA signs itself or is signed by a parent CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CaType {
    Root,
    Intermediate,
}

/// Serde helper: byte strings as standard base64 in JSON records.
pub mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// Subject attributes (besides the CN) that a role stamps on every certificate it issues.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectFields {
    pub organization: Vec<String>,
    pub ou: Vec<String>,
    pub country: Vec<String>,
    pub locality: Vec<String>,
    pub province: Vec<String>,
}

/// RFC 5280 §5.3.1 CRLReason, by the names the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 9] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key_compromise",
            RevocationReason::CaCompromise => "ca_compromise",
            RevocationReason::AffiliationChanged => "affiliation_changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation_of_operation",
            RevocationReason::CertificateHold => "certificate_hold",
            RevocationReason::PrivilegeWithdrawn => "privilege_withdrawn",
            RevocationReason::AaCompromise => "aa_compromise",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The CRLReason code (7 is unused; 8, removeFromCRL, appears only in delta CRLs).
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
            RevocationReason::PrivilegeWithdrawn => 9,
            RevocationReason::AaCompromise => 10,
        }
    }
}
