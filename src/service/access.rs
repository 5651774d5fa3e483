//! Capabilities: what a token may do, as typed values, and which one covers which.
//!
//! A token carries a list of capability strings. `admin` covers every capability of its
//! tenant; `issue:*` covers `issue:<any role>`; `sys` (tenants, other tenants' audit and
//! tokens) is covered by nothing but itself.

use std::fmt;
use std::str::FromStr;

/// A role selector in `issue:` and `sign:` capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleSel {
    Any,
    Named(String),
}

impl RoleSel {
    fn covers(&self, other: &RoleSel) -> bool {
        match (self, other) {
            (RoleSel::Any, _) => true,
            (RoleSel::Named(a), RoleSel::Named(b)) => a == b,
            (RoleSel::Named(_), RoleSel::Any) => false,
        }
    }
}

/// One capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Tenants, and every tenant's audit log and tokens.
    Sys,
    /// Everything within its tenant, token management included.
    Admin,
    CaWrite,
    RoleWrite,
    Issue(RoleSel),
    Sign(RoleSel),
    CsrRequest,
    CsrApprove,
    Revoke,
    Read,
    TrustWrite,
    /// Fetch stored private keys.
    KeysRead,
    AuditRead,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown capability {0:?}")]
pub struct UnknownCapability(pub String);

/// A role name inside a capability: the same characters role names may use.
fn valid_role_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let role = |r: &str| -> Result<RoleSel, UnknownCapability> {
            if r == "*" {
                Ok(RoleSel::Any)
            } else if valid_role_name(r) {
                Ok(RoleSel::Named(r.to_string()))
            } else {
                Err(UnknownCapability(s.to_string()))
            }
        };
        Ok(match s {
            "sys" => Capability::Sys,
            "admin" => Capability::Admin,
            "ca:write" => Capability::CaWrite,
            "role:write" => Capability::RoleWrite,
            "csr:request" => Capability::CsrRequest,
            "csr:approve" => Capability::CsrApprove,
            "revoke" => Capability::Revoke,
            "read" => Capability::Read,
            "trust:write" => Capability::TrustWrite,
            "keys:read" => Capability::KeysRead,
            "audit:read" => Capability::AuditRead,
            _ => {
                if let Some(r) = s.strip_prefix("issue:") {
                    Capability::Issue(role(r)?)
                } else if let Some(r) = s.strip_prefix("sign:") {
                    Capability::Sign(role(r)?)
                } else {
                    return Err(UnknownCapability(s.to_string()));
                }
            }
        })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sel = |r: &RoleSel| match r {
            RoleSel::Any => "*".to_string(),
            RoleSel::Named(n) => n.clone(),
        };
        match self {
            Capability::Sys => f.write_str("sys"),
            Capability::Admin => f.write_str("admin"),
            Capability::CaWrite => f.write_str("ca:write"),
            Capability::RoleWrite => f.write_str("role:write"),
            Capability::Issue(r) => write!(f, "issue:{}", sel(r)),
            Capability::Sign(r) => write!(f, "sign:{}", sel(r)),
            Capability::CsrRequest => f.write_str("csr:request"),
            Capability::CsrApprove => f.write_str("csr:approve"),
            Capability::Revoke => f.write_str("revoke"),
            Capability::Read => f.write_str("read"),
            Capability::TrustWrite => f.write_str("trust:write"),
            Capability::KeysRead => f.write_str("keys:read"),
            Capability::AuditRead => f.write_str("audit:read"),
        }
    }
}

impl Capability {
    /// Does holding `self` grant `wanted`?
    pub fn covers(&self, wanted: &Capability) -> bool {
        match (self, wanted) {
            (Capability::Sys, Capability::Sys) => true,
            (_, Capability::Sys) => false,
            (Capability::Admin, _) => true,
            (Capability::Issue(a), Capability::Issue(b)) => a.covers(b),
            (Capability::Sign(a), Capability::Sign(b)) => a.covers(b),
            (a, b) => a == b,
        }
    }
}

/// Parse a list of capability strings, refusing unknown ones and empty lists.
pub fn parse_capabilities(list: &[String]) -> Result<Vec<Capability>, UnknownCapability> {
    list.iter().map(|s| s.parse()).collect()
}

/// Does any of `held` cover `wanted`? Unknown stored strings grant nothing.
pub fn holds(held: &[String], wanted: &Capability) -> bool {
    held.iter()
        .filter_map(|s| s.parse::<Capability>().ok())
        .any(|c| c.covers(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Capability {
        s.parse().unwrap()
    }

    #[test]
    fn every_capability_round_trips_through_its_string() {
        for s in [
            "sys",
            "admin",
            "ca:write",
            "role:write",
            "issue:web",
            "issue:*",
            "sign:web",
            "sign:*",
            "csr:request",
            "csr:approve",
            "revoke",
            "read",
            "trust:write",
            "keys:read",
            "audit:read",
        ] {
            assert_eq!(c(s).to_string(), s);
        }
        for bad in [
            "",
            "Admin",
            "issue:",
            "issue:a b",
            "sign",
            "write",
            "issue:**",
        ] {
            assert!(bad.parse::<Capability>().is_err(), "{bad}");
        }
    }

    #[test]
    fn admin_covers_its_tenant_but_not_sys() {
        assert!(c("admin").covers(&c("issue:web")));
        assert!(c("admin").covers(&c("keys:read")));
        assert!(!c("admin").covers(&c("sys")));
        assert!(c("sys").covers(&c("sys")));
        assert!(!c("sys").covers(&c("read")));
    }

    #[test]
    fn role_wildcards_cover_named_roles_only_in_their_own_kind() {
        assert!(c("issue:*").covers(&c("issue:web")));
        assert!(c("issue:*").covers(&c("issue:*")));
        assert!(!c("issue:web").covers(&c("issue:*")));
        assert!(!c("issue:web").covers(&c("issue:db")));
        assert!(!c("issue:*").covers(&c("sign:web")));
        assert!(!c("read").covers(&c("revoke")));
    }

    #[test]
    fn holds_ignores_strings_that_are_not_capabilities() {
        let held = vec!["bogus".to_string(), "read".to_string()];
        assert!(holds(&held, &c("read")));
        assert!(!holds(&held, &c("revoke")));
    }
}
