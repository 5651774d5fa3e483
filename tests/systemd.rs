//! The systemd unit: `systemd-analyze security --offline=yes` rates its exposure 2.0 or
//! lower, and `systemd-analyze verify` finds nothing to say. Skipped, with a printed
//! line, where systemd-analyze is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/scaivault-pki.service")
}

fn have_systemd_analyze() -> bool {
    if tool_available("systemd-analyze") {
        return true;
    }
    eprintln!("skipped: systemd-analyze is not installed; the unit was not checked");
    false
}

#[test]
fn the_unit_is_rated_2_0_or_lower_by_systemd_analyze_security() {
    if !have_systemd_analyze() {
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit_path())
        .output()
        .expect("run systemd-analyze security");
    let text = output_text(&out);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"));
    // "→ Overall exposure level for scaivault-pki.service: 1.4 OK 🙂"
    let score: f64 = line
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    println!("systemd-analyze security: {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
}

#[test]
fn systemd_analyze_verify_is_clean() {
    if !have_systemd_analyze() {
        return;
    }
    // verify checks that every Exec* binary exists, so give it a root holding ours, the
    // kill(1) that ExecReload= uses, and the system's own units for the dependencies.
    let root = tempfile::Builder::new()
        .prefix("scaivault-unit-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let r = root.path();
    for d in ["usr/bin", "usr/lib/systemd", "etc/systemd/system"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
    let bin = r.join("usr/bin/scaivault-pki");
    let exe = env!("CARGO_BIN_EXE_scaivault-pki");
    if std::fs::hard_link(exe, &bin).is_err() {
        std::fs::copy(exe, &bin).unwrap();
    }
    std::fs::copy("/usr/bin/kill", r.join("usr/bin/kill"))
        .or_else(|_| std::fs::copy("/bin/kill", r.join("usr/bin/kill")))
        .expect("copy kill(1)");
    let status = Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(r.join("usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(
        unit_path(),
        r.join("etc/systemd/system/scaivault-pki.service"),
    )
    .unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg("scaivault-pki.service")
        .output()
        .expect("run systemd-analyze verify");
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify says:\n{text}"
    );
}
