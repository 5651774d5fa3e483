//! PEM bundles as the API reads them: certificates and chains for validation
//! (`validate::parse_certificates`, `parse_one_certificate`), CRLs (`validate::parse_crls`),
//! the certificate and chain of an import, a trust anchor and an imported intermediate
//! (`ca::certificates_from_pem`), and an imported private key (`LeafKey::from_pem`).
//!
//! Input: a mode byte, then the body. Mode 0: the body is the PEM text as sent. Mode 1:
//! DER wrapped as one `CERTIFICATE`; mode 2: DER wrapped as one `X509 CRL`; mode 3: the
//! body is a private key PEM text.
//!
//! Checks: no panic; the limits hold; what parses re-encodes (the import path re-encodes
//! a certificate and a failure there would be a 500), and a bundle written back out as PEM
//! parses to the same certificates.
#![no_main]

use der::Encode;
use libfuzzer_sys::fuzz_target;
use scaivault_pki::ca;
use scaivault_pki::ca::leaf_key::LeafKey;
use scaivault_pki::limits::{LimitExceeded, Limits};
use scaivault_pki::validate::{self, Anchor, Budgets, Crl, Purpose, RecordStatus, Request};
use scaivault_pki_fuzz::{pem, NOW_UNIX};
use x509_cert::Certificate;

fn certificates(text: &str) {
    let max = Limits::default().max_pem_certificates;
    if let Ok(ders) = validate::parse_certificates(text, "chain_pem", max) {
        assert!(ders.len() <= max);
        let again: String = ders.iter().map(|d| pem("CERTIFICATE", d)).collect();
        let reparsed = validate::parse_certificates(&again, "chain_pem", max);
        assert_eq!(reparsed.ok().as_ref(), Some(&ders), "PEM round trip");
    }
    if let Ok(der) = validate::parse_one_certificate(text, "certificate_pem") {
        // The certificate as the leaf and its own anchor: `Cert::parse`, the profile
        // checks and one signature check, as a self-signed certificate gets them.
        let req = Request {
            leaf: der.clone(),
            intermediates: vec![],
            anchors: vec![Anchor {
                label: "self".into(),
                der,
            }],
            crls: vec![],
            time: NOW_UNIX,
            name: None,
            purpose: Purpose::Any,
            max_chain_depth: None,
            check_revocation: false,
            budgets: Budgets::from(&Limits::default()),
        };
        let no_records =
            |_: &[u8]| -> Result<RecordStatus, LimitExceeded> { Ok(RecordStatus::NotOurs) };
        let _ = validate::validate(&req, &no_records);
    }
    // Import, trust anchors and ceremony chains: `ca::certificates_from_pem`. Every
    // certificate it accepts must re-encode (the import path does; its errors would be 500s).
    if let Ok(chain) = ca::certificates_from_pem(text) {
        chain.iter().for_each(reencodes);
    }
    if let Ok(c) = ca::certificate_from_pem(text) {
        reencodes(&c);
    }
}

fn reencodes(c: &Certificate) {
    let tbs = c.tbs_certificate();
    assert!(
        c.to_der().is_ok(),
        "a parsed certificate does not re-encode"
    );
    assert!(tbs.to_der().is_ok(), "a parsed TBS does not re-encode");
    assert!(tbs.subject_public_key_info().to_der().is_ok());
    let _ = tbs.get_extension::<x509_cert::ext::pkix::BasicConstraints>();
    let _ = tbs.get_extension::<x509_cert::ext::pkix::SubjectAltName>();
}

fn crls(text: &str) {
    if let Ok(list) = validate::parse_crls(text, "crls_pem") {
        assert!(list.len() <= validate::MAX_CRLS);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let text = String::from_utf8_lossy(body);
            certificates(&text);
            crls(&text);
        }
        1 => {
            let text = pem("CERTIFICATE", body);
            certificates(&text);
            // What the import reads is exactly what was sent: nothing may hide behind it.
            if let Ok(c) = ca::certificate_from_pem(&text) {
                assert_eq!(
                    c.to_der().ok().as_deref(),
                    Some(body),
                    "bytes behind a certificate"
                );
            }
        }
        2 => {
            let _ = Crl::parse(body);
            crls(&pem("X509 CRL", body));
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            if let Ok(k) = LeafKey::from_pem(&text) {
                assert!(!k.spki_der.is_empty());
            }
        }
    }
});
