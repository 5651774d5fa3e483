//! What `GET /metrics` reports about the PKI's state at scrape time: the age, size and
//! entries of every CA's published CRLs. Counters and latencies are recorded where things
//! happen, with the `metrics` facade (like `tracing`: a no-op until the daemon installs
//! a recorder).

use time::OffsetDateTime;

use super::{Pki, ServiceError};

/// One published CRL of one CA.
#[derive(Debug, Clone)]
pub struct CrlGauge {
    pub ca_id: String,
    /// `full` or `delta`.
    pub kind: &'static str,
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub entries: u64,
    pub size_bytes: u64,
}

impl Pki {
    /// The CRLs last published, per CA (CAs without one yet are left out).
    pub fn crl_gauges(&self) -> Result<Vec<CrlGauge>, ServiceError> {
        let mut out = Vec::new();
        for ca_id in self.store.all_ca_ids()? {
            let Some(meta) = self.store.crl_meta(&ca_id)? else {
                continue;
            };
            out.push(CrlGauge {
                ca_id: ca_id.clone(),
                kind: "full",
                number: meta.number,
                this_update: meta.this_update,
                next_update: meta.next_update,
                entries: meta.entries,
                size_bytes: meta.size,
            });
            if let Some(d) = &meta.delta {
                // The delta's size is not in its metadata; its bytes are cached for GETs.
                let size = self
                    .published_crl(&ca_id, true)
                    .map(|c| c.der.len() as u64)
                    .unwrap_or(0);
                out.push(CrlGauge {
                    ca_id,
                    kind: "delta",
                    number: d.number,
                    this_update: d.this_update,
                    next_update: d.next_update,
                    entries: d.entries,
                    size_bytes: size,
                });
            }
        }
        Ok(out)
    }
}
