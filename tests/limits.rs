//! The `[limits]` section: every limit input can reach is configurable, and going past
//! one is a 4xx (429 for overload) whose code names the limit.
//!
//! A daemon of this binary's own runs with small limits; the shared daemon (default
//! limits) makes the CA chains that the small one is then asked to validate.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use common::{assert_error, daemon, new_daemon_setup, start_daemon_on, Daemon, DaemonSetup};
use serde_json::{json, Value};

const SMALL_LIMITS: &str = "\
[limits]
max_body_bytes = 65536
max_sans = 3
max_name_length = 40
max_pem_certificates = 5
max_chain_depth = 2
path_signature_budget = 2
max_csr_bytes = 4000
";

/// The small-limits daemon, shared by the tests of this file (its setup lives as long).
fn small() -> &'static Daemon {
    static D: OnceLock<(Daemon, &'static DaemonSetup)> = OnceLock::new();
    &D.get_or_init(|| {
        let setup: &'static DaemonSetup =
            Box::leak(Box::new(new_daemon_setup(SMALL_LIMITS).expect("setup")));
        (start_daemon_on(setup).expect("small-limits daemon"), setup)
    })
    .0
}

fn str_of(v: &Value, f: &str) -> String {
    v[f].as_str()
        .unwrap_or_else(|| panic!("{f} not a string in {v}"))
        .to_string()
}

/// A root, an intermediate and a role for `*.lim.test` on `d`.
fn ca_and_role(d: &Daemon) -> (String, String) {
    let root = d.create_root("lim-root", json!({"key_type": "ec"}));
    let int = d.create_intermediate("lim-int", &str_of(&root, "id"), json!({"key_type": "ec"}));
    let role = common::unique_name("lim");
    let (s, v) = d.post(
        "/v1/pki/roles",
        &json!({"name": role, "ca_id": str_of(&int, "id"), "allowed_domains": ["lim.test"],
                "allow_subdomains": true, "allow_ip_sans": true, "max_ttl": "24h",
                "allowed_uri_sans": ["spiffe://*"], "use_csr_sans": true}),
    );
    assert_eq!(s, 201, "{v}");
    (str_of(&int, "id"), role)
}

