//! Configuration mistakes stop the daemon at start, with exit status 2 and a sentence
//! that names the key — checked on the real binary, before it touches any token.

mod common;

use std::process::Command;

use common::*;

const HSM: &str = "[hsm]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken_label = \"t\"\n";

/// Run `serve` on `config`; returns (exit code, stderr).
fn start_with(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::Builder::new()
        .prefix("scaivault-config-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().join("scaivault-pki.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scaivault-pki"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env("SCAIVAULT_DATA_DIR", dir.path().join("data"))
        .env_remove("SCAIVAULT_LISTEN")
        .env("SCAIVAULT_HSM_PIN", "1234")
        .output()
        .expect("run the daemon");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_values_stop_the_daemon_with_the_key_named() {
    let cases: &[(&str, &str)] = &[
        ("lisen = \"127.0.0.1:1\"\n", "lisen"),
        ("listen = \"localhost\"\n", "listen"),
        ("log_format = \"xml\"\n", "log_format"),
        ("public_base_url = \"pki.example\"\n", "public_base_url"),
        ("[crl]\nnext_update = \"3x\"\n", "crl.next_update"),
        (
            "[crl]\nrebuild_interval = \"100h\"\n",
            "crl.rebuild_interval",
        ),
        (
            "[server]\nrequest_timeout = \"0s\"\n",
            "server.request_timeout",
        ),
        (
            "[server]\nheader_read_timeout = \"ten\"\n",
            "server.header_read_timeout",
        ),
        ("[metrics]\nunauthenticated = true\n", "unauthenticated"),
        (
            "[tls]\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/k.pem\"\n",
            "tls.cert_file",
        ),
        (
            "[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\nmin_version = \"1.0\"\n",
            "tls.min_version",
        ),
        (
            "[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\nrequire_client_cert = true\n",
            "tls.require_client_cert",
        ),
    ];
    for (snippet, key) in cases {
        let config = if snippet.starts_with('[') {
            format!("{HSM}{snippet}")
        } else {
            format!("{snippet}{HSM}")
        };
        let (code, stderr) = start_with(&config);
        assert_eq!(code, Some(2), "{snippet:?}: exit {code:?}\n{stderr}");
        assert!(
            stderr.contains(key),
            "{snippet:?}: the message does not name {key}:\n{stderr}"
        );
    }
    let (code, stderr) = start_with(&HSM.replace("token_label = \"t\"", "token_label = \"\""));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("hsm.token_label"), "{stderr}");
    let (code, stderr) = start_with(&format!("{HSM}pool_size = 0\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("hsm.pool_size"), "{stderr}");
    let (code, stderr) = start_with(&format!("{HSM}pin_file = \"/nonexistent/pin\"\n"));
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("hsm.pin_file"), "{stderr}");
}

#[test]
fn plaintext_on_a_public_address_needs_the_explicit_switch() {
    let (code, stderr) = start_with(&format!("listen = \"0.0.0.0:0\"\n{HSM}"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`listen`"), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("allow_plaintext_non_loopback"), "{stderr}");
    let (code, stderr) = start_with(&format!("listen = \"[::]:0\"\n{HSM}"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`listen`"), "{stderr}");
}

#[test]
fn unreadable_tls_files_stop_the_daemon_before_the_token_is_opened() {
    if !require_tool("openssl") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("scaivault-tlscfg-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let p = |n: &str| dir.path().join(n);
    for name in ["a", "b"] {
        let out = openssl(
            [
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-days",
                "1",
                "-keyout",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([
                p(&format!("{name}.key")).to_string_lossy().into_owned(),
                "-out".into(),
                p(&format!("{name}.pem")).to_string_lossy().into_owned(),
            ]),
        );
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let tls = |cert: &str, key: &str| {
        format!(
            "{HSM}[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            p(cert).to_string_lossy(),
            p(key).to_string_lossy()
        )
    };
    // A key that is not the certificate's.
    let (code, stderr) = start_with(&tls("a.pem", "b.key"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("tls.key_file"), "{stderr}");
    // A key file that holds a certificate.
    let (code, stderr) = start_with(&tls("a.pem", "a.pem"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("tls.key_file"), "{stderr}");
    // A certificate file without a certificate.
    let (code, stderr) = start_with(&tls("a.key", "a.key"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("tls.cert_file"), "{stderr}");
}

/// A PIN the token refuses stops the daemon with exit status 3, which the systemd unit
/// does not restart on (`RestartPreventExitStatus=2 3`): retrying would lock the PIN on a
/// token that counts failed logins. A PIN file others can read is warned about.
#[test]
fn a_refused_pin_exits_3_and_a_loose_pin_file_is_warned_about() {
    if !require_tool("softhsm2-util") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let setup = new_daemon_setup("").unwrap();
    let wrong = setup.dir.join("wrong-pin");
    std::fs::write(&wrong, "000000\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = std::fs::read_to_string(&setup.config_path).unwrap();
    let pin_line = config
        .lines()
        .find(|l| l.starts_with("pin_file"))
        .unwrap()
        .to_string();
    let path = setup.dir.join("wrong-pin.toml");
    std::fs::write(
        &path,
        config.replace(
            &pin_line,
            &format!("pin_file = {:?}", wrong.to_string_lossy()),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scaivault-pki"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env("SOFTHSM2_CONF", &setup.softhsm_conf)
        .env_remove("SCAIVAULT_DATA_DIR")
        .env_remove("SCAIVAULT_LISTEN")
        .env_remove("SCAIVAULT_HSM_PIN")
        .output()
        .expect("run the daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("refused the PIN"), "{stderr}");
    assert!(
        stderr.contains("0644") && stderr.contains("group or others"),
        "{stderr}"
    );

    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/scaivault-pki.service"),
    )
    .unwrap();
    assert!(
        unit.lines()
            .any(|l| l.starts_with("RestartPreventExitStatus=")
                && l.split(['=', ' ']).any(|w| w == "2")
                && l.split(['=', ' ']).any(|w| w == "3")),
        "the unit must not restart after exit 2 or 3"
    );
}
