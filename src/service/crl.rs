//! CRL publication: full and delta CRLs per CA, signed in the token, rebuilt on a timer,
//! shortly after revocations (bursts coalesced), and on request. GETs are served from an
//! in-memory copy of what was last published; nothing is built or signed on that path.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{Pki, ServiceError};
use crate::ca::crl::{sign_crl, CrlKind, RevokedList, SignedCrl, REMOVE_FROM_CRL};
use crate::ca::Issuer;
use crate::policy::Ttl;
use crate::store::{CrlMeta, DeltaBase, DeltaMeta, RevChange};
use crate::types::now;

/// CRL timings and switches, from the `[crl]` configuration section.
#[derive(Debug, Clone)]
pub struct CrlSettings {
    pub next_update: Ttl,
    pub rebuild_interval: Ttl,
    pub rebuild_on_revoke: bool,
    pub revoke_delay: Duration,
    pub delta: bool,
}

impl Default for CrlSettings {
    fn default() -> Self {
        CrlSettings {
            next_update: Ttl::from_secs(72 * 3600),
            rebuild_interval: Ttl::from_secs(3600),
            rebuild_on_revoke: true,
            revoke_delay: Duration::from_secs(1),
            delta: true,
        }
    }
}

/// A published CRL held in memory for GETs.
#[derive(Debug)]
pub struct CachedCrl {
    pub der: Vec<u8>,
    pub etag: String,
    pub number: u64,
    pub next_update: OffsetDateTime,
}

/// Process-wide CRL state of the service.
#[derive(Default)]
pub struct CrlState {
    full: Mutex<HashMap<String, Arc<CachedCrl>>>,
    delta: Mutex<HashMap<String, Arc<CachedCrl>>>,
    /// One build at a time per CA, so numbers are published in order.
    building: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    notify: Mutex<Option<mpsc::Sender<String>>>,
}

fn etag(der: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(&sha2::Sha256::digest(der)[..16]))
}

impl Pki {
    fn build_lock(&self, ca_id: &str) -> Arc<Mutex<()>> {
        let mut m = self.crl.building.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(ca_id.to_string()).or_default().clone()
    }

    fn delta_url(&self, ca_id: &str) -> Option<String> {
        if !self.settings.crl.delta {
            return None;
        }
        self.settings
            .public_base_url
            .as_deref()
            .map(|b| format!("{}/v1/pki/ca/{ca_id}/crl/delta", b.trim_end_matches('/')))
    }

    /// For a certificate that CA `issuer_id` signs: the URL of that CA's CRL and of its
    /// certificate (DER, as AIA fetchers expect), when `public_base_url` is configured.
    pub(crate) fn issuer_urls(&self, issuer_id: &str) -> Option<(String, String)> {
        let base = self
            .settings
            .public_base_url
            .as_deref()?
            .trim_end_matches('/');
        Some((
            format!("{base}/v1/pki/ca/{issuer_id}/crl"),
            format!("{base}/v1/pki/ca/{issuer_id}/certificate?format=der"),
        ))
    }

    /// Build, sign, verify and publish a complete CRL for one CA, which becomes the base of
    /// its delta CRLs (timer, request, creation). Works for inactive and revoked CAs too:
    /// relying parties still need their CRLs.
    pub fn rebuild_crl(&self, ca_id: &str) -> Result<CrlMeta, ServiceError> {
        self.rebuild(ca_id, true)
    }

    /// The rebuild that follows revocations: a new complete CRL, while deltas keep their
    /// base and list everything since it.
    fn rebuild_after_revocation(&self, ca_id: &str) -> Result<CrlMeta, ServiceError> {
        self.rebuild(ca_id, false)
    }

