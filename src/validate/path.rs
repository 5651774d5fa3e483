//! Path building (RFC 4158) and path processing (RFC 5280 §6.1) over parsed certificates.
//!
//! Depth-first from the leaf: at each step the trust anchors whose subject is the current
//! certificate's issuer are tried first, then the untrusted certificates of that subject
//! (those whose subjectKeyIdentifier matches the current authorityKeyIdentifier first).
//! A candidate issuer is taken only if the current certificate's signature verifies with
//! its key; a certificate with the subject and key of one already in the path is never
//! taken again (RFC 4158 §5.2), so cycles end. Each complete candidate path is then
//! processed top-down as §6.1 describes; the first that passes wins, and a failure makes
//! the search go on with the next candidate.
//!
//! Work is bounded whatever the input, by [`Budgets`] (from the `[limits]` section): at
//! most `max_intermediates` certificates between leaf and anchor, `signatures` signature
//! verifications (memoized) for the whole validation, `issuers` candidate issuers per
//! search and `name_checks` name comparisons per validation. Running out refuses the
//! candidate; the [`Verifier`] remembers that it happened (`limit_hit`), so that a
//! validation that found no path can say a limit decided rather than the certificates.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::cert::{Cert, Position, Usage};
use super::names::{self, NcBudget};

/// The work one validation may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// The longest path: this many certificates between the leaf and the anchor.
    pub max_intermediates: usize,
    /// Signature verifications per validation (certificates and CRLs).
    pub signatures: usize,
    /// Candidate issuers considered per search.
    pub issuers: usize,
    /// Name-constraint comparisons per validation, over all candidate paths.
    pub name_checks: usize,
}

impl From<&crate::limits::Limits> for Budgets {
    fn from(l: &crate::limits::Limits) -> Self {
        Budgets {
            max_intermediates: l.max_chain_depth,
            signatures: l.path_signature_budget,
            issuers: l.path_issuer_budget,
            name_checks: l.path_name_constraint_budget,
        }
    }
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets::from(&crate::limits::Limits::default())
    }
}

/// Which limit stopped a search from looking further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHit {
    /// A candidate path would have needed more than `max_intermediates`.
    Depth(usize),
    /// A work budget ran out; the sentence says which.
    Budget(String),
}

/// Signature verification with rustls-webpki's algorithms (ring), memoized, on a budget;
/// it also carries the validation's name-comparison budget and remembers whether any
/// limit cut the search short.
pub struct Verifier {
    budgets: Budgets,
    left: Cell<usize>,
    memo: RefCell<HashMap<(usize, usize), bool>>,
    nc: RefCell<NcBudget>,
    depth_cut: Cell<bool>,
    budget_hit: RefCell<Option<String>>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new(Budgets::default())
    }
}

impl Verifier {
    pub fn new(budgets: Budgets) -> Self {
        Verifier {
            budgets,
            left: Cell::new(budgets.signatures),
            memo: RefCell::new(HashMap::new()),
            nc: RefCell::new(NcBudget::new(budgets.name_checks)),
            depth_cut: Cell::new(false),
            budget_hit: RefCell::new(None),
        }
    }

    fn note_budget(&self, what: &str) {
        self.budget_hit
            .borrow_mut()
            .get_or_insert_with(|| what.to_string());
    }

    /// The limit that cut a search short, if any did: a spent budget first (it may have
    /// hidden anything), then the depth limit.
    pub fn limit_hit(&self) -> Option<LimitHit> {
        if let Some(what) = self.budget_hit.borrow().clone() {
            return Some(LimitHit::Budget(what));
        }
        if self.nc.borrow().exhausted {
            return Some(LimitHit::Budget(names::NC_EXHAUSTED.to_string()));
        }
        self.depth_cut
            .get()
            .then_some(LimitHit::Depth(self.budgets.max_intermediates))
    }

    /// Whether `sig` over `tbs` with algorithm `alg` (AlgorithmIdentifier contents)
    /// verifies with `issuer`'s key. Err when the budget is spent.
    pub fn verify(
        &self,
        tbs: &[u8],
        alg: &[u8],
        sig: &[u8],
        issuer: &Cert,
    ) -> Result<bool, String> {
        let key = (tbs.as_ptr() as usize, issuer as *const Cert as usize);
        if let Some(v) = self.memo.borrow().get(&key) {
            return Ok(*v);
        }
        let left = self.left.get();
        if left == 0 {
            self.note_budget("too many signature checks");
            return Err("path validation gave up: too many signature checks".into());
        }
        self.left.set(left - 1);
        let ok = webpki::ALL_VERIFICATION_ALGS.iter().any(|a| {
            a.signature_alg_id().as_ref() == alg
                && a.public_key_alg_id().as_ref() == issuer.spki_alg.as_slice()
                && a.verify_signature(&issuer.public_key, tbs, sig).is_ok()
        });
        self.memo.borrow_mut().insert(key, ok);
        Ok(ok)
    }

