//! The metadata store: the only module that touches sled.
//!
//! It keeps CA records, the name and serial indexes that make names unique per tenant and
//! serials unique per issuer, and the hashes of API tokens. Every write that a client will
//! be told about is flushed to disk before the call returns (ARCHITECTURE rule 3).

mod anchors;
mod audit;
pub mod backup;
mod certs;
mod csrs;
mod records;
mod revocations;
mod roles;
mod tokens;

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

pub use anchors::TrustAnchorRecord;
pub use certs::{CertPage, CertQuery};
pub use csrs::{CsrRecord, CsrSource, CsrStatus};
pub use records::{
    ApiTokenRecord, CaRecord, CertRecord, CertSource, Revocation, SealedKey, TenantRecord,
};
pub use revocations::{
    CrlMeta, DeltaBase, DeltaMeta, RevChange, RevokeOutcome, RevokedEntry, Revokee,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("a stored record could not be read: {0}")]
    Corrupt(String),
    #[error("the name {0:?} is already taken")]
    NameTaken(String),
    #[error("serial {0} is already used by this issuer")]
    SerialTaken(String),
    /// sled allows one process per database; the daemon usually is that process.
    #[error("the store in {0} is in use by another process (is the daemon running?)")]
    Locked(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// A handle to the store; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    cas: sled::Tree,
    ca_names: sled::Tree,
    api_tokens: sled::Tree,
    meta: sled::Tree,
    roles: sled::Tree,
    certs: sled::Tree,
    /// Every index over certificates, one tree, keys tagged by their first byte (see
    /// `store::certs`; a transaction over seven trees cost about 0.5 ms of CPU per
    /// certificate).
    certidx: sled::Tree,
    anchors: sled::Tree,
    csrs: sled::Tree,
    ca_counts: sled::Tree,
    revoked: sled::Tree,
    rev_log: sled::Tree,
    crl_numbers: sled::Tree,
    crl_meta: sled::Tree,
    tenants: sled::Tree,
    audit: sled::Tree,
    audit_heads: sled::Tree,
    /// Signed CRLs live as files beside the database.
    crl_dir: std::path::PathBuf,
    durability: std::sync::Arc<GroupCommit>,
    /// Every write takes this shared; a backup takes it exclusively, so it sees no write
    /// half done (a certificate without its indexes, a CRL file without its metadata).
    /// A new method that writes must start with `let _w = self.writing();` and must not
    /// call another writing method while holding it.
    gate: std::sync::Arc<std::sync::RwLock<()>>,
    /// Added to sled's id generator: after a restore into a fresh database the generator
    /// starts again at 0, and sequence numbers (record keys) must never repeat.
    id_floor: u64,
}

/// Proof of a write that is not yet known to be durable (see [`Store::wait_durable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a write is durable only after wait_durable(ticket)"]
pub struct Ticket(u64);

/// Group commit: callers that need their writes on disk share flushes. A flush that
/// starts after a caller's write covers it, so at most one flush runs at a time and every
/// caller waiting when it ends is done — instead of each request paying for its own fsync.
#[derive(Default)]
struct GroupCommit {
    state: std::sync::Mutex<FlushState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct FlushState {
    /// Tickets handed out, one per caller of `flush`.
    requested: u64,
    /// Every ticket up to this one is durable.
    completed: u64,
    running: bool,
}

/// Merge operator for counters: big-endian u64 addition.
fn add_u64(_key: &[u8], old: Option<&[u8]>, delta: &[u8]) -> Option<Vec<u8>> {
    let read = |b: Option<&[u8]>| {
        b.and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
    };
    Some(
        read(old)
            .saturating_add(read(Some(delta)))
            .to_be_bytes()
            .to_vec(),
    )
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn name_key(tenant: &str, name: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0", name.as_bytes()].concat()
}

/// `u issuer \0 serial_hex` → id: one serial per issuer (ARCHITECTURE rule 4).
pub(crate) fn serial_key(issuer: &str, serial_hex: &str) -> Vec<u8> {
    [b"u", issuer.as_bytes(), b"\0", serial_hex.as_bytes()].concat()
}

const BOOTSTRAP_TOKEN_KEY: &[u8] = b"bootstrap_token_id";
/// In `meta`: the id floor (big-endian u64) set by a restore, see `Store::id_floor`.
const ID_FLOOR_KEY: &[u8] = b"id_floor";

/// Open the sled database in `dir`, telling "another process has it" from other failures.
fn open_db(dir: &Path, cache_bytes: Option<u64>) -> Result<sled::Db, StoreError> {
    let mut cfg = sled::Config::new().path(dir);
    if let Some(n) = cache_bytes {
        cfg = cfg.cache_capacity(n);
    }
    cfg.open().map_err(|e| match &e {
        // sled reports its flock failure only as an io error of kind Other with this text.
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked(dir.display().to_string())
        }
        _ => e.into(),
    })
}

impl Store {
    /// Open (or create) the store in `dir`, with sled's default page cache (1 GiB).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, None)
    }

