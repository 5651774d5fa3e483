//! JSON request bodies of `POST /v1/pki/issue/{role}`, `/sign/{role}`,
//! `/certificates/validate` and `/certificates/{id}/renew`: serde deserialisation as the
//! API's `JsonBody` does it, then the service's steps up to the token, in the service's
//! order, with a software CA key standing in for the token (`soft_ca`) and a fixed clock.
//! The body's checks are the service's own (`issue_names`, `sign_names`,
//! `validation_request`); what follows them mirrors `Pki::sign_and_record`
//! (src/service/issue.rs), keep it in step.
//!
//! Input: three bytes of role (flags, patterns, key type, TTLs, subject fields, URL) and
//! endpoint, then the JSON body.
//!
//! Checks: no panic; no request ends in an error that would be a 500 (`Internal`): a
//! client's body must get a 4xx or a certificate. A certificate that was issued can be
//! read by the crate's own validator, and chains to the CA for clientAuth when the role
//! enforces host names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scaivault_pki::ca::profile::{self, LeafProfile};
use scaivault_pki::ca::{self, CertificateTemplate};
use scaivault_pki::keys::{KeySpec, KeyType};
use scaivault_pki::limits::{LimitExceeded, Limits};
use scaivault_pki::policy::{
    self, ApprovedNames, ExtKeyUsage, KeyUsage, Role, RoleKeyType, SubjectFields, Ttl,
};
use scaivault_pki::service::input::opt_ttl;
use scaivault_pki::service::issue::{
    issue_names, sign_names, IssueRequest, RenewRequest, SignRequest,
};
use scaivault_pki::service::validate::{validation_request, ValidateRequest};
use scaivault_pki::service::ServiceError;
use scaivault_pki::types::Serial;
use scaivault_pki::validate::{self, Anchor, Budgets, Purpose, RecordStatus, Request};
use scaivault_pki_fuzz::{flags_from_byte, idx, now, pool, pool_spki, role, soft_ca, NOW_UNIX};

const DOMAINS: [&[&str]; 8] = [
    &["*.svc.cluster.local", "*.internal"],
    &["example.com"],
    &["web-*.example.com"],
    &[],
    &["*.example.com", "example.org"],
    &["internal"],
    &["*"],
    &["*.svc.cluster.local", "web-*.example.com", "example.com"],
];
const URIS: [&[&str]; 4] = [
    &[],
    &["spiffe://cluster.local/ns/*/sa/*"],
    &["*"],
    &["https://*.example.com/"],
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The role and the endpoint from three bytes.
fn setup(b: [u8; 3]) -> (Role, Option<&'static str>, u8) {
    let mut r = role(
        flags_from_byte(b[0]),
        &strings(DOMAINS[usize::from(b[1] & 7)]),
        &strings(URIS[usize::from(b[2] & 3)]),
        b[0] & 0x80 != 0,
    );
    r.require_cn = b[1] & 8 != 0;
    r.use_csr_common_name = b[1] & 16 != 0;
    r.use_csr_sans = b[1] & 32 != 0;
    (r.key_type, r.key_bits) = match b[1] >> 6 {
        0 => (RoleKeyType::Ec, 256),
        1 => (RoleKeyType::Ec, 384),
        2 => (RoleKeyType::Rsa, 2048),
        _ => (RoleKeyType::Any, 0),
    };
    if r.key_type == RoleKeyType::Rsa {
        r.key_usage = vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];
    }
    (r.ttl, r.max_ttl) = match (b[2] >> 2) & 3 {
        0 => (None, Ttl::from_secs(720 * 3600)),
        1 => (Some(Ttl::from_secs(3600)), Ttl::from_secs(86_400)),
        2 => (None, Ttl::from_secs(policy::duration::MAX_SECONDS)),
        _ => (Some(Ttl::from_secs(1)), Ttl::from_secs(1)),
    };
    if b[2] & 16 != 0 {
        r.subject = SubjectFields {
            organization: strings(&["Acme", "\u{dc}nic\u{f6}de GmbH"]),
            ou: strings(&["Platform"]),
            country: strings(&["DE"]),
            locality: strings(&["Berlin"]),
            province: strings(&["BE"]),
        };
    }
    let base_url = (b[2] & 32 != 0).then_some("https://pki.example.com/");
    (r, base_url, b[2] >> 6)
}

