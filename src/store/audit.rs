//! The audit log's storage: entries by sequence number, signed chain heads, and the
//! reference to the token key that signs them. What an entry means, how it is chained
//! and how heads are signed is `service::audit`'s business; here they are bytes.

use super::{Store, StoreError, Ticket};

const AUDIT_KEY: &[u8] = b"audit_key";

impl Store {
    /// Append one entry (its exact bytes are what the chain hashes). Not flushed: the
    /// caller waits on the ticket, sharing the flush with everyone else (group commit).
    pub fn append_audit(&self, seq: u64, bytes: &[u8]) -> Result<Ticket, StoreError> {
        let _w = self.writing();
        self.audit.insert(seq.to_be_bytes(), bytes)?;
        Ok(self.ticket())
    }

    /// The last entry, if any: (sequence number, bytes).
    pub fn last_audit(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self.audit.last()? {
            Some((k, v)) => Ok(Some((seq_of(&k)?, v.to_vec()))),
            None => Ok(None),
        }
    }

    /// Entries with a sequence number above `after`, in order, at most `limit`.
    pub fn audit_after(
        &self,
        after: u64,
        limit: usize,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let start = after.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        if after == u64::MAX {
            return Ok(out);
        }
        for item in self.audit.range(start..) {
            let (k, v) = item?;
            if keep(&v) {
                out.push((seq_of(&k)?, v.to_vec()));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One entry's bytes.
    pub fn audit_entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.audit.get(seq.to_be_bytes())?.map(|v| v.to_vec()))
    }

    /// Every entry in order, for offline verification.
    pub fn audit_entries(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + '_ {
        self.audit.iter().map(|item| {
            let (k, v) = item?;
            Ok((seq_of(&k)?, v.to_vec()))
        })
    }

    /// Record a signed head (the caller's serialised form) for entry `seq`, then flush.
    pub fn put_audit_head(&self, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let _w = self.writing();
        self.audit_heads.insert(seq.to_be_bytes(), bytes)?;
        self.flush()
    }

    pub fn last_audit_head(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self.audit_heads.last()? {
            Some((k, v)) => Ok(Some((seq_of(&k)?, v.to_vec()))),
            None => Ok(None),
        }
    }

    pub fn audit_heads(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + '_ {
        self.audit_heads.iter().map(|item| {
            let (k, v) = item?;
            Ok((seq_of(&k)?, v.to_vec()))
        })
    }

    /// The audit signing key's reference, as the service serialised it.
    pub fn audit_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(AUDIT_KEY)?.map(|v| v.to_vec()))
    }

    /// Record the audit signing key once; false if one was already recorded.
    pub fn set_audit_key(&self, bytes: &[u8]) -> Result<bool, StoreError> {
        let _w = self.writing();
        let done = self
            .meta
            .compare_and_swap(AUDIT_KEY, None as Option<&[u8]>, Some(bytes))?
            .is_ok();
        self.flush()?;
        Ok(done)
    }

    /// Remove every entry and signed head after `seq`, as someone who can write the disk
    /// could. Only for tests of tamper detection.
    #[doc(hidden)]
    pub fn tamper_truncate_audit(&self, seq: u64) -> Result<(), StoreError> {
        let _w = self.writing();
        let from = seq.saturating_add(1).to_be_bytes();
        for tree in [&self.audit, &self.audit_heads] {
            let keys: Vec<_> = tree.range(from..).keys().collect::<Result<_, _>>()?;
            for k in keys {
                tree.remove(k)?;
            }
        }
        self.flush()
    }

    /// Overwrite one stored entry's bytes. Only for tests of tamper detection.
    #[doc(hidden)]
    pub fn tamper_audit_entry(&self, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let _w = self.writing();
        self.audit.insert(seq.to_be_bytes(), bytes)?;
        self.flush()
    }
}

fn seq_of(k: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(k)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("audit key is not a sequence number".into()))
}
