//! Issuance policy: roles and the pure rules that decide what a role allows — names, IP and
//! URI SANs, key types, TTLs, key usages. No I/O here; every rule is a small function with
//! its own tests.

pub mod duration;
pub mod names;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::keys::{KeySpec, KeyType};
use crate::limits::{LimitExceeded, Limits};
pub use crate::types::SubjectFields;
pub use duration::Ttl;

/// Which leaf keys a role accepts (`key_type`); `Any` only makes sense for signing CSRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleKeyType {
    Ec,
    Rsa,
    Any,
}

impl std::fmt::Display for RoleKeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RoleKeyType::Ec => "ec",
            RoleKeyType::Rsa => "rsa",
            RoleKeyType::Any => "any",
        })
    }
}

/// keyUsage bits a role may ask for (RFC 5280 §4.2.1.3), leaf-appropriate ones only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyUsage {
    DigitalSignature,
    ContentCommitment,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
}

/// extKeyUsage purposes a role may ask for (RFC 5280 §4.2.1.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExtKeyUsage {
    ServerAuth,
    ClientAuth,
    CodeSigning,
    EmailProtection,
    TimeStamping,
    OcspSigning,
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-' && *c != ' ')
        .collect::<String>()
        .to_ascii_lowercase()
}

impl KeyUsage {
    pub const ALL: [KeyUsage; 5] = [
        KeyUsage::DigitalSignature,
        KeyUsage::ContentCommitment,
        KeyUsage::KeyEncipherment,
        KeyUsage::DataEncipherment,
        KeyUsage::KeyAgreement,
    ];

    /// Accepts Vault's names (`DigitalSignature`) and snake/camel case variants.
    pub fn parse(s: &str) -> Option<Self> {
        match squash(s).as_str() {
            "digitalsignature" => Some(KeyUsage::DigitalSignature),
            "contentcommitment" | "nonrepudiation" => Some(KeyUsage::ContentCommitment),
            "keyencipherment" => Some(KeyUsage::KeyEncipherment),
            "dataencipherment" => Some(KeyUsage::DataEncipherment),
            "keyagreement" => Some(KeyUsage::KeyAgreement),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::DigitalSignature => "DigitalSignature",
            KeyUsage::ContentCommitment => "ContentCommitment",
            KeyUsage::KeyEncipherment => "KeyEncipherment",
            KeyUsage::DataEncipherment => "DataEncipherment",
            KeyUsage::KeyAgreement => "KeyAgreement",
        }
    }

    /// Whether the bit means anything for a key of this type: an EC key cannot encipher,
    /// an RSA key cannot agree on keys.
    pub fn fits(self, key: KeyType) -> bool {
        !matches!(
            (self, key),
            (
                KeyUsage::KeyEncipherment | KeyUsage::DataEncipherment,
                KeyType::Ec
            ) | (KeyUsage::KeyAgreement, KeyType::Rsa)
        )
    }
}

impl ExtKeyUsage {
    pub const ALL: [ExtKeyUsage; 6] = [
        ExtKeyUsage::ServerAuth,
        ExtKeyUsage::ClientAuth,
        ExtKeyUsage::CodeSigning,
        ExtKeyUsage::EmailProtection,
        ExtKeyUsage::TimeStamping,
        ExtKeyUsage::OcspSigning,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        match squash(s).as_str() {
            "serverauth" => Some(ExtKeyUsage::ServerAuth),
            "clientauth" => Some(ExtKeyUsage::ClientAuth),
            "codesigning" => Some(ExtKeyUsage::CodeSigning),
            "emailprotection" => Some(ExtKeyUsage::EmailProtection),
            "timestamping" => Some(ExtKeyUsage::TimeStamping),
            "ocspsigning" => Some(ExtKeyUsage::OcspSigning),
            _ => None,
        }
    }

