//! Building and signing a CRL of 1,000,000 revoked entries, against `openssl ca -gencrl`.
//!
//! Run:
//!
//! ```text
//! cargo bench --bench crl
//! cargo bench --bench crl -- --entries 1000000 --variants ec,rsa --builds 3
//! cargo bench --bench crl -- --help
//! ```
//!
//! What it does, all on this machine and in this one run:
//!
//! * A throw-away SoftHSM2 token in a temporary directory.
//! * Load (this process): per variant (`ec`: P-256 root and intermediate; `rsa`: RSA-2048
//!   root and intermediate) a fresh store, the two CAs (keys in the token), a role on the
//!   intermediate, and N revocation-index entries under the intermediate through
//!   `Store::bulk_load_revoked`: 16-byte positive random serials, revocation times spread
//!   over the last year, mixed reasons (55 % unspecified, so no reasonCode). Then the store
//!   is closed.
//! * Scan (a fresh child process): open the store and scan the index twice, to show what a
//!   cold store costs a first build.
//! * Build (a fresh child process, this binary re-executed, so its peak RSS is the build's
//!   own): open store and token, then `Pki::rebuild_crl(intermediate)` end to end (index
//!   scan, DER encoding, hash, token signature, software verification, atomic write with
//!   fsync, the empty delta CRL that follows) — `--builds` times; wall time, CPU time and
//!   VmHWM (peak RSS, reset between builds through /proc/self/clear_refs) of each. Then a
//!   breakdown of one build into its parts, timed one by one.
//! * Responsiveness (same child): leaf issuance (`Pki::issue`, P-256 leaf key made in
//!   process, signed in the token, stored and flushed) in a loop on one thread, first with
//!   nothing else running, then while a rebuild runs on another thread; p50/p99/max.
//! * Checks (this process): `openssl crl` counts the entries of our CRL and verifies its
//!   signature against the CA certificate.
//! * Baseline: `openssl ca -gencrl` on an index.txt holding the same N serials, times and
//!   reasons, with a P-256 CA key in a file; wall time and peak RSS (getrusage of the child).
//!
//! External programs: `softhsm2-util`, `openssl`.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use scaivault_pki::ca::crl::RevokedList;
use scaivault_pki::hsm::{Pin, Token, TokenConfig};
use scaivault_pki::service::crl::CrlSettings;
use scaivault_pki::service::{Pki, Principal, Settings};
use scaivault_pki::store::{RevokedEntry, Store};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const DEFAULT_SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN_LABEL: &str = "scaivault-crl-bench";
const PIN_ENV: &str = "SCAIVAULT_CRL_BENCH_PIN";
const ROLE: &str = "bench";
const LEAF_CN: &str = "svc.bench.internal";
const RESULT_PREFIX: &str = "CRLBENCH-RESULT ";
const DAY: i64 = 86_400;

// ------------------------------------------------------------------ options

struct Opts {
    entries: u64,
    variants: Vec<Variant>,
    builds: usize,
    resp_rounds: usize,
    baseline: bool,
    check: bool,
    seed: u64,
    keep: bool,
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Variant {
    Ec,
    Rsa,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Ec => "ec",
            Variant::Rsa => "rsa",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Ec => "P-256 CA",
            Variant::Rsa => "RSA-2048 CA",
        }
    }

    fn key(self) -> (&'static str, u32) {
        match self {
            Variant::Ec => ("ec", 256),
            Variant::Rsa => ("rsa", 2048),
        }
    }
}

const USAGE: &str = "\
usage: cargo bench --bench crl [-- OPTIONS]

  --entries N          revoked entries under the intermediate CA (default 1000000)
  --variants LIST      CA key types, comma-separated: ec (P-256), rsa (RSA-2048)
                       (default ec,rsa)
  --builds N           rebuilds timed in the fresh build process (default 3)
  --resp-rounds N      rounds of (issuance alone, issuance during a rebuild) (default 2;
                       0 skips the responsiveness test)
  --no-baseline        skip `openssl ca -gencrl`
  --no-check           skip the openssl entry count and signature check of our CRL
  --seed N             seed of the generated serials, times and reasons (default fixed)
  --keep               keep the temporary directory (token, stores, CRLs, the token PIN
                       in `pin`); rerun a build by hand with
                       SOFTHSM2_CONF=DIR/softhsm2.conf SCAIVAULT_CRL_BENCH_PIN=$(cat DIR/pin)
                       target/release/deps/crl-* --phase build DIR/ec/job.json
  --out FILE           also write the Markdown report to FILE
";

