//! Trust anchors: outside CA certificates a tenant chooses to trust for validation.
//!
//! One tree, keys tagged by their first byte: `r tenant \0 id` → record,
//! `n tenant \0 name` → id, `f tenant \0 sha256` → id. The three are written in one
//! transaction, so names and certificates are unique within a tenant.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use time::OffsetDateTime;

use super::{decode, encode, Store, StoreError};
use crate::types::base64_bytes;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustAnchorRecord {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub subject: String,
    pub fingerprint_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "base64_bytes")]
    pub certificate_der: Vec<u8>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

fn key(tag: u8, tenant: &str, rest: &str) -> Vec<u8> {
    [&[tag][..], tenant.as_bytes(), b"\0", rest.as_bytes()].concat()
}

impl Store {
    /// Store a new trust anchor; its name and its certificate must be new to its tenant.
    pub fn insert_trust_anchor(&self, rec: &TrustAnchorRecord) -> Result<(), StoreError> {
        let _w = self.writing();
        let value = encode(rec)?;
        let (r, n, f) = (
            key(b'r', &rec.tenant, &rec.id),
            key(b'n', &rec.tenant, &rec.name),
            key(b'f', &rec.tenant, &rec.fingerprint_sha256),
        );
        let result = self.anchors.transaction(|t| {
            if t.get(&n)?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::NameTaken(
                    format!("name {:?}", rec.name),
                )));
            }
            if t.get(&f)?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::NameTaken(
                    format!("certificate (SHA-256 {})", rec.fingerprint_sha256),
                )));
            }
            t.insert(n.as_slice(), rec.id.as_bytes())?;
            t.insert(f.as_slice(), rec.id.as_bytes())?;
            t.insert(r.as_slice(), value.as_slice())?;
            Ok(())
        });
        match result {
            Ok(()) => self.flush(),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    pub fn get_trust_anchor(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<TrustAnchorRecord>, StoreError> {
        self.anchors
            .get(key(b'r', tenant, id))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn list_trust_anchors(&self, tenant: &str) -> Result<Vec<TrustAnchorRecord>, StoreError> {
        let mut out: Vec<TrustAnchorRecord> = self
            .anchors
            .scan_prefix(key(b'r', tenant, ""))
            .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode(&v)))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Remove a trust anchor with its name and fingerprint entries. False when absent.
    pub fn delete_trust_anchor(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let _w = self.writing();
        let Some(rec) = self.get_trust_anchor(tenant, id)? else {
            return Ok(false);
        };
        let mut batch = sled::Batch::default();
        batch.remove(key(b'r', tenant, id));
        batch.remove(key(b'n', tenant, &rec.name));
        batch.remove(key(b'f', tenant, &rec.fingerprint_sha256));
        self.anchors.apply_batch(batch)?;
        self.flush()?;
        Ok(true)
    }
}
