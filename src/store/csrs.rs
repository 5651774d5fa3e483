//! CSRs under review, and CSRs whose key lives in the token.
//!
//! One tree, keys tagged by their first byte: `r id` → record, `q tenant \0 seq` → id
//! (creation order, for cursor paging), `k sha256(spki)` → id (for linking a returned
//! certificate to the token key of the CSR it answers).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{decode, encode, Store, StoreError};
use crate::types::base64_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CsrStatus {
    Pending,
    Approved,
    Rejected,
    Signed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CsrSource {
    /// Brought in by a client.
    Imported,
    /// Key pair made in the token, CSR signed there.
    Generated,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CsrRecord {
    pub id: String,
    pub tenant: String,
    #[serde(default)]
    pub seq: u64,
    pub status: CsrStatus,
    pub source: CsrSource,
    pub csr_pem: String,
    pub common_name: Option<String>,
    pub subject: String,
    pub san_dns: Vec<String>,
    pub san_ip: Vec<String>,
    pub san_uri: Vec<String>,
    pub key_type: crate::keys::KeyType,
    pub key_size: u32,
    pub requested_by: String,
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub approved_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub approved_at: Option<OffsetDateTime>,
    pub rejected_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub rejected_at: Option<OffsetDateTime>,
    pub reason: Option<String>,
    pub certificate_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub signed_at: Option<OffsetDateTime>,
    /// For generated CSRs: the token key pair's label and CKA_ID.
    pub key_label: Option<String>,
    #[serde(with = "base64_bytes", default)]
    pub key_id: Vec<u8>,
    /// SHA-256 of the CSR's SubjectPublicKeyInfo.
    pub spki_sha256: String,
}

fn rkey(id: &str) -> Vec<u8> {
    [b"r", id.as_bytes()].concat()
}

impl Store {
    /// Store a new CSR (and, for generated ones, its public-key index), then flush.
    pub fn insert_csr(&self, rec: &mut CsrRecord) -> Result<(), StoreError> {
        let _w = self.writing();
        rec.seq = self.next_id()?;
        let mut batch = sled::Batch::default();
        batch.insert(rkey(&rec.id), encode(&*rec)?);
        batch.insert(
            [b"q", rec.tenant.as_bytes(), b"\0", &rec.seq.to_be_bytes()].concat(),
            rec.id.as_bytes(),
        );
        if rec.source == CsrSource::Generated {
            batch.insert(
                [b"k", rec.spki_sha256.as_bytes()].concat(),
                rec.id.as_bytes(),
            );
        }
        self.csrs.apply_batch(batch)?;
        self.flush()
    }

    pub fn get_csr(&self, id: &str) -> Result<Option<CsrRecord>, StoreError> {
        self.csrs.get(rkey(id))?.map(|v| decode(&v)).transpose()
    }

    /// The generated CSR whose public key has this SHA-256, if any.
    pub fn csr_by_spki(&self, spki_sha256: &str) -> Result<Option<CsrRecord>, StoreError> {
        match self.csrs.get([b"k", spki_sha256.as_bytes()].concat())? {
            Some(id) => self.get_csr(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Change a CSR atomically: `change` sees the current record and may refuse (its error
    /// is returned as is); a concurrent change makes it run again on the newer record.
    pub fn update_csr<E: From<StoreError>>(
        &self,
        id: &str,
        change: impl Fn(&mut CsrRecord) -> Result<(), E>,
    ) -> Result<Option<CsrRecord>, E> {
        let _w = self.writing();
        loop {
            let Some(old) = self.csrs.get(rkey(id)).map_err(StoreError::from)? else {
                return Ok(None);
            };
            let mut rec: CsrRecord = decode(&old)?;
            change(&mut rec)?;
            let new = encode(&rec)?;
            if self
                .csrs
                .compare_and_swap(rkey(id), Some(old), Some(new))
                .map_err(StoreError::from)?
                .is_ok()
            {
                self.flush()?;
                return Ok(Some(rec));
            }
        }
    }

    /// A page of a tenant's CSRs in creation order, filtered by `keep`; `after` is the
    /// sequence number of the last one seen.
    pub fn list_csrs(
        &self,
        tenant: &str,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&CsrRecord) -> bool,
    ) -> Result<(Vec<CsrRecord>, Option<u64>), StoreError> {
        let prefix = [b"q", tenant.as_bytes(), b"\0"].concat();
        let start = match after {
            Some(seq) => [prefix.as_slice(), &seq.saturating_add(1).to_be_bytes()].concat(),
            None => prefix.clone(),
        };
        let mut end = prefix.clone();
        if let Some(last) = end.last_mut() {
            *last = 1;
        }
        let mut out = Vec::new();
        let mut last_seq = None;
        let mut scanned = 0usize;
        let budget = limit.saturating_mul(20).max(10_000);
        for item in self.csrs.range(start..end.clone()) {
            let (k, id) = item?;
            let seq_bytes = &k[k.len().saturating_sub(8)..];
            let seq = <[u8; 8]>::try_from(seq_bytes)
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("csr index key".into()))?;
            last_seq = Some(seq);
            scanned += 1;
            if let Some(rec) = self.get_csr(&String::from_utf8_lossy(&id))? {
                if keep(&rec) {
                    out.push(rec);
                }
            }
            if out.len() >= limit || scanned >= budget {
                break;
            }
        }
        let more = match last_seq {
            Some(seq) if out.len() >= limit || scanned >= budget => self
                .csrs
                .range([prefix.as_slice(), &seq.saturating_add(1).to_be_bytes()].concat()..end)
                .next()
                .is_some(),
            _ => false,
        };
        Ok((out, if more { last_seq } else { None }))
    }
}
