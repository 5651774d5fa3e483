//! The audit log: one hash-chained entry per state-changing request, private-key
//! retrieval and refused authorization; chain heads signed by a key in the token.
//!
//! Each entry records the SHA-256 of the previous entry's stored bytes, so changing,
//! inserting or removing an entry breaks the chain at that point. Someone who can write
//! the disk could rewrite the whole chain after the change, so every `sign_every` entries
//! (and every `sign_interval`, when anything is new) the head — its sequence number and
//! hash — is signed by an ECDSA P-256 key that never leaves the token. A rewritten chain
//! no longer matches the signed heads, and new heads cannot be forged without the token.
//! Entries never hold secrets: no token secret, PIN, key or certificate body.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Pki, Principal, ServiceError};
use crate::hsm::{KeyRef, Token};
use crate::keys::{KeySpec, SignatureAlgorithm};
use crate::store::{Store, Ticket};
use crate::types::{now, rfc3339};

/// Label of the token key pair that signs chain heads.
pub const AUDIT_KEY_LABEL: &str = "scaivault-audit-v1";
/// Domain separation for what the audit key signs.
const HEAD_CONTEXT: &str = "scaivault-audit-head-v1";
/// Label prefix of the token data object that holds the newest signed head: the anchor a
/// truncated or rolled-back log is measured against. The audit key's id (hex) follows, so
/// logs of several stores on one token keep apart.
pub const AUDIT_ANCHOR_LABEL: &str = "scaivault-audit-anchor-v1";

fn anchor_label(key: &AuditKeyRecord) -> String {
    format!("{AUDIT_ANCHOR_LABEL}:{}", key.id_hex)
}
/// The action of the entry that records an accepted rollback.
pub const ROLLBACK_ACCEPTED: &str = "audit.rollback_accepted";
/// The `prev_hash` of the first entry.
const GENESIS: [u8; 32] = [0; 32];

/// When chain heads are signed.
#[derive(Debug, Clone, Copy)]
pub struct AuditSettings {
    /// Sign the head after this many new entries...
    pub sign_every: u64,
    /// ...or after this long, when there is anything unsigned.
    pub sign_interval: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            sign_every: 100,
            sign_interval: Duration::from_secs(300),
        }
    }
}

/// What happened, as the caller of [`Pki::audit`] tells it.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub token_id: Option<String>,
    pub tenant: Option<String>,
    /// E.g. `cert.issue`, `ca.create`, `auth.denied`.
    pub action: String,
    pub object_id: Option<String>,
    /// `success`, or `error:<code>` with the error code the client got.
    pub outcome: String,
    pub request_id: Option<String>,
}

/// One stored entry. Field order is the serialised order; the stored bytes are hashed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: u64,
    pub time: String,
    pub token_id: Option<String>,
    pub tenant: Option<String>,
    pub action: String,
    pub object_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    /// Hex SHA-256 of the previous entry's stored bytes (zeros for the first).
    pub prev_hash: String,
}

/// A signed chain head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedHead {
    pub seq: u64,
    /// Hex SHA-256 of entry `seq`'s stored bytes.
    pub entry_hash: String,
    pub signed_at: String,
    /// Hex SHA-256 of the signing key's SubjectPublicKeyInfo.
    pub key_sha256: String,
    /// DER ECDSA signature, base64, over SHA-256 of [`head_message`].
    pub signature: String,
}

/// The newest signed head as the token keeps it. Signed heads alone cannot show that the
/// newest of them were deleted along with the entries they cover; the token, which the
/// host's files cannot roll back, can.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditAnchor {
    pub seq: u64,
    pub entry_hash: String,
    pub signed_at: String,
}

/// How the store's log compares with the token's anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorState {
    /// The token holds no anchor for this log yet: a new log, or one older than anchors.
    Absent,
    /// The anchored entry is in the store, unchanged.
    Consistent(AuditAnchor),
    /// The anchored entry is gone or different: signed entries were removed or rewritten
    /// (or the store was restored from an older backup).
    RolledBack {
        anchor: AuditAnchor,
        store_last: u64,
    },
}

