//! A mixed client load for the crash-recovery test and the soak bench: issue, sign,
//! revoke, CRL rebuild and fetch, the CSR approval workflow, reads. Every answer a client
//! got is recorded, so that a test can later check that what was acknowledged is still
//! there, and a bench can report latencies.
//!
//! Plain blocking HTTP from threads; a seeded RNG picks the operations, so a run can be
//! repeated from its seed.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// SplitMix64: small, seedable, good enough to pick operations and delays.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A seed from the clock and the pid, for runs that don't name one.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// What the load runs against: a daemon, a CA and a role on it, a CSR to sign.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub base: String,
    pub token: String,
    /// The issuing (intermediate) CA.
    pub ca_id: String,
    pub role: String,
    /// A CSR for a name the role allows, signed again and again.
    pub csr_pem: String,
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .expect("HTTP client")
}

fn send(
    c: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut rb = c.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = rb.send().map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let bytes = r.bytes().map_err(|e| e.to_string())?;
    // A body cut off mid-way is not an answer the client got.
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| format!("unreadable body: {e}"))?
    };
    Ok((status, v))
}

/// Make the CAs, the role and the CSR on a fresh daemon. `domain` is what the role allows.
pub fn setup(base: &str, token: &str, domain: &str) -> Fixture {
    let c = client();
    let post = |path: &str, body: Value| -> Value {
        let (s, v) = send(
            &c,
            reqwest::Method::POST,
            &format!("{base}{path}"),
            token,
            Some(&body),
        )
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert!(s == 201 || s == 200, "POST {path} {body} -> {s} {v}");
        v
    };
    let root = post(
        "/v1/pki/ca",
        json!({"name": "load-root", "common_name": "Load Root CA", "ca_type": "root",
               "key_type": "ec"}),
    );
    let int = post(
        "/v1/pki/ca",
        json!({"name": "load-int", "common_name": "Load Intermediate CA",
               "ca_type": "intermediate", "parent_ca_id": root["id"], "key_type": "ec"}),
    );
    let ca_id = int["id"].as_str().expect("ca id").to_string();
    post(
        "/v1/pki/roles",
        json!({"name": "load", "ca_id": ca_id, "allowed_domains": [domain],
               "allow_subdomains": true, "allow_bare_domains": true, "max_ttl": "24h",
               "key_type": "ec", "key_bits": 256, "use_csr_sans": true,
               "use_csr_common_name": true}),
    );
    let csr = post(
        "/v1/pki/csr",
        json!({"subject": {"common_name": format!("csr.{domain}")},
               "san_dns": [format!("csr.{domain}")], "key_type": "ec"}),
    );
    let csr_pem = csr["csr_pem"]
        .as_str()
        .unwrap_or_else(|| panic!("no csr_pem in {csr}"))
        .to_string();
    Fixture {
        base: base.to_string(),
        token: token.to_string(),
        ca_id,
        role: "load".into(),
        csr_pem,
    }
}

/// The operations of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Issue,
    Sign,
    Get,
    List,
    Revoke,
    CrlGet,
    CrlRebuild,
    /// Import a CSR, approve it, sign it: three requests, timed as one.
    CsrFlow,
}

impl Op {
    pub const ALL: [Op; 8] = [
        Op::Issue,
        Op::Sign,
        Op::Get,
        Op::List,
        Op::Revoke,
        Op::CrlGet,
        Op::CrlRebuild,
        Op::CsrFlow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Issue => "issue",
            Op::Sign => "sign",
            Op::Get => "get",
            Op::List => "list",
            Op::Revoke => "revoke",
            Op::CrlGet => "crl-get",
            Op::CrlRebuild => "crl-rebuild",
            Op::CsrFlow => "csr-flow",
        }
    }
}

