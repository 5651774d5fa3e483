//! The CSR approval workflow against the real daemon on a throw-away SoftHSM2
//! token: import, review, approve/reject, sign against a CA, listing, and CSRs
//! whose key pair is made in the token (`POST /v1/pki/csr`).
//!
//! One daemon serves every test here (see `common::daemon`); tests run in
//! parallel, so each makes its own CAs and CSRs and looks only at its own ids.
//! Certificates and CSRs are judged by openssl, pkilint and pkcs11-tool.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{
    assert_error, daemon, der_to_pem, merge, openssl, openssl_csr, output_text,
    parse_pkcs11_objects, pem_to_der, pkilint_cert, random_hex, require_tool, unique_name,
    write_pem, Auth,
};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const CSR: &str = "/v1/pki/csr";
const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

// ---------------------------------------------------------------- helpers

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"))
}

fn id_of(v: &Value) -> String {
    s(v, "id").to_string()
}

fn norm(pem: &str) -> String {
    pem.replace("\r\n", "\n").trim().to_string()
}

fn parse_time(v: &Value, field: &str) -> OffsetDateTime {
    let t = s(v, field);
    OffsetDateTime::parse(t, &Rfc3339)
        .unwrap_or_else(|e| panic!("{field} {t:?} is not RFC 3339: {e}"))
}

fn percent_encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A lower-case DNS name unique to this run: `<prefix>-<pid>-<n>-<hex>.csr.test`.
fn host(prefix: &str) -> String {
    format!(
        "{}.csr.test",
        unique_name(prefix).to_lowercase().replace('_', "-")
    )
}

/// Run `openssl ARGS`, asserting success; returns stdout and stderr.
fn openssl_ok(args: &[&str]) -> String {
    let out = openssl(args);
    let text = output_text(&out);
    assert!(out.status.success(), "openssl {args:?}: {text}");
    text
}