impl AnchorState {
    /// What is wrong, in a sentence; None when nothing is.
    pub fn problem(&self) -> Option<String> {
        match self {
            AnchorState::RolledBack { anchor, store_last } => Some(if *store_last < anchor.seq {
                format!(
                    "the token's anchor records signed entry {} (signed at {}), but the log \
                     ends at entry {store_last}: signed entries were removed",
                    anchor.seq, anchor.signed_at
                )
            } else {
                format!(
                    "entry {} is not the entry the token's anchor records (signed at {}): \
                     the log was rewritten",
                    anchor.seq, anchor.signed_at
                )
            }),
            _ => None,
        }
    }
}

/// The token's anchor for the audit log in `store`, if it holds one.
pub fn token_anchor(store: &Store, token: &Token) -> Result<Option<AuditAnchor>, ServiceError> {
    match stored_audit_key(store)? {
        Some(key) => anchor_of(token, &key),
        None => Ok(None),
    }
}

/// The audit key the store records, if any.
fn stored_audit_key(store: &Store) -> Result<Option<AuditKeyRecord>, ServiceError> {
    store
        .audit_key()?
        .map(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| ServiceError::Internal(format!("stored audit key: {e}")))
        })
        .transpose()
}

/// The token's anchor for the log signed by `key`, if it holds one.
fn anchor_of(token: &Token, key: &AuditKeyRecord) -> Result<Option<AuditAnchor>, ServiceError> {
    let mut newest: Option<AuditAnchor> = None;
    // Two only after a crash while it was replaced; the higher is the newer, except after
    // an accepted rollback, which then still shows as one and can be accepted again.
    for value in token.read_data_objects(&anchor_label(key))? {
        let a: AuditAnchor = serde_json::from_slice(&value)
            .map_err(|e| ServiceError::Internal(format!("the token's audit anchor: {e}")))?;
        if newest.as_ref().is_none_or(|n| a.seq > n.seq) {
            newest = Some(a);
        }
    }
    Ok(newest)
}

/// Compare the store's log with `anchor` (None: the token holds none).
pub fn compare_with_anchor(
    store: &Store,
    anchor: Option<AuditAnchor>,
) -> Result<AnchorState, ServiceError> {
    let Some(anchor) = anchor else {
        return Ok(AnchorState::Absent);
    };
    Ok(match store.audit_entry(anchor.seq)? {
        Some(bytes) if sha256_hex(&bytes) == anchor.entry_hash => AnchorState::Consistent(anchor),
        _ => AnchorState::RolledBack {
            anchor,
            store_last: store.last_audit()?.map_or(0, |(seq, _)| seq),
        },
    })
}

/// The audit key as the store records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditKeyRecord {
    pub label: String,
    pub id_hex: String,
    /// DER SubjectPublicKeyInfo, base64.
    pub spki: String,
}

impl AuditKeyRecord {
    pub fn key_ref(&self) -> Result<KeyRef, ServiceError> {
        Ok(KeyRef {
            label: self.label.clone(),
            id: hex::decode(&self.id_hex)
                .map_err(|e| ServiceError::Internal(format!("stored audit key id: {e}")))?,
        })
    }

    pub fn spki_der(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.spki)
            .map_err(|e| format!("the stored audit key is not base64: {e}"))
    }
}

/// The bytes the audit key signs for a head.
pub fn head_message(seq: u64, entry_hash_hex: &str) -> Vec<u8> {
    format!("{HEAD_CONTEXT}\n{seq}\n{entry_hash_hex}\n").into_bytes()
}

pub(super) fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Does `signature` (DER) verify over `message` as ECDSA P-256 with SHA-256 under `spki`?
/// What the audit key signs: chain heads here, backups in `service::backup`.
pub(super) fn ecdsa_p256_verifies(spki: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let alg = spki::AlgorithmIdentifierOwned {
        oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
        parameters: None,
    };
    crate::ca::verify::verify_by_algorithm(spki, &alg, message, signature).is_ok()
}

/// The chain's tip, kept in memory so appends don't read the store.
#[derive(Debug, Clone)]
struct Tip {
    next_seq: u64,
    last_hash: String,
}

/// The running audit log: the chain tip and the head-signing worker's state.
#[derive(Default)]
pub struct AuditLog {
    tip: Mutex<Option<Tip>>,
    signer: Arc<(Mutex<SignerState>, Condvar)>,
}

