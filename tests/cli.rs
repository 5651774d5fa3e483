//! The operator command line, run as the real binary on fresh SoftHSM2 tokens: `init`,
//! the key-ceremony commands, and `backup` / `restore` against a running daemon.
//!
//! Judges: `openssl` (fingerprints, CSR self-signatures, chains, CRLs), `pkcs11-tool`
//! (deleting a key behind the daemon's back), and the daemon's own HTTP answers before
//! and after a restore, compared byte for byte.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    new_daemon_setup, openssl, output_text, require_tool, start_daemon_on, Auth, Daemon,
    DaemonSetup,
};
use serde_json::{json, Value};

/// One run of the command line.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{}", self.stdout))
    }

    /// A failure must be one plain sentence on standard error.
    fn assert_one_sentence(&self, code: i32, contains: &str) {
        assert_eq!(
            self.code, code,
            "exit status; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let lines: Vec<&str> = self.stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "stderr must be one line:\n{}", self.stderr);
        assert!(
            lines[0].starts_with("scaivault-pki: ") && lines[0].ends_with('.'),
            "not a sentence: {}",
            lines[0]
        );
        assert!(
            lines[0].contains(contains),
            "expected {contains:?} in: {}",
            lines[0]
        );
    }
}

fn cli(setup: &DaemonSetup, args: &[&str]) -> Run {
    cli_with_env(setup, &[], args)
}

