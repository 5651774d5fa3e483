//! `[csr] four_eyes = true`: the party that asked for a CSR may not approve it. A party is
//! a token and every token minted from it by tokens without `admin` or `sys`.
//!
//! This checks the refusal and that the CSR stays pending; approval by a second token is
//! in `tests/access.rs` (`four_eyes_lets_a_second_token_approve`).

mod common;

use std::process::Command;
use std::sync::OnceLock;

use common::{
    assert_error, new_daemon_setup, require_tool, start_daemon_on, unique_name, Auth, Daemon,
    DaemonSetup,
};
use reqwest::Method;
use serde_json::{json, Value};

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

// ------------------------------------------------- parties: a token and what it mints

/// One daemon with four-eyes on, shared by the party tests below (each uses its own
/// tokens and CSRs).
fn four_eyes_daemon() -> &'static Daemon {
    static D: OnceLock<(DaemonSetup, Daemon)> = OnceLock::new();
    &D.get_or_init(|| {
        let setup = new_daemon_setup("[csr]\nfour_eyes = true").expect("setup");
        let d = start_daemon_on(&setup).expect("daemon starts");
        (setup, d)
    })
    .1
}

fn call(d: &Daemon, m: Method, path: &str, auth: Auth<'_>, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|v| ("application/json", serde_json::to_vec(v).unwrap()));
    let r = d.request(m, path, auth, &[], body);
    (r.status, r.json())
}

/// A token made by `by` (the root token when None); returns (id, secret).
fn mint(d: &Daemon, by: Option<&str>, caps: &[&str]) -> (String, String) {
    let (st, v) = call(
        d,
        Method::POST,
        "/v1/auth/tokens",
        by.map_or(Auth::Root, Auth::Bearer),
        Some(&json!({"name": unique_name("party"), "capabilities": caps})),
    );
    assert_eq!(st, 201, "mint {caps:?}: {v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

/// A fresh P-256 CSR, PEM.
fn new_csr(d: &Daemon, cn: &str) -> String {
    let dir = d.scratch_path("party");
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-keyout"])
        .arg(dir.join("k.pem"))
        .args(["-subj", &format!("/CN={cn}"), "-out"])
        .arg(dir.join("req.csr"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("req.csr")).unwrap()
}

/// `by` imports a CSR; returns its approve path.
fn import(d: &Daemon, by: &str) -> String {
    let pem = new_csr(d, "party.example.net");
    let (st, v) = call(
        d,
        Method::POST,
        "/v1/pki/csr/import",
        Auth::Bearer(by),
        Some(&json!({"csr_pem": pem})),
    );
    assert_eq!(st, 201, "{v}");
    format!("/v1/pki/csr/{}/approve", v["id"].as_str().unwrap())
}

fn approve(d: &Daemon, path: &str, by: &str) -> (u16, Value) {
    call(d, Method::POST, path, Auth::Bearer(by), Some(&json!({})))
}

fn assert_pending(d: &Daemon, approve_path: &str) {
    let path = approve_path.trim_end_matches("/approve");
    let (st, v) = d.get(path);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "pending", "{v}");
}

#[test]
fn a_token_cannot_approve_its_own_csr_through_a_token_it_minted() {
    if !require_tool("openssl") {
        return;
    }
    let d = four_eyes_daemon();
    // The QA finding: request and approve in one token, then a child to approve with.
    let (parent_id, parent) = mint(d, None, &["csr:request", "csr:approve", "read"]);
    let path = import(d, &parent);
    let (st, v) = approve(d, &path, &parent);
    assert_error("self-approval", (st, &v), 403, "four_eyes");
    let (_, child) = mint(d, Some(&parent), &["csr:approve"]);
    let (st, v) = approve(d, &path, &child);
    assert_error("the child approves", (st, &v), 403, "four_eyes");
    // At any depth.
    let (_, grandchild) = mint(d, Some(&child), &["csr:approve"]);
    let (st, v) = approve(d, &path, &grandchild);
    assert_error("the grandchild approves", (st, &v), 403, "four_eyes");
    // The requesting token revoked: what it asked for is still its party's.
    let (st, v) = call(
        d,
        Method::DELETE,
        &format!("/v1/auth/tokens/{parent_id}"),
        Auth::Root,
        None,
    );
    assert_eq!(st, 204, "{v}");
    let (st, v) = approve(d, &path, &child);
    assert_error("after the parent's revocation", (st, &v), 403, "four_eyes");
    assert_pending(d, &path);
    // Someone else may.
    let (_, other) = mint(d, None, &["csr:approve"]);
    let (st, v) = approve(d, &path, &other);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "approved", "{v}");
}

#[test]
fn a_token_cannot_approve_what_a_token_it_minted_asked_for() {
    if !require_tool("openssl") {
        return;
    }
    let d = four_eyes_daemon();
    let (_, parent) = mint(d, None, &["csr:request", "csr:approve", "ca:write", "read"]);
    let (_, child) = mint(d, Some(&parent), &["csr:request", "ca:write"]);
    // Imported by the child.
    let path = import(d, &child);
    let (st, v) = approve(d, &path, &parent);
    assert_error("the parent approves an import", (st, &v), 403, "four_eyes");
    assert_pending(d, &path);
    // Generated in the token by the child.
    let (st, v) = call(
        d,
        Method::POST,
        "/v1/pki/csr",
        Auth::Bearer(&child),
        Some(&json!({"subject": {"common_name": "gen.party.example.net"},
                     "san_dns": ["gen.party.example.net"]})),
    );
    assert_eq!(st, 201, "{v}");
    let path = format!("/v1/pki/csr/{}/approve", v["id"].as_str().unwrap());
    let (st, v) = approve(d, &path, &parent);
    assert_error(
        "the parent approves a generated CSR",
        (st, &v),
        403,
        "four_eyes",
    );
    assert_pending(d, &path);
}

#[test]
fn tokens_an_admin_mints_for_two_people_are_two_parties() {
    if !require_tool("openssl") {
        return;
    }
    let d = four_eyes_daemon();
    let (_, admin) = mint(d, None, &["admin"]);
    let (_, alice) = mint(d, Some(&admin), &["csr:request", "read"]);
    let (_, bob) = mint(d, Some(&admin), &["csr:approve"]);
    let path = import(d, &alice);
    let (st, v) = approve(d, &path, &bob);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "approved", "{v}");
    // Yet what bob mints for himself stays bob: it cannot approve bob's own requests.
    let (_, bob2) = mint(d, Some(&admin), &["csr:request", "csr:approve"]);
    let path = import(d, &bob2);
    let (_, bob2_child) = mint(d, Some(&bob2), &["csr:approve"]);
    let (st, v) = approve(d, &path, &bob2_child);
    assert_error("a non-admin's child", (st, &v), 403, "four_eyes");
}
