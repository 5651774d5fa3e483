//! `POST /v1/pki/certificates/validate` against the real daemon on a throw-away SoftHSM2
//! token: our own chains, names, purposes, time, revocation from our records and from
//! given CRLs, foreign chains with ad-hoc anchors, and malformed input.
//!
//! The wide RFC 5280 coverage is x509-limbo's (see CONFORMANCE.md and the conformance
//! stage of softhsm-test/run-tests); these tests pin down the API's own promises.
//! Foreign chains are made by openssl in a scratch directory.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{
    assert_error, daemon, der_to_pem, merge, output_text, pem_to_der, require_tool, unique_name,
    Daemon,
};
use serde_json::{json, Value};

const VALIDATE: &str = "/v1/pki/certificates/validate";

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// An EC root with an EC intermediate under it, and a role on the intermediate.
fn our_pki(d: &Daemon, prefix: &str, role_extra: Value) -> (Value, Value, String) {
    let root = d.create_root(&format!("{prefix}-root"), json!({"key_type": "ec"}));
    let int = d.create_intermediate(
        &format!("{prefix}-int"),
        &id_of(&root),
        json!({"key_type": "ec"}),
    );
    let mut body = json!({
        "name": unique_name("role"),
        "ca_id": id_of(&int),
        "allow_any_name": true,
        "key_type": "ec",
    });
    merge(&mut body, role_extra);
    let (st, v) = d.post("/v1/pki/roles", &body);
    assert_eq!(st, 201, "POST /v1/pki/roles {body} -> {st} {v}");
    let role = v["name"].as_str().unwrap_or_default().to_string();
    (root, int, role)
}

/// Issue a leaf for `host` under `role`: (certificate PEM, ca_chain joined, response).
fn issue(d: &Daemon, role: &str, host: &str) -> (String, String, Value) {
    let (st, v) = d.post(
        &format!("/v1/pki/issue/{role}"),
        &json!({"common_name": host, "ttl": "24h"}),
    );
    assert_eq!(st, 201, "issue {host} -> {st} {v}");
    let cert = v["certificate"].as_str().unwrap_or_default().to_string();
    let chain = v["ca_chain"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default();
    (cert, chain, v)
}

fn host(prefix: &str) -> String {
    format!(
        "{}.example.com",
        unique_name(prefix).to_lowercase().replace('_', "-")
    )
}

fn validate(d: &Daemon, body: &Value) -> Value {
    let (st, v) = d.post(VALIDATE, body);
    assert_eq!(st, 200, "POST {VALIDATE} {body} -> {st} {v}");
    v
}

fn assert_valid(what: &str, v: &Value) {
    assert_eq!(v["valid"], true, "{what}: expected valid, got {v}");
    assert!(
        v["reason"].is_null(),
        "{what}: a valid answer has no reason: {v}"
    );
}

fn assert_invalid(what: &str, v: &Value) -> String {
    assert_eq!(v["valid"], false, "{what}: expected not valid, got {v}");
    let reason = v["reason"].as_str().unwrap_or_default().to_string();
    assert!(!reason.trim().is_empty(), "{what}: no reason in {v}");
    reason
}

#[test]
fn our_own_chain_validates_with_our_root_as_the_anchor() {
    let d = daemon();
    let (root, _int, role) = our_pki(d, "val-own", json!({}));
    let name = host("own");
    let (cert, chain, _) = issue(d, &role, &name);

    let v = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": chain, "check_revocation": true}),
    );
    assert_valid("own chain", &v);
    assert_eq!(v["chain_valid"], true, "{v}");
    assert_eq!(v["not_expired"], true, "{v}");
    assert_eq!(v["not_revoked"], true, "{v}");
    assert_eq!(v["trusted_anchor"], json!(id_of(&root)), "{v}");

    let path = v["chain"].as_array().expect("chain array");
    assert_eq!(path.len(), 3, "leaf, intermediate, root: {v}");
    assert!(
        path[0]["subject"]
            .as_str()
            .unwrap_or_default()
            .contains(&name),
        "the leaf comes first: {v}"
    );
    for e in path {
        let fp = e["sha256_fingerprint"].as_str().unwrap_or_default();
        assert_eq!(fp.len(), 95, "colon-separated SHA-256: {fp}");
        assert!(fp
            .chars()
            .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    }
}

#[test]
fn chain_certificates_may_come_in_any_order_and_with_the_root() {
    let d = daemon();
    let (root, _int, role) = our_pki(d, "val-order", json!({}));
    let (cert, chain, _) = issue(d, &role, &host("order"));
    let root_pem = d.ca_certificate_pem(&id_of(&root));
    let v = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": format!("{root_pem}{chain}")}),
    );
    assert_valid("root first in chain_pem", &v);
}