fn parse_opts(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        entries: 1_000_000,
        variants: vec![Variant::Ec, Variant::Rsa],
        builds: 3,
        resp_rounds: 2,
        baseline: true,
        check: true,
        seed: 0x5ca1_7a01_c41b_e4c4,
        keep: false,
        out: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--entries" => o.entries = val()?.replace(['_', ','], "").parse()?,
            "--variants" => {
                o.variants = val()?
                    .split(',')
                    .map(|v| match v.trim() {
                        "ec" => Ok(Variant::Ec),
                        "rsa" => Ok(Variant::Rsa),
                        other => Err(format!("unknown variant {other:?} (ec, rsa)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--builds" => o.builds = val()?.parse()?,
            "--resp-rounds" => o.resp_rounds = val()?.parse()?,
            "--no-baseline" => o.baseline = false,
            "--no-check" => o.check = false,
            "--seed" => o.seed = val()?.parse()?,
            "--keep" => o.keep = true,
            "--out" => o.out = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?}\n{USAGE}").into()),
        }
    }
    if o.builds == 0 {
        return Err("--builds must be at least 1".into());
    }
    Ok(o)
}

// ------------------------------------------------------------------ main

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("--phase") => match args.get(1).map(String::as_str) {
            Some("build") => args
                .get(2)
                .ok_or_else(|| "--phase build JOB_FILE".into())
                .and_then(|job| build_phase(Path::new(job))),
            Some("scan") => args
                .get(2)
                .ok_or_else(|| "--phase scan JOB_FILE".into())
                .and_then(|job| scan_phase(Path::new(job))),
            Some("rusage") => rusage_phase(&args[2..]),
            _ => Err("unknown phase".into()),
        },
        _ => parse_opts(&args).and_then(|o| run(&o)),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crl bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[crl bench] {}", msg.as_ref());
}

// ------------------------------------------------------------------ generated entries

/// splitmix64: fast, seedable, good enough to stand in for a CSPRNG's serials.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Reason mix (CRLReason codes): mostly unspecified (no reasonCode extension) and
/// superseded, some key compromise. All are reasons `openssl ca` knows by name.
fn reason_of(r: u64) -> u8 {
    match r % 100 {
        0..=54 => 0,  // unspecified
        55..=64 => 1, // keyCompromise
        65..=69 => 3, // affiliationChanged
        70..=94 => 4, // superseded
        95..=98 => 5, // cessationOfOperation
        _ => 6,       // certificateHold
    }
}

fn openssl_reason(code: u8) -> Option<&'static str> {
    match code {
        1 => Some("keyCompromise"),
        3 => Some("affiliationChanged"),
        4 => Some("superseded"),
        5 => Some("cessationOfOperation"),
        6 => Some("certificateHold"),
        _ => None,
    }
}

/// The same N entries every time for one seed: serials like `Serial::random()` makes
/// them (16 octets, top bit clear, first octet non-zero), times over the last 365 days.
fn entries(seed: u64, n: u64, now: i64) -> impl Iterator<Item = RevokedEntry> {
    let mut rng = Rng(seed);
    (0..n).map(move |i| {
        let mut serial = Vec::with_capacity(16);
        serial.extend_from_slice(&rng.next().to_be_bytes());
        serial.extend_from_slice(&rng.next().to_be_bytes());
        serial[0] &= 0x7f;
        if serial[0] == 0 {
            serial[0] = 1;
        }
        let r = rng.next();
        RevokedEntry {
            serial,
            revoked_at: now - 60 - (r >> 8) as i64 % (365 * DAY),
            reason: reason_of(r & 0xff),
            rev_seq: i + 1,
        }
    })
}

// ------------------------------------------------------------------ the token

struct Hsm {
    conf: PathBuf,
    module: PathBuf,
    pin: String,
}

