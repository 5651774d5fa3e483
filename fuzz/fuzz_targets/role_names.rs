//! Role name matching: `policy::names::check_dns_name` against a model of the README's
//! "Name matching" rules (`names_model`), and the two glob matchers (DNS globs, where `*`
//! is one or more characters, and URI SAN patterns, where it is any run) against plain
//! dynamic programming.
//!
//! Input: one byte of role flags, then segments separated by 0xFF: the requested name,
//! then up to 8 `allowed_domains` entries. Each other byte is one token (a character
//! or a whole label, see `tokens_to_string`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scaivault_pki::policy::names::{self, NameError};
use scaivault_pki_fuzz::names_model::{self, Verdict};
use scaivault_pki_fuzz::{flags_from_byte, role, tokens_to_string};

fuzz_target!(|data: &[u8]| {
    let Some((&flag_byte, rest)) = data.split_first() else {
        return;
    };
    let flags = flags_from_byte(flag_byte);
    let mut segments = rest.split(|b| *b == 0xFF);
    let name_bytes = segments.next().unwrap_or_default();
    let name = tokens_to_string(name_bytes);
    let patterns: Vec<String> = segments.take(8).map(tokens_to_string).collect();
    let r = role(flags, &patterns, &patterns, true);

    let got = names::check_dns_name(&r, &name);
    let want = names_model::check(flags, &patterns, &name);
    let agree = match (&got, &want) {
        (_, Verdict::Unspecified) => true,
        (Ok(n), Verdict::Allowed(m)) => n == m,
        (Err(NameError::NotHostname(_)), Verdict::NotHostname)
        | (Err(NameError::WildcardNotAllowed(_)), Verdict::WildcardNotAllowed)
        | (Err(NameError::NotAllowed(_)), Verdict::NotAllowed) => true,
        _ => false,
    };
    assert!(
        agree,
        "name {name:?}, patterns {patterns:?} (stored as {:?}), flags {flags:?}: code says {got:?}, README model says {want:?}",
        r.allowed_domains
    );

    // The glob matchers, on the raw token strings (short ones: the reference is quadratic).
    if name.len() > 96 {
        return;
    }
    for p in patterns.iter().filter(|p| p.len() <= 96) {
        let s = name.as_bytes();
        assert_eq!(
            names::wildcard_match(p.as_bytes(), s, false),
            names_model::glob(p.as_bytes(), s, 1),
            "DNS glob {p:?} against {name:?}"
        );
        assert_eq!(
            names::wildcard_match(p.as_bytes(), s, true),
            names_model::glob(p.as_bytes(), s, 0),
            "URI glob {p:?} against {name:?}"
        );
    }
    assert_eq!(
        names::uri_allowed(&r, &name),
        r.allowed_uri_sans
            .iter()
            .any(|p| names_model::glob(p.as_bytes(), name.as_bytes(), 0)),
        "allowed_uri_sans {patterns:?} against {name:?}"
    );
});