/// Percent weights of the mix (they add up to 100).
pub const MIX: [(Op, u64); 8] = [
    (Op::Issue, 35),
    (Op::Sign, 25),
    (Op::Get, 20),
    (Op::List, 5),
    (Op::Revoke, 4),
    (Op::CrlGet, 5),
    (Op::CrlRebuild, 1),
    (Op::CsrFlow, 5),
];

/// Reads only (the stored data stops growing): certificates, listings, CRLs.
pub const READ_MIX: [(Op, u64); 3] = [(Op::Get, 60), (Op::List, 20), (Op::CrlGet, 20)];

fn pick(rng: &mut Rng, mix: &[(Op, u64)]) -> Op {
    let total: u64 = mix.iter().map(|(_, w)| w).sum();
    let mut r = rng.below(total.max(1));
    for &(op, w) in mix {
        if r < w {
            return op;
        }
        r -= w;
    }
    Op::Issue
}

/// A certificate a client was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedCert {
    pub id: String,
    pub serial: String,
    pub issuer: String,
}

/// Everything clients were told, across runs.
#[derive(Default, Debug)]
pub struct Acks {
    /// By certificate id.
    pub certs: BTreeMap<String, AckedCert>,
    /// Certificate ids whose revocation was acknowledged.
    pub revoked: BTreeMap<String, String>,
    /// The highest CRL number a client saw, by CA id.
    pub crl_numbers: HashMap<String, u64>,
    /// CSR ids by the furthest status acknowledged: "approved" or "signed".
    pub csrs: BTreeMap<String, String>,
}

/// One request's outcome, for latency figures.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Since the load started.
    pub at: Duration,
    pub op: Op,
    pub micros: u32,
    /// 2xx (for `CsrFlow`: all three steps).
    pub ok: bool,
    /// No HTTP answer at all (connection refused or cut).
    pub no_answer: bool,
}

/// What the workers share.
pub struct Recorder {
    pub acks: Mutex<Acks>,
    /// The last certificates acknowledged, for reads and revocations to pick from.
    recent: Mutex<std::collections::VecDeque<AckedCert>>,
    pub samples: Mutex<Vec<Sample>>,
    /// Answers that were neither a success nor an expected refusal (status and body).
    pub unexpected: Mutex<Vec<String>>,
    /// Keep latency samples (the soak does; the crash test need not).
    pub keep_samples: bool,
    start: Mutex<Instant>,
}

impl Recorder {
    /// Forget the latency samples so far and start the clock again (e.g. after a prefill).
    pub fn clear_samples(&self) {
        self.samples.lock().unwrap().clear();
        *self.start.lock().unwrap() = Instant::now();
    }

    pub fn new(keep_samples: bool) -> Self {
        Recorder {
            acks: Mutex::new(Acks::default()),
            recent: Mutex::new(std::collections::VecDeque::new()),
            samples: Mutex::new(Vec::new()),
            unexpected: Mutex::new(Vec::new()),
            keep_samples,
            start: Mutex::new(Instant::now()),
        }
    }

    pub fn since_start(&self) -> Duration {
        self.start.lock().unwrap().elapsed()
    }