/// The SubjectPublicKeyInfo PEM of a certificate (`x509`) or CSR (`req`).
fn openssl_pubkey(kind: &str, pem: &str) -> String {
    let p = write_pem(&format!("pub-{kind}"), pem);
    let out = openssl([kind, "-in", p.to_str().unwrap(), "-noout", "-pubkey"]);
    assert!(
        out.status.success(),
        "openssl {kind} -pubkey: {}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `openssl x509|req -noout -text`.
fn openssl_text(kind: &str, pem: &str) -> String {
    let p = write_pem(&format!("text-{kind}"), pem);
    openssl_ok(&[kind, "-in", p.to_str().unwrap(), "-noout", "-text"])
}

/// The subjectAltName entries as openssl prints them (`DNS:a`, `IP Address:1.2.3.4`, `URI:…`).
fn openssl_sans(kind: &str, pem: &str) -> BTreeSet<String> {
    let text = openssl_text(kind, pem);
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.contains("X509v3 Subject Alternative Name") {
            let next = lines.next().unwrap_or_default();
            return next
                .split(", ")
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect();
        }
    }
    BTreeSet::new()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `openssl verify -x509_strict -CAfile root -untrusted int leaf`.
fn openssl_verify(root_pem: &str, int_pem: &str, leaf_pem: &str) -> (bool, String) {
    common::openssl_verify(root_pem, &[int_pem], leaf_pem, &[])
}

/// `openssl req -in CSR -verify -noout`.
fn openssl_req_verifies(csr_pem: &str) -> (bool, String) {
    let p = write_pem("req-verify", csr_pem);
    let out = openssl(["req", "-in", p.to_str().unwrap(), "-verify", "-noout"]);
    let text = output_text(&out);
    (
        out.status.success() && text.to_lowercase().contains("verify ok"),
        text,
    )
}

/// An EC P-256 root with an EC P-256 intermediate under it: (root, int, root PEM, int PEM).
fn ec_chain(prefix: &str) -> (Value, Value, String, String) {
    let d = daemon();
    let root = d.create_root(
        &format!("{prefix}-root"),
        json!({"key_type": "ec", "key_size": 256}),
    );
    let int = d.create_intermediate(
        &format!("{prefix}-int"),
        &id_of(&root),
        json!({"key_type": "ec", "key_size": 256}),
    );
    let root_pem = d.ca_certificate_pem(&id_of(&root));
    let int_pem = d.ca_certificate_pem(&id_of(&int));
    (root, int, root_pem, int_pem)
}

fn import_csr(body: &Value) -> (u16, Value) {
    daemon().post(&format!("{CSR}/import"), body)
}

/// Import `csr_pem`, asserting 201.
fn import_csr_ok(csr_pem: &str) -> Value {
    let (st, v) = import_csr(&json!({ "csr_pem": csr_pem }));
    assert_eq!(st, 201, "POST {CSR}/import -> {st} {v}");
    v
}

/// A fresh openssl P-256 CSR for a unique host, imported: (import response, csr_pem).
fn new_pending_csr(prefix: &str) -> (Value, String) {
    let h = host(prefix);
    let (csr, _) = openssl_csr(P256, &format!("/CN={h}"), Some(&format!("DNS:{h}")));
    (import_csr_ok(&csr), csr)
}

fn get_csr(id: &str) -> (u16, Value) {
    daemon().get(&format!("{CSR}/{id}"))
}

fn get_csr_ok(id: &str) -> Value {
    let (st, v) = get_csr(id);
    assert_eq!(st, 200, "GET {CSR}/{id} -> {st} {v}");
    v
}

fn approve(id: &str) -> (u16, Value) {
    daemon().post(&format!("{CSR}/{id}/approve"), &json!({}))
}

fn approve_ok(id: &str) -> Value {
    let (st, v) = approve(id);
    assert_eq!(st, 200, "POST {CSR}/{id}/approve -> {st} {v}");
    v
}

fn reject(id: &str, body: &Value) -> (u16, Value) {
    daemon().post(&format!("{CSR}/{id}/reject"), body)
}

fn sign(id: &str, body: &Value) -> (u16, Value) {
    daemon().post(&format!("{CSR}/{id}/sign"), body)
}

fn sign_ok(id: &str, body: &Value) -> Value {
    let (st, v) = sign(id, body);
    assert_eq!(st, 201, "POST {CSR}/{id}/sign {body} -> {st} {v}");
    v
}

/// `POST /v1/pki/csr` (key pair in the token), asserting 201.
fn generate_ok(body: &Value) -> Value {
    let (st, v) = daemon().post(CSR, body);
    assert_eq!(st, 201, "POST {CSR} {body} -> {st} {v}");
    v
}

/// Every object key (at any depth) of `v` that mentions a private key, and every
/// string that holds a PEM private key.
fn private_key_traces(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k.to_lowercase().contains("private") && !(x.is_null() || x.is_boolean()) {
                    out.push(format!("{path}.{k}"));
                }
                private_key_traces(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                private_key_traces(x, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(t) if t.contains("PRIVATE KEY") => out.push(format!("{path} (PEM)")),
        _ => {}
    }
}

/// Follow `cursor` through every page of `GET /v1/pki/csr?{query}`; returns the ids in order.
fn list_csr_ids(query: &str, limit: usize) -> Vec<String> {
    let d = daemon();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100_000 {
        let mut path = format!("{CSR}?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", percent_encode(c)));
        }
        let (st, v) = d.get(&path);
        assert_eq!(st, 200, "GET {path} -> {st} {v}");
        let data = v["data"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no data array in {v}"));
        assert!(
            data.len() <= limit,
            "GET {path}: {} rows for limit {limit}",
            data.len()
        );
        ids.extend(data.iter().map(id_of));
        match (&v["has_more"], &v["cursor"]) {
            (Value::Bool(false), Value::Null) => return ids,
            (Value::Bool(true), Value::String(c)) => cursor = Some(c.clone()),
            _ => panic!("GET {path}: has_more/cursor inconsistent: {v}"),
        }
    }
    panic!("GET {CSR}?{query}: too many pages");
}

/// A throw-away openssl CA: (certificate PEM, certificate path, key path).
fn outside_ca(cn: &str) -> (String, PathBuf, PathBuf) {
    common::openssl_ca(cn)
}

/// `openssl x509 -req` of `csr_pem` by the outside CA, copying the CSR's extensions.
fn outside_sign(csr_pem: &str, ca_cert: &Path, ca_key: &Path) -> String {
    let d = daemon();
    let csr = write_pem("outside-csr", csr_pem);
    let out = d.scratch_path("outside-leaf.pem");
    let serial = format!("0x7{}", random_hex(15));
    openssl_ok(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca_cert.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-set_serial",
        &serial,
        "-days",
        "10",
        "-copy_extensions",
        "copy",
        "-out",
        out.to_str().unwrap(),
    ]);
    common::read_to_string(&out)
}

/// The single private key object labelled `label` in the test token.
fn token_private_key(label: &str) -> common::P11Object {
    let listing = daemon().pkcs11_list_objects();
    let objects = parse_pkcs11_objects(&listing);
    let privs: Vec<_> = objects
        .into_iter()
        .filter(|o| o.is_private_key() && o.attr("label") == Some(label))
        .collect();
    assert_eq!(
        privs.len(),
        1,
        "want exactly one private key labelled {label}:\n{listing}"
    );
    privs.into_iter().next().unwrap()
}

fn assert_token_key_is_locked_in(label: &str, kind: &str) {
    let key = token_private_key(label);
    assert!(
        key.header.contains(kind),
        "{label}: {} is not {kind}",
        key.header
    );
    key.assert_sign_only_and_protected(label, &["sensitive", "never extractable"]);
}

// ---------------------------------------------------------------- the spec's workflow

#[test]
fn an_imported_openssl_csr_is_reviewed_approved_and_signed_into_a_certificate_every_judge_accepts()
{
    if !require_tool("openssl") {
        return;
    }
    let d = daemon();
    let cn = host("flow");
    let alt = host("flow-alt");
    let (csr, _) = openssl_csr(
        P256,
        &format!("/CN={cn}/O=Example Org"),
        Some(&format!(
            "DNS:{cn},DNS:{alt},IP:10.9.8.7,URI:https://csr.test/flow"
        )),
    );

    // 1. Import.
    let t0 = OffsetDateTime::now_utc();
    let (st, v) = import_csr(&json!({"csr_pem": csr, "note": "for the flow test"}));
    assert_eq!(st, 201, "import -> {st} {v}");
    let id = id_of(&v);
    assert!(id.starts_with("csr_") && id.len() > 4, "id {id:?}");
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["source"], "imported", "{v}");
    assert_eq!(v["common_name"], cn.as_str(), "{v}");
    assert!(
        s(&v, "subject").contains(&format!("CN={cn}")),
        "subject {:?} lacks CN={cn}",
        v["subject"]
    );
    assert!(
        s(&v, "subject").contains("O=Example Org"),
        "subject {:?} lacks O=Example Org",
        v["subject"]
    );
    assert_eq!(v["san_dns"], json!([cn, alt]), "{v}");
    assert_eq!(v["san_ip"], json!(["10.9.8.7"]), "{v}");
    assert_eq!(v["san_uri"], json!(["https://csr.test/flow"]), "{v}");
    assert_eq!(v["key_type"], "ec", "{v}");
    assert_eq!(v["key_size"], 256, "{v}");
    assert_eq!(v["note"], "for the flow test", "{v}");
    assert!(
        s(&v, "requested_by").starts_with("tok_"),
        "requested_by {:?}",
        v["requested_by"]
    );
    let created = parse_time(&v, "created_at");
    assert!(
        created >= t0 - time::Duration::seconds(5)
            && created <= OffsetDateTime::now_utc() + time::Duration::seconds(5),
        "created_at {created} is not now"
    );

    // 2. Review.
    let got = get_csr_ok(&id);
    assert_eq!(norm(s(&got, "csr_pem")), norm(&csr), "csr_pem round trip");
    assert_eq!(got["status"], "pending", "{got}");
    assert_eq!(got["requested_by"], v["requested_by"], "{got}");
    for field in [
        "approved_by",
        "approved_at",
        "rejected_by",
        "rejected_at",
        "reason",
        "certificate_id",
        "signed_at",
    ] {
        assert!(
            got.get(field).is_some_and(Value::is_null),
            "a pending CSR has {field} null: {got}"
        );
    }
    assert!(
        got.get("key_uri").is_none_or(Value::is_null),
        "an imported CSR has no key_uri: {got}"
    );

    // 3. Approve.
    let a = approve_ok(&id);
    assert_eq!(a["status"], "approved", "{a}");
    assert!(
        s(&a, "approved_by").starts_with("tok_"),
        "approved_by {:?}",
        a["approved_by"]
    );
    let _ = parse_time(&a, "approved_at");
    assert_eq!(get_csr_ok(&id)["status"], "approved");

    // 4. Sign against a fresh EC root + intermediate.
    let (_root, int, root_pem, int_pem) = ec_chain("csr-flow");
    let t1 = OffsetDateTime::now_utc();
    let sv = sign_ok(&id, &json!({"ca_id": id_of(&int), "validity_days": 90}));
    let cert_id = id_of(&sv);
    assert!(cert_id.starts_with("cert_"), "{sv}");
    assert_eq!(sv["csr_id"], id.as_str(), "{sv}");
    let leaf = s(&sv, "certificate").to_string();
    assert_eq!(norm(s(&sv, "issuing_ca")), norm(&int_pem), "issuing_ca");
    let chain: Vec<String> = sv["ca_chain"]
        .as_array()
        .unwrap_or_else(|| panic!("ca_chain not a list: {sv}"))
        .iter()
        .map(|c| norm(c.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(chain, vec![norm(&int_pem), norm(&root_pem)], "ca_chain");
    assert!(!s(&sv, "serial_number").is_empty(), "{sv}");
    let nb = parse_time(&sv, "not_before");
    let na = parse_time(&sv, "not_after");
    let want = t1 + time::Duration::days(90);
    assert!(
        (na - want).abs() < time::Duration::minutes(10),
        "not_after {na} is not 90 days after {t1}"
    );
    assert!(nb <= OffsetDateTime::now_utc() + time::Duration::seconds(5));
    assert!(
        sv.get("private_key").is_none_or(Value::is_null),
        "signing a CSR returns no private key: {sv}"
    );

    let (ok, out) = openssl_verify(&root_pem, &int_pem, &leaf);
    assert!(ok, "openssl does not verify the leaf:\n{out}\n{leaf}");
    if require_tool("lint_pkix_cert") {
        let (ok, out) = pkilint_cert(&leaf);
        assert!(ok, "pkilint findings for the leaf:\n{out}\n{leaf}");
    }
    assert_eq!(
        openssl_pubkey("x509", &leaf),
        openssl_pubkey("req", &csr),
        "the certificate's key is not the CSR's"
    );
    assert_eq!(
        openssl_sans("x509", &leaf),
        set(&[
            &format!("DNS:{cn}"),
            &format!("DNS:{alt}"),
            "IP Address:10.9.8.7",
            "URI:https://csr.test/flow",
        ]),
        "the certificate's SANs"
    );
    let text = openssl_text("x509", &leaf);
    assert!(text.contains(&format!("CN={cn}")) || text.contains(&format!("CN = {cn}")));
    assert!(text.contains("CA:FALSE"), "BC CA:FALSE:\n{text}");
    assert!(
        text.contains("TLS Web Server Authentication")
            && text.contains("TLS Web Client Authentication"),
        "default EKU ServerAuth+ClientAuth:\n{text}"
    );

    // The CSR is now signed and points at the certificate.
    let done = get_csr_ok(&id);
    assert_eq!(done["status"], "signed", "{done}");
    assert_eq!(done["certificate_id"], cert_id.as_str(), "{done}");
    let _ = parse_time(&done, "signed_at");
    assert_eq!(done["approved_by"], a["approved_by"], "{done}");

    // The certificate is listed under the CA with source "signed".
    let path = format!("/v1/pki/certificates?ca_id={}", id_of(&int));
    let (st, list) = d.get(&path);
    assert_eq!(st, 200, "GET {path} -> {st} {list}");
    let rows: Vec<&Value> = list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .filter(|r| r["id"] == cert_id.as_str())
        .collect();
    assert_eq!(rows.len(), 1, "the certificate is listed once: {list}");
    assert_eq!(rows[0]["source"], "signed", "{list}");
    assert!(rows[0]["role"].is_null(), "role is null: {list}");
}

// ---------------------------------------------------------------- state machine

#[test]
fn a_rejected_csr_keeps_its_reason_and_can_be_neither_approved_nor_signed() {
    if !require_tool("openssl") {
        return;
    }
    let (_, int, _, _) = ec_chain("csr-rej");
    let (v, _) = new_pending_csr("rej");
    let id = id_of(&v);
    let (st, r) = reject(&id, &json!({"reason": "CN not in allowed scope"}));
    assert_eq!(st, 200, "reject -> {st} {r}");
    assert_eq!(r["status"], "rejected", "{r}");
    assert_eq!(r["reason"], "CN not in allowed scope", "{r}");
    assert!(
        s(&r, "rejected_by").starts_with("tok_"),
        "rejected_by {:?}",
        r["rejected_by"]
    );
    let _ = parse_time(&r, "rejected_at");
    let got = get_csr_ok(&id);
    assert_eq!(got["status"], "rejected", "{got}");
    assert_eq!(got["reason"], "CN not in allowed scope", "{got}");

    let (st, b) = approve(&id);
    assert_error("approve a rejected CSR", (st, &b), 409, "invalid_state");
    let (st, b) = sign(&id, &json!({"ca_id": id_of(&int), "validity_days": 30}));
    assert_error("sign a rejected CSR", (st, &b), 409, "invalid_state");
    let (st, b) = reject(&id, &json!({}));
    assert_error("reject a rejected CSR", (st, &b), 409, "invalid_state");
    assert_eq!(get_csr_ok(&id)["status"], "rejected");
}

#[test]
fn approving_twice_or_signing_a_pending_csr_is_409_invalid_state() {
    if !require_tool("openssl") {
        return;
    }
    let (_, int, _, _) = ec_chain("csr-409");
    let body = json!({"ca_id": id_of(&int), "validity_days": 30});

    let (v, _) = new_pending_csr("pend");
    let id = id_of(&v);
    let (st, b) = sign(&id, &body);
    assert_error("sign a pending CSR", (st, &b), 409, "invalid_state");
    assert_eq!(get_csr_ok(&id)["status"], "pending");

    approve_ok(&id);
    let (st, b) = approve(&id);
    assert_error("approve twice", (st, &b), 409, "invalid_state");

    let sv = sign_ok(&id, &body);
    let (st, b) = sign(&id, &body);
    assert_error("sign twice", (st, &b), 409, "invalid_state");
    let (st, b) = reject(&id, &json!({"reason": "too late"}));
    assert_error("reject a signed CSR", (st, &b), 409, "invalid_state");
    let (st, b) = approve(&id);
    assert_error("approve a signed CSR", (st, &b), 409, "invalid_state");
    let got = get_csr_ok(&id);
    assert_eq!(got["status"], "signed", "{got}");
    assert_eq!(got["certificate_id"], sv["id"], "{got}");
}

#[test]
fn an_approved_csr_can_still_be_rejected() {
    if !require_tool("openssl") {
        return;
    }
    let (v, _) = new_pending_csr("apprej");
    let id = id_of(&v);
    approve_ok(&id);
    let (st, r) = reject(&id, &json!({"reason": "changed our mind"}));
    assert_eq!(st, 200, "reject an approved CSR -> {st} {r}");
    assert_eq!(r["status"], "rejected", "{r}");
    // Without a reason, reject is fine too.
    let (v, _) = new_pending_csr("noreason");
    let r = daemon().request(
        reqwest::Method::POST,
        &format!("{CSR}/{}/reject", id_of(&v)),
        Auth::Root,
        &[],
        None,
    );
    assert_eq!(r.status, 200, "reject with no body -> {}", r.text());
    assert_eq!(r.json()["status"], "rejected");
}

// ---------------------------------------------------------------- errors

#[test]
fn a_tampered_or_garbage_csr_is_400_invalid_csr_on_import() {
    if !require_tool("openssl") {
        return;
    }
    let h = host("tamper");
    let (csr, _) = openssl_csr(P256, &format!("/CN={h}"), Some(&format!("DNS:{h}")));
    let der = pem_to_der(&csr);

    let mut sig = der.clone();
    *sig.last_mut().unwrap() ^= 0x01;
    let mut subj = der.clone();
    let at = subj
        .windows(h.len())
        .position(|w| w == h.as_bytes())
        .expect("CN in the CSR DER");
    subj[at] ^= 0x01;
    let mut key = der.clone();
    let pk = key
        .windows(3)
        .position(|w| w == [0x03, 0x42, 0x00])
        .expect("EC public key BIT STRING");
    key[pk + 10] ^= 0x01;

    let mut bad: Vec<(String, String)> = vec![
        ("signature".into(), der_to_pem("CERTIFICATE REQUEST", &sig)),
        ("subject".into(), der_to_pem("CERTIFICATE REQUEST", &subj)),
        ("public key".into(), der_to_pem("CERTIFICATE REQUEST", &key)),
        (
            "truncated".into(),
            der_to_pem("CERTIFICATE REQUEST", &der[..der.len() - 10]),
        ),
        ("garbage".into(), "not a csr".into()),
        (
            "short base64".into(),
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into(),
        ),
        (
            "not base64".into(),
            "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n".into(),
        ),
        ("empty".into(), String::new()),
    ];
    let (ca, _, _) = outside_ca("Not A CSR CA");
    bad.push((
        "a certificate".into(),
        ca.replace("CERTIFICATE", "CERTIFICATE REQUEST"),
    ));
    for (what, pem) in bad {
        let (st, v) = import_csr(&json!({ "csr_pem": pem }));
        assert_error(
            &format!("import a {what} CSR"),
            (st, &v),
            400,
            "invalid_csr",
        );
    }
    let (st, v) = import_csr(&json!({}));
    assert_error("import without csr_pem", (st, &v), 400, "invalid_request");
    // The untouched CSR is fine.
    import_csr_ok(&csr);
}

#[test]
fn an_unknown_csr_id_is_404_csr_not_found() {
    let (_, int, _, _) = ec_chain("csr-404");
    let id = format!("csr_{}", random_hex(12));
    let (st, v) = get_csr(&id);
    assert_error("GET unknown CSR", (st, &v), 404, "csr_not_found");
    let (st, v) = approve(&id);
    assert_error("approve unknown CSR", (st, &v), 404, "csr_not_found");
    let (st, v) = reject(&id, &json!({"reason": "x"}));
    assert_error("reject unknown CSR", (st, &v), 404, "csr_not_found");
    let (st, v) = sign(&id, &json!({"ca_id": id_of(&int), "validity_days": 30}));
    assert_error("sign unknown CSR", (st, &v), 404, "csr_not_found");
}

#[test]
fn signing_with_an_unknown_ca_is_404_ca_not_found_and_leaves_the_csr_approved() {
    if !require_tool("openssl") {
        return;
    }
    let (v, _) = new_pending_csr("noca");
    let id = id_of(&v);
    approve_ok(&id);
    let (st, b) = sign(
        &id,
        &json!({"ca_id": format!("ca_{}", random_hex(12)), "validity_days": 30}),
    );
    assert_error("sign with an unknown CA", (st, &b), 404, "ca_not_found");
    assert_eq!(get_csr_ok(&id)["status"], "approved");
}

#[test]
fn validity_days_past_the_ca_expiry_is_422_ttl_exceeds_ca() {
    if !require_tool("openssl") {
        return;
    }
    let d = daemon();
    let ca = d.create_root("csr-short", json!({"key_type": "ec", "validity_days": 10}));
    let (v, _) = new_pending_csr("short");
    let id = id_of(&v);
    approve_ok(&id);
    let (st, b) = sign(&id, &json!({"ca_id": id_of(&ca), "validity_days": 30}));
    assert_error("validity past the CA", (st, &b), 422, "ttl_exceeds_ca");
    assert_eq!(get_csr_ok(&id)["status"], "approved");
    // Within the CA's life it signs.
    let sv = sign_ok(&id, &json!({"ca_id": id_of(&ca), "validity_days": 5}));
    assert!(parse_time(&sv, "not_after") <= parse_time(&ca, "valid_until"));
}

#[test]
fn a_csr_key_below_the_floor_is_422_key_type_not_allowed_on_import_and_rsa_2048_is_signed() {
    if !require_tool("openssl") {
        return;
    }
    // The floor of `/sign/{role}` with `key_type: any`: EC P-256 or P-384, RSA >= 2048.
    // Refused at import, so that no reviewer approves what cannot be signed.
    for (what, newkey) in [
        ("RSA 1024", &["-newkey", "rsa:1024"][..]),
        (
            "EC P-521",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"][..],
        ),
    ] {
        let h = host("weak");
        let (csr, _) = openssl_csr(newkey, &format!("/CN={h}"), Some(&format!("DNS:{h}")));
        let (st, v) = import_csr(&json!({ "csr_pem": csr }));
        assert_error(
            &format!("import a CSR with an {what} key"),
            (st, &v),
            422,
            "key_type_not_allowed",
        );
    }
    let (_, int, root_pem, int_pem) = ec_chain("csr-floor");
    let h = host("rsa2048");
    let (csr, _) = openssl_csr(
        &["-newkey", "rsa:2048"],
        &format!("/CN={h}"),
        Some(&format!("DNS:{h}")),
    );
    let v = import_csr_ok(&csr);
    assert_eq!(v["key_type"], "rsa", "{v}");
    assert_eq!(v["key_size"], 2048, "{v}");
    approve_ok(&id_of(&v));
    let sv = sign_ok(
        &id_of(&v),
        &json!({"ca_id": id_of(&int), "validity_days": 30}),
    );
    let leaf = s(&sv, "certificate");
    let (ok, out) = openssl_verify(&root_pem, &int_pem, leaf);
    assert!(ok, "openssl does not verify the leaf:\n{out}");
    assert!(
        openssl_text("x509", leaf).contains("2048 bit"),
        "an RSA 2048 key in the certificate"
    );
}

#[test]
fn an_empty_ext_key_usage_list_is_400_and_leaving_it_out_gives_server_and_client_auth() {
    if !require_tool("openssl") {
        return;
    }
    let (_, int, _, _) = ec_chain("csr-eku");
    let (v, _) = new_pending_csr("eku");
    let id = id_of(&v);
    approve_ok(&id);
    // No extKeyUsage extension would make the certificate good for any purpose.
    let (st, b) = sign(
        &id,
        &json!({"ca_id": id_of(&int), "validity_days": 30, "ext_key_usage": []}),
    );
    assert_error(
        "sign with ext_key_usage []",
        (st, &b),
        400,
        "invalid_request",
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ext_key_usage"),
        "the message names the field: {b}"
    );
    assert_eq!(get_csr_ok(&id)["status"], "approved");
    let sv = sign_ok(&id, &json!({"ca_id": id_of(&int), "validity_days": 30}));
    let text = openssl_text("x509", s(&sv, "certificate"));
    assert!(
        text.contains("TLS Web Server Authentication")
            && text.contains("TLS Web Client Authentication"),
        "default extKeyUsage:\n{text}"
    );
}

#[test]
fn bad_request_bodies_are_400_invalid_request() {
    if !require_tool("openssl") {
        return;
    }
    let (_, int, _, _) = ec_chain("csr-400");
    let h = host("unknown-field");
    let (csr, _) = openssl_csr(P256, &format!("/CN={h}"), None);
    let (st, v) = import_csr(&json!({"csr_pem": csr, "colour": "blue"}));
    assert_error(
        "import with an unknown field",
        (st, &v),
        400,
        "invalid_request",
    );

    let (v, _) = new_pending_csr("badbody");
    let id = id_of(&v);
    let (st, b) = reject(&id, &json!({"reason": "x", "colour": "blue"}));
    assert_error(
        "reject with an unknown field",
        (st, &b),
        400,
        "invalid_request",
    );
    assert_eq!(get_csr_ok(&id)["status"], "pending");

    approve_ok(&id);
    let ca_id = id_of(&int);
    for (what, body) in [
        (
            "an unknown field",
            json!({"ca_id": ca_id, "validity_days": 30, "colour": "blue"}),
        ),
        ("no ca_id", json!({"validity_days": 30})),
        ("no validity_days", json!({"ca_id": ca_id})),
        (
            "validity_days 0",
            json!({"ca_id": ca_id, "validity_days": 0}),
        ),
        (
            "validity_days -1",
            json!({"ca_id": ca_id, "validity_days": -1}),
        ),
        (
            "validity_days as a string",
            json!({"ca_id": ca_id, "validity_days": "30"}),
        ),
    ] {
        let (st, b) = sign(&id, &body);
        assert_error(
            &format!("sign with {what}"),
            (st, &b),
            400,
            "invalid_request",
        );
    }
    assert_eq!(get_csr_ok(&id)["status"], "approved");

    let (st, b) = daemon().post(
        CSR,
        &json!({"subject": {"common_name": h}, "colour": "blue"}),
    );
    assert_error(
        "generate with an unknown field",
        (st, &b),
        400,
        "invalid_request",
    );
    let (st, b) = daemon().post(
        CSR,
        &json!({"subject": {"common_name": h, "colour": "blue"}}),
    );
    assert_error(
        "generate with an unknown subject field",
        (st, &b),
        400,
        "invalid_request",
    );
}

#[test]
fn approving_with_an_unknown_field_is_400_invalid_request_and_leaves_the_csr_pending() {
    if !require_tool("openssl") {
        return;
    }
    let (v, _) = new_pending_csr("approve-field");
    let id = id_of(&v);
    let (st, b) = daemon().post(&format!("{CSR}/{id}/approve"), &json!({"colour": "blue"}));
    assert_error(
        "approve with an unknown field",
        (st, &b),
        400,
        "invalid_request",
    );
    assert_eq!(get_csr_ok(&id)["status"], "pending");
}

#[test]
fn csr_endpoints_need_a_token() {
    let d = daemon();
    let id = format!("csr_{}", random_hex(12));
    for auth in [Auth::None, Auth::Bearer("sv_wrong")] {
        let (st, v) = d.post_with(&format!("{CSR}/import"), &json!({"csr_pem": "x"}), auth);
        assert_error("POST import", (st, &v), 401, "unauthorized");
        let (st, v) = d.post_with(
            CSR,
            &json!({"subject": {"common_name": "noauth.csr.test"}}),
            auth,
        );
        assert_error("POST csr", (st, &v), 401, "unauthorized");
        let (st, v) = d.get_with(CSR, auth);
        assert_error("GET csr list", (st, &v), 401, "unauthorized");
        let (st, v) = d.get_with(&format!("{CSR}/{id}"), auth);
        assert_error("GET csr", (st, &v), 401, "unauthorized");
        for action in ["approve", "reject"] {
            let (st, v) = d.post_with(&format!("{CSR}/{id}/{action}"), &json!({}), auth);
            assert_error(&format!("POST {action}"), (st, &v), 401, "unauthorized");
        }
        let (st, v) = d.post_with(
            &format!("{CSR}/{id}/sign"),
            &json!({"ca_id": "ca_x", "validity_days": 1}),
            auth,
        );
        assert_error("POST sign", (st, &v), 401, "unauthorized");
    }
}

// ---------------------------------------------------------------- listing

#[test]
fn listing_pending_csrs_includes_a_new_one_and_not_an_approved_one() {
    if !require_tool("openssl") {
        return;
    }
    let (p, _) = new_pending_csr("list-p");
    let (a, _) = new_pending_csr("list-a");
    approve_ok(&id_of(&a));
    let pending = list_csr_ids("status=pending", 1000);
    assert!(
        pending.contains(&id_of(&p)),
        "pending list lacks {}",
        id_of(&p)
    );
    assert!(
        !pending.contains(&id_of(&a)),
        "pending list has the approved {}",
        id_of(&a)
    );
    let approved = list_csr_ids("status=approved", 1000);
    assert!(approved.contains(&id_of(&a)));
    assert!(!approved.contains(&id_of(&p)));
    let all = list_csr_ids("", 1000);
    assert!(all.contains(&id_of(&a)) && all.contains(&id_of(&p)));

    // Rows carry the documented fields.
    let (st, v) = daemon().get(&format!("{CSR}?status=pending&limit=1000"));
    assert_eq!(st, 200, "{v}");
    let row = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == p["id"])
        .unwrap_or_else(|| panic!("no row for {} in the first page", p["id"]))
        .clone();
    for f in [
        "status",
        "common_name",
        "subject",
        "key_type",
        "requested_by",
        "created_at",
    ] {
        assert_eq!(row[f], p[f], "row field {f}: {row}");
    }
}

#[test]
fn paging_with_limit_2_visits_each_of_5_new_csrs_exactly_once_in_creation_order() {
    if !require_tool("openssl") {
        return;
    }
    let mine: Vec<String> = (0..5)
        .map(|i| id_of(&new_pending_csr(&format!("page{i}")).0))
        .collect();
    for query in ["status=pending", ""] {
        let seen = list_csr_ids(query, 2);
        let got: Vec<&String> = seen.iter().filter(|i| mine.contains(i)).collect();
        let want: Vec<&String> = mine.iter().collect();
        assert_eq!(
            got, want,
            "GET {CSR}?{query} with limit=2: my CSRs once each in creation order"
        );
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "an id came twice in {query:?}");
    }
}