    /// A request's list of usages (None: serverAuth + clientAuth). RFC 3161 §2.3: a
    /// time-stamping certificate has timeStamping as its only usage (and the profile then
    /// marks the extension critical), so TimeStamping with anything else is refused.
    pub fn parse_list(list: Option<&[String]>) -> Result<Vec<Self>, String> {
        let Some(list) = list else {
            return Ok(vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth]);
        };
        let usages = list
            .iter()
            .map(|u| {
                ExtKeyUsage::parse(u).ok_or_else(|| {
                    format!(
                        "ext_key_usage {u:?} is not one of {}",
                        ExtKeyUsage::ALL.map(ExtKeyUsage::name).join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if usages.contains(&ExtKeyUsage::TimeStamping)
            && usages.iter().any(|u| *u != ExtKeyUsage::TimeStamping)
        {
            return Err(
                "ext_key_usage TimeStamping must be the only extended key usage (RFC 3161 §2.3)"
                    .into(),
            );
        }
        Ok(usages)
    }

    pub fn name(self) -> &'static str {
        match self {
            ExtKeyUsage::ServerAuth => "ServerAuth",
            ExtKeyUsage::ClientAuth => "ClientAuth",
            ExtKeyUsage::CodeSigning => "CodeSigning",
            ExtKeyUsage::EmailProtection => "EmailProtection",
            ExtKeyUsage::TimeStamping => "TimeStamping",
            ExtKeyUsage::OcspSigning => "OcspSigning",
        }
    }
}

/// A role: the rules one kind of certificate is issued under. Stored as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub tenant: String,
    pub ca_id: String,
    pub allowed_domains: Vec<String>,
    pub allow_subdomains: bool,
    pub allow_bare_domains: bool,
    pub allow_glob_domains: bool,
    pub allow_wildcard_certificates: bool,
    pub allow_localhost: bool,
    pub allow_any_name: bool,
    pub enforce_hostnames: bool,
    pub allow_ip_sans: bool,
    pub allowed_uri_sans: Vec<String>,
    pub ttl: Option<Ttl>,
    pub max_ttl: Ttl,
    pub key_type: RoleKeyType,
    /// 0 = any size. For RSA, the minimum size a CSR may have.
    pub key_bits: u32,
    pub key_usage: Vec<KeyUsage>,
    pub ext_key_usage: Vec<ExtKeyUsage>,
    pub subject: SubjectFields,
    pub use_csr_common_name: bool,
    pub use_csr_sans: bool,
    pub not_before_duration: Ttl,
    pub require_cn: bool,
    pub store_private_keys: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Role {
    /// The key a role's `issue` generates. `any` issues P-256, the cheapest strong choice.
    pub fn issue_key_spec(&self) -> Result<KeySpec, PolicyError> {
        let (t, bits) = match self.key_type {
            RoleKeyType::Ec => (KeyType::Ec, self.key_bits),
            RoleKeyType::Rsa => (KeyType::Rsa, self.key_bits),
            RoleKeyType::Any => (KeyType::Ec, 256),
        };
        KeySpec::from_type_and_size(t, (bits != 0).then_some(bits))
            .map_err(|e| PolicyError::KeyNotAllowed(e.to_string()))
    }

    /// Whether a CSR's key may be signed under this role.
    pub fn allows_csr_key(&self, key: CsrKey) -> Result<(), PolicyError> {
        let refuse = || {
            Err(PolicyError::KeyNotAllowed(format!(
                "the role requires key_type {} with key_bits {}, the CSR has {key}",
                self.key_type, self.key_bits
            )))
        };
        match (self.key_type, key) {
            (RoleKeyType::Any, key) if key.certifiable().is_err() => refuse(),
            (RoleKeyType::Any, _) => Ok(()),
            (RoleKeyType::Ec, CsrKey::Ec(bits)) if self.key_bits == 0 || self.key_bits == bits => {
                Ok(())
            }
            (RoleKeyType::Rsa, CsrKey::Rsa(bits)) if bits >= self.key_bits.max(MIN_RSA_BITS) => {
                Ok(())
            }
            _ => refuse(),
        }
    }

    /// keyUsage for a leaf with this key type: the role's bits that fit the key, and at
    /// least digitalSignature. A `sign_only` key (RSA restricted to RSASSA-PSS, RFC 4055
    /// §1.2) keeps only the signing usages.
    pub fn key_usage_for(&self, key: KeyType, sign_only: bool) -> Vec<KeyUsage> {
        let mut out: Vec<KeyUsage> = self
            .key_usage
            .iter()
            .copied()
            .filter(|u| u.fits(key))
            .filter(|u| {
                !sign_only || matches!(u, KeyUsage::DigitalSignature | KeyUsage::ContentCommitment)
            })
            .collect();
        if out.is_empty() {
            out.push(KeyUsage::DigitalSignature);
        }
        out
    }

    /// A role with every flag at its API default, for unit tests of the rules.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Role {
            name: "r".into(),
            tenant: "default".into(),
            ca_id: "ca_x".into(),
            allowed_domains: vec![],
            allow_subdomains: false,
            allow_bare_domains: false,
            allow_glob_domains: false,
            allow_wildcard_certificates: true,
            allow_localhost: true,
            allow_any_name: false,
            enforce_hostnames: true,
            allow_ip_sans: true,
            allowed_uri_sans: vec![],
            ttl: None,
            max_ttl: Ttl::from_secs(720 * 3600),
            key_type: RoleKeyType::Ec,
            key_bits: 256,
            key_usage: vec![KeyUsage::DigitalSignature],
            ext_key_usage: vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth],
            subject: SubjectFields::default(),
            use_csr_common_name: true,
            use_csr_sans: true,
            not_before_duration: Ttl::from_secs(30),
            require_cn: true,
            store_private_keys: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

/// A CSR's public key, as far as policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrKey {
    Ec(u32),
    Rsa(u32),
}

/// The smallest RSA key certified, whatever a role's `key_bits` says (README "Keys").
pub const MIN_RSA_BITS: u32 = 2048;

impl CsrKey {
    pub fn of(key_type: KeyType, bits: u32) -> Self {
        match key_type {
            KeyType::Ec => CsrKey::Ec(bits),
            KeyType::Rsa => CsrKey::Rsa(bits),
        }
    }

    /// The floor every certificate's key meets, with a role (`key_type: any` is exactly
    /// this) or without one (the CSR workflow): EC P-256 or P-384, RSA of
    /// [`MIN_RSA_BITS`] or more.
    pub fn certifiable(self) -> Result<(), PolicyError> {
        match self {
            CsrKey::Ec(256 | 384) => Ok(()),
            CsrKey::Rsa(bits) if bits >= MIN_RSA_BITS => Ok(()),
            key => Err(PolicyError::KeyNotAllowed(format!(
                "only EC P-256, P-384 and RSA keys of {MIN_RSA_BITS} bits or more are certified; the CSR has {key}"
            ))),
        }
    }
}

impl std::fmt::Display for CsrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsrKey::Ec(b) => write!(f, "an EC P-{b} key"),
            CsrKey::Rsa(b) => write!(f, "an RSA {b}-bit key"),
        }
    }
}

