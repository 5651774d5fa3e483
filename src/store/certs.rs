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
        // 2. Its indexes, then 3. the record, as separate writes: the record is the commit
        // point. sled recovers a prefix of its log, so after a crash a record exists only
        // with every index key before it; a reserved serial or index keys without a record
        // are what a crash can leave, and every reader skips index keys whose record is
        // missing. Nobody was told of the certificate before the flush that makes all of it
        // durable. (One atomic `apply_batch` did the same job but takes sled's global write
        // lock: measured, it doubled the store's CPU per certificate and made every
        // concurrent reader wait; BENCHMARKS.md.)
        self.certidx.insert(key(b'i', &[rec.id.as_bytes()]), &seq)?;
        self.certidx
            .insert(key(b't', &[rec.tenant.as_bytes(), b"\0", &seq]), &[])?;
        self.certidx
            .insert(key(b'T', &[rec.tenant.as_bytes(), b"\0", &exp, &seq]), &[])?;
        self.certidx.insert(by_serial, &[])?;
        if let Some(ca) = &rec.issuer_ca_id {
            self.certidx
                .insert(key(b'c', &[ca.as_bytes(), b"\0", &seq]), &[])?;
            self.certidx
                .insert(key(b'C', &[ca.as_bytes(), b"\0", &exp, &seq]), &[])?;
            // A merge, not a read-modify-write: concurrent issuers of one CA don't conflict.
            // Counted with the serial: a crash before the record leaves the count one
            // high, as the serial stays used.
            self.ca_counts.merge(ca.as_bytes(), 1u64.to_be_bytes())?;
        }
        self.certs.insert(seq, value)?;
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
        // Where the next page starts: the last key looked at and not returned past.
        let mut last_key: Option<Vec<u8>> = None;
        // Whether a next page has anything: a match beyond this page (looked for, so a
        // filter that matches nothing more doesn't promise more), or keys the scan budget
        // left unexamined.
        let mut more = false;
        for (scanned, entry) in tree.range(start..end).enumerate() {
            let (k, _) = entry?;
            if scanned >= q.scan_budget {
                more = true;
                break;
            }
            let rest = &k[prefix.len()..];
            let seq_bytes = &rest[rest.len().saturating_sub(8)..];
            if let Some(v) = self.certs.get(seq_bytes)? {
                let rec: CertRecord = decode(&v)?;
                if rec.tenant == q.tenant && keep(&rec) {
                    if items.len() >= q.limit {
                        more = true;
                        break;
                    }
                    items.push(rec);
                }
            }
            last_key = Some(rest.to_vec());
        }
        let next = if more { last_key } else { None };
        Ok(CertPage { items, next })
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CertSource;

    fn cert(id: &str, serial: &str) -> CertRecord {
        let now = crate::types::now();
        CertRecord {
            id: id.into(),
            tenant: "default".into(),
            seq: 0,
            issuer_ca_id: Some("ca_1".into()),
            role: Some("web".into()),
            source: CertSource::Signed,
            common_name: "a.example".into(),
            san_dns: vec!["a.example".into()],
            san_ip: vec![],
            san_uri: vec![],
            serial_hex: serial.into(),
            not_before: now,
            not_after: now + time::Duration::days(1),
            key_type: None,
            key_bits: None,
            certificate_der: vec![0x30, 0],
            chain_pem: None,
            sealed_key: None,
            revocation: None,
            requested_by: "tok_x".into(),
            created_at: now,
            token_key_label: None,
            token_key_id: vec![],
            csr_id: None,
        }
    }

    fn everything(s: &Store, ca: Option<&str>, expiring: bool) -> Vec<String> {
        let now = crate::types::now();
        let q = CertQuery {
            tenant: "default",
            ca_id: ca,
            expiring: expiring.then(|| (now, now + time::Duration::days(2))),
            limit: 100,
            after: None,
            scan_budget: 1000,
        };
        s.list_certs(&q, |_| true)
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    /// The record is written after its index keys, so a crash can leave index keys
    /// without a record (sled recovers a prefix of its log); they must be invisible.
    #[test]
    fn index_keys_without_their_record_are_skipped_by_every_reader() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut a = cert("cert_a", "0a");
        let mut b = cert("cert_b", "0b");
        let mut c = cert("cert_c", "0c");
        for r in [&mut a, &mut b, &mut c] {
            let t = s.stage_cert(r).unwrap();
            s.wait_durable(t).unwrap();
        }
        // What a crash just before b's record was written leaves behind.
        s.certs.remove(b.seq.to_be_bytes()).unwrap();

        for (ca, expiring) in [
            (None, false),
            (None, true),
            (Some("ca_1"), false),
            (Some("ca_1"), true),
        ] {
            assert_eq!(
                everything(&s, ca, expiring),
                ["cert_a", "cert_c"],
                "{ca:?} {expiring}"
            );
        }
        assert!(s.get_cert("cert_b").unwrap().is_none());
        assert!(s.update_cert("cert_b", |_| ()).unwrap().is_none());
        assert!(s.get_cert("cert_c").unwrap().is_some());
        // The serial stays used: a new certificate never reuses it.
        let mut again = cert("cert_d", "0b");
        assert!(matches!(
            s.stage_cert(&mut again),
            Err(StoreError::SerialTaken(_))
        ));
        assert_eq!(s.ids_by_serial("default", "0b").unwrap(), ["cert_b"]);
    }
    /// A page that holds the last match says so, even when records that don't match
    /// follow it; a page cut by the limit or the scan budget hands out a cursor.
    #[test]
    fn has_more_only_when_another_match_or_unscanned_keys_follow() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for (i, cn) in ["x", "x", "y", "y", "y"].iter().enumerate() {
            let mut r = cert(&format!("cert_{i}"), &format!("0{i}"));
            r.common_name = (*cn).into();
            let t = s.stage_cert(&mut r).unwrap();
            s.wait_durable(t).unwrap();
        }
        let page = |limit, budget, after| {
            let q = CertQuery {
                tenant: "default",
                ca_id: None,
                expiring: None,
                limit,
                after,
                scan_budget: budget,
            };
            s.list_certs(&q, |r| r.common_name == "x").unwrap()
        };
        let all = page(2, 1000, None);
        assert_eq!(all.items.len(), 2);
        assert!(all.next.is_none(), "nothing else matches");

        let first = page(1, 1000, None);
        assert_eq!(first.items[0].id, "cert_0");
        let second = page(1, 1000, first.next.clone());
        assert_eq!(second.items[0].id, "cert_1");
        assert!(second.next.is_none());

        let short = page(10, 1, None);
        assert_eq!(short.items.len(), 1);
        let rest = page(10, 1000, short.next.clone());
        assert_eq!(
            rest.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["cert_1"]
        );
        assert!(rest.next.is_none());
    }
}