#[test]
fn an_unknown_status_or_query_parameter_or_a_bad_limit_is_400() {
    let d = daemon();
    for q in [
        "status=bogus",
        "status=PENDING",
        "colour=blue",
        "limit=1001",
        "limit=abc",
    ] {
        let path = format!("{CSR}?{q}");
        let (st, v) = d.get(&path);
        assert_eq!(st, 400, "GET {path} -> {st} {v}");
    }
    let (st, v) = d.get(&format!("{CSR}?limit=1000"));
    assert_eq!(st, 200, "limit=1000 -> {st} {v}");
}

// ---------------------------------------------------------------- in-token CSRs

#[test]
fn an_in_token_ec_csr_keeps_its_key_in_the_token_and_goes_through_the_workflow() {
    if !require_tool("openssl") {
        return;
    }
    let (_, int, root_pem, int_pem) = ec_chain("csr-gen");
    let v = generate_ok(&json!({
        "subject": {"common_name": "billing.svc.cluster.local"},
        "san_dns": ["billing-api.svc.cluster.local"],
        "key_type": "ec",
        "key_size": 256,
    }));
    let id = id_of(&v);
    assert!(id.starts_with("csr_"), "{v}");
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["source"], "generated", "{v}");
    assert_eq!(v["key_type"], "ec", "{v}");
    assert_eq!(v["key_size"], 256, "{v}");
    let key_uri = s(&v, "key_uri").to_string();
    assert!(key_uri.starts_with("pkcs11:"), "key_uri {key_uri:?}");
    let mut traces = Vec::new();
    private_key_traces(&v, "$", &mut traces);
    assert!(traces.is_empty(), "private key material in {traces:?}: {v}");
    let csr = s(&v, "csr_pem").to_string();
    assert!(csr.contains("BEGIN CERTIFICATE REQUEST"), "{csr}");

    let (ok, out) = openssl_req_verifies(&csr);
    assert!(ok, "openssl req -verify:\n{out}\n{csr}");
    assert_eq!(
        openssl_sans("req", &csr),
        set(&["DNS:billing-api.svc.cluster.local"]),
        "SANs in the CSR"
    );
    let text = openssl_text("req", &csr);
    assert!(
        text.contains("CN = billing.svc.cluster.local")
            || text.contains("CN=billing.svc.cluster.local"),
        "subject CN in the CSR:\n{text}"
    );
    assert!(
        text.contains("prime256v1") || text.contains("P-256"),
        "{text}"
    );

    if require_tool("pkcs11-tool") {
        assert_token_key_is_locked_in(&format!("scaivault-csr-{id}"), "EC");
    }

    // GET shows the same CSR and the key URI, and no key either.
    let got = get_csr_ok(&id);
    assert_eq!(norm(s(&got, "csr_pem")), norm(&csr));
    assert_eq!(got["key_uri"], key_uri.as_str(), "{got}");
    assert_eq!(got["source"], "generated", "{got}");
    let mut traces = Vec::new();
    private_key_traces(&got, "$", &mut traces);
    assert!(
        traces.is_empty(),
        "private key material in {traces:?}: {got}"
    );

    // The workflow.
    approve_ok(&id);
    let sv = sign_ok(&id, &json!({"ca_id": id_of(&int), "validity_days": 90}));
    let leaf = s(&sv, "certificate").to_string();
    let (ok, out) = openssl_verify(&root_pem, &int_pem, &leaf);
    assert!(ok, "openssl does not verify the leaf:\n{out}\n{leaf}");
    if require_tool("lint_pkix_cert") {
        let (ok, out) = pkilint_cert(&leaf);
        assert!(ok, "pkilint findings for the leaf:\n{out}\n{leaf}");
    }
    assert_eq!(openssl_pubkey("x509", &leaf), openssl_pubkey("req", &csr));
    // The contract says the certificate carries the CSR's SANs; it is silent on the
    // CN also becoming a DNS SAN, which the daemon does (and which is common practice).
    let sans = openssl_sans("x509", &leaf);
    assert!(
        sans.contains("DNS:billing-api.svc.cluster.local")
            && sans.is_subset(&set(&[
                "DNS:billing-api.svc.cluster.local",
                "DNS:billing.svc.cluster.local"
            ])),
        "the certificate's SANs: {sans:?}"
    );
    let done = get_csr_ok(&id);
    assert_eq!(done["status"], "signed", "{done}");
    assert_eq!(done["certificate_id"], sv["id"], "{done}");

    // The same CSR signed by an outside CA comes back through import and is linked.
    let (_, ca_cert, ca_key) = outside_ca("Outside CA for a signed in-token CSR");
    let outside = outside_sign(&csr, &ca_cert, &ca_key);
    let (st, imp) = daemon().post(
        "/v1/pki/certificates/import",
        &json!({ "certificate_pem": outside }),
    );
    assert_eq!(st, 201, "import of the outside certificate -> {st} {imp}");
    let (st, row) = daemon().get(&format!("/v1/pki/certificates/{}", id_of(&imp)));
    assert_eq!(st, 200, "{row}");
    assert_eq!(row["token_key_uri"], key_uri.as_str(), "{row}");
    assert_eq!(row["csr_id"], id.as_str(), "{row}");
}

