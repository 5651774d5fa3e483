//! Issuance throughput over HTTP: our daemon on a SoftHSM2 token against `cfssl serve`.
//!
//! Run:
//!
//! ```text
//! cargo bench --bench issuance
//! cargo bench --bench issuance -- --duration 5 --concurrency 1,4,16,64 --only ours|cfssl
//! cargo bench --bench issuance -- --help
//! ```
//!
//! What it does, all on this machine and in this one run (the machine is noisy, so the
//! baseline is measured side by side, interleaved per concurrency step):
//!
//! * ours: a throw-away SoftHSM2 token, the release daemon binary (cargo builds it for the
//!   bench) on `127.0.0.1:0`, a P-256 root and a P-256 intermediate whose keys live in the
//!   token, and a role on the intermediate. Scenarios `ours-sign`
//!   (`POST /v1/pki/sign/{role}` with one P-256 CSR) and `ours-issue`
//!   (`POST /v1/pki/issue/{role}`, the daemon makes the leaf key).
//! * cfssl: `cfssl serve` with a P-256 CA made by `cfssl gencert -initca`, signing the same
//!   CSR (`POST /api/v1/cfssl/sign`). Scenario `cfssl-sign`. cfssl keeps its CA key in
//!   memory and stores nothing.
//! * A load generator in this process (tokio + reqwest): C requests always in flight, every
//!   latency recorded, 2xx counted; anything else is counted and printed as a bug.
//!
//! The load generator shares the CPUs with the servers; the CPU time each side used is
//! read from /proc and printed with every step.
//!
//! External programs: `softhsm2-util`, `openssl`, `cfssl` (Debian package `golang-cfssl`;
//! installed with apt-get when missing and running as root, or pass `--install-cfssl no`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const DEFAULT_SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN_LABEL: &str = "scaivault-bench";
const ROLE: &str = "bench";
/// Rewritten over and over by the `ours-role-put` floor.
const ROLE_PUT: &str = "bench-put";
const LEAF_CN: &str = "svc.bench.internal";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------ options

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    OursSign,
    CfsslSign,
    OursIssue,
    /// `GET /v1/pki/ca/{id}/certificate`: no token, no signing, one store read.
    /// The HTTP floor of our daemon with this load generator (not run by default).
    OursCacert,
    /// `GET /v1/pki/roles/{role}`: authentication + one store read (not run by default).
    OursRoleGet,
    /// `PUT /v1/pki/roles/bench-put`: authentication + one store write + flush, no
    /// crypto: the durability floor (not run by default).
    OursRolePut,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::OursSign => "ours-sign",
            Scenario::CfsslSign => "cfssl-sign",
            Scenario::OursIssue => "ours-issue",
            Scenario::OursCacert => "ours-cacert",
            Scenario::OursRoleGet => "ours-role-get",
            Scenario::OursRolePut => "ours-role-put",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Scenario::OursSign,
            Scenario::CfsslSign,
            Scenario::OursIssue,
            Scenario::OursCacert,
            Scenario::OursRoleGet,
            Scenario::OursRolePut,
        ]
        .into_iter()
        .find(|x| x.name() == s)
    }

    fn is_ours(self) -> bool {
        !matches!(self, Scenario::CfsslSign)
    }

    /// Does it make a certificate (and so a stored record)?
    fn issues(self) -> bool {
        matches!(self, Scenario::OursSign | Scenario::OursIssue)
    }
}

struct Opts {
    duration: Duration,
    warmup: Duration,
    concurrency: Vec<usize>,
    scenarios: Vec<Scenario>,
    rounds: usize,
    client_threads: usize,
    pool_size: usize,
    store_cache_mb: Option<u64>,
    daemon_log: Option<String>,
    cfssl_loglevel: u8,
    install_cfssl: bool,
    count_stored: bool,
    keep: bool,
    out: Option<PathBuf>,
}

