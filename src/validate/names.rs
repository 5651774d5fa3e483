//! Names: the syntax of subjectAltName entries (RFC 5280 §4.2.1.6) and name-constraint
//! bases (§4.2.1.10), and name-constraint processing (§6.1.3 (b), (c)).
//!
//! Every (name form, constraint form) pair is matched explicitly. Forms we do not
//! process (URI, otherName, ediPartyName, registeredID) fail closed: a name of such a
//! form under a constraint of the same form is refused, permitted or excluded alike.

use std::net::IpAddr;

use der::asn1::Any;
use der::{Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::constraints::name::GeneralSubtree;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::NameConstraints;
use x509_cert::name::Name;

use super::cert::Cert;

const OID_EMAIL_ADDRESS: &str = "1.2.840.113549.1.9.1";

/// Work left for name-constraint comparisons; running out refuses the path and is
/// remembered, so the validation can say that a limit, not the certificate, decided.
pub struct NcBudget {
    pub left: usize,
    pub exhausted: bool,
}

/// What a validation says when the name-constraint budget runs out.
pub const NC_EXHAUSTED: &str = "too many name-constraint comparisons";

impl NcBudget {
    pub fn new(left: usize) -> Self {
        NcBudget {
            left,
            exhausted: false,
        }
    }

    fn spend(&mut self) -> Result<(), String> {
        match self.left.checked_sub(1) {
            Some(l) => {
                self.left = l;
                Ok(())
            }
            None => {
                self.exhausted = true;
                Err(format!("path validation gave up: {NC_EXHAUSTED}"))
            }
        }
    }
}

/// The IP address as the octets an iPAddress GeneralName holds.
pub fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// A DirectoryString (or IA5String) attribute value as text.
pub fn directory_string(value: &Any) -> Option<String> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            std::str::from_utf8(bytes).ok().map(str::to_string)
        }
        Tag::TeletexString => Some(bytes.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// A host name in the preferred name syntax (RFC 1034 §3.5 as relaxed by RFC 1123 §2.1):
/// letter-digit-hyphen labels of 1 to 63 characters, not starting or ending with a
/// hyphen, at most 253 characters, and a top label that is not all digits.
fn is_host_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = s.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|top| !top.bytes().all(|b| b.is_ascii_digit()))
}

/// A dNSName in a subjectAltName: a host name, whose leftmost label may be `*`.
fn is_san_dns_name(s: &str) -> bool {
    match s.strip_prefix("*.") {
        Some(rest) => is_host_name(rest),
        None => is_host_name(s),
    }
}

/// An rfc822Name in a subjectAltName: `local@host`, one `@`, a non-empty local part.
fn is_mailbox(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, host)) => {
            !local.is_empty()
                && !host.contains('@')
                && local.bytes().all(|b| b.is_ascii_graphic())
                && is_host_name(host)
        }
        None => false,
    }
}

/// RFC 5280 §4.2.1.6: SAN entries of the forms we read must be well formed.
pub fn check_san_syntax(names: &[GeneralName]) -> Result<(), String> {
    for n in names {
        match n {
            GeneralName::DnsName(d) if !is_san_dns_name(d.as_str()) => {
                return Err(format!(
                    "its subjectAltName dNSName {:?} is not a valid host name (RFC 5280 §4.2.1.6)",
                    d.as_str()
                ))
            }
            GeneralName::IpAddress(ip) if !matches!(ip.as_bytes().len(), 4 | 16) => {
                return Err(
                    "its subjectAltName iPAddress is not 4 or 16 octets (RFC 5280 §4.2.1.6)".into(),
                )
            }
            GeneralName::Rfc822Name(m) if !is_mailbox(m.as_str()) => {
                return Err(format!(
                    "its subjectAltName rfc822Name {:?} is not a mailbox (RFC 5280 §4.2.1.6)",
                    m.as_str()
                ))
            }
            GeneralName::DnsName(_)
            | GeneralName::IpAddress(_)
            | GeneralName::Rfc822Name(_)
            | GeneralName::OtherName(_)
            | GeneralName::DirectoryName(_)
            | GeneralName::EdiPartyName(_)
            | GeneralName::UniformResourceIdentifier(_)
            | GeneralName::RegisteredId(_) => {}
        }
    }
    Ok(())
}

/// A contiguous network mask (ones then zeros).
fn is_prefix_mask(mask: &[u8]) -> bool {
    let mut seen_zero = false;
    for b in mask {
        for i in (0..8).rev() {
            let one = b & (1 << i) != 0;
            if one && seen_zero {
                return false;
            }
            if !one {
                seen_zero = true;
            }
        }
    }
    true
}

