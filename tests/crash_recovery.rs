//! Crash recovery: a daemon under a mixed load (issue, sign, revoke, CRL rebuild and
//! fetch, CSR import/approve/sign, reads) is SIGKILLed at a random moment, started again
//! on the same store and token, and checked — over and over (50 runs by default).
//!
//! After every restart:
//! * the store opens as it is (no repair step exists; the daemon must simply start);
//! * every certificate a client was given is listed, with its serial;
//! * no serial is listed twice;
//! * every acknowledged revocation is there;
//! * every acknowledged CSR approval or signature is there;
//! * the published CRL's number is at least every CRL number a client saw, and the
//!   next rebuild's is higher (CRL numbers never go backwards);
//! * the daemon issues again.
//!
//! Environment: `SCAIVAULT_CRASH_RUNS` (default 50), `SCAIVAULT_CRASH_SEED` (default:
//! from the clock; printed, so a failing run can be repeated).

mod common;
mod load;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{new_daemon_setup, start_daemon_on, Daemon};
use load::{Fixture, Recorder, Rng};
use serde_json::{json, Value};

const THREADS: usize = 6;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
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

/// Every row of a paged listing (`data`, `has_more`, `cursor`).
fn list_all(d: &Daemon, path: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut p = format!(
            "{path}{}limit=1000",
            if path.contains('?') { '&' } else { '?' }
        );
        if let Some(c) = &cursor {
            p.push_str(&format!("&cursor={}", percent_encode(c)));
        }
        let (s, v) = d.get(&p);
        assert_eq!(s, 200, "GET {p} -> {s} {v}");
        rows.extend(v["data"].as_array().expect("data").iter().cloned());
        match (&v["has_more"], &v["cursor"]) {
            (Value::Bool(true), Value::String(c)) => cursor = Some(c.clone()),
            _ => return rows,
        }
    }
}

fn published_crl_number(d: &Daemon, ca: &str) -> u64 {
    let r = d.request(
        reqwest::Method::GET,
        &format!("/v1/pki/ca/{ca}/crl"),
        common::Auth::None,
        &[],
        None,
    );
    assert_eq!(r.status, 200, "GET crl -> {} {}", r.status, r.text());
    load::crl_number(&r.body).expect("the CRL has a CRL number")
}

/// The checks after one restart. `max_crl` is the highest CRL number any client saw.
fn check(d: &Daemon, fx: &Fixture, rec: &Recorder, run: usize, seed: u64, max_crl: &mut u64) {
    let ctx = format!("after run {run} (seed {seed})");
    let acks = rec.acks.lock().unwrap();

    // Certificates: all acknowledged ones, serials unique.
    let rows = list_all(d, &format!("/v1/pki/certificates?ca_id={}", fx.ca_id));
    let mut by_id: HashMap<String, &Value> = HashMap::new();
    let mut serials: HashSet<String> = HashSet::new();
    for r in &rows {
        let id = r["id"].as_str().expect("id").to_string();
        let serial = r["serial_number"].as_str().expect("serial").to_string();
        assert!(
            serials.insert(serial.clone()),
            "{ctx}: serial {serial} listed twice"
        );
        assert!(
            by_id.insert(id.clone(), r).is_none(),
            "{ctx}: id {id} listed twice"
        );
    }
    for c in acks.certs.values() {
        let row = by_id.get(&c.id).unwrap_or_else(|| {
            panic!(
                "{ctx}: acknowledged certificate {} ({}) is missing; log:\n{}",
                c.id,
                c.serial,
                d.log_tail(3000)
            )
        });
        assert_eq!(
            row["serial_number"],
            c.serial.as_str(),
            "{ctx}: serial of {} changed",
            c.id
        );
        assert_eq!(
            row["issuer_ca_id"],
            c.issuer.as_str(),
            "{ctx}: issuer of {} changed",
            c.id
        );
    }
    // Revocations.
    for id in acks.revoked.keys() {
        let row = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{ctx}: revoked certificate {id} is missing"));
        assert_eq!(
            row["is_revoked"], true,
            "{ctx}: acknowledged revocation of {id} is lost"
        );
    }
    // CSR workflow.
    let csrs: HashMap<String, String> = list_all(d, "/v1/pki/csr")
        .into_iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (id, acked) in &acks.csrs {
        let now = csrs
            .get(id)
            .unwrap_or_else(|| panic!("{ctx}: acknowledged CSR {id} is missing"));
        let ok = match acked.as_str() {
            "signed" => now == "signed",
            _ => now == "approved" || now == "signed",
        };
        assert!(ok, "{ctx}: CSR {id} was acknowledged {acked}, is now {now}");
    }
    // CRL numbers never go backwards.
    let seen = acks
        .crl_numbers
        .get(&fx.ca_id)
        .copied()
        .unwrap_or(0)
        .max(*max_crl);
    drop(acks);
    let published = published_crl_number(d, &fx.ca_id);
    assert!(
        published >= seen,
        "{ctx}: the published CRL has number {published}, a client already saw {seen}"
    );
    let (s, v) = d.post(&format!("/v1/pki/ca/{}/crl", fx.ca_id), &json!({}));
    assert_eq!(s, 200, "{ctx}: CRL rebuild -> {s} {v}");
    let next = v["crl_number"].as_u64().expect("crl_number");
    assert!(
        next > seen.max(published),
        "{ctx}: rebuild gave {next} after {seen}/{published}"
    );
    *max_crl = next;
    rec.saw_crl_number(&fx.ca_id, next);

    // And the daemon still issues, with a serial not yet used.
    let (s, v) = d.post(
        &format!("/v1/pki/issue/{}", fx.role),
        &json!({"common_name": format!("after-{run}.load.test")}),
    );
    assert_eq!(s, 201, "{ctx}: issue after restart -> {s} {v}");
    let serial = v["serial_number"].as_str().expect("serial");
    assert!(!serials.contains(serial), "{ctx}: serial {serial} reused");
}

