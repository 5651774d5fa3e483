//! The token going away under a running daemon: requests fail with 503 hsm_unavailable,
//! health says 503, nothing is half-written, and service resumes by itself — no restart —
//! when the token is back. Also: a wrong PIN stops the daemon at start with a clear error.

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{new_daemon_setup, start_daemon_on};
use serde_json::json;

/// Poll `f` until it returns true or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn a_vanished_token_gives_503_and_the_daemon_recovers_when_it_returns() {
    let setup = new_daemon_setup("").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon starts");
    let (s, root) = d.post(
        "/v1/pki/ca",
        &json!({"name": "fault-root", "common_name": "Fault Root", "ca_type": "root", "key_type": "ec"}),
    );
    assert_eq!(s, 201, "{root}");
    let root_id = root["id"].as_str().unwrap().to_string();

    // Take the token away: SoftHSM2's file store disappears from under the library.
    let tokens = setup.dir.join("tokens");
    let away = setup.dir.join("tokens.away");
    fs::rename(&tokens, &away).unwrap();
    fs::create_dir(&tokens).unwrap();

    let (s, body) = d.get("/v1/sys/health");
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["error"]["code"], "hsm_unavailable");
    let (s, body) = d.post(
        "/v1/pki/ca",
        &json!({"name": "fault-int", "common_name": "Fault Int", "ca_type": "intermediate",
                "parent_ca_id": root_id, "key_type": "ec"}),
    );
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["error"]["code"], "hsm_unavailable");
    // Reads that need no token keep working, and nothing was half-written.
    let (s, list) = d.get("/v1/pki/ca");
    assert_eq!(s, 200);
    let names: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec![json!("fault-root")],
        "no record of the failed CA"
    );

    // Bring it back: the daemon finds it again without a restart.
    fs::remove_dir(&tokens).unwrap();
    fs::rename(&away, &tokens).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || d.get("/v1/sys/health").0 == 200),
        "health did not recover; log:\n{}",
        d.log_tail(4000)
    );
    let (s, body) = d.post(
        "/v1/pki/ca",
        &json!({"name": "fault-int", "common_name": "Fault Int", "ca_type": "intermediate",
                "parent_ca_id": root_id, "key_type": "ec"}),
    );
    assert_eq!(s, 201, "{body}");
}

#[test]
fn a_wrong_pin_stops_the_daemon_at_start_with_a_clear_error() {
    let setup = new_daemon_setup("").expect("setup");
    let pin_file = setup.dir.join("wrong-pin");
    fs::write(&pin_file, "not-the-pin").unwrap();
    let config = fs::read_to_string(&setup.config_path).unwrap();
    let wrong = setup.dir.join("wrong.toml");
    let patched: String = config
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("pin_file") {
                format!("pin_file = {:?}", pin_file.display().to_string())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&wrong, patched).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scaivault-pki"))
        .args(["serve", "--config"])
        .arg(&wrong)
        .env("SOFTHSM2_CONF", &setup.softhsm_conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the PIN"), "{err}");
    assert!(
        !err.contains("not-the-pin"),
        "the PIN must never be printed: {err}"
    );
}