fn make_token(dir: &Path) -> Result<Hsm> {
    let module = PathBuf::from(
        std::env::var("SCAIVAULT_SOFTHSM_MODULE").unwrap_or_else(|_| DEFAULT_SOFTHSM_MODULE.into()),
    );
    if !module.exists() {
        return Err(format!(
            "SoftHSM2 module {} not found: apt-get install -y softhsm2 \
             or set SCAIVAULT_SOFTHSM_MODULE",
            module.display()
        )
        .into());
    }
    let tokens = dir.join("tokens");
    fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )?;
    let mut pin_bytes = [0u8; 8];
    getrandom::fill(&mut pin_bytes).map_err(|e| e.to_string())?;
    let pin = hex::encode(pin_bytes);
    let mut so = [0u8; 8];
    getrandom::fill(&mut so).map_err(|e| e.to_string())?;
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", TOKEN_LABEL, "--pin"])
        .arg(&pin)
        .arg("--so-pin")
        .arg(hex::encode(so))
        .output()
        .map_err(|e| format!("softhsm2-util: {e} (apt-get install -y softhsm2)"))?;
    if !out.status.success() {
        return Err(format!(
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(Hsm { conf, module, pin })
}

fn open_pki(store_dir: &Path, data_dir: &Path, module: &Path, pin: &str) -> Result<(Store, Pki)> {
    let store = Store::open(store_dir)?;
    let token = Token::open(TokenConfig {
        module: module.to_path_buf(),
        token_label: TOKEN_LABEL.into(),
        pin: Pin::new(pin.to_string()),
        pool_size: 4,
    })?;
    let pki = Pki::new(
        store.clone(),
        Arc::new(token),
        Settings {
            data_dir: data_dir.to_path_buf(),
            public_base_url: None,
            crl: CrlSettings::default(),
            four_eyes: false,
            limits: Default::default(),
            audit: Default::default(),
        },
    );
    Ok((store, pki))
}

fn principal() -> Principal {
    Principal {
        token_id: "tok_bench".into(),
        tenant: "default".into(),
        capabilities: vec![],
        expires_at: None,
        party: "tok_bench".into(),
    }
}

// ------------------------------------------------------------------ load phase

/// What the build child needs; written as JSON next to the store.
#[derive(Serialize, Deserialize)]
struct Job {
    variant: Variant,
    dir: PathBuf,
    store: PathBuf,
    module: PathBuf,
    ca_id: String,
    entries: u64,
    builds: usize,
    resp_rounds: usize,
    crl_out: PathBuf,
}

struct Loaded {
    job: Job,
    job_file: PathBuf,
    ca_pem: PathBuf,
    load_secs: f64,
}

fn load_phase(o: &Opts, hsm: &Hsm, root: &Path, variant: Variant, now: i64) -> Result<Loaded> {
    let dir = root.join(variant.name());
    let store_dir = dir.join("store");
    fs::create_dir_all(&dir)?;
    let (store, pki) = open_pki(&store_dir, &dir, &hsm.module, &hsm.pin)?;
    let p = principal();
    let (kt, ks) = variant.key();
    let ca = |body: serde_json::Value| -> Result<scaivault_pki::store::CaRecord> {
        Ok(pki.create_ca(&p, serde_json::from_value(body)?)?)
    };
    let root_ca = ca(json!({
        "name": format!("bench-root-{}", variant.name()),
        "common_name": format!("Bench Root {}", variant.label()),
        "ca_type": "root", "key_type": kt, "key_size": ks,
    }))?;
    let int_ca = ca(json!({
        "name": format!("bench-int-{}", variant.name()),
        "common_name": format!("Bench Intermediate {}", variant.label()),
        "ca_type": "intermediate", "parent_ca_id": root_ca.id, "key_type": kt, "key_size": ks,
    }))?;
    pki.create_role(
        &p,
        serde_json::from_value(json!({
            "name": ROLE, "ca_id": int_ca.id,
            "allowed_domains": ["bench.internal"], "allow_subdomains": true,
            "key_type": "ec", "key_bits": 256, "max_ttl": "720h",
        }))?,
    )?;
    let ca_pem = dir.join("ca.pem");
    fs::write(
        &ca_pem,
        [
            scaivault_pki::ca::pem("CERTIFICATE", &int_ca.certificate_der)?,
            scaivault_pki::ca::pem("CERTIFICATE", &root_ca.certificate_der)?,
        ]
        .concat(),
    )?;

    log(format!(
        "{}: loading {} revoked entries under {}",
        variant.name(),
        o.entries,
        int_ca.id
    ));
    let t = Instant::now();
    let n = store.bulk_load_revoked(&int_ca.id, entries(o.seed, o.entries, now))?;
    let load_secs = t.elapsed().as_secs_f64();
    if n != o.entries {
        return Err(format!("bulk_load_revoked loaded {n} of {}", o.entries).into());
    }
    log(format!("{}: loaded in {load_secs:.1} s", variant.name()));
    drop(store);
    pki.flush()?;
    drop(pki);

    let job = Job {
        variant,
        dir: dir.clone(),
        store: store_dir,
        module: hsm.module.clone(),
        ca_id: int_ca.id,
        entries: o.entries,
        builds: o.builds,
        resp_rounds: o.resp_rounds,
        crl_out: dir.join("crl.der"),
    };
    let job_file = dir.join("job.json");
    fs::write(&job_file, serde_json::to_vec_pretty(&job)?)?;
    Ok(Loaded {
        job,
        job_file,
        ca_pem,
        load_secs,
    })
}

// ------------------------------------------------------------------ build phase (child)

#[derive(Serialize, Deserialize, Clone, Default)]
struct BuildRun {
    wall_s: f64,
    cpu_s: f64,
    /// VmHWM after the build; for build 1 the peak of the whole process so far.
    hwm_mib: f64,
    rss_before_mib: f64,
    rss_after_mib: f64,
    /// CPU cores other processes kept busy during the build (machine-wide, /proc/stat).
    others_cores: f64,
    crl_number: u64,
    entries: u64,
    size: u64,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Breakdown {
    scan_s: f64,
    scan_encode_s: f64,
    encode_push_s: f64,
    encode_ref_s: f64,
    ref_matches: bool,
    sha256_s: f64,
    verify_s: f64,
    write_fsync_s: f64,
    flush_s: f64,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Latencies {
    /// Milliseconds, sorted.
    ms: Vec<f64>,
}

impl Latencies {
    fn pct(&self, p: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let i = ((self.ms.len() - 1) as f64 * p).round() as usize;
        self.ms[i]
    }

    fn max(&self) -> f64 {
        self.ms.last().copied().unwrap_or(f64::NAN)
    }
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Responsiveness {
    idle: Latencies,
    idle_secs: f64,
    during: Latencies,
    during_secs: f64,
    /// Wall time of each rebuild that ran alongside issuance.
    build_under_load_s: Vec<f64>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct ChildReport {
    rss_start_mib: f64,
    rss_opened_mib: f64,
    open_s: f64,
    builds: Vec<BuildRun>,
    peak_build_mib: f64,
    breakdown: Breakdown,
    resp: Option<Responsiveness>,
}

fn proc_status_kib(field: &str) -> f64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l[field.len()..].split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

fn rss_mib() -> f64 {
    proc_status_kib("VmRSS:") / 1024.0
}

fn hwm_mib() -> f64 {
    proc_status_kib("VmHWM:") / 1024.0
}

/// Reset VmHWM to the current RSS (Linux: "5" to /proc/PID/clear_refs).
fn reset_hwm() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Machine-wide (busy, total) jiffies from /proc/stat.
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

fn others_cores(a: Option<(u64, u64)>, b: Option<(u64, u64)>, own_cpu: f64, wall: f64) -> f64 {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    match (a, b) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 && wall > 0.0 => {
            let busy = (b1 - b0) as f64 / (t1 - t0) as f64 * ncpu;
            (busy - own_cpu / wall).max(0.0)
        }
        _ => f64::NAN,
    }
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Split a signed structure `SEQUENCE { tbs, algorithm, BIT STRING }` into the tbs bytes
/// (with their header) and the signature octets, without decoding the million entries.
fn split_signed(der: &[u8]) -> Result<(&[u8], &[u8])> {
    let (h, _) = tlv_header(der)?;
    let body = &der[h..];
    let (th, tl) = tlv_header(body)?;
    let tbs = &body[..th + tl];
    let rest = &body[th + tl..];
    let (ah, al) = tlv_header(rest)?;
    let bits = &rest[ah + al..];
    let (bh, bl) = tlv_header(bits)?;
    // Skip the unused-bits octet.
    Ok((tbs, &bits[bh + 1..bh + bl]))
}

/// DER header of the TLV at the start of `b`: (header length, content length).
fn tlv_header(b: &[u8]) -> Result<(usize, usize)> {
    let first = *b.get(1).ok_or("truncated DER")?;
    if first < 0x80 {
        return Ok((2, first as usize));
    }
    let n = (first & 0x7f) as usize;
    let len = b
        .get(2..2 + n)
        .ok_or("truncated DER")?
        .iter()
        .fold(0usize, |a, x| (a << 8) | *x as usize);
    Ok((2 + n, len))
}

/// The content of revokedCertificates in a CRL (version, signature, issuer, thisUpdate,
/// nextUpdate come first in the TBS).
fn revoked_list_of(der: &[u8]) -> Result<&[u8]> {
    let (tbs, _) = split_signed(der)?;
    let (h, _) = tlv_header(tbs)?;
    let mut rest = &tbs[h..];
    for _ in 0..5 {
        let (h, l) = tlv_header(rest)?;
        rest = &rest[h + l..];
    }
    let (h, l) = tlv_header(rest)?;
    Ok(&rest[h..h + l])
}

/// One revokedCertificates entry with no heap allocation: what `RevokedList::push`
/// writes (serial, UTCTime or GeneralizedTime, reasonCode unless unspecified).
fn encode_entry(out: &mut Vec<u8>, serial: &[u8], at: i64, reason: u8) {
    const REASON_EXT: &[u8] = &[
        0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01,
    ];
    let t =
        time::OffsetDateTime::from_unix_timestamp(at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let y = t.year();
    let utc = (1950..2050).contains(&y);
    let mut time = [0u8; 17];
    time[0] = if utc { 0x17 } else { 0x18 };
    time[1] = if utc { 13 } else { 15 };
    let mut i = 2;
    let mut digits = |v: u32| {
        time[i] = b'0' + (v / 10 % 10) as u8;
        time[i + 1] = b'0' + (v % 10) as u8;
        i += 2;
    };
    if !utc {
        digits(y as u32 / 100);
    }
    digits(y as u32 % 100);
    for v in [
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    ] {
        digits(u32::from(v));
    }
    time[i] = b'Z';
    let time = &time[..i + 1];
    let ext_len = if reason != 0 { REASON_EXT.len() + 1 } else { 0 };
    let content = 2 + serial.len() + time.len() + ext_len;
    debug_assert!(content < 0x80);
    out.push(0x30);
    out.push(content as u8);
    out.push(0x02);
    out.push(serial.len() as u8);
    out.extend_from_slice(serial);
    out.extend_from_slice(time);
    if reason != 0 {
        out.extend_from_slice(REASON_EXT);
        out.push(reason);
    }
}

fn build_phase(job_file: &Path) -> Result<()> {
    let rss_start = rss_mib();
    let job: Job = serde_json::from_slice(&fs::read(job_file)?)?;
    let pin = std::env::var(PIN_ENV).map_err(|_| format!("{PIN_ENV} is not set"))?;
    let t = Instant::now();
    let (store, pki) = open_pki(&job.store, &job.dir, &job.module, &pin)?;
    let open_s = t.elapsed().as_secs_f64();
    let mut rep = ChildReport {
        rss_start_mib: rss_start,
        rss_opened_mib: rss_mib(),
        open_s,
        ..Default::default()
    };

    for i in 0..job.builds {
        // Build 1: VmHWM covers the whole process (open + build). Later builds: reset,
        // so VmHWM is that build's own peak.
        if i > 0 && !reset_hwm() {
            log("cannot reset VmHWM; later builds report the process peak");
        }
        let rss_before = rss_mib();
        let cpu0 = cpu_secs();
        let stat0 = machine_jiffies();
        let t = Instant::now();
        let meta = pki.rebuild_crl(&job.ca_id)?;
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu0;
        let run = BuildRun {
            wall_s: wall,
            cpu_s: cpu,
            others_cores: others_cores(stat0, machine_jiffies(), cpu, wall),
            hwm_mib: hwm_mib(),
            rss_before_mib: rss_before,
            rss_after_mib: rss_mib(),
            crl_number: meta.number,
            entries: meta.entries,
            size: meta.size,
        };
        log(format!(
            "{} build {}: {:.3} s wall, {:.3} s CPU, peak RSS {:.0} MiB, {} entries, {} bytes",
            job.variant.name(),
            i + 1,
            run.wall_s,
            run.cpu_s,
            run.hwm_mib,
            run.entries,
            run.size
        ));
        if meta.entries != job.entries {
            return Err(
                format!("CRL has {} entries, expected {}", meta.entries, job.entries).into(),
            );
        }
        rep.builds.push(run);
    }
    rep.peak_build_mib = rep.builds.iter().map(|b| b.hwm_mib).fold(0.0, f64::max);

    let crl = pki.published_crl(&job.ca_id, false)?;
    fs::write(&job.crl_out, &crl.der)?;
    rep.breakdown = breakdown(&pki, &store, &job, &crl.der)?;
    drop(crl);

    if job.resp_rounds > 0 {
        rep.resp = Some(responsiveness(&pki, &job)?);
    }
    println!("{RESULT_PREFIX}{}", serde_json::to_string(&rep)?);
    Ok(())
}

/// The parts of one rebuild, timed one by one with the crate's own pieces.
fn breakdown(pki: &Pki, store: &Store, job: &Job, der: &[u8]) -> Result<Breakdown> {
    let mut b = Breakdown::default();
    let ca = pki.ca_public(&job.ca_id)?;

    let t = Instant::now();
    let mut n = 0u64;
    store.for_each_revoked(&job.ca_id, |_| {
        n += 1;
        Ok(())
    })?;
    b.scan_s = t.elapsed().as_secs_f64();

    // What rebuild_crl does: scan and encode in one pass.
    let t = Instant::now();
    let mut list = RevokedList::default();
    store.for_each_revoked(&job.ca_id, |e| {
        let at = time::OffsetDateTime::from_unix_timestamp(e.revoked_at)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        list.push(&e.serial, at, e.reason);
        Ok(())
    })?;
    b.scan_encode_s = t.elapsed().as_secs_f64();
    if list.len() != n {
        return Err("the two scans disagree".into());
    }
    drop(list);

    // Encoding alone, over entries read beforehand: the crate's RevokedList::push, and
    // an allocation-free encoder of the same bytes for reference.
    let mut all = Vec::with_capacity(n as usize);
    store.for_each_revoked(&job.ca_id, |e| {
        all.push(e.clone());
        Ok(())
    })?;
    let t = Instant::now();
    let mut list = RevokedList::default();
    for e in &all {
        let at = time::OffsetDateTime::from_unix_timestamp(e.revoked_at)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        list.push(&e.serial, at, e.reason);
    }
    b.encode_push_s = t.elapsed().as_secs_f64();
    drop(list);
    let t = Instant::now();
    let mut reference = Vec::new();
    for e in &all {
        encode_entry(&mut reference, &e.serial, e.revoked_at, e.reason);
    }
    b.encode_ref_s = t.elapsed().as_secs_f64();
    drop(all);
    // The reference must write exactly the published CRL's list, or it proves nothing.
    b.ref_matches = revoked_list_of(der)? == reference.as_slice();
    drop(reference);

    let t = Instant::now();
    store.flush()?;
    b.flush_s = t.elapsed().as_secs_f64();

    let (tbs, sig) = split_signed(der)?;
    let alg = ca.key_spec.signature_algorithm();
    let t = Instant::now();
    let digest = scaivault_pki::ca::digest(alg, tbs);
    b.sha256_s = t.elapsed().as_secs_f64();
    std::hint::black_box(digest);

    let cert = x509_cert::Certificate::from_der(&ca.certificate_der)?;
    let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
    let t = Instant::now();
    scaivault_pki::ca::verify::verify_signature(&spki, alg, tbs, sig)
        .map_err(|e| format!("our CRL's signature does not verify: {e}"))?;
    b.verify_s = t.elapsed().as_secs_f64();

    let tmp = job.dir.join("write-test.tmp");
    let target = job.dir.join("write-test.crl");
    let t = Instant::now();
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(der)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &target)?;
    fs::File::open(&job.dir)?.sync_all()?;
    b.write_fsync_s = t.elapsed().as_secs_f64();
    fs::remove_file(&target)?;
    Ok(b)
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct ScanReport {
    open_s: f64,
    cold_s: f64,
    warm_s: f64,
    rss_mib: f64,
}

/// A fresh process that only opens the store and scans the index twice: how much of a
/// first build is the store warming its cache.
fn scan_phase(job_file: &Path) -> Result<()> {
    let job: Job = serde_json::from_slice(&fs::read(job_file)?)?;
    let t = Instant::now();
    let store = Store::open(&job.store)?;
    let open_s = t.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        let n = store.for_each_revoked(&job.ca_id, |_| Ok(()))?;
        times.push(t.elapsed().as_secs_f64());
        if n != job.entries {
            return Err(format!("scan saw {n} entries, expected {}", job.entries).into());
        }
    }
    let r = ScanReport {
        open_s,
        cold_s: times[0],
        warm_s: times[1],
        rss_mib: rss_mib(),
    };
    println!("{RESULT_PREFIX}{}", serde_json::to_string(&r)?);
    Ok(())
}

fn issue_once(pki: &Pki, p: &Principal) -> Result<f64> {
    let req = serde_json::from_value(json!({"common_name": LEAF_CN, "ttl": "24h"}))?;
    let t = Instant::now();
    // Durable before it counts, as over HTTP.
    let issued = pki.make_durable(pki.issue(p, ROLE, req)?)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(issued);
    Ok(ms)
}

fn responsiveness(pki: &Pki, job: &Job) -> Result<Responsiveness> {
    let p = principal();
    for _ in 0..20 {
        issue_once(pki, &p)?;
    }
    let mut r = Responsiveness::default();
    for round in 0..job.resp_rounds {
        // Idle window as long as the last build, at least 2 s.
        let window =
            Duration::from_secs_f64(r.build_under_load_s.last().copied().unwrap_or(2.0).max(2.0));
        let idle_before = r.idle.ms.len();
        let t = Instant::now();
        while t.elapsed() < window {
            r.idle.ms.push(issue_once(pki, &p)?);
        }
        r.idle_secs += t.elapsed().as_secs_f64();
        let idle_n = r.idle.ms.len() - idle_before;

        let done = AtomicBool::new(false);
        let t = Instant::now();
        let (build, lat) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let t = Instant::now();
                let res = pki.rebuild_crl(&job.ca_id);
                done.store(true, Ordering::Release);
                res.map(|_| t.elapsed().as_secs_f64())
            });
            let mut lat = Vec::new();
            let mut err = None;
            while !done.load(Ordering::Acquire) {
                match issue_once(pki, &p) {
                    Ok(ms) => lat.push(ms),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            let build = h.join().map_err(|_| "the rebuild thread panicked")?;
            match err {
                Some(e) => Err::<_, BoxError>(e),
                None => Ok((build.map_err(|e| e.to_string())?, lat)),
            }
        })?;
        r.during_secs += t.elapsed().as_secs_f64();
        log(format!(
            "{} responsiveness round {}: {} issued alone, {} during a {:.3} s rebuild",
            job.variant.name(),
            round + 1,
            idle_n,
            lat.len(),
            build
        ));
        r.during.ms.extend(lat);
        r.build_under_load_s.push(build);
    }
    r.idle.ms.sort_by(f64::total_cmp);
    r.during.ms.sort_by(f64::total_cmp);
    Ok(r)
}

// ------------------------------------------------------------------ rusage phase (child)

#[derive(Serialize, Deserialize, Default, Clone)]
struct Measured {
    wall_s: f64,
    cpu_s: f64,
    maxrss_mib: f64,
    others_cores: f64,
    ok: bool,
    stderr: String,
}

/// Run a command, wait for it, and report its wall time, CPU time and peak RSS (its
/// rusage: this process has no other children).
fn rusage_phase(cmd: &[String]) -> Result<()> {
    let (prog, args) = cmd.split_first().ok_or("--phase rusage PROGRAM ARGS...")?;
    let stat0 = machine_jiffies();
    let t = Instant::now();
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let wall_s = t.elapsed().as_secs_f64();
    let stat1 = machine_jiffies();
    // SAFETY: getrusage only writes the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return Err("getrusage failed".into());
    }
    let cpu_s = tv(ru.ru_utime) + tv(ru.ru_stime);
    let m = Measured {
        wall_s,
        cpu_s,
        others_cores: others_cores(stat0, stat1, cpu_s, wall_s),
        maxrss_mib: ru.ru_maxrss as f64 / 1024.0,
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!("{RESULT_PREFIX}{}", serde_json::to_string(&m)?);
    Ok(())
}

fn result_line<T: for<'de> Deserialize<'de>>(stdout: &[u8]) -> Result<T> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .ok_or("the child printed no result")?;
    Ok(serde_json::from_str(line)?)
}

fn measured(prog: &str, args: &[&str], cwd: &Path) -> Result<Measured> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--phase", "rusage", prog])
        .args(args)
        .current_dir(cwd)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("running {prog} failed").into());
    }
    result_line(&out.stdout)
}

