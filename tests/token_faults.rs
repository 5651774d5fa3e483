//! The token going away under a running daemon: requests fail with 503 hsm_unavailable,
//! health says 503, nothing is half-written, and service resumes by itself — no restart —
//! when the token is back. Also: a wrong PIN stops the daemon at start with a clear error.

mod common;

use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{new_daemon_setup, start_daemon_on};
use serde_json::{json, Value};

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

/// The directory SoftHSM2 keeps this setup's one token in (`tokens/<uuid>`).
fn token_dir(setup: &common::DaemonSetup) -> std::path::PathBuf {
    let mut dirs: Vec<_> = fs::read_dir(setup.dir.join("tokens"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one token directory: {dirs:?}");
    dirs.pop().unwrap()
}

/// Whether this process runs as root (effective uid 0), from /proc/self/status.
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

/// A root, an intermediate and a role on a daemon of one's own; returns (ca id, role).
fn pki(d: &common::Daemon) -> (String, String) {
    let root = d.create_root("tf-root", json!({"key_type": "ec"}));
    let int = d.create_intermediate(
        "tf-int",
        root["id"].as_str().unwrap(),
        json!({"key_type": "ec"}),
    );
    let ca_id = int["id"].as_str().unwrap().to_string();
    let (s, v) = d.post(
        "/v1/pki/roles",
        &json!({"name": "tf", "ca_id": ca_id, "allowed_domains": ["tf.test"],
                "allow_subdomains": true, "max_ttl": "24h"}),
    );
    assert_eq!(s, 201, "{v}");
    (ca_id, "tf".into())
}

/// What issuing clients saw while the token came and went.
#[derive(Default)]
struct Seen {
    issued: Vec<String>,
    unavailable: usize,
    unexpected: Vec<String>,
}

/// Issue from `threads` clients until `stop`; every answer is sorted into `seen`.
fn issue_load(
    d: &common::Daemon,
    role: &str,
    threads: usize,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
) {
    std::thread::scope(|sc| {
        for t in 0..threads {
            let url = d.url(&format!("/v1/pki/issue/{role}"));
            let token = d.root_token.clone();
            sc.spawn(move || {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .no_proxy()
                    .build()
                    .unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = json!({"common_name": format!("t{t}-{i}.tf.test")});
                    let r = c.post(&url).bearer_auth(&token).json(&body).send().unwrap();
                    let status = r.status().as_u16();
                    let v: Value = r.json().unwrap_or(Value::Null);
                    let mut s = seen.lock().unwrap();
                    match status {
                        201 if v["certificate"].is_string() => {
                            s.issued.push(v["id"].as_str().unwrap().to_string())
                        }
                        503 if v["error"]["code"] == "hsm_unavailable"
                            && v.get("certificate").is_none() =>
                        {
                            s.unavailable += 1;
                            drop(s);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        _ => s.unexpected.push(format!("{status} {v}")),
                    }
                }
            });
        }
    });
}

/// Every certificate id listed for a CA, following the cursor.
fn listed(d: &common::Daemon, ca_id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut path = format!("/v1/pki/certificates?ca_id={ca_id}&limit=1000");
        if !cursor.is_empty() {
            let enc: String = cursor
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            path.push_str(&format!("&cursor={enc}"));
        }
        let (s, v) = d.get(&path);
        assert_eq!(s, 200, "{v}");
        out.extend(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
        match &v["cursor"] {
            Value::String(c) if v["has_more"] == true => cursor = c.clone(),
            _ => return out,
        }
    }
}

/// The token's directory becomes unreadable while clients issue: chmod 000 where that
/// stops the daemon's user; as root (whom chmod does not stop) the directory is moved out
/// of SoftHSM2's token directory instead. Issuance answers 201 with a stored certificate
/// or 503 `hsm_unavailable` without one — nothing in between, nothing half-written — and
/// resumes by itself when the directory is readable again.
#[test]
fn an_unreadable_token_under_load_gives_503_leaves_nothing_half_written_and_recovers() {
    let setup = new_daemon_setup("").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon starts");
    let (ca_id, role) = pki(&d);
    let dir = token_dir(&setup);
    let hidden = setup.dir.join("token-hidden");
    let as_root = is_root();
    let set_mode = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap()
    };
    let make_unreadable = || {
        if as_root {
            fs::rename(&dir, &hidden).unwrap()
        } else {
            set_mode(0o000)
        }
    };
    let make_readable = || {
        if as_root {
            fs::rename(&hidden, &dir).unwrap()
        } else {
            set_mode(0o700)
        }
    };

    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    let mut outage_health = None;
    let mut recovered_in = None;
    std::thread::scope(|sc| {
        sc.spawn(|| issue_load(&d, &role, 4, &stop, &seen));
        std::thread::sleep(Duration::from_millis(500));
        make_unreadable();
        let t = Instant::now();
        assert!(
            eventually(Duration::from_secs(15), || {
                let (s, v) = d.get("/v1/sys/health");
                let down = s == 503;
                if down {
                    outage_health = Some(v);
                }
                down
            }),
            "health never said 503; log:\n{}",
            d.log_tail(3000)
        );
        eprintln!("health 503 after {:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(800));
        make_readable();
        let t = Instant::now();
        let back = eventually(Duration::from_secs(20), || d.get("/v1/sys/health").0 == 200);
        recovered_in = back.then(|| t.elapsed());
        std::thread::sleep(Duration::from_millis(800));
        stop.store(true, Ordering::Relaxed);
    });
    let seen = seen.into_inner().unwrap();
    let recovered_in = recovered_in
        .unwrap_or_else(|| panic!("no recovery without restart; log:\n{}", d.log_tail(4000)));
    eprintln!(
        "{} issued, {} refused with 503 during the outage; recovered {recovered_in:?} after the token came back",
        seen.issued.len(),
        seen.unavailable
    );
    assert!(
        seen.unexpected.is_empty(),
        "answers other than 201 or 503 hsm_unavailable: {:?}\nlog:\n{}",
        seen.unexpected,
        d.log_lines(" ")
            .lines()
            .filter(|l| !l.contains("certificate issued"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        seen.unavailable > 0,
        "no request saw the outage; the test proves nothing"
    );
    let health = outage_health.unwrap();
    assert_eq!(health["error"]["code"], "hsm_unavailable", "{health}");

    // Exactly the certificates clients received are stored: none from a failed request.
    let mut got = seen.issued.clone();
    let mut stored = listed(&d, &ca_id);
    got.sort();
    stored.sort();
    assert_eq!(
        stored, got,
        "stored records differ from what clients received"
    );
    let (s, v) = d.post(
        &format!("/v1/pki/issue/{role}"),
        &json!({"common_name": "after.tf.test"}),
    );
    assert_eq!(s, 201, "{v}");
}

/// The token's files are deleted while the daemon runs: every operation that needs the
/// token is 503 `hsm_unavailable` (health too), reads that don't need it go on, nothing is
/// written; when the files are put back the daemon resumes without a restart.
#[test]
fn a_removed_token_gives_503_everywhere_it_is_needed_and_resumes_when_put_back() {
    let setup = new_daemon_setup("").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon starts");
    let (ca_id, role) = pki(&d);
    let (s, first) = d.post(
        &format!("/v1/pki/issue/{role}"),
        &json!({"common_name": "a.tf.test"}),
    );
    assert_eq!(s, 201, "{first}");
    let before = listed(&d, &ca_id);

    let dir = token_dir(&setup);
    let backup = setup.dir.join("token-backup");
    let out = Command::new("cp")
        .arg("-a")
        .arg(&dir)
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::remove_dir_all(&dir).unwrap();

    assert!(
        eventually(Duration::from_secs(10), || d.get("/v1/sys/health").0 == 503),
        "health never said 503"
    );
    let unavailable = |what: &str, (s, v): (u16, Value)| {
        assert_eq!(s, 503, "{what}: {v}");
        assert_eq!(v["error"]["code"], "hsm_unavailable", "{what}: {v}");
        assert!(v.get("certificate").is_none(), "{what}: {v}");
    };
    unavailable(
        "issue",
        d.post(
            &format!("/v1/pki/issue/{role}"),
            &json!({"common_name": "b.tf.test"}),
        ),
    );
    unavailable(
        "CRL rebuild",
        d.post(&format!("/v1/pki/ca/{ca_id}/crl"), &json!({})),
    );
    unavailable(
        "new root",
        d.post(
            "/v1/pki/ca",
            &json!({"name": "tf-gone", "common_name": "Gone", "ca_type": "root", "key_type": "ec"}),
        ),
    );
    // Reads from the store go on.
    assert_eq!(
        d.get(&format!(
            "/v1/pki/certificates/{}",
            first["id"].as_str().unwrap()
        ))
        .0,
        200
    );
    assert_eq!(d.get(&format!("/v1/pki/ca/{ca_id}/crl")).0, 200);
    assert_eq!(listed(&d, &ca_id), before, "nothing was written");

    let out = Command::new("cp")
        .arg("-a")
        .arg(&backup)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(15), || d.get("/v1/sys/health").0 == 200),
        "no recovery without restart; log:\n{}",
        d.log_tail(4000)
    );
    let (s, v) = d.post(
        &format!("/v1/pki/issue/{role}"),
        &json!({"common_name": "c.tf.test"}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = d.post(&format!("/v1/pki/ca/{ca_id}/crl"), &json!({}));
    assert_eq!(s, 200, "{v}");
    let (s, v) = d.post(
        "/v1/pki/ca",
        &json!({"name": "tf-back", "common_name": "Back", "ca_type": "root", "key_type": "ec"}),
    );
    assert_eq!(s, 201, "{v}");
}
