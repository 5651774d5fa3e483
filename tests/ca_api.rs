//! The CA API against the real daemon on a throw-away SoftHSM2 token.
//!
//! One daemon serves every test here (see `common::daemon`); tests run in
//! parallel, so each uses unique CA names. Certificates are judged by openssl,
//! pkilint and Python `cryptography`, not by our own parser.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{
    assert_error, daemon, openssl, output_text, parse_pkcs11_objects, pem_to_der, pkilint_cert,
    pkilint_chain, python_cryptography_check, require_python_cryptography, require_tool,
    unique_name, write_pem, Auth,
};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const PROFILE_CHECK: &str = include_str!("ca_profile_check.py");
const DAY: i64 = 86_400;

// ---------------------------------------------------------------- helpers

fn parse_time(ca: &Value, field: &str) -> OffsetDateTime {
    let s = ca[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {ca}"));
    assert!(
        s.ends_with('Z'),
        "{field} {s:?} should be RFC 3339 in UTC with a `Z` suffix like the spec's examples"
    );
    OffsetDateTime::parse(s, &Rfc3339)
        .unwrap_or_else(|e| panic!("{field} {s:?} is not RFC 3339: {e}"))
}

fn id_of(ca: &Value) -> String {
    ca["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no string id in {ca}"))
        .to_string()
}

/// Seconds between valid_from and valid_until.
fn validity_seconds(ca: &Value) -> i64 {
    (parse_time(ca, "valid_until") - parse_time(ca, "valid_from")).whole_seconds()
}

fn assert_validity_days(ca: &Value, days: i64) {
    let secs = validity_seconds(ca);
    assert!(
        (secs - days * DAY).abs() <= DAY,
        "valid_until - valid_from = {secs} s ({:.2} days), want about {days} days; CA {ca}",
        secs as f64 / DAY as f64
    );
}

