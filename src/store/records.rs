//! The shapes of stored records. They are the on-disk format: add fields with
//! `#[serde(default)]`, never rename.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::keys::KeySpec;
use crate::types::{base64_bytes, CaType};

/// One certificate authority.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaRecord {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub common_name: String,
    pub ca_type: CaType,
    pub parent_id: Option<String>,
    pub key_spec: KeySpec,
    /// The token key pair's CKA_LABEL and CKA_ID.
    pub key_label: String,
    #[serde(with = "base64_bytes")]
    pub key_id: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub certificate_der: Vec<u8>,
    pub serial_hex: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub is_active: bool,
    pub certificates_issued: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An API bearer token. Only the SHA-256 of its secret is kept (as the record's key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub capabilities: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}