const USAGE: &str = "\
usage: cargo bench --bench issuance [-- OPTIONS]

  --duration SECS        measured seconds per step (default 5)
  --warmup SECS          warm-up seconds before each step, not counted (default 1)
  --concurrency LIST     requests in flight, comma-separated (default 1,4,16,64)
  --only ours|cfssl      only our scenarios (ours-sign, ours-issue) or only cfssl-sign
  --scenarios LIST       any of ours-sign,cfssl-sign,ours-issue (the default) and the
                         floors ours-cacert (HTTP only), ours-role-get (auth + store
                         read), ours-role-put (auth + store write + flush)
  --rounds N             repeat every step N times, interleaved; the table shows the
                         median certs/s and the percentiles of all rounds' latencies (default 1)
  --client-threads N     tokio worker threads of the load generator (default 1)
  --pool-size N          the daemon's hsm.pool_size (default 4, the shipped default)
  --store-cache-mb N     the daemon's limits.store_cache_bytes in MiB (default: the
                         shipped default, 64)
  --daemon-log FILTER    RUST_LOG for the daemon (default: unset, i.e. the daemon's own default)
  --cfssl-loglevel N     cfssl -loglevel (default 2 = warnings; cfssl's own default 1
                         writes five log lines per request)
  --install-cfssl yes|no apt-get install golang-cfssl when cfssl is missing (default yes)
  --no-count             skip the final listing that checks every acknowledged certificate
                         is stored
  --keep                 keep the temporary directory (token, store, logs)
  --out FILE             also write the Markdown report to FILE

Environment: SCAIVAULT_BENCH_DAEMON=PATH runs that daemon binary instead of this
build's (a before/after of a change with the same load generator).
";

fn parse_secs(s: &str) -> Result<Duration> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("not a number of seconds: {s}"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("bad number of seconds: {s}").into());
    }
    Ok(Duration::from_secs_f64(v))
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        concurrency: vec![1, 4, 16, 64],
        scenarios: vec![Scenario::OursSign, Scenario::CfsslSign, Scenario::OursIssue],
        rounds: 1,
        client_threads: 1,
        pool_size: 4,
        store_cache_mb: None,
        daemon_log: None,
        cfssl_loglevel: 2,
        install_cfssl: true,
        count_stored: true,
        keep: false,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .ok_or_else(|| -> BoxError { format!("{name} needs a value").into() })
        };
        match a.as_str() {
            // `cargo bench` passes --bench to harness = false targets.
            "--bench" => {}
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--duration" => o.duration = parse_secs(&val("--duration")?)?,
            "--warmup" => o.warmup = parse_secs(&val("--warmup")?)?,
            "--concurrency" => {
                o.concurrency = val("--concurrency")?
                    .split(',')
                    .map(|s| match s.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("bad concurrency: {s}")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--only" => {
                o.scenarios = match val("--only")?.as_str() {
                    "ours" => vec![Scenario::OursSign, Scenario::OursIssue],
                    "cfssl" => vec![Scenario::CfsslSign],
                    other => return Err(format!("--only takes ours or cfssl, not {other}").into()),
                }
            }
            "--scenarios" => {
                o.scenarios = val("--scenarios")?
                    .split(',')
                    .map(|s| {
                        Scenario::parse(s.trim()).ok_or_else(|| format!("unknown scenario: {s}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--rounds" => {
                o.rounds = val("--rounds")?.parse()?;
                if o.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--client-threads" => {
                o.client_threads = val("--client-threads")?.parse()?;
                if o.client_threads == 0 {
                    return Err("--client-threads must be at least 1".into());
                }
            }
            "--pool-size" => o.pool_size = val("--pool-size")?.parse()?,
            "--store-cache-mb" => o.store_cache_mb = Some(val("--store-cache-mb")?.parse()?),
            "--daemon-log" => o.daemon_log = Some(val("--daemon-log")?),
            "--cfssl-loglevel" => o.cfssl_loglevel = val("--cfssl-loglevel")?.parse()?,
            "--install-cfssl" => {
                o.install_cfssl = match val("--install-cfssl")?.as_str() {
                    "yes" => true,
                    "no" => false,
                    other => return Err(format!("--install-cfssl yes|no, not {other}").into()),
                }
            }
            "--no-count" => o.count_stored = false,
            "--keep" => o.keep = true,
            "--out" => o.out = Some(PathBuf::from(val("--out")?)),
            other => return Err(format!("unknown argument {other}\n\n{USAGE}").into()),
        }
    }
    if o.scenarios.is_empty() || o.concurrency.is_empty() {
        return Err("nothing to run".into());
    }
    Ok(o)
}

// ------------------------------------------------------------------ small helpers

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("getrandom");
    hex::encode(buf)
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn tool_in_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            fs::metadata(d.join(name))
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
    })
}

/// Run a program; its stdout on success, an error with its output otherwise.
fn run(cmd: &mut Command) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tail_of_file(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// CPU seconds (user + system) a process has used so far, from /proc/PID/stat.
fn proc_cpu_secs(pid: &str) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that closes the command name; utime and stime are fields 14, 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> Option<(u64, u64)> {
    let s = fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

// ------------------------------------------------------------------ child processes

/// A server process that is stopped when this value drops (also on panic): its stdin is
/// closed (our daemon exits on that; the cfssl wrapper kills cfssl), then it is killed if
/// it has not exited within a few seconds.
struct Server {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The pid whose CPU time is accounted (the server itself, not a wrapper).
    pid: String,
    log: PathBuf,
}

impl Server {
    fn cpu_secs(&self) -> Option<f64> {
        proc_cpu_secs(&self.pid)
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!(
                "{} exited: {status}\n--- last lines of {} ---\n{}",
                self.name,
                self.log.display(),
                tail_of_file(&self.log, 4000)
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => break,
            }
        }
        eprintln!(
            "[bench] {} did not exit on stdin close; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ our daemon

struct Ours {
    server: Server,
    base: String,
    root_token: String,
    root_pem: String,
    intermediate_id: String,
    intermediate_pem: String,
    key_uris: Vec<String>,
}

fn softhsm_module() -> String {
    std::env::var("SCAIVAULT_SOFTHSM_MODULE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SOFTHSM_MODULE.to_string())
}

fn start_ours(dir: &Path, opts: &Opts, http: &reqwest::blocking::Client) -> Result<Ours> {
    let dir = dir.join("ours");
    let token_dir = dir.join("tokens");
    fs::create_dir_all(&token_dir)?;
    let softhsm_conf = dir.join("softhsm2.conf");
    fs::write(
        &softhsm_conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            token_dir.display()
        ),
    )?;
    let module = softhsm_module();
    if !Path::new(&module).is_file() {
        return Err(format!(
            "SoftHSM2 module {module} not found: apt-get install -y softhsm2 \
             (or set SCAIVAULT_SOFTHSM_MODULE)"
        )
        .into());
    }
    let pin = random_hex(16);
    let so_pin = random_hex(16);
    run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &softhsm_conf)
        .args(["--init-token", "--free", "--label", TOKEN_LABEL])
        .args(["--pin", &pin, "--so-pin", &so_pin]))
    .map_err(|e| format!("{e}\n(is softhsm2 installed? apt-get install -y softhsm2)"))?;

    let data_dir = dir.join("data");
    fs::create_dir_all(&data_dir)?;
    let pin_file = dir.join("hsm-pin");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pin_file)?
            .write_all(pin.as_bytes())?;
    }
    let config = dir.join("scaivault-pki.toml");
    fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {}\nlog_format = \"text\"\n\n\
             [hsm]\nmodule = {}\ntoken_label = {}\npin_file = {}\npool_size = {}\n",
            toml_str(&data_dir.to_string_lossy()),
            toml_str(&module),
            toml_str(TOKEN_LABEL),
            toml_str(&pin_file.to_string_lossy()),
            opts.pool_size,
        ) + &opts
            .store_cache_mb
            .map(|mb| format!("\n[limits]\nstore_cache_bytes = {}\n", mb << 20))
            .unwrap_or_default(),
    )?;

    // SCAIVAULT_BENCH_DAEMON runs another build (e.g. the commit before a change) with
    // the same load generator, for a before/after on the same machine.
    let bin = std::env::var_os("SCAIVAULT_BENCH_DAEMON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_scaivault-pki")));
    let log = dir.join("daemon.log");
    let mut cmd = Command::new(&bin);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--exit-on-stdin-close")
        .env("SOFTHSM2_CONF", &softhsm_conf)
        .env_remove("SCAIVAULT_DATA_DIR")
        .env_remove("SCAIVAULT_LISTEN")
        .env_remove("SCAIVAULT_HSM_PIN")
        .env_remove("SCAIVAULT_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(File::create(dir.join("daemon.stdout.log"))?))
        .stderr(Stdio::from(File::create(&log)?));
    if let Some(filter) = &opts.daemon_log {
        cmd.env("RUST_LOG", filter);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdin = child.stdin.take();
    let pid = child.id().to_string();
    let mut server = Server {
        name: "scaivault-pki",
        child,
        stdin,
        pid,
        log,
    };

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let addr: SocketAddr = loop {
        server.check_alive()?;
        if let Ok(s) = fs::read_to_string(data_dir.join("listen-addr")) {
            if let Ok(a) = s.trim().parse() {
                break a;
            }
        }
        if Instant::now() > deadline {
            return Err("the daemon wrote no listen-addr within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let base = format!("http://{addr}");
    loop {
        server.check_alive()?;
        match http.get(format!("{base}/v1/sys/health")).send() {
            Ok(r) if r.status().as_u16() == 200 => break,
            _ if Instant::now() > deadline => {
                return Err("GET /v1/sys/health did not answer 200 within 60 s".into())
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let root_token = fs::read_to_string(data_dir.join("root-token"))?
        .trim()
        .to_string();

    let post = |path: &str, body: &Value| -> Result<Value> {
        let r = http
            .post(format!("{base}{path}"))
            .bearer_auth(&root_token)
            .json(body)
            .send()?;
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap_or(Value::Null);
        if status != 201 {
            return Err(format!("POST {path} {body} -> {status} {v}").into());
        }
        Ok(v)
    };
    let get_pem = |id: &str| -> Result<String> {
        let v: Value = http
            .get(format!("{base}/v1/pki/ca/{id}/certificate"))
            .send()?
            .json()?;
        Ok(v["certificate_pem"]
            .as_str()
            .ok_or("no certificate_pem")?
            .to_string())
    };

    let root = post(
        "/v1/pki/ca",
        &json!({"name": "bench-root", "common_name": "Bench Root CA", "ca_type": "root",
                "key_type": "ec", "key_size": 256}),
    )?;
    let root_id = root["id"].as_str().ok_or("root has no id")?.to_string();
    let int = post(
        "/v1/pki/ca",
        &json!({"name": "bench-int", "common_name": "Bench Intermediate CA",
                "ca_type": "intermediate", "parent_ca_id": root_id,
                "key_type": "ec", "key_size": 256}),
    )?;
    let intermediate_id = int["id"]
        .as_str()
        .ok_or("intermediate has no id")?
        .to_string();
    let key_uris = [&root, &int]
        .iter()
        .map(|v| v["key_uri"].as_str().unwrap_or("(none)").to_string())
        .collect();
    let root_pem = get_pem(&root_id)?;
    let intermediate_pem = get_pem(&intermediate_id)?;
    Ok(Ours {
        server,
        base,
        root_token,
        root_pem,
        intermediate_id,
        intermediate_pem,
        key_uris,
    })
}

fn role_body(name: &str, ca_id: &str) -> Value {
    json!({
        "name": name,
        "ca_id": ca_id,
        "allowed_domains": ["bench.internal"],
        "allow_subdomains": true,
        "key_type": "ec",
        "key_bits": 256,
        "max_ttl": "720h",
    })
}

/// A role, or a clear message when the issuance endpoints are not there yet.
fn create_role(ours: &Ours, http: &reqwest::blocking::Client, name: &str) -> Result<()> {
    let body = role_body(name, &ours.intermediate_id);
    let r = http
        .post(format!("{}/v1/pki/roles", ours.base))
        .bearer_auth(&ours.root_token)
        .json(&body)
        .send()?;
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    if status != 201 {
        return Err(format!(
            "POST /v1/pki/roles -> {status} {text}\n\
             (the issuance endpoints may not exist yet; `--only cfssl` runs the baseline alone)"
        )
        .into());
    }
    Ok(())
}

// ------------------------------------------------------------------ cfssl

struct Cfssl {
    server: Server,
    base: String,
    ca_pem: String,
    version: String,
}

fn ensure_cfssl(opts: &Opts) -> Result<()> {
    if tool_in_path("cfssl") {
        return Ok(());
    }
    let cmd = "apt-get install -y golang-cfssl";
    let is_root = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !opts.install_cfssl || !is_root || !tool_in_path("apt-get") {
        return Err(format!(
            "`cfssl` is not in PATH. Install it (Debian: `sudo {cmd}`) and re-run, \
             or run `--only ours`."
        )
        .into());
    }
    eprintln!("[bench] cfssl is not in PATH: running `{cmd}` (pass --install-cfssl no to refuse)");
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "golang-cfssl"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()?;
    if !status.success() || !tool_in_path("cfssl") {
        return Err(format!(
            "`{cmd}` did not give us cfssl ({status}); try `apt-get update` first"
        )
        .into());
    }
    Ok(())
}

fn start_cfssl(dir: &Path, opts: &Opts, http: &reqwest::blocking::Client) -> Result<Cfssl> {
    ensure_cfssl(opts)?;
    let dir = dir.join("cfssl");
    fs::create_dir_all(&dir)?;
    let version = run(Command::new("cfssl").arg("version"))?
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();

    let ca_csr = dir.join("ca-csr.json");
    fs::write(
        &ca_csr,
        json!({"CN": "cfssl Bench CA", "key": {"algo": "ecdsa", "size": 256},
               "names": [{"O": "bench"}]})
        .to_string(),
    )?;
    let out = run(Command::new("cfssl")
        .arg("gencert")
        .arg("-initca")
        .arg(&ca_csr))?;
    let v: Value = serde_json::from_str(&out)?;
    let ca_pem = v["cert"]
        .as_str()
        .ok_or("cfssl gencert: no cert")?
        .to_string();
    let ca_key = v["key"].as_str().ok_or("cfssl gencert: no key")?;
    fs::write(dir.join("ca.pem"), &ca_pem)?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join("ca-key.pem"))?
            .write_all(ca_key.as_bytes())?;
    }
    fs::write(
        dir.join("cfg.json"),
        json!({"signing": {"default": {"expiry": "24h",
               "usages": ["signing", "key encipherment", "server auth"]}}})
        .to_string(),
    )?;

    let port = free_port()?;
    let log = dir.join("cfssl.log");
    // cfssl cannot notice that we went away, so it runs under a shell that kills it
    // when our pipe to the shell closes (also when this process is killed).
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"cfssl "$@" </dev/null & echo $!; read _ignored; kill $! 2>/dev/null; wait"#)
        .arg("sh")
        .args(["serve", "-address", "127.0.0.1", "-port", &port.to_string()])
        .args([
            "-ca",
            "ca.pem",
            "-ca-key",
            "ca-key.pem",
            "-config",
            "cfg.json",
        ])
        .arg(format!("-loglevel={}", opts.cfssl_loglevel))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(File::create(&log)?))
        .spawn()
        .map_err(|e| format!("cannot start cfssl serve: {e}"))?;
    let stdin = child.stdin.take();
    let mut pid = String::new();
    {
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let mut b = [0u8; 1];
        while stdout.read(&mut b)? == 1 && b[0] != b'\n' {
            pid.push(b[0] as char);
        }
    }
    let mut server = Server {
        name: "cfssl serve",
        child,
        stdin,
        pid,
        log,
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        server.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!("cfssl serve did not listen on {addr} within 60 s").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Answers at all?
    let _ = http.get(format!("http://{addr}/")).send()?;
    Ok(Cfssl {
        server,
        base: format!("http://{addr}"),
        ca_pem,
        version,
    })
}

// ------------------------------------------------------------------ requests

/// One prepared request of a scenario: everything is built once, outside the timed loop.
#[derive(Clone)]
struct Target {
    scenario: Scenario,
    method: reqwest::Method,
    url: String,
    auth: Option<String>,
    body: Option<&'static [u8]>,
}

fn targets(
    ours: Option<&Ours>,
    cfssl: Option<&Cfssl>,
    csr_pem: &str,
) -> BTreeMap<Scenario, Target> {
    let leak =
        |v: Value| -> &'static [u8] { Box::leak(v.to_string().into_bytes().into_boxed_slice()) };
    let mut m = BTreeMap::new();
    if let Some(o) = ours {
        let auth = Some(format!("Bearer {}", o.root_token));
        m.insert(
            Scenario::OursSign,
            Target {
                scenario: Scenario::OursSign,
                method: reqwest::Method::POST,
                url: format!("{}/v1/pki/sign/{ROLE}", o.base),
                auth: auth.clone(),
                body: Some(leak(json!({"csr_pem": csr_pem, "ttl": "24h"}))),
            },
        );
        m.insert(
            Scenario::OursIssue,
            Target {
                scenario: Scenario::OursIssue,
                method: reqwest::Method::POST,
                url: format!("{}/v1/pki/issue/{ROLE}", o.base),
                auth: auth.clone(),
                body: Some(leak(json!({"common_name": LEAF_CN, "ttl": "24h"}))),
            },
        );
        m.insert(
            Scenario::OursRoleGet,
            Target {
                scenario: Scenario::OursRoleGet,
                method: reqwest::Method::GET,
                url: format!("{}/v1/pki/roles/{ROLE}", o.base),
                auth: auth.clone(),
                body: None,
            },
        );
        m.insert(
            Scenario::OursRolePut,
            Target {
                scenario: Scenario::OursRolePut,
                method: reqwest::Method::PUT,
                url: format!("{}/v1/pki/roles/{ROLE_PUT}", o.base),
                auth: auth.clone(),
                body: Some(leak(role_body(ROLE_PUT, &o.intermediate_id))),
            },
        );
        m.insert(
            Scenario::OursCacert,
            Target {
                scenario: Scenario::OursCacert,
                method: reqwest::Method::GET,
                url: format!("{}/v1/pki/ca/{}/certificate", o.base, o.intermediate_id),
                auth: None,
                body: None,
            },
        );
    }
    if let Some(c) = cfssl {
        m.insert(
            Scenario::CfsslSign,
            Target {
                scenario: Scenario::CfsslSign,
                method: reqwest::Method::POST,
                url: format!("{}/api/v1/cfssl/sign", c.base),
                auth: None,
                body: Some(leak(json!({"certificate_request": csr_pem}))),
            },
        );
    }
    m
}

fn build_request(client: &reqwest::Client, t: &Target) -> reqwest::RequestBuilder {
    let mut rb = client.request(t.method.clone(), &t.url);
    if let Some(a) = &t.auth {
        rb = rb.header("Authorization", a);
    }
    if let Some(b) = t.body {
        rb = rb.header("Content-Type", "application/json").body(b);
    }
    rb
}

/// Is this a successful answer of the scenario? (Cheap: the load generator shares the CPUs.)
fn body_ok(s: Scenario, body: &[u8]) -> bool {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    match s {
        Scenario::CfsslSign => has(b"\"success\":true"),
        Scenario::OursCacert | Scenario::OursSign | Scenario::OursIssue => {
            has(b"BEGIN CERTIFICATE")
        }
        Scenario::OursRoleGet | Scenario::OursRolePut => has(b"\"allowed_domains\""),
    }
}

// ------------------------------------------------------------------ one-off correctness probe

/// One request per scenario before any timing: the answer must be a certificate for the
/// CSR's name that chains to the CA with `openssl verify`.
fn probe(
    dir: &Path,
    t: &Target,
    http: &reqwest::blocking::Client,
    ours: Option<&Ours>,
    cfssl: Option<&Cfssl>,
) -> Result<()> {
    let mut rb = http.request(t.method.clone(), &t.url);
    if let Some(a) = &t.auth {
        rb = rb.header("Authorization", a);
    }
    if let Some(b) = t.body {
        rb = rb.header("Content-Type", "application/json").body(b);
    }
    let r = rb.send()?;
    let status = r.status().as_u16();
    let text = r.text()?;
    let name = t.scenario.name();
    if !(200..300).contains(&status) || !body_ok(t.scenario, text.as_bytes()) {
        return Err(format!("{name}: probe request -> {status} {text}").into());
    }
    let v: Value = serde_json::from_str(&text)?;
    let (leaf, root, untrusted) = match t.scenario {
        Scenario::CfsslSign => {
            let c = cfssl.ok_or("no cfssl")?;
            (
                v["result"]["certificate"]
                    .as_str()
                    .ok_or("no certificate")?
                    .to_string(),
                c.ca_pem.clone(),
                None,
            )
        }
        Scenario::OursSign | Scenario::OursIssue => {
            let o = ours.ok_or("no daemon")?;
            if t.scenario == Scenario::OursIssue && v["private_key_type"].as_str() != Some("ec") {
                return Err(format!("{name}: expected an EC private key: {text}").into());
            }
            (
                v["certificate"]
                    .as_str()
                    .ok_or("no certificate")?
                    .to_string(),
                o.root_pem.clone(),
                Some(o.intermediate_pem.clone()),
            )
        }
        Scenario::OursCacert | Scenario::OursRoleGet | Scenario::OursRolePut => return Ok(()),
    };
    let pdir = dir.join("probe");
    fs::create_dir_all(&pdir)?;
    let leaf_p = pdir.join(format!("{name}-leaf.pem"));
    let root_p = pdir.join(format!("{name}-root.pem"));
    fs::write(&leaf_p, &leaf)?;
    fs::write(&root_p, &root)?;
    let mut cmd = Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(&root_p);
    if let Some(u) = untrusted {
        let up = pdir.join(format!("{name}-int.pem"));
        fs::write(&up, u)?;
        cmd.arg("-untrusted").arg(up);
    }
    cmd.arg(&leaf_p);
    run(&mut cmd).map_err(|e| format!("{name}: the issued certificate does not verify: {e}"))?;
    let text = run(Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(&leaf_p))?;
    if !text.contains(LEAF_CN) {
        return Err(format!("{name}: certificate is not for {LEAF_CN}:\n{text}").into());
    }
    eprintln!("[bench] probe {name}: 2xx, certificate verifies with openssl");
    Ok(())
}

// ------------------------------------------------------------------ load generator

#[derive(Default)]
struct StepResult {
    ok: u64,
    non_2xx: u64,
    transport_errors: u64,
    /// Successful answers including the warm-up (for the stored-count check).
    ok_total: u64,
    latencies_us: Vec<u32>,
    window: Duration,
    examples: Vec<String>,
    client_cpu: f64,
    server_cpu: f64,
    machine_busy: f64,
}

impl StepResult {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    /// Server CPU time per successful answer, in milliseconds.
    fn server_ms_per_req(&self) -> f64 {
        self.server_cpu * self.window.as_secs_f64() / self.ok.max(1) as f64 * 1000.0
    }

    /// Busy CPU of everything else on the machine (other processes, the kernel's
    /// softirq time not charged to either side), in cores.
    fn other_cpu(&self) -> f64 {
        (self.machine_busy - self.client_cpu - self.server_cpu).max(0.0)
    }
}

struct WorkerOut {
    ok: u64,
    ok_total: u64,
    non_2xx: u64,
    transport_errors: u64,
    latencies_us: Vec<u32>,
    examples: Vec<String>,
}

async fn worker(
    client: reqwest::Client,
    t: Arc<Target>,
    measure_from: Instant,
    end: Instant,
) -> WorkerOut {
    let mut o = WorkerOut {
        ok: 0,
        ok_total: 0,
        non_2xx: 0,
        transport_errors: 0,
        latencies_us: Vec::with_capacity(16 * 1024),
        examples: Vec::new(),
    };
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        let res = match build_request(&client, &t).send().await {
            Ok(r) => {
                let status = r.status();
                r.bytes().await.map(|b| (status, b))
            }
            Err(e) => Err(e),
        };
        let done = Instant::now();
        let counted = done >= measure_from && done <= end;
        match res {
            Ok((status, body)) if status.is_success() && body_ok(t.scenario, &body) => {
                o.ok_total += 1;
                if counted {
                    o.ok += 1;
                    let us = (done - start).as_micros().min(u32::MAX as u128) as u32;
                    o.latencies_us.push(us);
                }
            }
            Ok((status, body)) => {
                o.non_2xx += 1;
                if o.examples.len() < 3 {
                    o.examples.push(format!(
                        "{status} {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ));
                }
            }
            Err(e) => {
                o.transport_errors += 1;
                if o.examples.len() < 3 {
                    o.examples.push(format!("transport error: {e}"));
                }
                // Don't spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    o
}

fn run_step(
    rt: &tokio::runtime::Runtime,
    t: &Target,
    concurrency: usize,
    opts: &Opts,
    server: &Server,
) -> Result<StepResult> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(120))
        .build()?;
    let t = Arc::new(t.clone());
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.duration;
    let mut jiffies0 = None;
    let mut cpu_at_measure = None;

    let outs = rt.block_on(async {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| tokio::spawn(worker(client.clone(), t.clone(), measure_from, end)))
            .collect();
        // Take the CPU counters at the start of the measured window.
        tokio::time::sleep_until(measure_from.into()).await;
        jiffies0 = machine_jiffies();
        cpu_at_measure = Some((proc_cpu_secs("self"), server.cpu_secs(), Instant::now()));
        let mut outs = Vec::with_capacity(concurrency);
        for h in handles {
            outs.push(h.await);
        }
        outs
    });
    let after = (proc_cpu_secs("self"), server.cpu_secs(), Instant::now());
    let jiffies1 = machine_jiffies();

    let mut r = StepResult {
        window: opts.duration,
        ..Default::default()
    };
    for o in outs {
        let o = o.map_err(|e| format!("worker panicked: {e}"))?;
        r.ok += o.ok;
        r.ok_total += o.ok_total;
        r.non_2xx += o.non_2xx;
        r.transport_errors += o.transport_errors;
        r.latencies_us.extend(o.latencies_us);
        if r.examples.len() < 5 {
            r.examples.extend(o.examples);
        }
    }
    // CPU use over the measured window (the tail after `end` is a few in-flight requests).
    if let Some((Some(c0), Some(s0), t0)) = cpu_at_measure {
        if let (Some(c1), Some(s1)) = (after.0, after.1) {
            let wall = (after.2 - t0).as_secs_f64();
            r.client_cpu = (c1 - c0) / wall;
            r.server_cpu = (s1 - s0) / wall;
        }
    }
    if let (Some((b0, t0)), Some((b1, t1))) = (jiffies0, jiffies1) {
        if t1 > t0 {
            // In cores, like the per-process columns.
            let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            r.machine_busy = (b1 - b0) as f64 / (t1 - t0) as f64 * ncpu;
        }
    }
    Ok(r)
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

// ------------------------------------------------------------------ stored-count check

/// Page through `GET /v1/pki/certificates` and count the rows (issued + signed).
fn count_stored(ours: &Ours, http: &reqwest::blocking::Client) -> Result<u64> {
    let mut n = 0u64;
    let mut cursor: Option<String> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut url = format!(
            "{}/v1/pki/certificates?ca_id={}&limit=1000",
            ours.base, ours.intermediate_id
        );
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let r = http.get(&url).bearer_auth(&ours.root_token).send()?;
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap_or(Value::Null);
        if status != 200 {
            return Err(format!("GET /v1/pki/certificates -> {status} {v}").into());
        }
        n += v["data"].as_array().map(|a| a.len() as u64).unwrap_or(0);
        match (v["has_more"].as_bool(), v["cursor"].as_str()) {
            (Some(true), Some(c)) => cursor = Some(c.to_string()),
            _ => return Ok(n),
        }
        if Instant::now() > deadline {
            return Err(format!("listing took more than 10 minutes ({n} rows so far)").into());
        }
    }
}

// ------------------------------------------------------------------ report

fn machine_facts() -> Vec<(String, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .map(|l| l.trim_start_matches("MemTotal:").trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| {
                l.trim_start_matches("PRETTY_NAME=")
                    .trim_matches('"')
                    .to_string()
            })
        })
        .unwrap_or_else(|| "?".into());
    let softhsm = Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "?".into());
    vec![
        ("nproc".into(), nproc),
        ("CPU".into(), model),
        ("memory".into(), mem),
        ("OS".into(), format!("{os}, kernel {kernel}")),
        ("SoftHSM2".into(), softhsm),
    ]
}

// ------------------------------------------------------------------ main

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("issuance bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = real_main(&opts) {
        eprintln!("\nissuance bench FAILED: {e}");
        std::process::exit(1);
    }
}

fn real_main(opts: &Opts) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("scaivault-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .or_else(|_| {
            tempfile::Builder::new()
                .prefix("scaivault-bench-")
                .tempdir()
        })?;
    let dir = tmp.path().to_path_buf();
    let result = bench(opts, &dir);
    if opts.keep || result.is_err() {
        let kept = tmp.keep();
        eprintln!("[bench] kept {} (logs, token, store)", kept.display());
    }
    result
}