    pub fn cert_signed_by(&self, cert: &Cert, issuer: &Cert) -> Result<bool, String> {
        self.verify(&cert.tbs, &cert.sig_alg, &cert.signature, issuer)
    }
}

/// A path found: indices into the intermediates, leaf side first, and the anchor's index.
#[derive(Debug, Clone)]
pub struct Found {
    pub intermediates: Vec<usize>,
    pub anchor: usize,
}

/// Extra checks of a complete candidate path (revocation): the path leaf first, anchor
/// last.
pub type PathCheck<'a> = &'a dyn Fn(&[&Cert], &Verifier) -> Result<(), String>;

/// One search for one purpose.
pub struct Search<'a> {
    pub leaf: &'a Cert,
    pub intermediates: &'a [Cert],
    pub anchors: &'a [Cert],
    /// Unix seconds at which every certificate must be within its validity period.
    pub time: u64,
    pub usage: Usage,
    pub max_chain_depth: Option<usize>,
    pub verifier: &'a Verifier,
    pub extra: Option<PathCheck<'a>>,
}

struct State {
    steps: usize,
    /// The most telling failure so far: (rank, sentence).
    best: Option<(u8, String)>,
}

impl State {
    fn note(&mut self, rank: u8, why: String) {
        if self.best.as_ref().is_none_or(|(r, _)| rank > *r) {
            self.best = Some((rank, why));
        }
    }

    fn step(&mut self, verifier: &Verifier) -> Result<(), String> {
        match self.steps.checked_sub(1) {
            Some(s) => {
                self.steps = s;
                Ok(())
            }
            None => {
                verifier.note_budget("too many candidate issuers");
                Err("path building gave up: too many candidate issuers".to_string())
            }
        }
    }
}

fn named(c: &Cert) -> String {
    let s = c.subject_text();
    if s.is_empty() {
        "the certificate with an empty subject".into()
    } else {
        format!("{s:?}")
    }
}

