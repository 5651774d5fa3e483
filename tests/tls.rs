//! HTTPS: the daemon serves the API over rustls with a certificate and key from files,
//! swaps them on SIGHUP without dropping open connections (and keeps the old ones when
//! the new files are bad), and with `client_ca_file` refuses clients without a
//! certificate from that CA. Judged with `openssl s_client`, reqwest over rustls, and a
//! raw rustls connection whose peer certificate we can read.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio_rustls::rustls;

/// A throw-away PKI made by openssl: a CA, two server certificates, a client certificate,
/// and a client certificate from another CA.
struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }
}

fn run_openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        output_text(&out)
    );
}

fn make_ca(dir: &Path, name: &str, cn: &str) {
    run_openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
    );
    common::record_secret_file("tls_key", &dir.join(format!("{name}.key")));
}

fn make_leaf(dir: &Path, ca: &str, name: &str, cn: &str, serial: &str, server: bool) {
    let ext = if server {
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
    } else {
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n"
    };
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    run_openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
        dir,
    );
    run_openssl(
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            serial,
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
        dir,
    );
    common::record_secret_file("tls_key", &dir.join(format!("{name}.key")));
}

fn make_pki(setup: &DaemonSetup) -> TestPki {
    let dir = setup.dir.join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    make_ca(&dir, "ca", "scaivault test TLS CA");
    make_ca(&dir, "other-ca", "some other CA");
    make_leaf(&dir, "ca", "server1", "scaivault-tls-1", "1001", true);
    make_leaf(&dir, "ca", "server2", "scaivault-tls-2", "1002", true);
    make_leaf(&dir, "ca", "client", "scaivault-client", "2001", false);
    make_leaf(
        &dir,
        "other-ca",
        "stranger",
        "stranger-client",
        "3001",
        false,
    );
    // The files the daemon reads; tests overwrite them before a SIGHUP.
    std::fs::copy(dir.join("server1.pem"), dir.join("live.pem")).unwrap();
    std::fs::copy(dir.join("server1.key"), dir.join("live.key")).unwrap();
    TestPki { dir }
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.to_string_lossy())
}

/// A token and a config whose `[tls]` points at the live files of a fresh test PKI.
fn tls_setup(extra_tls: &str) -> Option<(DaemonSetup, TestPki)> {
    if !require_tool("openssl") {
        return None;
    }
    let setup = new_daemon_setup("").expect("daemon setup");
    let pki = make_pki(&setup);
    let mut cfg = std::fs::read_to_string(&setup.config_path).unwrap();
    cfg.push_str(&format!(
        "\n[tls]\ncert_file = {}\nkey_file = {}\n{extra_tls}\n",
        toml_path(&pki.path("live.pem")),
        toml_path(&pki.path("live.key")),
    ));
    std::fs::write(&setup.config_path, cfg).unwrap();
    Some((setup, pki))
}

fn client(pki: &TestPki, identity: Option<&str>) -> TlsClient {
    TlsClient {
        ca_pem: pki.read("ca.pem"),
        identity_pem: identity.map(|name| {
            [
                pki.read(&format!("{name}.pem")),
                pki.read(&format!("{name}.key")),
            ]
            .concat()
        }),
    }
}

fn addr_of(d: &Daemon) -> String {
    d.base_url.trim_start_matches("https://").to_string()
}

/// `openssl s_client` sends one HTTP/1.1 request; returns (exit ok, everything it printed).
fn s_client(d: &Daemon, pki: &TestPki, identity: Option<&str>) -> (bool, String) {
    let ca = pki.path("ca.pem");
    let mut args: Vec<String> = vec![
        "s_client".into(),
        "-connect".into(),
        addr_of(d),
        "-servername".into(),
        "localhost".into(),
        "-CAfile".into(),
        ca.to_string_lossy().into_owned(),
        "-verify_return_error".into(),
        "-ign_eof".into(),
    ];
    if let Some(name) = identity {
        args.push("-cert".into());
        args.push(
            pki.path(&format!("{name}.pem"))
                .to_string_lossy()
                .into_owned(),
        );
        args.push("-key".into());
        args.push(
            pki.path(&format!("{name}.key"))
                .to_string_lossy()
                .into_owned(),
        );
    }
    let mut child = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), output_text(&out))
}