#[test]
fn acknowledged_work_survives_sigkill_at_random_points() {
    let runs = env_u64("SCAIVAULT_CRASH_RUNS").unwrap_or(50) as usize;
    let seed = env_u64("SCAIVAULT_CRASH_SEED").unwrap_or_else(load::fresh_seed);
    eprintln!("crash_recovery: {runs} runs, seed {seed} (repeat with SCAIVAULT_CRASH_SEED={seed})");
    let started = Instant::now();
    let setup = new_daemon_setup("").unwrap_or_else(|e| panic!("{e}"));
    let mut d = start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    let fx = load::setup(&d.base_url, &d.root_token, "load.test");
    let rec = Recorder::new(false);
    let mut rng = Rng::new(seed);
    let mut max_crl = 0u64;
    let mut restart_ms = Vec::new();
    for run in 0..runs {
        let fx_run = Fixture {
            base: d.base_url.clone(),
            ..fx.clone()
        };
        // Anywhere from just after the load starts to well into it.
        let kill_after = Duration::from_millis(100 + rng.below(1400));
        let stop = AtomicBool::new(false);
        let seeds: Vec<u64> = (0..THREADS).map(|_| rng.next_u64()).collect();
        std::thread::scope(|sc| {
            for s in &seeds {
                let (fx_run, stop, rec) = (&fx_run, &stop, &rec);
                sc.spawn(move || load::worker(fx_run, *s, stop, rec, false));
            }
            std::thread::sleep(kill_after);
            d.kill_hard();
            stop.store(true, Ordering::Relaxed);
        });
        drop(d);
        let t = Instant::now();
        d = start_daemon_on(&setup).unwrap_or_else(|e| {
            panic!(
                "run {run} (seed {seed}): the daemon did not start on its store after SIGKILL: {e}"
            )
        });
        restart_ms.push(t.elapsed().as_millis());
        check(&d, &fx, &rec, run, seed, &mut max_crl);
    }
    let unexpected = rec.unexpected.lock().unwrap();
    assert!(
        unexpected.is_empty(),
        "answers other than success before a kill (seed {seed}):\n{}",
        unexpected.join("\n")
    );
    let acks = rec.acks.lock().unwrap();
    restart_ms.sort_unstable();
    eprintln!(
        "crash_recovery: {runs} SIGKILLs survived in {:.0} s (seed {seed}): {} certificates, {} revocations, \
         {} CSRs acknowledged; highest CRL number {max_crl}; restart to healthy p50 {} ms, max {} ms",
        started.elapsed().as_secs_f64(),
        acks.certs.len(),
        acks.revoked.len(),
        acks.csrs.len(),
        restart_ms.get(restart_ms.len() / 2).copied().unwrap_or(0),
        restart_ms.last().copied().unwrap_or(0),
    );
}
