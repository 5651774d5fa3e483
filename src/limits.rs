//! Bounds on what a request's input can make the daemon do: bytes read, names checked,
//! certificates parsed, path-building work, requests in flight. The `[limits]` section of
//! the configuration sets them; each has a default that no legitimate client reaches.
//!
//! Where a limit is part of what a request means (SANs, name length, certificates, CSR
//! size, chain depth, path-building work) it is checked in the policy or service layer, so
//! every front end gets the same refusal; body size and concurrency are the HTTP layer's.
//! Every refusal names its limit: [`LimitExceeded::code`].

use serde::Deserialize;

/// The `[limits]` configuration section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body read, in bytes (413 `body_too_large`).
    pub max_body_bytes: usize,
    /// Requests handled at once; one more is refused at once with 429
    /// `too_many_requests` and `Retry-After` rather than queued.
    pub max_concurrent_requests: usize,
    /// SANs one certificate request may ask for: DNS, IP and URI together
    /// (422 `too_many_sans`).
    pub max_sans: usize,
    /// Longest single name a request may ask for: common name, DNS name, IP address text,
    /// URI (422 `name_too_long`).
    pub max_name_length: usize,
    /// PEM certificates one request may carry, all fields together (422
    /// `too_many_certificates`).
    pub max_pem_certificates: usize,
    /// Most intermediate CAs between a leaf and its root: a path longer than this is not
    /// searched by validation, and no CA hierarchy grows deeper (422 `chain_too_deep`).
    pub max_chain_depth: usize,
    /// Signature verifications one validation may spend (422 `path_budget_exceeded`).
    pub path_signature_budget: usize,
    /// Candidate issuers one path search may consider (422 `path_budget_exceeded`).
    pub path_issuer_budget: usize,
    /// Name-constraint comparisons one validation may make (422 `path_budget_exceeded`).
    pub path_name_constraint_budget: usize,
    /// Largest CSR accepted, PEM text in bytes (413 `csr_too_large`).
    pub max_csr_bytes: usize,
    /// The metadata store's page cache, in bytes: the bulk of the daemon's memory.
    pub store_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // The largest legitimate body is a PEM chain with CRLs for validation.
            max_body_bytes: 1024 * 1024,
            max_concurrent_requests: 256,
            max_sans: 100,
            max_name_length: 1024,
            max_pem_certificates: 64,
            max_chain_depth: 8,
            // rustls-webpki spends 100 signatures; ours also checks CRL signatures.
            path_signature_budget: 200,
            path_issuer_budget: 20_000,
            path_name_constraint_budget: 1_000_000,
            max_csr_bytes: 64 * 1024,
            // sled's own default is 1 GiB; a CA's working set is far smaller (see the soak
            // figures in BENCHMARKS.md).
            store_cache_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Each limit must be at least 1 (0 would refuse everything) and below a ceiling
    /// that would make it no limit at all. Returns the offending key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let rules: [(&'static str, usize, usize); 11] = [
            ("limits.max_body_bytes", self.max_body_bytes, 1 << 30),
            (
                "limits.max_concurrent_requests",
                self.max_concurrent_requests,
                1 << 20,
            ),
            ("limits.max_sans", self.max_sans, 10_000),
            ("limits.max_name_length", self.max_name_length, 65_536),
            (
                "limits.max_pem_certificates",
                self.max_pem_certificates,
                10_000,
            ),
            ("limits.max_chain_depth", self.max_chain_depth, 64),
            (
                "limits.path_signature_budget",
                self.path_signature_budget,
                1_000_000,
            ),
            (
                "limits.path_issuer_budget",
                self.path_issuer_budget,
                100_000_000,
            ),
            (
                "limits.path_name_constraint_budget",
                self.path_name_constraint_budget,
                1_000_000_000,
            ),
            ("limits.max_csr_bytes", self.max_csr_bytes, 1 << 20),
            ("limits.store_cache_bytes", self.store_cache_bytes, 1 << 40),
        ];
        for (key, v, max) in rules {
            if v == 0 || v > max {
                return Err((key, format!("must be between 1 and {max}, not {v}")));
            }
        }
        Ok(())
    }
}

/// A request refused because it goes past one of the [`Limits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("at most {max} subject alternative names may be requested (limits.max_sans)")]
    TooManySans { max: usize },
    #[error("{what} is longer than {max} bytes (limits.max_name_length)")]
    NameTooLong { what: String, max: usize },
    #[error("a request may carry at most {max} PEM certificates (limits.max_pem_certificates)")]
    TooManyCertificates { max: usize },
    #[error("{what} may hold at most {max} CRLs")]
    TooManyCrls { what: String, max: usize },
    #[error("the CSR is larger than {max} bytes (limits.max_csr_bytes)")]
    CsrTooLarge { max: usize },
    #[error("{0} (limits.max_chain_depth)")]
    ChainTooDeep(String),
    #[error("path validation gave up before finding an answer: {0}")]
    PathBudget(String),
}

impl LimitExceeded {
    /// The error code a client sees: it names the limit.
    pub fn code(&self) -> &'static str {
        match self {
            LimitExceeded::TooManySans { .. } => "too_many_sans",
            LimitExceeded::NameTooLong { .. } => "name_too_long",
            LimitExceeded::TooManyCertificates { .. } => "too_many_certificates",
            LimitExceeded::TooManyCrls { .. } => "too_many_crls",
            LimitExceeded::CsrTooLarge { .. } => "csr_too_large",
            LimitExceeded::ChainTooDeep(_) => "chain_too_deep",
            LimitExceeded::PathBudget(_) => "path_budget_exceeded",
        }
    }

    /// True for refusals of size (the request is too big), false for refusals of
    /// content (it asks for too much work).
    pub fn is_size(&self) -> bool {
        matches!(self, LimitExceeded::CsrTooLarge { .. })
    }
}

/// The number of PEM blocks labelled `label` in `text`, counted before any is decoded.
pub fn count_pem_blocks(text: &str, label: &str) -> usize {
    let begin = format!("-----BEGIN {label}-----");
    text.matches(begin.as_str()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_their_own_check_and_zero_is_refused_with_the_key() {
        Limits::default().check().unwrap();
        let l = Limits {
            max_sans: 0,
            ..Limits::default()
        };
        assert_eq!(l.check().unwrap_err().0, "limits.max_sans");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let r: Result<Limits, _> = toml::from_str("max_sanz = 3");
        assert!(r.is_err());
        let l: Limits = toml::from_str("max_sans = 3").unwrap();
        assert_eq!(l.max_sans, 3);
        assert_eq!(l.max_chain_depth, Limits::default().max_chain_depth);
    }

    #[test]
    fn pem_blocks_are_counted_by_label() {
        let one = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        assert_eq!(count_pem_blocks(&one.repeat(3), "CERTIFICATE"), 3);
        assert_eq!(count_pem_blocks(one, "X509 CRL"), 0);
    }
}
