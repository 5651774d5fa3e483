//! A reference model of the role name rules, written from the README's "Name matching"
//! section alone (not from `src/policy/names.rs`), so the `role_names` target can compare
//! the two. Where the README is silent the model says so ([`Verdict::Unspecified`]) and
//! the target only checks that the real code does not panic.
//!
//! Readings of the README text, each a choice the README leaves open:
//! * "trim white space": Unicode white space (spaces, tabs, new lines...) at both ends.
//!   (The README said "trim spaces" until fuzzing showed the code trims tabs too; the
//!   README now says what the code does.) "lowercase": ASCII case folding, since DNS names
//!   compare case-insensitively in ASCII only (RFC 4343).
//! * "253 characters in all" counts the whole requested name, the `*.` of a wildcard
//!   included: a DNS name has at most 253 characters in text form.
//! * Label arithmetic (`x.D`, "as many labels") splits on `.`. A name with an empty label
//!   (`a..b`, `.b`) has no reading as DNS labels; with `enforce_hostnames` off such a name
//!   gets no syntax check, and the README does not say how it matches: Unspecified.

/// The role flags that take part in name matching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub allow_subdomains: bool,
    pub allow_bare_domains: bool,
    pub allow_glob_domains: bool,
    pub allow_wildcard_certificates: bool,
    pub allow_localhost: bool,
    pub allow_any_name: bool,
    pub enforce_hostnames: bool,
}

/// The model's answer for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; the name as it goes into the certificate (normalised).
    Allowed(String),
    /// Refused because it is not a valid DNS name (steps 2-3).
    NotHostname,
    /// Refused: a wildcard without `allow_wildcard_certificates` (step 2).
    WildcardNotAllowed,
    /// Refused: no rule admits it (step 6).
    NotAllowed,
    /// The README does not say.
    Unspecified,
}

/// Step 1: "trim white space, lowercase, drop one trailing dot".
pub fn normalise(s: &str) -> String {
    let t = s.trim_matches(char::is_whitespace).to_ascii_lowercase();
    match t.strip_suffix('.') {
        Some(u) => u.to_string(),
        None => t,
    }
}

/// "`allowed_domains` entries may contain letters, digits, `.`, `-`, `_` and `*`."
/// (The role API refuses other entries; the model takes only these.)
pub fn pattern_is_acceptable(p: &str) -> bool {
    let n = normalise(p);
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'))
}

/// Step 3's syntax: "labels of 1-63 letters, digits and hyphens, not starting or ending
/// with a hyphen, the last label not all digits".
fn ldh_labels(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.iter().all(|l| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    }) && labels
        .last()
        .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()))
}

/// The verdict for `requested` under `flags` and `patterns` (as given to the role API).
pub fn check(flags: Flags, patterns: &[String], requested: &str) -> Verdict {
    // 1. Normalise.
    let name = normalise(requested);
    // 2. Wildcards: `*.` first is a wildcard request for the rest; any other `*` is refused.
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, name.as_str()),
    };
    if rest.contains('*') {
        return Verdict::NotHostname;
    }
    if wildcard && !flags.allow_wildcard_certificates {
        return Verdict::WildcardNotAllowed;
    }
    // 3. Hostname syntax, with enforce_hostnames and always for wildcards.
    if flags.enforce_hostnames || wildcard {
        if name.len() > 253 || !ldh_labels(rest) {
            return Verdict::NotHostname;
        }
    } else if name.split('.').any(str::is_empty) {
        // No syntax check, and no label reading of the name either (see the module doc).
        return if flags.allow_any_name {
            Verdict::Allowed(name)
        } else {
            Verdict::Unspecified
        };
    }
    // 4. allow_any_name.
    if flags.allow_any_name {
        return Verdict::Allowed(name);
    }
    // 5. localhost, not as a wildcard.
    if !wildcard
        && flags.allow_localhost
        && (name == "localhost" || name == "localhost.localdomain")
    {
        return Verdict::Allowed(name);
    }
    // 6. One pattern must admit the name; `*.X` exactly when `w.X` would be.
    let probe = if wildcard {
        format!("w.{rest}")
    } else {
        name.clone()
    };
    let probe_labels: Vec<&str> = probe.split('.').collect();
    let admitted = patterns
        .iter()
        .filter(|p| pattern_is_acceptable(p))
        .any(|p| admits(flags, &normalise(p), &probe_labels));
    if admitted {
        Verdict::Allowed(name)
    } else {
        Verdict::NotAllowed
    }
}

/// The "Pattern kinds" table.
fn admits(flags: Flags, pattern: &str, name: &[&str]) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let stars = pattern.matches('*').count();
    if p.len() >= 2 && p[0] == "*" && stars == 1 {
        // `*.D`: `x.D` always; deeper only with allow_subdomains; `D` only with
        // allow_bare_domains.
        let d = &p[1..];
        return match extra_labels_in_front(name, d) {
            Some(0) => flags.allow_bare_domains,
            Some(1) => true,
            Some(_) => flags.allow_subdomains,
            None => false,
        };
    }
    if stars == 0 {
        // `D`: itself with allow_bare_domains, anything below with allow_subdomains.
        return match extra_labels_in_front(name, &p) {
            Some(0) => flags.allow_bare_domains,
            Some(_) => flags.allow_subdomains,
            None => false,
        };
    }
    // A glob: `*` is one or more characters inside one label; same number of labels.
    flags.allow_glob_domains
        && p.len() == name.len()
        && p.iter()
            .zip(name)
            .all(|(pl, nl)| glob(pl.as_bytes(), nl.as_bytes(), 1))
}