#[derive(Default)]
struct SignerState {
    /// Entries appended since the last signed head.
    unsigned: u64,
    oldest_unsigned: Option<Instant>,
    stop: bool,
}

impl AuditLog {
    fn tip(&self, store: &Store) -> Result<std::sync::MutexGuard<'_, Option<Tip>>, ServiceError> {
        let mut guard = self.tip.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(match store.last_audit()? {
                Some((seq, bytes)) => Tip {
                    next_seq: seq + 1,
                    last_hash: sha256_hex(&bytes),
                },
                None => Tip {
                    next_seq: 1,
                    last_hash: hex::encode(GENESIS),
                },
            });
        }
        Ok(guard)
    }
}

/// A page of entries for `GET /v1/audit`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `since` for the next page; None when this page is the end.
    pub next: Option<u64>,
}

/// Largest page `GET /v1/audit` returns.
pub const MAX_AUDIT_PAGE: usize = 1000;

impl Pki {
    /// Append one entry and wait until it is durable. Entries are serialised by the tip
    /// lock, so sequence numbers are dense and each entry links to the one before it.
    pub fn audit(&self, ev: AuditEvent) -> Result<u64, ServiceError> {
        let (seq, ticket) = self.stage_audit_seq(ev)?;
        self.store.wait_durable(ticket)?;
        self.audit_committed();
        Ok(seq)
    }

    /// Append an entry without waiting for it to be durable; the caller waits on the
    /// ticket (with whatever else it wrote), then calls `audit_committed`.
    pub(super) fn stage_audit(&self, ev: AuditEvent) -> Result<Ticket, ServiceError> {
        Ok(self.stage_audit_seq(ev)?.1)
    }

    fn stage_audit_seq(&self, ev: AuditEvent) -> Result<(u64, Ticket), ServiceError> {
        let (seq, ticket) = {
            let mut guard = self.audit.tip(&self.store)?;
            let Some(tip) = guard.as_mut() else {
                return Err(ServiceError::Internal("audit tip not loaded".into()));
            };
            let entry = AuditEntry {
                seq: tip.next_seq,
                time: rfc3339(now()),
                token_id: ev.token_id,
                tenant: ev.tenant,
                action: ev.action,
                object_id: ev.object_id,
                outcome: ev.outcome,
                request_id: ev.request_id,
                prev_hash: tip.last_hash.clone(),
            };
            let bytes = serde_json::to_vec(&entry)
                .map_err(|e| ServiceError::Internal(format!("audit entry: {e}")))?;
            let ticket = self.store.append_audit(entry.seq, &bytes)?;
            tip.next_seq += 1;
            tip.last_hash = sha256_hex(&bytes);
            (entry.seq, ticket)
        };
        Ok((seq, ticket))
    }

    /// Count a durable entry towards the next signed head.
    pub(super) fn audit_committed(&self) {
        let (lock, cv) = &*self.audit.signer;
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        st.unsigned += 1;
        st.oldest_unsigned.get_or_insert_with(Instant::now);
        if st.unsigned >= self.settings.audit.sign_every {
            cv.notify_all();
        }
    }

