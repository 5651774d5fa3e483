//! One certificate, read once for validation: the raw bytes path building compares and
//! verifies (TBS, names, key), the extensions RFC 5280 §6 processes, and the profile
//! checks of RFC 5280 §4 (plus, for `server_auth`, the CA/Browser Forum rules) that a
//! certificate must pass in each position of a path.

use std::net::IpAddr;

use der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage,
    KeyUsage, KeyUsages, NameConstraints, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::Certificate;

use super::names;

const OID_BC: &str = "2.5.29.19";
const OID_KU: &str = "2.5.29.15";
const OID_EKU: &str = "2.5.29.37";
const OID_SAN: &str = "2.5.29.17";
const OID_NC: &str = "2.5.29.30";
const OID_AKI: &str = "2.5.29.35";
const OID_SKI: &str = "2.5.29.14";
const OID_AIA: &str = "1.3.6.1.5.5.7.1.1";
const OID_POLICY_CONSTRAINTS: &str = "2.5.29.36";
const OID_CN: &str = "2.5.4.3";
pub const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
pub const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
pub const EKU_ANY: &str = "2.5.29.37.0";

/// The DER TLV at the start of `input`: (whole TLV, contents, rest). Definite lengths only.
pub fn tlv(input: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    Some((whole, whole.get(header..)?, input.get(end..)?))
}

/// The signed part and signature of a SIGNED{...} structure (certificate or CRL):
/// (raw TBS bytes, signatureAlgorithm contents, signature bits).
pub fn signed_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (_, outer, _) = tlv(der)?;
    let (tbs, _, rest) = tlv(outer)?;
    let (_, alg, rest) = tlv(rest)?;
    let (_, sig, _) = tlv(rest)?;
    // BIT STRING: the first octet counts unused bits, which must be 0 for a signature.
    match sig.split_first() {
        Some((0, bits)) => Some((tbs, alg, bits)),
        _ => None,
    }
}

/// A certificate's role in a candidate path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Leaf,
    Intermediate,
    Anchor,
}

/// The purposes a search checks (`any` runs one search per purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    ServerAuth,
    ClientAuth,
}

impl Usage {
    pub fn oid(self) -> &'static str {
        match self {
            Usage::ServerAuth => EKU_SERVER_AUTH,
            Usage::ClientAuth => EKU_CLIENT_AUTH,
        }
    }

    /// The CA/Browser Forum Baseline Requirements are applied for server authentication.
    pub fn web_pki(self) -> bool {
        self == Usage::ServerAuth
    }
}

/// A parsed certificate. Everything a check needs is decoded once, here.
pub struct Cert {
    pub der: Vec<u8>,
    pub tbs: Vec<u8>,
    /// Contents of the outer signatureAlgorithm AlgorithmIdentifier.
    pub sig_alg: Vec<u8>,
    pub signature: Vec<u8>,
    /// DER of the subject and issuer Names, compared byte for byte when chaining.
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub subject_name: x509_cert::name::Name,
    pub issuer_name: x509_cert::name::Name,
    /// Contents of the SubjectPublicKeyInfo's AlgorithmIdentifier, and the key bits.
    pub spki_alg: Vec<u8>,
    pub public_key: Vec<u8>,
    /// The serial number's INTEGER contents.
    pub serial: Vec<u8>,
    pub not_before: u64,
    pub not_after: u64,
    pub is_ca: bool,
    pub path_len: Option<u8>,
    pub key_usage: Option<KeyUsage>,
    pub eku: Option<(bool, Vec<String>)>,
    pub san: Option<(bool, Vec<GeneralName>)>,
    pub name_constraints: Option<NameConstraints>,
    pub ski: Option<Vec<u8>>,
    pub aki_key_id: Option<Vec<u8>>,
    /// Profile violations found while reading, by position-independent rules.
    problems: Vec<String>,
    /// Violations that matter when the certificate is not a trust anchor.
    issued_problems: Vec<String>,
    /// Violations that matter only when the certificate is a CA (an intermediate or an
    /// anchor), or only under the Web PKI rules (anywhere, as the anchor, as the leaf).
    ca_problems: Vec<String>,
    web_problems: Vec<String>,
    web_anchor_problems: Vec<String>,
    web_leaf_problems: Vec<String>,
}