/// If `name` is `d` with k labels in front (k ≥ 0), k.
fn extra_labels_in_front(name: &[&str], d: &[&str]) -> Option<usize> {
    (name.len() >= d.len() && name[name.len() - d.len()..] == *d).then(|| name.len() - d.len())
}

/// Glob match, `*` standing for a run of at least `min_star` (0 or 1) bytes, any bytes.
/// Plain dynamic programming over (pattern position, text position): obviously right.
pub fn glob(p: &[u8], s: &[u8], min_star: usize) -> bool {
    // next[j]: p[i+1..] matches s[j..]; cur[j]: p[i..] matches s[j..].
    let mut next = vec![false; s.len() + 1];
    next[s.len()] = true;
    let mut cur = vec![false; s.len() + 1];
    for i in (0..p.len()).rev() {
        for j in (0..=s.len()).rev() {
            cur[j] = if p[i] == b'*' {
                // The star takes s[j] and goes on, or stops having taken enough.
                (j < s.len() && (cur[j + 1] || (min_star == 1 && next[j + 1])))
                    || (min_star == 0 && next[j])
            } else {
                j < s.len() && p[i] == s[j] && next[j + 1]
            };
        }
        std::mem::swap(&mut next, &mut cur);
    }
    next[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role_a() -> (Flags, Vec<String>) {
        (
            Flags {
                allow_subdomains: true,
                allow_wildcard_certificates: true,
                allow_localhost: true,
                enforce_hostnames: true,
                ..Flags::default()
            },
            vec!["*.svc.cluster.local".into(), "*.internal".into()],
        )
    }

    fn allowed(f: Flags, p: &[String], n: &str) -> bool {
        matches!(check(f, p, n), Verdict::Allowed(_))
    }

    /// The README's "Examples" table, row by row.
    #[test]
    fn the_readme_examples() {
        let (a, ap) = role_a();
        for (n, want) in [
            ("billing.svc.cluster.local", true),
            ("billing-api.svc.cluster.local", true),
            ("a.b.svc.cluster.local", true),
            ("BILLING.Svc.Cluster.Local.", true),
            ("evil.example.com", false),
            ("svc.cluster.local.evil.com", false),
            ("xsvc.cluster.local", false),
            ("svc.cluster.local", false),
            ("internal", false),
            ("*.svc.cluster.local", true),
            ("*.eu.internal", true),
            ("*.*.internal", false),
            ("foo*.internal", false),
            ("under_score.internal", false),
            ("-lead.internal", false),
            ("localhost", true),
        ] {
            assert_eq!(allowed(a, &ap, n), want, "role A, {n}");
        }
        let base = Flags {
            allow_wildcard_certificates: true,
            allow_localhost: true,
            enforce_hostnames: true,
            ..Flags::default()
        };
        let ex = vec!["example.com".to_string()];
        assert!(!allowed(base, &ex, "example.com"));
        assert!(!allowed(base, &ex, "www.example.com"));
        let bare = Flags {
            allow_bare_domains: true,
            ..base
        };
        assert!(allowed(bare, &ex, "example.com"));
        assert!(!allowed(bare, &ex, "www.example.com"));
        let sub = Flags {
            allow_subdomains: true,
            ..base
        };
        for n in ["www.example.com", "a.b.example.com", "*.example.com"] {
            assert!(allowed(sub, &ex, n), "{n}");
        }
        assert!(!allowed(sub, &ex, "example.com"));
        assert!(!allowed(sub, &ex, "badexample.com"));
        let web = vec!["web-*.example.com".to_string()];
        assert!(!allowed(base, &web, "web-1.example.com"));
        let glob_f = Flags {
            allow_glob_domains: true,
            ..base
        };
        assert!(allowed(glob_f, &web, "web-1.example.com"));
        assert!(!allowed(glob_f, &web, "web-1.x.example.com"));
        assert!(!allowed(glob_f, &web, "*.example.com"));
        let svc = vec!["*.svc.cluster.local".to_string()];
        assert!(allowed(bare, &svc, "svc.cluster.local"));
        assert!(!allowed(base, &svc, "a.b.svc.cluster.local"));
        let no_wild = Flags {
            allow_wildcard_certificates: false,
            ..a
        };
        assert_eq!(
            check(no_wild, &ap, "*.svc.cluster.local"),
            Verdict::WildcardNotAllowed
        );
        let any = Flags {
            allow_any_name: true,
            ..base
        };
        assert!(allowed(any, &[], "anything.example.org"));
        assert!(!allowed(any, &[], "under_score.example.org"));
        let no_lh = Flags {
            allow_localhost: false,
            ..base
        };
        assert!(!allowed(no_lh, &["*.internal".to_string()], "localhost"));
    }

    #[test]
    fn glob_is_plain_dynamic_programming() {
        assert!(glob(b"web-*", b"web-1", 1));
        assert!(!glob(b"web-*", b"web-", 1));
        assert!(glob(b"web-*", b"web-", 0));
        assert!(glob(b"*a*", b"xay", 1));
        assert!(!glob(b"**", b"a", 1));
        assert!(glob(b"a/*/b", b"a/x/y/b", 0));
    }
}
