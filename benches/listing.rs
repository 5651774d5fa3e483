//! Listing at scale: `GET /v1/pki/certificates` with `expiring_within` (and `ca_id`) over
//! a store of a million certificates, against the same queries over a small store, in
//! one run.
//!
//! ```text
//! cargo bench --bench listing
//! cargo bench --bench listing -- --sizes 10000,1000000 --repeat 300
//! ```
//!
//! For each size: a fresh SoftHSM2 token and the release daemon; a root CA made over
//! HTTP; the daemon stopped; N certificate records written into its store with the
//! library's `Store::stage_cert` (the same record and index writes issuance makes, without
//! signing N certificates, which would take hours); the daemon started again; then each
//! query `--repeat` times, one at a time, timed end to end over HTTP. notAfter is spread
//! evenly over 400 days from now, so a 24h window holds about N/400 certificates and a
//! 30-day window N*30/400.
//!
//! "Stays fast" is read from the ratio of the large store's latencies to the small one's:
//! an index range scan costs the same at any size; a full scan grows with N.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "../tests/load/mod.rs"]
mod load;

use std::time::{Duration, Instant};

use scaivault_pki::keys::KeyType;
use scaivault_pki::store::{CertRecord, CertSource, Store};
use serde_json::Value;

const USAGE: &str = "\
usage: cargo bench --bench listing [-- OPTIONS]

  --sizes N,N,...   store sizes to compare, smallest first (default 10000,1000000)
  --repeat N        times each query is timed (default 200)
  --out FILE        also write the Markdown report to FILE
";

struct Opts {
    sizes: Vec<u64>,
    repeat: usize,
    out: Option<String>,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        sizes: vec![10_000, 1_000_000],
        repeat: 200,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--sizes" => {
                o.sizes = val()?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| format!("not a number: {s}")))
                    .collect::<Result<_, _>>()?
            }
            "--repeat" => {
                o.repeat = val()?.parse().map_err(|_| "--repeat needs a number")?;
            }
            "--out" => o.out = Some(val()?),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if o.sizes.is_empty() || o.repeat == 0 {
        return Err(USAGE.into());
    }
    Ok(o)
}

/// One query's timings at one store size.
struct Timing {
    query: String,
    rows: usize,
    p50_ms: f64,
    p99_ms: f64,
}

struct SizeResult {
    size: u64,
    fill_secs: f64,
    store_mib: f64,
    timings: Vec<Timing>,
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut results = Vec::new();
    for &n in &opts.sizes {
        match run_size(n, opts.repeat) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("listing bench, {n} certificates: {e}");
                std::process::exit(1);
            }
        }
    }
    let report = report(&results, opts.repeat);
    println!("{report}");
    if let Some(path) = &opts.out {
        if let Err(e) = std::fs::write(path, &report) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}