fn ext_decode<'a, T: Decode<'a>>(value: &'a [u8], name: &str) -> Result<T, String> {
    T::from_der(value).map_err(|e| format!("its {name} extension is malformed: {e}"))
}

impl Cert {
    /// Read a certificate. `Err` only when it is not DER X.509 at all (the caller has
    /// usually checked that already); rule violations are recorded for [`Cert::check`].
    pub fn parse(der: &[u8]) -> Result<Cert, String> {
        let cert = Certificate::from_der(der).map_err(|e| format!("not X.509: {e}"))?;
        let (tbs, sig_alg, signature) =
            signed_parts(der).ok_or("its outer structure can't be split")?;
        let t = cert.tbs_certificate();
        let mut problems = Vec::new();
        let mut issued_problems = Vec::new();
        let mut ca_problems = Vec::new();
        let mut web_problems = Vec::new();
        let mut web_anchor_problems = Vec::new();
        let mut web_leaf_problems = Vec::new();

        // RFC 5280 §4.1.1.2: signatureAlgorithm must equal tbsCertificate.signature.
        let inner_alg = t.signature().to_der().map_err(|e| e.to_string())?;
        match tlv(&inner_alg) {
            Some((_, contents, _)) if contents == sig_alg => {}
            _ => problems.push(
                "its signatureAlgorithm differs from the signature field of its TBSCertificate (RFC 5280 §4.1.1.2)".into(),
            ),
        }
        if t.version() != x509_cert::certificate::Version::V3 {
            problems.push("it is not an X.509 version 3 certificate".into());
        }
        // RFC 5280 §4.1.2.2: positive, at most 20 octets. Not asked of anchors: a trust
        // anchor is a name and a key (§6.1.1 (d)), and old roots have serial 0.
        let serial = t.serial_number().as_bytes();
        if serial.len() > 20 {
            issued_problems
                .push("its serial number is longer than 20 octets (RFC 5280 §4.1.2.2)".into());
        }
        if serial.first().is_some_and(|b| b & 0x80 != 0) {
            issued_problems.push("its serial number is negative (RFC 5280 §4.1.2.2)".into());
        }
        if serial.iter().all(|b| *b == 0) {
            issued_problems.push("its serial number is zero (RFC 5280 §4.1.2.2)".into());
        }
        if t.issuer().is_empty() {
            problems.push("its issuer name is empty (RFC 5280 §4.1.2.4)".into());
        }
        let v = t.validity();
        let not_before = v.not_before.to_unix_duration().as_secs();
        let not_after = v.not_after.to_unix_duration().as_secs();
        if not_after < not_before {
            problems.push("its notAfter is before its notBefore".into());
        }

        let spki = t.subject_public_key_info();
        let spki_der = spki.to_der().map_err(|e| e.to_string())?;
        let (spki_alg, public_key) = match tlv(&spki_der)
            .and_then(|(_, c, _)| tlv(c).map(|(_, alg, rest)| (alg, rest)))
            .and_then(|(alg, rest)| tlv(rest).map(|(_, bits, _)| (alg, bits)))
        {
            Some((alg, [0, key @ ..])) => (alg.to_vec(), key.to_vec()),
            _ => return Err("its subjectPublicKeyInfo can't be read".into()),
        };
        let key_problem = super::keys::web_pki_key_problem(spki);

        let mut seen: Vec<String> = Vec::new();
        let mut is_ca = false;
        let mut path_len = None;
        let mut bc_present = false;
        let mut bc_critical = false;
        let mut key_usage = None;
        let mut eku: Option<(bool, Vec<String>)> = None;
        let mut san = None;
        let mut name_constraints = None;
        let mut nc_critical = false;
        let mut ski = None;
        let mut aki = None;
        for ext in t.extensions().map(|e| e.as_slice()).unwrap_or_default() {
            let oid = ext.extn_id.to_string();
            if seen.contains(&oid) {
                problems.push(format!("it has two {oid} extensions (RFC 5280 §4.2)"));
                continue;
            }
            seen.push(oid.clone());
            let value = ext.extn_value.as_bytes();
            let decoded: Result<(), String> = (|| {
                match oid.as_str() {
                    OID_BC => {
                        let bc: BasicConstraints = ext_decode(value, "basicConstraints")?;
                        bc_present = true;
                        bc_critical = ext.critical;
                        is_ca = bc.ca;
                        path_len = bc.path_len_constraint;
                    }
                    OID_KU => key_usage = Some(ext_decode::<KeyUsage>(value, "keyUsage")?),
                    OID_EKU => {
                        let e: ExtendedKeyUsage = ext_decode(value, "extKeyUsage")?;
                        eku = Some((ext.critical, e.0.iter().map(|o| o.to_string()).collect()));
                    }
                    OID_SAN => {
                        let s: SubjectAltName = ext_decode(value, "subjectAltName")?;
                        san = Some((ext.critical, s.0));
                    }
                    OID_NC => {
                        name_constraints =
                            Some(ext_decode::<NameConstraints>(value, "nameConstraints")?);
                        nc_critical = ext.critical;
                    }
                    OID_SKI => {
                        let s: SubjectKeyIdentifier = ext_decode(value, "subjectKeyIdentifier")?;
                        if ext.critical {
                            return Err(
                                "its subjectKeyIdentifier is critical (RFC 5280 §4.2.1.2)".into()
                            );
                        }
                        ski = Some(s.0.as_bytes().to_vec());
                    }
                    OID_AKI => {
                        let a: AuthorityKeyIdentifier =
                            ext_decode(value, "authorityKeyIdentifier")?;
                        if ext.critical {
                            return Err(
                                "its authorityKeyIdentifier is critical (RFC 5280 §4.2.1.1)".into(),
                            );
                        }
                        aki = Some(a);
                    }
                    OID_AIA => {
                        let a: AuthorityInfoAccessSyntax =
                            ext_decode(value, "authorityInfoAccess")?;
                        if ext.critical {
                            return Err(
                                "its authorityInfoAccess is critical (RFC 5280 §4.2.2.1)".into()
                            );
                        }
                        if a.0.is_empty() {
                            return Err(
                                "its authorityInfoAccess is empty (RFC 5280 §4.2.2.1)".into()
                            );
                        }
                    }
                    OID_POLICY_CONSTRAINTS if !ext.critical => {
                        return Err(
                            "its policyConstraints is not critical (RFC 5280 §4.2.1.11)".into()
                        );
                    }
                    _ if ext.critical => {
                        // Policy processing (§6.1.3 (d)) is not implemented: a critical
                        // policy extension, like any unknown one, is refused (§4.2).
                        return Err(format!(
                            "it has a critical extension ({oid}) this validator does not process"
                        ));
                    }
                    _ => {}
                }
                Ok(())
            })();
            if let Err(e) = decoded {
                problems.push(e);
            }
        }

        // §4.2.1.9: a CA's basicConstraints must be present and critical.
        if !bc_present {
            ca_problems.push("it has no basicConstraints extension (RFC 5280 §4.2.1.9)".into());
        } else if !bc_critical {
            ca_problems
                .push("its basicConstraints extension is not critical (RFC 5280 §4.2.1.9)".into());
        }
        if !is_ca {
            ca_problems.push("it is not a CA (basicConstraints cA is not set)".into());
        }
        let cert_sign = key_usage
            .as_ref()
            .map(|k| k.0.contains(KeyUsages::KeyCertSign));
        // §4.2.1.3 / §4.2.1.9 / §6.1.4 (n): keyCertSign and cA go together.
        if cert_sign == Some(false) && is_ca {
            problems.push(
                "it is a CA whose keyUsage does not assert keyCertSign (RFC 5280 §4.2.1.9)".into(),
            );
        }
        if cert_sign == Some(true) && !is_ca {
            problems.push(
                "its keyUsage asserts keyCertSign but it is not a CA (RFC 5280 §4.2.1.9)".into(),
            );
        }
        if ski.is_none() {
            ca_problems
                .push("it is a CA without a subjectKeyIdentifier (RFC 5280 §4.2.1.2)".into());
        }
        if t.subject().is_empty() {
            ca_problems.push("it is a CA with an empty subject (RFC 5280 §4.1.2.6)".into());
        }
        // §4.2.1.1: the keyIdentifier must be present except in self-signed certificates.
        let self_issued = t.subject() == t.issuer();
        if !self_issued
            && aki
                .as_ref()
                .and_then(|a| a.key_identifier.as_ref())
                .is_none()
        {
            // Not asked of anchors either: the identifier serves to find the issuer, which a
            // path never looks for above its anchor.
            issued_problems
                .push("it has no authorityKeyIdentifier keyIdentifier (RFC 5280 §4.2.1.1)".into());
        }
        // §4.2.1.10: name constraints belong in CA certificates only.
        if name_constraints.is_some() && !is_ca {
            problems.push("it has nameConstraints but is not a CA (RFC 5280 §4.2.1.10)".into());
        }
        if let Some(nc) = &name_constraints {
            if let Err(e) = names::check_constraints_syntax(nc) {
                problems.push(e);
            }
            let empty = |s: &Option<
                Vec<x509_cert::ext::pkix::constraints::name::GeneralSubtree>,
            >| { s.as_ref().is_none_or(|v| v.is_empty()) };
            if empty(&nc.permitted_subtrees) && empty(&nc.excluded_subtrees) {
                web_problems.push(
                    "its nameConstraints has neither permitted nor excluded subtrees (CA/B BR 7.1.2.5.2)".into(),
                );
            }
        }
        let _ = nc_critical; // Non-critical name constraints are processed all the same.

        // §4.2.1.6: the names must be well formed; an empty subject needs a critical SAN.
        if let Some((critical, names)) = &san {
            if let Err(e) = names::check_san_syntax(names) {
                problems.push(e);
            }
            if names.is_empty() {
                problems.push("its subjectAltName is empty (RFC 5280 §4.2.1.6)".into());
            }
            if t.subject().is_empty() && !critical {
                problems.push("its subject is empty and its subjectAltName is not critical (RFC 5280 §4.2.1.6)".into());
            }
            if !t.subject().is_empty() && *critical {
                web_leaf_problems.push("its subjectAltName is critical although its subject is not empty (CA/B BR 7.1.2.7.12)".into());
            }
        } else if t.subject().is_empty() {
            problems.push(
                "its subject is empty and it has no subjectAltName (RFC 5280 §4.2.1.6)".into(),
            );
        }

        if let Some((critical, ekus)) = &eku {
            if ekus.is_empty() {
                problems.push("its extKeyUsage lists no purpose (RFC 5280 §4.2.1.12)".into());
            }
            if *critical {
                web_leaf_problems.push("its extKeyUsage is critical (CA/B BR 7.1.2.7.6)".into());
            }
            if ekus.iter().any(|e| e == EKU_ANY) {
                web_leaf_problems
                    .push("its extKeyUsage holds anyExtendedKeyUsage (CA/B BR 7.1.2.7.10)".into());
            }
            web_anchor_problems.push("it is a root with extKeyUsage (CA/B BR 7.1.2.1.2)".into());
        }
        if self_issued {
            if let Some(a) = &aki {
                if a.authority_cert_issuer.is_some() || a.authority_cert_serial_number.is_some() {
                    web_anchor_problems.push(
                        "its authorityKeyIdentifier names an issuer or serial (CA/B BR 7.1.2.1.3)"
                            .into(),
                    );
                }
                match (&a.key_identifier, &ski) {
                    (None, _) => web_anchor_problems.push(
                        "its authorityKeyIdentifier has no keyIdentifier (CA/B BR 7.1.2.1.3)".into(),
                    ),
                    (Some(k), Some(s)) if k.as_bytes() != s.as_slice() => web_anchor_problems
                        .push("its authorityKeyIdentifier differs from its subjectKeyIdentifier (CA/B BR 7.1.2.1.3)".into()),
                    _ => {}
                }
            }
        }
        if let Some(p) = key_problem {
            web_problems.push(p);
        }

        // CA/B BR 7.1.4.3: a subscriber certificate's commonName copies a SAN entry. (A CA
        // certificate validated as the leaf is not a subscriber certificate.)
        let san_names: &[GeneralName] = san.as_ref().map(|(_, n)| n.as_slice()).unwrap_or(&[]);
        if !is_ca {
            if let Err(e) = common_names_in_san(t.subject(), san_names) {
                web_leaf_problems.push(e);
            }
        }

        Ok(Cert {
            der: der.to_vec(),
            tbs: tbs.to_vec(),
            sig_alg: sig_alg.to_vec(),
            signature: signature.to_vec(),
            subject: t.subject().to_der().map_err(|e| e.to_string())?,
            issuer: t.issuer().to_der().map_err(|e| e.to_string())?,
            subject_name: t.subject().clone(),
            issuer_name: t.issuer().clone(),
            spki_alg,
            public_key,
            serial: t.serial_number().as_bytes().to_vec(),
            not_before,
            not_after,
            is_ca,
            path_len,
            key_usage,
            eku,
            san,
            name_constraints,
            ski,
            aki_key_id: aki.and_then(|a| a.key_identifier.map(|k| k.as_bytes().to_vec())),
            problems,
            issued_problems,
            ca_problems,
            web_problems,
            web_anchor_problems,
            web_leaf_problems,
        })
    }

