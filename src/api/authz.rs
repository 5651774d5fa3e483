//! Who may call what: the one table from route to required capability and audit action,
//! and the per-address throttle on failed authentications (which also keeps the
//! per-address record of refusals, [`RefusalLog`], over the same window).
//!
//! The table is checked by the `Caller` extractor, after the token is authenticated and
//! before the handler runs, so a handler cannot forget it. A route that takes a `Caller`
//! but is missing here is refused (fail closed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Method;

use super::refusals::RefusalLog;
use crate::service::access::{Capability, RoleSel};

/// What a route needs from its caller.
#[derive(Debug, Clone)]
pub enum Need {
    /// No token at all.
    Public,
    /// Any valid token; the use case checks the rest (e.g. tokens it may grant).
    Token,
    Cap(Capability),
    /// `issue:<role>`, the role from the path.
    IssueRole,
    /// `sign:<role>`, the role from the path.
    SignRole,
}

/// One route: what it needs, and the audit action its calls are recorded as (None for
/// reads, which are recorded only when authorization fails).
pub struct Rule {
    pub method: Method,
    pub path: &'static str,
    pub need: Need,
    pub action: Option<&'static str>,
}

macro_rules! rule {
    ($m:ident $p:literal, $need:expr, $action:expr) => {
        Rule {
            method: Method::$m,
            path: $p,
            need: $need,
            action: $action,
        }
    };
}

/// Every route that takes a bearer token, and the public ones, for the README and tests.
pub fn rules() -> &'static [Rule] {
    use Capability as C;
    use Need::*;
    static RULES: std::sync::OnceLock<Vec<Rule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        vec![
            rule!(GET "/v1/sys/health", Public, None),
            rule!(GET "/v1/sys/backup", Cap(C::Sys), Some("sys.backup")),
            // Metrics span every tenant (CA ids included); public only by configuration.
            rule!(GET "/metrics", Cap(C::Sys), None),
            rule!(GET "/v1/openapi.json", Public, None),
            rule!(GET "/v1/sys/tenants", Cap(C::Sys), None),
            rule!(POST "/v1/sys/tenants", Cap(C::Sys), Some("tenant.create")),
            rule!(GET "/v1/auth/tokens", Cap(C::Admin), None),
            rule!(POST "/v1/auth/tokens", Token, Some("token.create")),
            rule!(GET "/v1/auth/tokens/self", Token, None),
            rule!(DELETE "/v1/auth/tokens/{id}", Token, Some("token.revoke")),
            rule!(GET "/v1/audit", Cap(C::AuditRead), None),
            rule!(GET "/v1/pki/ca", Cap(C::Read), None),
            rule!(POST "/v1/pki/ca", Cap(C::CaWrite), Some("ca.create")),
            rule!(GET "/v1/pki/ca/{id}", Cap(C::Read), None),
            rule!(PATCH "/v1/pki/ca/{id}", Cap(C::CaWrite), Some("ca.update")),
            rule!(GET "/v1/pki/ca/{id}/certificate", Public, None),
            rule!(GET "/v1/pki/ca/{id}/crl", Public, None),
            rule!(POST "/v1/pki/ca/{id}/crl", Cap(C::Revoke), Some("crl.rebuild")),
            rule!(GET "/v1/pki/ca/{id}/crl/delta", Public, None),
            rule!(POST "/v1/pki/revoke", Cap(C::Revoke), Some("cert.revoke")),
            rule!(POST "/v1/pki/unrevoke", Cap(C::Revoke), Some("cert.unrevoke")),
            rule!(GET "/v1/pki/csr", Cap(C::Read), None),
            rule!(POST "/v1/pki/csr", Cap(C::CaWrite), Some("csr.generate")),
            rule!(POST "/v1/pki/csr/import", Cap(C::CsrRequest), Some("csr.import")),
            rule!(GET "/v1/pki/csr/{id}", Cap(C::Read), None),
            rule!(POST "/v1/pki/csr/{id}/approve", Cap(C::CsrApprove), Some("csr.approve")),
            rule!(POST "/v1/pki/csr/{id}/reject", Cap(C::CsrApprove), Some("csr.reject")),
            rule!(POST "/v1/pki/csr/{id}/sign", Cap(C::CsrApprove), Some("csr.sign")),
            rule!(GET "/v1/pki/trust-anchors", Cap(C::Read), None),
            rule!(POST "/v1/pki/trust-anchors", Cap(C::TrustWrite), Some("trust_anchor.create")),
            rule!(GET "/v1/pki/trust-anchors/{id}", Cap(C::Read), None),
            rule!(DELETE "/v1/pki/trust-anchors/{id}", Cap(C::TrustWrite), Some("trust_anchor.delete")),
            rule!(GET "/v1/pki/roles", Cap(C::Read), None),
            rule!(POST "/v1/pki/roles", Cap(C::RoleWrite), Some("role.create")),
            rule!(GET "/v1/pki/roles/{name}", Cap(C::Read), None),
            rule!(PUT "/v1/pki/roles/{name}", Cap(C::RoleWrite), Some("role.update")),
            rule!(DELETE "/v1/pki/roles/{name}", Cap(C::RoleWrite), Some("role.delete")),
            rule!(POST "/v1/pki/issue/{role}", IssueRole, Some("cert.issue")),
            rule!(POST "/v1/pki/sign/{role}", SignRole, Some("cert.sign")),
            rule!(GET "/v1/pki/certificates", Cap(C::Read), None),
            rule!(POST "/v1/pki/certificates/import", Cap(C::CaWrite), Some("cert.import")),
            rule!(POST "/v1/pki/certificates/validate", Cap(C::Read), None),
            rule!(GET "/v1/pki/certificates/{id}", Cap(C::Read), None),
            rule!(POST "/v1/pki/certificates/{id}/private-key", Cap(C::KeysRead), Some("cert.private_key.read")),
            // Renewal needs issue:<the certificate's role>, which only the use case knows.
            rule!(POST "/v1/pki/certificates/{id}/renew", Token, Some("cert.renew")),
        ]
    })
}

