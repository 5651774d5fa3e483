//! Certificate records and their indexes.
//!
//! `certs` is keyed by a monotonic sequence number, so issuance order is key order and a
//! cursor (the last key seen) visits every certificate once even while new ones arrive.
//! Index trees hold `prefix \0 [notAfter] seq` keys with empty values:
//! by tenant, by issuing CA, and by expiry within each.

use time::OffsetDateTime;

use super::{decode, encode, Store, StoreError, Ticket};
use crate::store::CertRecord;

/// Which certificates to list.
pub struct CertQuery<'a> {
    pub tenant: &'a str,
    pub ca_id: Option<&'a str>,
    /// Only certificates with notAfter in [from, until), ordered by notAfter.
    pub expiring: Option<(OffsetDateTime, OffsetDateTime)>,
    pub limit: usize,
    /// Opaque position from a previous page.
    pub after: Option<Vec<u8>>,
    /// How many records at most to look at before returning a short page with a cursor,
    /// so that a rare filter can't turn one request into a full scan.
    pub scan_budget: usize,
}

pub struct CertPage {
    pub items: Vec<CertRecord>,
    /// Where the next page starts; None when the listing is complete.
    pub next: Option<Vec<u8>>,
}

/// A `certidx` key: a one-byte tag, then the parts.
///
/// | tag | key                             | value |
/// |-----|---------------------------------|-------|
/// | `u` | issuer `\0` serial_hex          | id (one serial per issuer) |
/// | `s` | tenant `\0` serial_hex `\0` id  | — (find by serial) |
/// | `i` | id                              | seq   |
/// | `t` | tenant `\0` seq                 | —     |
/// | `T` | tenant `\0` notAfter seq        | —     |
/// | `c` | ca `\0` seq                     | —     |
/// | `C` | ca `\0` notAfter seq            | —     |
fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(tag);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Expiry as a big-endian sortable number (seconds since 1970, offset to stay positive).
fn exp_bytes(t: OffsetDateTime) -> [u8; 8] {
    ((t.unix_timestamp() as i128 + (1i128 << 62)) as u64).to_be_bytes()
}

impl Store {
    /// Store a new certificate with its indexes, atomically, and wait until it is durable.
    pub fn insert_cert(&self, rec: &mut CertRecord) -> Result<(), StoreError> {
        let ticket = self.stage_cert(rec)?;
        self.wait_durable(ticket)
    }

    /// Write a new certificate with its indexes, atomically, and return the ticket to wait
    /// on before anyone is told about it. The serial must be unused for its issuer
    /// (imported certificates: the same certificate must not be tracked yet).
    pub fn stage_cert(&self, rec: &mut CertRecord) -> Result<Ticket, StoreError> {
        let _w = self.writing();
        rec.seq = self.next_id()?;
        let seq = rec.seq.to_be_bytes();
        let value = encode(&*rec)?;
        let serial_key = match &rec.issuer_ca_id {
            Some(ca) => super::serial_key(ca, &rec.serial_hex),
            None => super::serial_key("imported", &hex::encode(sha256(&rec.certificate_der))),
        };
        let exp = exp_bytes(rec.not_after);
        let by_serial = super::revocations::serial_index_key(&rec.tenant, &rec.serial_hex, &rec.id);

        // 1. Reserve the serial: unique per issuer, decided atomically by one key.
        if self
            .certidx
            .compare_and_swap(&serial_key, None as Option<&[u8]>, Some(rec.id.as_bytes()))?
            .is_err()
        {
            return Err(StoreError::SerialTaken(rec.serial_hex.clone()));
        }
        // 2. The record, then 3. its indexes in one atomic batch. sled recovers a prefix of
        // its log, so after a crash there is either nothing, a reserved serial, a record
        // nothing points to yet, or the whole entry; and nobody was told of the
        // certificate before the flush that makes all of it durable.
        self.certs.insert(seq, value)?;
        let mut batch = sled::Batch::default();
        batch.insert(key(b'i', &[rec.id.as_bytes()]), &seq);
        batch.insert(key(b't', &[rec.tenant.as_bytes(), b"\0", &seq]), &[]);
        batch.insert(key(b'T', &[rec.tenant.as_bytes(), b"\0", &exp, &seq]), &[]);
        batch.insert(by_serial, &[]);
        if let Some(ca) = &rec.issuer_ca_id {
            batch.insert(key(b'c', &[ca.as_bytes(), b"\0", &seq]), &[]);
            batch.insert(key(b'C', &[ca.as_bytes(), b"\0", &exp, &seq]), &[]);
        }
        self.certidx.apply_batch(batch)?;
        if let Some(ca) = &rec.issuer_ca_id {
            // A merge, not a read-modify-write: concurrent issuers of one CA don't conflict.
            self.ca_counts.merge(ca.as_bytes(), 1u64.to_be_bytes())?;
        }
        Ok(self.ticket())
    }

