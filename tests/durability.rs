//! "Every record is on disk before the client sees the certificate."
//!
//! A daemon of this test's own (not the shared one) on its own SoftHSM2 token
//! and data dir is SIGKILLed in the middle of a burst of issuance from several
//! client threads, then started again on the same data dir and token. Every
//! certificate any client received must be listed after the restart, no serial
//! may be listed twice, and the daemon must still issue.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{new_daemon_setup, start_daemon_on, Daemon};
use serde_json::{json, Value};

const CLIENT_THREADS: usize = 8;
/// How long the burst runs before the SIGKILL, per round.
const KILL_AFTER: [Duration; 3] = [
    Duration::from_millis(1500),
    Duration::from_millis(1200),
    Duration::from_millis(1800),
];

/// What a client was told about one certificate.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    serial: String,
    certificate: String,
    round: usize,
}

fn str_field(v: &Value, f: &str) -> String {
    v[f].as_str()
        .unwrap_or_else(|| panic!("{f} is not a string in {v}"))
        .to_string()
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

/// Every row of `GET /v1/pki/certificates?ca_id=…`, following the cursor.
fn list_by_ca(d: &Daemon, ca_id: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100_000 {
        let mut path = format!("/v1/pki/certificates?ca_id={ca_id}&limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", percent_encode(c)));
        }
        let (st, v) = d.get(&path);
        assert_eq!(st, 200, "GET {path} -> {st} {v}");
        rows.extend(
            v["data"]
                .as_array()
                .unwrap_or_else(|| panic!("no data in {v}"))
                .iter()
                .cloned(),
        );
        match (&v["has_more"], &v["cursor"]) {
            (Value::Bool(false), Value::Null) => return rows,
            (Value::Bool(true), Value::String(c)) => cursor = Some(c.clone()),
            _ => panic!("GET {path}: has_more/cursor inconsistent: {v}"),
        }
    }
    panic!("listing never ended");
}

/// One burst: CLIENT_THREADS clients issue as fast as they can until the
/// daemon is SIGKILLed after `kill_after`. Returns what the clients received
/// and how many requests failed (in flight at the kill, or sent after it).
fn burst_and_kill(
    d: &Daemon,
    role: &str,
    round: usize,
    kill_after: Duration,
) -> (Vec<Received>, usize) {
    let received: Mutex<Vec<Received>> = Mutex::new(Vec::new());
    let failed = Mutex::new(0usize);
    let unexpected: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let url = d.url(&format!("/v1/pki/issue/{role}"));
    std::thread::scope(|sc| {
        for t in 0..CLIENT_THREADS {
            let (received, failed, unexpected, stop, url) =
                (&received, &failed, &unexpected, &stop, &url);
            let token = d.root_token.clone();
            sc.spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .no_proxy()
                    .build()
                    .expect("HTTP client");
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = json!({"common_name": format!("r{round}-t{t}-{i}.dur.test")});
                    let resp = client.post(url).bearer_auth(&token).json(&body).send();
                    let outcome = resp.and_then(|r| {
                        let status = r.status().as_u16();
                        r.bytes().map(|b| (status, b))
                    });
                    match outcome {
                        Ok((201, bytes)) => match serde_json::from_slice::<Value>(&bytes) {
                            Ok(v) if v["id"].is_string() && v["serial_number"].is_string() => {
                                received.lock().unwrap().push(Received {
                                    id: str_field(&v, "id"),
                                    serial: str_field(&v, "serial_number"),
                                    certificate: str_field(&v, "certificate"),
                                    round,
                                });
                            }
                            // A cut-off body is not a certificate the client received.
                            _ => *failed.lock().unwrap() += 1,
                        },
                        Ok((status, bytes)) => unexpected
                            .lock()
                            .unwrap()
                            .push(format!("{status} {}", String::from_utf8_lossy(&bytes))),
                        Err(_) => {
                            *failed.lock().unwrap() += 1;
                            // The daemon is gone; stop hammering a closed port.
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            });
        }
        std::thread::sleep(kill_after);
        let status = d.kill_hard();
        stop.store(true, Ordering::Relaxed);
        eprintln!("round {round}: daemon pid {} killed: {status}", d.pid());
    });
    let unexpected = unexpected.into_inner().unwrap();
    assert!(
        unexpected.is_empty(),
        "round {round}: issuance answered something other than 201 before the kill:\n{}",
        unexpected.join("\n")
    );
    (received.into_inner().unwrap(), failed.into_inner().unwrap())
}