fn run_size(n: u64, repeat: usize) -> Result<SizeResult, String> {
    eprintln!("[listing] {n} certificates: fresh token and daemon");
    let setup = common::new_daemon_setup("")?;
    let d = common::start_daemon_on(&setup)?;
    let ca = d.create_root(
        &common::unique_name("list-root"),
        serde_json::json!({"key_type": "ec"}),
    );
    let ca_id = ca["id"]
        .as_str()
        .ok_or("the root CA has no id")?
        .to_string();
    let status = d.stop_gracefully();
    if !status.success() {
        return Err(format!("the daemon did not stop cleanly: {status}"));
    }
    drop(d);

    eprintln!("[listing] writing {n} records into the store");
    let started = Instant::now();
    let store_dir = setup.data_dir.join("store");
    let store = Store::open_with_cache(&store_dir, Some(64 << 20)).map_err(|e| e.to_string())?;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .map_err(|e| e.to_string())?;
    let span = 400 * 86_400;
    // A fixed seed: every run stores the same spread of expiry times.
    let mut rng = load::Rng::new(0x5CA1_AB1E);
    // About the size of a P-256 leaf's DER: what each record carries.
    let der: Vec<u8> = (0..620u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut ticket = None;
    for i in 0..n {
        let serial = format!("{:016x}{:016x}", rng.next_u64() >> 1, rng.next_u64());
        let cn = format!("svc-{i}.bench.internal");
        let mut rec = CertRecord {
            id: format!("cert_{:016x}{:016x}", rng.next_u64(), i),
            tenant: "default".into(),
            seq: 0,
            issuer_ca_id: Some(ca_id.clone()),
            role: Some("bench".into()),
            source: CertSource::Issued,
            common_name: cn.clone(),
            san_dns: vec![cn],
            san_ip: vec![],
            san_uri: vec![],
            serial_hex: serial,
            not_before: now,
            not_after: now + time::Duration::seconds(60 + rng.below(span) as i64),
            key_type: Some(KeyType::Ec),
            key_bits: Some(256),
            certificate_der: der.clone(),
            chain_pem: None,
            sealed_key: None,
            revocation: None,
            requested_by: "tok_bench".into(),
            created_at: now,
            token_key_label: None,
            token_key_id: vec![],
            csr_id: None,
        };
        ticket = Some(store.stage_cert(&mut rec).map_err(|e| e.to_string())?);
        if i % 50_000 == 49_999 {
            if let Some(t) = ticket.take() {
                store.wait_durable(t).map_err(|e| e.to_string())?;
            }
            eprintln!(
                "[listing]   {} written, {:.0} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(t) = ticket {
        store.wait_durable(t).map_err(|e| e.to_string())?;
    }
    drop(store);
    let fill_secs = started.elapsed().as_secs_f64();
    let store_mib = dir_size(&store_dir) as f64 / (1 << 20) as f64;

    eprintln!("[listing] restarting the daemon on the filled store");
    let d = common::start_daemon_on(&setup)?;
    let mut timings = Vec::new();
    // Windows wide enough that every answer is full at 10,000 certificates too, so the
    // sizes compare like with like.
    let queries = [
        ("limit=100 (no filter)".to_string(), "limit=100".to_string()),
        (
            "expiring_within=7d&limit=100".to_string(),
            "expiring_within=7d&limit=100".to_string(),
        ),
        (
            "expiring_within=30d&limit=100".to_string(),
            "expiring_within=30d&limit=100".to_string(),
        ),
        (
            "ca_id=…&expiring_within=30d&limit=100".to_string(),
            format!("ca_id={ca_id}&expiring_within=30d&limit=100"),
        ),
        (
            "expiring_within=90d&limit=1000".to_string(),
            "expiring_within=90d&limit=1000".to_string(),
        ),
    ];
    for (label, q) in &queries {
        timings.push(time_query(&d, label, q, repeat)?);
    }
    // A page deep inside a window: follow the cursor 50 pages in, then time that page.
    let mut cursor = String::new();
    for _ in 0..50 {
        let (_, v) = d.get(&format!(
            "/v1/pki/certificates?expiring_within=400d&limit=100{cursor}"
        ));
        match v["cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    timings.push(time_query(
        &d,
        "expiring_within=400d&limit=100, the 51st page (cursor)",
        &format!("expiring_within=400d&limit=100{cursor}"),
        repeat,
    )?);
    // The whole 24h window, every page of 1000.
    let mut whole = Vec::with_capacity(repeat.min(20));
    let mut rows = 0;
    for _ in 0..repeat.min(20) {
        let t = Instant::now();
        let mut cursor = String::new();
        rows = 0;
        loop {
            let (st, v) = d.get(&format!(
                "/v1/pki/certificates?expiring_within=24h&limit=1000{cursor}"
            ));
            if st != 200 {
                return Err(format!("paging the 24h window -> {st} {v}"));
            }
            rows += v["data"].as_array().map_or(0, Vec::len);
            match v["cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        whole.push(t.elapsed());
    }
    // This one grows with the store by design (N/400 rows): read it per row.
    timings.push(summarize(
        "expiring_within=24h, every page of 1000 (all N/400 rows)".into(),
        rows,
        whole,
    ));
    let status = d.stop_gracefully();
    if !status.success() {
        return Err(format!("the daemon did not stop cleanly: {status}"));
    }
    Ok(SizeResult {
        size: n,
        fill_secs,
        store_mib,
        timings,
    })
}

fn time_query(
    d: &common::Daemon,
    label: &str,
    query: &str,
    repeat: usize,
) -> Result<Timing, String> {
    let path = format!("/v1/pki/certificates?{query}");
    // Warm the page cache and the connection first; latencies are for the steady state.
    let (st, v) = d.get(&path);
    if st != 200 {
        return Err(format!("GET {path} -> {st} {v}"));
    }
    let rows = v["data"].as_array().map_or(0, Vec::len);
    let mut samples = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        let (st, v): (u16, Value) = d.get(&path);
        samples.push(t.elapsed());
        if st != 200 {
            return Err(format!("GET {path} -> {st} {v}"));
        }
    }
    Ok(summarize(label.to_string(), rows, samples))
}

fn summarize(query: String, rows: usize, mut samples: Vec<Duration>) -> Timing {
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e3
    };
    Timing {
        query,
        rows,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn report(results: &[SizeResult], repeat: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "### Listing: `GET /v1/pki/certificates` by store size\n");
    for r in results {
        let _ = writeln!(
            s,
            "- {} certificates: written in {:.0} s, store {:.0} MiB on disk",
            r.size, r.fill_secs, r.store_mib
        );
    }
    let _ = writeln!(
        s,
        "\nEach query {repeat} times, one at a time over HTTP (the whole-window walk at most 20 times); \
         p50 / p99 in ms, rows = rows in the answer.\n"
    );
    let _ = write!(s, "| query |");
    for r in results {
        let _ = write!(s, " {} rows | p50 | p99 |", r.size);
    }
    if results.len() > 1 {
        let _ = write!(s, " p50 largest / smallest |");
    }
    let _ = writeln!(s);
    let _ = write!(s, "|---|");
    for _ in results {
        let _ = write!(s, "---:|---:|---:|");
    }
    if results.len() > 1 {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s);
    for (i, t) in results[0].timings.iter().enumerate() {
        let _ = write!(s, "| `{}` |", t.query);
        for r in results {
            let x = &r.timings[i];
            let _ = write!(s, " {} | {:.2} | {:.2} |", x.rows, x.p50_ms, x.p99_ms);
        }
        if let (Some(first), Some(last)) = (results.first(), results.last()) {
            if results.len() > 1 {
                let _ = write!(
                    s,
                    " {:.2} |",
                    last.timings[i].p50_ms / first.timings[i].p50_ms.max(1e-9)
                );
            }
        }
        let _ = writeln!(s);
    }
    s
}
