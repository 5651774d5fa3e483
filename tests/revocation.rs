//! Revocation and CRLs against the real daemon on a throw-away SoftHSM2 token:
//! revoke / unrevoke, full and delta CRLs, their HTTP forms, rebuild timing,
//! revoked intermediates, expired and held certificates.
//!
//! One daemon serves most tests (see `common::daemon`); tests run in parallel,
//! so each makes its own CAs and roles with unique names. A few tests start a
//! daemon of their own (restart, `public_base_url`, revocation storms). CRLs
//! are judged by openssl, pkilint and Python `cryptography`, not by our own
//! parser.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    assert_error, daemon, der_to_pem, merge, new_daemon_setup, openssl, output_text, pem_to_der,
    require_python_cryptography, require_tool, start_daemon_on, unique_name, Auth, Daemon, Resp,
};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The nine reason names of the spec, with the RFC 5280 name Python
/// `cryptography` gives the CRL entry's reasonCode (None: no reasonCode at
/// all) and the text `openssl crl -text` prints for it.
const REASONS: [(&str, Option<&str>, Option<&str>); 9] = [
    ("unspecified", None, None),
    (
        "key_compromise",
        Some("keyCompromise"),
        Some("Key Compromise"),
    ),
    ("ca_compromise", Some("cACompromise"), Some("CA Compromise")),
    (
        "affiliation_changed",
        Some("affiliationChanged"),
        Some("Affiliation Changed"),
    ),
    ("superseded", Some("superseded"), Some("Superseded")),
    (
        "cessation_of_operation",
        Some("cessationOfOperation"),
        Some("Cessation Of Operation"),
    ),
    (
        "certificate_hold",
        Some("certificateHold"),
        Some("Certificate Hold"),
    ),
    (
        "privilege_withdrawn",
        Some("privilegeWithdrawn"),
        Some("Privilege Withdrawn"),
    ),
    ("aa_compromise", Some("aACompromise"), Some("AA Compromise")),
];

/// Default `crl.next_update`.
const NEXT_UPDATE_SECS: i64 = 72 * 3600;

/// How long a revocation may take to reach the CRL without a POST
/// (`crl.revoke_delay` is 1 s by default).
const REBUILD_WAIT: Duration = Duration::from_secs(3);

/// Python `cryptography` reading of one CRL. argv: CRL DER path, issuer
/// certificate PEM path, JSON list of serials (hex) to look up. Prints JSON:
/// sig_valid, issuer_matches, number, number_critical, delta_base,
/// delta_critical, aki, ca_ski (upper hex), freshest (URLs or null),
/// freshest_critical, this_update, next_update (ISO 8601), extensions
/// [[oid, critical]], entries {SERIALHEX: {reason, date, ext_oids}}, lookup
/// {serial: found by get_revoked_certificate_by_serial_number}.
const CRL_DUMP: &str = r#"
import json, sys
from cryptography import x509

with open(sys.argv[1], "rb") as f:
    crl = x509.load_der_x509_crl(f.read())
with open(sys.argv[2], "rb") as f:
    ca = x509.load_pem_x509_certificate(f.read())
lookup = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []

def ext(obj, cls):
    try:
        return obj.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None

out = {}
out["sig_valid"] = crl.is_signature_valid(ca.public_key())
out["issuer_matches"] = crl.issuer == ca.subject
n = ext(crl, x509.CRLNumber)
out["number"] = n.value.crl_number if n else None
out["number_critical"] = n.critical if n else None
d = ext(crl, x509.DeltaCRLIndicator)
out["delta_base"] = d.value.crl_number if d else None
out["delta_critical"] = d.critical if d else None
aki = ext(crl, x509.AuthorityKeyIdentifier)
out["aki"] = aki.value.key_identifier.hex().upper() if aki and aki.value.key_identifier else None
ski = ext(ca, x509.SubjectKeyIdentifier)
out["ca_ski"] = ski.value.digest.hex().upper() if ski else None
fr = ext(crl, x509.FreshestCRL)
out["freshest"] = [g.value for dp in fr.value for g in (dp.full_name or [])] if fr else None
out["freshest_critical"] = fr.critical if fr else None
out["this_update"] = crl.last_update_utc.isoformat()
out["next_update"] = crl.next_update_utc.isoformat() if crl.next_update_utc else None
out["extensions"] = [[e.oid.dotted_string, e.critical] for e in crl.extensions]
entries = {}
for rc in crl:
    r = ext(rc, x509.CRLReason)
    entries[format(rc.serial_number, "X")] = {
        "reason": r.value.reason.value if r else None,
        "date": rc.revocation_date_utc.isoformat(),
        "ext_oids": [e.oid.dotted_string for e in rc.extensions],
    }
out["entries"] = entries
out["lookup"] = {
    s: crl.get_revoked_certificate_by_serial_number(int(s, 16)) is not None for s in lookup
}
print(json.dumps(out))
"#;

/// A self-signed EC certificate for argv[1] that expired yesterday, as PEM.
const EXPIRED_CERT: &str = r#"
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sys.argv[1])])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(days=10))
    .not_valid_after(now - datetime.timedelta(days=1))
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .add_extension(x509.SubjectAlternativeName([x509.DNSName(sys.argv[1])]), critical=False)
    .sign(key, hashes.SHA256())
)
sys.stdout.write(cert.public_bytes(serialization.Encoding.PEM).decode())
"#;

// ---------------------------------------------------------------- helpers

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"))
}

fn id_of(v: &Value) -> String {
    s(v, "id").to_string()
}

fn serial_of(v: &Value) -> String {
    s(v, "serial_number").to_string()
}