/// RFC 5280 §4.2.1.10: the bases of name constraints must be well formed, minimum 0 and
/// maximum absent.
pub fn check_constraints_syntax(nc: &NameConstraints) -> Result<(), String> {
    let all = nc
        .permitted_subtrees
        .iter()
        .chain(nc.excluded_subtrees.iter())
        .flatten();
    for s in all {
        if s.minimum != 0 || s.maximum.is_some() {
            return Err("its name constraints use minimum or maximum (RFC 5280 §4.2.1.10)".into());
        }
        let ok = match &s.base {
            // An empty dNSName constraint covers every name.
            GeneralName::DnsName(d) => d.as_str().is_empty() || is_host_name(d.as_str()),
            GeneralName::IpAddress(ip) => {
                let b = ip.as_bytes();
                matches!(b.len(), 8 | 32) && is_prefix_mask(&b[b.len() / 2..])
            }
            GeneralName::Rfc822Name(m) => {
                let m = m.as_str();
                if m.contains('@') {
                    is_mailbox(m)
                } else {
                    is_host_name(m.strip_prefix('.').unwrap_or(m))
                }
            }
            GeneralName::OtherName(_)
            | GeneralName::DirectoryName(_)
            | GeneralName::EdiPartyName(_)
            | GeneralName::UniformResourceIdentifier(_)
            | GeneralName::RegisteredId(_) => true,
        };
        if !ok {
            return Err("its name constraints hold a malformed base (RFC 5280 §4.2.1.10)".into());
        }
    }
    Ok(())
}

/// `name` is `base` or a subdomain of it (case-insensitive).
fn within(name: &str, base: &str) -> bool {
    let (name, base) = (name.to_ascii_lowercase(), base.to_ascii_lowercase());
    base.is_empty() || name == base || name.ends_with(&format!(".{base}"))
}

/// dNSName against a dNSName constraint. A wildcard `*.W` stands for every name one label
/// below W: it is permitted only if all of them are (W within the base), and excluded if
/// any of them is (W within the base, or the base below W).
fn dns_matches(name: &str, base: &str, excluded: bool) -> bool {
    match name.strip_prefix("*.") {
        Some(w) if excluded => within(w, base) || (within(base, w) && base.len() > w.len()),
        Some(w) => within(w, base),
        None => within(name, base),
    }
}

/// iPAddress against an address-and-mask constraint of the same family.
fn ip_matches(name: &[u8], base: &[u8]) -> bool {
    if base.len() != name.len() * 2 {
        return false;
    }
    let (addr, mask) = base.split_at(name.len());
    name.iter()
        .zip(addr)
        .zip(mask)
        .all(|((n, a), m)| n & m == a & m)
}

/// A mailbox against an rfc822Name constraint: a mailbox (exact; the host part without
/// regard to case), a host (every mailbox at it) or `.domain` (every host below it).
fn email_matches(mailbox: &str, base: &str) -> bool {
    let Some((local, host)) = mailbox.rsplit_once('@') else {
        return false;
    };
    match base.rsplit_once('@') {
        Some((blocal, bhost)) => local == blocal && host.eq_ignore_ascii_case(bhost),
        None => match base.strip_prefix('.') {
            Some(domain) => {
                let host = host.to_ascii_lowercase();
                host.ends_with(&format!(".{}", domain.to_ascii_lowercase()))
            }
            None => host.eq_ignore_ascii_case(base),
        },
    }
}

/// Attribute values compared as RFC 5280 §7.1 asks, simplified: strings without regard to
/// case and with runs of spaces collapsed; anything else byte for byte.
fn atv_equal(a: &AttributeTypeAndValue, b: &AttributeTypeAndValue) -> bool {
    if a.oid != b.oid {
        return false;
    }
    let norm = |s: String| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    match (directory_string(&a.value), directory_string(&b.value)) {
        (Some(x), Some(y)) => norm(x) == norm(y),
        _ => a.value == b.value,
    }
}

/// directoryName against a directoryName constraint: the constraint's RDNs are a prefix of
/// the name's.
fn dn_matches(name: &Name, base: &Name) -> bool {
    let n: Vec<_> = name.iter_rdn().collect();
    let b: Vec<_> = base.iter_rdn().collect();
    b.len() <= n.len()
        && b.iter().zip(&n).all(|(x, y)| {
            x.len() == y.len() && x.iter().all(|xa| y.iter().any(|ya| atv_equal(xa, ya)))
        })
}