// ------------------------------------------------------------------ checks

struct Checks {
    count: Option<u64>,
    verify_ok: Option<bool>,
}

/// Count "Serial Number:" lines of `openssl crl -text` without holding the text.
fn openssl_count(args: &[&str]) -> Result<(u64, f64)> {
    let t = Instant::now();
    let mut child = Command::new("openssl")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut n = 0u64;
    for line in BufReader::with_capacity(1 << 20, stdout).lines() {
        if line?.trim_start().starts_with("Serial Number:") {
            n += 1;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("openssl {args:?} failed").into());
    }
    Ok((n, t.elapsed().as_secs_f64()))
}

fn check_ours(l: &Loaded) -> Result<Checks> {
    let crl = l.job.crl_out.to_string_lossy().into_owned();
    let ca = l.ca_pem.to_string_lossy().into_owned();
    let (count, count_s) =
        openssl_count(&["crl", "-inform", "DER", "-in", &crl, "-noout", "-text"])?;
    let out = Command::new("openssl")
        .args([
            "crl", "-inform", "DER", "-in", &crl, "-CAfile", &ca, "-noout",
        ])
        .output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let verify_ok = out.status.success() && said.contains("verify OK");
    log(format!(
        "openssl crl -text listed {count} entries ({count_s:.1} s); -CAfile: {}",
        said.trim()
    ));
    if !verify_ok {
        log(format!("openssl crl verify said: {said}"));
    }
    Ok(Checks {
        count: Some(count),
        verify_ok: Some(verify_ok),
    })
}

