//! Soak: the daemon under a steady mixed load for a long time (10 minutes by default),
//! watched from outside.
//!
//! ```text
//! cargo bench --bench soak
//! cargo bench --bench soak -- --duration 600 --concurrency 8 --sample 5 --warmup 60
//! ```
//!
//! A fresh SoftHSM2 token and data dir, the release daemon binary, and the mix of
//! `tests/load` (issue, sign, revoke, CRL fetch and rebuild, the CSR workflow, reads)
//! from `--concurrency` client threads, each with one request in flight. Every
//! `--sample` seconds the daemon's RSS (`/proc/PID/status` VmRSS), threads, open file
//! descriptors (`/proc/PID/fd`) and token sessions (`GET /v1/sys/health`) are read.
//!
//! The report: a table per minute (requests, failures, p50/p99 latency, RSS, fds, threads,
//! sessions), latencies per operation, and the verdicts — no failures, RSS, fds and
//! sessions flat after the warm-up, p99 stable. Exit status 1 when a verdict fails.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "../tests/load/mod.rs"]
mod load;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Opts {
    duration: Duration,
    concurrency: usize,
    sample: Duration,
    warmup: Duration,
    seed: u64,
    out: Option<String>,
    /// Reads only, after a prefill: the stored data stops growing.
    read_only: bool,
}

const USAGE: &str = "\
usage: cargo bench --bench soak [-- OPTIONS]

  --duration SECS     how long the load runs (default 600)
  --concurrency N     client threads, one request in flight each (default 8)
  --sample SECS       how often RSS, fds, threads and sessions are read (default 5)
  --warmup SECS       the first part of the run, left out of the flatness verdicts (default 60)
  --seed N            the load's RNG seed (default: from the clock; printed)
  --out FILE          also write the Markdown report to FILE
  --mix mixed|read    the full mix (default), or reads only (get, list, CRL fetch) after
                      a 30 s prefill with the full mix, so the stored data stops growing
";

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        duration: Duration::from_secs(600),
        concurrency: 8,
        sample: Duration::from_secs(5),
        warmup: Duration::from_secs(60),
        seed: load::fresh_seed(),
        out: None,
        read_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("not a number: {v}"));
        match a.as_str() {
            "--duration" => o.duration = Duration::from_secs(num(val()?)?),
            "--concurrency" => o.concurrency = num(val()?)?.max(1) as usize,
            "--sample" => o.sample = Duration::from_secs(num(val()?)?.max(1)),
            "--warmup" => o.warmup = Duration::from_secs(num(val()?)?),
            "--seed" => o.seed = num(val()?)?,
            "--out" => o.out = Some(val()?),
            "--mix" => match val()?.as_str() {
                "mixed" => o.read_only = false,
                "read" => o.read_only = true,
                other => return Err(format!("--mix is mixed or read, not {other}")),
            },
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(o)
}

/// One reading of the daemon from outside.
#[derive(Clone, Copy, Debug, Default)]
struct Reading {
    at: Duration,
    rss_kb: u64,
    threads: u64,
    fds: u64,
    sessions_open: u64,
    sessions_idle: u64,
}