#[test]
fn a_certificate_for_an_in_token_csr_signed_by_an_outside_ca_is_linked_to_the_token_key_on_import()
{
    if !require_tool("openssl") {
        return;
    }
    let cn = host("linked");
    let v = generate_ok(&json!({
        "subject": {"common_name": cn, "organization": "Example Org", "country": "NL"},
        "san_dns": [cn],
        "san_ip": ["10.1.2.3"],
    }));
    let id = id_of(&v);
    assert_eq!(v["key_type"], "ec", "default key_type: {v}");
    assert_eq!(v["key_size"], 256, "default key_size: {v}");
    let key_uri = s(&v, "key_uri").to_string();
    let csr = s(&v, "csr_pem").to_string();
    let (ok, out) = openssl_req_verifies(&csr);
    assert!(ok, "openssl req -verify:\n{out}\n{csr}");
    assert_eq!(
        openssl_sans("req", &csr),
        set(&[&format!("DNS:{cn}"), "IP Address:10.1.2.3"])
    );
    let text = openssl_text("req", &csr);
    assert!(
        text.contains("O = Example Org") && text.contains("C = NL"),
        "{text}"
    );

    let (ca_pem, ca_cert, ca_key) = outside_ca("Outside CA");
    let leaf = outside_sign(&csr, &ca_cert, &ca_key);
    let (st, imp) = daemon().post(
        "/v1/pki/certificates/import",
        &json!({ "certificate_pem": leaf, "chain_pem": ca_pem }),
    );
    assert_eq!(st, 201, "import -> {st} {imp}");
    let mut traces = Vec::new();
    private_key_traces(&imp, "$", &mut traces);
    assert!(
        traces.is_empty(),
        "private key material in {traces:?}: {imp}"
    );
    let (st, row) = daemon().get(&format!("/v1/pki/certificates/{}", id_of(&imp)));
    assert_eq!(st, 200, "{row}");
    assert_eq!(row["token_key_uri"], key_uri.as_str(), "{row}");
    assert_eq!(row["csr_id"], id.as_str(), "{row}");
    assert_eq!(row["source"], "imported", "{row}");
}