fn key_usage_bit(u: KeyUsage) -> x509_cert::ext::pkix::KeyUsages {
    use x509_cert::ext::pkix::KeyUsages as K;
    match u {
        KeyUsage::DigitalSignature => K::DigitalSignature,
        KeyUsage::ContentCommitment => K::NonRepudiation,
        KeyUsage::KeyEncipherment => K::KeyEncipherment,
        KeyUsage::DataEncipherment => K::DataEncipherment,
        KeyUsage::KeyAgreement => K::KeyAgreement,
    }
}

fn eku_oid(e: ExtKeyUsage) -> const_oid::ObjectIdentifier {
    use const_oid::db::rfc5280 as o;
    match e {
        ExtKeyUsage::ServerAuth => o::ID_KP_SERVER_AUTH,
        ExtKeyUsage::ClientAuth => o::ID_KP_CLIENT_AUTH,
        ExtKeyUsage::CodeSigning => o::ID_KP_CODE_SIGNING,
        ExtKeyUsage::EmailProtection => o::ID_KP_EMAIL_PROTECTION,
        ExtKeyUsage::TimeStamping => o::ID_KP_TIME_STAMPING,
        ExtKeyUsage::OcspSigning => o::ID_KP_OCSP_SIGNING,
    }
}

/// `Pki::sign_and_record` up to the store, with the soft CA. Returns the certificate.
fn sign_and_record(
    role: &Role,
    names: ApprovedNames,
    spki_der: Vec<u8>,
    key_type: KeyType,
    ttl: Option<Ttl>,
    base_url: Option<&str>,
) -> Result<Vec<u8>, ServiceError> {
    let ca = soft_ca();
    let (not_before, not_after) = policy::validity(role, ttl, ca.not_after, now())?;
    let not_before = not_before.max(ca.not_before);
    let issuer = ca.issuer();
    let subject = ca::subject_name(names.common_name.as_deref(), &role.subject)?;
    let subject_is_empty = names.common_name.is_none() && role.subject == Default::default();
    let ski = profile::key_identifier(&spki_der)?;
    let key_usage = role
        .key_usage_for(key_type, profile::is_rsassa_pss_key(&spki_der))
        .into_iter()
        .fold(flagset::FlagSet::default(), |acc, u| acc | key_usage_bit(u));
    let ext_key_usage = role.ext_key_usage.iter().map(|e| eku_oid(*e)).collect();
    let base = base_url.map(|b| b.trim_end_matches('/'));
    let leaf = LeafProfile {
        subject_key_id: &ski,
        authority_key_id: &issuer.key_id,
        dns: &names.dns,
        ips: &names.ips,
        uris: &names.uris,
        key_usage,
        ext_key_usage,
        crl_url: base.map(|b| format!("{b}/v1/pki/ca/ca_fuzz/crl")),
        ca_issuers_url: base.map(|b| format!("{b}/v1/pki/ca/ca_fuzz/certificate?format=der")),
        subject_is_empty,
    };
    let extensions = profile::leaf_extensions(&leaf)?;
    let template = CertificateTemplate {
        subject,
        spki_der,
        serial: Serial::from_der_bytes(&[0x2a; 16]),
        not_before,
        not_after,
        extensions,
        self_signed: false,
    };
    Ok(ca::sign_certificate(template, &issuer)?.der)
}

/// The leaf key of `issue`: a fixed public key of the role's kind (generating one per run
/// would only measure key generation).
fn issue_spki(spec: KeySpec) -> Vec<u8> {
    match spec {
        KeySpec::EcP256 => pool_spki(idx::LEAF_A),
        KeySpec::EcP384 => pool_spki(idx::LEAF_P384),
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => pool_spki(idx::INT_RSA),
    }
}