    fn sample(&self, op: Op, t0: Instant, ok: bool, no_answer: bool) {
        if !self.keep_samples {
            return;
        }
        let s = Sample {
            at: t0.saturating_duration_since(*self.start.lock().unwrap()),
            op,
            micros: u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX),
            ok,
            no_answer,
        };
        self.samples.lock().unwrap().push(s);
    }

    fn unexpected(&self, op: Op, status: u16, v: &Value) {
        let mut u = self.unexpected.lock().unwrap();
        if u.len() < 1000 {
            u.push(format!("{}: {status} {v}", op.name()));
        }
    }

    /// A client saw CRL number `num` of `ca` (in a rebuild's answer or a fetched CRL).
    pub fn saw_crl_number(&self, ca: &str, num: u64) {
        let mut acks = self.acks.lock().unwrap();
        let e = acks.crl_numbers.entry(ca.to_string()).or_insert(0);
        *e = (*e).max(num);
    }

    /// A random one of the last 1000 acknowledged certificates.
    fn some_cert(&self, rng: &mut Rng) -> Option<AckedCert> {
        let recent = self.recent.lock().unwrap();
        let n = recent.len() as u64;
        if n == 0 {
            return None;
        }
        recent.get(rng.below(n) as usize).cloned()
    }

    fn ack_cert(&self, v: &Value, issuer: &str) -> bool {
        let (Some(id), Some(serial)) = (v["id"].as_str(), v["serial_number"].as_str()) else {
            return false;
        };
        if v["certificate"].as_str().is_none() {
            return false;
        }
        let cert = AckedCert {
            id: id.to_string(),
            serial: serial.to_string(),
            issuer: issuer.to_string(),
        };
        {
            let mut recent = self.recent.lock().unwrap();
            if recent.len() == 1000 {
                recent.pop_front();
            }
            recent.push_back(cert.clone());
        }
        self.acks.lock().unwrap().certs.insert(id.to_string(), cert);
        true
    }
}

/// Run the mix until `stop` is set. A request without an answer (the daemon is gone)
/// ends the worker when `stop_on_no_answer`, else it is counted and the worker goes on.
pub fn worker(fx: &Fixture, seed: u64, stop: &AtomicBool, rec: &Recorder, stop_on_no_answer: bool) {
    worker_with_mix(fx, seed, stop, rec, stop_on_no_answer, &MIX)
}

