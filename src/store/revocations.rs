//! Revocations and CRL state.
//!
//! `revoked` holds one key per revoked serial under its issuing CA (`ca_id \0 serial`), so
//! building a CRL is one sequential pass over a prefix. `rev_log` records every revoke and
//! release in order (`ca_id \0 rev_seq`), which is what a delta CRL lists. CRL numbers
//! are reserved durably before signing, so a number is never used twice, even across a
//! crash. The signed CRLs themselves are files, written atomically.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use time::OffsetDateTime;

use super::{decode, encode, CaRecord, CertRecord, Revocation, Store, StoreError};
use crate::types::RevocationReason;

/// One entry of a CA's revocation index, as the CRL builder reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    pub serial: Vec<u8>,
    pub revoked_at: i64,
    /// RFC 5280 CRLReason code.
    pub reason: u8,
    pub rev_seq: u64,
}

/// A change to a CA's revocation list, for delta CRLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevChange {
    Revoked(RevokedEntry),
    /// A certificate_hold was released: the serial is listed with removeFromCRL.
    Released {
        serial: Vec<u8>,
        at: i64,
    },
}

/// What was last published for a CA.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrlMeta {
    pub number: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub this_update: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub next_update: OffsetDateTime,
    pub etag: String,
    pub entries: u64,
    pub size: u64,
    /// The last revocation-log sequence this full CRL includes (the delta base).
    pub base_rev_seq: u64,
    #[serde(default)]
    pub delta: Option<DeltaMeta>,
    /// The complete CRL that delta CRLs are built against: the last one built by the timer,
    /// on request or at creation. Rebuilds after revocations keep it, so deltas accumulate
    /// the changes since then instead of being emptied by every revocation.
    #[serde(default)]
    pub delta_base: Option<DeltaBase>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DeltaBase {
    pub number: u64,
    pub rev_seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub next_update: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaMeta {
    pub number: u64,
    pub base_number: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub this_update: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub next_update: OffsetDateTime,
    pub etag: String,
    pub entries: u64,
}

/// Which record a revocation is about.
pub enum Revokee<'a> {
    Cert(&'a CertRecord),
    Ca(&'a CaRecord),
}

/// How `revoke` ended.
pub enum RevokeOutcome {
    Revoked(Revocation),
    /// It was revoked before; the first revocation stands unchanged.
    AlreadyRevoked(Revocation),
    /// It was on certificate_hold and now has the permanent reason asked for; the
    /// revocation time is the hold's (RFC 5280 §5.3.1: a hold is meant to be converted).
    Converted(Revocation),
}

fn is_hold(r: &Revocation) -> bool {
    r.reason == RevocationReason::CertificateHold.name()
}

/// What a revocation does to a record's current revocation: `Some(new)` to write, with
/// the outcome to report.
fn next_revocation(
    current: Option<Revocation>,
    asked: &Revocation,
) -> (Option<Revocation>, RevokeOutcome) {
    match current {
        None => (Some(asked.clone()), RevokeOutcome::Revoked(asked.clone())),
        Some(held) if is_hold(&held) && !is_hold(asked) => {
            let converted = Revocation {
                revoked_at: held.revoked_at,
                reason: asked.reason.clone(),
            };
            (Some(converted.clone()), RevokeOutcome::Converted(converted))
        }
        Some(first) => (None, RevokeOutcome::AlreadyRevoked(first)),
    }
}

/// Key of the serial index that lets `revoke` find a certificate by serial alone:
/// `tenant \0 serial_hex \0 id`.
pub(crate) fn serial_index_key(tenant: &str, serial_hex: &str, id: &str) -> Vec<u8> {
    [
        b"s".as_slice(),
        tenant.as_bytes(),
        b"\0",
        serial_hex.as_bytes(),
        b"\0",
        id.as_bytes(),
    ]
    .concat()
}

fn key(ca: &str, tail: &[u8]) -> Vec<u8> {
    [ca.as_bytes(), b"\0", tail].concat()
}

fn entry_value(at: i64, reason: u8, rev_seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(17);
    v.extend_from_slice(&at.to_be_bytes());
    v.push(reason);
    v.extend_from_slice(&rev_seq.to_be_bytes());
    v
}

fn parse_entry(serial: &[u8], v: &[u8]) -> Result<RevokedEntry, StoreError> {
    if v.len() != 17 {
        return Err(StoreError::Corrupt("revocation index entry".into()));
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&v[..8]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&v[9..17]);
    Ok(RevokedEntry {
        serial: serial.to_vec(),
        revoked_at: i64::from_be_bytes(at),
        reason: v[8],
        rev_seq: u64::from_be_bytes(seq),
    })
}

impl Store {
    /// Ids (cert_… or ca_…) of a tenant's certificates with this serial.
    pub fn ids_by_serial(&self, tenant: &str, serial_hex: &str) -> Result<Vec<String>, StoreError> {
        let prefix = [
            b"s".as_slice(),
            tenant.as_bytes(),
            b"\0",
            serial_hex.as_bytes(),
            b"\0",
        ]
        .concat();
        self.certidx
            .scan_prefix(&prefix)
            .map(|r| {
                let (k, _) = r?;
                Ok(String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .collect()
    }

    /// Record a revocation: the record, the issuer's revocation index and the log change in
    /// one transaction, then flush. Revoking again returns the first revocation unchanged,
    /// except that a certificate_hold takes a permanent reason asked for (same time).
    pub fn revoke(
        &self,
        who: Revokee<'_>,
        issuer_ca_id: &str,
        serial: &[u8],
        revocation: &Revocation,
        reason_code: u8,
    ) -> Result<RevokeOutcome, StoreError> {
        let _w = self.writing();
        let rev_seq = self.next_id()?;
        let idx_key = key(issuer_ca_id, serial);
        let log_key = key(issuer_ca_id, &rev_seq.to_be_bytes());
        let (tree, rec_key) = match &who {
            Revokee::Cert(c) => (&self.certs, c.seq.to_be_bytes().to_vec()),
            Revokee::Ca(c) => (&self.cas, c.id.as_bytes().to_vec()),
        };
        let result = (tree, &self.revoked, &self.rev_log).transaction(|(records, revoked, log)| {
            let Some(raw) = records.get(&rec_key)? else {
                return Err(ConflictableTransactionError::Abort(StoreError::Corrupt(
                    "record vanished".into(),
                )));
            };
            let abort = ConflictableTransactionError::Abort;
            let (written, outcome, updated) = match &who {
                Revokee::Cert(_) => {
                    let mut rec: CertRecord = decode(&raw).map_err(abort)?;
                    let (next, outcome) = next_revocation(rec.revocation.take(), revocation);
                    let Some(next) = next else {
                        return Ok(outcome);
                    };
                    rec.revocation = Some(next.clone());
                    (next, outcome, encode(&rec).map_err(abort)?)
                }
                Revokee::Ca(_) => {
                    let mut rec: CaRecord = decode(&raw).map_err(abort)?;
                    let (next, outcome) = next_revocation(rec.revocation.take(), revocation);
                    let Some(next) = next else {
                        return Ok(outcome);
                    };
                    rec.revocation = Some(next.clone());
                    (next, outcome, encode(&rec).map_err(abort)?)
                }
            };
            // A converted hold keeps its time and gets the new reason, in the index (full
            // CRLs) and as a new log change (delta CRLs).
            let value = entry_value(written.revoked_at.unix_timestamp(), reason_code, rev_seq);
            let log_value = [&[1u8][..], &value[..], serial].concat();
            records.insert(rec_key.as_slice(), updated)?;
            revoked.insert(idx_key.as_slice(), value.as_slice())?;
            log.insert(log_key.as_slice(), log_value.as_slice())?;
            Ok(outcome)
        });
        let outcome = match result {
            Ok(o) => o,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        self.flush()?;
        Ok(outcome)
    }

    /// Release a certificate_hold: clear the record's revocation, drop it from the index,
    /// log the release (delta CRLs list it as removeFromCRL). Returns the record, or None
    /// when it is not on hold (checked here, in the transaction: a hold converted to a
    /// permanent reason meanwhile must not be released).
    pub fn release_hold(
        &self,
        cert: &CertRecord,
        issuer_ca_id: &str,
        serial: &[u8],
        at: OffsetDateTime,
    ) -> Result<Option<CertRecord>, StoreError> {
        let _w = self.writing();
        let rev_seq = self.next_id()?;
        let seq = cert.seq.to_be_bytes();
        let idx_key = key(issuer_ca_id, serial);
        let log_key = key(issuer_ca_id, &rev_seq.to_be_bytes());
        let log_value = [
            &[2u8][..],
            &entry_value(at.unix_timestamp(), 8, rev_seq)[..],
            serial,
        ]
        .concat();
        let result =
            (&self.certs, &self.revoked, &self.rev_log).transaction(|(certs, revoked, log)| {
                let Some(raw) = certs.get(seq)? else {
                    return Err(ConflictableTransactionError::Abort(StoreError::Corrupt(
                        "record vanished".into(),
                    )));
                };
                let mut rec: CertRecord =
                    decode(&raw).map_err(ConflictableTransactionError::Abort)?;
                if !rec.revocation.as_ref().is_some_and(is_hold) {
                    return Ok(None);
                }
                rec.revocation = None;
                certs.insert(
                    &seq,
                    encode(&rec).map_err(ConflictableTransactionError::Abort)?,
                )?;
                revoked.remove(idx_key.as_slice())?;
                log.insert(log_key.as_slice(), log_value.as_slice())?;
                Ok(Some(rec))
            });
        let rec = match result {
            Ok(r) => r,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        if rec.is_some() {
            self.flush()?;
        }
        Ok(rec)
    }

    /// Bulk-load revocation index entries for a CA (migrating another CA's revocations,
    /// benchmarks). Written in batches of 10,000 and flushed at the end; no records or log
    /// entries are made, so these serials appear on full CRLs only.
    pub fn bulk_load_revoked(
        &self,
        ca_id: &str,
        entries: impl IntoIterator<Item = RevokedEntry>,
    ) -> Result<u64, StoreError> {
        let _w = self.writing();
        let mut batch = sled::Batch::default();
        let mut n = 0u64;
        for e in entries {
            batch.insert(
                key(ca_id, &e.serial),
                entry_value(e.revoked_at, e.reason, e.rev_seq),
            );
            n += 1;
            if n.is_multiple_of(10_000) {
                self.revoked.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        self.revoked.apply_batch(batch)?;
        self.flush()?;
        Ok(n)
    }

    /// Every revoked serial of a CA, in index order, streamed to `each`. The highest
    /// revocation-log sequence seen is returned alongside the count.
    pub fn for_each_revoked(
        &self,
        ca_id: &str,
        mut each: impl FnMut(&RevokedEntry) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let prefix = key(ca_id, &[]);
        let mut n = 0u64;
        for item in self.revoked.scan_prefix(&prefix) {
            let (k, v) = item?;
            each(&parse_entry(&k[prefix.len()..], &v)?)?;
            n += 1;
        }
        Ok(n)
    }

    /// The last revocation-log sequence of a CA (0 if none).
    pub fn last_rev_seq(&self, ca_id: &str) -> Result<u64, StoreError> {
        let prefix = key(ca_id, &[]);
        Ok(match self.rev_log.scan_prefix(&prefix).next_back() {
            Some(item) => {
                let (k, _) = item?;
                let tail = &k[prefix.len()..];
                <[u8; 8]>::try_from(tail)
                    .map(u64::from_be_bytes)
                    .unwrap_or(0)
            }
            None => 0,
        })
    }

    /// Changes to a CA's revocations after `after_seq`, in order.
    pub fn rev_changes_since(
        &self,
        ca_id: &str,
        after_seq: u64,
    ) -> Result<Vec<RevChange>, StoreError> {
        let start = key(ca_id, &(after_seq.saturating_add(1)).to_be_bytes());
        let end = key(ca_id, &[0xff; 9]);
        let mut out = Vec::new();
        for item in self.rev_log.range(start..end) {
            let (_, v) = item?;
            if v.len() < 18 {
                return Err(StoreError::Corrupt("revocation log entry".into()));
            }
            let e = parse_entry(&v[18..], &v[1..18])?;
            out.push(match v[0] {
                1 => RevChange::Revoked(e),
                _ => RevChange::Released {
                    serial: e.serial,
                    at: e.revoked_at,
                },
            });
        }
        Ok(out)
    }

    /// Reserve the next CRL number of a CA and make the reservation durable before it is
    /// used, so no number is ever issued twice.
    pub fn reserve_crl_number(&self, ca_id: &str) -> Result<u64, StoreError> {
        let _w = self.writing();
        let next = self
            .crl_numbers
            .update_and_fetch(ca_id.as_bytes(), |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                Some(n.saturating_add(1).to_be_bytes().to_vec())
            })?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| StoreError::Corrupt("CRL number".into()))?;
        self.flush()?;
        Ok(next)
    }

    pub fn crl_meta(&self, ca_id: &str) -> Result<Option<CrlMeta>, StoreError> {
        self.crl_meta
            .get(ca_id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn crl_path(&self, ca_id: &str, delta: bool) -> PathBuf {
        self.crl_dir
            .join(format!("{ca_id}{}.crl", if delta { ".delta" } else { "" }))
    }

    /// Publish a full CRL: file first (atomically), then its metadata, unless a CRL with
    /// a higher number was published meanwhile. Returns whether this one was published.
    pub fn publish_crl(&self, ca_id: &str, meta: &CrlMeta, der: &[u8]) -> Result<bool, StoreError> {
        let _w = self.writing();
        if self
            .crl_meta(ca_id)?
            .is_some_and(|m| m.number >= meta.number)
        {
            return Ok(false);
        }
        let staged = self
            .crl_path(ca_id, false)
            .with_extension(format!("{}.tmp", meta.number));
        write_file_atomically(&staged, &self.crl_path(ca_id, false), der)?;
        self.crl_meta.insert(ca_id.as_bytes(), encode(meta)?)?;
        self.flush()?;
        Ok(true)
    }

    /// Publish a delta CRL alongside the current full CRL's metadata.
    pub fn publish_delta(
        &self,
        ca_id: &str,
        delta: &DeltaMeta,
        der: &[u8],
    ) -> Result<bool, StoreError> {
        let _w = self.writing();
        let Some(mut meta) = self.crl_meta(ca_id)? else {
            return Ok(false);
        };
        let base_matches = meta
            .delta_base
            .is_some_and(|b| b.number == delta.base_number);
        if meta
            .delta
            .as_ref()
            .is_some_and(|d| d.number >= delta.number)
            || !base_matches
        {
            return Ok(false);
        }
        let staged = self
            .crl_path(ca_id, true)
            .with_extension(format!("{}.tmp", delta.number));
        write_file_atomically(&staged, &self.crl_path(ca_id, true), der)?;
        meta.delta = Some(delta.clone());
        self.crl_meta.insert(ca_id.as_bytes(), encode(&meta)?)?;
        self.flush()?;
        Ok(true)
    }

    /// The published CRL (or delta CRL) file of a CA.
    pub fn read_crl(&self, ca_id: &str, delta: bool) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(self.crl_path(ca_id, delta)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Backend(format!("reading a CRL file: {e}"))),
        }
    }
}

/// Write to a temporary file, fsync, rename over the target, fsync the directory.
fn write_file_atomically(
    tmp: &std::path::Path,
    target: &std::path::Path,
    data: &[u8],
) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Backend(format!("writing {}: {e}", target.display()));
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut f = std::fs::File::create(tmp).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(tmp, target).map_err(io)?;
    if let Some(dir) = target.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}