/// A TLS connection of our own (rustls), kept open across requests.
struct RawTls {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl RawTls {
    fn connect(d: &Daemon, pki: &TestPki) -> RawTls {
        let mut roots = rustls::RootCertStore::empty();
        let ca = pem_to_der(&String::from_utf8(pki.read("ca.pem")).unwrap());
        roots.add(ca.into()).unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
        let tcp = TcpStream::connect(addr_of(d)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        RawTls {
            stream: rustls::StreamOwned::new(conn, tcp),
        }
    }

    /// One keep-alive GET; returns (status, body).
    fn get(&mut self, path: &str) -> (u16, String) {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.stream.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = self.stream.read(&mut byte).expect("read response head");
            assert_eq!(n, 1, "connection closed before the response head ended");
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("content-length");
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The DER of the certificate the server presented on this connection.
    fn peer_leaf(&self) -> Vec<u8> {
        self.stream.conn.peer_certificates().unwrap()[0].to_vec()
    }
}

fn der_of(pki: &TestPki, name: &str) -> Vec<u8> {
    pem_to_der(&String::from_utf8(pki.read(name)).unwrap())
}

#[test]
fn the_api_is_served_over_https_and_not_over_plain_http() {
    let Some((setup, pki)) = tls_setup("") else {
        return;
    };
    let d = start_daemon_on_tls(&setup, &client(&pki, None)).expect("TLS daemon");
    assert!(d.base_url.starts_with("https://"));

    let (status, v) = d.get("/v1/pki/ca");
    assert_eq!(status, 200, "{v}");

    let (ok, out) = s_client(&d, &pki, None);
    assert!(ok, "openssl s_client failed:\n{out}");
    assert!(out.contains("scaivault-tls-1"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    assert!(out.contains("x-request-id: req_"), "{out}");

    // Plain HTTP to the TLS port gets no answer from the API.
    let mut tcp = TcpStream::connect(addr_of(&d)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply);
    assert!(
        !String::from_utf8_lossy(&reply).contains("200 OK"),
        "plain HTTP was served on the TLS port"
    );
    assert!(handshake_failures(&d, &pki) >= 1.0);
}

/// `scaivault_tls_handshake_failures_total`, read over a fresh HTTPS connection: a pooled
/// one may just have been closed by the server's idle timeout (1 s in one test).
fn handshake_failures(d: &Daemon, pki: &TestPki) -> f64 {
    let text = client(pki, None)
        .client()
        .unwrap()
        .get(d.url("/metrics"))
        .bearer_auth(&d.root_token)
        .send()
        .expect("GET /metrics")
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("scaivault_tls_handshake_failures_total "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[test]
fn sighup_swaps_the_certificate_for_new_connections_and_keeps_open_ones() {
    let Some((setup, pki)) = tls_setup("") else {
        return;
    };
    let d = start_daemon_on_tls(&setup, &client(&pki, None)).expect("TLS daemon");

    let mut old = RawTls::connect(&d, &pki);
    assert_eq!(old.get("/v1/sys/health").0, 200);
    assert_eq!(old.peer_leaf(), der_of(&pki, "server1.pem"));

    std::fs::copy(pki.path("server2.pem"), pki.path("live.pem")).unwrap();
    std::fs::copy(pki.path("server2.key"), pki.path("live.key")).unwrap();
    d.signal("HUP");
    assert!(
        d.wait_for_log("TLS certificate reloaded", 1, Duration::from_secs(10)),
        "no reload in the log:\n{}",
        d.log_tail(3000)
    );

    // New connections see the new certificate...
    let (ok, out) = s_client(&d, &pki, None);
    assert!(ok, "openssl s_client failed:\n{out}");
    assert!(out.contains("scaivault-tls-2"), "{out}");
    assert!(!out.contains("scaivault-tls-1"), "{out}");
    let mut new = RawTls::connect(&d, &pki);
    assert_eq!(new.get("/v1/sys/health").0, 200);
    assert_eq!(new.peer_leaf(), der_of(&pki, "server2.pem"));

    // ...while the connection opened before the reload is still open and served.
    for _ in 0..3 {
        let (status, body) = old.get("/v1/sys/health");
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(old.peer_leaf(), der_of(&pki, "server1.pem"));

    // The pooled reqwest client keeps working too.
    assert_eq!(d.get("/v1/pki/ca").0, 200);

    // The reload and the new certificate's expiry are in the metrics.
    let m = d.request(reqwest::Method::GET, "/metrics", Auth::Root, &[], None);
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(
        text.contains("scaivault_tls_reloads_total{result=\"ok\"} 1"),
        "{text}"
    );
    let not_after: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("scaivault_tls_certificate_not_after_timestamp_seconds "))
        .expect("no TLS expiry gauge")
        .trim()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // The test certificates are valid for two days.
    assert!(
        not_after > now + 86_400.0 && not_after < now + 3.0 * 86_400.0,
        "{not_after}"
    );
}

#[test]
fn a_client_that_never_completes_the_handshake_is_dropped() {
    let Some((setup, pki)) = tls_setup("") else {
        return;
    };
    let cfg = std::fs::read_to_string(&setup.config_path).unwrap();
    std::fs::write(
        &setup.config_path,
        cfg.replace("[hsm]", "[server]\nheader_read_timeout = \"1s\"\n\n[hsm]"),
    )
    .unwrap();
    let d = start_daemon_on_tls(&setup, &client(&pki, None)).expect("TLS daemon");
    let mut tcp = TcpStream::connect(addr_of(&d)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    // A signal to this process can end the read early; only the server's close counts.
    let ended = loop {
        match tcp.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    let took = started.elapsed();
    // What the daemon did with the connection, should the timing be wrong.
    let why = || {
        format!(
            "daemon exit status: {:?}\nits connection log:\n{}",
            d.wait_exit(Duration::ZERO),
            d.log_lines("api::serve")
        )
    };
    match &ended {
        Ok(0) => {}
        // A reset is a close too (the server drops a socket it never read from).
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the silent client got {other:?} after {took:?}\n{}", why()),
    }
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "the server closed after {took:?} ({ended:?})\n{}",
        why()
    );
    // The socket is dropped as the handshake times out, a moment before the failure is
    // counted: a client quick enough can ask in between.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while handshake_failures(&d, &pki) < 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(handshake_failures(&d, &pki) >= 1.0);
}

#[test]
fn a_bad_reload_keeps_the_certificate_in_use() {
    let Some((setup, pki)) = tls_setup("") else {
        return;
    };
    let d = start_daemon_on_tls(&setup, &client(&pki, None)).expect("TLS daemon");

    // A key that does not belong to the certificate.
    std::fs::copy(pki.path("server2.key"), pki.path("live.key")).unwrap();
    d.signal("HUP");
    assert!(
        d.wait_for_log("TLS reload failed", 1, Duration::from_secs(10)),
        "{}",
        d.log_tail(3000)
    );
    // Then garbage.
    std::fs::write(pki.path("live.pem"), "not a certificate\n").unwrap();
    d.signal("HUP");
    assert!(
        d.wait_for_log("TLS reload failed", 2, Duration::from_secs(10)),
        "{}",
        d.log_tail(3000)
    );
    let log = d.log();
    assert!(
        log.contains("tls.key_file"),
        "the error names no key:\n{log}"
    );
    assert!(
        log.contains("tls.cert_file"),
        "the error names no key:\n{log}"
    );

    let mut conn = RawTls::connect(&d, &pki);
    assert_eq!(conn.get("/v1/sys/health").0, 200);
    assert_eq!(conn.peer_leaf(), der_of(&pki, "server1.pem"));
    let status = d.wait_exit(Duration::from_millis(10));
    assert!(status.is_none(), "the daemon exited: {status:?}");
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate_from_the_client_ca() {
    let Some((setup, pki)) = tls_setup("") else {
        return;
    };
    // Append the client CA to the [tls] section written by tls_setup.
    let mut cfg = std::fs::read_to_string(&setup.config_path).unwrap();
    cfg.push_str(&format!(
        "client_ca_file = {}\n",
        toml_path(&pki.path("ca.pem"))
    ));
    std::fs::write(&setup.config_path, cfg).unwrap();
    let d = start_daemon_on_tls(&setup, &client(&pki, Some("client"))).expect("mTLS daemon");
    assert!(d.log().contains("mutual TLS"), "{}", d.log_tail(2000));

    // With the client certificate: served (reqwest and openssl).
    assert_eq!(d.get("/v1/pki/ca").0, 200);
    let (ok, out) = s_client(&d, &pki, Some("client"));
    assert!(ok && out.contains("HTTP/1.1 200"), "{out}");

    // Without one: refused.
    let bare = client(&pki, None).client().unwrap();
    let r = bare.get(d.url("/v1/sys/health")).send();
    assert!(
        r.is_err(),
        "a client without a certificate was served: {r:?}"
    );
    let (_, out) = s_client(&d, &pki, None);
    assert!(!out.contains("HTTP/1.1 200"), "{out}");
    assert!(out.to_lowercase().contains("alert"), "{out}");
    assert!(
        d.wait_for_log("client certificate refused", 1, Duration::from_secs(5)),
        "{}",
        d.log_tail(3000)
    );

    // With a certificate from another CA: refused.
    let stranger = client(&pki, Some("stranger")).client().unwrap();
    let r = stranger.get(d.url("/v1/sys/health")).send();
    assert!(
        r.is_err(),
        "a client with a foreign certificate was served: {r:?}"
    );
    let (_, out) = s_client(&d, &pki, Some("stranger"));
    assert!(!out.contains("HTTP/1.1 200"), "{out}");
}

#[test]
fn optional_client_certificates_are_checked_when_presented() {
    let Some((setup, pki)) = tls_setup("") else {
        return;
    };
    let mut cfg = std::fs::read_to_string(&setup.config_path).unwrap();
    cfg.push_str(&format!(
        "client_ca_file = {}\nrequire_client_cert = false\n",
        toml_path(&pki.path("ca.pem"))
    ));
    std::fs::write(&setup.config_path, cfg).unwrap();
    let d = start_daemon_on_tls(&setup, &client(&pki, None)).expect("daemon");
    assert_eq!(d.get("/v1/pki/ca").0, 200);
    let good = client(&pki, Some("client")).client().unwrap();
    assert_eq!(
        good.get(d.url("/v1/sys/health")).send().unwrap().status(),
        200
    );
    let stranger = client(&pki, Some("stranger")).client().unwrap();
    assert!(stranger.get(d.url("/v1/sys/health")).send().is_err());
}

#[test]
fn tls_1_3_only_refuses_tls_1_2() {
    let Some((setup, pki)) = tls_setup("min_version = \"1.3\"") else {
        return;
    };
    let d = start_daemon_on_tls(&setup, &client(&pki, None)).expect("daemon");
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr_of(&d), "-tls1_2"])
        .arg("-CAfile")
        .arg(pki.path("ca.pem"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "TLS 1.2 accepted:\n{}",
        output_text(&out)
    );
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr_of(&d), "-tls1_3"])
        .arg("-CAfile")
        .arg(pki.path("ca.pem"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "TLS 1.3 refused:\n{}",
        output_text(&out)
    );
}