#[test]
fn every_certificate_a_client_received_survives_sigkill_and_serials_stay_unique() {
    let setup = new_daemon_setup("").unwrap_or_else(|e| panic!("{e}"));
    let d = start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    let root = d.create_root("dur-root", json!({"key_type": "ec"}));
    let int = d.create_intermediate(
        "dur-int",
        &str_field(&root, "id"),
        json!({"key_type": "ec"}),
    );
    let ca_id = str_field(&int, "id");
    let role_name = common::unique_name("dur");
    let (st, role) = d.post(
        "/v1/pki/roles",
        &json!({"name": role_name, "ca_id": ca_id, "allowed_domains": ["dur.test"],
                "allow_subdomains": true, "max_ttl": "24h"}),
    );
    assert_eq!(st, 201, "create role -> {st} {role}");

    let mut all: Vec<Received> = Vec::new();
    let mut daemon = d;
    for (round, kill_after) in KILL_AFTER.into_iter().enumerate() {
        let t = Instant::now();
        let (got, failed) = burst_and_kill(&daemon, &role_name, round, kill_after);
        eprintln!(
            "round {round}: {} certificates received, {failed} requests cut off, in {:?}",
            got.len(),
            t.elapsed()
        );
        assert!(
            !got.is_empty(),
            "round {round}: no certificate issued in {kill_after:?}; the test proves nothing\n{}",
            daemon.log_tail(4000)
        );
        all.extend(got);
        drop(daemon);

        // Restart on the same data dir and token.
        daemon =
            start_daemon_on(&setup).unwrap_or_else(|e| panic!("restart after round {round}: {e}"));
        let rows = list_by_ca(&daemon, &ca_id);
        check_survivors(&daemon, &rows, &all, round);

        // The restarted daemon still issues, with a fresh serial.
        let (st, v) = daemon.post(
            &format!("/v1/pki/issue/{role_name}"),
            &json!({"common_name": format!("after-{round}.dur.test")}),
        );
        assert_eq!(st, 201, "issue after restart {round} -> {st} {v}");
        let serial = str_field(&v, "serial_number");
        assert!(
            !rows.iter().any(|r| r["serial_number"] == serial.as_str()),
            "round {round}: the restarted daemon reused serial {serial}"
        );
        all.push(Received {
            id: str_field(&v, "id"),
            serial,
            certificate: str_field(&v, "certificate"),
            round,
        });
    }
    let rows = list_by_ca(&daemon, &ca_id);
    check_survivors(&daemon, &rows, &all, KILL_AFTER.len());
    eprintln!(
        "{} certificates received over {} kills, {} listed",
        all.len(),
        KILL_AFTER.len(),
        rows.len()
    );
}

fn check_survivors(d: &Daemon, rows: &[Value], received: &[Received], round: usize) {
    // Clients never saw one serial twice.
    let mut by_serial: HashMap<&str, &str> = HashMap::new();
    for r in received {
        if let Some(other) = by_serial.insert(&r.serial, &r.id) {
            panic!(
                "two certificates handed out with serial {}: {other} and {}",
                r.serial, r.id
            );
        }
    }
    // The listing has no serial and no id twice.
    let mut listed_serial: HashMap<String, String> = HashMap::new();
    let mut listed_ids: HashSet<String> = HashSet::new();
    for row in rows {
        let id = str_field(row, "id");
        let serial = str_field(row, "serial_number");
        assert!(
            listed_ids.insert(id.clone()),
            "after round {round}: id {id} listed twice"
        );
        if let Some(other) = listed_serial.insert(serial.clone(), id.clone()) {
            panic!("after round {round}: serial {serial} listed twice: {other} and {id}");
        }
    }
    // Every certificate a client received is there, with its serial.
    let missing: Vec<&Received> = received
        .iter()
        .filter(|r| !listed_ids.contains(&r.id))
        .collect();
    assert!(
        missing.is_empty(),
        "after round {round}: {} of {} received certificates are not listed after the restart, e.g. {:?}",
        missing.len(),
        received.len(),
        missing.iter().take(5).map(|r| (&r.id, &r.serial, r.round)).collect::<Vec<_>>()
    );
    for r in received {
        assert_eq!(
            listed_serial.get(&r.serial),
            Some(&r.id),
            "after round {round}: serial {} of {} is listed for another id",
            r.serial,
            r.id
        );
    }
    // The newest receipts of the round (the ones closest to the kill) read back
    // byte for byte.
    for r in received.iter().filter(|r| r.round == round).rev().take(40) {
        let (st, v) = d.get(&format!("/v1/pki/certificates/{}", r.id));
        assert_eq!(st, 200, "GET {} after restart -> {st} {v}", r.id);
        assert_eq!(
            v["certificate"].as_str().map(str::trim),
            Some(r.certificate.trim()),
            "certificate {} changed across the restart",
            r.id
        );
    }
    // The CA's counter covers at least every certificate a client received.
    let ca_id = rows
        .first()
        .map(|r| str_field(r, "issuer_ca_id"))
        .unwrap_or_default();
    if !ca_id.is_empty() {
        let (_, ca) = d.get(&format!("/v1/pki/ca/{ca_id}"));
        let issued = ca["certificates_issued"].as_u64().unwrap_or(0);
        assert!(
            issued as usize >= received.len(),
            "after round {round}: certificates_issued {issued} < {} received ({} listed)",
            received.len(),
            rows.len()
        );
        if issued as usize != rows.len() {
            eprintln!(
                "note: after round {round}: certificates_issued {issued} != {} listed",
                rows.len()
            );
        }
    }
}