/// [`worker`] with another mix of operations.
pub fn worker_with_mix(
    fx: &Fixture,
    seed: u64,
    stop: &AtomicBool,
    rec: &Recorder,
    stop_on_no_answer: bool,
    mix: &[(Op, u64)],
) {
    let c = client();
    let mut rng = Rng::new(seed);
    let url = |p: &str| format!("{}{p}", fx.base);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let op = pick(&mut rng, mix);
        let t0 = Instant::now();
        let result = run_op(&c, fx, op, &mut rng, rec, n, &url);
        match result {
            Ok(ok) => rec.sample(op, t0, ok, false),
            Err(_) => {
                rec.sample(op, t0, false, true);
                if stop_on_no_answer {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// One operation. Ok(success) when every request got an answer; Err when one did not.
fn run_op(
    c: &reqwest::blocking::Client,
    fx: &Fixture,
    op: Op,
    rng: &mut Rng,
    rec: &Recorder,
    n: u64,
    url: &dyn Fn(&str) -> String,
) -> Result<bool, String> {
    use reqwest::Method as M;
    let tok = fx.token.as_str();
    match op {
        Op::Issue => {
            let body = json!({"common_name": format!("h{n}-{}.load.test", rng.below(1 << 20))});
            let (s, v) = send(
                c,
                M::POST,
                &url(&format!("/v1/pki/issue/{}", fx.role)),
                tok,
                Some(&body),
            )?;
            if s == 201 && rec.ack_cert(&v, &fx.ca_id) {
                return Ok(true);
            }
            rec.unexpected(op, s, &v);
            Ok(false)
        }
        Op::Sign => {
            let body = json!({"csr_pem": fx.csr_pem});
            let (s, v) = send(
                c,
                M::POST,
                &url(&format!("/v1/pki/sign/{}", fx.role)),
                tok,
                Some(&body),
            )?;
            if s == 201 && rec.ack_cert(&v, &fx.ca_id) {
                return Ok(true);
            }
            rec.unexpected(op, s, &v);
            Ok(false)
        }
        Op::Get => {
            let Some(cert) = rec.some_cert(rng) else {
                return Ok(true);
            };
            let (s, v) = send(
                c,
                M::GET,
                &url(&format!("/v1/pki/certificates/{}", cert.id)),
                tok,
                None,
            )?;
            if s == 200 && v["serial_number"] == cert.serial.as_str() {
                return Ok(true);
            }
            rec.unexpected(op, s, &v);
            Ok(false)
        }
        Op::List => {
            let (s, v) = send(
                c,
                M::GET,
                &url(&format!("/v1/pki/certificates?ca_id={}&limit=50", fx.ca_id)),
                tok,
                None,
            )?;
            if s == 200 && v["data"].is_array() {
                return Ok(true);
            }
            rec.unexpected(op, s, &v);
            Ok(false)
        }
        Op::Revoke => {
            let Some(cert) = rec.some_cert(rng) else {
                return Ok(true);
            };
            let body = json!({"serial_number": cert.serial, "reason": "superseded"});
            let (s, v) = send(c, M::POST, &url("/v1/pki/revoke"), tok, Some(&body))?;
            if s == 200 && v["id"] == cert.id.as_str() {
                rec.acks
                    .lock()
                    .unwrap()
                    .revoked
                    .insert(cert.id.clone(), cert.serial.clone());
                return Ok(true);
            }
            rec.unexpected(op, s, &v);
            Ok(false)
        }
        Op::CrlGet => {
            let r = c
                .get(url(&format!("/v1/pki/ca/{}/crl", fx.ca_id)))
                .send()
                .map_err(|e| e.to_string())?;
            let s = r.status().as_u16();
            let body = r.bytes().map_err(|e| e.to_string())?;
            if let (200, Some(num)) = (s, crl_number(&body)) {
                rec.saw_crl_number(&fx.ca_id, num);
                return Ok(true);
            }
            rec.unexpected(op, s, &Value::String(format!("{} bytes", body.len())));
            Ok(false)
        }
        Op::CrlRebuild => {
            let (s, v) = send(
                c,
                M::POST,
                &url(&format!("/v1/pki/ca/{}/crl", fx.ca_id)),
                tok,
                None,
            )?;
            if let (200, Some(num)) = (s, v["crl_number"].as_u64()) {
                rec.saw_crl_number(&fx.ca_id, num);
                return Ok(true);
            }
            rec.unexpected(op, s, &v);
            Ok(false)
        }
        Op::CsrFlow => {
            let (s, v) = send(
                c,
                M::POST,
                &url("/v1/pki/csr/import"),
                tok,
                Some(&json!({"csr_pem": fx.csr_pem})),
            )?;
            let Some(id) = v["id"].as_str().filter(|_| s == 201).map(str::to_string) else {
                rec.unexpected(op, s, &v);
                return Ok(false);
            };
            let (s, v) = send(
                c,
                M::POST,
                &url(&format!("/v1/pki/csr/{id}/approve")),
                tok,
                None,
            )?;
            if s != 200 || v["status"] != "approved" {
                rec.unexpected(op, s, &v);
                return Ok(false);
            }
            rec.acks
                .lock()
                .unwrap()
                .csrs
                .insert(id.clone(), "approved".into());
            let body = json!({"ca_id": fx.ca_id, "validity_days": 1});
            let (s, v) = send(
                c,
                M::POST,
                &url(&format!("/v1/pki/csr/{id}/sign")),
                tok,
                Some(&body),
            )?;
            if s == 201 && rec.ack_cert(&v, &fx.ca_id) {
                rec.acks.lock().unwrap().csrs.insert(id, "signed".into());
                return Ok(true);
            }
            rec.unexpected(op, s, &v);
            Ok(false)
        }
    }
}

/// The CRL Number of a DER CRL.
pub fn crl_number(der: &[u8]) -> Option<u64> {
    use der::Decode;
    use x509_cert::ext::pkix::CrlNumber;
    let crl: x509_cert::crl::CertificateList =
        x509_cert::crl::CertificateList::from_der(der).ok()?;
    let exts = crl.tbs_cert_list.crl_extensions.as_ref()?;
    let ext = exts
        .iter()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER)?;
    let n = CrlNumber::from_der(ext.extn_value.as_bytes()).ok()?;
    let bytes = n.0.as_bytes();
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Percentile (0..=100) of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)]) / 1000.0
}