#[test]
fn the_requested_dns_name_must_be_in_the_certificate() {
    let d = daemon();
    let (_root, _int, role) = our_pki(d, "val-dns", json!({}));
    let name = host("dns");
    let (cert, chain, _) = issue(d, &role, &name);

    let ok = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": chain, "dns_name": name}),
    );
    assert_valid("matching dns_name", &ok);

    let bad = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": chain, "dns_name": "other.example.org"}),
    );
    let reason = assert_invalid("other dns_name", &bad);
    assert_eq!(bad["chain_valid"], false, "{bad}");
    assert!(reason.contains("other.example.org"), "{reason}");

    let ip = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": chain, "ip_address": "192.0.2.1"}),
    );
    assert_invalid("an IP address the certificate doesn't hold", &ip);
}

#[test]
fn the_purpose_is_checked_against_extended_key_usage() {
    let d = daemon();
    let (_root, _int, role) = our_pki(d, "val-eku", json!({"ext_key_usage": ["ClientAuth"]}));
    let (cert, chain, _) = issue(d, &role, &host("eku"));
    let with = |purpose: &str| {
        validate(
            d,
            &json!({"certificate_pem": cert, "chain_pem": chain, "purpose": purpose}),
        )
    };
    assert_valid("client_auth", &with("client_auth"));
    assert_valid("any", &with("any"));
    let reason = assert_invalid("server_auth", &with("server_auth"));
    assert!(reason.contains("extKeyUsage"), "{reason}");
}

#[test]
fn an_expired_certificate_is_not_valid_but_its_chain_is() {
    let d = daemon();
    let (_root, _int, role) = our_pki(d, "val-time", json!({}));
    let (cert, chain, issued) = issue(d, &role, &host("time"));
    assert!(issued["not_after"].is_string(), "{issued}");

    let later = validate(
        d,
        &json!({
            "certificate_pem": cert,
            "chain_pem": chain,
            "validation_time": "2100-01-01T00:00:00Z",
        }),
    );
    let reason = assert_invalid("validated in 2100", &later);
    assert_eq!(later["not_expired"], false, "{later}");
    assert_eq!(later["chain_valid"], true, "{later}");
    assert!(reason.contains("expired"), "{reason}");

    let earlier = validate(
        d,
        &json!({
            "certificate_pem": cert,
            "chain_pem": chain,
            "validation_time": "2001-01-01T00:00:00+02:00",
        }),
    );
    assert_invalid("validated in 2001", &earlier);
    assert_eq!(earlier["not_expired"], false, "{earlier}");
}

#[test]
fn a_certificate_we_revoked_is_reported_revoked_from_our_records() {
    let d = daemon();
    let (_root, _int, role) = our_pki(d, "val-rev", json!({}));
    let (cert, chain, issued) = issue(d, &role, &host("rev"));
    let serial = issued["serial_number"]
        .as_str()
        .expect("serial")
        .to_string();

    let before = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": chain, "check_revocation": true}),
    );
    assert_valid("before revocation", &before);

    let (st, v) = d.post(
        "/v1/pki/revoke",
        &json!({"serial_number": serial, "reason": "key_compromise"}),
    );
    assert_eq!(st, 200, "revoke -> {st} {v}");

    let after = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": chain, "check_revocation": true}),
    );
    let reason = assert_invalid("after revocation", &after);
    assert_eq!(after["not_revoked"], false, "{after}");
    assert_eq!(after["chain_valid"], true, "{after}");
    assert!(reason.contains("revoked"), "{reason}");

    let unchecked = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": chain, "check_revocation": false}),
    );
    assert_valid("revocation not asked for", &unchecked);
    assert!(unchecked["not_revoked"].is_null(), "{unchecked}");
}