/// Whether `name` falls in the subtree `base`: Some(bool) for the forms we process, None
/// when the pair is of one form we don't process, and Some(false) for different forms.
enum Match {
    Yes,
    No,
    OtherForm,
    Unsupported,
}

fn matches(name: &GeneralName, base: &GeneralName, excluded: bool) -> Match {
    use GeneralName as G;
    let b = |x: bool| if x { Match::Yes } else { Match::No };
    match (name, base) {
        (G::DnsName(n), G::DnsName(c)) => b(dns_matches(n.as_str(), c.as_str(), excluded)),
        (G::DnsName(_), _) => Match::OtherForm,
        (G::IpAddress(n), G::IpAddress(c)) => b(ip_matches(n.as_bytes(), c.as_bytes())),
        (G::IpAddress(_), _) => Match::OtherForm,
        (G::Rfc822Name(n), G::Rfc822Name(c)) => b(email_matches(n.as_str(), c.as_str())),
        (G::Rfc822Name(_), _) => Match::OtherForm,
        (G::DirectoryName(n), G::DirectoryName(c)) => b(dn_matches(n, c)),
        (G::DirectoryName(_), _) => Match::OtherForm,
        (G::UniformResourceIdentifier(_), G::UniformResourceIdentifier(_)) => Match::Unsupported,
        (G::UniformResourceIdentifier(_), _) => Match::OtherForm,
        (G::OtherName(_), G::OtherName(_)) => Match::Unsupported,
        (G::OtherName(_), _) => Match::OtherForm,
        (G::EdiPartyName(_), G::EdiPartyName(_)) => Match::Unsupported,
        (G::EdiPartyName(_), _) => Match::OtherForm,
        (G::RegisteredId(_), G::RegisteredId(_)) => Match::Unsupported,
        (G::RegisteredId(_), _) => Match::OtherForm,
    }
}

fn describe(name: &GeneralName) -> String {
    match name {
        GeneralName::DnsName(d) => format!("DNS name {:?}", d.as_str()),
        GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
            4 | 16 => {
                let b = ip.as_bytes();
                let addr: IpAddr = if b.len() == 4 {
                    IpAddr::from([b[0], b[1], b[2], b[3]])
                } else {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(b);
                    IpAddr::from(a)
                };
                format!("IP address {addr}")
            }
            _ => "an IP address".into(),
        },
        GeneralName::Rfc822Name(m) => format!("email address {:?}", m.as_str()),
        GeneralName::DirectoryName(n) => format!("directory name {:?}", n.to_string()),
        GeneralName::UniformResourceIdentifier(u) => format!("URI {:?}", u.as_str()),
        GeneralName::OtherName(_) => "an otherName".into(),
        GeneralName::EdiPartyName(_) => "an ediPartyName".into(),
        GeneralName::RegisteredId(_) => "a registeredID".into(),
    }
}

/// The names of a certificate that name constraints apply to: a non-empty subject as a
/// directoryName, its subject emailAddress attributes as rfc822Names (§4.2.1.10), and its
/// subjectAltName entries.
fn names_of(cert: &Cert) -> Vec<GeneralName> {
    let mut out = Vec::new();
    if !cert.subject_name.is_empty() {
        out.push(GeneralName::DirectoryName(cert.subject_name.clone()));
        for atv in cert.subject_name.iter() {
            if atv.oid.to_string() == OID_EMAIL_ADDRESS {
                if let Some(s) = directory_string(&atv.value) {
                    if let Ok(ia5) = der::asn1::Ia5String::new(&s) {
                        out.push(GeneralName::Rfc822Name(ia5));
                    }
                }
            }
        }
    }
    out.extend(cert.san_names().iter().cloned());
    out
}

/// A constraint's base, for a reason: a DNS or email base as text, an IP base as address
/// and mask, anything else as [`describe`] says it.
fn describe_base(base: &GeneralName) -> String {
    match base {
        GeneralName::DnsName(d) => format!("{:?}", d.as_str()),
        GeneralName::Rfc822Name(m) => format!("{:?}", m.as_str()),
        GeneralName::IpAddress(ip) => {
            let b = ip.as_bytes();
            let half = b.len() / 2;
            let addr = |x: &[u8]| -> Option<IpAddr> {
                match x.len() {
                    4 => <[u8; 4]>::try_from(x).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(x).ok().map(IpAddr::from),
                    _ => None,
                }
            };
            match (addr(&b[..half]), addr(&b[half..])) {
                (Some(a), Some(m)) => format!("{a} mask {m}"),
                _ => "an IP address range".into(),
            }
        }
        other => describe(other),
    }
}

