//! CSR parsing and self-signature verification (`ca::csr::parse_and_verify`), as
//! `POST /v1/pki/sign/{role}` and the CSR import run it.
//!
//! Input: a mode byte, then the CSR. Mode 0: the rest is the PEM text as sent. Mode 1 and
//! 2: the rest is DER, wrapped here as `CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`
//! PEM, so that the fuzzer mutates the ASN.1 directly.
//!
//! Checks: no panic; an accepted CSR names a key the service knows (P-256, P-384, RSA of a
//! sane size) and at most as many names as the input could hold; and, for DER input, the
//! same CSR with one bit of its signature flipped is never accepted (the signature is
//! really checked).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scaivault_pki::ca::csr::{parse_and_verify, CsrError};
use scaivault_pki::keys::KeyType;
use scaivault_pki::policy::{CsrKey, Role};
use scaivault_pki_fuzz::{flags_from_byte, pem, role};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let text = match mode % 3 {
        0 => String::from_utf8_lossy(body).into_owned(),
        1 => pem("CERTIFICATE REQUEST", body),
        _ => pem("NEW CERTIFICATE REQUEST", body),
    };
    let Ok(csr) = parse_and_verify(&text) else {
        return;
    };
    match csr.key_type {
        KeyType::Ec => assert!(matches!(csr.key_bits, 256 | 384), "{csr:?}"),
        KeyType::Rsa => assert!((512..=16384).contains(&csr.key_bits), "{csr:?}"),
    }
    assert!(csr.dns.len() + csr.ips.len() + csr.uris.len() <= text.len());
    // What sign does next with it: the role's key check.
    let r: Role = role(flags_from_byte(0x7f), &[], &[], true);
    let _ = r.allows_csr_key(match csr.key_type {
        KeyType::Ec => CsrKey::Ec(csr.key_bits),
        KeyType::Rsa => CsrKey::Rsa(csr.key_bits),
    });

    if mode % 3 != 0 && !body.is_empty() {
        // The DER ends with the signature BIT STRING's last octet.
        let mut tampered = body.to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        let again = parse_and_verify(&pem("CERTIFICATE REQUEST", &tampered));
        assert!(
            matches!(
                again,
                Err(CsrError::BadSignature(_) | CsrError::Malformed(_))
            ),
            "a CSR with a flipped signature bit was accepted: {again:?}"
        );
    }
});