/// `cli` with some environment variables set (after the usual ones are removed).
fn cli_with_env(setup: &DaemonSetup, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scaivault-pki"));
    cmd.args(args)
        .env("SOFTHSM2_CONF", &setup.softhsm_conf)
        .env_remove("SCAIVAULT_CONFIG")
        .env_remove("SCAIVAULT_DATA_DIR")
        .env_remove("SCAIVAULT_HSM_PIN")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run scaivault-pki");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `scaivault-pki --json ceremony --config C <args>`, which must succeed.
fn ceremony(setup: &DaemonSetup, args: &[&str]) -> Value {
    let config = setup.config_path.to_string_lossy().into_owned();
    let mut all = vec!["--json", "ceremony", "--config", &config];
    all.extend_from_slice(args);
    let r = cli(setup, &all);
    assert_eq!(
        r.code, 0,
        "{all:?}\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    v
}

fn ceremony_fails(setup: &DaemonSetup, args: &[&str]) -> Run {
    let config = setup.config_path.to_string_lossy().into_owned();
    let mut all = vec!["ceremony", "--config", &config];
    all.extend_from_slice(args);
    cli(setup, &all)
}

fn init(setup: &DaemonSetup) -> Value {
    let r = cli(
        setup,
        &[
            "--json",
            "init",
            "--config",
            &setup.config_path.to_string_lossy(),
        ],
    );
    assert_eq!(r.code, 0, "init: {}{}", r.stdout, r.stderr);
    r.json()
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn run_openssl(args: &[&str]) -> String {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl x509 -fingerprint -sha256` as lowercase hex without colons.
fn openssl_fingerprint(cert: &Path) -> String {
    let out = run_openssl(&[
        "x509",
        "-in",
        &path_str(cert),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    out.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase()
}

fn tools() -> bool {
    require_tool("openssl") && require_tool("softhsm2-util") && require_tool("pkcs11-tool")
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// The audit log's entries, as the daemon serves them.
fn audit_entries(d: &Daemon) -> Vec<Value> {
    let (s, v) = d.get("/v1/audit?limit=1000");
    assert_eq!(s, 200, "{v}");
    v["entries"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------- init

#[test]
fn init_checks_the_token_makes_a_private_bootstrap_token_and_is_idempotent() {
    if !tools() {
        return;
    }
    let setup = new_daemon_setup("").unwrap();
    let first = init(&setup);
    assert_eq!(
        first["token"]["label"],
        setup.token_label.as_str(),
        "{first}"
    );
    assert_eq!(first["token"]["mechanisms"]["ec"], true, "{first}");
    assert_eq!(first["store"], "created");
    assert_eq!(first["bootstrap_token"]["created"], true);
    let token_file = setup.data_dir.join("root-token");
    let mode = fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "root-token mode {mode:o}");
    let secret = fs::read_to_string(&token_file).unwrap();
    assert!(secret.trim().len() >= 40, "a 256-bit secret, base64");

    // Again: nothing changes, and it says so.
    let second = init(&setup);
    assert_eq!(second["store"], "existing");
    assert_eq!(second["bootstrap_token"]["created"], false);
    assert_eq!(fs::read_to_string(&token_file).unwrap(), secret);
    let text = cli(&setup, &["init", "--config", &path_str(&setup.config_path)]);
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("already exists"), "{}", text.stdout);

    // The daemon takes the initialised store and accepts the token init made; a root
    // token file put back with a loose mode is set back to 0600 at start.
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o644)).unwrap();
    let d = start_daemon_on(&setup).unwrap();
    assert_eq!(d.root_token, secret.trim());
    assert_eq!(d.get("/v1/pki/ca").0, 200);
    let mode = fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "root-token mode after start {mode:o}");
}

#[test]
fn init_refuses_a_wrong_pin_and_a_bad_configuration_plainly() {
    if !tools() {
        return;
    }
    let setup = new_daemon_setup("").unwrap();
    let config = fs::read_to_string(&setup.config_path).unwrap();

    let wrong_pin = setup.dir.join("wrong-pin");
    fs::write(&wrong_pin, "000000").unwrap();
    // Private, as a PIN file should be (a looser one adds a warning line).
    fs::set_permissions(&wrong_pin, fs::Permissions::from_mode(0o600)).unwrap();
    let bad_pin_config = setup.dir.join("wrong-pin.toml");
    let pin_file = config
        .lines()
        .find(|l| l.starts_with("pin_file"))
        .unwrap()
        .to_string();
    fs::write(
        &bad_pin_config,
        config.replace(&pin_file, &format!("pin_file = {:?}", path_str(&wrong_pin))),
    )
    .unwrap();
    let r = cli(&setup, &["init", "--config", &path_str(&bad_pin_config)]);
    // A refused PIN has an exit status of its own (3): retrying it can lock the PIN.
    r.assert_one_sentence(3, "PIN");
    assert!(
        fs::read_dir(&setup.data_dir).unwrap().next().is_none(),
        "nothing is created before the token checks out"
    );

    let typo = setup.dir.join("typo.toml");
    fs::write(&typo, format!("lisen = \"127.0.0.1:1\"\n{config}")).unwrap();
    let r = cli(&setup, &["init", "--config", &path_str(&typo)]);
    r.assert_one_sentence(2, "lisen");

    // A ceremony without a configuration is a usage error too.
    let r = cli(&setup, &["ceremony", "verify"]);
    r.assert_one_sentence(2, "--config");
    // And a ceremony before init says what to do.
    let r = ceremony_fails(&setup, &["verify"]);
    r.assert_one_sentence(1, "init");
}

// ---------------------------------------------------------------- ceremonies

#[test]
fn roots_and_intermediates_are_made_in_the_token_listed_and_verified() {
    if !tools() {
        return;
    }
    let setup = new_daemon_setup("").unwrap();
    init(&setup);

    let root_pem_file = setup.dir.join("root.pem");
    let root = ceremony(
        &setup,
        &[
            "create-root",
            "--name",
            "ceremony-root",
            "--common-name",
            "Ceremony Root CA",
            "--key-type",
            "ec",
            "--key-size",
            "384",
            "--cert-out",
            &path_str(&root_pem_file),
        ],
    )["ca"]
        .clone();
    // The fingerprint printed is the certificate's, as openssl computes it.
    assert_eq!(
        str_of(&root["fingerprint_sha256"]),
        openssl_fingerprint(&root_pem_file)
    );
    assert_eq!(
        fs::read_to_string(&root_pem_file).unwrap(),
        str_of(&root["certificate_pem"])
    );
    let key_uri = str_of(&root["key_uri"]);
    assert!(
        key_uri.starts_with(&format!(
            "pkcs11:token={};object=scaivault-ca-",
            setup.token_label
        )) && key_uri.ends_with(";type=private"),
        "{key_uri}"
    );
    // The human form prints the fingerprint too, colon-separated as openssl does.
    let human = ceremony_fails(
        &setup,
        &[
            "create-root",
            "--name",
            "second-root",
            "--common-name",
            "Second Root",
            "--key-type",
            "ec",
        ],
    );
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("SHA-256 fingerprint"),
        "{}",
        human.stdout
    );
    let human_fp = human
        .stdout
        .lines()
        .skip_while(|l| !l.contains("SHA-256 fingerprint"))
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(human_fp.len(), 32 * 3 - 1, "{human_fp}");

    let int = ceremony(
        &setup,
        &[
            "create-intermediate",
            "--parent",
            &str_of(&root["id"]),
            "--name",
            "ceremony-int",
            "--common-name",
            "Ceremony Intermediate",
            "--key-type",
            "ec",
        ],
    )["ca"]
        .clone();
    assert_eq!(int["parent_ca_id"], root["id"]);
    let int_pem = setup.dir.join("int.pem");
    fs::write(&int_pem, str_of(&int["certificate_pem"])).unwrap();
    let verified = run_openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        &path_str(&root_pem_file),
        &path_str(&int_pem),
    ]);
    assert!(verified.contains(": OK"), "{verified}");

    // An unknown parent is one sentence.
    ceremony_fails(
        &setup,
        &[
            "create-intermediate",
            "--parent",
            "ca_nope",
            "--name",
            "x",
            "--common-name",
            "X",
        ],
    )
    .assert_one_sentence(1, "ca_nope");

    // list-keys: every CA key private, sensitive, not extractable; each with its public half.
    let listed = ceremony(&setup, &["list-keys"]);
    let objects = listed["objects"].as_array().unwrap();
    for ca in [&root, &int] {
        let label = format!("scaivault-ca-{}", str_of(&ca["id"]));
        let private = objects
            .iter()
            .find(|o| o["label"] == label.as_str() && o["type"] == "private")
            .unwrap_or_else(|| panic!("no private key {label} in {listed}"));
        assert_eq!(private["sensitive"], true, "{private}");
        assert_eq!(private["extractable"], false, "{private}");
        assert_eq!(private["never_extractable"], true, "{private}");
        assert_eq!(private["key_type"], "ec");
        assert_eq!(
            private["uri"], ca["key_uri"],
            "the URI printed is the URI listed"
        );
        assert!(objects
            .iter()
            .any(|o| o["label"] == label.as_str() && o["type"] == "public"));
    }
    let root_key = objects
        .iter()
        .find(|o| o["uri"] == root["key_uri"])
        .unwrap();
    assert_eq!(root_key["bits"], 384);
    // A URI selects: the root's key URI lists exactly that key.
    let one = ceremony(&setup, &["list-keys", &key_uri]);
    assert_eq!(one["objects"].as_array().unwrap().len(), 1, "{one}");
    ceremony_fails(&setup, &["list-keys", "pkcs11:object=x?pin-value=1234"])
        .assert_one_sentence(2, "PIN");

    // verify: all good.
    let v = ceremony(&setup, &["verify"]);
    let cas = v["cas"].as_array().unwrap();
    assert_eq!(cas.len(), 3, "{v}");
    for c in cas {
        assert_eq!(c["present"], true, "{c}");
        assert_eq!(c["public_key_matches"], true, "{c}");
        assert_eq!(c["signature_verifies"], true, "{c}");
        assert_eq!(c["extractable"], false, "{c}");
    }

    // Delete the root's private key behind the daemon's back: verify fails, plainly.
    let key_id = str_of(&root_key["id"]);
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &setup.softhsm_conf)
        .args([
            "--module",
            &setup.module,
            "--token-label",
            &setup.token_label,
        ])
        .args(["--login", "--pin", &setup.pin])
        .args(["--delete-object", "--type", "privkey", "--id", &key_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "pkcs11-tool: {}", output_text(&out));
    let r = ceremony_fails(&setup, &["verify"]);
    r.assert_one_sentence(1, "not in the token");
    assert!(r.stderr.contains(&str_of(&root["id"])), "{}", r.stderr);
    assert!(
        r.stdout.contains("FAILED"),
        "the table still shows: {}",
        r.stdout
    );
    let config = path_str(&setup.config_path);
    let r = cli(
        &setup,
        &["--json", "ceremony", "--config", &config, "verify"],
    );
    assert_eq!(r.code, 1);
    let v = r.json();
    assert_eq!(v["ok"], false);
    assert!(str_of(&v["error"]["message"]).contains("not in the token"));
    let bad: Vec<&Value> = v["cas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["present"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{v}");
    assert_eq!(bad[0]["ca_id"], root["id"]);

    // Every step above is in the audit log, by the operator, and the chain's head is
    // signed after each one (no daemon runs to sign it later).
    let r = cli(
        &setup,
        &[
            "--json",
            "audit",
            "verify",
            "--data-dir",
            &path_str(&setup.data_dir),
        ],
    );
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    let entries = v["report"]["entries"].as_u64().unwrap();
    assert!(entries >= 4, "init, two roots, verifies: {v}");
    assert_eq!(
        v["report"]["last_signed_seq"].as_u64(),
        Some(entries),
        "{v}"
    );
    let store = scaivault_pki::store::Store::open(&setup.data_dir.join("store")).unwrap();
    let log: Vec<Value> = store
        .audit_entries()
        .map(|e| serde_json::from_slice(&e.unwrap().1).unwrap())
        .collect();
    assert!(
        log.iter().any(|e| e["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("ceremony."))
            && e["object_id"] == root["id"]
            && e["outcome"] == "success"
            && e["token_id"]
                .as_str()
                .is_some_and(|t| t.starts_with("cli:"))),
        "{log:?}"
    );
    assert!(
        log.iter().any(|e| e["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("error:"))),
        "the failed verify is recorded too: {log:?}"
    );
}

/// The external root's files: (certificate, key).
fn openssl_root(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("ext-root.pem"), dir.join("ext-root.key"));
    run_openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &path_str(&key),
        "-out",
        &path_str(&cert),
        "-subj",
        "/CN=Offline Root",
        "-days",
        "60",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    (cert, key)
}

/// Sign a CSR with the openssl root; `ca` chooses the CA profile or a leaf's.
fn openssl_sign(dir: &Path, root: &(PathBuf, PathBuf), csr: &Path, ca: bool, out: &str) -> PathBuf {
    let ext = dir.join(format!("{out}.ext"));
    fs::write(
        &ext,
        if ca {
            "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        } else {
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        },
    )
    .unwrap();
    let cert = dir.join(out);
    run_openssl(&[
        "x509",
        "-req",
        "-in",
        &path_str(csr),
        "-CA",
        &path_str(&root.0),
        "-CAkey",
        &path_str(&root.1),
        "-set_serial",
        &format!("0x{}", common::random_hex(8)),
        "-days",
        "30",
        "-extfile",
        &path_str(&ext),
        "-out",
        &path_str(&cert),
    ]);
    cert
}

#[test]
fn an_intermediate_csr_signed_offline_is_imported_for_its_token_key_and_issues() {
    if !tools() {
        return;
    }
    let setup = new_daemon_setup("").unwrap();
    init(&setup);
    let dir = &setup.dir;

    let csr_file = dir.join("int.csr");
    let csr = ceremony(
        &setup,
        &[
            "intermediate-csr",
            "--common-name",
            "Acme Issuing CA 1",
            "--organization",
            "Acme",
            "--country",
            "DE",
            "--out",
            &path_str(&csr_file),
        ],
    )["csr"]
        .clone();
    assert_eq!(
        fs::read_to_string(&csr_file).unwrap(),
        str_of(&csr["csr_pem"])
    );
    let text = run_openssl(&[
        "req",
        "-in",
        &path_str(&csr_file),
        "-noout",
        "-subject",
        "-verify",
    ]);
    assert!(
        text.contains("CN = Acme Issuing CA 1"),
        "the subject is kept as written: {text}"
    );
    let key_uri = str_of(&csr["key_uri"]);
    assert!(key_uri.contains("type=private"), "{key_uri}");

    let root = openssl_root(dir);
    let good = openssl_sign(dir, &root, &csr_file, true, "int.pem");

    // Refused: a CA certificate for some other key ...
    let other_csr = dir.join("other.csr");
    run_openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &path_str(&dir.join("other.key")),
        "-out",
        &path_str(&other_csr),
        "-subj",
        "/CN=Other",
    ]);
    let other = openssl_sign(dir, &root, &other_csr, true, "other.pem");
    ceremony_fails(
        &setup,
        &[
            "import-intermediate",
            "--cert",
            &path_str(&other),
            "--name",
            "x",
        ],
    )
    .assert_one_sentence(1, "public key");
    // ... a certificate for the right key that is not a CA certificate ...
    let leaf = openssl_sign(dir, &root, &csr_file, false, "leaf.pem");
    ceremony_fails(
        &setup,
        &[
            "import-intermediate",
            "--cert",
            &path_str(&leaf),
            "--name",
            "x",
        ],
    )
    .assert_one_sentence(1, "not a CA certificate");
    // ... the right certificate said to be for another key ...
    ceremony_fails(
        &setup,
        &[
            "import-intermediate",
            "--cert",
            &path_str(&good),
            "--name",
            "x",
            "--key",
            "pkcs11:object=scaivault-ca-someone-else;type=private",
        ],
    )
    .assert_one_sentence(1, "not for");
    // ... and a chain whose root did not sign it.
    let wrong_root_dir = dir.join("wrong-root");
    fs::create_dir_all(&wrong_root_dir).unwrap();
    let wrong_root = openssl_root(&wrong_root_dir);
    ceremony_fails(
        &setup,
        &[
            "import-intermediate",
            "--cert",
            &path_str(&good),
            "--name",
            "x",
            "--chain",
            &path_str(&wrong_root.0),
        ],
    )
    .assert_one_sentence(1, "chain");

    // Accepted: the right certificate, its chain, the key named by the URI printed.
    let ca = ceremony(
        &setup,
        &[
            "import-intermediate",
            "--cert",
            &path_str(&good),
            "--name",
            "acme-issuing-1",
            "--chain",
            &path_str(&root.0),
            "--key",
            &key_uri,
        ],
    )["ca"]
        .clone();
    assert_eq!(
        ca["key_uri"],
        key_uri.as_str(),
        "the CA signs with the CSR's key"
    );
    assert_eq!(ca["ca_type"], "intermediate");
    assert_eq!(
        str_of(&ca["fingerprint_sha256"]),
        openssl_fingerprint(&good)
    );
    // Once only.
    ceremony_fails(
        &setup,
        &[
            "import-intermediate",
            "--cert",
            &path_str(&good),
            "--name",
            "again",
        ],
    )
    .assert_one_sentence(1, "already backs");
    assert_eq!(
        ceremony(&setup, &["verify"])["cas"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The daemon serves it and it issues; the store is locked meanwhile.
    let d = start_daemon_on(&setup).unwrap();
    ceremony_fails(&setup, &["verify"]).assert_one_sentence(1, "daemon");
    // Every ceremony step is in the audit log, refusals included, by the operator.
    let entries = audit_entries(&d);
    let step = |action: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(outcome))
                && e["token_id"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("cli:"))
        })
    };
    assert!(step("ceremony.intermediate_csr", "success"), "{entries:?}");
    assert!(
        step("ceremony.import_intermediate", "error:"),
        "{entries:?}"
    );
    assert!(
        step("ceremony.import_intermediate", "success"),
        "{entries:?}"
    );
    assert!(step("ceremony.verify_key", "success"), "{entries:?}");
    assert!(entries
        .iter()
        .any(|e| e["action"] == "ceremony.import_intermediate" && e["object_id"] == ca["id"]));
    // Listing the token needs no store: it works while the daemon runs.
    assert!(!ceremony(&setup, &["list-keys"])["objects"]
        .as_array()
        .unwrap()
        .is_empty());
    let ca_id = str_of(&ca["id"]);
    let (s, v) = d.post(
        "/v1/pki/roles",
        &json!({"name": "imported", "ca_id": ca_id, "allowed_domains": ["example.com"],
                "allow_subdomains": true, "key_type": "ec", "key_bits": 256, "max_ttl": "72h"}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, leaf) = d.post(
        "/v1/pki/issue/imported",
        &json!({"common_name": "www.example.com"}),
    );
    assert_eq!(s, 201, "{leaf}");
    let chain = leaf["ca_chain"].as_array().unwrap();
    assert_eq!(
        chain.len(),
        2,
        "the intermediate and the root given with --chain: {leaf}"
    );
    let leaf_file = dir.join("issued.pem");
    fs::write(&leaf_file, str_of(&leaf["certificate"])).unwrap();
    let ok = run_openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        &path_str(&root.0),
        "-untrusted",
        &path_str(&good),
        &path_str(&leaf_file),
    ]);
    assert!(ok.contains(": OK"), "{ok}");
    // Its CRL is signed by the token key and verifies under the imported certificate.
    let crl = d.request(
        reqwest::Method::GET,
        &format!("/v1/pki/ca/{ca_id}/crl?format=pem"),
        Auth::None,
        &[],
        None,
    );
    assert_eq!(crl.status, 200);
    let crl_file = dir.join("int.crl");
    fs::write(&crl_file, &crl.body).unwrap();
    let crl_ok = openssl([
        "crl",
        "-in",
        &path_str(&crl_file),
        "-noout",
        "-CAfile",
        &path_str(&good),
    ]);
    assert!(
        output_text(&crl_ok).contains("verify OK"),
        "{}",
        output_text(&crl_ok)
    );
}

// ---------------------------------------------------------------- backup and restore

fn get_bytes(d: &Daemon, path: &str) -> Vec<u8> {
    let r = d.request(reqwest::Method::GET, path, Auth::None, &[], None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.body
}

fn issue(d: &Daemon, role: &str, cn: &str) -> Value {
    let (s, v) = d.post(
        &format!("/v1/pki/issue/{role}"),
        &json!({"common_name": cn}),
    );
    assert_eq!(s, 201, "issue {cn}: {v}");
    v
}

/// Every certificate of a CA, as listed.
fn list_ids(d: &Daemon, ca_id: &str) -> Vec<String> {
    let (s, v) = d.get(&format!("/v1/pki/certificates?ca_id={ca_id}&limit=1000"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["has_more"], false);
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| str_of(&c["id"]))
        .collect()
}

#[test]
fn a_backup_taken_while_serving_restores_the_same_cas_certificates_and_crls() {
    if !tools() {
        return;
    }
    // Revocations do not schedule CRL rebuilds, so the CRLs fetched below stay current.
    let setup = new_daemon_setup("[crl]\nrebuild_on_revoke = false").unwrap();
    let d = start_daemon_on(&setup).unwrap();
    let root = d.create_ca(&json!({"name": "bk-root", "common_name": "Backup Root",
        "ca_type": "root", "key_type": "ec"}));
    let root_id = str_of(&root["id"]);
    let int = d.create_ca(&json!({"name": "bk-int", "common_name": "Backup Int",
        "ca_type": "intermediate", "parent_ca_id": root_id, "key_type": "ec"}));
    let int_id = str_of(&int["id"]);
    // A second intermediate takes the issuance that runs during the backup.
    let busy = d.create_ca(&json!({"name": "bk-busy", "common_name": "Backup Busy",
        "ca_type": "intermediate", "parent_ca_id": root_id, "key_type": "ec"}));
    let busy_id = str_of(&busy["id"]);
    for (name, ca, store) in [("kept", &int_id, true), ("busy", &busy_id, false)] {
        let (s, v) = d.post(
            "/v1/pki/roles",
            &json!({"name": name, "ca_id": ca, "allowed_domains": ["example.com"],
                    "allow_subdomains": true, "key_type": "ec", "key_bits": 256,
                    "max_ttl": "72h", "store_private_keys": store}),
        );
        assert_eq!(s, 201, "{v}");
    }
    let issued: Vec<Value> = (0..6)
        .map(|i| issue(&d, "kept", &format!("h{i}.example.com")))
        .collect();
    for c in &issued[..2] {
        let (s, v) = d.post(
            "/v1/pki/revoke",
            &json!({"serial_number": c["serial_number"], "reason": "key_compromise"}),
        );
        assert_eq!(s, 200, "{v}");
    }
    for ca in [&root_id, &int_id] {
        let (s, v) = d.post(&format!("/v1/pki/ca/{ca}/crl"), &json!({}));
        assert_eq!(s, 200, "{v}");
    }

    // What relying parties and clients see before the backup.
    let before_cas = d.get("/v1/pki/ca").1;
    let before_crl = get_bytes(&d, &format!("/v1/pki/ca/{int_id}/crl"));
    let before_delta = get_bytes(&d, &format!("/v1/pki/ca/{int_id}/crl/delta"));
    let before_root_crl = get_bytes(&d, &format!("/v1/pki/ca/{root_id}/crl"));
    let before_certs: Vec<Value> = issued
        .iter()
        .map(|c| {
            d.get(&format!("/v1/pki/certificates/{}", str_of(&c["id"])))
                .1
        })
        .collect();
    let before_ids = list_ids(&d, &int_id);
    assert_eq!(before_ids.len(), 6);

    // Not while the daemon holds the store ...
    let offline = cli(
        &setup,
        &[
            "backup",
            "--out",
            &path_str(&setup.dir.join("no.backup")),
            "--config",
            &path_str(&setup.config_path),
        ],
    );
    offline.assert_one_sentence(1, "--url");
    // ... nor without the right token ...
    let bad_token = setup.dir.join("bad-token");
    fs::write(&bad_token, "not-a-token").unwrap();
    let file = setup.dir.join("pki.backup");
    let r = cli(
        &setup,
        &[
            "backup",
            "--out",
            &path_str(&file),
            "--url",
            &d.base_url,
            "--token-file",
            &path_str(&bad_token),
        ],
    );
    r.assert_one_sentence(1, "401");
    assert!(!file.exists());

    // ... but through the daemon, while it keeps issuing.
    let stop = Arc::new(AtomicBool::new(false));
    let issuer = {
        let stop = stop.clone();
        let base = d.base_url.clone();
        let token = d.root_token.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .post(format!("{base}/v1/pki/issue/busy"))
                    .bearer_auth(&token)
                    .json(&json!({"common_name": format!("b{n}.example.com")}))
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let token_file = setup.data_dir.join("root-token");
    let r = cli(
        &setup,
        &[
            "--json",
            "backup",
            "--out",
            &path_str(&file),
            "--url",
            &d.base_url,
            "--token-file",
            &path_str(&token_file),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let busy_issued = issuer.join().unwrap();
    assert!(busy_issued > 0);

    let summary = r.json();
    // Both backups are in the audit log: the refused one and the one taken.
    let audited = audit_entries(&d);
    let backups: Vec<&Value> = audited
        .iter()
        .filter(|e| e["action"] == "sys.backup")
        .collect();
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert_eq!(backups[0]["outcome"], "error:unauthorized");
    assert_eq!(backups[1]["outcome"], "success");
    assert_eq!(backups[1]["tenant"], "default");
    assert_eq!(summary["source"], "daemon");
    assert_eq!(summary["backup"]["format"], "scaivault-pki-backup");
    assert!(
        summary["backup"]["files"].as_u64().unwrap() >= 3,
        "CRL files: {summary}"
    );
    let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // It never holds a private key in the clear: only the token can unseal stored keys.
    let text = fs::read_to_string(&file).unwrap();
    assert!(!text.contains("PRIVATE KEY"));
    for c in &issued {
        let pk = c["private_key"].as_str().unwrap_or_default();
        let body: String = pk.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!body.is_empty() && !text.contains(&body[..40]));
    }

    // Stop the daemon and lose the data directory.
    d.kill_hard();
    let old_data = setup.dir.join("data.lost");
    fs::rename(&setup.data_dir, &old_data).unwrap();
    fs::create_dir(&setup.data_dir).unwrap();
    fs::write(setup.data_dir.join("stray"), "x").unwrap();
    let r = cli(
        &setup,
        &[
            "restore",
            "--in",
            &path_str(&file),
            "--config",
            &path_str(&setup.config_path),
            "--data-dir",
            &path_str(&setup.data_dir),
        ],
    );
    r.assert_one_sentence(1, "not empty");
    fs::remove_file(setup.data_dir.join("stray")).unwrap();
    let r = cli(
        &setup,
        &[
            "--json",
            "restore",
            "--in",
            &path_str(&file),
            "--config",
            &path_str(&setup.config_path),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["backup"]["sha256"], summary["backup"]["sha256"]);
    // The admin token's secret is not in the backup; the operator keeps it apart.
    fs::copy(
        old_data.join("root-token"),
        setup.data_dir.join("root-token"),
    )
    .unwrap();

    // The same token, the restored store: the same answers, byte for byte.
    let d = start_daemon_on(&setup).unwrap();
    let mut after_cas = d.get("/v1/pki/ca").1;
    let mut before_cas = before_cas;
    for list in [&mut after_cas, &mut before_cas] {
        for ca in list["data"].as_array_mut().unwrap() {
            // The busy CA issued on after the CAs were listed: its count moved on.
            if ca["id"] == busy_id.as_str() {
                ca.as_object_mut().unwrap().remove("certificates_issued");
            }
        }
    }
    assert_eq!(after_cas, before_cas, "the same CAs");
    assert_eq!(
        get_bytes(&d, &format!("/v1/pki/ca/{int_id}/crl")),
        before_crl
    );
    assert_eq!(
        get_bytes(&d, &format!("/v1/pki/ca/{int_id}/crl/delta")),
        before_delta
    );
    assert_eq!(
        get_bytes(&d, &format!("/v1/pki/ca/{root_id}/crl")),
        before_root_crl
    );
    for (c, before) in issued.iter().zip(&before_certs) {
        let (s, now) = d.get(&format!("/v1/pki/certificates/{}", str_of(&c["id"])));
        assert_eq!(s, 200);
        assert_eq!(&now, before, "certificate {}", c["id"]);
    }
    assert_eq!(list_ids(&d, &int_id), before_ids);
    // Whatever the busy CA had when the snapshot was taken is whole: listed and readable.
    let busy_ids = list_ids(&d, &busy_id);
    assert!(busy_ids.len() as u32 <= busy_issued);
    eprintln!(
        "busy CA: {} certificates in the backup, {busy_issued} issued while it ran",
        busy_ids.len()
    );
    for id in &busy_ids {
        assert_eq!(d.get(&format!("/v1/pki/certificates/{id}")).0, 200, "{id}");
    }
    // A stored private key unseals with the same token.
    let (s, pk) = d.post(
        &format!(
            "/v1/pki/certificates/{}/private-key",
            str_of(&issued[3]["id"])
        ),
        &json!({}),
    );
    assert_eq!(s, 200, "{pk}");
    assert_eq!(pk["private_key"], issued[3]["private_key"]);

    // And it still issues, without overwriting anything it had.
    let fresh = issue(&d, "kept", "after.example.com");
    let mut ids = list_ids(&d, &int_id);
    assert_eq!(ids.len(), 7);
    ids.retain(|i| *i != str_of(&fresh["id"]));
    assert_eq!(ids, before_ids);
    let (s, v) = d.post(
        "/v1/pki/revoke",
        &json!({"serial_number": fresh["serial_number"], "reason": "superseded"}),
    );
    assert_eq!(s, 200, "{v}");
    let (s, meta) = d.post(&format!("/v1/pki/ca/{int_id}/crl"), &json!({}));
    assert_eq!(s, 200);
    assert_eq!(
        meta["entries"], 3,
        "two restored revocations and the new one: {meta}"
    );
    assert!(
        meta["crl_number"].as_u64().unwrap() > 1_700_000_000_000,
        "CRL numbers jump past any published after the backup: {meta}"
    );
    let dir = &setup.dir;
    let files = [
        ("root.pem", str_of(&fresh["ca_chain"][1])),
        ("int.pem", str_of(&fresh["ca_chain"][0])),
        ("fresh.pem", str_of(&fresh["certificate"])),
    ];
    for (name, pem) in &files {
        fs::write(dir.join(name), pem).unwrap();
    }
    fs::write(
        dir.join("int.crl"),
        get_bytes(&d, &format!("/v1/pki/ca/{int_id}/crl?format=pem")),
    )
    .unwrap();
    fs::write(
        dir.join("root.crl"),
        get_bytes(&d, &format!("/v1/pki/ca/{root_id}/crl?format=pem")),
    )
    .unwrap();
    let crls = dir.join("crls.pem");
    fs::write(
        &crls,
        [
            fs::read(dir.join("int.crl")).unwrap(),
            fs::read(dir.join("root.crl")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let out = openssl([
        "verify",
        "-crl_check_all",
        "-CAfile",
        &path_str(&dir.join("root.pem")),
        "-untrusted",
        &path_str(&dir.join("int.pem")),
        "-CRLfile",
        &path_str(&crls),
        &path_str(&dir.join("fresh.pem")),
    ]);
    assert!(
        output_text(&out).contains("certificate revoked"),
        "the new revocation is on the restored CA's CRL: {}",
        output_text(&out)
    );
    drop(d);

    // Offline: a stopped daemon's data directory backs up directly (signed by its token,
    // so the configuration is needed, not just the directory); damage is caught.
    let r = cli(
        &setup,
        &[
            "backup",
            "--out",
            &path_str(&setup.dir.join("dir-only.backup")),
            "--data-dir",
            &path_str(&setup.data_dir),
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    std::thread::sleep(Duration::from_millis(500));
    let offline_file = setup.dir.join("offline.backup");
    let mut tries = 0;
    let r = loop {
        let r = cli(
            &setup,
            &[
                "--json",
                "backup",
                "--out",
                &path_str(&offline_file),
                "--config",
                &path_str(&setup.config_path),
            ],
        );
        // The daemon exits when its standard input closes; give it a moment.
        if r.code == 0 || tries > 50 {
            break r;
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["source"], "data_dir");
    assert_eq!(
        r.json()["backup"]["signature"]["key_sha256"],
        summary["backup"]["signature"]["key_sha256"],
        "signed by the same audit key as the daemon's backup"
    );
    let mut bytes = fs::read(&offline_file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let damaged = setup.dir.join("damaged.backup");
    fs::write(&damaged, &bytes).unwrap();
    let r = cli(&setup, &["restore", "--check", "--in", &path_str(&damaged)]);
    r.assert_one_sentence(1, "damaged");
    let r = cli(
        &setup,
        &[
            "restore",
            "--in",
            &path_str(&damaged),
            "--config",
            &path_str(&setup.config_path),
            "--data-dir",
            &path_str(&setup.dir.join("x")),
        ],
    );
    r.assert_one_sentence(1, "damaged");
    assert!(!setup.dir.join("x").join("store").exists());
}

// ---------------------------------------------------------------- refusals before any work

/// The token's objects, as `list-keys --json` lists them: (label, type) pairs.
fn token_objects(setup: &DaemonSetup) -> Vec<(String, String)> {
    let listed = ceremony(setup, &["list-keys"]);
    let mut v: Vec<(String, String)> = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (str_of(&o["label"]), str_of(&o["type"])))
        .collect();
    v.sort();
    v
}

/// The CAs in the store of `setup` (no process may hold it), every tenant.
fn stored_ca_ids(setup: &DaemonSetup) -> Vec<String> {
    let store = scaivault_pki::store::Store::open(&setup.data_dir.join("store")).unwrap();
    let mut ids: Vec<String> = store
        .list_tenants()
        .unwrap()
        .iter()
        .flat_map(|t| store.list_cas(&t.name).unwrap())
        .map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_ceremony_refused_for_its_output_path_or_tenant_makes_nothing() {
    if !tools() {
        return;
    }
    let setup = new_daemon_setup("").unwrap();
    init(&setup);
    let config = path_str(&setup.config_path);
    let objects_before = token_objects(&setup);
    let cas_before = stored_ca_ids(&setup);
    let missing_dir = setup.dir.join("no-such-dir");

    // An output file in a directory that does not exist: refused before the token is
    // touched, with no CA, no key pair and no file made.
    let r = cli(
        &setup,
        &[
            "--json",
            "ceremony",
            "--config",
            &config,
            "create-root",
            "--name",
            "never",
            "--common-name",
            "Never",
            "--key-type",
            "ec",
            "--cert-out",
            &path_str(&missing_dir.join("x.pem")),
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        str_of(&v["error"]["message"]).contains("certificate file"),
        "{v}"
    );
    ceremony_fails(
        &setup,
        &[
            "intermediate-csr",
            "--common-name",
            "Never",
            "--out",
            &path_str(&missing_dir.join("q.csr")),
        ],
    )
    .assert_one_sentence(2, "CSR file");

    // An existing file is never overwritten, and stays as it was.
    let existing = setup.dir.join("existing.pem");
    fs::write(&existing, "keep me\n").unwrap();
    ceremony_fails(
        &setup,
        &[
            "create-root",
            "--name",
            "never",
            "--common-name",
            "Never",
            "--key-type",
            "ec",
            "--cert-out",
            &path_str(&existing),
        ],
    )
    .assert_one_sentence(2, "already exists");
    assert_eq!(fs::read_to_string(&existing).unwrap(), "keep me\n");

    // A tenant that does not exist.
    ceremony_fails(
        &setup,
        &[
            "create-root",
            "--name",
            "never",
            "--common-name",
            "Never",
            "--key-type",
            "ec",
            "--tenant",
            "no-such-tenant",
        ],
    )
    .assert_one_sentence(2, "no-such-tenant");

    // A step that fails after its output file was created leaves no empty file behind.
    let cert_out = setup.dir.join("dup.pem");
    ceremony_fails(
        &setup,
        &[
            "create-intermediate",
            "--parent",
            "ca_nope",
            "--name",
            "never",
            "--common-name",
            "Never",
            "--cert-out",
            &path_str(&cert_out),
        ],
    )
    .assert_one_sentence(1, "ca_nope");
    assert!(!cert_out.exists(), "the unfilled output file is removed");

    assert_eq!(
        token_objects(&setup),
        objects_before,
        "no key pair was made"
    );
    assert_eq!(stored_ca_ids(&setup), cas_before, "no CA was recorded");
    assert!(!missing_dir.exists());

    // `--tenant` means nothing to verify and list-keys, so they do not take it; under
    // --json a command-line mistake is a JSON object too.
    let r = cli(
        &setup,
        &[
            "--json", "ceremony", "--config", &config, "verify", "--tenant", "x",
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["ok"], false);
    let r = cli(
        &setup,
        &[
            "--json",
            "ceremony",
            "--config",
            &config,
            "create-root",
            "--name",
            "x",
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        str_of(&v["error"]["message"]).contains("--common-name"),
        "{v}"
    );
}

/// The name /etc/passwd gives this process's real uid, as the CLI should record it.
fn own_user_name() -> String {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
        })
        .unwrap_or(format!("uid={uid}"))
}

#[test]
fn the_operator_is_the_real_user_and_the_pin_can_come_from_the_environment() {
    if !tools() {
        return;
    }
    let setup = new_daemon_setup("").unwrap();
    init(&setup);

    // USER and LOGNAME do not name the actor; SUDO_USER is kept beside the real name.
    let config = path_str(&setup.config_path);
    let r = cli_with_env(
        &setup,
        &[
            ("USER", "someone-else"),
            ("LOGNAME", "someone-else"),
            ("SUDO_USER", "alice"),
        ],
        &["--json", "ceremony", "--config", &config, "verify"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let store = scaivault_pki::store::Store::open(&setup.data_dir.join("store")).unwrap();
    let actors: Vec<String> = store
        .audit_entries()
        .map(|e| serde_json::from_slice::<Value>(&e.unwrap().1).unwrap())
        .filter(|e| e["action"] == "ceremony.verify")
        .map(|e| str_of(&e["token_id"]))
        .collect();
    drop(store);
    let name = own_user_name();
    let expected = if name == "alice" {
        "cli:alice".to_string()
    } else {
        format!("cli:{name} (sudo from alice)")
    };
    assert_eq!(actors, vec![expected]);

    // Under systemd, `pin_file` names a credential that exists only while the service
    // runs; SCAIVAULT_HSM_PIN wins over it for operator commands.
    let gone = setup.dir.join("gone.toml");
    let text = fs::read_to_string(&setup.config_path).unwrap();
    let pin_line = text.lines().find(|l| l.starts_with("pin_file")).unwrap();
    fs::write(
        &gone,
        text.replace(pin_line, "pin_file = \"/nonexistent/hsm-pin\""),
    )
    .unwrap();
    let gone = path_str(&gone);
    let r = cli_with_env(
        &setup,
        &[("SCAIVAULT_HSM_PIN", setup.pin.as_str())],
        &["--json", "ceremony", "--config", &gone, "verify"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = cli_with_env(
        &setup,
        &[("SCAIVAULT_HSM_PIN", "000000")],
        &["ceremony", "--config", &gone, "list-keys"],
    );
    r.assert_one_sentence(3, "refused the PIN");
    let r = cli(&setup, &["ceremony", "--config", &gone, "list-keys"]);
    r.assert_one_sentence(2, "hsm.pin_file");

    // A PIN file others can read works, with a warning.
    let pin_file = text
        .lines()
        .find_map(|l| l.strip_prefix("pin_file = "))
        .map(|q| q.trim_matches('"').to_string())
        .unwrap();
    fs::set_permissions(&pin_file, fs::Permissions::from_mode(0o644)).unwrap();
    let r = cli(&setup, &["ceremony", "--config", &config, "list-keys"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("0644"),
        "{}",
        r.stderr
    );
    fs::set_permissions(&pin_file, fs::Permissions::from_mode(0o600)).unwrap();
}

/// A backup file's lines, rewritten by `edit` (which may add lines after a line by
/// returning them), with the `end` line's counts left to `edit` and its checksum
/// recomputed: what anyone who can write backup storage can do.
fn rewrite_backup(from: &Path, to: &Path, edit: impl Fn(&mut Value) -> Vec<Value>) {
    use sha2::{Digest, Sha256};
    let text = fs::read_to_string(from).unwrap();
    let mut body = String::new();
    for line in text.lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        let extra = edit(&mut v);
        if v["type"] == "end" {
            v["sha256"] = hex::encode(Sha256::digest(body.as_bytes())).into();
        }
        for l in std::iter::once(&v).chain(&extra) {
            body.push_str(&l.to_string());
            body.push('\n');
        }
    }
    fs::write(to, body).unwrap();
}

/// The QA finding's recipe: an `api_tokens` row for a secret of the attacker's choosing,
/// with `sys` and `admin`, and the checksum recomputed.
fn forge_admin_token(from: &Path, to: &Path) {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let record = json!({"id": "tok_000000000000000000f0f0f0", "name": "forged",
        "tenant": "default", "capabilities": ["sys", "admin"],
        "created_at": "2026-11-26T23:45:31Z", "expires_at": null, "revoked_at": null,
        "created_by": null});
    rewrite_backup(from, to, |v| {
        if v["type"] == "tree" && v["name"] == "api_tokens" {
            return vec![json!({"type": "entry",
                "k": b64(&Sha256::digest(b"forged-secret")),
                "v": b64(record.to_string().as_bytes())})];
        }
        if v["type"] == "end" {
            v["entries"] = (v["entries"].as_u64().unwrap() + 1).into();
        }
        vec![]
    });
}

/// A backup as written before backups were signed: format version 1, no signature.
fn as_version_1(from: &Path, to: &Path) {
    rewrite_backup(from, to, |v| {
        if v["type"] == "header" {
            v["version"] = 1.into();
        }
        if let Some(end) = v.as_object_mut().filter(|o| o["type"] == "end") {
            end.remove("key_sha256");
            end.remove("signature");
        }
        vec![]
    });
}

/// `backup --url` against a running daemon, which must succeed; its JSON.
fn backup_through(setup: &DaemonSetup, d: &Daemon, out: &Path) -> Value {
    let r = cli(
        setup,
        &[
            "--json",
            "backup",
            "--out",
            &path_str(out),
            "--url",
            &d.base_url,
            "--token-file",
            &path_str(&setup.data_dir.join("root-token")),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    r.json()
}

#[test]
fn a_restore_accepts_only_a_backup_signed_by_the_audit_key_in_its_token() {
    if !tools() {
        return;
    }
    let setup = new_daemon_setup("").unwrap();
    let d = start_daemon_on(&setup).unwrap();
    d.create_ca(
        &json!({"name": "sig-root", "common_name": "Signed Backup Root",
        "ca_type": "root", "key_type": "ec"}),
    );
    let good = setup.dir.join("good.backup");
    let taken = backup_through(&setup, &d, &good);
    let key_sha256 = str_of(&taken["backup"]["signature"]["key_sha256"]);
    assert_eq!(key_sha256.len(), 64, "{taken}");
    assert_eq!(taken["backup"]["version"], 2);
    // Another token's daemon, with an audit key of its own.
    let other = new_daemon_setup("").unwrap();
    let od = start_daemon_on(&other).unwrap();
    let foreign = setup.dir.join("foreign.backup");
    let foreign_taken = backup_through(&other, &od, &foreign);
    assert_ne!(
        foreign_taken["backup"]["signature"]["key_sha256"],
        taken["backup"]["signature"]["key_sha256"]
    );
    od.kill_hard();
    d.kill_hard();

    let config = path_str(&setup.config_path);
    let restore_into = |file: &Path, dir: &str, extra: &[&str]| {
        let file = path_str(file);
        let target = path_str(&setup.dir.join(dir));
        let mut args = vec![
            "--json",
            "restore",
            "--in",
            &file,
            "--config",
            &config,
            "--data-dir",
            &target,
        ];
        args.extend_from_slice(extra);
        cli(&setup, &args)
    };
    let refused = |r: &Run, dir: &str, why: &str| {
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert_eq!(r.json()["ok"], false);
        let msg = str_of(&r.json()["error"]["message"]);
        assert!(msg.contains(why), "expected {why:?} in: {msg}");
        assert!(
            r.stderr.trim().lines().count() == 1 && r.stderr.contains(why),
            "{}",
            r.stderr
        );
        assert!(!setup.dir.join(dir).join("store").exists(), "{dir}");
    };

    // The QA's forgery: an admin token row, the checksum recomputed. The checksum alone
    // is satisfied (integrity is all a check without the token can tell) ...
    let forged = setup.dir.join("forged.backup");
    forge_admin_token(&good, &forged);
    let r = cli(
        &setup,
        &["--json", "restore", "--check", "--in", &path_str(&forged)],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["signature"]["status"], "not_checked");
    assert_eq!(
        r.json()["backup"]["entries"].as_u64().unwrap(),
        taken["backup"]["entries"].as_u64().unwrap() + 1
    );
    // ... but the signature is not, so neither a check with the token nor a restore passes.
    let r = cli(
        &setup,
        &[
            "--json",
            "restore",
            "--check",
            "--in",
            &path_str(&forged),
            "--config",
            &config,
        ],
    );
    refused(&r, "none", "signature does not verify");
    refused(
        &restore_into(&forged, "forged", &[]),
        "forged",
        "signature does not verify",
    );
    // Not even when unsigned backups are accepted: this one is signed, badly.
    refused(
        &restore_into(&forged, "forged", &["--accept-unsigned"]),
        "forged",
        "signature does not verify",
    );

    // Signed by another token's audit key: not this CA's backup.
    refused(
        &restore_into(&foreign, "foreign", &[]),
        "foreign",
        "not in this token",
    );

    // The forgery with its signature stripped is no old backup: version 2 is always signed.
    let stripped = setup.dir.join("stripped.backup");
    rewrite_backup(&forged, &stripped, |v| {
        if let Some(end) = v.as_object_mut().filter(|o| o["type"] == "end") {
            end.remove("key_sha256");
            end.remove("signature");
        }
        vec![]
    });
    refused(
        &restore_into(&stripped, "stripped", &["--accept-unsigned"]),
        "stripped",
        "without its signature",
    );

    // An unsigned (version 1) backup: refused unless accepted explicitly, and then loudly.
    let old = setup.dir.join("old.backup");
    as_version_1(&good, &old);
    refused(&restore_into(&old, "old", &[]), "old", "--accept-unsigned");
    let r = cli(
        &setup,
        &[
            "--json",
            "restore",
            "--check",
            "--in",
            &path_str(&old),
            "--config",
            &config,
        ],
    );
    refused(&r, "none", "not signed");
    let r = restore_into(&old, "old", &["--accept-unsigned"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["signature"]["status"], "unsigned_accepted");
    assert!(
        r.stderr.contains("WARN") && r.stderr.contains("UNSIGNED"),
        "a warning in the log: {}",
        r.stderr
    );
    assert!(setup.dir.join("old").join("store").is_dir());

    // The genuine backup: checked with the token, then restored. (That a restored store
    // serves the same answers is the test above.)
    let r = cli(
        &setup,
        &[
            "--json",
            "restore",
            "--check",
            "--in",
            &path_str(&good),
            "--config",
            &config,
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["signature"]["status"], "verified");
    assert_eq!(r.json()["signature"]["key_sha256"], key_sha256.as_str());
    let r = restore_into(&good, "good", &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["signature"]["status"], "verified");
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(setup.dir.join("good").join("store").is_dir());
    assert_eq!(r.json()["backup"]["sha256"], taken["backup"]["sha256"]);
}