    /// Entries after `since`: the caller's tenant only, unless it holds `sys`.
    pub fn audit_entries(
        &self,
        who: &Principal,
        since: u64,
        limit: usize,
    ) -> Result<AuditPage, ServiceError> {
        let limit = limit.clamp(1, MAX_AUDIT_PAGE);
        let all = who.holds(&super::access::Capability::Sys);
        // Each entry is parsed once, here; the store only counts what is kept.
        let mut entries = Vec::new();
        let mut bad = None;
        self.store.audit_after(since, limit, |bytes| {
            match serde_json::from_slice::<AuditEntry>(bytes) {
                Ok(e) if all || e.tenant.as_deref() == Some(who.tenant.as_str()) => {
                    entries.push(e);
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    bad = Some(e.to_string());
                    // Sys reads every entry, so an unreadable one is its error; a tenant's
                    // reader cannot tell whose it was and skips it.
                    all
                }
            }
        })?;
        if let Some(e) = bad {
            if all {
                return Err(ServiceError::Internal(format!("audit entry: {e}")));
            }
            tracing::error!(error = %e, "an audit entry could not be read; run `audit verify`");
        }
        let next = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.seq))
            .flatten();
        Ok(AuditPage { entries, next })
    }

    /// At start: find the audit key recorded in the store, or make one in the token.
    pub fn ensure_audit_key(&self) -> Result<AuditKeyRecord, ServiceError> {
        if let Some(key) = stored_audit_key(&self.store)? {
            return Ok(key);
        }
        use base64::Engine;
        let key = self
            .token
            .generate_key_pair(KeySpec::EcP256, AUDIT_KEY_LABEL)?;
        let rec = AuditKeyRecord {
            label: key.key.label.clone(),
            id_hex: hex::encode(&key.key.id),
            spki: base64::engine::general_purpose::STANDARD.encode(&key.spki_der),
        };
        let bytes = serde_json::to_vec(&rec)
            .map_err(|e| ServiceError::Internal(format!("audit key: {e}")))?;
        if !self.store.set_audit_key(&bytes)? {
            // Someone else recorded one first; theirs is the key.
            let _ = self.token.destroy_key_pair(&key.key);
            return self.ensure_audit_key();
        }
        tracing::info!(label = AUDIT_KEY_LABEL, key_sha256 = %sha256_hex(&key.spki_der),
            "created the audit signing key in the token");
        Ok(rec)
    }

    /// Sign the current chain head if it is not signed yet. Returns the head's sequence
    /// number when one was signed.
    pub fn sign_audit_head(&self) -> Result<Option<u64>, ServiceError> {
        self.sign_head(false)
    }

    /// `rollback_accepted`: the anchor may move back (only [`Pki::accept_audit_rollback`]).
    /// Otherwise a log behind the token's anchor is not signed: signing it would move the
    /// anchor back and hide the rollback.
    fn sign_head(&self, rollback_accepted: bool) -> Result<Option<u64>, ServiceError> {
        let (seq, hash) = {
            let guard = self.audit.tip(&self.store)?;
            match guard.as_ref() {
                Some(t) if t.next_seq > 1 => (t.next_seq - 1, t.last_hash.clone()),
                _ => return Ok(None),
            }
        };
        if let Some((last, _)) = self.store.last_audit_head()? {
            if last >= seq {
                return Ok(None);
            }
        }
        let key = self.ensure_audit_key()?;
        if !rollback_accepted {
            let anchor = anchor_of(&self.token, &key)?;
            if let Some(problem) = compare_with_anchor(&self.store, anchor)?.problem() {
                return Err(ServiceError::Internal(format!(
                    "not signing the audit head: {problem}"
                )));
            }
        }
        let spki = key.spki_der().map_err(ServiceError::Internal)?;
        let key_ref = key.key_ref()?;
        let digest = Sha256::digest(head_message(seq, &hash));
        let sig = self
            .token
            .sign_digest(&key_ref, SignatureAlgorithm::EcdsaSha256, &digest)?;
        use base64::Engine;
        let head = SignedHead {
            seq,
            entry_hash: hash,
            signed_at: rfc3339(now()),
            key_sha256: sha256_hex(&spki),
            signature: base64::engine::general_purpose::STANDARD.encode(sig),
        };
        let bytes = serde_json::to_vec(&head)
            .map_err(|e| ServiceError::Internal(format!("audit head: {e}")))?;
        self.store.put_audit_head(seq, &bytes)?;
        // The store first: a crash in between leaves the anchor one head behind, which
        // the store still matches.
        let anchor = AuditAnchor {
            seq,
            entry_hash: head.entry_hash,
            signed_at: head.signed_at,
        };
        let anchor = serde_json::to_vec(&anchor)
            .map_err(|e| ServiceError::Internal(format!("audit anchor: {e}")))?;
        if let Err(e) = self.token.replace_data_object(&anchor_label(&key), &anchor) {
            // The head is signed and stored; only the truncation check lags a head behind.
            tracing::warn!(error = %e, seq, "cannot update the audit anchor in the token");
        }
        Ok(Some(seq))
    }

    /// Compare the store's log with the token's anchor.
    pub fn audit_anchor_state(&self) -> Result<AnchorState, ServiceError> {
        compare_with_anchor(&self.store, token_anchor(&self.store, &self.token)?)
    }

    /// After a restore from an older backup (or a rollback found by `audit verify`): record
    /// in the log itself that the entries after what the store holds were lost, and anchor
    /// the log where it now ends. Every rollback thus leaves a signed entry behind. Returns
    /// the anchor that was given up, or None when the log was not rolled back.
    pub fn accept_audit_rollback(&self, actor: &str) -> Result<Option<AuditAnchor>, ServiceError> {
        let AnchorState::RolledBack { anchor, store_last } = self.audit_anchor_state()? else {
            return Ok(None);
        };
        self.audit(AuditEvent {
            token_id: Some(actor.to_string()),
            tenant: None,
            action: ROLLBACK_ACCEPTED.into(),
            object_id: Some(format!(
                "anchor entry {} sha256 {} signed at {}; log ended at entry {store_last}",
                anchor.seq, anchor.entry_hash, anchor.signed_at
            )),
            outcome: "success".into(),
            request_id: None,
        })?;
        self.sign_head(true)?;
        Ok(Some(anchor))
    }

    /// Start the worker that signs heads every `sign_every` entries, or `sign_interval`
    /// after the oldest unsigned entry, and once more when asked to stop.
    pub fn start_audit_signer(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let pki = Arc::clone(self);
        std::thread::spawn(move || loop {
            let every = pki.settings.audit.sign_every;
            let interval = pki.settings.audit.sign_interval;
            let stop = {
                let (lock, cv) = &*pki.audit.signer;
                let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let overdue = st.oldest_unsigned.map(|t| t.elapsed() >= interval);
                    if st.stop || st.unsigned >= every || overdue == Some(true) {
                        break;
                    }
                    let wait = match st.oldest_unsigned {
                        Some(t) => interval.saturating_sub(t.elapsed()),
                        None => interval,
                    };
                    st = cv
                        .wait_timeout(st, wait.max(Duration::from_millis(10)))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                st.unsigned = 0;
                st.oldest_unsigned = None;
                st.stop
            };
            match pki.sign_audit_head() {
                Ok(Some(seq)) => tracing::debug!(seq, "signed the audit chain head"),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot sign the audit chain head; will retry");
                    if !stop {
                        let (lock, _) = &*pki.audit.signer;
                        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
                        st.unsigned = st.unsigned.max(1);
                        st.oldest_unsigned.get_or_insert_with(Instant::now);
                    }
                }
            }
            if stop {
                return;
            }
        })
    }

    /// Ask the head signer to sign a last head and stop.
    pub fn stop_audit_signer(&self) {
        let (lock, cv) = &*self.audit.signer;
        lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        cv.notify_all();
    }
}

