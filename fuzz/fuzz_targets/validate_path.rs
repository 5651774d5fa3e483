//! The validate path builder (`validate::validate`: RFC 5280 path building and processing
//! with budgets, CRLs, name and purpose checks) fed arbitrary certificate sets.
//!
//! A mutated certificate never carries a valid signature, so most certificates come from
//! the pool (`pool/make_pool.py`: roots cross-signed in a loop, one subject under several
//! keys, a key rollover, name constraints, pathLen and EKU conflicts, expired CAs, CRLs),
//! picked by index, with one byte changed, or cut short; some are raw bytes. The sizes
//! stay within the API's default limits (64 certificates in all, 16 CRLs), with the
//! default path-building budgets. The validation time is fixed or chosen by the input,
//! never the clock.
//!
//! Checks: no panic, no hang (the budgets; running out of one is an error, allowed), and
//! the answer is consistent with itself:
//! `valid` is the conjunction the module documents, a reason exactly when not valid, a
//! path exactly when `chain_valid`, from the leaf to a given anchor and within the depth
//! limit.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scaivault_pki::limits::{LimitExceeded, Limits};
use scaivault_pki::validate::{
    self, Anchor, Budgets, Crl, PeerName, Purpose, RecordStatus, Request,
};
use scaivault_pki_fuzz::{pool, NOW_UNIX};
use sha2::{Digest, Sha256};

#[derive(Arbitrary, Debug)]
enum Blob {
    Pool(u8),
    Flip { base: u8, at: u16, xor: u8 },
    Cut { base: u8, len: u16 },
    Raw(Vec<u8>),
}

impl Blob {
    fn bytes(&self, set: &[Vec<u8>]) -> Vec<u8> {
        let pick = |b: &u8| set[usize::from(*b) % set.len()].clone();
        match self {
            Blob::Pool(b) => pick(b),
            Blob::Flip { base, at, xor } => {
                let mut d = pick(base);
                let n = d.len();
                d[usize::from(*at) % n] ^= xor;
                d
            }
            Blob::Cut { base, len } => {
                let mut d = pick(base);
                d.truncate(usize::from(*len) % (d.len() + 1));
                d
            }
            Blob::Raw(v) => v.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum When {
    Now,
    Before2024,
    After2034,
    At(u64),
}

#[derive(Arbitrary, Debug)]
enum Name {
    None,
    Dns(u8),
    DnsText(String),
    V4([u8; 4]),
    V6([u8; 16]),
}

const DNS: [&str; 8] = [
    "a.example.com",
    "b.example.com",
    "x.example.com",
    "ok.example.com",
    "m7.example.com",
    "x.bad.example.com",
    "other.org",
    "example.com",
];

#[derive(Arbitrary, Debug)]
struct Input {
    leaf: Blob,
    intermediates: Vec<Blob>,
    anchors: Vec<Blob>,
    crls: Vec<Blob>,
    when: When,
    name: Name,
    purpose: u8,
    max_chain_depth: Option<u8>,
    check_revocation: bool,
    /// Pool certificates our own records say are revoked.
    revoked_here: Vec<u8>,
    /// A pool certificate whose lookup in our records fails.
    records_fail_for: Option<u8>,
}

/// Why our records could not answer, or a limit.
#[derive(Debug)]
enum Refusal {
    #[allow(dead_code)] // read through Debug only
    Limit(LimitExceeded),
    Records,
}

impl From<LimitExceeded> for Refusal {
    fn from(e: LimitExceeded) -> Self {
        Refusal::Limit(e)
    }
}

fuzz_target!(|input: Input| {
    let p = pool();
    let limits = Limits::default();
    let leaf = input.leaf.bytes(&p.certs);
    // The request's certificates, 64 in all by default; the tenant's anchors come on top.
    let intermediates: Vec<Vec<u8>> = input
        .intermediates
        .iter()
        .take(limits.max_pem_certificates - 1)
        .map(|b| b.bytes(&p.certs))
        .collect();
    let anchors: Vec<Anchor> = input
        .anchors
        .iter()
        .take(limits.max_pem_certificates - intermediates.len() + 4)
        .enumerate()
        .map(|(i, b)| Anchor {
            label: format!("anchor:{i}"),
            der: b.bytes(&p.certs),
        })
        .collect();
    let crls: Vec<Crl> = input
        .crls
        .iter()
        .take(validate::MAX_CRLS)
        .filter_map(|b| Crl::parse(&b.bytes(&p.crls)).ok())
        .collect();
    let time = match input.when {
        When::Now => NOW_UNIX,
        When::Before2024 => 1_600_000_000,
        When::After2034 => 2_100_000_000,
        When::At(t) => t,
    };
    let name = match &input.name {
        Name::None => None,
        Name::Dns(i) => validate::parse_dns_name(DNS[usize::from(*i) % DNS.len()]).ok(),
        Name::DnsText(s) => validate::parse_dns_name(s).ok(),
        Name::V4(o) => Some(PeerName::Ip((*o).into())),
        Name::V6(o) => Some(PeerName::Ip((*o).into())),
    };
    let purpose = match input.purpose % 3 {
        0 => Purpose::Any,
        1 => Purpose::ServerAuth,
        _ => Purpose::ClientAuth,
    };
    let max_chain_depth = input.max_chain_depth.map(usize::from);
    let req = Request {
        leaf,
        intermediates,
        anchors,
        crls,
        time,
        name,
        purpose,
        max_chain_depth,
        check_revocation: input.check_revocation,
        budgets: Budgets::from(&limits),
    };

    let revoked: Vec<&Vec<u8>> = input
        .revoked_here
        .iter()
        .take(8)
        .map(|i| &p.certs[usize::from(*i) % p.certs.len()])
        .collect();
    let failing = input
        .records_fail_for
        .map(|i| &p.certs[usize::from(i) % p.certs.len()]);
    let own = |der: &[u8]| -> Result<RecordStatus, Refusal> {
        if failing.is_some_and(|f| f.as_slice() == der) {
            return Err(Refusal::Records);
        }
        Ok(if revoked.iter().any(|r| r.as_slice() == der) {
            RecordStatus::Revoked("key_compromise".to_string())
        } else if der.len() % 2 == 0 {
            // Some certificates "ours", the rest not, so that both answers are explored.
            RecordStatus::Good
        } else {
            RecordStatus::NotOurs
        })
    };

    let Ok(out) = validate::validate(&req, &own) else {
        return;
    };
    assert_eq!(
        out.valid,
        out.chain_valid && out.not_expired && out.not_revoked != Some(false),
        "{out:?}"
    );
    assert_eq!(out.valid, out.reason.is_none(), "{out:?}");
    assert_eq!(out.chain.is_some(), out.chain_valid, "{out:?}");
    assert_eq!(out.trusted_anchor.is_some(), out.chain.is_some(), "{out:?}");
    let unreadable = out
        .reason
        .as_deref()
        .is_some_and(|r| r.starts_with("the certificate can't be read"));
    // Checked only when asked for and readable; even then null when nothing on the path
    // had a revocation source.
    if !req.check_revocation || unreadable {
        assert!(out.not_revoked.is_none(), "{out:?}");
    }
    if let Some(label) = &out.trusted_anchor {
        assert!(req.anchors.iter().any(|a| &a.label == label), "{out:?}");
    }
    if let Some(chain) = &out.chain {
        // Leaf, at most 8 intermediates, anchor; the leaf first.
        assert!((2..=10).contains(&chain.len()), "{out:?}");
        let fp: Vec<String> = Sha256::digest(&req.leaf)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(chain[0].sha256_fingerprint, fp.join(":"), "{out:?}");
    }
});