    fn rebuild(&self, ca_id: &str, new_delta_base: bool) -> Result<CrlMeta, ServiceError> {
        let lock = self.build_lock(ca_id);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.ca_public(ca_id)?;

        // Read the log position first: anything revoked during the scan is either in this
        // CRL or has a later sequence number, so the next delta lists it.
        let base_rev_seq = self.store.last_rev_seq(ca_id)?;
        let mut list = RevokedList::default();
        self.store.for_each_revoked(ca_id, |e| {
            let at = OffsetDateTime::from_unix_timestamp(e.revoked_at)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            list.push(&e.serial, at, e.reason);
            Ok(())
        })?;
        let number = self.store.reserve_crl_number(ca_id)?;
        let this_update = now();
        let next_update = this_update + self.settings.crl.next_update.as_duration();
        let freshest = self.delta_url(ca_id);
        let signed = self.sign_crl_for(
            ca_id,
            number,
            this_update,
            next_update,
            list,
            CrlKind::Full {
                freshest: freshest.as_deref(),
            },
        )?;
        let this_base = DeltaBase {
            number,
            rev_seq: base_rev_seq,
            next_update,
        };
        let previous = self.store.crl_meta(ca_id)?;
        let delta_base = match (&previous, new_delta_base) {
            (Some(p), false) => p.delta_base.unwrap_or(this_base),
            _ => this_base,
        };
        let meta = CrlMeta {
            number,
            this_update,
            next_update,
            etag: etag(&signed.der),
            entries: signed.entries,
            size: signed.der.len() as u64,
            base_rev_seq,
            delta: previous.and_then(|p| p.delta),
            delta_base: Some(delta_base),
        };
        if self.store.publish_crl(ca_id, &meta, &signed.der)? {
            self.cache(false, ca_id, signed.der, &meta.etag, number, next_update);
            tracing::info!(
                ca_id,
                number,
                entries = meta.entries,
                bytes = meta.size,
                "CRL published"
            );
        }
        drop(_guard);
        if self.settings.crl.delta {
            self.rebuild_delta(ca_id)?;
        }
        Ok(meta)
    }

    /// Build and publish a delta CRL: every change since the current complete CRL, the
    /// latest change per serial winning; a released hold is listed as removeFromCRL.
    pub fn rebuild_delta(&self, ca_id: &str) -> Result<Option<DeltaMeta>, ServiceError> {
        let lock = self.build_lock(ca_id);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(base) = self.store.crl_meta(ca_id)?.and_then(|m| m.delta_base) else {
            return Ok(None);
        };
        self.ca_public(ca_id)?;

        let mut latest: Vec<(Vec<u8>, i64, u8)> = Vec::new();
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        for change in self.store.rev_changes_since(ca_id, base.rev_seq)? {
            let (serial, at, reason) = match change {
                RevChange::Revoked(e) => (e.serial, e.revoked_at, e.reason),
                RevChange::Released { serial, at } => (serial, at, REMOVE_FROM_CRL),
            };
            match seen.get(&serial) {
                Some(&i) => latest[i] = (serial, at, reason),
                None => {
                    seen.insert(serial.clone(), latest.len());
                    latest.push((serial, at, reason));
                }
            }
        }
        let mut list = RevokedList::with_capacity(latest.len());
        for (serial, at, reason) in &latest {
            let at = OffsetDateTime::from_unix_timestamp(*at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            list.push(serial, at, *reason);
        }
        let number = self.store.reserve_crl_number(ca_id)?;
        let this_update = now();
        // A delta is only as good as its base: it expires with it.
        let next_update = base
            .next_update
            .max(this_update + time::Duration::minutes(1));
        let signed = self.sign_crl_for(
            ca_id,
            number,
            this_update,
            next_update,
            list,
            CrlKind::Delta { base: base.number },
        )?;
        let delta = DeltaMeta {
            number,
            base_number: base.number,
            this_update,
            next_update,
            etag: etag(&signed.der),
            entries: signed.entries,
        };
        if self.store.publish_delta(ca_id, &delta, &signed.der)? {
            self.cache(true, ca_id, signed.der, &delta.etag, number, next_update);
        }
        Ok(Some(delta))
    }

    /// Have the CA's token key sign a CRL (built, then verified, by `ca::crl`).
    fn sign_crl_for(
        &self,
        ca_id: &str,
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        list: RevokedList,
        kind: CrlKind<'_>,
    ) -> Result<SignedCrl, ServiceError> {
        let ca = self.ca_public(ca_id)?;
        let key = ca.key_ref();
        let signer = self.token.signer(&key);
        let issuer = Issuer::from_certificate(&ca.certificate_der, ca.key_spec, &signer)?;
        Ok(sign_crl(
            &issuer,
            number,
            this_update,
            next_update,
            list,
            kind,
        )?)
    }

    fn cache(
        &self,
        delta: bool,
        ca_id: &str,
        der: Vec<u8>,
        etag: &str,
        number: u64,
        next_update: OffsetDateTime,
    ) {
        let map = if delta {
            &self.crl.delta
        } else {
            &self.crl.full
        };
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(ca_id).is_some_and(|c| c.number >= number) {
            return;
        }
        m.insert(
            ca_id.to_string(),
            Arc::new(CachedCrl {
                der,
                etag: etag.to_string(),
                number,
                next_update,
            }),
        );
    }

    /// The last published CRL of a CA, from memory (loaded from disk once after a start).
    pub fn published_crl(&self, ca_id: &str, delta: bool) -> Result<Arc<CachedCrl>, ServiceError> {
        let map = if delta {
            &self.crl.delta
        } else {
            &self.crl.full
        };
        if let Some(c) = map.lock().unwrap_or_else(|p| p.into_inner()).get(ca_id) {
            return Ok(c.clone());
        }
        self.ca_public(ca_id)?;
        let not_yet = || ServiceError::CrlNotAvailable(ca_id.to_string());
        let meta = self.store.crl_meta(ca_id)?.ok_or_else(not_yet)?;
        let der = self.store.read_crl(ca_id, delta)?.ok_or_else(not_yet)?;
        let (number, next_update) = if delta {
            let d = meta.delta.as_ref().ok_or_else(not_yet)?;
            (d.number, d.next_update)
        } else {
            (meta.number, meta.next_update)
        };
        let e = etag(&der);
        self.cache(delta, ca_id, der, &e, number, next_update);
        map.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ca_id)
            .cloned()
            .ok_or_else(not_yet)
    }