    pub fn get_cert(&self, id: &str) -> Result<Option<CertRecord>, StoreError> {
        let Some(seq) = self.certidx.get(key(b'i', &[id.as_bytes()]))? else {
            return Ok(None);
        };
        self.certs.get(seq)?.map(|v| decode(&v)).transpose()
    }

    /// Replace a certificate record (e.g. to record its revocation), then flush.
    pub fn update_cert(
        &self,
        id: &str,
        change: impl Fn(&mut CertRecord),
    ) -> Result<Option<CertRecord>, StoreError> {
        let _w = self.writing();
        let Some(seq) = self.certidx.get(key(b'i', &[id.as_bytes()]))? else {
            return Ok(None);
        };
        loop {
            let Some(old) = self.certs.get(&seq)? else {
                return Ok(None);
            };
            let mut rec: CertRecord = decode(&old)?;
            change(&mut rec);
            let new = encode(&rec)?;
            if self
                .certs
                .compare_and_swap(&seq, Some(old), Some(new))?
                .is_ok()
            {
                self.flush()?;
                return Ok(Some(rec));
            }
        }
    }

    /// The id of the certificate an issuer signed with this serial, if any.
    pub fn cert_id_by_serial(
        &self,
        issuer: &str,
        serial_hex: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .certidx
            .get(super::serial_key(issuer, serial_hex))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// How many certificates a CA has issued.
    pub fn ca_issued_count(&self, ca_id: &str) -> Result<u64, StoreError> {
        Ok(self
            .ca_counts
            .get(ca_id.as_bytes())?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// One page of certificates, filtered by `keep`.
    pub fn list_certs(
        &self,
        q: &CertQuery<'_>,
        keep: impl Fn(&CertRecord) -> bool,
    ) -> Result<CertPage, StoreError> {
        let tree = &self.certidx;
        let prefix = match (q.ca_id, q.expiring.is_some()) {
            (Some(ca), false) => key(b'c', &[ca.as_bytes(), b"\0"]),
            (Some(ca), true) => key(b'C', &[ca.as_bytes(), b"\0"]),
            (None, false) => key(b't', &[q.tenant.as_bytes(), b"\0"]),
            (None, true) => key(b'T', &[q.tenant.as_bytes(), b"\0"]),
        };
        let start = match (&q.after, q.expiring) {
            (Some(after), _) => {
                // Strictly after the cursor key.
                let mut k = [prefix.as_slice(), after].concat();
                k.push(0);
                k
            }
            (None, Some((from, _))) => [prefix.as_slice(), &exp_bytes(from)].concat(),
            (None, None) => prefix.clone(),
        };
        let end = match q.expiring {
            Some((_, until)) => [prefix.as_slice(), &exp_bytes(until)].concat(),
            None => {
                let mut e = prefix.clone();
                if let Some(last) = e.last_mut() {
                    *last = 1;
                }
                e
            }
        };
        let mut items = Vec::new();
        let mut scanned = 0usize;
        let mut last_key: Option<Vec<u8>> = None;
        for entry in tree.range(start..end.clone()) {
            let (k, _) = entry?;
            let rest = &k[prefix.len()..];
            let seq_bytes = &rest[rest.len().saturating_sub(8)..];
            last_key = Some(rest.to_vec());
            scanned += 1;
            if let Some(v) = self.certs.get(seq_bytes)? {
                let rec: CertRecord = decode(&v)?;
                if rec.tenant == q.tenant && keep(&rec) {
                    items.push(rec);
                }
            }
            if items.len() >= q.limit || scanned >= q.scan_budget {
                break;
            }
        }
        // Is there anything after the last key we looked at?
        let next = match last_key {
            Some(k) if items.len() >= q.limit || scanned >= q.scan_budget => {
                let mut probe = [prefix.as_slice(), &k].concat();
                probe.push(0);
                tree.range(probe..end).next().transpose()?.map(|_| k)
            }
            _ => None,
        };
        Ok(CertPage { items, next })
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}