/// Policy refusals. Each maps to a 4xx with its own code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Name(#[from] names::NameError),
    #[error("IP SANs are not allowed by this role")]
    IpSansNotAllowed,
    #[error("URI SAN {0:?} is not allowed by this role")]
    UriNotAllowed(String),
    #[error("{0}")]
    KeyNotAllowed(String),
    #[error("a common_name is required by this role")]
    CnRequired,
    #[error("requested ttl {requested} exceeds the role's max_ttl {max}")]
    TtlExceedsMax { requested: Ttl, max: Ttl },
    #[error("requested ttl would end after the issuing CA's own expiry ({0})")]
    TtlExceedsCa(String),
    #[error("{0}")]
    Invalid(String),
    /// A configured limit (`[limits]`): too many names, or one too long.
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitExceeded),
}

/// Names a certificate will carry once policy agreed to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovedNames {
    pub common_name: Option<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub uris: Vec<String>,
}

/// What a client asked to have in a certificate.
#[derive(Debug, Clone, Default)]
pub struct RequestedNames {
    pub common_name: Option<String>,
    pub dns: Vec<String>,
    pub ips: Vec<String>,
    pub uris: Vec<String>,
    pub exclude_cn_from_sans: bool,
}

/// Longest URI SAN we accept, whatever `limits.max_name_length` says.
const MAX_URI_LEN: usize = 2048;

fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut sc = scheme.bytes();
    matches!(sc.next(), Some(b) if b.is_ascii_alphabetic())
        && sc.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && s.len() <= MAX_URI_LEN
        && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether a name can be a SAN dNSName at all, whatever `enforce_hostnames` says: a
/// non-empty IA5String without spaces or control characters (RFC 5280 §4.2.1.6).
fn dns_shaped(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic())
}

/// Unicode format characters that change how a name displays without being visible:
/// soft hyphen, zero-width characters and joiners, bidi marks, embeddings, overrides and
/// isolates, word joiner and invisible operators, and the byte-order mark.
pub fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