fn bench(opts: &Opts, dir: &Path) -> Result<()> {
    let want_ours = opts.scenarios.iter().any(|s| s.is_ours());
    let want_cfssl = opts.scenarios.contains(&Scenario::CfsslSign);
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()?;

    // The CSR every signer signs.
    let csr_path = dir.join("leaf.csr");
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-keyout"])
        .arg(dir.join("leaf.key"))
        .args(["-subj", &format!("/CN={LEAF_CN}")])
        .args(["-addext", &format!("subjectAltName=DNS:{LEAF_CN}")])
        .arg("-out")
        .arg(&csr_path))
    .map_err(|e| format!("{e}\n(is openssl installed?)"))?;
    let csr_pem = fs::read_to_string(&csr_path)?;

    let mut ours = None;
    if want_ours {
        eprintln!("[bench] starting scaivault-pki on a fresh SoftHSM2 token");
        let o = start_ours(dir, opts, &http)?;
        eprintln!(
            "[bench] daemon at {} (pid {}), CA keys: {}",
            o.base,
            o.server.pid,
            o.key_uris.join(", ")
        );
        ours = Some(o);
    }
    if let Some(o) = &ours {
        if opts.scenarios.iter().any(|s| {
            matches!(
                s,
                Scenario::OursSign | Scenario::OursIssue | Scenario::OursRoleGet
            )
        }) {
            create_role(o, &http, ROLE)?;
        }
        if opts.scenarios.contains(&Scenario::OursRolePut) {
            create_role(o, &http, ROLE_PUT)?;
        }
    }
    let mut cfssl = None;
    if want_cfssl {
        eprintln!("[bench] starting cfssl serve");
        let c = start_cfssl(dir, opts, &http)?;
        eprintln!(
            "[bench] cfssl ({}) at {} (pid {})",
            c.version, c.base, c.server.pid
        );
        cfssl = Some(c);
    }

    let targets = targets(ours.as_ref(), cfssl.as_ref(), &csr_pem);
    let mut acknowledged = 0u64;
    for s in &opts.scenarios {
        probe(dir, &targets[s], &http, ours.as_ref(), cfssl.as_ref())?;
        if s.issues() {
            acknowledged += 1;
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads)
        .enable_all()
        .build()?;

    let per_step = opts.warmup + opts.duration;
    let steps = opts.concurrency.len() * opts.scenarios.len() * opts.rounds;
    eprintln!(
        "[bench] {steps} steps of {:.1} s (+{:.1} s warm-up): about {:.0} s",
        opts.duration.as_secs_f64(),
        opts.warmup.as_secs_f64(),
        (per_step * steps as u32).as_secs_f64()
    );

    // results[(scenario, concurrency)] = one StepResult per round
    let mut results: BTreeMap<(Scenario, usize), Vec<StepResult>> = BTreeMap::new();
    let mut bugs = Vec::new();
    let mut step_no = 0usize;
    for round in 0..opts.rounds {
        for (ci, &c) in opts.concurrency.iter().enumerate() {
            // Interleave and alternate the order, so a slow patch of the machine does not
            // always land on the same scenario.
            let mut order = opts.scenarios.clone();
            if (ci + round) % 2 == 1 {
                order.reverse();
            }
            for s in order {
                step_no += 1;
                let server = match s {
                    Scenario::CfsslSign => &mut cfssl.as_mut().ok_or("no cfssl")?.server,
                    _ => &mut ours.as_mut().ok_or("no daemon")?.server,
                };
                server.check_alive()?;
                let r = run_step(&rt, &targets[&s], c, opts, server)?;
                server.check_alive()?;
                if s.issues() {
                    acknowledged += r.ok_total;
                }
                let mut sorted = r.latencies_us.clone();
                sorted.sort_unstable();
                eprintln!(
                    "[bench] {step_no:>3}/{steps} round {} {:<11} C={c:<3} {:>8.0} certs/s  \
                     p50 {:>7.2} ms  p99 {:>7.2} ms  non-2xx {}  errors {}  \
                     CPU: server {:.0}% ({:.3} ms/req) client {:.0}% other {:.0}%",
                    round + 1,
                    s.name(),
                    r.rate(),
                    percentile_ms(&sorted, 0.50),
                    percentile_ms(&sorted, 0.99),
                    r.non_2xx,
                    r.transport_errors,
                    r.server_cpu * 100.0,
                    r.server_ms_per_req(),
                    r.client_cpu * 100.0,
                    r.other_cpu() * 100.0,
                );
                if r.non_2xx + r.transport_errors > 0 {
                    let msg = format!(
                        "{} C={c}: {} non-2xx, {} transport errors; e.g. {:?}",
                        s.name(),
                        r.non_2xx,
                        r.transport_errors,
                        r.examples
                    );
                    eprintln!("[bench] BUG: {msg}");
                    bugs.push(msg);
                }
                results.entry((s, c)).or_default().push(r);
            }
        }
    }

    let stored = match (&ours, opts.count_stored) {
        (Some(o), true) if acknowledged > 0 => {
            eprintln!("[bench] counting stored certificates ({acknowledged} acknowledged)");
            Some(count_stored(o, &http))
        }
        _ => None,
    };

    // ---- report ----
    let mut md = String::new();
    let _ = writeln!(md, "### Machine\n");
    for (k, v) in machine_facts() {
        let _ = writeln!(md, "- {k}: {v}");
    }
    if let Some(c) = &cfssl {
        let _ = writeln!(
            md,
            "- cfssl: {} (`cfssl serve -loglevel={}`)",
            c.version, opts.cfssl_loglevel
        );
    }
    let _ = writeln!(
        md,
        "- settings: {:.1} s measured + {:.1} s warm-up per step, {} round(s), \
         load generator {} tokio thread(s) in the bench process, daemon hsm.pool_size = {}{}",
        opts.duration.as_secs_f64(),
        opts.warmup.as_secs_f64(),
        opts.rounds,
        opts.client_threads,
        opts.pool_size,
        opts.daemon_log
            .as_ref()
            .map(|f| format!(", RUST_LOG={f}"))
            .unwrap_or_default()
    );
    let _ = writeln!(md, "\n### Results\n");
    let _ = writeln!(
        md,
        "| scenario | C | certs/s | p50 ms | p99 ms | non-2xx | server CPU | server CPU ms/cert | client CPU | other CPU |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &opts.scenarios {
        for &c in &opts.concurrency {
            let Some(rs) = results.get(&(*s, c)) else {
                continue;
            };
            let mut rates: Vec<f64> = rs.iter().map(StepResult::rate).collect();
            rates.sort_by(f64::total_cmp);
            let rate = rates[rates.len() / 2];
            let rate_txt = if rates.len() > 1 {
                format!("{rate:.0} ({:.0}–{:.0})", rates[0], rates[rates.len() - 1])
            } else {
                format!("{rate:.0}")
            };
            let mut lat: Vec<u32> = rs
                .iter()
                .flat_map(|r| r.latencies_us.iter().copied())
                .collect();
            lat.sort_unstable();
            let bad: u64 = rs.iter().map(|r| r.non_2xx + r.transport_errors).sum();
            let n = rs.len() as f64;
            let avg = |f: fn(&StepResult) -> f64| rs.iter().map(f).sum::<f64>() / n * 100.0;
            let _ = writeln!(
                md,
                "| {} | {c} | {rate_txt} | {:.2} | {:.2} | {bad} | {:.0}% | {:.3} | {:.0}% | {:.0}% |",
                s.name(),
                percentile_ms(&lat, 0.50),
                percentile_ms(&lat, 0.99),
                avg(|r| r.server_cpu),
                avg(|r| r.server_ms_per_req()) / 100.0,
                avg(|r| r.client_cpu),
                avg(|r| r.other_cpu()),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nCPU columns: CPU time over the measured window as a share of one core \
         ({} cores = {}%); server = the daemon or cfssl (all its threads), client = this \
         bench process (the load generator), other = the rest of the machine's busy time \
         (other processes). server CPU ms/cert = server CPU time / answers: what one \
         answer costs the server; other load on the machine disturbs it less than \
         certs/s, but not nothing (shared caches, CPU steal).",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::thread::available_parallelism()
            .map(|n| n.get() * 100)
            .unwrap_or(0)
    );

    if results.contains_key(&(Scenario::OursSign, opts.concurrency[0]))
        && results.contains_key(&(Scenario::CfsslSign, opts.concurrency[0]))
    {
        let _ = writeln!(md, "\n### ours-sign / cfssl-sign (median certs/s)\n");
        let _ = writeln!(md, "| C | ratio |");
        let _ = writeln!(md, "|---:|---:|");
        for &c in &opts.concurrency {
            let med = |s: Scenario| {
                let mut v: Vec<f64> = results[&(s, c)].iter().map(StepResult::rate).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (a, b) = (med(Scenario::OursSign), med(Scenario::CfsslSign));
            let _ = writeln!(md, "| {c} | {:.2} |", a / b);
        }
    }

    match &stored {
        Some(Ok(n)) => {
            let _ = writeln!(
                md,
                "\nStored: `GET /v1/pki/certificates?ca_id=<intermediate>` lists {n} certificates; \
                 the daemon acknowledged {acknowledged} (probes + warm-ups + measured). {}",
                if *n >= acknowledged {
                    "Every acknowledged certificate is stored."
                } else {
                    "MISSING RECORDS: that is a bug."
                }
            );
            if *n < acknowledged {
                bugs.push(format!("stored {n} < acknowledged {acknowledged}"));
            }
        }
        Some(Err(e)) => {
            let _ = writeln!(md, "\nStored-count check failed: {e}");
        }
        None => {}
    }
    if !bugs.is_empty() {
        let _ = writeln!(md, "\n### Problems\n");
        for b in &bugs {
            let _ = writeln!(md, "- {b}");
        }
    }

    println!("\n{md}");
    if let Some(p) = &opts.out {
        fs::write(p, &md)?;
        eprintln!("[bench] report written to {}", p.display());
    }

    drop(cfssl);
    drop(ours);
    if bugs.is_empty() {
        Ok(())
    } else {
        Err(format!("{} problem(s), see above", bugs.len()).into())
    }
}