#[test]
fn a_body_over_max_body_bytes_is_413_body_too_large() {
    let d = small();
    let (_, role) = ca_and_role(d);
    let pad = "a".repeat(70_000);
    let body = format!(r#"{{"common_name": "x.lim.test", "pad": "{pad}"}}"#);
    let (s, v) = d.post_raw(
        &format!("/v1/pki/issue/{role}"),
        "application/json",
        body.as_bytes(),
    );
    assert_error("70 kB body", (s, &v), 413, "body_too_large");
    // Just under the limit the body is read (and refused for what it says, not its size).
    let pad = "a".repeat(60_000);
    let body = format!(r#"{{"common_name": "x.lim.test", "pad": "{pad}"}}"#);
    let (s, v) = d.post_raw(
        &format!("/v1/pki/issue/{role}"),
        "application/json",
        body.as_bytes(),
    );
    assert_error("60 kB body", (s, &v), 400, "invalid_request");
}

#[test]
fn more_sans_than_max_sans_is_422_too_many_sans_for_issue_and_sign() {
    let d = small();
    let (_, role) = ca_and_role(d);
    let path = format!("/v1/pki/issue/{role}");
    let (s, v) = d.post(
        &path,
        &json!({"common_name": "a.lim.test", "alt_names": ["b.lim.test", "c.lim.test"],
                "ip_sans": ["10.0.0.1", "10.0.0.2"]}),
    );
    assert_error("4 SANs", (s, &v), 422, "too_many_sans");
    let (s, v) = d.post(
        &path,
        &json!({"common_name": "a.lim.test", "alt_names": ["b.lim.test"], "ip_sans": ["10.0.0.1"]}),
    );
    assert_eq!(s, 201, "3 SANs are within the limit: {v}");

    // The same limit for names that come from a CSR.
    let (csr, _) = common::openssl_csr(
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=a.lim.test",
        Some("DNS:a.lim.test,DNS:b.lim.test,DNS:c.lim.test,DNS:d.lim.test"),
    );
    let (s, v) = d.post(&format!("/v1/pki/sign/{role}"), &json!({"csr_pem": csr}));
    assert_error("CSR with 4 SANs", (s, &v), 422, "too_many_sans");
}

#[test]
fn a_name_longer_than_max_name_length_is_422_name_too_long() {
    let d = small();
    let (_, role) = ca_and_role(d);
    let path = format!("/v1/pki/issue/{role}");
    let long = format!("{}.lim.test", "a".repeat(40));
    for body in [
        json!({"common_name": long}),
        json!({"common_name": "a.lim.test", "alt_names": [long]}),
        json!({"common_name": "a.lim.test", "uri_sans": [format!("spiffe://{}", "u".repeat(40))]}),
    ] {
        let (s, v) = d.post(&path, &body);
        assert_error(&format!("{body}"), (s, &v), 422, "name_too_long");
    }
    let (s, v) = d.post(
        &path,
        &json!({"common_name": format!("{}.lim.test", "a".repeat(20))}),
    );
    assert_eq!(s, 201, "{v}");
}

#[test]
fn a_csr_over_max_csr_bytes_is_413_csr_too_large_for_sign_and_import() {
    let d = small();
    let (_, role) = ca_and_role(d);
    let (csr, _) = common::openssl_csr(
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=a.lim.test",
        None,
    );
    let big = format!("{csr}{}", " ".repeat(4000));
    let (s, v) = d.post(&format!("/v1/pki/sign/{role}"), &json!({"csr_pem": big}));
    assert_error("sign, 4 kB CSR", (s, &v), 413, "csr_too_large");
    let (s, v) = d.post("/v1/pki/csr/import", &json!({"csr_pem": big}));
    assert_error("import, 4 kB CSR", (s, &v), 413, "csr_too_large");
    let (s, v) = d.post(&format!("/v1/pki/sign/{role}"), &json!({"csr_pem": csr}));
    assert_eq!(s, 201, "the same CSR without padding: {v}");
}

/// On the default daemon: a root, `n` intermediates in a line, and a leaf under the
/// last. Returns (root PEM, intermediates PEM leaf side first, leaf PEM).
fn chain_of(n: usize) -> (String, Vec<String>, String) {
    let d = daemon();
    let root = d.create_root("deep-root", json!({"key_type": "ec"}));
    let mut parent = str_of(&root, "id");
    let mut ints = Vec::new();
    for _ in 0..n {
        let int = d.create_intermediate("deep-int", &parent, json!({"key_type": "ec"}));
        parent = str_of(&int, "id");
        ints.push(d.ca_certificate_pem(&parent));
    }
    let role = common::unique_name("deep");
    let (s, v) = d.post(
        "/v1/pki/roles",
        &json!({"name": role, "ca_id": parent, "allowed_domains": ["deep.test"],
                "allow_subdomains": true, "max_ttl": "24h"}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = d.post(
        &format!("/v1/pki/issue/{role}"),
        &json!({"common_name": "x.deep.test"}),
    );
    assert_eq!(s, 201, "{v}");
    ints.reverse();
    (
        d.ca_certificate_pem(&str_of(&root, "id")),
        ints,
        str_of(&v, "certificate"),
    )
}

fn validate(d: &Daemon, root: &str, ints: &[String], leaf: &str) -> (u16, Value) {
    d.post(
        "/v1/pki/certificates/validate",
        &json!({"certificate_pem": leaf, "chain_pem": ints.concat(),
                "trust_anchors_pem": root, "check_revocation": false}),
    )
}

#[test]
fn more_pem_certificates_than_max_pem_certificates_is_422_too_many_certificates() {
    let d = small();
    let (root, ints, leaf) = chain_of(1);
    // 1 leaf + 4 in chain_pem + 1 anchor = 6 > 5.
    let padded: Vec<String> = std::iter::repeat_n(ints[0].clone(), 4).collect();
    let (s, v) = validate(d, &root, &padded, &leaf);
    assert_error(
        "validate with 6 certificates",
        (s, &v),
        422,
        "too_many_certificates",
    );
    let (s, v) = validate(d, &root, &ints, &leaf);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["valid"], true, "{v}");
    // Import counts the certificate and its chain_pem.
    let (s, v) = d.post(
        "/v1/pki/certificates/import",
        &json!({"certificate_pem": leaf, "chain_pem": padded.concat() + &root}),
    );
    assert_error(
        "import with 6 certificates",
        (s, &v),
        422,
        "too_many_certificates",
    );
}

#[test]
fn a_hierarchy_deeper_than_max_chain_depth_is_422_chain_too_deep() {
    let d = small();
    let root = d.create_root("depth-root", json!({"key_type": "ec"}));
    let i1 = d.create_intermediate("depth-i1", &str_of(&root, "id"), json!({"key_type": "ec"}));
    let i2 = d.create_intermediate("depth-i2", &str_of(&i1, "id"), json!({"key_type": "ec"}));
    let (s, v) = d.post(
        "/v1/pki/ca",
        &json!({"name": common::unique_name("depth-i3"), "common_name": "Depth I3",
                "ca_type": "intermediate", "parent_ca_id": str_of(&i2, "id"), "key_type": "ec"}),
    );
    assert_error("third intermediate", (s, &v), 422, "chain_too_deep");
    let (s, list) = d.get("/v1/pki/ca");
    assert_eq!(s, 200);
    assert!(
        !list.to_string().contains("Depth I3"),
        "no record of the refused CA"
    );
}

#[test]
fn a_path_needing_more_intermediates_than_max_chain_depth_is_422_chain_too_deep() {
    let d = small();
    let (root, ints, leaf) = chain_of(3);
    let (s, v) = validate(d, &root, &ints, &leaf);
    assert_error("path of 3 intermediates", (s, &v), 422, "chain_too_deep");
    // The default daemon (max_chain_depth 8) finds the same path valid.
    let (s, v) = validate(daemon(), &root, &ints, &leaf);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["valid"], true, "{v}");
}

#[test]
fn a_path_needing_more_signature_checks_than_the_budget_is_422_path_budget_exceeded() {
    let d = small();
    // Leaf, two intermediates, root: three signatures, the budget is two.
    let (root, ints, leaf) = chain_of(2);
    let (s, v) = validate(d, &root, &ints, &leaf);
    assert_error(
        "three signature checks",
        (s, &v),
        422,
        "path_budget_exceeded",
    );
    // One intermediate: two signatures, within budget.
    let (root, ints, leaf) = chain_of(1);
    let (s, v) = validate(d, &root, &ints, &leaf);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["valid"], true, "{v}");
}

/// Open a request that holds its slot: headers promise a body that never comes.
fn hold_a_slot(d: &Daemon, path: &str) -> TcpStream {
    let addr = d.base_url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: 100\r\n\r\n{{",
        d.root_token
    )
    .unwrap();
    s.flush().unwrap();
    s
}

#[test]
fn requests_past_max_concurrent_requests_get_429_with_retry_after_and_health_still_answers() {
    let setup = new_daemon_setup("[limits]\nmax_concurrent_requests = 2\n").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon");
    let held: Vec<TcpStream> = (0..2).map(|_| hold_a_slot(&d, "/v1/pki/roles")).collect();
    // The daemon has them once it has read their headers.
    let mut refused = None;
    for _ in 0..50 {
        let r = d.request(
            reqwest::Method::GET,
            "/v1/pki/ca",
            common::Auth::Root,
            &[],
            None,
        );
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = refused.expect("a third request while two are in flight is refused");
    assert_error(
        "third request",
        (r.status, &r.json()),
        429,
        "too_many_requests",
    );
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    let (s, v) = d.get("/v1/sys/health");
    assert_eq!(s, 200, "health is never gated: {v}");

    // Finish the held requests: their slots come back.
    for mut s in held {
        let _ = s.write_all(&[b' '; 99]);
        let mut buf = Vec::new();
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.read_to_end(&mut buf);
    }
    let mut ok = false;
    for _ in 0..50 {
        if d.get("/v1/pki/ca").0 == 200 {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "the daemon answers again once the slots are free");
}