/// Every field the spec's example response shows, plus the contract's extras.
/// `req` is the request body that created `ca`.
fn assert_ca_object(ca: &Value, req: &Value, key_type: &str, key_size: u64) {
    let id = id_of(ca);
    assert!(
        id.starts_with("ca_") && id.len() > 3,
        "id {id:?} should start with `ca_`"
    );
    for f in ["name", "common_name", "ca_type"] {
        assert_eq!(ca[f], req[f], "field {f}: response {ca} vs request {req}");
    }
    let obj = ca.as_object().expect("CA is an object");
    assert!(
        obj.contains_key("parent_ca_id"),
        "parent_ca_id missing (null for roots): {ca}"
    );
    if req["ca_type"] == "root" {
        assert!(
            ca["parent_ca_id"].is_null(),
            "root parent_ca_id not null: {ca}"
        );
    } else {
        assert_eq!(
            ca["parent_ca_id"], req["parent_ca_id"],
            "parent_ca_id: {ca}"
        );
    }
    assert_eq!(ca["key_type"], key_type, "key_type: {ca}");
    assert_eq!(ca["key_size"].as_u64(), Some(key_size), "key_size: {ca}");
    assert_eq!(ca["is_active"], true, "is_active: {ca}");
    assert_eq!(
        ca["certificates_issued"].as_u64(),
        Some(0),
        "certificates_issued: {ca}"
    );

    let now = OffsetDateTime::now_utc();
    let valid_from = parse_time(ca, "valid_from");
    let created_at = parse_time(ca, "created_at");
    let _ = parse_time(ca, "valid_until");
    assert!(
        (valid_from - now).whole_seconds().abs() <= DAY,
        "valid_from {valid_from} is not about now ({now})"
    );
    assert!(
        (created_at - now).whole_seconds().abs() <= 600,
        "created_at {created_at} is not about now ({now})"
    );

    let serial = ca["serial_number"]
        .as_str()
        .unwrap_or_else(|| panic!("serial_number not a string: {ca}"));
    assert!(
        !serial.is_empty()
            && serial.split(':').all(|b| {
                b.len() == 2
                    && b.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
            }),
        "serial_number {serial:?} should look like 1A:2B:.."
    );
    let fp = ca["fingerprint_sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("fingerprint_sha256 not a string: {ca}"))
        .replace(':', "");
    assert!(
        fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit()),
        "fingerprint_sha256 {fp:?} should be 32 bytes of hex"
    );
    let uri = ca["key_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("key_uri not a string: {ca}"));
    assert!(
        uri.starts_with("pkcs11:"),
        "key_uri {uri:?} should be a pkcs11: URI"
    );
}

/// `openssl x509 -noout ARGS` on a PEM; returns stdout.
fn openssl_x509(pem: &str, args: &[&str]) -> String {
    let p = write_pem("x509", pem);
    let mut all = vec!["x509", "-noout", "-in", p.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = openssl(&all);
    assert!(
        out.status.success(),
        "openssl {all:?}: {}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl verify -x509_strict -CAfile root [-untrusted chain] leaf`.
fn openssl_verify(root_pem: &str, untrusted: &[&str], leaf_pem: &str) -> (bool, String) {
    // A self-signed certificate verified against itself: check its signature too.
    let extra: &[&str] = if root_pem == leaf_pem {
        &["-check_ss_sig"]
    } else {
        &[]
    };
    common::openssl_verify(root_pem, untrusted, leaf_pem, extra)
}

/// Run the Python `cryptography` profile check over a chain (root first).
fn python_profile_check(chain: &[(&Value, &str)]) {
    let entries: Vec<Value> = chain
        .iter()
        .map(|(ca, pem)| {
            let p = write_pem(&format!("py-{}", ca["name"].as_str().unwrap_or("ca")), pem);
            json!({"pem": p.to_string_lossy(), "ca": ca})
        })
        .collect();
    let arg = Value::Array(entries).to_string();
    let (ok, out) = python_cryptography_check(PROFILE_CHECK, &[&arg]);
    assert!(
        ok,
        "Python cryptography judged the CA profile wrong:\n{out}"
    );
}

/// Every judge over a chain of CA objects, root first: openssl verify,
/// pkilint per certificate and per signer/signee link, Python profile check.
fn judge_chain(chain: &[&Value]) {
    let d = daemon();
    let pems: Vec<String> = chain
        .iter()
        .map(|ca| d.ca_certificate_pem(&id_of(ca)))
        .collect();

    if require_tool("openssl") {
        let (ok, out) = openssl_verify(&pems[0], &[], &pems[0]);
        assert!(ok, "root does not verify as self-signed:\n{out}");
        for i in 1..pems.len() {
            let untrusted: Vec<&str> = pems[1..i].iter().map(String::as_str).collect();
            let (ok, out) = openssl_verify(&pems[0], &untrusted, &pems[i]);
            assert!(
                ok,
                "certificate #{i} does not verify up to the root:\n{out}"
            );
        }
    }
    if require_tool("lint_pkix_cert") && require_tool("lint_pkix_signer_signee_cert_chain") {
        for (ca, pem) in chain.iter().zip(&pems) {
            let (ok, out) = pkilint_cert(pem);
            assert!(
                ok,
                "pkilint findings for {} {} {} {}:\n{out}\n{pem}",
                ca["ca_type"], ca["key_type"], ca["key_size"], ca["name"]
            );
        }
        for w in pems.windows(2) {
            let (ok, out) = pkilint_chain(&w[0], &w[1]);
            assert!(ok, "pkilint signer/signee findings:\n{out}");
        }
    }
    if require_python_cryptography() {
        let pairs: Vec<(&Value, &str)> = chain
            .iter()
            .copied()
            .zip(pems.iter().map(String::as_str))
            .collect();
        python_profile_check(&pairs);
    }
}

/// A root of one key type signing an intermediate of another, through every judge.
fn judge_pair(root_key: Value, int_key: Value) {
    let d = daemon();
    let root = d.create_root("judge-root", root_key.clone());
    let int = d.create_intermediate("judge-int", &id_of(&root), int_key.clone());
    for (ca, k) in [(&root, &root_key), (&int, &int_key)] {
        if let Some(t) = k.get("key_type") {
            assert_eq!(&ca["key_type"], t, "{ca}");
        }
        if let Some(s) = k.get("key_size") {
            assert_eq!(&ca["key_size"], s, "{ca}");
        }
    }
    judge_chain(&[&root, &int]);
}

// ---------------------------------------------------------------- the spec's example

#[test]
fn spec_create_internal_ca_example_returns_201_with_spec_fields() {
    let d = daemon();
    let root_req = json!({
        "name": "acme-root",
        "common_name": "Acme Root CA",
        "ca_type": "root",
        "key_type": "ec",
        "key_size": 256,
        "validity_days": 3650
    });
    let (status, root) = d.post("/v1/pki/ca", &root_req);
    assert_eq!(status, 201, "spec root example -> {status} {root}");
    assert_ca_object(&root, &root_req, "ec", 256);
    assert_validity_days(&root, 3650);

    let int_req = json!({
        "name": "acme-mtls-intermediate",
        "common_name": "Acme mTLS Intermediate",
        "ca_type": "intermediate",
        "parent_ca_id": root["id"],
        "key_type": "ec",
        "key_size": 256,
        "validity_days": 1825
    });
    let (status, int) = d.post("/v1/pki/ca", &int_req);
    assert_eq!(status, 201, "spec intermediate example -> {status} {int}");
    assert_ca_object(&int, &int_req, "ec", 256);
    assert_validity_days(&int, 1825);
    assert_ne!(root["id"], int["id"]);
}

#[test]
fn health_is_ok_and_names_the_token_without_a_token() {
    let d = daemon();
    let (status, v) = d.get_with("/v1/sys/health", Auth::None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["token"]["label"], d.token_label.as_str(), "{v}");
    assert_eq!(v["token"]["state"], "ready", "{v}");
    assert!(v["token"]["manufacturer"].is_string(), "{v}");
    assert!(v["token"]["model"].is_string(), "{v}");
}

// ---------------------------------------------------------------- serving the certificate

#[test]
fn ca_certificate_is_served_as_pem_without_a_token() {
    let d = daemon();
    let root = d.create_root("pem-root", json!({"key_type": "ec"}));
    let path = format!("/v1/pki/ca/{}/certificate", id_of(&root));
    let r = d.request(reqwest::Method::GET, &path, Auth::None, &[], None);
    assert_eq!(
        r.status,
        200,
        "GET {path} without token -> {} {}",
        r.status,
        r.text()
    );
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    let v = r.json();
    let pem = v["certificate_pem"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert!(
        pem.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{pem}"
    );
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1, "{pem}");

    // The same with the token.
    let (status, v2) = d.get(&path);
    assert_eq!(status, 200);
    assert_eq!(v2["certificate_pem"], v["certificate_pem"]);

    if require_tool("openssl") {
        let subject = openssl_x509(pem, &["-subject", "-nameopt", "RFC2253"]);
        let cn = root["common_name"].as_str().unwrap();
        assert!(
            subject.contains(&format!("CN={cn}")),
            "subject {subject:?} vs CN {cn:?}"
        );
        // Fingerprint and serial in the CA object match the certificate.
        let fp = openssl_x509(pem, &["-fingerprint", "-sha256"]);
        let fp = fp
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase();
        let api_fp = root["fingerprint_sha256"]
            .as_str()
            .unwrap()
            .replace(':', "")
            .to_lowercase();
        assert_eq!(api_fp, fp, "fingerprint_sha256 vs openssl");
        let serial = openssl_x509(pem, &["-serial"]);
        let serial = serial
            .trim()
            .trim_start_matches("serial=")
            .trim_start_matches('0')
            .to_uppercase();
        let api_serial = root["serial_number"].as_str().unwrap().replace(':', "");
        assert_eq!(
            api_serial.trim_start_matches('0'),
            serial,
            "serial_number vs openssl"
        );
    }
}

#[test]
fn ca_certificate_is_served_as_der_with_accept_pkix_cert() {
    let d = daemon();
    let root = d.create_root("der-root", json!({"key_type": "ec"}));
    let pem = d.ca_certificate_pem(&id_of(&root));
    let path = format!("/v1/pki/ca/{}/certificate", id_of(&root));
    let r = d.request(
        reqwest::Method::GET,
        &path,
        Auth::None,
        &[("Accept", "application/pkix-cert")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/pkix-cert"),
        "content-type {ct:?}"
    );
    assert_eq!(
        r.body,
        pem_to_der(&pem),
        "DER body differs from the PEM's content"
    );
    assert_eq!(
        r.body.first(),
        Some(&0x30),
        "DER must start with a SEQUENCE"
    );

    if require_tool("openssl") {
        let p = common::write_bytes("served.der", &r.body);
        let out = openssl([
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-subject",
            "-in",
            p.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "openssl cannot read the DER: {}",
            output_text(&out)
        );
    }
}

#[test]
fn certificate_of_unknown_ca_is_404_ca_not_found() {
    let d = daemon();
    let (status, v) = d.get_with("/v1/pki/ca/ca_doesnotexist/certificate", Auth::None);
    assert_error(
        "GET certificate of unknown CA",
        (status, &v),
        404,
        "ca_not_found",
    );
}

// ---------------------------------------------------------------- external judges

#[test]
fn root_and_intermediate_verify_with_openssl() {
    if !require_tool("openssl") {
        return;
    }
    let d = daemon();
    let root = d.create_root("ossl-root", json!({"key_type": "ec"}));
    let int = d.create_intermediate("ossl-int", &id_of(&root), json!({"key_type": "ec"}));
    let root_pem = d.ca_certificate_pem(&id_of(&root));
    let int_pem = d.ca_certificate_pem(&id_of(&int));

    let (ok, out) = openssl_verify(&root_pem, &[], &root_pem);
    assert!(ok, "root self-signature:\n{out}");
    let (ok, out) = openssl_verify(&root_pem, &[], &int_pem);
    assert!(ok, "intermediate under root:\n{out}");

    // Against an unrelated root it must NOT verify.
    let other = d.create_root("ossl-other", json!({"key_type": "ec"}));
    let other_pem = d.ca_certificate_pem(&id_of(&other));
    let (ok, out) = openssl_verify(&other_pem, &[], &int_pem);
    assert!(
        !ok,
        "intermediate verified against an unrelated root:\n{out}"
    );
}

#[test]
fn three_level_chain_verifies_with_openssl() {
    let d = daemon();
    let root = d.create_root("l3-root", json!({"key_type": "ec", "key_size": 384}));
    let int1 = d.create_intermediate("l3-int1", &id_of(&root), json!({"key_type": "ec"}));
    let int2 = d.create_intermediate("l3-int2", &id_of(&int1), json!({"key_type": "ec"}));
    assert_eq!(int2["parent_ca_id"], int1["id"]);
    judge_chain(&[&root, &int1, &int2]);
}

#[test]
fn ca_certificates_lint_clean_with_pkilint() {
    if !require_tool("lint_pkix_cert") || !require_tool("lint_pkix_signer_signee_cert_chain") {
        return;
    }
    let d = daemon();
    // Defaults: RSA 2048.
    let root = d.create_root("lint-root", json!({}));
    let int = d.create_intermediate("lint-int", &id_of(&root), json!({}));
    let root_pem = d.ca_certificate_pem(&id_of(&root));
    let int_pem = d.ca_certificate_pem(&id_of(&int));
    let (ok, out) = pkilint_cert(&root_pem);
    assert!(ok, "root:\n{out}\n{root_pem}");
    let (ok, out) = pkilint_cert(&int_pem);
    assert!(ok, "intermediate:\n{out}\n{int_pem}");
    let (ok, out) = pkilint_chain(&root_pem, &int_pem);
    assert!(ok, "root -> intermediate:\n{out}");
}

#[test]
fn rsa3072_root_signing_an_ec384_intermediate_passes_every_judge() {
    judge_pair(
        json!({"key_type": "rsa", "key_size": 3072}),
        json!({"key_type": "ec", "key_size": 384}),
    );
}

#[test]
fn rsa4096_root_signing_an_ec256_intermediate_passes_every_judge() {
    judge_pair(
        json!({"key_type": "rsa", "key_size": 4096}),
        json!({"key_type": "ec", "key_size": 256}),
    );
}

#[test]
fn ec256_root_signing_an_ec256_intermediate_passes_every_judge() {
    judge_pair(
        json!({"key_type": "ec", "key_size": 256}),
        json!({"key_type": "ec", "key_size": 256}),
    );
}

#[test]
fn ec384_root_signing_an_rsa2048_intermediate_passes_every_judge() {
    judge_pair(
        json!({"key_type": "ec", "key_size": 384}),
        json!({"key_type": "rsa", "key_size": 2048}),
    );
}

#[test]
fn rsa2048_root_signing_an_rsa3072_intermediate_passes_every_judge() {
    judge_pair(
        json!({"key_type": "rsa"}),
        json!({"key_type": "rsa", "key_size": 3072}),
    );
}

#[test]
fn python_cryptography_sees_the_ca_profile() {
    if !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let root = d.create_root("py-root", json!({"key_type": "ec"}));
    let int = d.create_intermediate("py-int", &id_of(&root), json!({"key_type": "rsa"}));
    let root_pem = d.ca_certificate_pem(&id_of(&root));
    let int_pem = d.ca_certificate_pem(&id_of(&int));
    python_profile_check(&[(&root, &root_pem), (&int, &int_pem)]);
}

// ---------------------------------------------------------------- defaults

#[test]
fn root_defaults_are_rsa_2048_and_3650_days() {
    let d = daemon();
    let name = unique_name("dflt-root");
    let req = json!({"name": name, "common_name": "Default Root", "ca_type": "root"});
    let root = d.create_ca(&req);
    assert_ca_object(&root, &req, "rsa", 2048);
    assert_validity_days(&root, 3650);
    if require_python_cryptography() {
        let pem = d.ca_certificate_pem(&id_of(&root));
        python_profile_check(&[(&root, &pem)]);
    }
}

#[test]
fn intermediate_defaults_are_rsa_2048_and_1825_days() {
    let d = daemon();
    let root = d.create_root("dflt-parent", json!({"key_type": "ec"}));
    let name = unique_name("dflt-int");
    let req = json!({
        "name": name, "common_name": "Default Intermediate",
        "ca_type": "intermediate", "parent_ca_id": root["id"],
    });
    let int = d.create_ca(&req);
    assert_ca_object(&int, &req, "rsa", 2048);
    assert_validity_days(&int, 1825);
}

#[test]
fn ec_without_key_size_defaults_to_256() {
    let d = daemon();
    let name = unique_name("dflt-ec");
    let req = json!({"name": name, "common_name": "EC Root", "ca_type": "root", "key_type": "ec"});
    let root = d.create_ca(&req);
    assert_ca_object(&root, &req, "ec", 256);
    if require_python_cryptography() {
        let pem = d.ca_certificate_pem(&id_of(&root));
        python_profile_check(&[(&root, &pem)]);
    }
}

#[test]
fn rsa_key_size_without_key_type_is_rsa() {
    let d = daemon();
    let root = d.create_root("dflt-rsa3072", json!({"key_size": 3072}));
    assert_eq!(root["key_type"], "rsa", "{root}");
    assert_eq!(root["key_size"], 3072, "{root}");
}

#[test]
fn explicit_validity_days_are_honoured() {
    let d = daemon();
    let root = d.create_root("vd-root", json!({"key_type": "ec", "validity_days": 400}));
    assert_validity_days(&root, 400);
    let int = d.create_intermediate(
        "vd-int",
        &id_of(&root),
        json!({"key_type": "ec", "validity_days": 90}),
    );
    assert_validity_days(&int, 90);
}

// ---------------------------------------------------------------- validity clipping

#[test]
fn intermediate_outliving_parent_is_clipped_to_parent_expiry() {
    let d = daemon();
    let root = d.create_root("clip-root", json!({"key_type": "ec", "validity_days": 30}));
    assert_validity_days(&root, 30);
    let int = d.create_intermediate(
        "clip-int",
        &id_of(&root),
        json!({"key_type": "ec", "validity_days": 1825}),
    );
    assert_eq!(
        parse_time(&int, "valid_until"),
        parse_time(&root, "valid_until"),
        "intermediate valid_until should be clipped to the root's: root {root}\nint {int}"
    );
    judge_chain(&[&root, &int]);
}

// ---------------------------------------------------------------- request errors

fn create_err(body: &Value) -> (u16, Value) {
    daemon().post("/v1/pki/ca", body)
}

fn assert_not_listed(name: &str) {
    let (status, list) = daemon().get("/v1/pki/ca");
    assert_eq!(status, 200, "{list}");
    let found = list["data"]
        .as_array()
        .map(|a| a.iter().any(|ca| ca["name"] == name))
        .unwrap_or(false);
    assert!(!found, "a rejected request left CA {name:?} behind: {list}");
}

#[test]
fn duplicate_name_is_409_ca_name_exists() {
    let d = daemon();
    let root = d.create_root("dup", json!({"key_type": "ec"}));
    let body = json!({
        "name": root["name"], "common_name": "Another CN", "ca_type": "root", "key_type": "ec",
    });
    let (s, v) = create_err(&body);
    assert_error("duplicate root name", (s, &v), 409, "ca_name_exists");
    // Also as an intermediate under the first one.
    let body = json!({
        "name": root["name"], "common_name": "Another CN", "ca_type": "intermediate",
        "parent_ca_id": root["id"], "key_type": "ec",
    });
    let (s, v) = create_err(&body);
    assert_error(
        "duplicate intermediate name",
        (s, &v),
        409,
        "ca_name_exists",
    );
}

#[test]
fn concurrent_creates_with_one_name_make_exactly_one_ca() {
    let d = daemon();
    let name = unique_name("race");
    let statuses: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let name = name.clone();
                s.spawn(move || {
                    d.post(
                        "/v1/pki/ca",
                        &json!({"name": name, "common_name": format!("Race {i}"),
                                "ca_type": "root", "key_type": "ec"}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(
        created, 1,
        "want exactly one 201 for one name, got {statuses:?}"
    );
    for (s, v) in statuses.iter().filter(|(s, _)| *s != 201) {
        assert_error("concurrent duplicate", (*s, v), 409, "ca_name_exists");
    }
    let (_, list) = d.get("/v1/pki/ca");
    let n = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ca| ca["name"] == name.as_str())
        .count();
    assert_eq!(n, 1, "list holds {n} CAs named {name}");
}

#[test]
fn unknown_parent_is_404_ca_not_found() {
    let name = unique_name("orphan");
    let body = json!({
        "name": name, "common_name": "Orphan", "ca_type": "intermediate",
        "parent_ca_id": "ca_doesnotexist", "key_type": "ec",
    });
    let (s, v) = create_err(&body);
    assert_error("unknown parent", (s, &v), 404, "ca_not_found");
    assert_not_listed(&name);
}

#[test]
fn ec_with_an_rsa_key_size_is_400_invalid_key_size() {
    for size in [2048, 521, 224, 0] {
        let name = unique_name("ec-bad");
        let body = json!({
            "name": name, "common_name": "X", "ca_type": "root", "key_type": "ec", "key_size": size,
        });
        let (s, v) = create_err(&body);
        assert_error(
            &format!("ec key_size {size}"),
            (s, &v),
            400,
            "invalid_key_size",
        );
        assert_not_listed(&name);
    }
}

#[test]
fn rsa_sizes_other_than_2048_3072_4096_are_400_invalid_key_size() {
    for size in [1024, 256, 2047, 8192] {
        let name = unique_name("rsa-bad");
        let body = json!({
            "name": name, "common_name": "X", "ca_type": "root", "key_type": "rsa", "key_size": size,
        });
        let (s, v) = create_err(&body);
        assert_error(
            &format!("rsa key_size {size}"),
            (s, &v),
            400,
            "invalid_key_size",
        );
        assert_not_listed(&name);
    }
}

#[test]
fn missing_required_fields_are_400_invalid_request() {
    let full = json!({"name": unique_name("missing"), "common_name": "X", "ca_type": "root", "key_type": "ec"});
    for field in ["name", "common_name", "ca_type"] {
        let mut body = full.clone();
        body.as_object_mut().unwrap().remove(field);
        let (s, v) = create_err(&body);
        assert_error(&format!("missing {field}"), (s, &v), 400, "invalid_request");
    }
    assert_not_listed(full["name"].as_str().unwrap());
}

#[test]
fn empty_name_or_common_name_is_400_invalid_request() {
    let n = unique_name("empty");
    for body in [
        json!({"name": "", "common_name": "X", "ca_type": "root", "key_type": "ec"}),
        json!({"name": n, "common_name": "", "ca_type": "root", "key_type": "ec"}),
    ] {
        let (s, v) = create_err(&body);
        assert_error(&format!("{body}"), (s, &v), 400, "invalid_request");
    }
    assert_not_listed(&n);
}

#[test]
fn malformed_json_is_400_invalid_json() {
    let d = daemon();
    for raw in [&b"{\"name\": \"x\","[..], b"not json", b""] {
        let (s, v) = d.post_raw("/v1/pki/ca", "application/json", raw);
        assert_error(
            &format!("body {:?}", String::from_utf8_lossy(raw)),
            (s, &v),
            400,
            "invalid_json",
        );
    }
}

#[test]
fn wrong_field_types_are_400_invalid_request() {
    let n = unique_name("types");
    for body in [
        json!({"name": n, "common_name": "X", "ca_type": "root", "key_type": "ec", "key_size": "256"}),
        json!({"name": n, "common_name": "X", "ca_type": "root", "validity_days": "30"}),
        json!({"name": 7, "common_name": "X", "ca_type": "root"}),
        json!(["not", "an", "object"]),
    ] {
        let (s, v) = create_err(&body);
        assert_error(&format!("{body}"), (s, &v), 400, "invalid_request");
    }
    assert_not_listed(&n);
}

#[test]
fn unknown_ca_type_is_400_invalid_request() {
    for t in ["leaf", "ROOT", ""] {
        let name = unique_name("type");
        let body = json!({"name": name, "common_name": "X", "ca_type": t, "key_type": "ec"});
        let (s, v) = create_err(&body);
        assert_error(&format!("ca_type {t:?}"), (s, &v), 400, "invalid_request");
        assert_not_listed(&name);
    }
}

#[test]
fn unknown_key_type_is_400_invalid_request() {
    for t in ["dsa", "ed25519", "EC"] {
        let name = unique_name("keytype");
        let body = json!({"name": name, "common_name": "X", "ca_type": "root", "key_type": t});
        let (s, v) = create_err(&body);
        assert_error(&format!("key_type {t:?}"), (s, &v), 400, "invalid_request");
        assert_not_listed(&name);
    }
}

#[test]
fn non_positive_validity_days_is_400_invalid_request() {
    for days in [0, -1] {
        let name = unique_name("validity");
        let body = json!({
            "name": name, "common_name": "X", "ca_type": "root", "key_type": "ec", "validity_days": days,
        });
        let (s, v) = create_err(&body);
        assert_error(
            &format!("validity_days {days}"),
            (s, &v),
            400,
            "invalid_request",
        );
        assert_not_listed(&name);
    }
}

#[test]
fn intermediate_without_parent_is_400_invalid_request() {
    let name = unique_name("noparent");
    let body =
        json!({"name": name, "common_name": "X", "ca_type": "intermediate", "key_type": "ec"});
    let (s, v) = create_err(&body);
    assert_error(
        "intermediate without parent_ca_id",
        (s, &v),
        400,
        "invalid_request",
    );
    assert_not_listed(&name);
}

// ---------------------------------------------------------------- auth

#[test]
fn requests_without_a_token_are_401_unauthorized() {
    let d = daemon();
    let root = d.create_root("auth-none", json!({"key_type": "ec"}));
    let id = id_of(&root);
    let name = unique_name("auth-none-post");
    let body = json!({"name": name, "common_name": "X", "ca_type": "root", "key_type": "ec"});

    let (s, v) = d.get_with("/v1/pki/ca", Auth::None);
    assert_error("GET /v1/pki/ca without token", (s, &v), 401, "unauthorized");
    let (s, v) = d.get_with(&format!("/v1/pki/ca/{id}"), Auth::None);
    assert_error(
        "GET /v1/pki/ca/{id} without token",
        (s, &v),
        401,
        "unauthorized",
    );
    let (s, v) = d.post_with("/v1/pki/ca", &body, Auth::None);
    assert_error(
        "POST /v1/pki/ca without token",
        (s, &v),
        401,
        "unauthorized",
    );
    let (s, v) = d.patch_with(
        &format!("/v1/pki/ca/{id}"),
        &json!({"is_active": false}),
        Auth::None,
    );
    assert_error("PATCH without token", (s, &v), 401, "unauthorized");

    assert_not_listed(&name);
    let (_, ca) = d.get(&format!("/v1/pki/ca/{id}"));
    assert_eq!(
        ca["is_active"], true,
        "unauthenticated PATCH changed the CA: {ca}"
    );
}

#[test]
fn requests_with_a_wrong_token_are_401_unauthorized() {
    let d = daemon();
    let root = d.create_root("auth-wrong", json!({"key_type": "ec"}));
    let id = id_of(&root);
    let name = unique_name("auth-wrong-post");
    let body = json!({"name": name, "common_name": "X", "ca_type": "root", "key_type": "ec"});
    let almost = format!("{}x", d.root_token);
    let basic = format!("Basic {}", d.root_token);
    let bare = d.root_token.clone();
    let wrong: Vec<(&str, Auth<'_>)> = vec![
        ("random bearer", Auth::Bearer("sv_not_a_real_token")),
        ("root token plus a char", Auth::Bearer(&almost)),
        ("empty bearer", Auth::Header("Bearer ")),
        ("Basic scheme", Auth::Header(&basic)),
        ("no scheme", Auth::Header(&bare)),
    ];
    for (what, auth) in wrong {
        let (s, v) = d.get_with("/v1/pki/ca", auth);
        assert_error(&format!("GET list, {what}"), (s, &v), 401, "unauthorized");
        let (s, v) = d.get_with(&format!("/v1/pki/ca/{id}"), auth);
        assert_error(&format!("GET by id, {what}"), (s, &v), 401, "unauthorized");
        let (s, v) = d.post_with("/v1/pki/ca", &body, auth);
        assert_error(&format!("POST, {what}"), (s, &v), 401, "unauthorized");
        let (s, v) = d.patch_with(
            &format!("/v1/pki/ca/{id}"),
            &json!({"is_active": false}),
            auth,
        );
        assert_error(&format!("PATCH, {what}"), (s, &v), 401, "unauthorized");
    }
    assert_not_listed(&name);
    let (_, ca) = d.get(&format!("/v1/pki/ca/{id}"));
    assert_eq!(
        ca["is_active"], true,
        "PATCH with a wrong token changed the CA: {ca}"
    );
}

#[test]
fn health_and_ca_certificate_need_no_token() {
    let d = daemon();
    let root = d.create_root("noauth", json!({"key_type": "ec"}));
    let (s, v) = d.get_with("/v1/sys/health", Auth::None);
    assert_eq!(s, 200, "{v}");
    let (s, v) = d.get_with(
        &format!("/v1/pki/ca/{}/certificate", id_of(&root)),
        Auth::None,
    );
    assert_eq!(s, 200, "{v}");
    // A wrong token on a public endpoint does not turn it into a 401.
    let (s, v) = d.get_with(
        &format!("/v1/pki/ca/{}/certificate", id_of(&root)),
        Auth::Bearer("wrong"),
    );
    assert_eq!(s, 200, "{v}");
}

#[test]
fn root_token_file_is_mode_0600() {
    let d = daemon();
    let p = d.data_dir.join("root-token");
    let mode = std::fs::metadata(&p)
        .expect("root-token")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", p.display());
}

#[test]
fn daemon_log_holds_neither_the_pin_nor_the_root_token() {
    let d = daemon();
    // Make the daemon do some work first.
    let root = d.create_root("log", json!({"key_type": "ec"}));
    let _ = d.get(&format!("/v1/pki/ca/{}", id_of(&root)));
    let _ = d.get_with("/v1/pki/ca", Auth::Bearer("sv_wrong"));
    let log = std::fs::read_to_string(&d.log_path).unwrap_or_default();
    assert!(
        !log.contains(&d.pin),
        "the HSM PIN appears in {}",
        d.log_path.display()
    );
    assert!(
        !log.contains(&d.root_token),
        "the root token appears in {}",
        d.log_path.display()
    );
}

// ---------------------------------------------------------------- activation

#[test]
fn patch_is_active_false_blocks_signing_but_serves_certificate() {
    let d = daemon();
    let root = d.create_root("inactive", json!({"key_type": "ec"}));
    let id = id_of(&root);
    let path = format!("/v1/pki/ca/{id}");

    let (s, v) = d.patch(&path, &json!({"is_active": false}));
    assert_eq!(s, 200, "PATCH is_active false -> {s} {v}");
    assert_eq!(v["is_active"], false, "{v}");
    assert_eq!(v["id"], root["id"], "{v}");
    let (s, v) = d.get(&path);
    assert_eq!(s, 200);
    assert_eq!(v["is_active"], false, "GET after PATCH: {v}");

    let name = unique_name("under-inactive");
    let body = json!({
        "name": name, "common_name": "X", "ca_type": "intermediate",
        "parent_ca_id": id, "key_type": "ec",
    });
    let (s, v) = d.post("/v1/pki/ca", &body);
    assert_error(
        "intermediate under an inactive root",
        (s, &v),
        422,
        "ca_inactive",
    );
    assert_not_listed(&name);

    // The certificate is still served.
    let pem = d.ca_certificate_pem(&id);
    assert!(pem.contains("BEGIN CERTIFICATE"));

    // Reactivate: signing works again.
    let (s, v) = d.patch(&path, &json!({"is_active": true}));
    assert_eq!(s, 200, "PATCH is_active true -> {s} {v}");
    assert_eq!(v["is_active"], true, "{v}");
    let (s, v) = d.post("/v1/pki/ca", &body);
    assert_eq!(s, 201, "intermediate under a reactivated root -> {s} {v}");
    assert_eq!(v["parent_ca_id"], root["id"]);
}

#[test]
fn patch_unknown_ca_is_404_ca_not_found() {
    let (s, v) = daemon().patch("/v1/pki/ca/ca_doesnotexist", &json!({"is_active": false}));
    assert_error("PATCH unknown CA", (s, &v), 404, "ca_not_found");
}

#[test]
fn patch_with_a_bad_body_is_400() {
    let d = daemon();
    let root = d.create_root("patch-bad", json!({"key_type": "ec"}));
    let path = format!("/v1/pki/ca/{}", id_of(&root));
    let (s, v) = d.patch_raw(&path, "application/json", b"{\"is_active\": ");
    assert_error("PATCH malformed JSON", (s, &v), 400, "invalid_json");
    let (s, v) = d.patch(&path, &json!({"is_active": "no"}));
    assert_error(
        "PATCH is_active as a string",
        (s, &v),
        400,
        "invalid_request",
    );
    let (_, ca) = d.get(&path);
    assert_eq!(
        ca["is_active"], true,
        "a rejected PATCH changed the CA: {ca}"
    );
}

// ---------------------------------------------------------------- reading

#[test]
fn list_contains_created_cas_and_get_by_id_returns_the_same_object() {
    let d = daemon();
    let root = d.create_root("list-root", json!({"key_type": "ec"}));
    let int = d.create_intermediate("list-int", &id_of(&root), json!({"key_type": "ec"}));

    let (s, list) = d.get("/v1/pki/ca");
    assert_eq!(s, 200, "{list}");
    assert!(list["cursor"].is_null(), "cursor: {list}");
    assert_eq!(list["has_more"], false, "has_more: {list}");
    let data = list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("data: {list}"));
    for ca in [&root, &int] {
        let found: Vec<&Value> = data.iter().filter(|c| c["id"] == ca["id"]).collect();
        assert_eq!(found.len(), 1, "{} listed {} times", ca["id"], found.len());
        assert_eq!(found[0], ca, "listed object differs from the created one");
    }
    let ids: Vec<&Value> = data.iter().map(|c| &c["id"]).collect();
    let mut dedup = ids.clone();
    dedup.sort_by_key(|v| v.to_string());
    dedup.dedup();
    assert_eq!(ids.len(), dedup.len(), "list has duplicate ids");

    let (s, got) = d.get(&format!("/v1/pki/ca/{}", id_of(&int)));
    assert_eq!(s, 200, "{got}");
    assert_eq!(got, int, "GET by id differs from the created object");
}

#[test]
fn get_unknown_id_is_404_ca_not_found() {
    let (s, v) = daemon().get("/v1/pki/ca/ca_doesnotexist");
    assert_error("GET unknown CA", (s, &v), 404, "ca_not_found");
}

// ---------------------------------------------------------------- the token

#[test]
fn ca_private_keys_are_sensitive_and_never_extractable_in_the_token() {
    if !require_tool("pkcs11-tool") {
        return;
    }
    let d = daemon();
    let root = d.create_root("hsm-root", json!({"key_type": "ec"}));
    let int = d.create_intermediate("hsm-int", &id_of(&root), json!({"key_type": "rsa"}));
    let int384 = d.create_intermediate(
        "hsm-int384",
        &id_of(&root),
        json!({"key_type": "ec", "key_size": 384}),
    );
    let listing = d.pkcs11_list_objects();
    let objects = parse_pkcs11_objects(&listing);

    for ca in [&root, &int, &int384] {
        let label = format!("scaivault-ca-{}", id_of(ca));
        let privs: Vec<_> = objects
            .iter()
            .filter(|o| o.is_private_key() && o.attr("label") == Some(label.as_str()))
            .collect();
        assert_eq!(
            privs.len(),
            1,
            "want exactly one private key labelled {label}, found {}:\n{listing}",
            privs.len()
        );
        let key = privs[0];
        let kt = if ca["key_type"] == "ec" { "EC" } else { "RSA" };
        assert!(
            key.header.contains(kt),
            "{label}: {} is not {kt}",
            key.header
        );

        key.assert_sign_only_and_protected(
            &label,
            &["sensitive", "always sensitive", "never extractable"],
        );
        let ck_id = key.attr("ID").unwrap_or_default();
        assert!(
            ck_id.len() == 32 && ck_id.chars().all(|c| c.is_ascii_hexdigit()),
            "{label}: CKA_ID {ck_id:?} should be 16 bytes"
        );

        // A public key object, if kept, carries the same label and id, and for EC
        // its point is the certificate's public key.
        for public in objects
            .iter()
            .filter(|o| o.is_public_key() && o.attr("label") == Some(label.as_str()))
        {
            assert_eq!(
                public.attr("ID"),
                Some(ck_id),
                "{label}: public/private CKA_ID differ"
            );
            if let (Some(point), true) = (public.attr("EC_POINT"), require_tool("openssl")) {
                let pem = d.ca_certificate_pem(&id_of(ca));
                let spki = openssl_x509(&pem, &["-pubkey"]);
                let spki = pem_to_der(&spki);
                // The uncompressed point 04||X||Y ends the SPKI.
                let point_len = if ca["key_size"] == 384 { 97 } else { 65 };
                let raw = hex::encode(&spki[spki.len() - point_len..]);
                assert!(
                    point.to_lowercase().ends_with(&raw),
                    "{label}: token EC_POINT {point} is not the certificate's key {raw}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- pointers and revocation

/// Python `cryptography`'s reading of where certificates point. argv: PEM paths. Prints
/// JSON, one object per certificate: crl_dp (full-name URIs, or null without the
/// extension), ca_issuers (AIA caIssuers URIs, or null without AIA), and whether each
/// extension is critical.
const POINTERS: &str = r#"
import json, sys
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID
out = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    row = {"crl_dp": None, "crl_dp_critical": None, "ca_issuers": None, "aia_critical": None}
    try:
        e = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        row["crl_dp"] = [n.value for dp in e.value for n in (dp.full_name or [])]
        row["crl_dp_critical"] = e.critical
    except x509.ExtensionNotFound:
        pass
    try:
        e = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
        row["ca_issuers"] = [
            a.access_location.value
            for a in e.value
            if a.access_method == AuthorityInformationAccessOID.CA_ISSUERS
        ]
        row["aia_critical"] = e.critical
    except x509.ExtensionNotFound:
        pass
    out.append(row)
print(json.dumps(out))
"#;

/// With `public_base_url`, an intermediate points at its parent's CRL and certificate
/// (as leaves point at their issuer's), so revoking it reaches clients that follow
/// distribution points; a root points nowhere. Every judge still accepts the chain.
#[test]
fn with_public_base_url_intermediates_point_at_their_parents_crl_and_certificate() {
    if !require_python_cryptography()
        || !require_tool("openssl")
        || !require_tool("lint_pkix_cert")
        || !require_tool("lint_pkix_signer_signee_cert_chain")
    {
        return;
    }
    let base = "http://pki.example.test:8200";
    let setup = common::new_daemon_setup(&format!("public_base_url = \"{base}/\""))
        .unwrap_or_else(|e| panic!("{e}"));
    let d = common::start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    let root = d.create_root("dp-root", json!({"key_type": "ec"}));
    let int = d.create_intermediate("dp-int", &id_of(&root), json!({"key_type": "ec"}));
    let sub = d.create_intermediate("dp-sub", &id_of(&int), json!({"key_type": "rsa"}));
    let chain = [&root, &int, &sub];
    let pems: Vec<String> = chain
        .iter()
        .map(|ca| d.ca_certificate_pem(&id_of(ca)))
        .collect();

    let paths: Vec<String> = pems
        .iter()
        .map(|p| write_pem("dp", p).to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (ok, out) = python_cryptography_check(POINTERS, &args);
    assert!(ok, "{out}");
    let rows: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        rows[0],
        json!({"crl_dp": null, "crl_dp_critical": null, "ca_issuers": null, "aia_critical": null}),
        "a root has no issuer to point at"
    );
    for (i, parent) in [(1, &root), (2, &int)] {
        let pid = id_of(parent);
        assert_eq!(
            rows[i],
            json!({
                "crl_dp": [format!("{base}/v1/pki/ca/{pid}/crl")],
                "crl_dp_critical": false,
                "ca_issuers": [format!("{base}/v1/pki/ca/{pid}/certificate?format=der")],
                "aia_critical": false,
            }),
            "{} should point at its parent {pid}",
            chain[i]["name"]
        );
    }

    for (ca, pem) in chain.iter().zip(&pems) {
        let (ok, out) = pkilint_cert(pem);
        assert!(ok, "pkilint findings for {}:\n{out}\n{pem}", ca["name"]);
    }
    for w in pems.windows(2) {
        let (ok, out) = pkilint_chain(&w[0], &w[1]);
        assert!(ok, "pkilint signer/signee findings:\n{out}");
    }
    let pairs: Vec<(&Value, &str)> = chain
        .iter()
        .copied()
        .zip(pems.iter().map(String::as_str))
        .collect();
    python_profile_check(&pairs);

    // Full-chain CRL checking accepts it, and sees the intermediate once it is revoked.
    let (st, role) = d.post(
        "/v1/pki/roles",
        &json!({"name": unique_name("dp-role"), "ca_id": id_of(&sub), "allow_any_name": true}),
    );
    assert_eq!(st, 201, "{role}");
    let role = role["name"].as_str().unwrap().to_string();
    let (st, leaf) = d.post(
        &format!("/v1/pki/issue/{role}"),
        &json!({"common_name": "dp-leaf.example.com"}),
    );
    assert_eq!(st, 201, "{leaf}");
    let leaf_pem = leaf["certificate"].as_str().unwrap().to_string();
    let crls = |d: &common::Daemon| -> String {
        chain
            .iter()
            .map(|ca| {
                let path = format!("/v1/pki/ca/{}/crl?format=pem", id_of(ca));
                let r = d.request(reqwest::Method::GET, &path, Auth::None, &[], None);
                assert_eq!(r.status, 200, "GET {path}");
                r.text()
            })
            .collect()
    };
    let crl_file = write_pem("dp-crls", &crls(&d));
    let crl_arg = crl_file.to_string_lossy().into_owned();
    let untrusted = [pems[1].as_str(), pems[2].as_str()];
    let extra = ["-crl_check_all", "-CRLfile", crl_arg.as_str()];
    let (ok, out) = common::openssl_verify(&pems[0], &untrusted, &leaf_pem, &extra);
    assert!(
        ok,
        "full-chain CRL check of a leaf under two intermediates:\n{out}"
    );

    let (st, v) = d.post(
        "/v1/pki/revoke",
        &json!({"serial_number": int["serial_number"], "reason": "ca_compromise"}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = d.post(&format!("/v1/pki/ca/{}/crl", id_of(&root)), &json!({}));
    assert_eq!(st, 200, "{v}");
    let crl_file = write_pem("dp-crls-revoked", &crls(&d));
    let crl_arg = crl_file.to_string_lossy().into_owned();
    let extra = ["-crl_check_all", "-CRLfile", crl_arg.as_str()];
    let (ok, out) = common::openssl_verify(&pems[0], &untrusted, &leaf_pem, &extra);
    assert!(
        !ok && out.contains("certificate revoked"),
        "a leaf under a revoked intermediate must fail the full-chain CRL check:\n{out}"
    );
}

/// A CA shows its own revocation like a certificate row does, and the OpenAPI schema
/// says so.
#[test]
fn a_ca_shows_whether_it_is_revoked_when_and_why() {
    let d = daemon();
    let root = d.create_root("rv-view-root", json!({"key_type": "ec"}));
    let int = d.create_intermediate("rv-view-int", &id_of(&root), json!({"key_type": "ec"}));
    for ca in [&root, &int] {
        assert_eq!(ca["is_revoked"], false, "{ca}");
        let obj = ca.as_object().unwrap();
        for f in ["revoked_at", "revocation_reason"] {
            assert!(
                obj.get(f).is_some_and(Value::is_null),
                "{f} should be null: {ca}"
            );
        }
    }
    let (st, v) = d.post(
        "/v1/pki/revoke",
        &json!({"serial_number": int["serial_number"], "reason": "superseded"}),
    );
    assert_eq!(st, 200, "{v}");
    let int_id = id_of(&int);
    let (st, got) = d.get(&format!("/v1/pki/ca/{int_id}"));
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["is_revoked"], true, "{got}");
    assert_eq!(got["revoked_at"], v["revocation_time"], "{got} vs {v}");
    assert_eq!(got["revocation_reason"], "superseded", "{got}");
    let _ = parse_time(&got, "revoked_at");
    let (st, list) = d.get("/v1/pki/ca");
    assert_eq!(st, 200, "{list}");
    let row = list["data"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == int_id.as_str()))
        .unwrap_or_else(|| panic!("{int_id} not listed: {list}"));
    assert_eq!(row["is_revoked"], true, "{row}");
    assert_eq!(row["revocation_reason"], "superseded", "{row}");
    let (st, root_now) = d.get(&format!("/v1/pki/ca/{}", id_of(&root)));
    assert_eq!(st, 200);
    assert_eq!(root_now["is_revoked"], false, "{root_now}");

    let r = d.request(
        reqwest::Method::GET,
        "/v1/openapi.json",
        Auth::None,
        &[],
        None,
    );
    let doc: Value = serde_json::from_slice(&r.body).expect("OpenAPI JSON");
    let schema = &doc["components"]["schemas"]["CaView"];
    for f in ["is_revoked", "revoked_at", "revocation_reason"] {
        assert!(
            schema["properties"].get(f).is_some(),
            "CaView schema lacks {f}: {schema}"
        );
        assert!(
            schema["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == f)),
            "CaView schema does not require {f}: {schema}"
        );
    }
}