    /// Subject and issuer are the same name (RFC 5280 §6.1 "self-issued").
    pub fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    /// The subject, RFC 4514 string form.
    pub fn subject_text(&self) -> String {
        self.subject_name.to_string()
    }

    /// The first profile violation of this certificate in `position`, as a sentence
    /// fragment ("it …").
    pub fn check(&self, position: Position, usage: Usage) -> Result<(), String> {
        let web = usage.web_pki();
        let mut all = self.problems.iter();
        if let Some(p) = all.next() {
            return Err(p.clone());
        }
        if position != Position::Anchor {
            if let Some(p) = self.issued_problems.first() {
                return Err(p.clone());
            }
        }
        match position {
            Position::Leaf => {
                if self.is_ca {
                    // A CA in leaf position must be a well-formed CA.
                    if let Some(p) = self.ca_problems.first() {
                        return Err(p.clone());
                    }
                }
                if web {
                    if let Some(p) = self.web_leaf_problems.first() {
                        return Err(p.clone());
                    }
                }
            }
            Position::Intermediate | Position::Anchor => {
                if let Some(p) = self.ca_problems.first() {
                    return Err(p.clone());
                }
                if web && position == Position::Anchor {
                    if let Some(p) = self.web_anchor_problems.first() {
                        return Err(p.clone());
                    }
                }
            }
        }
        if web {
            if let Some(p) = self.web_problems.first() {
                return Err(p.clone());
            }
        }
        Ok(())
    }