#[test]
fn an_inactive_root_anchors_nothing() {
    let d = daemon();
    let (root, _int, role) = our_pki(d, "val-inactive", json!({}));
    let (cert, chain, _) = issue(d, &role, &host("inactive"));
    let (st, v) = d.patch(
        &format!("/v1/pki/ca/{}", id_of(&root)),
        &json!({"is_active": false}),
    );
    assert_eq!(st, 200, "deactivate -> {st} {v}");
    let out = validate(d, &json!({"certificate_pem": cert, "chain_pem": chain}));
    assert_invalid("root deactivated", &out);
    assert!(out["trusted_anchor"].is_null(), "{out}");
    assert!(out["chain"].is_null(), "{out}");
}

// ------------------------------------------------------------------ foreign chains

/// A foreign CA and leaf made by openssl: (root PEM, leaf PEM, CRL PEM revoking the leaf).
struct Foreign {
    root: String,
    leaf: String,
    crl: String,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run openssl");
    assert!(out.status.success(), "{cmd:?}: {}", output_text(&out));
}

/// Make the foreign PKI with openssl; None (skipped) when openssl is missing.
fn foreign_pki(d: &Daemon) -> Option<Foreign> {
    if !require_tool("openssl") {
        return None;
    }
    let dir = d.scratch_path("foreign-pki");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let write = |f: &str, text: &str| std::fs::write(p(f), text).expect("write scratch file");
    write(
        "req.cnf",
        "[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n",
    );
    write(
        "leaf.ext",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:foreign.example.net\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
    write("index.txt", "");
    write("crlnumber", "01\n");
    write(
        "ca.cnf",
        &format!(
            "[ca]\ndefault_ca=c\n[c]\ndatabase={}\ndefault_md=sha256\ndefault_crl_days=30\ncrlnumber={}\n",
            p("index.txt"),
            p("crlnumber")
        ),
    );
    let o = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.args(args);
        run(&mut c);
    };
    o(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &p("ca.key"),
    ]);
    o(&[
        "req",
        "-new",
        "-x509",
        "-key",
        &p("ca.key"),
        "-subj",
        "/CN=Foreign Root",
        "-days",
        "30",
        "-extensions",
        "v3",
        "-config",
        &p("req.cnf"),
        "-out",
        &p("ca.pem"),
    ]);
    o(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &p("leaf.key"),
    ]);
    o(&[
        "req",
        "-new",
        "-key",
        &p("leaf.key"),
        "-subj",
        "/CN=foreign.example.net",
        "-config",
        &p("req.cnf"),
        "-out",
        &p("leaf.csr"),
    ]);
    o(&[
        "x509",
        "-req",
        "-in",
        &p("leaf.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-set_serial",
        "4660",
        "-days",
        "7",
        "-extfile",
        &p("leaf.ext"),
        "-out",
        &p("leaf.pem"),
    ]);
    o(&[
        "ca",
        "-config",
        &p("ca.cnf"),
        "-keyfile",
        &p("ca.key"),
        "-cert",
        &p("ca.pem"),
        "-revoke",
        &p("leaf.pem"),
    ]);
    o(&[
        "ca",
        "-config",
        &p("ca.cnf"),
        "-keyfile",
        &p("ca.key"),
        "-cert",
        &p("ca.pem"),
        "-gencrl",
        "-out",
        &p("crl.pem"),
    ]);
    let read = |f: &str| std::fs::read_to_string(p(f)).expect("read scratch file");
    Some(Foreign {
        root: read("ca.pem"),
        leaf: read("leaf.pem"),
        crl: read("crl.pem"),
    })
}

#[test]
fn a_foreign_chain_is_not_valid_without_its_anchor_and_valid_with_it() {
    let d = daemon();
    let Some(f) = foreign_pki(d) else { return };

    let alone = validate(
        d,
        &json!({"certificate_pem": f.leaf, "check_revocation": false}),
    );
    let reason = assert_invalid("no anchor", &alone);
    assert!(reason.contains("Foreign Root"), "{reason}");
    assert_eq!(alone["chain_valid"], false, "{alone}");

    let anchored = validate(
        d,
        &json!({
            "certificate_pem": f.leaf,
            "trust_anchors_pem": f.root,
            "dns_name": "foreign.example.net",
            "purpose": "server_auth",
            "check_revocation": false,
        }),
    );
    assert_valid("with trust_anchors_pem", &anchored);
    assert_eq!(anchored["trusted_anchor"], "request:1", "{anchored}");
}

