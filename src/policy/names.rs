//! Which names a role allows. The rules are written out, with examples, in the README
//! ("Name matching"); each rule here is one small function.
//!
//! Matching is by whole labels, never by string suffix, so `svc.cluster.local.evil.com`
//! can never pass as a name under `svc.cluster.local`.

use super::Role;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{0:?} is not a valid DNS name")]
    NotHostname(String),
    #[error("{0:?} is a wildcard name and the role does not allow wildcard certificates")]
    WildcardNotAllowed(String),
    #[error("{0:?} is not allowed by the role")]
    NotAllowed(String),
}

/// Lowercase and drop one trailing dot: DNS names compare case-insensitively.
pub fn normalize(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    n.strip_suffix('.').map(str::to_string).unwrap_or(n)
}

/// RFC 1123 host name: LDH labels of 1 to 63 characters, not starting or ending with '-',
/// 253 characters in all, and the last label not all digits (RFC 1123 §2.1: a host name
/// never looks like a dotted-decimal address; relying parties such as rustls-webpki, and
/// our own validator, refuse such a dNSName).
pub fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && name
            .rsplit('.')
            .next()
            .is_some_and(|top| !top.bytes().all(|b| b.is_ascii_digit()))
}

/// Check one requested DNS name (or CN) against the role. Returns the normalized name.
pub fn check_dns_name(role: &Role, requested: &str) -> Result<String, NameError> {
    let name = normalize(requested);
    let (wildcard, base) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name.as_str()),
    };
    // Only a whole leftmost label may be a wildcard (RFC 6125 §6.4.3 as browsers apply it).
    if base.contains('*') {
        return Err(NameError::NotHostname(name));
    }
    if wildcard && !role.allow_wildcard_certificates {
        return Err(NameError::WildcardNotAllowed(name));
    }
    // 253 characters for the whole name, the `*.` of a wildcard included.
    if (role.enforce_hostnames || wildcard) && (name.len() > 253 || !is_hostname(base)) {
        return Err(NameError::NotHostname(name));
    }
    if role.allow_any_name {
        return Ok(name);
    }
    // A wildcard `*.X` is allowed exactly when some single-label name `w.X` would be.
    let probe = if wildcard {
        format!("w.{base}")
    } else {
        base.to_string()
    };
    if !wildcard
        && role.allow_localhost
        && (probe == "localhost" || probe == "localhost.localdomain")
    {
        return Ok(name);
    }
    // Stored patterns were normalised once when the role was written (service::roles):
    // normalising again would drop a second trailing dot and turn `*..` into the glob `*`.
    if role
        .allowed_domains
        .iter()
        .any(|p| pattern_allows(role, &p.trim().to_ascii_lowercase(), &probe))
    {
        return Ok(name);
    }
    Err(NameError::NotAllowed(name))
}

/// Does one allowed-domain pattern admit `name`?
fn pattern_allows(role: &Role, pattern: &str, name: &str) -> bool {
    // A pattern with an empty label (`x.`, `a..b`) admits no DNS name.
    if pattern.split('.').any(str::is_empty) {
        return false;
    }
    if let Some(domain) = pattern.strip_prefix("*.") {
        if !domain.contains('*') {
            return subdomain_wildcard_allows(role, domain, name);
        }
    }
    if pattern.contains('*') {
        return role.allow_glob_domains && glob_labels_match(pattern, name);
    }
    if name == pattern {
        return role.allow_bare_domains;
    }
    is_below(name, pattern).is_some() && role.allow_subdomains
}

/// `*.D`: one label below D always; deeper with allow_subdomains; D itself with
/// allow_bare_domains.
fn subdomain_wildcard_allows(role: &Role, domain: &str, name: &str) -> bool {
    if name == domain {
        return role.allow_bare_domains;
    }
    match is_below(name, domain) {
        Some(prefix) if !prefix.contains('.') => true,
        Some(_) => role.allow_subdomains,
        None => false,
    }
}

/// If `name` is strictly below `domain` (by whole labels), the labels in front of it.
fn is_below<'a>(name: &'a str, domain: &str) -> Option<&'a str> {
    let prefix = name.strip_suffix(domain)?.strip_suffix('.')?;
    (!prefix.is_empty()).then_some(prefix)
}

/// Glob pattern with `*` standing for one or more characters inside a single label;
/// pattern and name must have the same number of labels.
fn glob_labels_match(pattern: &str, name: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    p.len() == n.len()
        && p.iter()
            .zip(&n)
            .all(|(p, n)| wildcard_match(p.as_bytes(), n.as_bytes(), false))
}

/// `*` matches a run of characters: one or more when `empty_star` is false. Iterative
/// two-pointer matching, O(len(p)·len(s)) at worst, no recursion.
pub fn wildcard_match(p: &[u8], s: &[u8], empty_star: bool) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            let min = usize::from(!empty_star);
            if si + min > s.len() {
                return false;
            }
            star = Some((pi, si + min));
            pi += 1;
            si += min;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' && empty_star {
        pi += 1;
    }
    pi == p.len()
}