impl Search<'_> {
    /// Find a path that passes every check, or say why none does.
    pub fn run(&self) -> Result<Found, String> {
        let mut st = State {
            steps: self.verifier.budgets.issuers,
            best: None,
        };
        let mut path = Vec::new();
        match self.extend(&mut path, &mut st) {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(st
                .best
                .map(|(_, why)| why)
                .unwrap_or_else(|| "no path to a trusted anchor was found".into())),
            Err(fatal) => Err(fatal),
        }
    }

    fn same_entity(a: &Cert, b: &Cert) -> bool {
        a.subject == b.subject && a.spki_alg == b.spki_alg && a.public_key == b.public_key
    }

    fn extend(&self, path: &mut Vec<usize>, st: &mut State) -> Result<Option<Found>, String> {
        let current = match path.last() {
            Some(i) => &self.intermediates[*i],
            None => self.leaf,
        };
        let mut any_issuer = false;
        for (ai, anchor) in self.anchors.iter().enumerate() {
            if anchor.subject != current.issuer {
                continue;
            }
            any_issuer = true;
            st.step(self.verifier)?;
            if !self.verifier.cert_signed_by(current, anchor)? {
                st.note(
                    1,
                    format!(
                        "the signature of {} does not verify with the key of the trust anchor {} (or uses an algorithm or key that is not accepted)",
                        named(current),
                        named(anchor)
                    ),
                );
                continue;
            }
            match self.check_path(path, ai) {
                Ok(()) => {
                    return Ok(Some(Found {
                        intermediates: path.clone(),
                        anchor: ai,
                    }))
                }
                Err(why) => st.note(2, why),
            }
        }
        let max = self.verifier.budgets.max_intermediates;
        if path.len() >= max {
            // Only a cut if there was somewhere further to go.
            if self.intermediates.iter().any(|c| {
                c.subject == current.issuer
                    && !Self::same_entity(c, self.leaf)
                    && !path
                        .iter()
                        .any(|p| Self::same_entity(c, &self.intermediates[*p]))
            }) {
                self.verifier.depth_cut.set(true);
            }
            st.note(
                0,
                format!("no path within {max} intermediate certificates was found"),
            );
            return Ok(None);
        }
        let mut candidates: Vec<usize> = (0..self.intermediates.len())
            .filter(|i| self.intermediates[*i].subject == current.issuer)
            .collect();
        candidates.sort_by_key(|i| {
            current.aki_key_id.is_none() || self.intermediates[*i].ski != current.aki_key_id
        });
        for i in candidates {
            let c = &self.intermediates[i];
            if Self::same_entity(c, self.leaf)
                || path
                    .iter()
                    .any(|p| Self::same_entity(c, &self.intermediates[*p]))
            {
                continue;
            }
            any_issuer = true;
            st.step(self.verifier)?;
            if !self.verifier.cert_signed_by(current, c)? {
                st.note(
                    1,
                    format!(
                        "the signature of {} does not verify with the key of {} (or uses an algorithm or key that is not accepted)",
                        named(current),
                        named(c)
                    ),
                );
                continue;
            }
            path.push(i);
            if let Some(found) = self.extend(path, st)? {
                return Ok(Some(found));
            }
            path.pop();
        }
        if !any_issuer {
            st.note(
                0,
                format!(
                    "no path to a trusted anchor: the issuer of {}, {:?}, is neither a trust anchor nor among the given certificates",
                    named(current),
                    current.issuer_name.to_string()
                ),
            );
        }
        Ok(None)
    }

    /// RFC 5280 §6.1 over one complete candidate: `path` holds intermediate indices leaf
    /// side first.
    fn check_path(&self, path: &[usize], anchor: usize) -> Result<(), String> {
        // Top-down: anchor, intermediates, leaf.
        let mut chain: Vec<&Cert> = vec![&self.anchors[anchor]];
        chain.extend(path.iter().rev().map(|i| &self.intermediates[*i]));
        chain.push(self.leaf);
        let last = chain.len() - 1;
        let usage_name = match self.usage {
            Usage::ServerAuth => "serverAuth",
            Usage::ClientAuth => "clientAuth",
        };

        for (k, c) in chain.iter().enumerate() {
            let position = match k {
                0 => Position::Anchor,
                k if k == last => Position::Leaf,
                _ => Position::Intermediate,
            };
            let role = match position {
                Position::Anchor => "the trust anchor",
                Position::Intermediate => "the intermediate",
                Position::Leaf => "the certificate",
            };
            c.check(position, self.usage)
                .map_err(|e| format!("{role} {} is not acceptable: {e}", named(c)))?;
            if self.time < c.not_before {
                return Err(format!(
                    "{role} {} is not valid yet at {}",
                    named(c),
                    super::instant(self.time)
                ));
            }
            if self.time > c.not_after {
                return Err(format!(
                    "{role} {} has expired at {}",
                    named(c),
                    super::instant(self.time)
                ));
            }
            // §4.2.1.12, applied along the path as browsers and webpki do; an anchor's
            // extKeyUsage is judged by the Web PKI rules only (a root must not have one).
            if position != Position::Anchor && !c.allows(self.usage) {
                return Err(format!(
                    "the extKeyUsage of {role} {} does not allow {usage_name}",
                    named(c)
                ));
            }
        }

        // §6.1.4 (l), (m): pathLenConstraint, not counting self-issued intermediates.
        let mut remaining: Option<usize> = chain[0].path_len.map(usize::from);
        let mut depth = 0usize;
        for c in &chain[1..last] {
            if !c.self_issued() {
                depth += 1;
                remaining = match remaining {
                    Some(0) => {
                        return Err(format!(
                            "the intermediate {} exceeds the pathLenConstraint of a CA above it",
                            named(c)
                        ))
                    }
                    Some(n) => Some(n - 1),
                    None => None,
                };
            }
            if let Some(p) = c.path_len {
                let p = usize::from(p);
                remaining = Some(remaining.map_or(p, |r| r.min(p)));
            }
        }
        if let Some(max) = self.max_chain_depth {
            if depth > max {
                return Err(format!(
                    "the path needs {depth} intermediate CAs; max_chain_depth is {max}"
                ));
            }
        }

        // §6.1.3 (b), (c) and §6.1.4 (g): each CA's name constraints bind every
        // certificate below it, except self-issued intermediates.
        let mut budget = self.verifier.nc.borrow_mut();
        // (Released before the extra checks below, which verify CRL signatures.)
        for (i, ca) in chain[..last].iter().enumerate() {
            let Some(nc) = &ca.name_constraints else {
                continue;
            };
            for (j, c) in chain.iter().enumerate().skip(i + 1) {
                if j < last && c.self_issued() {
                    continue;
                }
                names::check(c, nc, &mut budget).map_err(|e| {
                    format!(
                        "{} {} is not acceptable: {e}",
                        if j == last {
                            "the certificate"
                        } else {
                            "the intermediate"
                        },
                        named(c)
                    )
                })?;
            }
        }

        drop(budget);

        if let Some(extra) = self.extra {
            let bottom_up: Vec<&Cert> = chain.iter().rev().copied().collect();
            extra(&bottom_up, self.verifier)?;
        }
        Ok(())
    }
}
