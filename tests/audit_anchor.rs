//! The audit log's anchor in the token: signed entries removed from the end of the log
//! (which the signed heads alone cannot show) stop the daemon and fail `audit verify
//! --config`, until an operator accepts the rollback, which the log then records.

mod common;

use std::process::Command;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

struct Run {
    ok: bool,
    text: String,
}

fn cli(setup: &DaemonSetup, args: &[&str]) -> Run {
    // The test opens the store in-process to tamper with it; sled releases its lock when
    // its last I/O job ends, which can be a moment after `drop` under load.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_scaivault-pki"))
            .args(args)
            .env("SOFTHSM2_CONF", &setup.softhsm_conf)
            .env_remove("SCAIVAULT_CONFIG")
            .env_remove("SCAIVAULT_DATA_DIR")
            .env_remove("SCAIVAULT_HSM_PIN")
            .env_remove("RUST_LOG")
            .output()
            .expect("run scaivault-pki");
        let text = output_text(&out);
        if !text.contains("in use by another process") || std::time::Instant::now() > deadline {
            return Run {
                ok: out.status.success(),
                text,
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn verify(setup: &DaemonSetup, with_token: bool) -> Run {
    let config = setup.config_path.to_string_lossy().into_owned();
    let data = setup.data_dir.to_string_lossy().into_owned();
    if with_token {
        cli(setup, &["audit", "verify", "--config", &config])
    } else {
        cli(setup, &["audit", "verify", "--data-dir", &data])
    }
}

fn make_entries(d: &Daemon, n: usize) {
    for i in 0..n {
        let (st, v) = d.post(
            "/v1/auth/tokens",
            &json!({"name": format!("t{i}"), "capabilities": ["read"]}),
        );
        assert_eq!(st, 201, "{v}");
    }
}

#[test]
fn removing_signed_entries_from_the_end_is_caught_by_the_token_anchor() {
    let setup = new_daemon_setup("[audit]\nsign_every = 4\nsign_interval = \"1h\"").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon");
    make_entries(&d, 12);
    assert!(d.stop_gracefully().success());
    drop(d);

    let r = verify(&setup, true);
    assert!(r.ok, "{}", r.text);
    assert!(r.text.contains("matches the token's anchor"), "{}", r.text);

    // Someone who can write the disk deletes everything after the first signed head, heads
    // included: what is left is a whole chain under a valid signature.
    let store =
        scaivault_pki::store::Store::open(&setup.data_dir.join("store")).expect("open store");
    let first_head = store
        .audit_heads()
        .next()
        .expect("a signed head")
        .expect("readable head")
        .0;
    let last = store.last_audit().unwrap().unwrap().0;
    assert!(
        first_head < last,
        "heads at {first_head}, log ends at {last}"
    );
    store.tamper_truncate_audit(first_head).unwrap();
    drop(store);

    // The store alone cannot tell...
    let r = verify(&setup, false);
    assert!(r.ok, "{}", r.text);
    assert!(r.text.contains("not compared with the token"), "{}", r.text);
    // ...the token can.
    let r = verify(&setup, true);
    assert!(
        !r.ok,
        "a truncated log must fail against the anchor:\n{}",
        r.text
    );
    assert!(r.text.contains("signed entries were removed"), "{}", r.text);

    // The daemon will not serve on top of it.
    let err = match start_daemon_on(&setup) {
        Ok(_) => panic!("the daemon started on a truncated audit log"),
        Err(e) => e,
    };
    assert!(err.contains("accept-rollback"), "{err}");

    // An operator who restored an older backup accepts the rollback; the log records it.
    let config = setup.config_path.to_string_lossy().into_owned();
    let r = cli(&setup, &["audit", "accept-rollback", "--config", &config]);
    assert!(r.ok, "{}", r.text);
    assert!(r.text.contains("recorded the rollback"), "{}", r.text);
    let r = cli(&setup, &["audit", "accept-rollback", "--config", &config]);
    assert!(r.ok && r.text.contains("nothing to accept"), "{}", r.text);

    let d = start_daemon_on(&setup).expect("daemon after the accepted rollback");
    let r = d.request(Method::GET, "/v1/audit?limit=1000", Auth::Root, &[], None);
    assert_eq!(r.status, 200);
    let v: Value = r.json();
    let entries = v["entries"].as_array().expect("entries");
    let accepted: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "audit.rollback_accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{v}");
    assert!(
        accepted[0]["object_id"]
            .as_str()
            .unwrap()
            .contains(&format!("log ended at entry {first_head}")),
        "{v}"
    );
    make_entries(&d, 2);
    assert!(d.stop_gracefully().success());
    drop(d);
    let r = verify(&setup, true);
    assert!(r.ok, "{}", r.text);
    assert!(r.text.contains("rollback accepted at entry"), "{}", r.text);
    assert!(r.text.contains("matches the token's anchor"), "{}", r.text);
}

#[test]
fn verify_refuses_a_directory_without_a_store() {
    let setup = new_daemon_setup("").expect("setup");
    let missing = setup.dir.join("no-such-dir");
    let r = cli(
        &setup,
        &["audit", "verify", "--data-dir", &missing.to_string_lossy()],
    );
    assert!(!r.ok, "{}", r.text);
    assert!(r.text.contains("there is no store"), "{}", r.text);
    assert!(!missing.exists(), "verify must not create a store");
}

#[test]
fn restoring_an_older_backup_records_the_rollback_and_the_daemon_starts() {
    let setup = new_daemon_setup("[audit]\nsign_every = 4\nsign_interval = \"1h\"").expect("setup");
    let config = setup.config_path.to_string_lossy().into_owned();
    let d = start_daemon_on(&setup).expect("daemon");
    make_entries(&d, 3);
    assert!(d.stop_gracefully().success());
    drop(d);
    let file = setup.dir.join("old.backup");
    let r = cli(
        &setup,
        &[
            "backup",
            "--out",
            &file.to_string_lossy(),
            "--config",
            &config,
        ],
    );
    assert!(r.ok, "{}", r.text);

    // Life goes on after the backup: more entries, more signed heads, the anchor moves.
    let d = start_daemon_on(&setup).expect("daemon");
    make_entries(&d, 9);
    assert!(d.stop_gracefully().success());
    drop(d);

    // The data directory is lost; the older backup comes back.
    let root_token = std::fs::read(setup.data_dir.join("root-token")).unwrap();
    std::fs::rename(&setup.data_dir, setup.dir.join("data.lost")).unwrap();
    std::fs::create_dir(&setup.data_dir).unwrap();
    let r = cli(
        &setup,
        &[
            "restore",
            "--in",
            &file.to_string_lossy(),
            "--config",
            &config,
        ],
    );
    assert!(r.ok, "{}", r.text);
    assert!(
        r.text.contains("recorded as audit.rollback_accepted"),
        "{}",
        r.text
    );
    std::fs::write(setup.data_dir.join("root-token"), root_token).unwrap();

    let d = start_daemon_on(&setup).expect("the daemon starts on the restored store");
    let r = d.request(Method::GET, "/v1/audit?limit=1000", Auth::Root, &[], None);
    let v: Value = r.json();
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let at = actions
        .iter()
        .position(|a| *a == "audit.rollback_accepted")
        .unwrap_or_else(|| panic!("no rollback entry: {actions:?}"));
    // Then the restore itself, now that the restored store can take it.
    assert_eq!(actions.get(at + 1), Some(&"restore"), "{actions:?}");
    assert!(d.stop_gracefully().success());
    drop(d);
    let r = verify(&setup, true);
    assert!(r.ok, "{}", r.text);
    assert!(r.text.contains("rollback accepted at entry"), "{}", r.text);
}