#[test]
fn an_in_token_rsa_2048_csr_verifies_with_openssl() {
    if !require_tool("openssl") {
        return;
    }
    let cn = host("rsa");
    let mut body = json!({"subject": {"common_name": cn}, "san_dns": [cn]});
    merge(&mut body, json!({"key_type": "rsa", "key_size": 2048}));
    let v = generate_ok(&body);
    assert_eq!(v["key_type"], "rsa", "{v}");
    assert_eq!(v["key_size"], 2048, "{v}");
    assert!(s(&v, "key_uri").starts_with("pkcs11:"), "{v}");
    let mut traces = Vec::new();
    private_key_traces(&v, "$", &mut traces);
    assert!(traces.is_empty(), "private key material in {traces:?}: {v}");
    let csr = s(&v, "csr_pem").to_string();
    let (ok, out) = openssl_req_verifies(&csr);
    assert!(ok, "openssl req -verify:\n{out}\n{csr}");
    let text = openssl_text("req", &csr);
    assert!(text.contains("2048 bit"), "an RSA 2048 key:\n{text}");
    assert_eq!(openssl_sans("req", &csr), set(&[&format!("DNS:{cn}")]));
    if require_tool("pkcs11-tool") {
        assert_token_key_is_locked_in(&format!("scaivault-csr-{}", id_of(&v)), "RSA");
    }
}

