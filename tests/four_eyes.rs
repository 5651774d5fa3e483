//! `[csr] four_eyes = true`: the token that imported a CSR may not approve it.
//!
//! This checks the refusal and that the CSR stays pending; approval by a second token is
//! in `tests/access.rs` (`four_eyes_lets_a_second_token_approve`).

mod common;

use std::process::Command;

use common::{assert_error, new_daemon_setup, require_tool, start_daemon_on};
use serde_json::json;

#[test]
fn with_four_eyes_the_importing_token_cannot_approve_its_own_csr() {
    if !require_tool("openssl") {
        return;
    }
    let setup = new_daemon_setup("[csr]\nfour_eyes = true").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon starts");
    let dir = d.scratch_path("four-eyes");
    std::fs::create_dir_all(&dir).unwrap();
    let csr = dir.join("req.csr");
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(dir.join("k.pem"))
        .args(["-subj", "/CN=four-eyes.example.net", "-out"])
        .arg(&csr)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pem = std::fs::read_to_string(&csr).unwrap();

    let (st, rec) = d.post("/v1/pki/csr/import", &json!({"csr_pem": pem}));
    assert_eq!(st, 201, "{rec}");
    let id = rec["id"].as_str().unwrap().to_string();
    let (st, v) = d.post(&format!("/v1/pki/csr/{id}/approve"), &json!({}));
    assert_error("self-approval", (st, &v), 403, "four_eyes");
    let (st, v) = d.get(&format!("/v1/pki/csr/{id}"));
    assert_eq!(st, 200);
    assert_eq!(v["status"], "pending", "{v}");
    // Rejecting your own request is not what four-eyes guards against.
    let (st, v) = d.post(
        &format!("/v1/pki/csr/{id}/reject"),
        &json!({"reason": "withdrawn"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "rejected");
}