/// The daemon's default `[limits]`.
fn limits() -> Limits {
    Limits::default()
}

fn issue(role: &Role, req: IssueRequest, base: Option<&str>) -> Result<Vec<u8>, ServiceError> {
    let (names, ttl) = issue_names(role, req, &limits())?;
    let spec = role.issue_key_spec()?;
    sign_and_record(role, names, issue_spki(spec), spec.key_type(), ttl, base)
}

fn sign(role: &Role, req: SignRequest, base: Option<&str>) -> Result<Vec<u8>, ServiceError> {
    let (csr, names, ttl) = sign_names(role, req, &limits())?;
    sign_and_record(role, names, csr.spki_der, csr.key_type, ttl, base)
}

/// `Pki::validate_chain` with the tenant's anchors fixed to the pool's Root A, our own
/// records empty, and the default validation time fixed.
fn validate_request(req: ValidateRequest) -> Result<validate::Outcome, ServiceError> {
    let mut request = validation_request(req, &limits(), NOW_UNIX)?;
    request.anchors.insert(
        0,
        Anchor {
            label: "ca_root".into(),
            der: pool().certs[idx::ROOT_A].clone(),
        },
    );
    let own = |_: &[u8]| -> Result<RecordStatus, ServiceError> { Ok(RecordStatus::NotOurs) };
    validate::validate(&request, &own)
}

/// What the crate's own validator says of a certificate we just issued.
fn check_issued(role: &Role, der: Vec<u8>) {
    let req = Request {
        leaf: der,
        intermediates: vec![],
        anchors: vec![Anchor {
            label: "soft".into(),
            der: soft_ca().cert_der.clone(),
        }],
        crls: vec![],
        time: NOW_UNIX,
        name: None,
        purpose: Purpose::ClientAuth,
        max_chain_depth: None,
        check_revocation: false,
        budgets: Budgets::from(&limits()),
    };
    let no_records =
        |_: &[u8]| -> Result<RecordStatus, LimitExceeded> { Ok(RecordStatus::NotOurs) };
    let Ok(out) = validate::validate(&req, &no_records) else {
        return;
    };
    let reason = out.reason.clone().unwrap_or_default();
    assert!(
        !reason.starts_with("the certificate can't be read"),
        "an issued certificate our validator can't read: {out:?}"
    );
    if role.enforce_hostnames {
        assert!(
            out.chain_valid,
            "an issued certificate that does not chain to its CA: {out:?}"
        );
    }
}

/// A body's answer must be a 4xx or a success, never a 500.
fn no_server_error<T>(what: &str, r: &Result<T, ServiceError>) {
    if let Err(e @ (ServiceError::Internal(_) | ServiceError::HsmUnavailable(_))) = r {
        panic!("{what}: a client's request ended in a server error: {e:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (head, body) = data.split_at(3);
    let (role, base, endpoint) = setup([head[0], head[1], head[2]]);
    match endpoint {
        0 => {
            let Ok(req) = serde_json::from_slice::<IssueRequest>(body) else {
                return;
            };
            let r = issue(&role, req, base);
            no_server_error("issue", &r);
            if let Ok(der) = r {
                check_issued(&role, der);
            }
        }
        1 => {
            let Ok(req) = serde_json::from_slice::<SignRequest>(body) else {
                return;
            };
            let r = sign(&role, req, base);
            no_server_error("sign", &r);
            if let Ok(der) = r {
                check_issued(&role, der);
            }
        }
        2 => {
            let Ok(req) = serde_json::from_slice::<ValidateRequest>(body) else {
                return;
            };
            let r = validate_request(req);
            no_server_error("validate", &r);
        }
        _ => {
            let Ok(req) = serde_json::from_slice::<RenewRequest>(body) else {
                return;
            };
            let r = opt_ttl(&req.ttl, "ttl");
            no_server_error("renew", &r);
        }
    }
});