    /// Whether an extKeyUsage, if any, allows `usage`. For the leaf under the Web PKI
    /// rules anyExtendedKeyUsage does not count (it is refused by [`Cert::check`]).
    pub fn allows(&self, usage: Usage) -> bool {
        match &self.eku {
            None => true,
            Some((_, ekus)) => ekus.iter().any(|e| e == usage.oid() || e == EKU_ANY),
        }
    }

    /// The keyUsage allows signing CRLs (RFC 5280 §6.3.3 (f)): absent, or cRLSign set.
    pub fn may_sign_crls(&self) -> bool {
        self.key_usage
            .as_ref()
            .is_none_or(|k| k.0.contains(KeyUsages::CRLSign))
    }

    /// The SAN entries, empty when there is no SAN.
    pub fn san_names(&self) -> &[GeneralName] {
        self.san.as_ref().map(|(_, n)| n.as_slice()).unwrap_or(&[])
    }
}

/// An IP address in a text form of any kind: dotted digits, hexadecimal, or with colons.
fn looks_like_ip(s: &str) -> bool {
    let hex = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit());
    s.contains(':')
        || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        || s.strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .is_some_and(hex)
}

/// CA/B BR 7.1.4.3 (commonName), as this validator applies it under the Web PKI rules:
///
/// * at most one commonName;
/// * a commonName that looks like an IP address must be the RFC 3986 / RFC 5952 text of
///   an iPAddress in the SAN;
/// * any other commonName, when the SAN holds dNSNames, must be a character-for-character
///   copy of one of them, or a parent domain of one (private-PKI leaves often carry their
///   apex as commonName above more specific SANs); when the SAN holds no dNSName it is not
///   judged.
fn common_names_in_san(subject: &x509_cert::name::Name, san: &[GeneralName]) -> Result<(), String> {
    let mut count = 0;
    for atv in subject.iter() {
        if atv.oid.to_string() != OID_CN {
            continue;
        }
        count += 1;
        let cn = names::directory_string(&atv.value)
            .ok_or("its commonName is not a readable string (CA/B BR 7.1.4.3)")?;
        let ok = if looks_like_ip(&cn) {
            san.iter().any(|n| match (n, cn.parse::<IpAddr>()) {
                (GeneralName::IpAddress(ip), Ok(parsed)) => {
                    parsed.to_string() == cn && names::ip_bytes(parsed) == ip.as_bytes()
                }
                _ => false,
            })
        } else {
            let dns: Vec<&str> = san
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DnsName(d) => Some(d.as_str()),
                    _ => None,
                })
                .collect();
            dns.is_empty()
                || dns
                    .iter()
                    .any(|d| *d == cn || d.ends_with(&format!(".{cn}")))
        };
        if !ok {
            return Err(format!(
                "its commonName {cn:?} is not a copy of a subjectAltName entry (CA/B BR 7.1.4.3)"
            ));
        }
    }
    if count > 1 {
        return Err("it has more than one commonName (CA/B BR 7.1.4.3)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cn(value: &str) -> x509_cert::name::Name {
        use std::str::FromStr;
        x509_cert::name::Name::from_str(&format!("CN={value}")).unwrap()
    }

    fn dns(n: &str) -> GeneralName {
        GeneralName::DnsName(der::asn1::Ia5String::new(n).unwrap())
    }

    #[test]
    fn an_ip_looking_common_name_must_be_the_canonical_text_of_a_san_address() {
        let ip = GeneralName::from("192.168.1.1".parse::<IpAddr>().unwrap());
        assert!(common_names_in_san(&cn("192.168.1.1"), std::slice::from_ref(&ip)).is_ok());
        assert!(common_names_in_san(&cn("192.168.001.001"), std::slice::from_ref(&ip)).is_err());
        assert!(common_names_in_san(&cn("0xC0A80101"), std::slice::from_ref(&ip)).is_err());
        let v6 = GeneralName::from("2001:db8::1".parse::<IpAddr>().unwrap());
        assert!(common_names_in_san(&cn("2001:DB8::1"), std::slice::from_ref(&v6)).is_err());
    }

    #[test]
    fn a_host_common_name_must_copy_a_san_dns_name_or_be_its_parent() {
        let san = [dns("valid.example.com")];
        assert!(common_names_in_san(&cn("valid.example.com"), &san).is_ok());
        assert!(common_names_in_san(&cn("example.com"), &san).is_ok());
        assert!(common_names_in_san(&cn("other.example.com"), &san).is_err());
        assert!(common_names_in_san(&cn("Valid.Example.com"), &san).is_err());
        // No dNSName in the SAN: not judged.
        assert!(common_names_in_san(&cn("example.com"), &[]).is_ok());
    }

    #[test]
    fn tlv_reads_short_and_long_lengths() {
        assert_eq!(
            tlv(&[0x04, 0x01, 0xaa, 0xbb]),
            Some((&[0x04, 0x01, 0xaa][..], &[0xaa][..], &[0xbb][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let (whole, contents, rest) = tlv(&long).unwrap();
        assert_eq!((whole.len(), contents.len(), rest.len()), (0x83, 0x80, 0));
        assert_eq!(tlv(&[0x04, 0x05, 0x00]), None);
        assert_eq!(tlv(&[0x04, 0x80]), None);
    }
}