#[test]
fn a_given_crl_revokes_a_foreign_certificate() {
    let d = daemon();
    let Some(f) = foreign_pki(d) else { return };
    let v = validate(
        d,
        &json!({
            "certificate_pem": f.leaf,
            "trust_anchors_pem": f.root,
            "crls_pem": f.crl,
            "check_revocation": true,
        }),
    );
    let reason = assert_invalid("revoked by CRL", &v);
    assert_eq!(v["not_revoked"], false, "{v}");
    assert_eq!(v["chain_valid"], true, "{v}");
    assert!(reason.contains("revoked"), "{reason}");
}

#[test]
fn a_max_chain_depth_of_zero_refuses_an_intermediate() {
    let d = daemon();
    let (_root, _int, role) = our_pki(d, "val-depth", json!({}));
    let (cert, chain, _) = issue(d, &role, &host("depth"));
    let v = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": chain, "max_chain_depth": 0}),
    );
    let reason = assert_invalid("depth 0", &v);
    assert!(reason.contains("max_chain_depth"), "{reason}");
    let v = validate(
        d,
        &json!({"certificate_pem": cert, "chain_pem": chain, "max_chain_depth": 1}),
    );
    assert_valid("depth 1", &v);
}

// ------------------------------------------------------------------ malformed input

#[test]
fn malformed_certificates_are_400_invalid_certificate() {
    let d = daemon();
    let (_root, _int, role) = our_pki(d, "val-bad", json!({}));
    let (cert, _chain, _) = issue(d, &role, &host("bad"));
    let cases = [
        ("not PEM", json!({"certificate_pem": "hello"})),
        (
            "bad base64",
            json!({"certificate_pem": "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"}),
        ),
        (
            "base64 that is not a certificate",
            json!({"certificate_pem": "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n"}),
        ),
        (
            "no END line",
            json!({"certificate_pem": "-----BEGIN CERTIFICATE-----\nAAECAw==\n"}),
        ),
        (
            "a key instead of a certificate",
            json!({"certificate_pem": "-----BEGIN PRIVATE KEY-----\nAAECAw==\n-----END PRIVATE KEY-----\n"}),
        ),
        (
            "two certificates",
            json!({"certificate_pem": format!("{cert}{cert}")}),
        ),
        (
            "garbage chain",
            json!({"certificate_pem": cert, "chain_pem": "garbage"}),
        ),
        (
            "garbage anchors",
            json!({"certificate_pem": cert, "trust_anchors_pem": "x"}),
        ),
    ];
    for (what, body) in cases {
        let (st, v) = d.post(VALIDATE, &body);
        assert_error(what, (st, &v), 400, "invalid_certificate");
    }
    // Past limits.max_pem_certificates (64) is a limit, not malformed input.
    let (st, v) = d.post(
        VALIDATE,
        &json!({"certificate_pem": cert, "chain_pem": cert.repeat(64)}),
    );
    assert_error("65 certificates", (st, &v), 422, "too_many_certificates");
}

#[test]
fn other_malformed_input_is_400() {
    let d = daemon();
    let (_root, _int, role) = our_pki(d, "val-bad2", json!({}));
    let (cert, _chain, _) = issue(d, &role, &host("bad2"));
    let crl = "-----BEGIN X509 CRL-----\nAAECAw==\n-----END X509 CRL-----\n";
    let (st, v) = d.post(VALIDATE, &json!({"certificate_pem": cert, "crls_pem": crl}));
    assert_error("bad CRL", (st, &v), 400, "invalid_crl");

    let cases = [
        (
            "unknown field",
            json!({"certificate_pem": cert, "dnsname": "a.example"}),
        ),
        (
            "bad purpose",
            json!({"certificate_pem": cert, "purpose": "email"}),
        ),
        (
            "bad time",
            json!({"certificate_pem": cert, "validation_time": "tomorrow"}),
        ),
        (
            "bad dns_name",
            json!({"certificate_pem": cert, "dns_name": "not a name"}),
        ),
        (
            "bad ip_address",
            json!({"certificate_pem": cert, "ip_address": "300.1.1.1"}),
        ),
        (
            "both names",
            json!({"certificate_pem": cert, "dns_name": "a.example", "ip_address": "10.0.0.1"}),
        ),
        ("missing certificate", json!({"chain_pem": cert})),
    ];
    for (what, body) in cases {
        let (st, v) = d.post(VALIDATE, &body);
        assert_error(what, (st, &v), 400, "invalid_request");
    }
    let (st, v) = d.post_raw(VALIDATE, "application/json", b"{not json");
    assert_error("not JSON", (st, &v), 400, "invalid_json");
}