/// What `audit verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub heads: u64,
    pub last_signed_seq: Option<u64>,
    /// Entries after the last signed head: intact as far as the chain tells, but not yet
    /// covered by a signature.
    pub unsigned_tail: u64,
    pub key_sha256: Option<String>,
    /// How the log compares with the token's anchor: `consistent`, `absent` (the token
    /// holds none yet), `rolled_back`, or `not_checked` (verified without the token).
    pub anchor: &'static str,
    /// Rollbacks an operator accepted (after a restore from an older backup, say), each
    /// as the entry that records it says.
    pub rollbacks_accepted: Vec<String>,
    /// Every problem, in order; empty when the log verifies.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    /// The entry (or head) at which the log breaks.
    pub seq: u64,
    pub what: String,
}

/// Check a whole log offline: every link of the chain, every signed head against the
/// audit key, and that no signed entry is missing.
pub fn verify_log(store: &Store) -> Result<VerifyReport, String> {
    let mut rep = VerifyReport {
        entries: 0,
        heads: 0,
        last_signed_seq: None,
        unsigned_tail: 0,
        key_sha256: None,
        anchor: "not_checked",
        rollbacks_accepted: Vec::new(),
        problems: Vec::new(),
    };
    let key: Option<AuditKeyRecord> = match store.audit_key().map_err(|e| e.to_string())? {
        Some(b) => Some(serde_json::from_slice(&b).map_err(|e| format!("stored audit key: {e}"))?),
        None => None,
    };
    let spki = key.as_ref().map(|k| k.spki_der()).transpose()?;
    rep.key_sha256 = spki.as_deref().map(sha256_hex);

    // Pass 1: the chain. Remember each entry's hash for the heads.
    let mut hashes = std::collections::BTreeMap::new();
    let mut prev: Option<(u64, String)> = None;
    for item in store.audit_entries() {
        let (seq, bytes) = item.map_err(|e| e.to_string())?;
        rep.entries += 1;
        let hash = sha256_hex(&bytes);
        match serde_json::from_slice::<AuditEntry>(&bytes) {
            Err(e) => rep.problems.push(Problem {
                seq,
                what: format!("entry {seq} is not a readable audit entry ({e})"),
            }),
            Ok(entry) => {
                if entry.action == ROLLBACK_ACCEPTED {
                    rep.rollbacks_accepted.push(format!(
                        "entry {seq} ({}, by {}): {}",
                        entry.time,
                        entry.token_id.as_deref().unwrap_or("unknown"),
                        entry.object_id.as_deref().unwrap_or("")
                    ));
                }
                let (expect_seq, expect_hash) = match &prev {
                    Some((s, h)) => (s + 1, h.clone()),
                    None => (1, hex::encode(GENESIS)),
                };
                if seq != expect_seq {
                    rep.problems.push(Problem {
                        seq: expect_seq,
                        what: format!(
                            "entries {expect_seq} to {} are missing",
                            seq.saturating_sub(1)
                        ),
                    });
                } else if entry.seq != seq {
                    // A misplaced entry (entries swapped or moved): its link says nothing
                    // about the entry before it.
                    rep.problems.push(Problem {
                        seq,
                        what: format!("entry stored at {seq} says it is entry {}", entry.seq),
                    });
                } else if entry.prev_hash != expect_hash {
                    // The link from seq-1 to seq is broken: entry seq-1's bytes are not
                    // what entry seq recorded (or entry seq's link itself was changed).
                    let at = seq.saturating_sub(1).max(1);
                    rep.problems.push(Problem {
                        seq: at,
                        what: format!(
                            "entry {at} does not hash to the value entry {seq} records: \
                             entry {at} (or the link in entry {seq}) was altered"
                        ),
                    });
                }
            }
        }
        hashes.insert(seq, hash.clone());
        prev = Some((seq, hash));
    }
    let last_seq = prev.as_ref().map(|(s, _)| *s).unwrap_or(0);

    // Pass 2: the signed heads.
    for item in store.audit_heads() {
        let (seq, bytes) = item.map_err(|e| e.to_string())?;
        rep.heads += 1;
        let head: SignedHead = match serde_json::from_slice(&bytes) {
            Ok(h) => h,
            Err(e) => {
                rep.problems.push(Problem {
                    seq,
                    what: format!("the signed head at {seq} is unreadable ({e})"),
                });
                continue;
            }
        };
        let Some(spki) = &spki else {
            rep.problems.push(Problem {
                seq,
                what: "signed heads exist but the store records no audit key".into(),
            });
            break;
        };
        if !signature_ok(spki, &head) {
            rep.problems.push(Problem {
                seq,
                what: format!(
                    "the signature on the head at entry {seq} does not verify with the audit key"
                ),
            });
            continue;
        }
        match hashes.get(&head.seq) {
            None => rep.problems.push(Problem {
                seq: head.seq,
                what: format!(
                    "entry {} was signed as the chain head but is gone: the log was truncated",
                    head.seq
                ),
            }),
            Some(h) if *h != head.entry_hash => rep.problems.push(Problem {
                seq: head.seq,
                what: format!(
                    "entry {} no longer matches its signed head: the chain up to it was rewritten",
                    head.seq
                ),
            }),
            Some(_) => rep.last_signed_seq = Some(rep.last_signed_seq.unwrap_or(0).max(head.seq)),
        }
    }
    rep.unsigned_tail = last_seq - rep.last_signed_seq.unwrap_or(0).min(last_seq);
    rep.problems.sort_by_key(|p| p.seq);
    Ok(rep)
}

fn signature_ok(spki: &[u8], head: &SignedHead) -> bool {
    use base64::Engine;
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(&head.signature) else {
        return false;
    };
    ecdsa_p256_verifies(spki, &head_message(head.seq, &head.entry_hash), &sig)
}