fn parse_time(v: &Value, field: &str) -> OffsetDateTime {
    let t = s(v, field);
    OffsetDateTime::parse(t, &Rfc3339)
        .unwrap_or_else(|e| panic!("{field} {t:?} is not RFC 3339: {e}"))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A serial in any notation (`1A:2B`, `1a2b`, `0x…`-less hex) as upper-case
/// hex without colons or leading zeros, the way Python prints `format(n, "X")`.
fn skey(serial: &str) -> String {
    let h: String = serial
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_uppercase();
    let t = h.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

/// `1A:2B:…` with upper-case hex pairs.
fn assert_serial_format(serial: &str) {
    assert!(
        !serial.is_empty()
            && serial.split(':').all(|b| {
                b.len() == 2
                    && b.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
            }),
        "serial_number {serial:?} should look like 1A:2B:.."
    );
}

fn write_file(d: &Daemon, hint: &str, bytes: &[u8]) -> PathBuf {
    let p = d.scratch_path(hint);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Run `python3 -c SCRIPT ARGS`, asserting success; returns stdout.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed ({}):\n{}",
        out.status,
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Python `cryptography`'s reading of a CRL (see [`CRL_DUMP`]); `lookup`
/// serials are given in any notation.
fn crl_dump(d: &Daemon, der: &[u8], issuer_pem: &str, lookup: &[&str]) -> Value {
    let crl = write_file(d, "dump.crl", der);
    let ca = write_file(d, "dump-ca.pem", issuer_pem.as_bytes());
    let keys: Vec<String> = lookup.iter().map(|s| skey(s)).collect();
    let out = python(
        CRL_DUMP,
        &[
            &path_str(&crl),
            &path_str(&ca),
            &serde_json::to_string(&keys).unwrap(),
        ],
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("CRL dump is not JSON ({e}): {out}"))
}

/// The entry for `serial` in a [`crl_dump`], if listed.
fn entry<'a>(dump: &'a Value, serial: &str) -> Option<&'a Value> {
    dump["entries"].get(skey(serial))
}

fn dump_number(dump: &Value) -> u64 {
    dump["number"]
        .as_u64()
        .unwrap_or_else(|| panic!("CRL without a CRL Number: {dump}"))
}

fn dump_time(dump: &Value, field: &str) -> OffsetDateTime {
    parse_time(dump, field)
}

/// Assert the things every CRL of `issuer_pem` must have.
fn assert_crl_basics(what: &str, dump: &Value) {
    assert_eq!(
        dump["sig_valid"], true,
        "{what}: signature does not verify with the CA's public key: {dump}"
    );
    assert_eq!(
        dump["issuer_matches"], true,
        "{what}: CRL issuer != CA subject: {dump}"
    );
    assert!(
        dump["number"].as_u64().is_some_and(|n| n >= 1),
        "{what}: CRL Number missing or < 1: {dump}"
    );
    assert_eq!(
        dump["number_critical"], false,
        "{what}: CRL Number must be non-critical: {dump}"
    );
    assert!(
        dump["aki"].is_string() && dump["aki"] == dump["ca_ski"],
        "{what}: AKI {} != CA SKI {}: {dump}",
        dump["aki"],
        dump["ca_ski"]
    );
    assert!(
        dump["next_update"].is_string(),
        "{what}: no nextUpdate: {dump}"
    );
    let this = dump_time(dump, "this_update");
    let next = dump_time(dump, "next_update");
    assert!(
        next > this,
        "{what}: nextUpdate {next} <= thisUpdate {this}"
    );
}

/// `openssl crl -inform DER -noout -text`.
fn openssl_crl_text(d: &Daemon, der: &[u8]) -> String {
    let p = write_file(d, "text.crl", der);
    let out = openssl([
        "crl",
        "-inform",
        "DER",
        "-noout",
        "-text",
        "-in",
        &path_str(&p),
    ]);
    assert!(
        out.status.success(),
        "openssl crl -text failed: {}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The revoked serials (as [`skey`]) of `openssl crl -text` output, each with
/// the text of its CRL Reason Code (None when the entry has none).
fn openssl_crl_entries(text: &str) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let Some(start) = text.find("Revoked Certificates:") else {
        return out;
    };
    let mut current: Option<String> = None;
    let mut want_reason = false;
    for line in text[start..].lines() {
        let l = line.trim();
        if let Some(serial) = l.strip_prefix("Serial Number:") {
            let k = skey(serial.trim());
            out.insert(k.clone(), None);
            current = Some(k);
            want_reason = false;
        } else if l.starts_with("X509v3 CRL Reason Code") {
            want_reason = true;
        } else if want_reason {
            if let Some(k) = &current {
                out.insert(k.clone(), Some(l.to_string()));
            }
            want_reason = false;
        } else if l.starts_with("Signature Algorithm") || l.starts_with("Signature Value") {
            break;
        }
    }
    out
}

/// The SKI of a certificate per openssl, upper hex without colons.
fn openssl_ski(d: &Daemon, cert_pem: &str) -> String {
    let p = write_file(d, "ski.pem", cert_pem.as_bytes());
    let out = openssl([
        "x509",
        "-noout",
        "-ext",
        "subjectKeyIdentifier",
        "-in",
        &path_str(&p),
    ]);
    assert!(out.status.success(), "openssl x509: {}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default();
    line.replace(':', "").to_uppercase()
}

/// The AKI keyid of `openssl crl -text` output, upper hex without colons.
fn openssl_crl_aki(text: &str) -> Option<String> {
    let mut lines = text.lines();
    lines.find(|l| l.contains("Authority Key Identifier"))?;
    let l = lines.next()?.trim();
    let l = l.strip_prefix("keyid:").unwrap_or(l);
    Some(l.replace(':', "").to_uppercase())
}

/// `lint_crl lint -t CRL -p PKIX -s WARNING`: ok when nothing is reported.
fn pkilint_crl(d: &Daemon, der: &[u8]) -> (bool, String) {
    let p = write_file(d, "pkilint.crl", der);
    let out = Command::new("lint_crl")
        .args(["lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING"])
        .arg(&p)
        .output()
        .expect("run lint_crl");
    let text = output_text(&out);
    (out.status.success() && text.trim().is_empty(), text)
}

/// `openssl verify -x509_strict -crl_check_all -CAfile root [-untrusted …]
/// -CRLfile <all crls> leaf`: (verified OK, output).
fn openssl_verify_with_crls(
    d: &Daemon,
    root_pem: &str,
    untrusted: &[&str],
    crls: &[&[u8]],
    leaf_pem: &str,
) -> (bool, String) {
    let root = write_file(d, "verify-root.pem", root_pem.as_bytes());
    let leaf = write_file(d, "verify-leaf.pem", leaf_pem.as_bytes());
    let crl_pem: String = crls.iter().map(|c| der_to_pem("X509 CRL", c)).collect();
    let crl = write_file(d, "verify-crls.pem", crl_pem.as_bytes());
    let mut args: Vec<String> = vec![
        "verify".into(),
        "-x509_strict".into(),
        "-crl_check_all".into(),
        "-CAfile".into(),
        path_str(&root),
        "-CRLfile".into(),
        path_str(&crl),
    ];
    if !untrusted.is_empty() {
        let chain = write_file(d, "verify-untrusted.pem", untrusted.concat().as_bytes());
        args.push("-untrusted".into());
        args.push(path_str(&chain));
    }
    args.push(path_str(&leaf));
    let out = openssl(&args);
    let text = output_text(&out);
    (
        out.status.success() && text.contains(": OK"),
        format!("openssl {args:?}\n{text}"),
    )
}

// --- daemon calls

fn ec_root(d: &Daemon, prefix: &str) -> Value {
    d.create_root(prefix, json!({"key_type": "ec"}))
}

/// An EC root with an EC intermediate under it.
fn ec_chain(d: &Daemon, prefix: &str) -> (Value, Value) {
    let root = ec_root(d, &format!("{prefix}-root"));
    let int = d.create_intermediate(
        &format!("{prefix}-int"),
        &id_of(&root),
        json!({"key_type": "ec"}),
    );
    (root, int)
}

/// A role on `ca_id` that allows any host name; returns its name.
fn create_role(d: &Daemon, ca_id: &str, extra: Value) -> String {
    let mut body = json!({
        "name": unique_name("role"),
        "ca_id": ca_id,
        "allow_any_name": true,
    });
    merge(&mut body, extra);
    let (st, v) = d.post("/v1/pki/roles", &body);
    assert_eq!(st, 201, "POST /v1/pki/roles {body} -> {st} {v}");
    s(&v, "name").to_string()
}

fn issue_body(d: &Daemon, role: &str, body: &Value) -> Value {
    let (st, v) = d.post(&format!("/v1/pki/issue/{role}"), body);
    assert_eq!(st, 201, "POST /v1/pki/issue/{role} {body} -> {st} {v}");
    v
}

/// Issue one leaf for `<prefix>.example.com` under `role`.
fn issue(d: &Daemon, role: &str, prefix: &str) -> Value {
    let label = unique_name(prefix).to_lowercase().replace('_', "-");
    issue_body(
        d,
        role,
        &json!({"common_name": format!("{label}.example.com")}),
    )
}

fn revoke(d: &Daemon, serial: &str, reason: Option<&str>) -> (u16, Value) {
    let body = match reason {
        Some(r) => json!({"serial_number": serial, "reason": r}),
        None => json!({"serial_number": serial}),
    };
    d.post("/v1/pki/revoke", &body)
}

fn revoke_ok(d: &Daemon, serial: &str, reason: Option<&str>) -> Value {
    let (st, v) = revoke(d, serial, reason);
    assert_eq!(
        st, 200,
        "POST /v1/pki/revoke {serial} reason {reason:?} -> {st} {v}"
    );
    v
}

fn unrevoke(d: &Daemon, serial: &str) -> (u16, Value) {
    d.post("/v1/pki/unrevoke", &json!({"serial_number": serial}))
}

fn get_cert(d: &Daemon, id: &str) -> Value {
    let (st, v) = d.get(&format!("/v1/pki/certificates/{id}"));
    assert_eq!(st, 200, "GET /v1/pki/certificates/{id} -> {st} {v}");
    v
}

fn crl_path(ca_id: &str, delta: bool) -> String {
    format!(
        "/v1/pki/ca/{ca_id}/crl{}",
        if delta { "/delta" } else { "" }
    )
}

/// `GET /v1/pki/ca/{id}/crl[/delta]{query}` without a token.
fn get_crl(d: &Daemon, ca_id: &str, delta: bool, query: &str, headers: &[(&str, &str)]) -> Resp {
    let path = format!("{}{query}", crl_path(ca_id, delta));
    d.request(reqwest::Method::GET, &path, Auth::None, headers, None)
}

/// The DER of the current full (or delta) CRL, asserting 200 and the DER
/// content type.
fn crl_der(d: &Daemon, ca_id: &str, delta: bool) -> Vec<u8> {
    let r = get_crl(d, ca_id, delta, "", &[]);
    assert_eq!(
        r.status,
        200,
        "GET {} -> {} {}",
        crl_path(ca_id, delta),
        r.status,
        r.text()
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/pkix-crl"),
        "GET {}: Content-Type",
        crl_path(ca_id, delta)
    );
    r.body
}

/// `POST /v1/pki/ca/{id}/crl` with `auth`.
fn post_crl(d: &Daemon, ca_id: &str, auth: Auth<'_>) -> (u16, Value) {
    let r = d.request(
        reqwest::Method::POST,
        &crl_path(ca_id, false),
        auth,
        &[],
        None,
    );
    (r.status, r.json())
}

/// Rebuild a CA's CRL now, asserting 200; returns the response.
fn rebuild(d: &Daemon, ca_id: &str) -> Value {
    let (st, v) = post_crl(d, ca_id, Auth::Root);
    assert_eq!(st, 200, "POST {} -> {st} {v}", crl_path(ca_id, false));
    v
}

/// Poll the full (or delta) CRL of `ca_id` until `pred` holds for its dump;
/// returns the dump that satisfied it and the time it took, or the last dump
/// seen.
fn poll_crl(
    d: &Daemon,
    ca_id: &str,
    issuer_pem: &str,
    delta: bool,
    wait: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<(Value, Duration), Value> {
    let start = Instant::now();
    let mut last_etag: Option<String> = None;
    let mut last = Value::Null;
    loop {
        let r = get_crl(d, ca_id, delta, "", &[]);
        assert_eq!(
            r.status,
            200,
            "GET {} -> {}",
            crl_path(ca_id, delta),
            r.status
        );
        let etag = r.header("etag");
        if etag.is_none() || etag != last_etag {
            last = crl_dump(d, &r.body, issuer_pem, &[]);
            if pred(&last) {
                return Ok((last, start.elapsed()));
            }
            last_etag = etag;
        }
        if start.elapsed() > wait {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------- revoke

#[test]
fn each_of_the_nine_reason_names_revokes_and_lands_on_the_crl_with_its_code() {
    if !require_python_cryptography() || !require_tool("openssl") {
        return;
    }
    let d = daemon();
    let ca = ec_root(d, "rv-reasons");
    let ca_id = id_of(&ca);
    let ca_pem = d.ca_certificate_pem(&ca_id);
    let role = create_role(d, &ca_id, json!({}));

    let mut revoked = Vec::new();
    for (reason, _, _) in REASONS {
        let leaf = issue(d, &role, reason);
        let before = now();
        let v = revoke_ok(d, &serial_of(&leaf), Some(reason));
        let after = now();
        assert_eq!(v["id"], leaf["id"], "{reason}: id: {v}");
        assert_eq!(v["serial_number"], leaf["serial_number"], "{reason}: {v}");
        assert_serial_format(s(&v, "serial_number"));
        assert_eq!(v["reason"], reason, "{reason}: {v}");
        assert_eq!(v["already_revoked"], false, "{reason}: {v}");
        let t = parse_time(&v, "revocation_time");
        assert!(
            t >= before - time::Duration::seconds(2) && t <= after + time::Duration::seconds(2),
            "{reason}: revocation_time {t} is not about now ({before}..{after})"
        );
        revoked.push((reason, leaf, v));
    }

    let meta = rebuild(d, &ca_id);
    assert_eq!(
        meta["entries"].as_u64(),
        Some(REASONS.len() as u64),
        "POST crl entries: {meta}"
    );
    let der = crl_der(d, &ca_id, false);
    let serials: Vec<String> = revoked.iter().map(|(_, l, _)| serial_of(l)).collect();
    let lookups: Vec<&str> = serials.iter().map(String::as_str).collect();
    let dump = crl_dump(d, &der, &ca_pem, &lookups);
    assert_crl_basics("CRL with every reason", &dump);
    let text = openssl_crl_text(d, &der);
    let ossl = openssl_crl_entries(&text);
    assert_eq!(
        ossl.len(),
        REASONS.len(),
        "openssl lists {} entries, want {}:\n{text}",
        ossl.len(),
        REASONS.len()
    );
    for ((reason, py_name, ossl_name), (_, leaf, v)) in REASONS.iter().zip(&revoked) {
        let serial = serial_of(leaf);
        let e = entry(&dump, &serial)
            .unwrap_or_else(|| panic!("{reason}: serial {serial} not on the CRL: {dump}"));
        assert_eq!(
            e["reason"].as_str(),
            *py_name,
            "{reason}: reasonCode on the CRL entry: {e}"
        );
        assert_eq!(
            dump["lookup"][skey(&serial)],
            true,
            "{reason}: get_revoked_certificate_by_serial_number({serial}) found nothing"
        );
        let on_crl = dump_time(e, "date");
        let answered = parse_time(v, "revocation_time");
        assert!(
            (on_crl - answered).whole_seconds().abs() <= 1,
            "{reason}: revocationDate {on_crl} != revocation_time {answered}"
        );
        assert_eq!(
            ossl.get(&skey(&serial)).cloned().flatten().as_deref(),
            *ossl_name,
            "{reason}: openssl's reading of the entry for {serial}:\n{text}"
        );
    }
}

#[test]
fn without_a_reason_the_revocation_is_unspecified_and_carries_no_reason_code() {
    if !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let ca = ec_root(d, "rv-default");
    let ca_id = id_of(&ca);
    let role = create_role(d, &ca_id, json!({}));
    let leaf = issue(d, &role, "default");
    let v = revoke_ok(d, &serial_of(&leaf), None);
    assert_eq!(v["reason"], "unspecified", "{v}");
    assert_eq!(v["already_revoked"], false, "{v}");
    rebuild(d, &ca_id);
    let dump = crl_dump(
        d,
        &crl_der(d, &ca_id, false),
        &d.ca_certificate_pem(&ca_id),
        &[],
    );
    let e =
        entry(&dump, &serial_of(&leaf)).unwrap_or_else(|| panic!("serial not on the CRL: {dump}"));
    assert!(
        e["reason"].is_null() && e["ext_oids"].as_array().is_some_and(|a| a.is_empty()),
        "an unspecified revocation must carry no reasonCode (RFC 5280 5.3.1): {e}"
    );
}

#[test]
fn a_bogus_reason_is_400_invalid_request_listing_the_allowed_reasons() {
    let d = daemon();
    let ca = ec_root(d, "rv-bogus");
    let role = create_role(d, &id_of(&ca), json!({}));
    let leaf = issue(d, &role, "bogus");
    for bogus in [
        "bogus",
        "keyCompromise",
        "KEY_COMPROMISE",
        "remove_from_crl",
        "",
    ] {
        let got = revoke(d, &serial_of(&leaf), Some(bogus));
        assert_error(
            &format!("revoke with reason {bogus:?}"),
            (got.0, &got.1),
            400,
            "invalid_request",
        );
        let msg = got.1["error"]["message"].as_str().unwrap_or_default();
        for (name, _, _) in REASONS {
            assert!(
                msg.contains(name),
                "reason {bogus:?}: the message should list {name}: {msg:?}"
            );
        }
    }
    // Still not revoked.
    let row = get_cert(d, &id_of(&leaf));
    assert_eq!(row["is_revoked"], false, "{row}");
}

#[test]
fn an_unknown_serial_is_404_and_a_malformed_or_missing_one_is_400() {
    let d = daemon();
    let unknown = "7F:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13";
    let got = revoke(d, unknown, Some("key_compromise"));
    assert_error(
        "revoke an unknown serial",
        (got.0, &got.1),
        404,
        "certificate_not_found",
    );
    let got = unrevoke(d, unknown);
    assert_error(
        "unrevoke an unknown serial",
        (got.0, &got.1),
        404,
        "certificate_not_found",
    );
    for bad in ["xyz", "1A:2G", ""] {
        let got = revoke(d, bad, None);
        assert_error(
            &format!("revoke serial {bad:?}"),
            (got.0, &got.1),
            400,
            "invalid_request",
        );
    }
    let got = d.post("/v1/pki/revoke", &json!({"reason": "superseded"}));
    assert_error(
        "revoke without serial_number",
        (got.0, &got.1),
        400,
        "invalid_request",
    );
}

#[test]
fn a_serial_is_accepted_in_lower_case_and_without_colons() {
    let d = daemon();
    let ca = ec_root(d, "rv-case");
    let role = create_role(d, &id_of(&ca), json!({}));

    let a = issue(d, &role, "nocolon");
    let serial = serial_of(&a);
    let plain = serial.replace(':', "").to_lowercase();
    let v = revoke_ok(d, &plain, Some("superseded"));
    assert_eq!(v["id"], a["id"], "revoked by {plain}: {v}");
    assert_eq!(
        v["serial_number"], a["serial_number"],
        "revoked by {plain}: {v}"
    );
    assert_eq!(v["already_revoked"], false, "{v}");
    // The same certificate, lower case with colons: it is the same one.
    let v = revoke_ok(d, &serial.to_lowercase(), Some("superseded"));
    assert_eq!(v["id"], a["id"], "{v}");
    assert_eq!(v["already_revoked"], true, "{v}");

    let b = issue(d, &role, "lower");
    let v = revoke_ok(d, &serial_of(&b).to_lowercase(), None);
    assert_eq!(v["id"], b["id"], "{v}");
    assert_eq!(v["serial_number"], b["serial_number"], "{v}");

    // An odd digit count is a dropped leading zero; only testable when the
    // serial happens to start with a 0 digit.
    let c = issue(d, &role, "odd");
    let plain = serial_of(&c).replace(':', "");
    if let Some(odd) = plain.strip_prefix('0') {
        let v = revoke_ok(d, odd, None);
        assert_eq!(v["id"], c["id"], "serial {odd} (dropped leading zero): {v}");
    }
}

#[test]
fn a_serial_is_accepted_in_vaults_hyphen_form_and_a_too_long_one_says_so() {
    let d = daemon();
    let ca = ec_root(d, "rv-hyphen");
    let role = create_role(d, &id_of(&ca), json!({}));
    let a = issue(d, &role, "hyphen");
    let hyphens = serial_of(&a).replace(':', "-").to_lowercase();
    let v = revoke_ok(d, &hyphens, Some("superseded"));
    assert_eq!(v["id"], a["id"], "revoked by {hyphens}: {v}");
    assert_eq!(v["serial_number"], a["serial_number"], "{v}");
    assert_eq!(v["already_revoked"], false, "{v}");

    // 21 octets: too long, and said so.
    let long = vec!["7F"; 21].join(":");
    let got = revoke(d, &long, None);
    assert_error("a 21-octet serial", (got.0, &got.1), 400, "invalid_request");
    let msg = got.1["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("too long"), "{long}: {}", got.1);
    let got = unrevoke(d, &long.replace(':', "-"));
    assert_error(
        "unrevoke a 21-octet serial",
        (got.0, &got.1),
        400,
        "invalid_request",
    );
    // 20 octets after the zero octet that keeps a high-bit serial positive: a serial,
    // just not one of ours.
    let padded = format!("00:{}", vec!["FF"; 20].join(":"));
    let got = revoke(d, &padded, None);
    assert_error(
        "a 21-octet serial with its leading zero",
        (got.0, &got.1),
        404,
        "certificate_not_found",
    );
    let got = revoke(d, "1A:2G", None);
    assert_error("a non-hex serial", (got.0, &got.1), 400, "invalid_request");
    let msg = got.1["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("hexadecimal"), "{}", got.1);
}

#[test]
fn revoking_twice_returns_the_first_revocation_with_already_revoked_true() {
    let d = daemon();
    let ca = ec_root(d, "rv-twice");
    let role = create_role(d, &id_of(&ca), json!({}));
    let leaf = issue(d, &role, "twice");
    let first = revoke_ok(d, &serial_of(&leaf), Some("key_compromise"));
    assert_eq!(first["already_revoked"], false, "{first}");
    std::thread::sleep(Duration::from_millis(1100));
    let second = revoke_ok(d, &serial_of(&leaf), Some("superseded"));
    assert_eq!(second["already_revoked"], true, "{second}");
    assert_eq!(second["id"], first["id"], "{second}");
    assert_eq!(second["serial_number"], first["serial_number"], "{second}");
    assert_eq!(
        second["revocation_time"], first["revocation_time"],
        "the first revocation must stand: {first} vs {second}"
    );
    assert_eq!(
        second["reason"], "key_compromise",
        "the first reason must stand: {second}"
    );
    let third = revoke_ok(d, &serial_of(&leaf), None);
    assert_eq!(third["reason"], "key_compromise", "{third}");
    assert_eq!(third["already_revoked"], true, "{third}");
    let row = get_cert(d, &id_of(&leaf));
    assert_eq!(row["revocation_reason"], "key_compromise", "{row}");
}

#[test]
fn revocation_and_crl_rebuild_need_a_token_but_crl_gets_do_not() {
    let d = daemon();
    let ca = ec_root(d, "rv-auth");
    let ca_id = id_of(&ca);
    let role = create_role(d, &ca_id, json!({}));
    let leaf = issue(d, &role, "auth");
    let serial = serial_of(&leaf);
    for auth in [Auth::None, Auth::Bearer("not-a-token")] {
        let got = d.post_with(
            "/v1/pki/revoke",
            &json!({"serial_number": serial, "reason": "key_compromise"}),
            auth,
        );
        assert_error(
            &format!("revoke with {auth:?}"),
            (got.0, &got.1),
            401,
            "unauthorized",
        );
        let got = d.post_with("/v1/pki/unrevoke", &json!({"serial_number": serial}), auth);
        assert_error(
            &format!("unrevoke with {auth:?}"),
            (got.0, &got.1),
            401,
            "unauthorized",
        );
        let got = post_crl(d, &ca_id, auth);
        assert_error(
            &format!("POST crl with {auth:?}"),
            (got.0, &got.1),
            401,
            "unauthorized",
        );
    }
    assert_eq!(
        get_cert(d, &id_of(&leaf))["is_revoked"],
        false,
        "an unauthorised revoke must not revoke"
    );
    // Publish a first CRL: whether a new CA has one by itself is
    // a_new_ca_serves_a_valid_empty_crl_right_away's business.
    rebuild(d, &ca_id);
    for delta in [false, true] {
        let r = get_crl(d, &ca_id, delta, "", &[]);
        assert_eq!(
            r.status,
            200,
            "GET {} without a token -> {} {}",
            crl_path(&ca_id, delta),
            r.status,
            r.text()
        );
    }
}

// ---------------------------------------------------------------- CRL judges

#[test]
fn independent_tools_accept_the_crls_and_see_the_revoked_leaf_as_revoked() {
    if !require_tool("openssl") || !require_tool("lint_crl") || !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let (root, int) = ec_chain(d, "rv-judge");
    let (root_id, int_id) = (id_of(&root), id_of(&int));
    let root_pem = d.ca_certificate_pem(&root_id);
    let int_pem = d.ca_certificate_pem(&int_id);
    let role = create_role(d, &int_id, json!({}));
    let bad = issue(d, &role, "compromised");
    let plain = issue(d, &role, "unspecified");
    let good = issue(d, &role, "good");
    revoke_ok(d, &serial_of(&bad), Some("key_compromise"));
    revoke_ok(d, &serial_of(&plain), Some("unspecified"));
    let meta = rebuild(d, &int_id);
    assert_eq!(meta["entries"].as_u64(), Some(2), "{meta}");
    rebuild(d, &root_id);
    let int_crl = crl_der(d, &int_id, false);
    let root_crl = crl_der(d, &root_id, false);
    let int_delta = crl_der(d, &int_id, true);

    // openssl's reading of the intermediate's CRL.
    let text = openssl_crl_text(d, &int_crl);
    assert!(text.contains("Version 2 (0x1)"), "not a v2 CRL:\n{text}");
    assert!(text.contains("X509v3 CRL Number"), "no CRL Number:\n{text}");
    let ski = openssl_ski(d, &int_pem);
    assert_eq!(
        openssl_crl_aki(&text).as_deref(),
        Some(ski.as_str()),
        "the CRL's AKI is not the intermediate's SKI {ski}:\n{text}"
    );
    let entries = openssl_crl_entries(&text);
    assert_eq!(
        entries.get(&skey(&serial_of(&bad))),
        Some(&Some("Key Compromise".to_string())),
        "the compromised leaf {} should be listed with Key Compromise:\n{text}",
        serial_of(&bad)
    );
    assert_eq!(
        entries.get(&skey(&serial_of(&plain))),
        Some(&None),
        "the unspecified revocation {} should be listed without a reason code:\n{text}",
        serial_of(&plain)
    );
    assert!(
        !entries.contains_key(&skey(&serial_of(&good))),
        "the good leaf is listed:\n{text}"
    );
    assert!(
        openssl_crl_text(d, &root_crl).contains("No Revoked Certificates"),
        "the root's CRL should be empty"
    );

    // openssl verify with CRL checks.
    let crls: [&[u8]; 2] = [&root_crl, &int_crl];
    let (ok, out) =
        openssl_verify_with_crls(d, &root_pem, &[&int_pem], &crls, s(&bad, "certificate"));
    assert!(
        !ok && out.contains("certificate revoked"),
        "openssl should report the compromised leaf as revoked:\n{out}"
    );
    let (ok, out) =
        openssl_verify_with_crls(d, &root_pem, &[&int_pem], &crls, s(&plain, "certificate"));
    assert!(
        !ok && out.contains("certificate revoked"),
        "openssl should report the unspecified revocation as revoked:\n{out}"
    );
    let (ok, out) =
        openssl_verify_with_crls(d, &root_pem, &[&int_pem], &crls, s(&good, "certificate"));
    assert!(ok, "openssl should accept the good leaf:\n{out}");

    // pkilint: empty full, non-empty full, delta.
    for (what, der) in [
        ("empty full CRL (root)", &root_crl),
        ("full CRL with entries (intermediate)", &int_crl),
        ("delta CRL (intermediate)", &int_delta),
    ] {
        let (ok, out) = pkilint_crl(d, der);
        assert!(ok, "pkilint findings for the {what}:\n{out}");
    }

    // Python cryptography.
    let dump = crl_dump(
        d,
        &int_crl,
        &int_pem,
        &[&serial_of(&bad), &serial_of(&plain), &serial_of(&good)],
    );
    assert_crl_basics("intermediate CRL", &dump);
    assert_eq!(dump["lookup"][skey(&serial_of(&bad))], true, "{dump}");
    assert_eq!(dump["lookup"][skey(&serial_of(&plain))], true, "{dump}");
    assert_eq!(dump["lookup"][skey(&serial_of(&good))], false, "{dump}");
    assert_eq!(
        entry(&dump, &serial_of(&bad)).map(|e| e["reason"].clone()),
        Some(json!("keyCompromise")),
        "{dump}"
    );
    assert_eq!(
        entry(&dump, &serial_of(&plain)).map(|e| e["reason"].clone()),
        Some(Value::Null),
        "{dump}"
    );
    assert_eq!(
        dump["delta_base"],
        Value::Null,
        "a full CRL with a Delta CRL Indicator: {dump}"
    );
    assert_eq!(
        dump_number(&dump),
        meta["crl_number"].as_u64().unwrap(),
        "{dump} vs {meta}"
    );
    let span = (dump_time(&dump, "next_update") - dump_time(&dump, "this_update")).whole_seconds();
    assert!(
        (span - NEXT_UPDATE_SECS).abs() <= 2,
        "nextUpdate - thisUpdate = {span} s, want the default 72h"
    );
    let root_dump = crl_dump(d, &root_crl, &root_pem, &[]);
    assert_crl_basics("root CRL", &root_dump);
    assert!(
        root_dump["entries"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "{root_dump}"
    );
    // The signature check is real: the root's key does not verify the intermediate's CRL.
    let crossed = crl_dump(d, &int_crl, &root_pem, &[]);
    assert_eq!(crossed["sig_valid"], false, "{crossed}");
}

#[test]
fn an_rsa_ca_signs_crls_that_openssl_pkilint_and_python_accept() {
    if !require_tool("openssl") || !require_tool("lint_crl") || !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let ca = d.create_root("rv-rsa", json!({"key_type": "rsa", "key_size": 2048}));
    let ca_id = id_of(&ca);
    let ca_pem = d.ca_certificate_pem(&ca_id);
    let role = create_role(d, &ca_id, json!({}));
    let bad = issue(d, &role, "rsa-bad");
    let good = issue(d, &role, "rsa-good");
    revoke_ok(d, &serial_of(&bad), Some("affiliation_changed"));
    rebuild(d, &ca_id);
    let crl = crl_der(d, &ca_id, false);
    let dump = crl_dump(d, &crl, &ca_pem, &[&serial_of(&bad)]);
    assert_crl_basics("RSA CA's CRL", &dump);
    assert_eq!(
        entry(&dump, &serial_of(&bad)).map(|e| e["reason"].clone()),
        Some(json!("affiliationChanged")),
        "{dump}"
    );
    let (ok, out) = openssl_verify_with_crls(d, &ca_pem, &[], &[&crl], s(&bad, "certificate"));
    assert!(
        !ok && out.contains("certificate revoked"),
        "openssl should see the leaf as revoked:\n{out}"
    );
    let (ok, out) = openssl_verify_with_crls(d, &ca_pem, &[], &[&crl], s(&good, "certificate"));
    assert!(ok, "openssl should accept the good leaf:\n{out}");
    let (ok, out) = pkilint_crl(d, &crl);
    assert!(ok, "pkilint findings for the RSA CA's CRL:\n{out}");
}

#[test]
fn a_new_ca_serves_a_valid_empty_crl_right_away() {
    if !require_python_cryptography() || !require_tool("openssl") {
        return;
    }
    let d = daemon();
    let root = ec_root(d, "rv-fresh");
    let root_id = id_of(&root);
    // Immediately: no POST, no waiting.
    let r = get_crl(d, &root_id, false, "", &[]);
    assert_eq!(
        r.status,
        200,
        "GET {} right after creating the CA -> {} {}",
        crl_path(&root_id, false),
        r.status,
        r.text()
    );
    let int = d.create_intermediate("rv-fresh-int", &root_id, json!({"key_type": "ec"}));
    let int_id = id_of(&int);
    let r_int = get_crl(d, &int_id, false, "", &[]);
    assert_eq!(
        r_int.status,
        200,
        "GET {} right after creating the intermediate -> {} {}",
        crl_path(&int_id, false),
        r_int.status,
        r_int.text()
    );
    for (what, id, der) in [
        ("root", &root_id, &r.body),
        ("intermediate", &int_id, &r_int.body),
    ] {
        let pem = d.ca_certificate_pem(id);
        let dump = crl_dump(d, der, &pem, &[]);
        assert_crl_basics(&format!("new {what}'s CRL"), &dump);
        assert!(
            dump["entries"].as_object().is_some_and(|m| m.is_empty()),
            "a new {what} CA's CRL should be empty: {dump}"
        );
        let text = openssl_crl_text(d, der);
        assert!(
            text.contains("No Revoked Certificates") && !text.contains("Revoked Certificates:"),
            "a new {what} CA's CRL should have no revokedCertificates:\n{text}"
        );
        assert!(text.contains("Version 2 (0x1)"), "{text}");
    }
}

// ---------------------------------------------------------------- rebuild timing and numbers

#[test]
fn a_revocation_reaches_the_crl_within_seconds_without_a_post() {
    if !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let ca = ec_root(d, "rv-auto");
    let ca_id = id_of(&ca);
    let ca_pem = d.ca_certificate_pem(&ca_id);
    let role = create_role(d, &ca_id, json!({}));
    let leaf = issue(d, &role, "auto");
    // Publish a first CRL: whether a new CA has one by itself is
    // a_new_ca_serves_a_valid_empty_crl_right_away's business.
    rebuild(d, &ca_id);
    let before = crl_dump(d, &crl_der(d, &ca_id, false), &ca_pem, &[]);
    let serial = serial_of(&leaf);
    revoke_ok(d, &serial, Some("cessation_of_operation"));
    match poll_crl(d, &ca_id, &ca_pem, false, REBUILD_WAIT, |dump| {
        entry(dump, &serial).is_some()
    }) {
        Ok((dump, took)) => {
            eprintln!("revocation reached the CRL after {took:?}");
            assert!(
                dump_number(&dump) > dump_number(&before),
                "the rebuilt CRL's number {} is not above {}",
                dump_number(&dump),
                dump_number(&before)
            );
            assert_eq!(
                entry(&dump, &serial).unwrap()["reason"],
                "cessationOfOperation",
                "{dump}"
            );
        }
        Err(last) => panic!(
            "{serial} revoked but not on the CRL of {ca_id} after {REBUILD_WAIT:?} \
             without a POST; last CRL: {last}"
        ),
    }
}

#[test]
fn crl_numbers_strictly_increase_across_rebuilds_and_match_the_post_answer() {
    if !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let ca = ec_root(d, "rv-numbers");
    let ca_id = id_of(&ca);
    let ca_pem = d.ca_certificate_pem(&ca_id);
    // Publish a first CRL: whether a new CA has one by itself is
    // a_new_ca_serves_a_valid_empty_crl_right_away's business.
    rebuild(d, &ca_id);
    let mut last = dump_number(&crl_dump(d, &crl_der(d, &ca_id, false), &ca_pem, &[]));
    for i in 0..4 {
        let before = now();
        let meta = rebuild(d, &ca_id);
        let after = now();
        let n = meta["crl_number"]
            .as_u64()
            .unwrap_or_else(|| panic!("crl_number not a number: {meta}"));
        assert!(n > last, "rebuild {i}: crl_number {n} not above {last}");
        assert_eq!(meta["entries"].as_u64(), Some(0), "{meta}");
        let this = parse_time(&meta, "this_update");
        let next = parse_time(&meta, "next_update");
        assert!(
            this >= before - time::Duration::seconds(2)
                && this <= after + time::Duration::seconds(2),
            "this_update {this} not about now"
        );
        assert!(
            ((next - this).whole_seconds() - NEXT_UPDATE_SECS).abs() <= 1,
            "next_update - this_update = {} s, want 72h: {meta}",
            (next - this).whole_seconds()
        );
        let dump = crl_dump(d, &crl_der(d, &ca_id, false), &ca_pem, &[]);
        assert_eq!(
            dump_number(&dump),
            n,
            "GET after POST {i}: {dump} vs {meta}"
        );
        assert!(
            (dump_time(&dump, "this_update") - this)
                .whole_seconds()
                .abs()
                <= 1,
            "thisUpdate on the CRL vs this_update answered: {dump} vs {meta}"
        );
        assert!(
            (dump_time(&dump, "next_update") - next)
                .whole_seconds()
                .abs()
                <= 1,
            "nextUpdate on the CRL vs next_update answered: {dump} vs {meta}"
        );
        let delta = crl_dump(d, &crl_der(d, &ca_id, true), &ca_pem, &[]);
        assert_eq!(
            delta["delta_base"].as_u64(),
            Some(n),
            "the delta after POST {i} should name CRL {n} as its base: {delta}"
        );
        assert!(
            dump_number(&delta) > n,
            "full and delta share one number sequence: delta {} vs full {n}",
            dump_number(&delta)
        );
        last = dump_number(&delta);
    }
}

#[test]
fn crl_numbers_and_revocations_survive_a_daemon_restart() {
    if !require_python_cryptography() {
        return;
    }
    let setup = new_daemon_setup("").unwrap_or_else(|e| panic!("{e}"));
    let d1 = start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    let ca = ec_root(&d1, "rv-restart");
    let ca_id = id_of(&ca);
    let ca_pem = d1.ca_certificate_pem(&ca_id);
    let role = create_role(&d1, &ca_id, json!({}));
    let leaf = issue(&d1, &role, "restart");
    let serial = serial_of(&leaf);
    revoke_ok(&d1, &serial, Some("key_compromise"));
    let n1 = rebuild(&d1, &ca_id)["crl_number"].as_u64().unwrap();
    let n2 = rebuild(&d1, &ca_id)["crl_number"].as_u64().unwrap();
    assert!(n2 > n1, "{n2} <= {n1}");
    // Let the revocation-triggered rebuild settle, then note the highest number seen.
    std::thread::sleep(Duration::from_millis(1500));
    let full = crl_dump(&d1, &crl_der(&d1, &ca_id, false), &ca_pem, &[]);
    let delta = crl_dump(&d1, &crl_der(&d1, &ca_id, true), &ca_pem, &[]);
    let seen = dump_number(&full).max(dump_number(&delta));
    assert!(seen >= n2, "{full}");
    let status = d1.kill_hard();
    eprintln!("first daemon killed: {status}");
    drop(d1);

    let d2 = start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    let after = crl_dump(&d2, &crl_der(&d2, &ca_id, false), &ca_pem, &[]);
    assert_crl_basics("CRL after restart", &after);
    assert!(
        dump_number(&after) >= dump_number(&full),
        "after the restart the CRL number went back: {} < {}",
        dump_number(&after),
        dump_number(&full)
    );
    assert_eq!(
        entry(&after, &serial).map(|e| e["reason"].clone()),
        Some(json!("keyCompromise")),
        "the revocation is gone after the restart: {after}"
    );
    let n3 = rebuild(&d2, &ca_id)["crl_number"].as_u64().unwrap();
    assert!(
        n3 > seen,
        "after the restart POST crl gave number {n3}, not above {seen} used before"
    );
    let row = get_cert(&d2, &id_of(&leaf));
    assert_eq!(row["is_revoked"], true, "{row}");
    assert_eq!(row["revocation_reason"], "key_compromise", "{row}");
    let again = revoke_ok(&d2, &serial, Some("superseded"));
    assert_eq!(again["already_revoked"], true, "{again}");
    assert_eq!(again["reason"], "key_compromise", "{again}");
}

/// A leaf revoked on a daemon of its own that was then stopped and started again.
struct AfterStop {
    // Field order is drop order: the daemon goes before its data directory.
    d: Daemon,
    _setup: common::DaemonSetup,
    ca_id: String,
    ca_pem: String,
    serial: String,
    leaf_id: String,
    /// The stopped daemon's log.
    log: String,
}

/// Revoke a leaf, stop the daemon with `stop` right after the answer (well inside
/// `crl.revoke_delay`), start it again.
fn revoke_then_stop(prefix: &str, stop: fn(&Daemon)) -> AfterStop {
    let setup = new_daemon_setup("").unwrap_or_else(|e| panic!("{e}"));
    let d1 = start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    let ca = ec_root(&d1, prefix);
    let ca_id = id_of(&ca);
    let ca_pem = d1.ca_certificate_pem(&ca_id);
    let role = create_role(&d1, &ca_id, json!({}));
    let leaf = issue(&d1, &role, prefix);
    let serial = serial_of(&leaf);
    revoke_ok(&d1, &serial, Some("key_compromise"));
    stop(&d1);
    let log = d1.log();
    drop(d1);
    let d = start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    AfterStop {
        d,
        _setup: setup,
        ca_id,
        ca_pem,
        serial,
        leaf_id: id_of(&leaf),
        log,
    }
}

#[test]
fn a_revocation_acknowledged_just_before_sigterm_is_on_the_crl_after_the_restart() {
    if !require_python_cryptography() {
        return;
    }
    let t = revoke_then_stop("rv-term", |d| {
        let status = d.stop_gracefully();
        assert!(status.success(), "graceful stop: {status}");
    });
    let (d, ca_id, serial) = (&t.d, &t.ca_id, &t.serial);
    // The stop itself ran the rebuild that was waiting for revoke_delay.
    let after_term = t.log.split("SIGTERM").nth(1).unwrap_or_default();
    assert!(
        after_term
            .lines()
            .any(|l| l.contains("CRL published") && l.contains(ca_id.as_str())),
        "no CRL of {ca_id} was published during the graceful stop; log:\n{}",
        t.log
    );
    // So the CRL the restarted daemon serves first lists it, without waiting.
    let full = crl_dump(d, &crl_der(d, ca_id, false), &t.ca_pem, &[]);
    assert_crl_basics("full CRL after SIGTERM and restart", &full);
    assert_eq!(
        entry(&full, serial).map(|e| e["reason"].clone()),
        Some(json!("keyCompromise")),
        "{serial} is not on the first CRL served after the restart: {full}"
    );
    let delta = crl_dump(d, &crl_der(d, ca_id, true), &t.ca_pem, &[]);
    assert!(
        entry(&delta, serial).is_some(),
        "{serial} is not on the delta CRL after the restart: {delta}"
    );
}

#[test]
fn a_revocation_acknowledged_just_before_sigkill_reaches_the_crl_right_after_the_restart() {
    if !require_python_cryptography() {
        return;
    }
    let t = revoke_then_stop("rv-kill", |d| {
        d.kill_hard();
    });
    let (d, ca_id, serial) = (&t.d, &t.ca_id, &t.serial);
    // Nothing rebuilt it before the kill; the start finds the revocation log ahead of the
    // published CRL and rebuilds (rebuild_interval is an hour).
    for delta in [false, true] {
        if let Err(last) = poll_crl(d, ca_id, &t.ca_pem, delta, REBUILD_WAIT, |dump| {
            entry(dump, serial).is_some()
        }) {
            panic!(
                "{serial} revoked before a SIGKILL is not on the {} CRL {REBUILD_WAIT:?} \
                 after the restart; last: {last}\nlog before the kill:\n{}\nlog now:\n{}",
                if delta { "delta" } else { "full" },
                t.log,
                d.log_tail(4000)
            );
        }
    }
    let row = get_cert(d, &t.leaf_id);
    assert_eq!(row["revocation_reason"], "key_compromise", "{row}");
}

#[test]
fn a_stream_of_revocations_on_one_ca_does_not_hold_back_another_cas_crl() {
    if !require_python_cryptography() {
        return;
    }
    // A daemon of its own: the stream would otherwise slow other tests down.
    let setup = new_daemon_setup("").unwrap_or_else(|e| panic!("{e}"));
    let d = start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    let busy = ec_root(&d, "rv-busy");
    let quiet = ec_root(&d, "rv-quiet");
    let quiet_id = id_of(&quiet);
    let quiet_pem = d.ca_certificate_pem(&quiet_id);
    let busy_role = create_role(&d, &id_of(&busy), json!({}));
    let quiet_role = create_role(&d, &quiet_id, json!({}));
    let stream: Vec<String> = (0..16)
        .map(|_| serial_of(&issue(&d, &busy_role, "stream")))
        .collect();
    let leaf = issue(&d, &quiet_role, "quiet");
    let serial = serial_of(&leaf);
    // Publish a first CRL: whether a new CA has one by itself is
    // a_new_ca_serves_a_valid_empty_crl_right_away's business.
    rebuild(&d, &quiet_id);

    revoke_ok(&d, &serial, Some("superseded"));
    let start = Instant::now();
    let found = std::thread::scope(|sc| {
        let d = &d;
        let stream = &stream;
        // One revocation on the busy CA every 400 ms, for 6.4 s.
        let streamer = sc.spawn(move || {
            for s in stream {
                revoke_ok(d, s, Some("superseded"));
                std::thread::sleep(Duration::from_millis(400));
            }
        });
        let r = poll_crl(d, &quiet_id, &quiet_pem, false, REBUILD_WAIT, |dump| {
            entry(dump, &serial).is_some()
        });
        streamer.join().expect("streamer thread");
        r
    });
    let d_ref = &d;
    match found {
        Ok((_, took)) => eprintln!("quiet CA's CRL listed the revocation after {took:?}"),
        Err(last) => {
            // Diagnosis: does it arrive once the other CA's stream has stopped?
            let stream_ended = start.elapsed();
            let later = poll_crl(d_ref, &quiet_id, &quiet_pem, false, REBUILD_WAIT, |dump| {
                entry(dump, &serial).is_some()
            });
            let after = match later {
                Ok((_, took)) => format!(
                    "it appeared {took:?} after the stream on the other CA stopped \
                     (at {stream_ended:?})"
                ),
                Err(_) => "it did not appear after the stream stopped either".to_string(),
            };
            panic!(
                "while another CA saw a revocation every 400 ms, the revocation of {serial} on \
                 {quiet_id} was not on its CRL after {REBUILD_WAIT:?}; {after}; \
                 last CRL seen during the stream: {last}"
            )
        }
    }
}

// ---------------------------------------------------------------- HTTP forms

#[test]
fn crls_are_der_by_default_and_pem_on_request_with_etag_and_cache_control() {
    let d = daemon();
    let ca = ec_root(d, "rv-http");
    let ca_id = id_of(&ca);
    // Publish a first CRL: whether a new CA has one by itself is
    // a_new_ca_serves_a_valid_empty_crl_right_away's business.
    rebuild(d, &ca_id);
    for delta in [false, true] {
        let path = crl_path(&ca_id, delta);
        let r = get_crl(d, &ca_id, delta, "", &[]);
        assert_eq!(r.status, 200, "GET {path} -> {} {}", r.status, r.text());
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/pkix-crl"),
            "GET {path}: Content-Type"
        );
        let der = r.body.clone();
        assert_eq!(der.first(), Some(&0x30), "GET {path}: not DER");
        let etag = r
            .header("etag")
            .unwrap_or_else(|| panic!("GET {path}: no ETag"));
        assert!(!etag.trim().is_empty(), "GET {path}: empty ETag");
        let cc = r
            .header("cache-control")
            .unwrap_or_else(|| panic!("GET {path}: no Cache-Control"));
        assert!(
            cc.contains("public") && cc.contains("must-revalidate"),
            "GET {path}: Cache-Control {cc:?}"
        );
        let max_age: u64 = cc
            .split(',')
            .find_map(|p| p.trim().strip_prefix("max-age="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("GET {path}: Cache-Control {cc:?} without max-age"));
        assert!(max_age <= 300, "GET {path}: max-age {max_age} > 300");

        for (query, headers) in [
            ("", vec![("Accept", "application/pkix-crl")]),
            ("?format=der", vec![]),
        ] {
            let r = get_crl(d, &ca_id, delta, query, &headers);
            assert_eq!(r.status, 200, "GET {path}{query} {headers:?}");
            assert_eq!(
                r.header("content-type").as_deref(),
                Some("application/pkix-crl"),
                "GET {path}{query} {headers:?}: Content-Type"
            );
            assert_eq!(r.body, der, "GET {path}{query} {headers:?}: other bytes");
        }
        for (query, headers) in [
            ("", vec![("Accept", "application/x-pem-file")]),
            ("", vec![("Accept", "text/plain")]),
            ("?format=pem", vec![]),
        ] {
            let r = get_crl(d, &ca_id, delta, query, &headers);
            assert_eq!(r.status, 200, "GET {path}{query} {headers:?}");
            let text = r.text();
            assert!(
                text.starts_with("-----BEGIN X509 CRL-----")
                    && text.trim_end().ends_with("-----END X509 CRL-----"),
                "GET {path}{query} {headers:?}: not a PEM CRL: {text:?}"
            );
            assert_eq!(
                pem_to_der(&text),
                der,
                "GET {path}{query} {headers:?}: PEM of other bytes"
            );
            assert!(r.header("etag").is_some(), "GET {path}{query}: no ETag");
        }

        let r = get_crl(d, &ca_id, delta, "", &[("If-None-Match", &etag)]);
        assert_eq!(
            r.status, 304,
            "GET {path} If-None-Match {etag} -> {}",
            r.status
        );
        assert!(r.body.is_empty(), "a 304 with a body");
        assert_eq!(r.header("etag").as_deref(), Some(etag.as_str()), "304 ETag");
        let r = get_crl(
            d,
            &ca_id,
            delta,
            "",
            &[("If-None-Match", "\"something-else\"")],
        );
        assert_eq!(r.status, 200, "GET {path} with a stale If-None-Match");
        assert_eq!(r.body, der);
    }

    // A rebuild gives a new CRL and a new ETag; the old one no longer matches.
    let old = get_crl(d, &ca_id, false, "", &[]);
    let old_etag = old.header("etag").unwrap();
    rebuild(d, &ca_id);
    let r = get_crl(d, &ca_id, false, "", &[("If-None-Match", &old_etag)]);
    assert_eq!(r.status, 200, "old ETag after a rebuild -> {}", r.status);
    assert_ne!(r.body, old.body, "the rebuilt CRL has the old bytes");
    assert_ne!(
        r.header("etag"),
        Some(old_etag),
        "the rebuilt CRL has the old ETag"
    );
}

#[test]
fn pem_and_der_crls_have_distinct_etags_vary_on_accept_and_match_weak_if_none_match() {
    let d = daemon();
    let ca = ec_root(d, "rv-vary");
    let ca_id = id_of(&ca);
    rebuild(d, &ca_id);
    const DER: (&str, &str) = ("Accept", "application/pkix-crl");
    const PEM: (&str, &str) = ("Accept", "application/x-pem-file");
    for delta in [false, true] {
        let path = crl_path(&ca_id, delta);
        let der = get_crl(d, &ca_id, delta, "", &[DER]);
        let pem = get_crl(d, &ca_id, delta, "", &[PEM]);
        let by_query = get_crl(d, &ca_id, delta, "?format=pem", &[]);
        for (what, r) in [("DER", &der), ("PEM", &pem), ("?format=pem", &by_query)] {
            assert_eq!(r.status, 200, "GET {path} {what}");
            let vary = r.header("vary").unwrap_or_default().to_ascii_lowercase();
            assert!(
                vary.split(',').any(|v| v.trim() == "accept"),
                "GET {path} {what}: Vary {vary:?} does not name Accept"
            );
        }
        let der_etag = der.header("etag").expect("DER ETag");
        let pem_etag = pem.header("etag").expect("PEM ETag");
        assert_ne!(der_etag, pem_etag, "GET {path}: one ETag for PEM and DER");
        assert_eq!(by_query.header("etag"), Some(pem_etag.clone()), "{path}");
        for (etag, _) in [(&der_etag, ()), (&pem_etag, ())] {
            assert!(
                etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
                "GET {path}: ETag {etag:?} is not a quoted strong tag"
            );
        }

        // Each representation revalidates with its own tag, strong or weak.
        for (what, accept, etag) in [("DER", DER, &der_etag), ("PEM", PEM, &pem_etag)] {
            for tag in [
                etag.clone(),
                format!("W/{etag}"),
                format!("\"x\", W/{etag}"),
            ] {
                let r = get_crl(d, &ca_id, delta, "", &[accept, ("If-None-Match", &tag)]);
                assert_eq!(r.status, 304, "GET {path} {what} If-None-Match {tag}");
                assert!(r.body.is_empty(), "a 304 with a body");
                assert_eq!(
                    r.header("etag").as_deref(),
                    Some(etag.as_str()),
                    "{what} 304 ETag"
                );
                let vary = r.header("vary").unwrap_or_default().to_ascii_lowercase();
                assert!(vary.contains("accept"), "{what} 304 Vary {vary:?}");
            }
        }
        // The other representation's tag is no match: a PEM client holding the DER
        // tag gets PEM, and the other way round.
        let r = get_crl(d, &ca_id, delta, "", &[PEM, ("If-None-Match", &der_etag)]);
        assert_eq!(r.status, 200, "GET {path} PEM with the DER ETag");
        assert_eq!(r.body, pem.body, "GET {path} PEM with the DER ETag: body");
        let r = get_crl(d, &ca_id, delta, "", &[DER, ("If-None-Match", &pem_etag)]);
        assert_eq!(r.status, 200, "GET {path} DER with the PEM ETag");
        assert_eq!(r.body, der.body, "GET {path} DER with the PEM ETag: body");
    }
}

#[test]
fn post_crl_takes_an_empty_body_or_an_empty_object_and_refuses_fields() {
    let d = daemon();
    let ca = ec_root(d, "rv-post-body");
    let ca_id = id_of(&ca);
    let path = crl_path(&ca_id, false);
    let first = rebuild(d, &ca_id)["crl_number"].as_u64().unwrap();
    let (st, v) = d.post(&path, &json!({}));
    assert_eq!(st, 200, "POST {path} {{}} -> {st} {v}");
    assert!(v["crl_number"].as_u64().unwrap() > first, "{v}");
    for body in [json!({"x": 1}), json!({"crl_number": 7}), json!([1])] {
        let got = d.post(&path, &body);
        assert_error(
            &format!("POST {path} {body}"),
            (got.0, &got.1),
            400,
            "invalid_request",
        );
    }
}

#[test]
fn an_unknown_ca_has_no_crl_404_ca_not_found() {
    let d = daemon();
    let id = format!("ca_{}", common::random_hex(8));
    for delta in [false, true] {
        let r = get_crl(d, &id, delta, "", &[]);
        assert_error(
            &format!("GET {}", crl_path(&id, delta)),
            (r.status, &r.json()),
            404,
            "ca_not_found",
        );
    }
    let got = post_crl(d, &id, Auth::Root);
    assert_error(
        "POST crl of an unknown CA",
        (got.0, &got.1),
        404,
        "ca_not_found",
    );
}

// ---------------------------------------------------------------- CA certificates

#[test]
fn a_revoked_intermediate_is_listed_on_its_roots_crl_and_can_no_longer_issue() {
    if !require_python_cryptography() || !require_tool("openssl") {
        return;
    }
    let d = daemon();
    let (root, int) = ec_chain(d, "rv-int");
    let (root_id, int_id) = (id_of(&root), id_of(&int));
    let root_pem = d.ca_certificate_pem(&root_id);
    let int_pem = d.ca_certificate_pem(&int_id);
    let role = create_role(d, &int_id, json!({}));
    let leaf = issue(d, &role, "under-int");

    let (st, ca) = d.get(&format!("/v1/pki/ca/{int_id}"));
    assert_eq!(st, 200, "{ca}");
    let int_serial = serial_of(&ca);
    let v = revoke_ok(d, &int_serial, Some("ca_compromise"));
    assert_eq!(
        v["id"],
        int_id.as_str(),
        "the answer should name the CA: {v}"
    );
    assert_eq!(v["serial_number"], int_serial.as_str(), "{v}");
    assert_eq!(v["reason"], "ca_compromise", "{v}");
    assert_eq!(v["already_revoked"], false, "{v}");
    let v = revoke_ok(d, &int_serial.to_lowercase(), Some("superseded"));
    assert_eq!(v["already_revoked"], true, "{v}");
    assert_eq!(v["reason"], "ca_compromise", "{v}");

    rebuild(d, &root_id);
    let root_crl = crl_der(d, &root_id, false);
    let dump = crl_dump(d, &root_crl, &root_pem, &[&int_serial]);
    assert_crl_basics("root CRL", &dump);
    assert_eq!(
        entry(&dump, &int_serial).map(|e| e["reason"].clone()),
        Some(json!("cACompromise")),
        "the intermediate {int_serial} should be on the root's CRL: {dump}"
    );
    // The intermediate's own CRL can still be rebuilt and is served, and does
    // not list itself.
    rebuild(d, &int_id);
    let int_crl = crl_der(d, &int_id, false);
    let int_dump = crl_dump(d, &int_crl, &int_pem, &[]);
    assert_crl_basics("revoked intermediate's CRL", &int_dump);
    assert!(entry(&int_dump, &int_serial).is_none(), "{int_dump}");

    let crls: [&[u8]; 2] = [&root_crl, &int_crl];
    let (ok, out) =
        openssl_verify_with_crls(d, &root_pem, &[&int_pem], &crls, s(&leaf, "certificate"));
    assert!(
        !ok && out.contains("certificate revoked"),
        "a leaf under the revoked intermediate must fail a full-chain CRL check:\n{out}"
    );

    // The revoked CA signs nothing any more.
    let got = d.post(
        &format!("/v1/pki/issue/{role}"),
        &json!({"common_name": "after-revocation.example.com"}),
    );
    assert_error(
        "issue under a revoked intermediate",
        (got.0, &got.1),
        422,
        "ca_revoked",
    );
    let key = d.scratch_path("csr.key");
    let csr = d.scratch_path("csr.pem");
    let out = openssl([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &path_str(&key),
        "-out",
        &path_str(&csr),
        "-subj",
        "/CN=after-revocation.example.com",
    ]);
    assert!(out.status.success(), "openssl req: {}", output_text(&out));
    let got = d.post(
        &format!("/v1/pki/sign/{role}"),
        &json!({"csr_pem": common::read_to_string(&csr)}),
    );
    assert_error(
        "sign under a revoked intermediate",
        (got.0, &got.1),
        422,
        "ca_revoked",
    );
    let name = unique_name("rv-int-sub");
    let got = d.post(
        "/v1/pki/ca",
        &json!({
            "name": name,
            "common_name": format!("{name} CA"),
            "ca_type": "intermediate",
            "parent_ca_id": int_id,
            "key_type": "ec",
        }),
    );
    assert_error(
        "an intermediate under a revoked intermediate",
        (got.0, &got.1),
        422,
        "ca_revoked",
    );
    // The root is unaffected.
    let root_role = create_role(d, &root_id, json!({}));
    issue(d, &root_role, "under-root");
}

#[test]
fn a_root_cas_own_serial_is_422_cannot_revoke_root() {
    let d = daemon();
    let root = ec_root(d, "rv-root");
    let got = revoke(d, &serial_of(&root), Some("key_compromise"));
    assert_error(
        "revoke a root CA",
        (got.0, &got.1),
        422,
        "cannot_revoke_root",
    );
    // Still issuing.
    let role = create_role(d, &id_of(&root), json!({}));
    issue(d, &role, "root-still-ok");
}

// ---------------------------------------------------------------- expired certificates

#[test]
fn an_expired_certificate_issued_here_can_be_revoked_and_is_listed() {
    if !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let ca = ec_root(d, "rv-expired");
    let ca_id = id_of(&ca);
    let role = create_role(
        d,
        &ca_id,
        json!({"max_ttl": "2s", "not_before_duration": "0s"}),
    );
    let leaf = issue_body(
        d,
        &role,
        &json!({"common_name": "short-lived.example.com", "ttl": "1s"}),
    );
    let not_after = parse_time(&leaf, "not_after");
    assert!(
        not_after <= now() + time::Duration::seconds(3),
        "a 1s certificate valid until {not_after}"
    );
    while now() <= not_after + time::Duration::seconds(1) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = revoke_ok(d, &serial_of(&leaf), Some("superseded"));
    assert_eq!(v["already_revoked"], false, "{v}");
    assert_eq!(v["id"], leaf["id"], "{v}");
    rebuild(d, &ca_id);
    let dump = crl_dump(
        d,
        &crl_der(d, &ca_id, false),
        &d.ca_certificate_pem(&ca_id),
        &[],
    );
    assert!(
        entry(&dump, &serial_of(&leaf)).is_some(),
        "the expired, revoked certificate should be on the CRL: {dump}"
    );
    let row = get_cert(d, &id_of(&leaf));
    assert_eq!(row["is_revoked"], true, "{row}");
}

#[test]
fn an_imported_expired_certificate_can_be_revoked() {
    if !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let cn = format!("{}.example.com", unique_name("expired").to_lowercase());
    let pem = python(EXPIRED_CERT, &[&cn]);
    let (st, row) = d.post(
        "/v1/pki/certificates/import",
        &json!({"certificate_pem": pem}),
    );
    assert_eq!(st, 201, "import of an expired certificate -> {st} {row}");
    let v = revoke_ok(d, &serial_of(&row), Some("cessation_of_operation"));
    assert_eq!(v["id"], row["id"], "{v}");
    assert_eq!(v["already_revoked"], false, "{v}");
    let got = get_cert(d, &id_of(&row));
    assert_eq!(got["is_revoked"], true, "{got}");
    assert_eq!(got["revocation_reason"], "cessation_of_operation", "{got}");
}

// ---------------------------------------------------------------- certificate_hold

#[test]
fn a_certificate_hold_can_be_released_and_then_leaves_the_full_crl() {
    if !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let ca = ec_root(d, "rv-hold");
    let ca_id = id_of(&ca);
    let ca_pem = d.ca_certificate_pem(&ca_id);
    let role = create_role(d, &ca_id, json!({}));
    let leaf = issue(d, &role, "hold");
    let serial = serial_of(&leaf);
    let v = revoke_ok(d, &serial, Some("certificate_hold"));
    assert_eq!(v["reason"], "certificate_hold", "{v}");
    rebuild(d, &ca_id);
    let dump = crl_dump(d, &crl_der(d, &ca_id, false), &ca_pem, &[]);
    assert_eq!(
        entry(&dump, &serial).map(|e| e["reason"].clone()),
        Some(json!("certificateHold")),
        "{dump}"
    );

    let (st, v) = unrevoke(d, &serial.replace(':', "").to_lowercase());
    assert_eq!(st, 200, "unrevoke a held certificate -> {st} {v}");
    assert_eq!(v["id"], leaf["id"], "{v}");
    assert_eq!(v["serial_number"], serial.as_str(), "{v}");
    assert_eq!(v["is_revoked"], false, "{v}");
    let row = get_cert(d, &id_of(&leaf));
    assert_eq!(row["is_revoked"], false, "{row}");
    assert!(row["revoked_at"].is_null(), "{row}");
    assert!(row["revocation_reason"].is_null(), "{row}");

    rebuild(d, &ca_id);
    let dump = crl_dump(d, &crl_der(d, &ca_id, false), &ca_pem, &[]);
    assert!(
        entry(&dump, &serial).is_none(),
        "the released certificate is still on the full CRL: {dump}"
    );

    let got = unrevoke(d, &serial);
    assert_error("release twice", (got.0, &got.1), 409, "invalid_state");

    // A released certificate is an ordinary valid one: it can be revoked anew.
    let v = revoke_ok(d, &serial, Some("key_compromise"));
    assert_eq!(v["already_revoked"], false, "{v}");
    assert_eq!(v["reason"], "key_compromise", "{v}");
    rebuild(d, &ca_id);
    let dump = crl_dump(d, &crl_der(d, &ca_id, false), &ca_pem, &[]);
    assert_eq!(
        entry(&dump, &serial).map(|e| e["reason"].clone()),
        Some(json!("keyCompromise")),
        "{dump}"
    );
}

#[test]
fn the_delta_crl_lists_a_released_hold_as_remove_from_crl() {
    if !require_python_cryptography() || !require_tool("openssl") {
        return;
    }
    let d = daemon();
    let ca = ec_root(d, "rv-hold-delta");
    let ca_id = id_of(&ca);
    let ca_pem = d.ca_certificate_pem(&ca_id);
    let role = create_role(d, &ca_id, json!({}));
    let leaf = issue(d, &role, "hold-delta");
    let serial = serial_of(&leaf);
    revoke_ok(d, &serial, Some("certificate_hold"));
    let held = rebuild(d, &ca_id)["crl_number"].as_u64().unwrap();
    let (st, v) = unrevoke(d, &serial);
    assert_eq!(st, 200, "unrevoke -> {st} {v}");

    let removed =
        |dump: &Value| entry(dump, &serial).is_some_and(|e| e["reason"] == "removeFromCRL");
    // Any delta published after the release (before or after the next full CRL).
    let mut deltas_seen = Vec::new();
    let mut hit = match poll_crl(d, &ca_id, &ca_pem, true, REBUILD_WAIT, |dump| removed(dump)) {
        Ok((dump, _)) => Some(dump),
        Err(last) => {
            deltas_seen.push(last);
            None
        }
    };
    let meta = rebuild(d, &ca_id);
    let full = crl_dump(d, &crl_der(d, &ca_id, false), &ca_pem, &[]);
    assert!(
        entry(&full, &serial).is_none(),
        "the released certificate is still on the full CRL: {full}"
    );
    let der = crl_der(d, &ca_id, true);
    let delta = crl_dump(d, &der, &ca_pem, &[]);
    if removed(&delta) {
        let text = openssl_crl_text(d, &der);
        assert!(
            openssl_crl_entries(&text)
                .get(&skey(&serial))
                .is_some_and(|r| r.as_deref() == Some("Remove From CRL")),
            "openssl does not read the entry as Remove From CRL:\n{text}"
        );
        hit = Some(delta);
    } else {
        deltas_seen.push(delta);
    }
    assert!(
        hit.is_some(),
        "after releasing the hold on {serial} (held on full CRL {held}; the POST after the \
         release gave full CRL {}), no delta CRL listed it as removeFromCRL; deltas seen: {}",
        meta["crl_number"],
        Value::Array(deltas_seen)
    );
}

#[test]
fn a_hold_can_be_made_permanent_in_place_keeping_its_time() {
    if !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let ca = ec_root(d, "rv-convert");
    let ca_id = id_of(&ca);
    let ca_pem = d.ca_certificate_pem(&ca_id);
    let role = create_role(d, &ca_id, json!({}));
    let leaf = issue(d, &role, "convert");
    let serial = serial_of(&leaf);
    let held = revoke_ok(d, &serial, Some("certificate_hold"));
    rebuild(d, &ca_id);
    // A hold asked again is the same hold.
    let again = revoke_ok(d, &serial, Some("certificate_hold"));
    assert_eq!(again["already_revoked"], true, "{again}");
    assert_eq!(again["reason"], "certificate_hold", "{again}");
    // The revocation time on the CRL has whole seconds: make "kept" observable.
    std::thread::sleep(Duration::from_millis(1100));

    let v = revoke_ok(d, &serial.replace(':', "-"), Some("key_compromise"));
    assert_eq!(v["id"], leaf["id"], "{v}");
    assert_eq!(
        v["already_revoked"], false,
        "a conversion changes state: {v}"
    );
    assert_eq!(v["reason"], "key_compromise", "{v}");
    assert_eq!(
        v["revocation_time"], held["revocation_time"],
        "the hold's time must stand: {held} then {v}"
    );
    let row = get_cert(d, &id_of(&leaf));
    assert_eq!(row["is_revoked"], true, "{row}");
    assert_eq!(row["revocation_reason"], "key_compromise", "{row}");
    assert_eq!(row["revoked_at"], held["revocation_time"], "{row}");

    // Never published as not revoked: the next full CRL and the delta carry the new
    // reason with the hold's date, and no removeFromCRL.
    let wanted =
        |dump: &Value| entry(dump, &serial).is_some_and(|e| e["reason"] == "keyCompromise");
    for delta in [false, true] {
        match poll_crl(d, &ca_id, &ca_pem, delta, REBUILD_WAIT, wanted) {
            Ok((dump, _)) => {
                let e = entry(&dump, &serial).unwrap();
                let on_crl = dump_time(e, "date");
                let held_at = parse_time(&held, "revocation_time");
                assert!(
                    (on_crl - held_at).whole_seconds().abs() <= 1,
                    "revocationDate {on_crl} is not the hold's {held_at}: {dump}"
                );
            }
            Err(last) => panic!(
                "the {} CRL does not list {serial} as keyCompromise after the conversion: {last}",
                if delta { "delta" } else { "full" }
            ),
        }
    }

    // Now permanent: the first permanent revocation stands, and it cannot be released.
    let v = revoke_ok(d, &serial, Some("superseded"));
    assert_eq!(v["already_revoked"], true, "{v}");
    assert_eq!(v["reason"], "key_compromise", "{v}");
    let v = revoke_ok(d, &serial, Some("certificate_hold"));
    assert_eq!(v["already_revoked"], true, "{v}");
    assert_eq!(v["reason"], "key_compromise", "{v}");
    let got = unrevoke(d, &serial);
    assert_error(
        "release a converted hold",
        (got.0, &got.1),
        409,
        "invalid_state",
    );
}

#[test]
fn a_ca_certificate_cannot_be_put_on_hold_422_hold_not_allowed_for_ca() {
    let d = daemon();
    let (_, int) = ec_chain(d, "rv-ca-hold");
    let int_id = id_of(&int);
    let int_serial = serial_of(&int);
    let got = revoke(d, &int_serial, Some("certificate_hold"));
    assert_error(
        "certificate_hold on an intermediate CA",
        (got.0, &got.1),
        422,
        "hold_not_allowed_for_ca",
    );
    let (st, ca) = d.get(&format!("/v1/pki/ca/{int_id}"));
    assert_eq!(st, 200, "{ca}");
    assert_eq!(ca["is_revoked"], false, "refused, so not revoked: {ca}");
    // It still signs, and a permanent reason is accepted.
    let role = create_role(d, &int_id, json!({}));
    issue(d, &role, "ca-hold-still-signs");
    let v = revoke_ok(d, &int_serial, Some("cessation_of_operation"));
    assert_eq!(v["already_revoked"], false, "{v}");
    // Asking for a hold on a revoked CA is refused the same way.
    let got = revoke(d, &int_serial, Some("certificate_hold"));
    assert_error(
        "certificate_hold on a revoked intermediate CA",
        (got.0, &got.1),
        422,
        "hold_not_allowed_for_ca",
    );
}

#[test]
fn only_a_certificate_hold_can_be_released_otherwise_409_invalid_state() {
    let d = daemon();
    let ca = ec_root(d, "rv-unrevoke");
    let role = create_role(d, &id_of(&ca), json!({}));
    let compromised = issue(d, &role, "kc");
    revoke_ok(d, &serial_of(&compromised), Some("key_compromise"));
    let got = unrevoke(d, &serial_of(&compromised));
    assert_error(
        "unrevoke a key_compromise",
        (got.0, &got.1),
        409,
        "invalid_state",
    );
    let row = get_cert(d, &id_of(&compromised));
    assert_eq!(row["is_revoked"], true, "{row}");
    assert_eq!(row["revocation_reason"], "key_compromise", "{row}");

    for reason in ["unspecified", "superseded", "cessation_of_operation"] {
        let leaf = issue(d, &role, reason);
        revoke_ok(d, &serial_of(&leaf), Some(reason));
        let got = unrevoke(d, &serial_of(&leaf));
        assert_error(
            &format!("unrevoke a {reason}"),
            (got.0, &got.1),
            409,
            "invalid_state",
        );
    }

    let fine = issue(d, &role, "fine");
    let got = unrevoke(d, &serial_of(&fine));
    assert_error(
        "unrevoke a certificate never revoked",
        (got.0, &got.1),
        409,
        "invalid_state",
    );
    assert_eq!(get_cert(d, &id_of(&fine))["is_revoked"], false);
}

// ---------------------------------------------------------------- certificate rows

#[test]
fn certificate_rows_show_the_revocation_and_the_revoked_filter_selects_them() {
    let d = daemon();
    let ca = ec_root(d, "rv-rows");
    let ca_id = id_of(&ca);
    let role = create_role(d, &ca_id, json!({}));
    let a = issue(d, &role, "row-a");
    let b = issue(d, &role, "row-b");
    let c = issue(d, &role, "row-c");

    let row = get_cert(d, &id_of(&a));
    assert_eq!(row["is_revoked"], false, "{row}");
    assert!(row["revoked_at"].is_null(), "{row}");
    assert!(row["revocation_reason"].is_null(), "{row}");

    let ra = revoke_ok(d, &serial_of(&a), Some("superseded"));
    let rb = revoke_ok(d, &serial_of(&b), Some("privilege_withdrawn"));
    for (leaf, r) in [(&a, &ra), (&b, &rb)] {
        let row = get_cert(d, &id_of(leaf));
        assert_eq!(row["is_revoked"], true, "{row}");
        assert_eq!(row["revocation_reason"], r["reason"], "{row}");
        assert_eq!(
            parse_time(&row, "revoked_at"),
            parse_time(r, "revocation_time"),
            "revoked_at vs the revoke answer: {row} vs {r}"
        );
    }

    let list = |q: &str| -> BTreeMap<String, Value> {
        let path = format!("/v1/pki/certificates?ca_id={ca_id}{q}&limit=1000");
        let (st, v) = d.get(&path);
        assert_eq!(st, 200, "GET {path} -> {st} {v}");
        v["data"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no data: {v}"))
            .iter()
            .map(|r| (id_of(r), r.clone()))
            .collect()
    };
    let all = list("");
    assert_eq!(all.len(), 3, "{all:?}");
    for (leaf, r) in [(&a, Some(&ra)), (&b, Some(&rb)), (&c, None)] {
        let row = &all[&id_of(leaf)];
        match r {
            Some(r) => {
                assert_eq!(row["is_revoked"], true, "{row}");
                assert_eq!(row["revocation_reason"], r["reason"], "{row}");
                assert_eq!(
                    parse_time(row, "revoked_at"),
                    parse_time(r, "revocation_time"),
                    "{row}"
                );
            }
            None => {
                assert_eq!(row["is_revoked"], false, "{row}");
                assert!(row["revoked_at"].is_null(), "{row}");
                assert!(row["revocation_reason"].is_null(), "{row}");
            }
        }
    }
    let revoked: BTreeSet<String> = list("&revoked=true").into_keys().collect();
    assert_eq!(
        revoked,
        BTreeSet::from([id_of(&a), id_of(&b)]),
        "revoked=true"
    );
    let live: BTreeSet<String> = list("&revoked=false").into_keys().collect();
    assert_eq!(live, BTreeSet::from([id_of(&c)]), "revoked=false");
}

// ---------------------------------------------------------------- delta CRLs

#[test]
fn the_delta_crl_has_a_critical_indicator_and_fits_the_current_full_crl() {
    if !require_python_cryptography() {
        return;
    }
    let d = daemon();
    let ca = ec_root(d, "rv-delta");
    let ca_id = id_of(&ca);
    let ca_pem = d.ca_certificate_pem(&ca_id);
    let role = create_role(d, &ca_id, json!({}));
    let leaf = issue(d, &role, "delta");
    let serial = serial_of(&leaf);

    let n = rebuild(d, &ca_id)["crl_number"].as_u64().unwrap();
    let full = crl_dump(d, &crl_der(d, &ca_id, false), &ca_pem, &[]);
    assert_eq!(dump_number(&full), n, "{full}");
    assert!(full["delta_base"].is_null(), "{full}");
    let delta = crl_dump(d, &crl_der(d, &ca_id, true), &ca_pem, &[]);
    assert_crl_basics("delta CRL", &delta);
    assert_eq!(delta["delta_base"].as_u64(), Some(n), "{delta}");
    assert_eq!(
        delta["delta_critical"], true,
        "the Delta CRL Indicator must be critical (RFC 5280 5.2.4): {delta}"
    );
    assert!(dump_number(&delta) > n, "{delta}");

    // After a revocation the full CRL moves on by itself. The delta published
    // with it must be usable with that full CRL (RFC 5280 5.2.4 / 6.3.3: its
    // base number <= the full CRL's number < its own number), and when its base
    // is a full CRL from before the revocation it must list the revocation.
    revoke_ok(d, &serial, Some("key_compromise"));
    let (full, _) = poll_crl(d, &ca_id, &ca_pem, false, REBUILD_WAIT, |dump| {
        entry(dump, &serial).is_some()
    })
    .unwrap_or_else(|last| panic!("revocation not on the full CRL in time: {last}"));
    let m = dump_number(&full);
    assert!(m > n, "{full}");
    // The delta is signed just after the full CRL: give it a moment.
    let (delta, _) = poll_crl(d, &ca_id, &ca_pem, true, REBUILD_WAIT, |dump| {
        dump["number"].as_u64().is_some_and(|x| x > m)
    })
    .unwrap_or_else(|last| panic!("no delta CRL newer than full CRL {m}: {last}"));
    assert_crl_basics("delta CRL after a revocation", &delta);
    assert_eq!(delta["delta_critical"], true, "{delta}");
    let base = delta["delta_base"]
        .as_u64()
        .unwrap_or_else(|| panic!("delta without a Delta CRL Indicator: {delta}"));
    assert!(
        (n..=m).contains(&base),
        "the delta's base {base} should be a full CRL between {n} (before the revocation) \
         and the current {m}: {delta}"
    );
    if base < m {
        assert_eq!(
            entry(&delta, &serial).map(|e| e["reason"].clone()),
            Some(json!("keyCompromise")),
            "the delta is based on full CRL {base}, which predates the revocation of \
             {serial}, so it must list it: {delta}"
        );
    }
}

#[test]
fn the_full_crl_points_at_the_delta_when_public_base_url_is_set() {
    if !require_python_cryptography() || !require_tool("lint_crl") {
        return;
    }
    let base = "https://pki.example.test";
    let setup = new_daemon_setup(&format!("public_base_url = \"{base}\""))
        .unwrap_or_else(|e| panic!("{e}"));
    let d = start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    let ca = ec_root(&d, "rv-freshest");
    let ca_id = id_of(&ca);
    let ca_pem = d.ca_certificate_pem(&ca_id);
    let role = create_role(&d, &ca_id, json!({}));
    let leaf = issue(&d, &role, "freshest");
    revoke_ok(&d, &serial_of(&leaf), Some("superseded"));
    rebuild(&d, &ca_id);
    let der = crl_der(&d, &ca_id, false);
    let dump = crl_dump(&d, &der, &ca_pem, &[]);
    assert_crl_basics("full CRL", &dump);
    assert_eq!(
        dump["freshest"],
        json!([format!("{base}/v1/pki/ca/{ca_id}/crl/delta")]),
        "Freshest CRL of the full CRL: {dump}"
    );
    assert_eq!(dump["freshest_critical"], false, "{dump}");
    let (ok, out) = pkilint_crl(&d, &der);
    assert!(
        ok,
        "pkilint findings for the full CRL with Freshest CRL:\n{out}"
    );
    let delta = crl_der(&d, &ca_id, true);
    let (ok, out) = pkilint_crl(&d, &delta);
    assert!(ok, "pkilint findings for the delta CRL:\n{out}");
}