#[test]
fn validation_requires_a_token() {
    let d = daemon();
    let (st, v) = d.post_with(
        VALIDATE,
        &json!({"certificate_pem": "x"}),
        common::Auth::None,
    );
    assert_error("no token", (st, &v), 401, "unauthorized");
}

/// A root and a leaf under it made by openssl in the test's own scratch directory:
/// (root PEM, leaf PEM, the root's SHA-256 fingerprint as openssl prints it).
fn openssl_root_and_leaf(d: &Daemon, cn: &str, host: &str) -> Option<(String, String, String)> {
    if !require_tool("openssl") {
        return None;
    }
    let dir = d.scratch_path("trust-anchor-pki");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    std::fs::write(
        p("leaf.cnf"),
        format!(
            "[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{host}\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        ),
    )
    .expect("write leaf.cnf");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", &p("ca.key"), "-out", &p("ca.pem"), "-days", "30"])
        .args(["-subj", &format!("/CN={cn}")])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    run(Command::new("openssl")
        .args(["req", "-new"])
        .args(ec)
        .args(["-keyout", &p("leaf.key"), "-out", &p("leaf.csr")])
        .args(["-subj", &format!("/CN={host}")]));
    run(Command::new("openssl")
        .args(["x509", "-req", "-in", &p("leaf.csr"), "-CA", &p("ca.pem")])
        .args(["-CAkey", &p("ca.key"), "-CAcreateserial", "-days", "10"])
        .args([
            "-extfile",
            &p("leaf.cnf"),
            "-extensions",
            "v3",
            "-out",
            &p("leaf.pem"),
        ]));
    let out = Command::new("openssl")
        .args([
            "x509",
            "-in",
            &p("ca.pem"),
            "-noout",
            "-fingerprint",
            "-sha256",
        ])
        .output()
        .expect("openssl fingerprint");
    let fp = String::from_utf8_lossy(&out.stdout)
        .split('=')
        .nth(1)
        .unwrap_or_default()
        .trim()
        .replace(':', "")
        .to_ascii_lowercase();
    let read = |f: &str| std::fs::read_to_string(p(f)).expect("read scratch file");
    Some((read("ca.pem"), read("leaf.pem"), fp))
}

#[test]
fn trust_anchors_can_be_registered_listed_fetched_and_deleted() {
    let d = daemon();
    let cn = unique_name("TA Root");
    let Some((root, leaf, fp)) = openssl_root_and_leaf(d, &cn, "ta-crud.example.net") else {
        return;
    };
    let name = unique_name("vendor-root");
    let (st, ta) = d.post(
        "/v1/pki/trust-anchors",
        &json!({"name": name, "certificate_pem": root}),
    );
    assert_eq!(st, 201, "{ta}");
    let id = id_of(&ta);
    assert!(id.starts_with("trust_anchor_"), "{ta}");
    assert_eq!(ta["name"], name.as_str());
    assert_eq!(
        ta["fingerprint_sha256"],
        fp.as_str(),
        "matches openssl's fingerprint"
    );
    assert_eq!(ta["subject"], format!("CN={cn}").as_str());
    for field in ["not_after", "created_at"] {
        assert!(
            ta[field].as_str().is_some_and(|t| t.ends_with('Z')),
            "{field}: {ta}"
        );
    }

    // The same name, or the same certificate under another name: 409.
    let (st, v) = d.post(
        "/v1/pki/trust-anchors",
        &json!({"name": name, "certificate_pem": root}),
    );
    assert_error("trust anchor step 1", (st, &v), 409, "trust_anchor_exists");
    let (st, v) = d.post(
        "/v1/pki/trust-anchors",
        &json!({"name": unique_name("again"), "certificate_pem": root}),
    );
    assert_error("trust anchor step 2", (st, &v), 409, "trust_anchor_exists");
    // A leaf, or junk, is not an anchor: 400.
    let (st, v) = d.post(
        "/v1/pki/trust-anchors",
        &json!({"name": unique_name("leaf"), "certificate_pem": leaf}),
    );
    assert_error("trust anchor step 3", (st, &v), 400, "invalid_certificate");
    let (st, v) = d.post(
        "/v1/pki/trust-anchors",
        &json!({"name": unique_name("junk"), "certificate_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
    );
    assert_error("trust anchor step 4", (st, &v), 400, "invalid_certificate");
    let (st, v) = d.get_with("/v1/pki/trust-anchors", common::Auth::None);
    assert_error("trust anchor step 5", (st, &v), 401, "unauthorized");

    let (st, list) = d.get("/v1/pki/trust-anchors");
    assert_eq!(st, 200);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == id.as_str()));
    let (st, one) = d.get(&format!("/v1/pki/trust-anchors/{id}"));
    assert_eq!(st, 200);
    assert_eq!(
        one["certificate_pem"].as_str().map(str::trim),
        Some(root.trim())
    );

    let r = d.request(
        reqwest::Method::DELETE,
        &format!("/v1/pki/trust-anchors/{id}"),
        common::Auth::Root,
        &[],
        None,
    );
    assert_eq!(r.status, 204);
    let (st, v) = d.get(&format!("/v1/pki/trust-anchors/{id}"));
    assert_error(
        "trust anchor step 6",
        (st, &v),
        404,
        "trust_anchor_not_found",
    );
}

#[test]
fn a_registered_trust_anchor_anchors_validation_until_it_is_deleted() {
    let d = daemon();
    let host = "ta-validate.example.net";
    let Some((root, leaf, _)) = openssl_root_and_leaf(d, &unique_name("TA Anchor"), host) else {
        return;
    };
    let body = json!({"certificate_pem": leaf, "dns_name": host, "check_revocation": false});
    assert_invalid("before registration", &validate(d, &body));

    let (st, ta) = d.post(
        "/v1/pki/trust-anchors",
        &json!({"name": unique_name("anchor"), "certificate_pem": root}),
    );
    assert_eq!(st, 201, "{ta}");
    let id = id_of(&ta);
    let v = validate(d, &body);
    assert_valid("with the registered anchor", &v);
    assert_eq!(v["trusted_anchor"], id.as_str(), "{v}");

    let r = d.request(
        reqwest::Method::DELETE,
        &format!("/v1/pki/trust-anchors/{id}"),
        common::Auth::Root,
        &[],
        None,
    );
    assert_eq!(r.status, 204);
    assert_invalid("after deletion", &validate(d, &body));
}

// ------------------------------------------------------------------ openssl ca

/// A throw-away CA run by `openssl ca` in its own scratch directory, so that a test
/// chooses every extension and date of its certificates and CRLs.
struct OpensslCa {
    dir: PathBuf,
}

const CA_EXT: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n";

impl OpensslCa {
    /// A self-signed CA named `cn` with the extension lines `ext`, valid for 30 days from
    /// now or from `dates.0` to `dates.1` (`YYYYMMDDHHMMSSZ`). None when openssl is missing.
    fn new(d: &Daemon, cn: &str, ext: &str, dates: Option<(&str, &str)>) -> Option<OpensslCa> {
        if !require_tool("openssl") {
            return None;
        }
        let dir = d.scratch_path("openssl-ca");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let ca = OpensslCa { dir };
        ca.write(
            "ca.cnf",
            &format!(
                "[ca]\ndefault_ca=c\n[c]\ndatabase={}\nnew_certs_dir={}\ndefault_md=sha256\n\
                 policy=p\nserial={}\ncrlnumber={}\ndefault_crl_days=30\nunique_subject=no\n\
                 [p]\ncommonName=supplied\n[req]\ndistinguished_name=dn\n[dn]\n",
                ca.p("index.txt"),
                ca.dir.display(),
                ca.p("serial"),
                ca.p("crlnumber")
            ),
        );
        ca.write("index.txt", "");
        ca.write("serial", "1000\n");
        ca.write("crlnumber", "01\n");
        ca.issue("ca", cn, ext, dates, true);
        Some(ca)
    }

    fn p(&self, f: &str) -> String {
        self.dir.join(f).to_string_lossy().into_owned()
    }

    fn write(&self, f: &str, text: &str) {
        std::fs::write(self.p(f), text).expect("write scratch file");
    }

    fn read(&self, f: &str) -> String {
        std::fs::read_to_string(self.p(f)).expect("read scratch file")
    }

    fn openssl(&self, args: &[&str]) {
        let mut c = Command::new("openssl");
        c.args(args);
        run(&mut c);
    }

    /// A P-256 key and a certificate `<name>.pem` for `/CN=cn` with the extension lines
    /// `ext`: self-signed, or signed by this CA.
    fn issue(
        &self,
        name: &str,
        cn: &str,
        ext: &str,
        dates: Option<(&str, &str)>,
        self_signed: bool,
    ) {
        let (key, csr, extf, pem) = (
            self.p(&format!("{name}.key")),
            self.p(&format!("{name}.csr")),
            self.p(&format!("{name}.ext")),
            self.p(&format!("{name}.pem")),
        );
        self.write(&format!("{name}.ext"), ext);
        self.openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &key,
        ]);
        let cnf = self.p("ca.cnf");
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={cn}"),
            "-config",
            &cnf,
            "-out",
            &csr,
        ]);
        let mut args: Vec<String> = [
            "ca", "-batch", "-notext", "-config", &cnf, "-in", &csr, "-out", &pem, "-extfile",
            &extf,
        ]
        .map(String::from)
        .to_vec();
        if self_signed {
            args.extend(["-selfsign".into(), "-keyfile".into(), key.clone()]);
        } else {
            args.extend(
                ["-keyfile", &self.p("ca.key"), "-cert", &self.p("ca.pem")].map(String::from),
            );
        }
        match dates {
            Some((from, to)) => args.extend(["-startdate", from, "-enddate", to].map(String::from)),
            None => args.extend(["-days", "30"].map(String::from)),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.openssl(&args);
    }

    /// A leaf for `cn` with the extension lines `ext`, signed by this CA.
    fn leaf(&self, cn: &str, ext: &str, dates: Option<(&str, &str)>) -> String {
        let name = unique_name("leaf");
        self.issue(&name, cn, ext, dates, false);
        self.read(&format!("{name}.pem"))
    }

    fn root(&self) -> String {
        self.read("ca.pem")
    }

    /// A CRL of this CA (listing nothing revoked), with extra `openssl ca -gencrl` options.
    fn crl(&self, extra: &[&str]) -> String {
        let out = self.p(&format!("{}.crl", unique_name("crl")));
        let (cnf, key, cert) = (self.p("ca.cnf"), self.p("ca.key"), self.p("ca.pem"));
        let mut args = vec![
            "ca", "-gencrl", "-config", &cnf, "-keyfile", &key, "-cert", &cert, "-out", &out,
        ];
        args.extend_from_slice(extra);
        self.openssl(&args);
        std::fs::read_to_string(&out).expect("read CRL")
    }
}