/// Labels of CSR keys in the token (`scaivault-csr-<id>`) whose CSR does not exist. A
/// parallel test's key may be seen between its creation and its record: a label counts
/// only if it is still without a CSR a moment later.
fn csr_keys_without_a_csr() -> Vec<String> {
    let orphans = || -> Vec<String> {
        let listing = daemon().pkcs11_list_objects();
        parse_pkcs11_objects(&listing)
            .into_iter()
            .filter(|o| o.is_private_key())
            .filter_map(|o| o.attr("label").map(str::to_string))
            .filter(|l| {
                l.strip_prefix("scaivault-csr-")
                    .is_some_and(|id| get_csr(id).0 == 404)
            })
            .collect()
    };
    let first = orphans();
    if first.is_empty() {
        return first;
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    orphans()
        .into_iter()
        .filter(|l| first.contains(l))
        .collect()
}

#[test]
fn an_in_token_csr_without_sans_carries_its_host_name_or_ip_common_name_as_its_san() {
    if !require_tool("openssl") {
        return;
    }
    let cn = host("cn-only");
    let v = generate_ok(&json!({
        "subject": {"common_name": cn},
        "key_type": "ec",
        "key_size": 256,
    }));
    let csr = s(&v, "csr_pem").to_string();
    let (ok, out) = openssl_req_verifies(&csr);
    assert!(ok, "openssl req -verify:\n{out}\n{csr}");
    assert_eq!(openssl_sans("req", &csr), set(&[&format!("DNS:{cn}")]));
    assert_eq!(v["san_dns"], json!([cn]), "{v}");

    let v = generate_ok(&json!({"subject": {"common_name": "10.20.30.40"}}));
    let csr = s(&v, "csr_pem").to_string();
    assert_eq!(openssl_sans("req", &csr), set(&["IP Address:10.20.30.40"]));

    // A CN that is no host name, and no SAN: refused before any key is made.
    let (st, b) = daemon().post(
        CSR,
        &json!({"subject": {"common_name": "Billing Service"}, "key_type": "ec"}),
    );
    assert_error(
        "a CN that is no host name",
        (st, &b),
        422,
        "name_not_allowed",
    );
    if require_tool("pkcs11-tool") {
        let orphans = csr_keys_without_a_csr();
        assert!(orphans.is_empty(), "keys without a CSR: {orphans:?}");
    }
}

#[test]
fn an_in_token_csr_with_a_bad_key_type_or_size_is_400() {
    let d = daemon();
    for (kt, ks) in [
        (json!("ec"), json!(521)),
        (json!("rsa"), json!(1024)),
        (json!("dsa"), json!(2048)),
    ] {
        let body =
            json!({"subject": {"common_name": "bad.csr.test"}, "key_type": kt, "key_size": ks});
        let (st, v) = d.post(CSR, &body);
        assert_eq!(st, 400, "POST {CSR} {body} -> {st} {v}");
    }
    let (st, v) = d.post(CSR, &json!({"san_dns": ["x.csr.test"]}));
    assert_eq!(st, 400, "POST {CSR} without subject -> {st} {v}");
}

#[test]
fn rejecting_a_csr_made_in_the_token_destroys_its_key_pair() {
    if !require_tool("pkcs11-tool") {
        return;
    }
    let v = generate_ok(&json!({
        "subject": {"common_name": host("rejected-key")},
        "key_type": "ec",
        "key_size": 256
    }));
    let id = id_of(&v);
    let label = format!("scaivault-csr-{id}");
    let labels = || -> Vec<String> {
        parse_pkcs11_objects(&daemon().pkcs11_list_objects())
            .into_iter()
            .filter_map(|o| o.attr("label").map(str::to_string))
            .filter(|l| *l == label)
            .collect()
    };
    assert_eq!(labels().len(), 2, "the key pair is in the token");
    let (st, r) = reject(&id, &json!({"reason": "not ours"}));
    assert_eq!(st, 200, "{r}");
    assert!(labels().is_empty(), "the rejected CSR's key pair is gone");
    // The record stays, for the history.
    assert_eq!(get_csr_ok(&id)["status"], "rejected");
}