/// Check every requested name against the role. The CN goes into the DNS SANs (unless
/// excluded); a CN that is an IP address becomes an IP SAN instead.
///
/// `limits` bounds the work first: the number of SANs (`max_sans`) and the length of every
/// name (`max_name_length`), before any name is matched against the role's patterns.
pub fn approve_names(
    role: &Role,
    req: &RequestedNames,
    limits: &Limits,
) -> Result<ApprovedNames, PolicyError> {
    check_name_limits(req, limits)?;
    let mut out = ApprovedNames::default();
    let cn = req
        .common_name
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    match cn {
        None if role.require_cn => return Err(PolicyError::CnRequired),
        None => {}
        Some(cn) if cn.chars().count() > 64 => {
            return Err(PolicyError::Invalid(
                "common_name may be at most 64 characters".into(),
            ))
        }
        // Whatever enforce_hostnames says: a NUL or other control character makes
        // `evil.com\0.www.example.com` pass as a subdomain of example.com here and read as
        // evil.com in C code, and bidi overrides make a name display as another.
        Some(cn) if cn.chars().any(|c| c.is_control() || is_invisible_format(c)) => {
            return Err(PolicyError::Invalid(
                "common_name must not contain control characters or invisible formatting characters (bidi overrides, zero-width characters)".into(),
            ))
        }
        Some(cn) => {
            if let Ok(ip) = cn.parse::<IpAddr>() {
                if !role.allow_ip_sans {
                    return Err(PolicyError::IpSansNotAllowed);
                }
                out.ips.push(ip);
                out.common_name = Some(cn.to_string());
            } else {
                let n = names::check_dns_name(role, cn)?;
                // A CN that passed the name rules goes into the SAN as long as it can be a
                // dNSName at all: with enforce_hostnames off that includes names like
                // `under_score.example.org`.
                if !req.exclude_cn_from_sans && dns_shaped(&n) {
                    out.dns.push(n.clone());
                }
                out.common_name = Some(n);
            }
        }
    }
    for d in &req.dns {
        let n = names::check_dns_name(role, d)?;
        if !dns_shaped(&n) {
            return Err(names::NameError::NotHostname(n).into());
        }
        if !out.dns.contains(&n) {
            out.dns.push(n);
        }
    }
    for ip in &req.ips {
        let ip: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| PolicyError::Invalid(format!("{ip:?} is not an IP address")))?;
        if !role.allow_ip_sans {
            return Err(PolicyError::IpSansNotAllowed);
        }
        if !out.ips.contains(&ip) {
            out.ips.push(ip);
        }
    }
    for u in &req.uris {
        if !is_uri(u) {
            return Err(PolicyError::Invalid(format!("{u:?} is not a URI")));
        }
        if !names::uri_allowed(role, u) {
            return Err(PolicyError::UriNotAllowed(u.clone()));
        }
        if !out.uris.contains(u) {
            out.uris.push(u.clone());
        }
    }
    if out.dns.is_empty() && out.ips.is_empty() && out.uris.is_empty() {
        return Err(PolicyError::Invalid(
            "the certificate would have no subject alternative name".into(),
        ));
    }
    Ok(out)
}

/// The `[limits]` on requested names: how many SANs, how long each name.
pub fn check_name_limits(req: &RequestedNames, limits: &Limits) -> Result<(), LimitExceeded> {
    if req.dns.len() + req.ips.len() + req.uris.len() > limits.max_sans {
        return Err(LimitExceeded::TooManySans {
            max: limits.max_sans,
        });
    }
    let max = limits.max_name_length;
    let too_long = |what: &str, n: &str| {
        (n.len() > max).then(|| LimitExceeded::NameTooLong {
            what: format!("{what} ({} bytes)", n.len()),
            max,
        })
    };
    let fields = [
        ("a DNS name", &req.dns),
        ("an IP address", &req.ips),
        ("a URI", &req.uris),
    ];
    if let Some(e) = req
        .common_name
        .as_deref()
        .and_then(|c| too_long("common_name", c))
    {
        return Err(e);
    }
    for (what, names) in fields {
        if let Some(e) = names.iter().find_map(|n| too_long(what, n)) {
            return Err(e);
        }
    }
    Ok(())
}