fn client_leaf_ext(san: &str) -> String {
    format!(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\nsubjectAltName={san}\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
}

#[test]
fn without_a_revocation_source_not_revoked_is_null_and_an_unusable_crl_still_refuses() {
    let d = daemon();
    let Some(ca) = OpensslCa::new(d, &unique_name("Unchecked Root"), CA_EXT, None) else {
        return;
    };
    let leaf = ca.leaf(
        "unchecked.example.net",
        &client_leaf_ext("DNS:unchecked.example.net"),
        None,
    );
    let body = |crls: Option<String>| {
        let mut b = json!({
            "certificate_pem": leaf,
            "trust_anchors_pem": ca.root(),
            "purpose": "client_auth",
        });
        if let Some(c) = crls {
            merge(&mut b, json!({"crls_pem": c}));
        }
        b
    };

    // Nothing to check it against: nothing was checked, and that alone does not refuse.
    let v = validate(d, &body(None));
    assert_valid("no CRL, not ours", &v);
    assert!(v["not_revoked"].is_null(), "{v}");
    assert_eq!(v["chain_valid"], true, "{v}");

    let v = validate(d, &body(Some(ca.crl(&[]))));
    assert_valid("a fresh CRL that does not list it", &v);
    assert_eq!(v["not_revoked"], true, "{v}");

    // A CRL given but unusable refuses (fail closed), as before.
    let stale = ca.crl(&[
        "-crl_lastupdate",
        "20200101000000Z",
        "-crl_nextupdate",
        "20200102000000Z",
    ]);
    let v = validate(d, &body(Some(stale)));
    let reason = assert_invalid("a stale CRL", &v);
    assert_eq!(v["not_revoked"], false, "{v}");
    assert!(reason.contains("nextUpdate"), "{reason}");

    let mut der = pem_to_der(&ca.crl(&[]));
    *der.last_mut().expect("CRL bytes") ^= 0x01;
    let v = validate(d, &body(Some(der_to_pem("X509 CRL", &der))));
    let reason = assert_invalid("a CRL whose signature does not verify", &v);
    assert_eq!(v["not_revoked"], false, "{v}");
    assert!(reason.contains("does not verify"), "{reason}");
}

#[test]
fn a_name_constraint_reason_says_whether_the_name_is_outside_the_permitted_or_in_an_excluded_subtree(
) {
    let d = daemon();
    let ext = format!(
        "{CA_EXT}nameConstraints=critical,permitted;DNS:ok.test,excluded;DNS:bad.ok.test\n"
    );
    let Some(ca) = OpensslCa::new(d, &unique_name("NC Root"), &ext, None) else {
        return;
    };
    let check = |san: &str| {
        let leaf = ca.leaf("nc-leaf", &client_leaf_ext(san), None);
        validate(
            d,
            &json!({
                "certificate_pem": leaf,
                "trust_anchors_pem": ca.root(),
                "purpose": "client_auth",
                "check_revocation": false,
            }),
        )
    };
    assert_valid("inside the permitted subtree", &check("DNS:a.ok.test"));

    let v = check("DNS:*.test");
    let reason = assert_invalid("a wildcard above the permitted subtree", &v);
    assert!(
        reason.contains("outside the permitted subtrees") && !reason.contains("excluded"),
        "{reason}"
    );
    assert!(reason.contains("ok.test"), "the subtree is named: {reason}");

    let v = check("DNS:x.bad.ok.test");
    let reason = assert_invalid("a name in the excluded subtree", &v);
    assert!(
        reason.contains("excluded subtree") && reason.contains("bad.ok.test"),
        "{reason}"
    );
}

#[test]
fn an_expired_certificate_is_reported_as_expired_even_where_its_root_is_not_valid_yet() {
    let d = daemon();
    // The root starts now; the leaf lived in January 2020.
    let Some(ca) = OpensslCa::new(d, &unique_name("Young Root"), CA_EXT, None) else {
        return;
    };
    let leaf = ca.leaf(
        "old.example.net",
        &client_leaf_ext("DNS:old.example.net"),
        Some(("20200101000000Z", "20200201000000Z")),
    );
    let at = |t: &str| {
        validate(
            d,
            &json!({
                "certificate_pem": leaf,
                "trust_anchors_pem": ca.root(),
                "validation_time": t,
                "check_revocation": false,
            }),
        )
    };
    let v = at("2021-01-01T00:00:00Z");
    let reason = assert_invalid("leaf expired, root not valid yet", &v);
    assert_eq!(v["not_expired"], false, "{v}");
    assert_eq!(v["chain_valid"], false, "{v}");
    assert!(
        reason.starts_with("the certificate has expired"),
        "the leaf's own expiry comes first: {reason}"
    );

    // Within the leaf's dates, the root is what is wrong.
    let v = at("2020-01-15T00:00:00Z");
    let reason = assert_invalid("leaf in date, root not valid yet", &v);
    assert_eq!(v["not_expired"], true, "{v}");
    assert!(
        reason.contains("trust anchor") && reason.contains("not valid yet"),
        "{reason}"
    );
}

#[test]
fn a_trust_anchor_must_be_allowed_to_sign_certificates_and_may_have_expired() {
    let d = daemon();
    let no_kcs = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,cRLSign\nsubjectKeyIdentifier=hash\n";
    let Some(ca) = OpensslCa::new(d, &unique_name("No KCS Root"), no_kcs, None) else {
        return;
    };
    let (st, v) = d.post(
        "/v1/pki/trust-anchors",
        &json!({"name": unique_name("nokcs"), "certificate_pem": ca.root()}),
    );
    assert_error(
        "a CA that may not sign certificates",
        (st, &v),
        400,
        "invalid_certificate",
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("keyCertSign"),
        "{v}"
    );

    // Operators register anchors ahead of time, or keep old ones: an expired CA is taken,
    // and its not_after says so.
    let Some(old) = OpensslCa::new(
        d,
        &unique_name("Expired Root"),
        CA_EXT,
        Some(("20200101000000Z", "20200201000000Z")),
    ) else {
        return;
    };
    let (st, ta) = d.post(
        "/v1/pki/trust-anchors",
        &json!({"name": unique_name("expired"), "certificate_pem": old.root()}),
    );
    assert_eq!(st, 201, "{ta}");
    assert_eq!(ta["not_after"], "2020-02-01T00:00:00Z", "{ta}");
}