fn read_proc(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    (field("VmRSS:"), field("Threads:"), fds)
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

fn run(opts: &Opts) -> Result<bool, String> {
    let setup = common::new_daemon_setup("")?;
    let d = common::start_daemon_on(&setup)?;
    let pid = d.pid();
    let fx = load::setup(&d.base_url, &d.root_token, "load.test");
    eprintln!(
        "soak: daemon pid {pid}, {} s at concurrency {}, seed {}",
        opts.duration.as_secs(),
        opts.concurrency,
        opts.seed
    );

    let rec = load::Recorder::new(true);
    if opts.read_only {
        let stop = AtomicBool::new(false);
        std::thread::scope(|sc| {
            for i in 0..opts.concurrency {
                let (fx, stop, rec) = (&fx, &stop, &rec);
                sc.spawn(move || load::worker(fx, opts.seed ^ i as u64, stop, rec, false));
            }
            std::thread::sleep(Duration::from_secs(30));
            stop.store(true, Ordering::Relaxed);
        });
        rec.clear_samples();
        eprintln!("soak: prefilled; reads only from now on");
    }
    let mix: &[(load::Op, u64)] = if opts.read_only {
        &load::READ_MIX
    } else {
        &load::MIX
    };
    let readings: Mutex<Vec<Reading>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|sc| {
        let mut rng = load::Rng::new(opts.seed);
        for _ in 0..opts.concurrency {
            let seed = rng.next_u64();
            let (fx, stop, rec) = (&fx, &stop, &rec);
            sc.spawn(move || load::worker_with_mix(fx, seed, stop, rec, false, mix));
        }
        // The sampler.
        let (stop, readings, d) = (&stop, &readings, &d);
        sc.spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .no_proxy()
                .build()
                .expect("client");
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let (rss_kb, threads, fds) = read_proc(pid);
                let health: serde_json::Value = client
                    .get(d.url("/v1/sys/health"))
                    .send()
                    .and_then(|r| r.json())
                    .unwrap_or_default();
                let n = |k: &str| health["token"][k].as_u64().unwrap_or(0);
                readings.lock().unwrap().push(Reading {
                    at: started.elapsed(),
                    rss_kb,
                    threads,
                    fds,
                    sessions_open: n("sessions_open"),
                    sessions_idle: n("sessions_idle"),
                });
                next += opts.sample;
                while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        let end = started + opts.duration;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(200));
            let done = started.elapsed().as_secs();
            if done > 0 && done.is_multiple_of(60) {
                let n = rec.samples.lock().unwrap().len();
                eprint!("\rsoak: {done} s, {n} operations");
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!();

    let store_bytes = dir_size(&setup.data_dir);
    let samples = rec.samples.into_inner().unwrap();
    let readings = readings.into_inner().unwrap();
    let unexpected = rec.unexpected.into_inner().unwrap();
    let acks = rec.acks.into_inner().unwrap();
    let (report, ok) = report(opts, &samples, &readings, &unexpected, &acks, store_bytes);
    println!("{report}");
    if let Some(path) = &opts.out {
        std::fs::write(path, &report).map_err(|e| format!("write {path}: {e}"))?;
    }
    drop(d);
    Ok(ok)
}

fn dir_size(p: &std::path::Path) -> u64 {
    common::read_tree(p)
        .iter()
        .map(|(_, b)| b.len() as u64)
        .sum()
}

fn report(
    opts: &Opts,
    samples: &[load::Sample],
    readings: &[Reading],
    unexpected: &[String],
    acks: &load::Acks,
    store_bytes: u64,
) -> (String, bool) {
    let mut out = String::new();
    let minutes = opts.duration.as_secs().div_ceil(60).max(1);
    let _ = writeln!(
        out,
        "### Soak: {} s, {} client threads, {}, seed {}\n",
        opts.duration.as_secs(),
        opts.concurrency,
        if opts.read_only {
            "reads only"
        } else {
            "mixed load"
        },
        opts.seed
    );
    let _ = writeln!(
        out,
        "| minute | operations | ops/s | failed | no answer | p50 ms | p99 ms | RSS MiB | fds | threads | sessions open/idle |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    let mut p99s = Vec::new();
    for m in 0..minutes {
        let lo = Duration::from_secs(m * 60);
        let hi = Duration::from_secs((m + 1) * 60);
        let in_min: Vec<&load::Sample> =
            samples.iter().filter(|s| s.at >= lo && s.at < hi).collect();
        let mut lat: Vec<u32> = in_min.iter().filter(|s| s.ok).map(|s| s.micros).collect();
        lat.sort_unstable();
        let failed = in_min.iter().filter(|s| !s.ok && !s.no_answer).count();
        let no_answer = in_min.iter().filter(|s| s.no_answer).count();
        let last = readings
            .iter()
            .rev()
            .find(|r| r.at < hi)
            .copied()
            .unwrap_or_default();
        let secs = (hi.min(opts.duration) - lo).as_secs_f64().max(1.0);
        let p99 = load::percentile_ms(&lat, 99.0);
        if lo >= opts.warmup {
            p99s.push(p99);
        }
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {failed} | {no_answer} | {:.1} | {:.1} | {:.1} | {} | {} | {}/{} |",
            m + 1,
            in_min.len(),
            in_min.len() as f64 / secs,
            load::percentile_ms(&lat, 50.0),
            p99,
            last.rss_kb as f64 / 1024.0,
            last.fds,
            last.threads,
            last.sessions_open,
            last.sessions_idle,
        );
    }

    let _ = writeln!(out, "\n| operation | count | p50 ms | p99 ms | max ms |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    let mut by_op: BTreeMap<load::Op, Vec<u32>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.ok) {
        by_op.entry(s.op).or_default().push(s.micros);
    }
    for (op, mut v) in by_op {
        v.sort_unstable();
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            op.name(),
            v.len(),
            load::percentile_ms(&v, 50.0),
            load::percentile_ms(&v, 99.0),
            load::percentile_ms(&v, 100.0)
        );
    }

    // RSS curve, one point per 30 s.
    let _ = writeln!(out, "\nRSS curve (s: MiB):");
    let mut line = String::new();
    let mut next = Duration::ZERO;
    for r in readings {
        if r.at >= next {
            let _ = write!(line, " {}:{:.0}", r.at.as_secs(), r.rss_kb as f64 / 1024.0);
            next += Duration::from_secs(30);
        }
    }
    let _ = writeln!(out, "{}", line.trim_start());

    // Verdicts.
    let after: Vec<&Reading> = readings.iter().filter(|r| r.at >= opts.warmup).collect();
    let span = |f: fn(&Reading) -> u64| -> (u64, u64) {
        (
            after.iter().map(|r| f(r)).min().unwrap_or(0),
            after.iter().map(|r| f(r)).max().unwrap_or(0),
        )
    };
    let (rss_lo, rss_hi) = span(|r| r.rss_kb);
    let (fd_lo, fd_hi) = span(|r| r.fds);
    let (th_lo, th_hi) = span(|r| r.threads);
    let (so_lo, so_hi) = span(|r| r.sessions_open);
    let first_rss = after.first().map(|r| r.rss_kb).unwrap_or(0);
    let last_rss = after.last().map(|r| r.rss_kb).unwrap_or(0);
    let failed = samples.iter().filter(|s| !s.ok).count();
    let (p99_lo, p99_hi) = (
        p99s.iter().copied().fold(f64::INFINITY, f64::min),
        p99s.iter().copied().fold(0.0, f64::max),
    );
    // Flat: RSS within 20% (and 64 MiB) of its post-warm-up start, fds within 16,
    // sessions within the pool, p99 within 3x of its best minute.
    let rss_flat = rss_hi.saturating_sub(first_rss) <= (first_rss / 5).max(64 * 1024);
    let fds_flat = fd_hi - fd_lo <= 16;
    let sessions_flat = so_hi - so_lo <= 4;
    let p99_stable = p99s.is_empty() || p99_hi <= 3.0 * p99_lo.max(1.0);
    let no_failures = failed == 0 && unexpected.is_empty();
    let _ = writeln!(out, "\nAfter the {} s warm-up:", opts.warmup.as_secs());
    let verdict = |b: bool| if b { "ok" } else { "NOT OK" };
    let _ = writeln!(
        out,
        "- failures: {failed} (unexpected answers: {}) — {}",
        unexpected.len(),
        verdict(no_failures)
    );
    let _ = writeln!(
        out,
        "- RSS: {:.1} MiB at the end of warm-up, {:.1} at the end, range {:.1}–{:.1} MiB — {}",
        first_rss as f64 / 1024.0,
        last_rss as f64 / 1024.0,
        rss_lo as f64 / 1024.0,
        rss_hi as f64 / 1024.0,
        verdict(rss_flat)
    );
    let _ = writeln!(out, "- open fds: {fd_lo}–{fd_hi} — {}", verdict(fds_flat));
    let _ = writeln!(out, "- threads: {th_lo}–{th_hi}");
    let _ = writeln!(
        out,
        "- token sessions open: {so_lo}–{so_hi} — {}",
        verdict(sessions_flat)
    );
    let _ = writeln!(
        out,
        "- p99 per minute: {p99_lo:.1}–{p99_hi:.1} ms — {}",
        verdict(p99_stable)
    );
    let _ = writeln!(
        out,
        "- acknowledged: {} certificates, {} revocations, {} CSRs; store on disk {:.1} MiB",
        acks.certs.len(),
        acks.revoked.len(),
        acks.csrs.len(),
        store_bytes as f64 / (1024.0 * 1024.0)
    );
    for u in unexpected.iter().take(20) {
        let _ = writeln!(out, "  unexpected: {u}");
    }
    (
        out,
        no_failures && rss_flat && fds_flat && sessions_flat && p99_stable,
    )
}