/// URI SANs: allowed when some `allowed_uri_sans` glob matches (`*` = any run, even empty).
pub fn uri_allowed(role: &Role, uri: &str) -> bool {
    role.allowed_uri_sans
        .iter()
        .any(|p| wildcard_match(p.as_bytes(), uri.as_bytes(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(domains: &[&str]) -> Role {
        Role {
            allowed_domains: domains.iter().map(|s| s.to_string()).collect(),
            ..Role::for_tests()
        }
    }

    fn ok(r: &Role, n: &str) -> bool {
        check_dns_name(r, n).is_ok()
    }

    #[test]
    fn the_spec_example_behaves_as_a_reader_expects() {
        let mut r = role(&["*.svc.cluster.local", "*.internal"]);
        r.allow_subdomains = true;
        assert!(ok(&r, "billing.svc.cluster.local"));
        assert!(ok(&r, "billing-api.svc.cluster.local"));
        assert!(ok(&r, "db.eu.internal"));
        assert!(!ok(&r, "evil.example.com"));
        assert!(!ok(&r, "svc.cluster.local.evil.com"));
        assert!(!ok(&r, "svc.cluster.local"));
        assert!(!ok(&r, "xsvc.cluster.local"));
    }

    #[test]
    fn a_star_pattern_allows_one_label_without_allow_subdomains() {
        let r = role(&["*.svc.cluster.local"]);
        assert!(ok(&r, "billing.svc.cluster.local"));
        assert!(!ok(&r, "a.billing.svc.cluster.local"));
    }

    #[test]
    fn a_plain_domain_follows_vaults_bare_and_subdomain_flags() {
        let mut r = role(&["example.com"]);
        assert!(!ok(&r, "example.com"));
        assert!(!ok(&r, "www.example.com"));
        r.allow_bare_domains = true;
        assert!(ok(&r, "example.com"));
        assert!(!ok(&r, "www.example.com"));
        r.allow_subdomains = true;
        assert!(ok(&r, "a.b.example.com"));
        assert!(!ok(&r, "badexample.com"));
        assert!(!ok(&r, "example.com.evil.net"));
    }

    #[test]
    fn names_compare_case_insensitively_and_ignore_a_trailing_dot() {
        let r = role(&["*.Internal"]);
        assert_eq!(check_dns_name(&r, "DB.internal.").unwrap(), "db.internal");
    }

    #[test]
    fn wildcard_certificates_need_the_flag_and_an_allowed_base() {
        let mut r = role(&["*.svc.cluster.local"]);
        assert!(ok(&r, "*.svc.cluster.local"));
        assert!(!ok(&r, "*.evil.com"));
        assert!(!ok(&r, "*.*.svc.cluster.local"));
        assert!(!ok(&r, "foo*.svc.cluster.local"));
        r.allow_wildcard_certificates = false;
        assert!(matches!(
            check_dns_name(&r, "*.svc.cluster.local"),
            Err(NameError::WildcardNotAllowed(_))
        ));
    }

    #[test]
    fn globs_need_allow_glob_domains_and_stay_inside_one_label() {
        let mut r = role(&["web-*.example.com"]);
        assert!(!ok(&r, "web-1.example.com"));
        r.allow_glob_domains = true;
        assert!(ok(&r, "web-1.example.com"));
        assert!(!ok(&r, "web-1.x.example.com"));
        assert!(!ok(&r, "web-.example.com"));
    }

    #[test]
    fn hostnames_are_enforced_unless_switched_off() {
        let mut r = role(&[]);
        r.allow_any_name = true;
        assert!(!ok(&r, "under_score.example.com"));
        assert!(!ok(&r, "-lead.example.com"));
        r.enforce_hostnames = false;
        assert!(ok(&r, "under_score.example.com"));
    }

    /// Found by the `role_names` fuzz target: `*..` was stored as `*.` and matched as `*`,
    /// a glob admitting every single-label name; `x..` was matched as `x`.
    #[test]
    fn a_stored_pattern_is_not_normalised_a_second_time() {
        let mut r = role(&["*."]);
        r.allow_glob_domains = true;
        r.allow_subdomains = true;
        r.enforce_hostnames = false;
        assert!(!ok(&r, "anything"));
        let mut r = role(&["x."]);
        r.allow_subdomains = true;
        assert!(!ok(&r, "a.x"));
        let mut r = role(&["a..b"]);
        r.allow_subdomains = true;
        r.enforce_hostnames = false;
        assert!(!ok(&r, "x.a..b"));
    }

    /// Found by the `request_json` fuzz target: `b.kr.0` was issued, and our own validator
    /// (like rustls-webpki) then refused the certificate's dNSName.
    #[test]
    fn a_name_whose_last_label_is_all_digits_is_not_a_host_name() {
        let mut r = role(&[]);
        r.allow_any_name = true;
        assert!(!ok(&r, "b.kr.0"));
        assert!(!ok(&r, "10.0.0.256"));
        assert!(!ok(&r, "*.10"));
        assert!(ok(&r, "0.kr.b"));
        assert!(ok(&r, "3com.com"));
    }

    /// Found while writing the fuzz targets' README model: "253 characters in all" counts
    /// the `*.` of a wildcard too.
    #[test]
    fn a_wildcard_name_is_at_most_253_characters_in_all() {
        let mut r = role(&[]);
        r.allow_any_name = true;
        let base = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(base.len(), 253);
        assert!(ok(&r, &base));
        assert!(!ok(&r, &format!("*.{base}")));
        assert!(ok(&r, &format!("*.{}", &base[2..])));
    }

    #[test]
    fn localhost_follows_its_flag() {
        let mut r = role(&[]);
        assert!(ok(&r, "localhost"));
        r.allow_localhost = false;
        assert!(!ok(&r, "localhost"));
    }

    #[test]
    fn uri_globs_match_any_run() {
        let mut r = role(&[]);
        r.allowed_uri_sans = vec!["spiffe://cluster.local/ns/*/sa/*".into()];
        assert!(uri_allowed(&r, "spiffe://cluster.local/ns/billing/sa/api"));
        assert!(!uri_allowed(&r, "spiffe://evil/ns/billing/sa/api"));
    }

    #[test]
    fn wildcard_matching_has_no_pathological_blowup() {
        let p = "*a*a*a*a*a*a*a*a*b".as_bytes();
        let s = vec![b'a'; 2000];
        assert!(!wildcard_match(p, &s, true));
    }
}