/// The rule for a matched route, if there is one.
pub fn rule_for(method: &Method, path: &str) -> Option<&'static Rule> {
    rules()
        .iter()
        .find(|r| r.method == *method && r.path == path)
}

impl Need {
    /// The capability this need asks for, given the route's `role` path parameter.
    pub fn capability(&self, role: Option<&str>) -> Option<Capability> {
        let sel = || RoleSel::Named(role.unwrap_or_default().to_string());
        match self {
            Need::Public | Need::Token => None,
            Need::Cap(c) => Some(c.clone()),
            Need::IssueRole => Some(Capability::Issue(sel())),
            Need::SignRole => Some(Capability::Sign(sel())),
        }
    }
}

/// Counts failed authentications per client address in a fixed window; an address over
/// the limit is refused (429) until its window ends, valid token or not, so a secret
/// cannot be guessed at speed.
pub struct AuthThrottle {
    max_failures: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// The refusals these failures (and the 429s) lead to, folded per address and window
    /// for the audit log. Kept here because it is keyed and windowed like the throttle,
    /// and the daemon configures both in one place (`[auth]`).
    refusals: Arc<RefusalLog>,
}

/// Bound on remembered addresses; past it, expired windows are dropped first.
const MAX_TRACKED: usize = 65_536;

impl AuthThrottle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        AuthThrottle {
            max_failures,
            window,
            seen: Mutex::new(HashMap::new()),
            refusals: Arc::new(RefusalLog::new(window)),
        }
    }

    pub fn refusals(&self) -> &Arc<RefusalLog> {
        &self.refusals
    }

    /// Seconds until `ip` may try again, if it is throttled now.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&ip) {
            Some((start, n)) if *n >= self.max_failures && start.elapsed() < self.window => {
                Some(self.window.saturating_sub(start.elapsed()).as_secs().max(1))
            }
            _ => None,
        }
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&ip) {
            let window = self.window;
            seen.retain(|_, (start, _)| start.elapsed() < window);
            if seen.len() >= MAX_TRACKED {
                // Under a flood from many addresses: forget the oldest half.
                let mut starts: Vec<Instant> = seen.values().map(|(s, _)| *s).collect();
                starts.sort();
                let cut = starts[starts.len() / 2];
                seen.retain(|_, (start, _)| *start > cut);
            }
        }
        let entry = seen.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_throttled_after_its_failures_and_others_are_not() {
        let t = AuthThrottle::new(3, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..2 {
            t.failed(a);
        }
        assert!(t.blocked(a).is_none());
        t.failed(a);
        assert!(t.blocked(a).is_some());
        assert!(t.blocked(b).is_none());
    }

    #[test]
    fn the_window_ends() {
        let t = AuthThrottle::new(1, Duration::from_millis(20));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        t.failed(a);
        assert!(t.blocked(a).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(t.blocked(a).is_none());
    }

    #[test]
    fn every_rule_is_unique_and_every_action_is_dotted() {
        let mut seen = std::collections::HashSet::new();
        for r in rules() {
            assert!(
                seen.insert((r.method.clone(), r.path)),
                "{} {}",
                r.method,
                r.path
            );
            if let Some(a) = r.action {
                assert!(a.contains('.'), "{a}");
            }
        }
    }
}
