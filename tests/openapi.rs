//! `GET /v1/openapi.json`, against the real daemon: public, a valid OpenAPI 3 document
//! (judged by `openapi-spec-validator`, not by our own code), and every operation it lists
//! is one the router serves. (That it lists exactly the routes of the access table is a
//! unit test in `src/api/openapi.rs`; schemathesis checks the answers against it in
//! `softhsm-test/schemathesis`.)

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{daemon, require_tool, Auth};
use reqwest::Method;
use serde_json::Value;

fn document() -> Value {
    let d = daemon();
    let r = d.request(Method::GET, "/v1/openapi.json", Auth::None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    serde_json::from_slice(&r.body).expect("the document is JSON")
}

#[test]
fn the_document_is_public_and_openapi_3_1() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["paths"]["/v1/openapi.json"]["get"]["security"],
        Value::Array(vec![])
    );
    assert_eq!(
        doc["paths"]["/v1/pki/ca"]["post"]["security"][0]["bearer"],
        Value::Array(vec![])
    );
}

#[test]
fn openapi_spec_validator_accepts_the_document() {
    if !require_tool("python3") {
        return;
    }
    let has_validator = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_validator {
        if std::env::var("SCAIVAULT_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("python3 cannot import openapi_spec_validator and SCAIVAULT_REQUIRE_TOOLS=1");
        }
        eprintln!("skipped: python3 cannot import openapi_spec_validator");
        return;
    }
    let doc = serde_json::to_vec(&document()).unwrap();
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
             validate(json.load(sys.stdin), cls=OpenAPIV31SpecValidator)\n\
             print('valid')",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(&doc).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each documented (method, path), with its path parameters filled in, reaches a route:
/// the answer is never the router's own 404 (`not_found`) or 405 (`method_not_allowed`).
#[test]
fn every_documented_operation_is_routed() {
    let d = daemon();
    let doc = document();
    let paths = doc["paths"].as_object().expect("paths");
    let mut seen = 0;
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "no-such-thing"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, _) in item.as_object().expect("path item") {
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            // No token: authenticated routes answer 401 before looking at anything else.
            let r = d.request(m.clone(), &concrete, Auth::None, &[], None);
            let code = r.json()["error"]["code"].as_str().map(str::to_string);
            assert!(
                !matches!(code.as_deref(), Some("not_found" | "method_not_allowed")),
                "{method} {path} ({concrete}) is documented but not routed: {} {}",
                r.status,
                r.text()
            );
            let documented = item[method]["responses"]
                .as_object()
                .is_some_and(|rs| rs.contains_key(&r.status.to_string()));
            assert!(
                documented,
                "{method} {path}: status {} is not documented",
                r.status
            );
            seen += 1;
        }
    }
    assert!(seen >= 40, "only {seen} operations");
}

/// What schemathesis found, kept fixed: a whole number written as `2048.0` is an integer
/// (JSON Schema says so), an optional body may be `null`, and granting `sys` in another
/// tenant is refused like any other grant beyond the granter's (403, not 400).
#[test]
fn findings_of_the_schemathesis_run_stay_fixed() {
    let d = daemon();
    let name = common::unique_name("st-whole");
    let (st, v) = d.post(
        "/v1/pki/ca",
        &serde_json::json!({"name": name, "common_name": "Whole Numbers", "ca_type": "root",
                            "key_type": "ec", "key_size": 256.0, "validity_days": 30.0}),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["key_size"], 256);
    let (st, v) = d.post(
        "/v1/pki/ca",
        &serde_json::json!({"name": name, "common_name": "x", "ca_type": "root",
                            "validity_days": 30.5}),
    );
    common::assert_error("fraction", (st, &v), 400, "invalid_request");

    for path in [
        "/v1/pki/csr/csr_nonexistent/approve",
        "/v1/pki/csr/csr_nonexistent/reject",
        "/v1/pki/certificates/cert_nonexistent/renew",
    ] {
        let (st, v) = d.post_raw(path, "application/json", b"null");
        assert_eq!(st, 404, "{path}: {v}");
    }

    let tenant = common::unique_name("st")
        .to_ascii_lowercase()
        .replace('_', "-");
    let (st, v) = d.post("/v1/sys/tenants", &serde_json::json!({"name": tenant}));
    assert_eq!(st, 201, "{v}");
    let (st, v) = d.post(
        "/v1/auth/tokens",
        &serde_json::json!({"name": "x", "tenant": tenant, "capabilities": ["sys"]}),
    );
    common::assert_error("sys elsewhere", (st, &v), 403, "missing_capability");
    // 128 characters of four bytes each is a valid name.
    let (st, v) = d.post(
        "/v1/auth/tokens",
        &serde_json::json!({"name": "😀".repeat(128), "capabilities": ["read"]}),
    );
    assert_eq!(st, 201, "{v}");

    // A body of whitespace only is not JSON, and not "no body" either.
    let (st, v) = d.post_raw(
        "/v1/pki/csr/csr_nonexistent/approve",
        "application/json",
        b"\t",
    );
    common::assert_error("whitespace body", (st, &v), 400, "invalid_json");

    // What the server refuses in ext_key_usage, the schema says: signing an approved CSR
    // takes no empty list, and TimeStamping stands alone (RFC 3161) there and in roles.
    let doc = document();
    let eku = &doc["components"]["schemas"]["SignApprovedRequest"]["properties"]["ext_key_usage"];
    let arrays: Vec<&Value> = eku["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .filter(|s| s["type"] == "array")
        .collect();
    assert!(
        !arrays.is_empty() && arrays.iter().all(|a| a["minItems"] == 1),
        "{eku}"
    );
    let role_eku =
        &doc["components"]["schemas"]["CreateRoleRequest"]["properties"]["ext_key_usage"];
    for schema in [eku, role_eku] {
        let lists: Vec<Vec<&str>> = schema["oneOf"]
            .as_array()
            .expect("oneOf")
            .iter()
            .filter(|s| s["type"] == "array")
            .map(|a| {
                a["items"]["enum"]
                    .as_array()
                    .expect("enum")
                    .iter()
                    .map(|n| n.as_str().unwrap())
                    .collect()
            })
            .collect();
        assert!(
            lists
                .iter()
                .all(|l| !l.contains(&"TimeStamping") || l == &vec!["TimeStamping"]),
            "{schema}"
        );
    }
}