/// notBefore and notAfter for a leaf. An explicit `ttl` above max_ttl or past the CA's
/// expiry is refused; a defaulted one is clipped to the CA's expiry.
pub fn validity(
    role: &Role,
    requested: Option<Ttl>,
    ca_not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime), PolicyError> {
    let not_before = now - role.not_before_duration.as_duration();
    let (ttl, explicit) = match requested {
        Some(t) => (t, true),
        None => (role.ttl.unwrap_or(role.max_ttl).min(role.max_ttl), false),
    };
    if ttl.as_secs() == 0 {
        return Err(PolicyError::Invalid("ttl must be positive".into()));
    }
    if ttl > role.max_ttl {
        return Err(PolicyError::TtlExceedsMax {
            requested: ttl,
            max: role.max_ttl,
        });
    }
    let mut not_after = now + ttl.as_duration();
    if not_after > ca_not_after {
        if explicit {
            return Err(PolicyError::TtlExceedsCa(crate::types::rfc3339(
                ca_not_after,
            )));
        }
        not_after = ca_not_after;
    }
    if not_after <= now {
        return Err(PolicyError::TtlExceedsCa(crate::types::rfc3339(
            ca_not_after,
        )));
    }
    Ok((not_before.max(now - time::Duration::days(1)), not_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cn: &str, dns: &[&str]) -> RequestedNames {
        RequestedNames {
            common_name: Some(cn.into()),
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_cn_lands_in_the_sans() {
        let mut r = Role::for_tests();
        r.allowed_domains = vec!["*.internal".into()];
        let a = approve_names(
            &r,
            &req("db.internal", &["api.internal"]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(a.dns, vec!["db.internal", "api.internal"]);
    }

    /// The null-prefix CN: with enforce_hostnames off, `evil.com\0.www.example.com` matched
    /// `example.com` with allow_subdomains label by label.
    #[test]
    fn control_and_invisible_characters_in_a_cn_are_refused_even_without_enforce_hostnames() {
        let mut r = Role::for_tests();
        r.allowed_domains = vec!["example.com".into()];
        r.allow_subdomains = true;
        r.enforce_hostnames = false;
        for bad in [
            "evil.com\u{0}.www.example.com",
            "bell\u{7}.example.com",
            "moc\u{202E}.example.com",
            "zero\u{200B}width.example.com",
        ] {
            let q = req(bad, &["ok.example.com"]);
            assert!(
                matches!(
                    approve_names(&r, &q, &Limits::default()),
                    Err(PolicyError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        assert!(approve_names(&r, &req("ok.example.com", &[]), &Limits::default()).is_ok());
    }

    #[test]
    fn a_missing_cn_is_refused_when_required() {
        let r = Role::for_tests();
        let q = RequestedNames::default();
        assert_eq!(
            approve_names(&r, &q, &Limits::default()),
            Err(PolicyError::CnRequired)
        );
    }

    #[test]
    fn ip_sans_follow_the_flag() {
        let mut r = Role::for_tests();
        r.allowed_domains = vec!["*.internal".into()];
        let mut q = req("db.internal", &[]);
        q.ips = vec!["10.0.5.100".into()];
        assert!(approve_names(&r, &q, &Limits::default()).is_ok());
        r.allow_ip_sans = false;
        assert_eq!(
            approve_names(&r, &q, &Limits::default()),
            Err(PolicyError::IpSansNotAllowed)
        );
    }

    /// Found by the `request_json` fuzz target: with `enforce_hostnames` off a non-ASCII
    /// (or empty) alt name was approved, and encoding it as an IA5String dNSName then
    /// failed: a 500 for a client's input.
    #[test]
    fn an_alt_name_that_cannot_be_a_dns_name_is_refused_even_without_enforce_hostnames() {
        let mut r = Role::for_tests();
        r.allow_any_name = true;
        r.enforce_hostnames = false;
        for bad in ["bill\u{e9}.internal", "", "a b.internal", "tab\there"] {
            let q = req("db.internal", &[bad]);
            assert!(
                matches!(
                    approve_names(&r, &q, &Limits::default()),
                    Err(PolicyError::Name(_))
                ),
                "{bad:?}"
            );
        }
        let q = req("db.internal", &["under_score.internal"]);
        assert!(approve_names(&r, &q, &Limits::default()).is_ok());
        // The CN may still be any text; it then stays out of the SANs.
        let q = req("Billing Service", &["db.internal"]);
        let a = approve_names(&r, &q, &Limits::default()).unwrap();
        assert_eq!(a.common_name.as_deref(), Some("billing service"));
        assert_eq!(a.dns, vec!["db.internal"]);
    }

    #[test]
    fn too_many_sans_are_refused() {
        let mut r = Role::for_tests();
        r.allow_any_name = true;
        let many: Vec<String> = (0..101).map(|i| format!("h{i}.x")).collect();
        let q = RequestedNames {
            common_name: Some("a.x".into()),
            dns: many,
            ..Default::default()
        };
        assert!(matches!(
            approve_names(&r, &q, &Limits::default()),
            Err(PolicyError::Limit(LimitExceeded::TooManySans { max: 100 }))
        ));
        let small = Limits {
            max_sans: 2,
            max_name_length: 8,
            ..Limits::default()
        };
        let q = RequestedNames {
            common_name: Some("a.x".into()),
            dns: vec!["b.x".into(), "c.x".into(), "d.x".into()],
            ..Default::default()
        };
        assert!(matches!(
            approve_names(&r, &q, &small),
            Err(PolicyError::Limit(LimitExceeded::TooManySans { max: 2 }))
        ));
        let q = RequestedNames {
            common_name: Some("a.x".into()),
            uris: vec!["spiffe://long/name".into()],
            ..Default::default()
        };
        assert!(matches!(
            approve_names(&r, &q, &small),
            Err(PolicyError::Limit(LimitExceeded::NameTooLong {
                max: 8,
                ..
            }))
        ));
    }

    #[test]
    fn an_explicit_ttl_above_max_is_refused_a_default_one_is_clipped_to_the_ca() {
        let r = Role::for_tests();
        let now = OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap();
        let ca_end = now + time::Duration::hours(10);
        assert!(matches!(
            validity(
                &r,
                Some(Ttl::from_secs(721 * 3600)),
                ca_end + time::Duration::days(999),
                now
            ),
            Err(PolicyError::TtlExceedsMax { .. })
        ));
        assert!(matches!(
            validity(&r, Some(Ttl::from_secs(11 * 3600)), ca_end, now),
            Err(PolicyError::TtlExceedsCa(_))
        ));
        let (nb, na) = validity(&r, None, ca_end, now).unwrap();
        assert_eq!(na, ca_end);
        assert_eq!(nb, now - time::Duration::seconds(30));
    }

    #[test]
    fn csr_keys_are_matched_against_the_role() {
        let mut r = Role::for_tests();
        assert!(r.allows_csr_key(CsrKey::Ec(256)).is_ok());
        assert!(r.allows_csr_key(CsrKey::Ec(384)).is_err());
        assert!(r.allows_csr_key(CsrKey::Rsa(2048)).is_err());
        r.key_type = RoleKeyType::Rsa;
        r.key_bits = 3072;
        assert!(r.allows_csr_key(CsrKey::Rsa(2048)).is_err());
        assert!(r.allows_csr_key(CsrKey::Rsa(4096)).is_ok());
        r.key_type = RoleKeyType::Any;
        assert!(r.allows_csr_key(CsrKey::Rsa(1024)).is_err());
        assert!(r.allows_csr_key(CsrKey::Rsa(2048)).is_ok());
        assert!(r.allows_csr_key(CsrKey::Ec(384)).is_ok());
    }

    #[test]
    fn the_key_floor_without_a_role_is_that_of_key_type_any() {
        for ok in [
            CsrKey::Ec(256),
            CsrKey::Ec(384),
            CsrKey::Rsa(2048),
            CsrKey::Rsa(4096),
        ] {
            assert!(ok.certifiable().is_ok(), "{ok}");
        }
        for bad in [CsrKey::Rsa(1024), CsrKey::Rsa(2047), CsrKey::Ec(521)] {
            assert!(
                matches!(bad.certifiable(), Err(PolicyError::KeyNotAllowed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_usage_drops_bits_that_do_not_fit_the_key() {
        let mut r = Role::for_tests();
        r.key_usage = vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];
        assert_eq!(
            r.key_usage_for(KeyType::Ec, false),
            vec![KeyUsage::DigitalSignature]
        );
        assert_eq!(r.key_usage_for(KeyType::Rsa, false).len(), 2);
        // An RSASSA-PSS key only signs.
        assert_eq!(
            r.key_usage_for(KeyType::Rsa, true),
            vec![KeyUsage::DigitalSignature]
        );
        r.key_usage = vec![KeyUsage::KeyEncipherment];
        assert_eq!(
            r.key_usage_for(KeyType::Rsa, true),
            vec![KeyUsage::DigitalSignature]
        );
    }
}
