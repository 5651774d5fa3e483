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
    /// Set when this CA's own certificate was revoked by its parent.
    #[serde(default)]
    pub revocation: Option<Revocation>,
    /// For an intermediate signed outside this daemon (no `parent_id`): the certificates
    /// above it, as PEM, nearest first, so chains handed out still reach the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_chain_pem: Option<String>,
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
    /// None: never expires (the bootstrap token).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
    /// The token that made this one.
    #[serde(default)]
    pub created_by: Option<String>,
    /// The party (person or service) this token acts for: the id of the token that
    /// started the party. Four-eyes compares parties, not token ids, so a token cannot
    /// approve its own request through a child it minted. None in records made before
    /// parties existed; the service derives one from `created_by` for those.
    #[serde(default)]
    pub party: Option<String>,
}

/// A tenant: the unit of isolation. Every object belongs to exactly one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantRecord {
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default)]
    pub created_by: Option<String>,
}

/// How a tracked certificate came to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CertSource {
    /// We generated the key and signed (`issue`, `renew`).
    Issued,
    /// We signed a CSR.
    Signed,
    /// Issued elsewhere and imported for tracking.
    Imported,
}

/// A leaf private key encrypted under an AES-256 key that never leaves the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedKey {
    pub key_label: String,
    #[serde(with = "base64_bytes")]
    pub iv: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Revocation state of a certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    pub reason: String,
}

/// One tracked certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertRecord {
    pub id: String,
    pub tenant: String,
    /// Position in issuance order; assigned by the store.
    #[serde(default)]
    pub seq: u64,
    pub issuer_ca_id: Option<String>,
    pub role: Option<String>,
    pub source: CertSource,
    pub common_name: String,
    pub san_dns: Vec<String>,
    pub san_ip: Vec<String>,
    pub san_uri: Vec<String>,
    pub serial_hex: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub key_type: Option<crate::keys::KeyType>,
    pub key_bits: Option<u32>,
    #[serde(with = "base64_bytes")]
    pub certificate_der: Vec<u8>,
    /// For imported certificates: the chain given at import, as PEM.
    #[serde(default)]
    pub chain_pem: Option<String>,
    #[serde(default)]
    pub sealed_key: Option<SealedKey>,
    #[serde(default)]
    pub revocation: Option<Revocation>,
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// For a certificate answering a CSR generated in the token: that key pair and CSR.
    #[serde(default)]
    pub token_key_label: Option<String>,
    #[serde(with = "base64_bytes", default)]
    pub token_key_id: Vec<u8>,
    #[serde(default)]
    pub csr_id: Option<String>,
}