// ------------------------------------------------------------------ baseline

struct Baseline {
    runs: Vec<Measured>,
    der_size: u64,
    count: Option<u64>,
}

fn utc_time(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn openssl(args: &[&str], cwd: &Path) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()?;
    if !out.status.success() {
        return Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn baseline(o: &Opts, root: &Path, now: i64) -> Result<Baseline> {
    let dir = root.join("openssl-ca");
    fs::create_dir_all(&dir)?;
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ],
        &dir,
    )?;
    openssl(
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Bench openssl CA",
            "-days",
            "365",
            "-sha256",
            "-out",
            "ca.pem",
        ],
        &dir,
    )?;
    fs::write(
        dir.join("openssl.cnf"),
        "[ca]\ndefault_ca = CA_default\n\n[CA_default]\ndir = .\n\
         database = $dir/index.txt\ncrlnumber = $dir/crlnumber\n\
         certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\nnew_certs_dir = $dir\n\
         serial = $dir/serial\ndefault_md = sha256\ndefault_crl_days = 3\n\
         unique_subject = no\npolicy = policy_any\n\n[policy_any]\ncommonName = supplied\n",
    )?;
    fs::write(dir.join("crlnumber"), "01\n")?;
    fs::write(dir.join("serial"), "01\n")?;
    fs::write(dir.join("index.txt.attr"), "unique_subject = no\n")?;

    log(format!(
        "baseline: writing an index.txt of {} entries",
        o.entries
    ));
    let t = Instant::now();
    {
        let mut w =
            std::io::BufWriter::with_capacity(1 << 20, fs::File::create(dir.join("index.txt"))?);
        let expiry = utc_time(now + 365 * DAY);
        let mut line = String::with_capacity(128);
        for e in entries(o.seed, o.entries, now) {
            line.clear();
            let _ = write!(line, "R\t{expiry}\t{}", utc_time(e.revoked_at));
            if let Some(r) = openssl_reason(e.reason) {
                let _ = write!(line, ",{r}");
            }
            let _ = writeln!(line, "\t{}\tunknown\t/CN=x", hex::encode_upper(&e.serial));
            w.write_all(line.as_bytes())?;
        }
        w.flush()?;
    }
    log(format!(
        "baseline: index.txt written in {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    let mut runs = Vec::new();
    for i in 0..o.builds {
        let run = measured(
            "openssl",
            &["ca", "-config", "openssl.cnf", "-gencrl", "-out", "crl.pem"],
            &dir,
        )?;
        if !run.ok {
            return Err(format!("openssl ca -gencrl failed: {}", run.stderr).into());
        }
        log(format!(
            "baseline run {}: openssl ca -gencrl {:.3} s wall, {:.3} s CPU, peak RSS {:.0} MiB",
            i + 1,
            run.wall_s,
            run.cpu_s,
            run.maxrss_mib
        ));
        runs.push(run);
    }
    openssl(
        &[
            "crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der",
        ],
        &dir,
    )?;
    let der_size = fs::metadata(dir.join("crl.der"))?.len();
    let count = if o.check {
        let crl = dir.join("crl.der").to_string_lossy().into_owned();
        Some(openssl_count(&["crl", "-inform", "DER", "-in", &crl, "-noout", "-text"])?.0)
    } else {
        None
    };
    Ok(Baseline {
        runs,
        der_size,
        count,
    })
}

// ------------------------------------------------------------------ orchestration

struct VariantResult {
    loaded: Loaded,
    scan: ScanReport,
    child: ChildReport,
    checks: Option<Checks>,
}

fn run(o: &Opts) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("scaivault-crl-bench.")
        .tempdir()?;
    let root = tmp.path().to_path_buf();
    log(format!("working in {}", root.display()));
    let hsm = make_token(&root)?;
    // Token::open reads SOFTHSM2_CONF from the environment; nothing else runs yet.
    std::env::set_var("SOFTHSM2_CONF", &hsm.conf);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    let mut results = Vec::new();
    for &v in &o.variants {
        let loaded = load_phase(o, &hsm, &root, v, now)?;
        log(format!("{}: index scan alone in a fresh process", v.name()));
        let out = Command::new(std::env::current_exe()?)
            .args(["--phase", "scan"])
            .arg(&loaded.job_file)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err(format!("the scan process failed ({})", out.status).into());
        }
        let scan: ScanReport = result_line(&out.stdout)?;
        log(format!(
            "{}: store open {:.3} s, first scan {:.3} s, second {:.3} s",
            v.name(),
            scan.open_s,
            scan.cold_s,
            scan.warm_s
        ));
        log(format!("{}: build phase in a fresh process", v.name()));
        let out = Command::new(std::env::current_exe()?)
            .args(["--phase", "build"])
            .arg(&loaded.job_file)
            .env("SOFTHSM2_CONF", &hsm.conf)
            .env(PIN_ENV, &hsm.pin)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err(format!("the build process failed ({})", out.status).into());
        }
        let child: ChildReport = result_line(&out.stdout)?;
        let checks = if o.check {
            log(format!("{}: openssl checks of our CRL", v.name()));
            Some(check_ours(&loaded)?)
        } else {
            None
        };
        results.push(VariantResult {
            loaded,
            scan,
            child,
            checks,
        });
    }

    let base = if o.baseline {
        Some(baseline(o, &root, now)?)
    } else {
        None
    };

    let report = report(o, &results, base.as_ref());
    println!("\n{report}");
    if let Some(out) = &o.out {
        fs::write(out, &report)?;
        log(format!("report written to {}", out.display()));
    }
    if o.keep {
        // So a kept build can be rerun by hand (e.g. under perf): see --help.
        fs::write(root.join("pin"), &hsm.pin)?;
        let kept = tmp.keep();
        log(format!("kept {}", kept.display()));
    }
    Ok(())
}