    /// Open (or create) the store in `dir`; `cache_bytes` bounds sled's page cache, the
    /// bulk of the daemon's memory (sled's default is 1 GiB).
    pub fn open_with_cache(dir: &Path, cache_bytes: Option<u64>) -> Result<Self, StoreError> {
        let db = open_db(dir, cache_bytes)?;
        let ca_counts = db.open_tree("ca_counts")?;
        ca_counts.set_merge_operator(add_u64);
        let meta = db.open_tree("meta")?;
        let id_floor = match meta.get(ID_FLOOR_KEY)? {
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("id floor".into()))?,
            None => 0,
        };
        Ok(Store {
            roles: db.open_tree("roles")?,
            certs: db.open_tree("certs")?,
            certidx: db.open_tree("certidx")?,
            anchors: db.open_tree("trust_anchors")?,
            csrs: db.open_tree("csrs")?,
            ca_counts,
            revoked: db.open_tree("revoked")?,
            rev_log: db.open_tree("rev_log")?,
            crl_numbers: db.open_tree("crl_numbers")?,
            crl_meta: db.open_tree("crl_meta")?,
            tenants: db.open_tree("tenants")?,
            audit: db.open_tree("audit")?,
            audit_heads: db.open_tree("audit_heads")?,
            crl_dir: dir.join("crls"),
            durability: Default::default(),
            cas: db.open_tree("cas")?,
            ca_names: db.open_tree("ca_names")?,
            api_tokens: db.open_tree("api_tokens")?,
            meta,
            gate: Default::default(),
            id_floor,
            db,
        })
    }

    /// A shared hold on the write gate, for the length of one write (see `gate`).
    fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A new sequence number, larger than every one handed out before, restores included.
    fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.id_floor.saturating_add(self.db.generate_id()?))
    }

    /// Make every write so far durable. sled's flush is global to the database, so
    /// concurrent callers share the work of one flush (group commit).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.wait_durable(self.ticket())
    }

    /// A ticket for everything written so far; `wait_durable` returns once it is on disk.
    /// Taking the ticket is cheap, so a caller can release what it holds (a worker, a
    /// lock) before waiting.
    pub fn ticket(&self) -> Ticket {
        let mut st = self
            .durability
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        st.requested += 1;
        Ticket(st.requested)
    }

    /// Wait until the writes a ticket covers are durable, taking part in group commit:
    /// if no flush is running this caller runs one for every ticket handed out so far.
    pub fn wait_durable(&self, ticket: Ticket) -> Result<(), StoreError> {
        let gc = &self.durability;
        let mut st = gc.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.completed >= ticket.0 {
                return Ok(());
            }
            if st.running {
                st = gc.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.running = true;
            let target = st.requested;
            drop(st);
            let result = self.db.flush();
            st = gc.state.lock().unwrap_or_else(|p| p.into_inner());
            st.running = false;
            gc.done.notify_all();
            match result {
                Ok(_) => st.completed = st.completed.max(target),
                // Waiters wake, find their ticket not done, and try a flush of their own.
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Store a new CA: its name must be free in its tenant and its certificate serial
    /// unused by its issuer. All three writes happen in one transaction, then flush.
    pub fn insert_ca(&self, rec: &CaRecord) -> Result<(), StoreError> {
        let _w = self.writing();
        let value = encode(rec)?;
        let nkey = name_key(&rec.tenant, &rec.name);
        let issuer = rec.parent_id.as_deref().unwrap_or(&rec.id);
        let skey = serial_key(issuer, &rec.serial_hex);
        let by_serial = revocations::serial_index_key(&rec.tenant, &rec.serial_hex, &rec.id);
        let trees = (&self.cas, &self.ca_names, &self.certidx);
        let result = trees.transaction(|(cas, names, idx)| {
            if names.get(&nkey)?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::NameTaken(
                    rec.name.clone(),
                )));
            }
            if idx.get(&skey)?.is_some() {
                return Err(ConflictableTransactionError::Abort(
                    StoreError::SerialTaken(rec.serial_hex.clone()),
                ));
            }
            names.insert(nkey.as_slice(), rec.id.as_bytes())?;
            idx.insert(skey.as_slice(), rec.id.as_bytes())?;
            // So a CA's own certificate can be revoked by serial, like any other.
            idx.insert(by_serial.as_slice(), &[])?;
            cas.insert(rec.id.as_bytes(), value.as_slice())?;
            Ok(())
        });
        match result {
            Ok(()) => self.flush(),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    pub fn get_ca(&self, id: &str) -> Result<Option<CaRecord>, StoreError> {
        match self.cas.get(id.as_bytes())? {
            Some(v) => {
                let mut rec: CaRecord = decode(&v)?;
                rec.certificates_issued = self.ca_issued_count(&rec.id)?;
                Ok(Some(rec))
            }
            None => Ok(None),
        }
    }

    pub fn ca_name_taken(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self.ca_names.contains_key(name_key(tenant, name))?)
    }

    /// Ids of every CA of every tenant.
    pub fn all_ca_ids(&self) -> Result<Vec<String>, StoreError> {
        self.cas
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// All CAs of a tenant, oldest first.
    pub fn list_cas(&self, tenant: &str) -> Result<Vec<CaRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.cas.iter() {
            let (_, v) = item?;
            let mut rec: CaRecord = decode(&v)?;
            if rec.tenant == tenant {
                rec.certificates_issued = self.ca_issued_count(&rec.id)?;
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Change one CA record atomically (compare-and-swap, retried on a concurrent write),
    /// then flush. Returns the new record, or None when there is no such CA.
    pub fn update_ca(
        &self,
        id: &str,
        change: impl Fn(&mut CaRecord),
    ) -> Result<Option<CaRecord>, StoreError> {
        let _w = self.writing();
        loop {
            let Some(old) = self.cas.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut rec: CaRecord = decode(&old)?;
            change(&mut rec);
            let new = encode(&rec)?;
            if self
                .cas
                .compare_and_swap(id.as_bytes(), Some(old), Some(new))?
                .is_ok()
            {
                self.flush()?;
                return Ok(Some(rec));
            }
        }
    }

    /// Look an API token up by the SHA-256 of its secret.
    pub fn api_token_by_hash(&self, hash: &[u8]) -> Result<Option<ApiTokenRecord>, StoreError> {
        self.api_tokens.get(hash)?.map(|v| decode(&v)).transpose()
    }

    /// The id of the bootstrap admin token, if one was ever made.
    pub fn bootstrap_token_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta
            .get(BOOTSTRAP_TOKEN_KEY)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Record the bootstrap admin token (by hash) once, then flush.
    pub fn insert_bootstrap_token(
        &self,
        hash: &[u8],
        rec: &ApiTokenRecord,
    ) -> Result<(), StoreError> {
        let _w = self.writing();
        let value = encode(rec)?;
        let result = (&self.api_tokens, &self.meta).transaction(|(tokens, meta)| {
            if meta.get(BOOTSTRAP_TOKEN_KEY)?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::NameTaken(
                    "bootstrap token".into(),
                )));
            }
            tokens.insert(hash, value.as_slice())?;
            meta.insert(BOOTSTRAP_TOKEN_KEY, rec.id.as_bytes())?;
            Ok(())
        });
        match result {
            Ok(()) => self.flush(),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeySpec;
    use crate::types::CaType;

    fn rec(id: &str, name: &str, serial: &str) -> CaRecord {
        CaRecord {
            id: id.into(),
            tenant: "default".into(),
            name: name.into(),
            common_name: "X".into(),
            ca_type: CaType::Root,
            parent_id: None,
            key_spec: KeySpec::EcP256,
            key_label: "l".into(),
            key_id: vec![1],
            certificate_der: vec![0x30],
            serial_hex: serial.into(),
            not_before: crate::types::now(),
            not_after: crate::types::now(),
            is_active: true,
            certificates_issued: 0,
            created_at: crate::types::now(),
            revocation: None,
            issuer_chain_pem: None,
        }
    }

    #[test]
    fn a_ca_name_is_unique_within_its_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.insert_ca(&rec("ca_1", "root", "01")).unwrap();
        assert!(matches!(
            s.insert_ca(&rec("ca_2", "root", "02")),
            Err(StoreError::NameTaken(_))
        ));
        let mut other = rec("ca_3", "root", "03");
        other.tenant = "other".into();
        s.insert_ca(&other).unwrap();
        assert_eq!(s.list_cas("default").unwrap().len(), 1);
        assert!(s.get_ca("ca_2").unwrap().is_none());
    }

    #[test]
    fn records_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.insert_ca(&rec("ca_1", "root", "01")).unwrap();
            s.update_ca("ca_1", |r| r.is_active = false).unwrap();
        }
        // sled lets go of its lock when its last I/O job ends, which under load can be a
        // moment after the drop (CI saw Locked here once).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let s = loop {
            match Store::open(dir.path()) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => break other.unwrap(),
            }
        };
        assert!(!s.get_ca("ca_1").unwrap().unwrap().is_active);
    }
}