/// RFC 5280 §6.1.3 (b), (c): every name of `cert` within the permitted subtrees of each
/// form that has any, and outside every excluded subtree. A name that is both outside the
/// permitted subtrees and (or, for a wildcard, partly) in an excluded one is reported as
/// outside the permitted ones: that is the more basic of the two.
pub fn check(cert: &Cert, nc: &NameConstraints, budget: &mut NcBudget) -> Result<(), String> {
    let empty: Vec<GeneralSubtree> = Vec::new();
    let permitted = nc.permitted_subtrees.as_ref().unwrap_or(&empty);
    let excluded = nc.excluded_subtrees.as_ref().unwrap_or(&empty);
    let unsupported = |name: &GeneralName| {
        format!(
            "its {} is under a name constraint of a form this validator does not process",
            describe(name)
        )
    };
    for name in names_of(cert) {
        let mut same_form: Vec<&GeneralName> = Vec::new();
        let mut found = false;
        for s in permitted {
            budget.spend()?;
            match matches(&name, &s.base, false) {
                Match::Yes => {
                    found = true;
                    break;
                }
                Match::No => same_form.push(&s.base),
                Match::Unsupported => return Err(unsupported(&name)),
                Match::OtherForm => {}
            }
        }
        if !found && !same_form.is_empty() {
            let bases: Vec<String> = same_form.iter().map(|b| describe_base(b)).collect();
            return Err(format!(
                "its {} is outside the permitted subtrees of a CA's name constraints ({})",
                describe(&name),
                bases.join(", ")
            ));
        }
        for s in excluded {
            budget.spend()?;
            match matches(&name, &s.base, true) {
                Match::Yes => {
                    let wildcard =
                        matches!(&name, GeneralName::DnsName(d) if d.as_str().starts_with("*."));
                    return Err(format!(
                        "its {} {} the excluded subtree {} of a CA's name constraints",
                        describe(&name),
                        if wildcard { "reaches into" } else { "is in" },
                        describe_base(&s.base)
                    ));
                }
                Match::Unsupported => return Err(unsupported(&name)),
                Match::No | Match::OtherForm => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_the_preferred_syntax() {
        assert!(is_host_name("example.com"));
        assert!(is_host_name("a-1.example"));
        assert!(!is_host_name("foo_bar.example.com"));
        assert!(!is_host_name(".example.com"));
        assert!(!is_host_name("127.0.0.1"));
        assert!(!is_host_name("-a.example"));
        assert!(is_san_dns_name("*.example.com"));
        assert!(!is_san_dns_name("foo.*.example.com"));
    }

    #[test]
    fn dns_constraints_match_the_name_and_its_subdomains_only() {
        assert!(dns_matches("example.com", "example.com", false));
        assert!(dns_matches("foo.bar.example.com", "example.com", false));
        assert!(!dns_matches("notexample.com", "example.com", false));
        assert!(dns_matches("Foo.Example.com", "example.COM", false));
    }

    #[test]
    fn wildcard_san_is_permitted_only_wholly_and_excluded_on_any_overlap() {
        assert!(dns_matches("*.foo.com", "foo.com", false));
        assert!(!dns_matches("*.example.com", "foo.example.com", false));
        assert!(dns_matches("*.example.com", "bar.example.com", true));
        assert!(!dns_matches("*.example.com", "other.com", true));
    }

    #[test]
    fn email_constraints_are_literal() {
        assert!(email_matches("foo@example.com", "foo@example.com"));
        assert!(email_matches("foo@example.com", "example.com"));
        assert!(!email_matches("foo@sub.example.com", "example.com"));
        assert!(email_matches("foo@sub.example.com", ".example.com"));
        assert!(!email_matches("user@example.com", "*@example.com"));
        assert!(email_matches("*@example.com", "*@example.com"));
        assert!(!email_matches("*@example.com", "**@example.com"));
    }

    #[test]
    fn ip_constraints_compare_under_the_mask_within_one_family() {
        assert!(ip_matches(
            &[192, 0, 2, 7],
            &[192, 0, 2, 0, 255, 255, 255, 0]
        ));
        assert!(!ip_matches(
            &[192, 0, 3, 7],
            &[192, 0, 2, 0, 255, 255, 255, 0]
        ));
        assert!(!ip_matches(&[0; 16], &[192, 0, 2, 0, 255, 255, 255, 0]));
        assert!(is_prefix_mask(&[255, 255, 255, 0]));
        assert!(!is_prefix_mask(&[255, 0, 255, 0]));
    }
}