    /// A CA's revocations changed: rebuild its CRLs soon (coalesced), if configured to.
    pub(crate) fn crl_changed(&self, ca_id: &str) {
        if !self.settings.crl.rebuild_on_revoke {
            return;
        }
        if let Some(tx) = self
            .crl
            .notify
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = tx.send(ca_id.to_string());
        }
    }

    /// Rebuild every CA's CRL; failures are logged and retried at the next run.
    pub fn rebuild_all_crls(&self) {
        let ids = match self.store.all_ca_ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list CAs for the CRL rebuild");
                return;
            }
        };
        for id in ids {
            if let Err(e) = self.rebuild_crl(&id) {
                tracing::warn!(ca_id = %id, error = %e, "CRL rebuild failed; will retry");
            }
        }
    }

    /// Start the background worker: CAs without a CRL, or with revocations newer than it,
    /// get one now; every CA is rebuilt each `rebuild_interval`; after a revocation its CA
    /// is rebuilt once `revoke_delay` has passed with no further revocation of that burst;
    /// and when the worker is stopped, the rebuilds still waiting are done first.
    pub fn start_crl_worker(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let (tx, rx) = mpsc::channel::<String>();
        *self.crl.notify.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        let pki = Arc::clone(self);
        std::thread::Builder::new()
            .name("crl-worker".into())
            .spawn(move || pki.crl_worker(rx))
            .unwrap_or_else(|e| {
                // Without the worker CRLs still rebuild on POST; say so loudly.
                tracing::error!(error = %e, "cannot start the CRL worker thread");
                std::thread::spawn(|| {})
            })
    }

    fn crl_worker(&self, rx: mpsc::Receiver<String>) {
        let failed = self.catch_up_crls();
        let interval = Duration::from_secs(self.settings.crl.rebuild_interval.as_secs().max(1));
        let delay = self.settings.crl.revoke_delay;
        // However steady a stream of revocations, a CA's CRL is rebuilt at most this long
        // after its first pending revocation.
        let cap = delay.saturating_mul(2).max(Duration::from_millis(500));
        let mut next_full = Instant::now() + interval;
        // Per CA: (first pending revocation, quiet-time deadline). Each CA coalesces its
        // own bursts; one busy CA never holds back another's CRL.
        let mut pending: HashMap<String, (Instant, Instant)> = HashMap::new();
        // A start-up rebuild that failed (token not ready yet) is tried once more shortly.
        let start = Instant::now();
        pending.extend(failed.into_iter().map(|id| (id, (start, start + delay))));
        loop {
            let wake = pending
                .values()
                .map(|(first, due)| (*due).min(*first + cap))
                .min()
                .map_or(next_full, |d| d.min(next_full));
            match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(id) => {
                    let now = Instant::now();
                    let entry = pending.entry(id).or_insert((now, now));
                    entry.1 = now + delay;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Stopping: a revocation already acknowledged must not wait for the
                    // next start (or the timer after it) to reach its CRL.
                    for id in pending.into_keys() {
                        if let Err(e) = self.rebuild_after_revocation(&id) {
                            tracing::warn!(ca_id = %id, error = %e, "CRL rebuild at shutdown failed; the next start rebuilds it");
                        }
                    }
                    return;
                }
            }
            let now = Instant::now();
            let ready: Vec<String> = pending
                .iter()
                .filter(|(_, (first, due))| *due <= now || *first + cap <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in ready {
                pending.remove(&id);
                if let Err(e) = self.rebuild_after_revocation(&id) {
                    tracing::warn!(ca_id = %id, error = %e, "CRL rebuild after revocation failed; the timer will retry");
                }
            }
            if next_full <= now {
                self.rebuild_all_crls();
                next_full = Instant::now() + interval;
            }
        }
    }

    /// At start: CAs without a CRL get one, and every CA whose revocations changed after
    /// its current CRL was built (a stop or crash before the rebuild that follows a
    /// revocation) is rebuilt now rather than at the timer. The revocation log is the
    /// record of what changed, written in the same transaction as the revocation, so this
    /// holds whatever point a crash interrupted: before the rebuild, while signing, or
    /// between the CRL file and its metadata.
    /// Returns the CAs whose rebuild failed.
    fn catch_up_crls(&self) -> Vec<String> {
        let ids = match self.store.all_ca_ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list CAs for the start-up CRL check");
                return Vec::new();
            }
        };
        let mut failed = Vec::new();
        for id in ids {
            let meta = match self.store.crl_meta(&id) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    if let Err(e) = self.rebuild_crl(&id) {
                        tracing::warn!(ca_id = %id, error = %e, "initial CRL failed; will retry");
                        failed.push(id);
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(ca_id = %id, error = %e, "cannot read CRL metadata at start");
                    continue;
                }
            };
            if let Err(e) = self.catch_up_crl(&id, &meta) {
                tracing::warn!(ca_id = %id, error = %e, "start-up CRL rebuild failed; will retry");
                failed.push(id);
            }
        }
        failed
    }

    fn catch_up_crl(&self, ca_id: &str, meta: &CrlMeta) -> Result<(), ServiceError> {
        // Without rebuild_on_revoke, revocations wait for the timer or a POST anyway.
        if self.settings.crl.rebuild_on_revoke
            && self.store.last_rev_seq(ca_id)? > meta.base_rev_seq
        {
            tracing::info!(
                ca_id,
                "revocations newer than the published CRL; rebuilding"
            );
            self.rebuild_after_revocation(ca_id)?;
        } else if self.settings.crl.delta
            && meta.delta.as_ref().is_none_or(|d| d.number < meta.number)
        {
            // The full CRL was published but its delta was not (stopped in between).
            self.rebuild_delta(ca_id)?;
        }
        Ok(())
    }

    /// Stop the worker: it exits when its channel closes, after the rebuilds still waiting.
    pub fn stop_crl_worker(&self) {
        self.crl
            .notify
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}