// ------------------------------------------------------------------ report

fn machine_facts() -> Vec<(&'static str, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let version = |prog: &str, arg: &str| {
        Command::new(prog)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                let mut s = String::new();
                let _ = o.stdout.as_slice().read_to_string(&mut s);
                s.lines().next().unwrap_or("").trim().to_string()
            })
            .unwrap_or_else(|| "?".into())
    };
    vec![
        ("nproc", nproc),
        ("CPU", model),
        ("RAM", mem),
        ("kernel", kernel),
        ("openssl", version("openssl", "version")),
        ("softhsm2-util", version("softhsm2-util", "--version")),
    ]
}

fn lat(l: &Latencies) -> String {
    format!(
        "{:.2} / {:.2} / {:.2} ms (n={})",
        l.pct(0.5),
        l.pct(0.99),
        l.max(),
        l.ms.len()
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn secs(v: impl IntoIterator<Item = f64>) -> String {
    v.into_iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn report(o: &Opts, results: &[VariantResult], base: Option<&Baseline>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#### Run of {} revoked entries\n", o.entries);
    let facts = machine_facts();
    let _ = writeln!(
        s,
        "Machine: {}\n",
        facts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let _ = writeln!(
        s,
        "| what | entries | CRL size (DER) | wall s, build 1 / 2 / ... | median wall s | CPU s per build | peak RSS (VmHWM) | other processes' load (cores busy) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---|---:|---|---|---|");
    for r in results {
        let b = &r.child.builds;
        let _ = writeln!(
            s,
            "| ours: `Pki::rebuild_crl`, {} (keys in SoftHSM2) | {} | {} | {} | {:.2} | {} | {} | {} |",
            r.loaded.job.variant.label(),
            b[0].entries,
            b[0].size,
            secs(b.iter().map(|x| x.wall_s)),
            median(b.iter().map(|x| x.wall_s).collect()),
            secs(b.iter().map(|x| x.cpu_s)),
            b.iter()
                .map(|x| format!("{:.0}", x.hwm_mib))
                .collect::<Vec<_>>()
                .join(" / ")
                + " MiB",
            secs(b.iter().map(|x| x.others_cores)),
        );
    }
    if let Some(bl) = base {
        let r = &bl.runs;
        let _ = writeln!(
            s,
            "| baseline: `openssl ca -gencrl`, P-256 key in a file | {} | {} | {} | {:.2} | {} | {} | {} |",
            bl.count
                .map(|c| c.to_string())
                .unwrap_or_else(|| format!("{} (not counted)", o.entries)),
            bl.der_size,
            secs(r.iter().map(|x| x.wall_s)),
            median(r.iter().map(|x| x.wall_s).collect()),
            secs(r.iter().map(|x| x.cpu_s)),
            r.iter()
                .map(|x| format!("{:.0}", x.maxrss_mib))
                .collect::<Vec<_>>()
                .join(" / ")
                + " MiB",
            secs(r.iter().map(|x| x.others_cores)),
        );
    }
    let _ = writeln!(
        s,
        "\nOurs: all builds in one fresh process; build 1 is its first (sled's cache is cold, \
         the OS page cache holds the store files). Build 1's peak RSS covers the whole process \
         (store and token open + build); for later builds VmHWM is reset just before. \
         Baseline: each run a fresh `openssl` process, peak RSS from getrusage."
    );

    let _ = writeln!(s, "\n| what | RSS before / after each build | bulk load (not a target) | store open, fresh process | index scan alone: first / second |");
    let _ = writeln!(s, "|---|---|---:|---:|---|");
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} MiB | {:.1} s | {:.2} s | {:.2} s / {:.2} s |",
            r.loaded.job.variant.label(),
            r.child
                .builds
                .iter()
                .map(|b| format!("{:.0}→{:.0}", b.rss_before_mib, b.rss_after_mib))
                .collect::<Vec<_>>()
                .join(", "),
            r.loaded.load_secs,
            r.scan.open_s,
            r.scan.cold_s,
            r.scan.warm_s,
        );
    }

    let _ = writeln!(
        s,
        "\nChecks of our CRL (as published after the last build):\n"
    );
    let _ = writeln!(
        s,
        "| what | entries counted by `openssl crl -text` | `openssl crl -CAfile` |"
    );
    let _ = writeln!(s, "|---|---:|---|");
    for r in results {
        let (count, verify) = match &r.checks {
            Some(c) => (
                c.count.map_or("?".into(), |n| n.to_string()),
                if c.verify_ok == Some(true) {
                    "verify OK"
                } else {
                    "FAILED"
                }
                .to_string(),
            ),
            None => ("not run".into(), "not run".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {count} | {verify} |",
            r.loaded.job.variant.label()
        );
    }

    let _ = writeln!(
        s,
        "\nOne warm build, part by part (each part timed on its own, same process, same data):\n"
    );
    let _ = writeln!(
        s,
        "| what | index scan | scan + encode (as `rebuild_crl`) | encode alone, `RevokedList::push` | encode alone, allocation-free (same bytes) | SHA-256 of the TBS | software verify | write + fsync + rename | whole build (last) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let b = &r.child.breakdown;
        let _ = writeln!(
            s,
            "| {} | {:.3} s | {:.3} s | {:.3} s | {:.3} s ({}) | {:.3} s | {:.3} s | {:.3} s | {:.3} s |",
            r.loaded.job.variant.label(),
            b.scan_s,
            b.scan_encode_s,
            b.encode_push_s,
            b.encode_ref_s,
            if b.ref_matches { "identical" } else { "DIFFERS" },
            b.sha256_s,
            b.verify_s,
            b.write_fsync_s,
            r.child.builds.last().map_or(f64::NAN, |x| x.wall_s),
        );
    }

    if results.iter().any(|r| r.child.resp.is_some()) {
        let _ = writeln!(
            s,
            "\nIssuance while a CRL is built (`Pki::issue`, one thread, back to back, P-256 leaf; \
             p50 / p99 / max):\n"
        );
        let _ = writeln!(
            s,
            "| CA | issuance alone | issuance during a rebuild | rebuilds meanwhile (wall) |"
        );
        let _ = writeln!(s, "|---|---|---|---|");
        for r in results {
            if let Some(x) = &r.child.resp {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} s |",
                    r.loaded.job.variant.label(),
                    lat(&x.idle),
                    lat(&x.during),
                    secs(x.build_under_load_s.iter().copied()),
                );
            }
        }
    }

    let _ = writeln!(s, "\nTargets (under 2 s, under 512 MiB peak RSS):\n");
    for r in results {
        let b = &r.child.builds;
        let first = b[0].wall_s;
        let warm = median(b.iter().skip(1).map(|x| x.wall_s).collect());
        let peak = r.child.peak_build_mib;
        let _ = writeln!(
            s,
            "- {}: first build {first:.2} s ({}), warm median {warm:.2} s ({}), peak RSS {peak:.0} MiB ({})",
            r.loaded.job.variant.label(),
            if first < 2.0 { "under" } else { "OVER" },
            if warm < 2.0 { "under" } else { "OVER" },
            if peak < 512.0 { "under" } else { "OVER" },
        );
    }
    if let Some(bl) = base {
        let _ = writeln!(
            s,
            "- baseline `openssl ca -gencrl`: median {:.2} s",
            median(bl.runs.iter().map(|x| x.wall_s).collect())
        );
    }
    s
}
