//! The issuance API against the real daemon on a throw-away SoftHSM2 token:
//! roles, issue, sign, list, get, renew, import and stored private keys.
//!
//! One daemon serves every test here (see `common::daemon`); tests run in
//! parallel, so each makes its own CAs and roles with unique names. Leaves are
//! judged by openssl, pkilint and Python `cryptography`, not by our own parser.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::{
    assert_error, contains_bytes, daemon, der_to_pem, merge, new_daemon_setup, openssl,
    openssl_verify, output_text, pem_to_der, pkilint_cert, pkilint_chain,
    python_cryptography_check, read_tree, require_python_cryptography, require_tool,
    start_daemon_on, unique_name, write_pem, Auth, Daemon,
};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const OID_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const OID_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// Python `cryptography` judge of one leaf. argv[1] is a JSON object:
/// leaf, issuer (PEM paths); optional key, csr (PEM paths); cn (str|null);
/// dns, ips, uris (lists); eku (dotted OIDs); ku (KeyUsage attribute names
/// that must be set, all others must be clear); key_type, key_bits;
/// serial ("1A:2B"), not_before, not_after (RFC 3339); subject {O,OU,C,L,ST};
/// crl_dp, aia_ca_issuers (URL or null = must be absent).
const LEAF_CHECK: &str = r#"
import datetime, json, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, AuthorityInformationAccessOID

spec = json.loads(sys.argv[1])
problems = []

def check(cond, msg):
    if not cond:
        problems.append(msg)

def load(p):
    with open(p, "rb") as f:
        return f.read()

def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))

def spki(k):
    return k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

leaf = x509.load_pem_x509_certificate(load(spec["leaf"]))
issuer = x509.load_pem_x509_certificate(load(spec["issuer"]))

def get(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None

try:
    leaf.verify_directly_issued_by(issuer)
except Exception as e:  # noqa: BLE001
    problems.append(f"leaf is not directly issued by the issuer: {e!r}")
check(leaf.version == x509.Version.v3, f"version {leaf.version}")
check(leaf.issuer == issuer.subject, f"issuer {leaf.issuer} != issuer subject {issuer.subject}")
oids = [e.oid.dotted_string for e in leaf.extensions]
check(len(oids) == len(set(oids)), f"duplicate extensions {oids}")

if "cn" in spec:
    got = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    want = [] if spec["cn"] is None else [spec["cn"]]
    check(got == want, f"subject CN {got} want {want}")
attrs = {"O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
         "C": NameOID.COUNTRY_NAME, "L": NameOID.LOCALITY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME}
for short, oid in attrs.items():
    want = spec.get("subject", {}).get(short, [])
    got = [a.value for a in leaf.subject.get_attributes_for_oid(oid)]
    check(sorted(got) == sorted(want), f"subject {short}: {got} want {want}")

san = get(leaf, x509.SubjectAlternativeName)
if san is None:
    check(not spec.get("dns") and not spec.get("ips") and not spec.get("uris"), "no subjectAltName")
else:
    dns = sorted(san.value.get_values_for_type(x509.DNSName))
    check(dns == sorted(spec.get("dns", [])), f"SAN DNS {dns} want {sorted(spec.get('dns', []))}")
    ips = sorted(str(i) for i in san.value.get_values_for_type(x509.IPAddress))
    check(ips == sorted(spec.get("ips", [])), f"SAN IP {ips} want {sorted(spec.get('ips', []))}")
    uris = sorted(san.value.get_values_for_type(x509.UniformResourceIdentifier))
    check(uris == sorted(spec.get("uris", [])), f"SAN URI {uris} want {sorted(spec.get('uris', []))}")

bc = get(leaf, x509.BasicConstraints)
check(bc is not None, "no basicConstraints")
if bc is not None:
    check(bc.critical, "basicConstraints not critical")
    check(bc.value.ca is False, "basicConstraints CA is not FALSE")
    check(bc.value.path_length is None, "pathLen on a leaf")

ku = get(leaf, x509.KeyUsage)
check(ku is not None, "no keyUsage")
if ku is not None:
    check(ku.critical, "keyUsage not critical")
if ku is not None and "ku" in spec:
    for flag in ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                 "key_agreement", "key_cert_sign", "crl_sign"]:
        want = flag in spec.get("ku", [])
        check(getattr(ku.value, flag) == want, f"keyUsage {flag} is {getattr(ku.value, flag)}, want {want}")

if "eku" in spec:
    eku = get(leaf, x509.ExtendedKeyUsage)
    check(eku is not None, "no extKeyUsage")
    if eku is not None:
        got = sorted(o.dotted_string for o in eku.value)
        check(got == sorted(spec["eku"]), f"extKeyUsage {got} want {sorted(spec['eku'])}")

ski = get(leaf, x509.SubjectKeyIdentifier)
check(ski is not None and not ski.critical, "no (or critical) subjectKeyIdentifier")
aki = get(leaf, x509.AuthorityKeyIdentifier)
issuer_ski = get(issuer, x509.SubjectKeyIdentifier)
check(aki is not None and not aki.critical, "no (or critical) authorityKeyIdentifier")
if aki is not None and issuer_ski is not None:
    check(aki.value.key_identifier == issuer_ski.value.digest,
          f"AKI {aki.value.key_identifier.hex() if aki.value.key_identifier else None} != issuer SKI {issuer_ski.value.digest.hex()}")

pub = leaf.public_key()
if spec.get("key_type") == "ec":
    check(isinstance(pub, ec.EllipticCurvePublicKey), f"public key {type(pub)} is not EC")
    if isinstance(pub, ec.EllipticCurvePublicKey) and "key_bits" in spec:
        check(pub.curve.key_size == spec["key_bits"], f"curve {pub.curve.name}")
elif spec.get("key_type") == "rsa":
    check(isinstance(pub, rsa.RSAPublicKey), f"public key {type(pub)} is not RSA")
    if isinstance(pub, rsa.RSAPublicKey) and "key_bits" in spec:
        check(pub.key_size == spec["key_bits"], f"RSA size {pub.key_size}")

if spec.get("key"):
    k = serialization.load_pem_private_key(load(spec["key"]), None)
    check(spki(k.public_key()) == spki(pub), "the private key does not match the certificate's public key")
if spec.get("csr"):
    csr = x509.load_pem_x509_csr(load(spec["csr"]))
    check(spki(csr.public_key()) == spki(pub), "the certificate's public key is not the CSR's")

check(leaf.serial_number > 0, "serial not positive")
check(leaf.serial_number.bit_length() <= 159, "serial longer than 20 octets")
if "serial" in spec:
    check(int(spec["serial"].replace(":", ""), 16) == leaf.serial_number,
          f"serial_number {spec['serial']} != certificate serial {leaf.serial_number:X}")
if "not_before" in spec:
    check(leaf.not_valid_before_utc == ts(spec["not_before"]),
          f"notBefore {leaf.not_valid_before_utc} != not_before {spec['not_before']}")
if "not_after" in spec:
    check(leaf.not_valid_after_utc == ts(spec["not_after"]),
          f"notAfter {leaf.not_valid_after_utc} != not_after {spec['not_after']}")

if "crl_dp" in spec:
    crl = get(leaf, x509.CRLDistributionPoints)
    if spec["crl_dp"] is None:
        check(crl is None, "a CRL distribution point without public_base_url")
    else:
        urls = [n.value for dp in (crl.value if crl else []) for n in (dp.full_name or [])]
        check(urls == [spec["crl_dp"]], f"CRL DP {urls} want {[spec['crl_dp']]}")
if "aia_ca_issuers" in spec:
    aia = get(leaf, x509.AuthorityInformationAccess)
    if spec["aia_ca_issuers"] is None:
        check(aia is None, "an AIA extension without public_base_url")
    else:
        urls = [d.access_location.value for d in (aia.value if aia else [])
                if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
        check(urls == [spec["aia_ca_issuers"]], f"AIA caIssuers {urls} want {[spec['aia_ca_issuers']]}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("OK")
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

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn parse_time(v: &Value, field: &str) -> OffsetDateTime {
    let t = s(v, field);
    OffsetDateTime::parse(t, &Rfc3339)
        .unwrap_or_else(|e| panic!("{field} {t:?} is not RFC 3339: {e}"))
}

/// `t` lies within [lo - slack, hi + slack].
fn assert_between(
    what: &str,
    t: OffsetDateTime,
    lo: OffsetDateTime,
    hi: OffsetDateTime,
    slack: i64,
) {
    let slack = time::Duration::seconds(slack);
    assert!(
        t >= lo - slack && t <= hi + slack,
        "{what}: {t} not within [{lo}, {hi}] ± {slack}"
    );
}

fn norm(pem: &str) -> String {
    pem.replace("\r\n", "\n").trim().to_string()
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

fn percent_encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An EC P-256 root with an EC P-256 intermediate under it.
fn ec_chain(prefix: &str) -> (Value, Value) {
    let d = daemon();
    let root = d.create_root(
        &format!("{prefix}-root"),
        json!({"key_type": "ec", "key_size": 256}),
    );
    let int = d.create_intermediate(
        &format!("{prefix}-int"),
        &id_of(&root),
        json!({"key_type": "ec", "key_size": 256}),
    );
    (root, int)
}

fn ec_root(prefix: &str) -> Value {
    daemon().create_root(prefix, json!({"key_type": "ec"}))
}

fn role_body(ca_id: &str, extra: Value) -> Value {
    let mut body = json!({"name": unique_name("role"), "ca_id": ca_id});
    merge(&mut body, extra);
    body
}

/// `POST /v1/pki/roles`, asserting 201; returns the role object.
fn create_role(ca_id: &str, extra: Value) -> Value {
    let body = role_body(ca_id, extra);
    let (st, v) = daemon().post("/v1/pki/roles", &body);
    assert_eq!(st, 201, "POST /v1/pki/roles {body} -> {st} {v}");
    v
}

fn role_name(role: &Value) -> String {
    s(role, "name").to_string()
}

fn issue(role: &str, body: &Value) -> (u16, Value) {
    daemon().post(&format!("/v1/pki/issue/{role}"), body)
}

fn issue_ok(role: &str, body: &Value) -> Value {
    let (st, v) = issue(role, body);
    assert_eq!(st, 201, "POST /v1/pki/issue/{role} {body} -> {st} {v}");
    v
}

fn sign(role: &str, body: &Value) -> (u16, Value) {
    daemon().post(&format!("/v1/pki/sign/{role}"), body)
}

fn get_cert(id: &str) -> (u16, Value) {
    daemon().get(&format!("/v1/pki/certificates/{id}"))
}

fn get_cert_ok(id: &str) -> Value {
    let (st, v) = get_cert(id);
    assert_eq!(st, 200, "GET /v1/pki/certificates/{id} -> {st} {v}");
    v
}

fn fetch_private_key(id: &str) -> (u16, Value) {
    let r = daemon().request(
        reqwest::Method::POST,
        &format!("/v1/pki/certificates/{id}/private-key"),
        Auth::Root,
        &[],
        None,
    );
    (r.status, r.json())
}

/// Follow `cursor` through every page of `GET /v1/pki/certificates?{query}`.
fn list_pages(query: &str, limit: usize) -> Vec<Vec<Value>> {
    let d = daemon();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut path = format!("/v1/pki/certificates?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", percent_encode(c)));
        }
        let (st, v) = d.get(&path);
        assert_eq!(st, 200, "GET {path} -> {st} {v}");
        let data = v["data"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no data array in {v}"))
            .clone();
        assert!(
            data.len() <= limit,
            "GET {path}: {} rows for limit {limit}",
            data.len()
        );
        pages.push(data);
        match (&v["has_more"], &v["cursor"]) {
            (Value::Bool(false), Value::Null) => return pages,
            (Value::Bool(true), Value::String(c)) => cursor = Some(c.clone()),
            _ => panic!("GET {path}: has_more/cursor inconsistent: {v}"),
        }
    }
    panic!("GET /v1/pki/certificates?{query}: more than 10000 pages");
}

fn list_all(query: &str) -> Vec<Value> {
    list_pages(query, 1000).into_iter().flatten().collect()
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter().map(id_of).collect()
}

/// Run `openssl ARGS`, asserting success; returns stdout bytes.
fn openssl_ok(args: &[&str]) -> Vec<u8> {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        output_text(&out)
    );
    out.stdout
}

/// The SubjectPublicKeyInfo PEM of a certificate, CSR or private key, per openssl.
fn openssl_pubkey(kind: &str, pem: &str) -> String {
    let p = write_pem(&format!("pub-{kind}"), pem);
    let p = p.to_str().unwrap();
    let out = match kind {
        "x509" => openssl_ok(&["x509", "-in", p, "-noout", "-pubkey"]),
        "req" => openssl_ok(&["req", "-in", p, "-noout", "-pubkey"]),
        _ => openssl_ok(&["pkey", "-in", p, "-pubout"]),
    };
    String::from_utf8_lossy(&out).trim().to_string()
}

/// A private key PEM (any format) as PKCS#8 DER, per openssl.
fn openssl_key_der(pem: &str) -> Vec<u8> {
    let p = write_pem("key-der", pem);
    openssl_ok(&["pkey", "-in", p.to_str().unwrap(), "-outform", "DER"])
}

/// `openssl x509 -noout ARGS`; returns stdout.
fn openssl_x509(pem: &str, args: &[&str]) -> String {
    let p = write_pem("x509", pem);
    let mut all = vec!["x509", "-noout", "-in", p.to_str().unwrap()];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&openssl_ok(&all)).into_owned()
}

/// Every judge over one issued leaf:
/// openssl verify (plus `verify_extra`), pkilint on the leaf and on the
/// issuer→leaf link, and the Python check `py` (leaf/issuer/key paths added).
fn judge_leaf(
    leaf_pem: &str,
    root_pem: &str,
    untrusted: &[&str],
    issuer_pem: &str,
    key_pem: Option<&str>,
    py: Value,
    verify_extra: &[&str],
) {
    if require_tool("openssl") {
        let (ok, out) = openssl_verify(root_pem, untrusted, leaf_pem, verify_extra);
        assert!(ok, "openssl does not verify the leaf:\n{out}\n{leaf_pem}");
    }
    if require_tool("lint_pkix_cert") && require_tool("lint_pkix_signer_signee_cert_chain") {
        let (ok, out) = pkilint_cert(leaf_pem);
        assert!(ok, "pkilint findings for the leaf:\n{out}\n{leaf_pem}");
        let (ok, out) = pkilint_chain(issuer_pem, leaf_pem);
        assert!(ok, "pkilint signer/signee findings:\n{out}\n{leaf_pem}");
    }
    if require_python_cryptography() {
        python_leaf_check(leaf_pem, issuer_pem, key_pem, py);
    }
}

fn python_leaf_check(leaf_pem: &str, issuer_pem: &str, key_pem: Option<&str>, py: Value) {
    let mut spec = py;
    merge(
        &mut spec,
        json!({
            "leaf": write_pem("py-leaf", leaf_pem).to_string_lossy(),
            "issuer": write_pem("py-issuer", issuer_pem).to_string_lossy(),
        }),
    );
    if let Some(k) = key_pem {
        merge(
            &mut spec,
            json!({"key": write_pem("py-key", k).to_string_lossy()}),
        );
    }
    let arg = spec.to_string();
    let (ok, out) = python_cryptography_check(LEAF_CHECK, &[&arg]);
    assert!(
        ok,
        "Python cryptography judged the leaf wrong:\n{out}\nspec {spec}\n{leaf_pem}"
    );
}

/// Check the shape every issue/sign/renew 201 response shares.
fn assert_issue_response(v: &Value, with_key: bool) {
    let id = id_of(v);
    assert!(
        id.starts_with("cert_") && id.len() > 5,
        "id {id:?} should start with cert_"
    );
    let cert = s(v, "certificate");
    assert!(
        cert.starts_with("-----BEGIN CERTIFICATE-----"),
        "certificate: {cert}"
    );
    assert_eq!(
        cert.matches("BEGIN CERTIFICATE").count(),
        1,
        "certificate holds more than one PEM: {cert}"
    );
    assert_serial_format(s(v, "serial_number"));
    let _ = parse_time(v, "not_before");
    let _ = parse_time(v, "not_after");
    let chain = v["ca_chain"]
        .as_array()
        .unwrap_or_else(|| panic!("ca_chain not a list: {v}"));
    assert!(!chain.is_empty(), "ca_chain empty: {v}");
    assert_eq!(
        norm(s(v, "issuing_ca")),
        norm(chain[0].as_str().unwrap_or_default()),
        "issuing_ca != ca_chain[0]"
    );
    if with_key {
        let k = s(v, "private_key");
        assert!(k.contains("PRIVATE KEY-----"), "private_key: {k}");
        let t = s(v, "private_key_type");
        assert!(t == "ec" || t == "rsa", "private_key_type {t:?}");
    } else {
        assert!(
            v.get("private_key").is_none_or(Value::is_null),
            "a signed CSR must not come back with a private_key: {v}"
        );
    }
}

/// The serial of a certificate per openssl, as `1A:2B:…`.
fn openssl_serial(pem: &str) -> String {
    let out = openssl_x509(pem, &["-serial"]);
    let hex = out.trim().trim_start_matches("serial=").to_uppercase();
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex
    };
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

/// Make a CSR with openssl: `newkey` like `["-newkey", "rsa:2048"]`.
/// Returns (csr_pem, key_pem).
fn openssl_csr(newkey: &[&str], subj: &str, san: Option<&str>) -> (String, String) {
    let (csr, key) = common::openssl_csr(newkey, subj, san);
    (csr, common::read_to_string(&key))
}

const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
const P384: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"];
const RSA2048: &[&str] = &["-newkey", "rsa:2048"];
const RSA2048_PSS: &[&str] = &[
    "-newkey",
    "rsa:2048",
    "-sigopt",
    "rsa_padding_mode:pss",
    "-sha256",
];

/// A self-signed EC CA made by openssl: (certificate PEM, key path).
fn external_ca(cn: &str) -> (String, PathBuf) {
    let (pem, _, key) = common::openssl_ca(cn);
    (pem, key)
}

/// A leaf for `cn` signed by an openssl CA: (certificate PEM, key PEM).
fn external_leaf(ca_pem: &str, ca_key: &Path, cn: &str) -> (String, String) {
    external_cert(
        ca_pem,
        ca_key,
        cn,
        &["-addext", "basicConstraints=critical,CA:FALSE"],
    )
}

// ---------------------------------------------------------------- roles

#[test]
fn creating_a_role_returns_201_with_every_default_visible() {
    let d = daemon();
    let ca = ec_root("role-dflt");
    let name = unique_name("dflt");
    let body = json!({"name": name, "ca_id": ca["id"]});
    let t0 = now();
    let (st, role) = d.post("/v1/pki/roles", &body);
    assert_eq!(st, 201, "POST /v1/pki/roles {body} -> {st} {role}");
    let want = json!({
        "name": name,
        "ca_id": ca["id"],
        "allowed_domains": [],
        "allow_subdomains": false,
        "allow_bare_domains": false,
        "allow_glob_domains": false,
        "allow_wildcard_certificates": true,
        "allow_localhost": true,
        "allow_any_name": false,
        "enforce_hostnames": true,
        "allow_ip_sans": true,
        "allowed_uri_sans": [],
        "ttl": "720h",
        "max_ttl": "720h",
        "key_type": "ec",
        "key_bits": 256,
        "key_usage": ["DigitalSignature"],
        "ext_key_usage": ["ServerAuth", "ClientAuth"],
        "organization": [],
        "ou": [],
        "country": [],
        "locality": [],
        "province": [],
        "use_csr_common_name": true,
        "use_csr_sans": true,
        "not_before_duration": "30s",
        "require_cn": true,
        "store_private_keys": false,
    });
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&role[k], v, "default of {k}: role {role}");
    }
    for f in ["created_at", "updated_at"] {
        assert_between(f, parse_time(&role, f), t0, now(), 5);
    }
}

#[test]
fn an_rsa_role_defaults_to_2048_bits_and_key_encipherment() {
    let ca = ec_root("role-rsa");
    let role = create_role(&id_of(&ca), json!({"key_type": "rsa"}));
    assert_eq!(role["key_type"], "rsa", "{role}");
    assert_eq!(role["key_bits"], 2048, "{role}");
    assert_eq!(
        role["key_usage"],
        json!(["DigitalSignature", "KeyEncipherment"]),
        "{role}"
    );
}

#[test]
fn creating_a_role_twice_is_409_role_exists() {
    let d = daemon();
    let ca = ec_root("role-dup");
    let role = create_role(&id_of(&ca), json!({}));
    let (st, v) = d.post(
        "/v1/pki/roles",
        &json!({"name": role["name"], "ca_id": ca["id"], "key_type": "rsa"}),
    );
    assert_error("duplicate role", (st, &v), 409, "role_exists");
    let (_, got) = d.get(&format!("/v1/pki/roles/{}", role_name(&role)));
    assert_eq!(
        got["key_type"], "ec",
        "the duplicate changed the role: {got}"
    );
}

#[test]
fn a_role_for_an_unknown_ca_is_404_ca_not_found() {
    let d = daemon();
    let name = unique_name("orphan-role");
    let (st, v) = d.post(
        "/v1/pki/roles",
        &json!({"name": name, "ca_id": "ca_doesnotexist"}),
    );
    assert_error("role for unknown CA", (st, &v), 404, "ca_not_found");
    let (st, v) = d.get(&format!("/v1/pki/roles/{name}"));
    assert_error("the refused role", (st, &v), 404, "role_not_found");
}

#[test]
fn a_role_with_bad_key_bits_is_400() {
    let d = daemon();
    let ca = ec_root("role-bits");
    for (kt, bits) in [
        ("ec", 2048),
        ("ec", 521),
        ("rsa", 1024),
        ("rsa", 256),
        ("rsa", 8192),
    ] {
        let body = role_body(&id_of(&ca), json!({"key_type": kt, "key_bits": bits}));
        let (st, v) = d.post("/v1/pki/roles", &body);
        assert_eq!(st, 400, "key_type {kt} key_bits {bits} -> {st} {v}");
        let code = v["error"]["code"].as_str().unwrap_or_default();
        assert!(
            code == "invalid_request" || code == "invalid_key_size",
            "key_type {kt} key_bits {bits}: code {code:?} in {v}"
        );
    }
}

#[test]
fn a_role_with_a_bad_duration_is_400_invalid_request() {
    let d = daemon();
    let ca = ec_root("role-dur");
    for (field, val) in [
        ("max_ttl", json!("forever")),
        ("max_ttl", json!("10x")),
        ("max_ttl", json!("-5h")),
        ("max_ttl", json!("")),
        ("ttl", json!("1 day")),
        ("not_before_duration", json!("30 s")),
        ("max_ttl", json!("h")),
    ] {
        let body = role_body(&id_of(&ca), json!({ field: val }));
        let (st, v) = d.post("/v1/pki/roles", &body);
        assert_error(&format!("{field} {val}"), (st, &v), 400, "invalid_request");
    }
}

#[test]
fn role_durations_accept_every_documented_form() {
    let d = daemon();
    let ca = ec_root("role-durok");
    for val in ["30s", "90m", "720h", "30d", "1h30m", "3600"] {
        let body = role_body(&id_of(&ca), json!({"max_ttl": val}));
        let (st, v) = d.post("/v1/pki/roles", &body);
        assert_eq!(st, 201, "max_ttl {val:?} -> {st} {v}");
    }
}

#[test]
fn a_role_with_an_unknown_field_is_400_invalid_request() {
    let d = daemon();
    let ca = ec_root("role-unk");
    let body = role_body(&id_of(&ca), json!({"allowed_domain": ["typo.test"]}));
    let (st, v) = d.post("/v1/pki/roles", &body);
    assert_error(
        "unknown field allowed_domain",
        (st, &v),
        400,
        "invalid_request",
    );
    let (st, v) = d.get(&format!("/v1/pki/roles/{}", s(&body, "name")));
    assert_error("the refused role", (st, &v), 404, "role_not_found");
}

#[test]
fn a_role_with_a_bad_name_type_or_no_ca_id_is_400_invalid_request() {
    let d = daemon();
    let ca = ec_root("role-badname");
    let long = "a".repeat(129);
    for body in [
        json!({"name": "has space", "ca_id": ca["id"]}),
        json!({"name": "", "ca_id": ca["id"]}),
        json!({"name": "slash/name", "ca_id": ca["id"]}),
        json!({"name": long, "ca_id": ca["id"]}),
        json!({"name": unique_name("noca")}),
        json!({"ca_id": ca["id"]}),
        role_body(&id_of(&ca), json!({"key_type": "dsa"})),
        role_body(&id_of(&ca), json!({"allow_subdomains": "yes"})),
        role_body(&id_of(&ca), json!({"allowed_domains": 7})),
    ] {
        let (st, v) = d.post("/v1/pki/roles", &body);
        assert_error(&format!("{body}"), (st, &v), 400, "invalid_request");
    }
    let body = role_body(&id_of(&ca), json!({"name": "a".repeat(128)}));
    let (st, v) = d.post("/v1/pki/roles", &body);
    assert_eq!(st, 201, "a 128-character name is allowed: {st} {v}");
    let _ = d.request(
        reqwest::Method::DELETE,
        &format!("/v1/pki/roles/{}", "a".repeat(128)),
        Auth::Root,
        &[],
        None,
    );
}

#[test]
fn a_role_can_be_read_listed_replaced_and_deleted() {
    let d = daemon();
    let ca = ec_root("role-crud");
    let ca2 = ec_root("role-crud2");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["crud.test"], "allow_subdomains": true}),
    );
    let name = role_name(&role);
    let path = format!("/v1/pki/roles/{name}");

    let (st, got) = d.get(&path);
    assert_eq!(st, 200, "GET {path} -> {st} {got}");
    assert_eq!(got, role, "GET differs from the created role");

    let (st, list) = d.get("/v1/pki/roles");
    assert_eq!(st, 200, "{list}");
    let found: Vec<&Value> = list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {list}"))
        .iter()
        .filter(|r| r["name"] == name.as_str())
        .collect();
    assert_eq!(found.len(), 1, "role listed {} times", found.len());
    assert_eq!(found[0], &role);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let put = json!({
        "name": name, "ca_id": ca2["id"], "allowed_domains": ["other.test"],
        "max_ttl": "48h", "key_type": "rsa", "key_bits": 3072,
    });
    let r = d.request(
        reqwest::Method::PUT,
        &path,
        Auth::Root,
        &[],
        Some(("application/json", put.to_string().into_bytes())),
    );
    let replaced = r.json();
    assert_eq!(r.status, 200, "PUT {path} {put} -> {} {replaced}", r.status);
    assert_eq!(replaced["ca_id"], ca2["id"], "{replaced}");
    assert_eq!(
        replaced["allowed_domains"],
        json!(["other.test"]),
        "{replaced}"
    );
    assert_eq!(replaced["max_ttl"], "48h", "{replaced}");
    assert_eq!(replaced["key_type"], "rsa", "{replaced}");
    assert_eq!(replaced["key_bits"], 3072, "{replaced}");
    // Full replacement: what the PUT left out is back at its default.
    assert_eq!(replaced["allow_subdomains"], false, "{replaced}");
    assert_eq!(
        replaced["key_usage"],
        json!(["DigitalSignature", "KeyEncipherment"]),
        "{replaced}"
    );
    assert_eq!(replaced["created_at"], role["created_at"], "{replaced}");
    assert!(
        parse_time(&replaced, "updated_at") > parse_time(&role, "updated_at"),
        "updated_at did not move: {replaced}"
    );
    let (_, got) = d.get(&path);
    assert_eq!(got, replaced, "GET after PUT");

    let r = d.request(reqwest::Method::DELETE, &path, Auth::Root, &[], None);
    assert_eq!(r.status, 204, "DELETE {path} -> {} {}", r.status, r.text());
    let (st, v) = d.get(&path);
    assert_error("GET after DELETE", (st, &v), 404, "role_not_found");
    let (st, v) = issue(&name, &json!({"common_name": "a.other.test"}));
    assert_error("issue on a deleted role", (st, &v), 404, "role_not_found");
    let (_, list) = d.get("/v1/pki/roles");
    assert!(
        !list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == name.as_str()),
        "deleted role still listed"
    );
}

#[test]
fn replacing_a_role_under_a_different_name_or_an_unknown_role_is_refused() {
    let d = daemon();
    let ca = ec_root("role-put");
    let role = create_role(&id_of(&ca), json!({}));
    let name = role_name(&role);
    let put = |path: &str, body: &Value| {
        let r = d.request(
            reqwest::Method::PUT,
            path,
            Auth::Root,
            &[],
            Some(("application/json", body.to_string().into_bytes())),
        );
        (r.status, r.json())
    };
    let (st, v) = put(
        &format!("/v1/pki/roles/{name}"),
        &json!({"name": "another-name", "ca_id": ca["id"]}),
    );
    assert_error(
        "PUT with a different name",
        (st, &v),
        400,
        "invalid_request",
    );
    // name is optional in a PUT.
    let (st, v) = put(
        &format!("/v1/pki/roles/{name}"),
        &json!({"ca_id": ca["id"], "max_ttl": "24h"}),
    );
    assert_eq!(st, 200, "PUT without name -> {st} {v}");
    assert_eq!(v["name"], name.as_str(), "{v}");
    assert_eq!(v["max_ttl"], "24h", "{v}");
    let (st, v) = put(
        &format!("/v1/pki/roles/{name}"),
        &json!({"ca_id": ca["id"], "bogus": 1}),
    );
    assert_error("PUT with unknown field", (st, &v), 400, "invalid_request");
    let (st, v) = put(
        &format!("/v1/pki/roles/{}", unique_name("nope")),
        &json!({"ca_id": ca["id"]}),
    );
    assert_error("PUT unknown role", (st, &v), 404, "role_not_found");
    let (st, v) = d.get(&format!("/v1/pki/roles/{}", unique_name("nope")));
    assert_error("GET unknown role", (st, &v), 404, "role_not_found");
}

#[test]
fn role_and_issuance_endpoints_need_a_token() {
    let d = daemon();
    let ca = ec_root("noauth-iss");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["auth.test"], "allow_subdomains": true}),
    );
    let name = role_name(&role);
    let cert = issue_ok(&name, &json!({"common_name": "a.auth.test"}));
    let cid = id_of(&cert);
    for auth in [Auth::None, Auth::Bearer("sv_wrong")] {
        let (st, v) = d.get_with("/v1/pki/roles", auth);
        assert_error("GET roles", (st, &v), 401, "unauthorized");
        let (st, v) = d.get_with(&format!("/v1/pki/roles/{name}"), auth);
        assert_error("GET role", (st, &v), 401, "unauthorized");
        let (st, v) = d.post_with("/v1/pki/roles", &role_body(&id_of(&ca), json!({})), auth);
        assert_error("POST role", (st, &v), 401, "unauthorized");
        let (st, v) = d.post_with(
            &format!("/v1/pki/issue/{name}"),
            &json!({"common_name": "b.auth.test"}),
            auth,
        );
        assert_error("POST issue", (st, &v), 401, "unauthorized");
        let (st, v) = d.post_with(
            &format!("/v1/pki/sign/{name}"),
            &json!({"csr_pem": "x"}),
            auth,
        );
        assert_error("POST sign", (st, &v), 401, "unauthorized");
        let (st, v) = d.get_with("/v1/pki/certificates", auth);
        assert_error("GET certificates", (st, &v), 401, "unauthorized");
        let (st, v) = d.get_with(&format!("/v1/pki/certificates/{cid}"), auth);
        assert_error("GET certificate", (st, &v), 401, "unauthorized");
        let (st, v) = d.post_with(
            &format!("/v1/pki/certificates/{cid}/private-key"),
            &json!({}),
            auth,
        );
        assert_error("POST private-key", (st, &v), 401, "unauthorized");
        let (st, v) = d.post_with(
            &format!("/v1/pki/certificates/{cid}/renew"),
            &json!({}),
            auth,
        );
        assert_error("POST renew", (st, &v), 401, "unauthorized");
        let (st, v) = d.post_with(
            "/v1/pki/certificates/import",
            &json!({"certificate_pem": "x"}),
            auth,
        );
        assert_error("POST import", (st, &v), 401, "unauthorized");
        let r = d.request(
            reqwest::Method::DELETE,
            &format!("/v1/pki/roles/{name}"),
            auth,
            &[],
            None,
        );
        assert_eq!(
            r.status,
            401,
            "DELETE role without a valid token: {}",
            r.text()
        );
    }
    let rows = list_all(&format!("ca_id={}", id_of(&ca)));
    assert_eq!(
        ids(&rows),
        vec![cid],
        "an unauthenticated request issued something"
    );
    let (st, _) = d.get(&format!("/v1/pki/roles/{name}"));
    assert_eq!(st, 200, "an unauthenticated DELETE removed the role");
}

// ---------------------------------------------------------------- the spec's example

#[test]
fn spec_role_and_issue_examples_return_a_certificate_every_judge_accepts() {
    let d = daemon();
    let (root, int) = ec_chain("spec");
    let root_pem = d.ca_certificate_pem(&id_of(&root));
    let int_pem = d.ca_certificate_pem(&id_of(&int));

    let name = unique_name("svc-mtls");
    let role_req = json!({
        "name": name,
        "ca_id": int["id"],
        "allowed_domains": ["*.svc.cluster.local", "*.internal"],
        "allow_subdomains": true,
        "allow_ip_sans": true,
        "max_ttl": "720h",
        "key_type": "ec",
        "key_bits": 256,
        "require_cn": true
    });
    let (st, role) = d.post("/v1/pki/roles", &role_req);
    assert_eq!(st, 201, "spec role example -> {st} {role}");
    for (k, v) in role_req.as_object().unwrap() {
        assert_eq!(&role[k], v, "role field {k}: {role}");
    }

    let issue_req = json!({
        "common_name": "billing.svc.cluster.local",
        "alt_names": ["billing-api.svc.cluster.local"],
        "ip_sans": ["10.0.5.100"],
        "ttl": "168h"
    });
    let t0 = now();
    let (st, v) = issue(&name, &issue_req);
    let t1 = now();
    assert_eq!(st, 201, "spec issue example -> {st} {v}");
    assert_issue_response(&v, true);
    let leaf = s(&v, "certificate");
    let key = s(&v, "private_key");
    assert!(
        key.starts_with("-----BEGIN EC PRIVATE KEY-----"),
        "private_key: {key}"
    );
    assert_eq!(v["private_key_type"], "ec");
    let chain: Vec<String> = v["ca_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| norm(c.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        chain,
        vec![norm(&int_pem), norm(&root_pem)],
        "ca_chain should be [intermediate, root]"
    );
    assert_eq!(norm(s(&v, "issuing_ca")), norm(&int_pem));
    let not_after = parse_time(&v, "not_after");
    assert_between(
        "not_after",
        not_after,
        t0 + time::Duration::hours(168),
        t1 + time::Duration::hours(168),
        60,
    );
    // now - 30s, but never before the issuing CA's own notBefore.
    let ca_from = parse_time(&int, "valid_from");
    assert_between(
        "not_before",
        parse_time(&v, "not_before"),
        (t0 - time::Duration::seconds(30)).max(ca_from),
        (t1 - time::Duration::seconds(30)).max(ca_from),
        2,
    );
    if require_tool("openssl") {
        assert_eq!(
            s(&v, "serial_number"),
            openssl_serial(leaf),
            "serial_number vs the certificate"
        );
        for extra in [
            &[
                "-purpose",
                "sslserver",
                "-verify_hostname",
                "billing.svc.cluster.local",
            ][..],
            &[
                "-purpose",
                "sslserver",
                "-verify_hostname",
                "billing-api.svc.cluster.local",
            ],
            &["-purpose", "sslclient", "-verify_ip", "10.0.5.100"],
        ] {
            let (ok, out) = openssl_verify(&root_pem, &[&int_pem], leaf, extra);
            assert!(ok, "openssl verify:\n{out}");
        }
        let (ok, out) = openssl_verify(
            &root_pem,
            &[&int_pem],
            leaf,
            &["-verify_hostname", "evil.example.com"],
        );
        assert!(!ok, "verified for a name it does not carry:\n{out}");
        assert_eq!(
            openssl_pubkey("x509", leaf),
            openssl_pubkey("key", key),
            "private key vs certificate, per openssl"
        );
    }
    judge_leaf(
        leaf,
        &root_pem,
        &[&int_pem],
        &int_pem,
        Some(key),
        json!({
            "cn": "billing.svc.cluster.local",
            "dns": ["billing.svc.cluster.local", "billing-api.svc.cluster.local"],
            "ips": ["10.0.5.100"],
            "uris": [],
            "ku": ["digital_signature"],
            "eku": [OID_SERVER_AUTH, OID_CLIENT_AUTH],
            "key_type": "ec",
            "key_bits": 256,
            "serial": v["serial_number"],
            "not_before": v["not_before"],
            "not_after": v["not_after"],
            "crl_dp": null,
            "aia_ca_issuers": null,
        }),
        &[],
    );

    // The record of it.
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(row["id"], v["id"]);
    assert_eq!(row["common_name"], "billing.svc.cluster.local", "{row}");
    assert_eq!(row["issuer_ca_id"], int["id"], "{row}");
    assert_eq!(row["serial_number"], v["serial_number"], "{row}");
    assert_eq!(row["valid_until"], v["not_after"], "{row}");
    assert_eq!(row["valid_from"], v["not_before"], "{row}");
    assert_eq!(row["role"], name.as_str(), "{row}");
    assert_eq!(row["source"], "issued", "{row}");
    assert_eq!(row["key_type"], "ec", "{row}");
    assert_eq!(row["has_private_key"], false, "{row}");
    assert_eq!(row["is_revoked"], false, "{row}");
    assert_eq!(norm(s(&row, "certificate")), norm(leaf));
    let (_, ca_now) = d.get(&format!("/v1/pki/ca/{}", id_of(&int)));
    assert_eq!(
        ca_now["certificates_issued"], 1,
        "certificates_issued of the issuing CA: {ca_now}"
    );
}

// ---------------------------------------------------------------- name rules

fn spec_role(prefix: &str, extra: Value) -> (Value, Value) {
    let (_, int) = ec_chain(prefix);
    let mut body = json!({
        "allowed_domains": ["*.svc.cluster.local", "*.internal"],
        "allow_subdomains": true,
        "allow_ip_sans": true,
        "max_ttl": "720h",
        "key_type": "ec",
        "key_bits": 256,
        "require_cn": true
    });
    merge(&mut body, extra);
    let role = create_role(&id_of(&int), body);
    (int, role)
}

#[test]
fn names_outside_the_spec_role_are_422_name_not_allowed() {
    let (int, role) = spec_role("names-bad", json!({}));
    let name = role_name(&role);
    for (cn, alt) in [
        ("evil.example.com", json!([])),
        ("svc.cluster.local.evil.com", json!([])),
        ("svc.cluster.local", json!([])),
        ("internal", json!([])),
        ("billing.svc.cluster.local.", json!(["evil.example.com"])),
        (
            "billing.svc.cluster.local",
            json!(["svc.cluster.local.evil.com"]),
        ),
        ("evilsvc.cluster.local", json!([])),
        ("billing.svc.cluster.localx", json!([])),
    ] {
        let (st, v) = issue(&name, &json!({"common_name": cn, "alt_names": alt}));
        assert_error(
            &format!("cn {cn} alt {alt}"),
            (st, &v),
            422,
            "name_not_allowed",
        );
    }
    assert!(
        list_all(&format!("ca_id={}", id_of(&int))).is_empty(),
        "a refused request left a certificate behind"
    );
}

#[test]
fn subdomains_at_any_depth_localhost_and_upper_case_are_allowed_by_the_spec_role() {
    let (_, role) = spec_role("names-ok", json!({}));
    let name = role_name(&role);
    for (cn, want_dns) in [
        ("billing.svc.cluster.local", "billing.svc.cluster.local"),
        ("a.b.c.svc.cluster.local", "a.b.c.svc.cluster.local"),
        ("db.internal", "db.internal"),
        ("x.y.internal", "x.y.internal"),
        ("localhost", "localhost"),
        ("Billing.SVC.cluster.local", "billing.svc.cluster.local"),
        ("trailing.svc.cluster.local.", "trailing.svc.cluster.local"),
    ] {
        let v = issue_ok(&name, &json!({"common_name": cn}));
        let row = get_cert_ok(&id_of(&v));
        assert_eq!(row["san_dns"], json!([want_dns]), "requested {cn:?}: {row}");
    }
}

#[test]
fn a_ttl_above_max_ttl_is_422_ttl_exceeds_max_and_max_ttl_itself_is_fine() {
    let (_, role) = spec_role("ttl-max", json!({}));
    let name = role_name(&role);
    for ttl in ["721h", "31d", "2592001"] {
        let (st, v) = issue(
            &name,
            &json!({"common_name": "a.svc.cluster.local", "ttl": ttl}),
        );
        assert_error(&format!("ttl {ttl}"), (st, &v), 422, "ttl_exceeds_max");
    }
    let t0 = now();
    let v = issue_ok(
        &name,
        &json!({"common_name": "a.svc.cluster.local", "ttl": "720h"}),
    );
    assert_between(
        "not_after for ttl 720h",
        parse_time(&v, "not_after"),
        t0 + time::Duration::hours(720),
        now() + time::Duration::hours(720),
        60,
    );
    let (st, v) = issue(
        &name,
        &json!({"common_name": "a.svc.cluster.local", "ttl": "soon"}),
    );
    assert_error("ttl soon", (st, &v), 400, "invalid_request");
}

#[test]
fn without_a_ttl_the_role_ttl_applies_and_without_that_max_ttl() {
    let ca = ec_root("ttl-dflt");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["ttl.test"], "allow_subdomains": true, "ttl": "48h", "max_ttl": "720h"}),
    );
    let t0 = now();
    let v = issue_ok(&role_name(&role), &json!({"common_name": "a.ttl.test"}));
    assert_between(
        "not_after with role ttl 48h",
        parse_time(&v, "not_after"),
        t0 + time::Duration::hours(48),
        now() + time::Duration::hours(48),
        60,
    );
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["ttl.test"], "allow_subdomains": true, "max_ttl": "100h"}),
    );
    assert_eq!(role["ttl"], "100h", "ttl defaults to max_ttl: {role}");
    let t0 = now();
    let v = issue_ok(&role_name(&role), &json!({"common_name": "b.ttl.test"}));
    assert_between(
        "not_after with max_ttl 100h",
        parse_time(&v, "not_after"),
        t0 + time::Duration::hours(100),
        now() + time::Duration::hours(100),
        60,
    );
}

#[test]
fn a_ttl_past_the_ca_expiry_is_422_ttl_exceeds_ca_and_no_ttl_is_clipped_to_it() {
    let d = daemon();
    let ca = d.create_root("ttl-ca", json!({"key_type": "ec", "validity_days": 10}));
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["clip.test"], "allow_subdomains": true, "max_ttl": "2000h"}),
    );
    let name = role_name(&role);
    let (st, v) = issue(
        &name,
        &json!({"common_name": "a.clip.test", "ttl": "1000h"}),
    );
    assert_error("ttl past the CA", (st, &v), 422, "ttl_exceeds_ca");
    let v = issue_ok(&name, &json!({"common_name": "a.clip.test"}));
    assert_eq!(
        parse_time(&v, "not_after"),
        parse_time(&ca, "valid_until"),
        "a leaf without ttl should be clipped to the CA's notAfter"
    );
    let root_pem = d.ca_certificate_pem(&id_of(&ca));
    judge_leaf(
        s(&v, "certificate"),
        &root_pem,
        &[],
        &root_pem,
        Some(s(&v, "private_key")),
        json!({"cn": "a.clip.test", "dns": ["a.clip.test"], "not_after": v["not_after"],
               "ku": ["digital_signature"], "key_type": "ec"}),
        &[],
    );
}

#[test]
fn ip_sans_on_a_role_without_allow_ip_sans_are_422_ip_sans_not_allowed() {
    let (int, role) = spec_role("noip", json!({"allow_ip_sans": false}));
    let (st, v) = issue(
        &role_name(&role),
        &json!({"common_name": "a.svc.cluster.local", "ip_sans": ["10.0.5.100"]}),
    );
    assert_error("ip_sans refused", (st, &v), 422, "ip_sans_not_allowed");
    let (st, v) = issue(
        &role_name(&role),
        &json!({"common_name": "a.svc.cluster.local", "ip_sans": ["::1"]}),
    );
    assert_error("IPv6 ip_sans refused", (st, &v), 422, "ip_sans_not_allowed");
    assert!(list_all(&format!("ca_id={}", id_of(&int))).is_empty());
}

#[test]
fn ipv6_sans_and_a_bad_ip_are_handled() {
    let d = daemon();
    let (root, role) = spec_role("ipv6", json!({}));
    let v = issue_ok(
        &role_name(&role),
        &json!({"common_name": "a.svc.cluster.local", "ip_sans": ["fd00::1", "10.1.2.3"]}),
    );
    let row = get_cert_ok(&id_of(&v));
    let got: BTreeSet<String> = row["san_ip"]
        .as_array()
        .unwrap_or_else(|| panic!("{row}"))
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        got,
        BTreeSet::from(["fd00::1".to_string(), "10.1.2.3".to_string()]),
        "{row}"
    );
    if require_python_cryptography() {
        let int_pem = d.ca_certificate_pem(&id_of(&root));
        python_leaf_check(
            s(&v, "certificate"),
            &int_pem,
            Some(s(&v, "private_key")),
            json!({"dns": ["a.svc.cluster.local"], "ips": ["fd00::1", "10.1.2.3"],
                   "ku": ["digital_signature"], "key_type": "ec"}),
        );
    }
    let (st, v) = issue(
        &role_name(&role),
        &json!({"common_name": "a.svc.cluster.local", "ip_sans": ["10.0.0.300"]}),
    );
    assert_eq!(st, 400, "an invalid IP address -> {st} {v}");
}

#[test]
fn a_missing_common_name_is_400_invalid_request() {
    let (int, role) = spec_role("nocn", json!({}));
    for body in [
        json!({"alt_names": ["a.svc.cluster.local"]}),
        json!({"common_name": "", "alt_names": ["a.svc.cluster.local"]}),
    ] {
        let (st, v) = issue(&role_name(&role), &body);
        assert_error(&format!("{body}"), (st, &v), 400, "invalid_request");
    }
    let (st, v) = issue(
        &role_name(&role),
        &json!({"common_name": "a.svc.cluster.local", "bogus": true}),
    );
    assert_error("unknown issue field", (st, &v), 400, "invalid_request");
    let (st, v) = daemon().post_raw(
        &format!("/v1/pki/issue/{}", role_name(&role)),
        "application/json",
        b"{\"common_name\": ",
    );
    assert_error("malformed issue JSON", (st, &v), 400, "invalid_json");
    assert!(list_all(&format!("ca_id={}", id_of(&int))).is_empty());
}

#[test]
fn without_require_cn_a_certificate_can_carry_only_sans() {
    let d = daemon();
    let (int, role) = spec_role("optcn", json!({"require_cn": false}));
    let v = issue_ok(
        &role_name(&role),
        &json!({"alt_names": ["a.svc.cluster.local"]}),
    );
    if require_python_cryptography() {
        let int_pem = d.ca_certificate_pem(&id_of(&int));
        python_leaf_check(
            s(&v, "certificate"),
            &int_pem,
            Some(s(&v, "private_key")),
            json!({"dns": ["a.svc.cluster.local"], "ku": ["digital_signature"], "key_type": "ec"}),
        );
    }
}

#[test]
fn a_wildcard_name_is_issued_only_when_the_role_allows_wildcards() {
    let d = daemon();
    let (int, role) = spec_role("wild", json!({}));
    let int_pem = d.ca_certificate_pem(&id_of(&int));
    let v = issue_ok(
        &role_name(&role),
        &json!({"common_name": "*.svc.cluster.local"}),
    );
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(row["san_dns"], json!(["*.svc.cluster.local"]), "{row}");
    if require_tool("openssl") {
        let root = d.get(&format!("/v1/pki/ca/{}", id_of(&int))).1;
        let root_pem = d.ca_certificate_pem(s(&root, "parent_ca_id"));
        let (ok, out) = openssl_verify(
            &root_pem,
            &[&int_pem],
            s(&v, "certificate"),
            &["-verify_hostname", "anything.svc.cluster.local"],
        );
        assert!(
            ok,
            "wildcard does not cover anything.svc.cluster.local:\n{out}"
        );
    }
    for cn in ["*.example.com", "*.cluster.local", "*.evil.com"] {
        let (st, v) = issue(&role_name(&role), &json!({"common_name": cn}));
        assert_error(cn, (st, &v), 422, "name_not_allowed");
    }
    let (_, no_wild) = spec_role("nowild", json!({"allow_wildcard_certificates": false}));
    let (st, v) = issue(
        &role_name(&no_wild),
        &json!({"common_name": "*.svc.cluster.local"}),
    );
    assert_error(
        "wildcard on a role without allow_wildcard_certificates",
        (st, &v),
        422,
        "name_not_allowed",
    );
}

#[test]
fn bare_and_glob_domains_follow_their_flags() {
    let ca = ec_root("bareglob");
    let plain = create_role(&id_of(&ca), json!({"allowed_domains": ["plain.test"]}));
    for cn in ["plain.test", "a.plain.test"] {
        let (st, v) = issue(&role_name(&plain), &json!({"common_name": cn}));
        assert_error(
            &format!("{cn} on a plain pattern without flags"),
            (st, &v),
            422,
            "name_not_allowed",
        );
    }
    let bare = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["plain.test"], "allow_bare_domains": true}),
    );
    issue_ok(&role_name(&bare), &json!({"common_name": "plain.test"}));
    let (st, v) = issue(&role_name(&bare), &json!({"common_name": "a.plain.test"}));
    assert_error(
        "subdomain without allow_subdomains",
        (st, &v),
        422,
        "name_not_allowed",
    );

    let glob = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["web-*.glob.test"], "allow_glob_domains": true}),
    );
    issue_ok(
        &role_name(&glob),
        &json!({"common_name": "web-01.glob.test"}),
    );
    for cn in ["db-01.glob.test", "web-.glob.test", "a.web-01.glob.test"] {
        let (st, v) = issue(&role_name(&glob), &json!({"common_name": cn}));
        assert_error(cn, (st, &v), 422, "name_not_allowed");
    }
    let noglob = create_role(&id_of(&ca), json!({"allowed_domains": ["web-*.glob.test"]}));
    let (st, v) = issue(
        &role_name(&noglob),
        &json!({"common_name": "web-01.glob.test"}),
    );
    assert_error(
        "glob without allow_glob_domains",
        (st, &v),
        422,
        "name_not_allowed",
    );

    let nolocal = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["plain.test"], "allow_localhost": false}),
    );
    let (st, v) = issue(&role_name(&nolocal), &json!({"common_name": "localhost"}));
    assert_error(
        "localhost without allow_localhost",
        (st, &v),
        422,
        "name_not_allowed",
    );

    let any = create_role(&id_of(&ca), json!({"allow_any_name": true}));
    issue_ok(
        &role_name(&any),
        &json!({"common_name": "whatever.example.org"}),
    );
    let (st, v) = issue(&role_name(&any), &json!({"common_name": "not_a_host!"}));
    assert_error(
        "allow_any_name still checks hostnames",
        (st, &v),
        422,
        "name_not_allowed",
    );
}

#[test]
fn hostnames_that_are_not_ldh_are_refused_when_enforce_hostnames_is_on() {
    let (_, role) = spec_role("ldh", json!({}));
    let long_label = format!("{}.svc.cluster.local", "a".repeat(64));
    for cn in [
        "bad_name.svc.cluster.local",
        "-lead.svc.cluster.local",
        "trail-.svc.cluster.local",
        "sp ace.svc.cluster.local",
        "a..svc.cluster.local",
    ] {
        let (st, v) = issue(&role_name(&role), &json!({"common_name": cn}));
        assert_error(cn, (st, &v), 422, "name_not_allowed");
    }
    // A 64-character label as a SAN (a CN that long is over X.520's 64-character bound).
    let (st, v) = issue(
        &role_name(&role),
        &json!({"common_name": "ok.svc.cluster.local", "alt_names": [long_label]}),
    );
    assert_error("64-character label", (st, &v), 422, "name_not_allowed");
    let ok63 = format!("{}.svc.cluster.local", "a".repeat(63));
    let v = issue_ok(
        &role_name(&role),
        &json!({"common_name": "ok.svc.cluster.local", "alt_names": [ok63]}),
    );
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(row["san_dns"].as_array().map(Vec::len), Some(2), "{row}");
}

#[test]
fn uri_sans_must_match_allowed_uri_sans() {
    let d = daemon();
    let (int, role) = spec_role(
        "uri",
        json!({"allowed_uri_sans": ["spiffe://cluster.local/ns/*"]}),
    );
    let uri = "spiffe://cluster.local/ns/billing/sa/api";
    let v = issue_ok(
        &role_name(&role),
        &json!({"common_name": "billing.svc.cluster.local", "uri_sans": [uri]}),
    );
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(row["san_uri"], json!([uri]), "{row}");
    if require_python_cryptography() {
        let int_pem = d.ca_certificate_pem(&id_of(&int));
        python_leaf_check(
            s(&v, "certificate"),
            &int_pem,
            Some(s(&v, "private_key")),
            json!({"cn": "billing.svc.cluster.local", "dns": ["billing.svc.cluster.local"],
                   "uris": [uri], "ku": ["digital_signature"], "key_type": "ec"}),
        );
    }
    for bad in ["spiffe://other.domain/ns/x", "https://cluster.local/ns/x"] {
        let (st, v) = issue(
            &role_name(&role),
            &json!({"common_name": "billing.svc.cluster.local", "uri_sans": [bad]}),
        );
        assert_error(bad, (st, &v), 422, "uri_not_allowed");
    }
    let (_, plain) = spec_role("nouri", json!({}));
    let (st, v) = issue(
        &role_name(&plain),
        &json!({"common_name": "billing.svc.cluster.local", "uri_sans": [uri]}),
    );
    assert_error(
        "URI SAN on a role without allowed_uri_sans",
        (st, &v),
        422,
        "uri_not_allowed",
    );
}

#[test]
fn exclude_cn_from_sans_leaves_the_cn_out_of_the_san() {
    let d = daemon();
    let (int, role) = spec_role("excl", json!({}));
    let v = issue_ok(
        &role_name(&role),
        &json!({"common_name": "cn.svc.cluster.local", "alt_names": ["alt.svc.cluster.local"],
                "exclude_cn_from_sans": true}),
    );
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(row["san_dns"], json!(["alt.svc.cluster.local"]), "{row}");
    if require_python_cryptography() {
        let int_pem = d.ca_certificate_pem(&id_of(&int));
        python_leaf_check(
            s(&v, "certificate"),
            &int_pem,
            Some(s(&v, "private_key")),
            json!({"cn": "cn.svc.cluster.local", "dns": ["alt.svc.cluster.local"],
                   "ku": ["digital_signature"], "key_type": "ec"}),
        );
    }
    // The CN is checked against the role even when left out of the SAN.
    let (st, v) = issue(
        &role_name(&role),
        &json!({"common_name": "evil.example.com", "alt_names": ["alt.svc.cluster.local"],
                "exclude_cn_from_sans": true}),
    );
    assert_error(
        "excluded CN still checked",
        (st, &v),
        422,
        "name_not_allowed",
    );
}

#[test]
fn issuing_on_an_unknown_role_is_404_role_not_found() {
    let (st, v) = issue(
        &unique_name("no-such-role"),
        &json!({"common_name": "a.test"}),
    );
    assert_error("issue on unknown role", (st, &v), 404, "role_not_found");
    let (st, v) = sign(&unique_name("no-such-role"), &json!({"csr_pem": "x"}));
    assert_error("sign on unknown role", (st, &v), 404, "role_not_found");
}

#[test]
fn role_subject_fields_and_usages_appear_in_the_leaf() {
    let d = daemon();
    let ca = ec_root("subject");
    let role = create_role(
        &id_of(&ca),
        json!({
            "allowed_domains": ["subject.test"], "allow_subdomains": true,
            "organization": ["Acme Corp"], "ou": ["Platform"], "country": ["NL"],
            "locality": ["Amsterdam"], "province": ["Noord-Holland"],
            "key_usage": ["digital_signature", "keyagreement"],
            "ext_key_usage": ["ClientAuth"],
        }),
    );
    let v = issue_ok(&role_name(&role), &json!({"common_name": "a.subject.test"}));
    let root_pem = d.ca_certificate_pem(&id_of(&ca));
    judge_leaf(
        s(&v, "certificate"),
        &root_pem,
        &[],
        &root_pem,
        Some(s(&v, "private_key")),
        json!({
            "cn": "a.subject.test", "dns": ["a.subject.test"],
            "subject": {"O": ["Acme Corp"], "OU": ["Platform"], "C": ["NL"],
                        "L": ["Amsterdam"], "ST": ["Noord-Holland"]},
            "ku": ["digital_signature", "key_agreement"],
            "eku": [OID_CLIENT_AUTH],
            "key_type": "ec",
        }),
        &["-purpose", "sslclient"],
    );
}

// ---------------------------------------------------------------- key types and formats

#[test]
fn pkcs8_format_returns_a_begin_private_key_pem_that_matches_the_certificate() {
    let d = daemon();
    let ca = ec_root("pkcs8");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["pkcs8.test"], "allow_subdomains": true}),
    );
    let v = issue_ok(
        &role_name(&role),
        &json!({"common_name": "a.pkcs8.test", "private_key_format": "pkcs8"}),
    );
    let key = s(&v, "private_key");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    assert_eq!(v["private_key_type"], "ec");
    let root_pem = d.ca_certificate_pem(&id_of(&ca));
    judge_leaf(
        s(&v, "certificate"),
        &root_pem,
        &[],
        &root_pem,
        Some(key),
        json!({"cn": "a.pkcs8.test", "dns": ["a.pkcs8.test"], "ku": ["digital_signature"],
               "eku": [OID_SERVER_AUTH, OID_CLIENT_AUTH], "key_type": "ec", "key_bits": 256}),
        &[],
    );
    let (st, v) = issue(
        &role_name(&role),
        &json!({"common_name": "a.pkcs8.test", "private_key_format": "der"}),
    );
    assert_error("private_key_format der", (st, &v), 400, "invalid_request");
}

#[test]
fn an_rsa_role_issues_an_rsa_leaf_with_key_encipherment_that_pkilint_accepts() {
    let d = daemon();
    let (root, int) = ec_chain("rsa-leaf");
    let root_pem = d.ca_certificate_pem(&id_of(&root));
    let int_pem = d.ca_certificate_pem(&id_of(&int));
    let role = create_role(
        &id_of(&int),
        json!({"allowed_domains": ["rsa.test"], "allow_subdomains": true, "key_type": "rsa"}),
    );
    let v = issue_ok(
        &role_name(&role),
        &json!({"common_name": "a.rsa.test", "ttl": "24h"}),
    );
    assert_issue_response(&v, true);
    let key = s(&v, "private_key");
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{key}");
    assert_eq!(v["private_key_type"], "rsa");
    judge_leaf(
        s(&v, "certificate"),
        &root_pem,
        &[&int_pem],
        &int_pem,
        Some(key),
        json!({"cn": "a.rsa.test", "dns": ["a.rsa.test"],
               "ku": ["digital_signature", "key_encipherment"],
               "eku": [OID_SERVER_AUTH, OID_CLIENT_AUTH], "key_type": "rsa", "key_bits": 2048,
               "serial": v["serial_number"], "not_after": v["not_after"]}),
        &["-purpose", "sslserver", "-verify_hostname", "a.rsa.test"],
    );
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(row["key_type"], "rsa", "{row}");

    let v = issue_ok(
        &role_name(&role),
        &json!({"common_name": "b.rsa.test", "private_key_format": "pkcs8"}),
    );
    assert!(
        s(&v, "private_key").starts_with("-----BEGIN PRIVATE KEY-----"),
        "{v}"
    );
}

#[test]
fn an_ec384_role_issues_a_p384_leaf() {
    let d = daemon();
    let ca = d.create_root("ec384", json!({"key_type": "ec", "key_size": 384}));
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["p384.test"], "allow_subdomains": true, "key_bits": 384}),
    );
    let v = issue_ok(&role_name(&role), &json!({"common_name": "a.p384.test"}));
    let root_pem = d.ca_certificate_pem(&id_of(&ca));
    judge_leaf(
        s(&v, "certificate"),
        &root_pem,
        &[],
        &root_pem,
        Some(s(&v, "private_key")),
        json!({"cn": "a.p384.test", "dns": ["a.p384.test"], "ku": ["digital_signature"],
               "key_type": "ec", "key_bits": 384}),
        &[],
    );
}

#[test]
fn an_rsa_ca_issues_ec_leaves_that_verify() {
    let d = daemon();
    let ca = d.create_root("rsa-ca", json!({"key_type": "rsa"}));
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["rsaca.test"], "allow_subdomains": true}),
    );
    let v = issue_ok(&role_name(&role), &json!({"common_name": "a.rsaca.test"}));
    let root_pem = d.ca_certificate_pem(&id_of(&ca));
    judge_leaf(
        s(&v, "certificate"),
        &root_pem,
        &[],
        &root_pem,
        Some(s(&v, "private_key")),
        json!({"cn": "a.rsaca.test", "dns": ["a.rsaca.test"], "ku": ["digital_signature"],
               "key_type": "ec", "key_bits": 256}),
        &[],
    );
}

#[test]
fn concurrent_issuance_gives_unique_serials_and_counts_every_certificate() {
    let d = daemon();
    let ca = ec_root("concurrent");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["conc.test"], "allow_subdomains": true}),
    );
    let name = role_name(&role);
    let results: Vec<Value> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let name = name.clone();
                sc.spawn(move || {
                    (0..8)
                        .map(|i| {
                            issue_ok(
                                &name,
                                &json!({"common_name": format!("c{t}-{i}.conc.test")}),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let serials: HashSet<&str> = results.iter().map(|v| s(v, "serial_number")).collect();
    let idset: HashSet<&str> = results.iter().map(|v| s(v, "id")).collect();
    assert_eq!(serials.len(), 32, "serials repeat");
    assert_eq!(idset.len(), 32, "ids repeat");
    let rows = list_all(&format!("ca_id={}", id_of(&ca)));
    assert_eq!(rows.len(), 32, "listed {} of 32", rows.len());
    let (_, ca_now) = d.get(&format!("/v1/pki/ca/{}", id_of(&ca)));
    assert_eq!(ca_now["certificates_issued"], 32, "{ca_now}");
}

// ---------------------------------------------------------------- sign

fn sign_role(prefix: &str, extra: Value) -> (Value, Value, String, String) {
    let d = daemon();
    let (root, int) = ec_chain(prefix);
    let mut body = json!({"allowed_domains": ["sign.test"], "allow_subdomains": true});
    merge(&mut body, extra);
    let role = create_role(&id_of(&int), body);
    let root_pem = d.ca_certificate_pem(&id_of(&root));
    let int_pem = d.ca_certificate_pem(&id_of(&int));
    (int, role, root_pem, int_pem)
}

#[test]
fn signing_an_openssl_p256_csr_returns_a_certificate_for_the_csr_key_without_a_private_key() {
    if !require_tool("openssl") {
        return;
    }
    let (int, role, root_pem, int_pem) = sign_role("sign-ok", json!({}));
    let (csr, key) = openssl_csr(
        P256,
        "/CN=api.sign.test",
        Some("DNS:api.sign.test,DNS:www.sign.test,IP:10.9.8.7"),
    );
    let t0 = now();
    let (st, v) = sign(&role_name(&role), &json!({"csr_pem": csr, "ttl": "168h"}));
    assert_eq!(st, 201, "sign -> {st} {v}");
    assert_issue_response(&v, false);
    assert_between(
        "not_after",
        parse_time(&v, "not_after"),
        t0 + time::Duration::hours(168),
        now() + time::Duration::hours(168),
        60,
    );
    let leaf = s(&v, "certificate");
    assert_eq!(
        openssl_pubkey("x509", leaf),
        openssl_pubkey("req", &csr),
        "the certificate's key is not the CSR's"
    );
    let chain: Vec<String> = v["ca_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| norm(c.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(chain, vec![norm(&int_pem), norm(&root_pem)]);
    judge_leaf(
        leaf,
        &root_pem,
        &[&int_pem],
        &int_pem,
        Some(&key),
        json!({"cn": "api.sign.test", "dns": ["api.sign.test", "www.sign.test"],
               "ips": ["10.9.8.7"], "ku": ["digital_signature"],
               "eku": [OID_SERVER_AUTH, OID_CLIENT_AUTH], "key_type": "ec", "key_bits": 256,
               "serial": v["serial_number"], "not_after": v["not_after"],
               "csr": write_pem("signed-csr", &csr).to_string_lossy()}),
        &["-purpose", "sslserver", "-verify_hostname", "www.sign.test"],
    );
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(row["source"], "signed", "{row}");
    assert_eq!(row["has_private_key"], false, "{row}");
    assert_eq!(row["issuer_ca_id"], int["id"], "{row}");
    assert_eq!(row["role"], role["name"], "{row}");
    let (st, k) = fetch_private_key(&id_of(&v));
    assert_error(
        "private key of a signed CSR",
        (st, &k),
        404,
        "private_key_not_stored",
    );
}

#[test]
fn a_tampered_csr_is_400_invalid_csr() {
    if !require_tool("openssl") {
        return;
    }
    let (int, role, _, _) = sign_role("sign-tamper", json!({}));
    let (csr, _) = openssl_csr(P256, "/CN=tamper.sign.test", Some("DNS:tamper.sign.test"));
    let der = pem_to_der(&csr);

    // A flipped bit in the signature value (the last byte of the DER).
    let mut sig = der.clone();
    *sig.last_mut().unwrap() ^= 0x01;
    // A changed letter of the subject's CN.
    let mut subj = der.clone();
    let at = subj
        .windows(b"tamper.sign.test".len())
        .position(|w| w == b"tamper.sign.test")
        .expect("CN in the CSR DER");
    subj[at] = b'd'; // "damper.sign.test": still allowed by the role
                     // A changed byte of the public key point.
    let mut key = der.clone();
    let pk = key
        .windows(3)
        .position(|w| w == [0x03, 0x42, 0x00])
        .expect("EC public key BIT STRING");
    key[pk + 10] ^= 0x01;

    for (what, bad) in [("signature", sig), ("subject", subj), ("public key", key)] {
        let pem = der_to_pem("CERTIFICATE REQUEST", &bad);
        let (st, v) = sign(&role_name(&role), &json!({"csr_pem": pem}));
        assert_error(
            &format!("CSR with a tampered {what}"),
            (st, &v),
            400,
            "invalid_csr",
        );
    }
    assert!(list_all(&format!("ca_id={}", id_of(&int))).is_empty());
    // The untouched CSR is fine.
    let (st, v) = sign(&role_name(&role), &json!({"csr_pem": csr}));
    assert_eq!(st, 201, "{v}");
}

#[test]
fn a_garbage_csr_is_400_invalid_csr() {
    let (_, role, _, int_pem) = sign_role("sign-garbage", json!({}));
    let truncated = if require_tool("openssl") {
        openssl_csr(P256, "/CN=t.sign.test", None).0
    } else {
        String::new()
    };
    let mut bodies = vec![
        "not a csr".to_string(),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            .to_string(),
        "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"
            .to_string(),
        String::new(),
        // A certificate is not a CSR.
        int_pem.replace("CERTIFICATE", "CERTIFICATE REQUEST"),
    ];
    if !truncated.is_empty() {
        let der = pem_to_der(&truncated);
        bodies.push(der_to_pem("CERTIFICATE REQUEST", &der[..der.len() - 10]));
    }
    for pem in bodies {
        let (st, v) = sign(&role_name(&role), &json!({"csr_pem": pem}));
        assert_error(&format!("csr_pem {pem:?}"), (st, &v), 400, "invalid_csr");
    }
    let (st, v) = sign(&role_name(&role), &json!({}));
    assert_error("sign without csr_pem", (st, &v), 400, "invalid_request");
}

#[test]
fn a_csr_with_a_key_the_role_does_not_allow_is_422_key_type_not_allowed() {
    if !require_tool("openssl") {
        return;
    }
    let (int, role, _, _) = sign_role("sign-kt", json!({}));
    for (what, newkey) in [("RSA 2048", RSA2048), ("EC P-384", P384)] {
        let (csr, _) = openssl_csr(newkey, "/CN=k.sign.test", Some("DNS:k.sign.test"));
        let (st, v) = sign(&role_name(&role), &json!({"csr_pem": csr}));
        assert_error(
            &format!("{what} CSR on an ec/256 role"),
            (st, &v),
            422,
            "key_type_not_allowed",
        );
    }
    let rsa3072 = create_role(
        &id_of(&int),
        json!({"allowed_domains": ["sign.test"], "allow_subdomains": true,
               "key_type": "rsa", "key_bits": 3072}),
    );
    let (csr, _) = openssl_csr(RSA2048, "/CN=k.sign.test", None);
    let (st, v) = sign(&role_name(&rsa3072), &json!({"csr_pem": csr}));
    assert_error(
        "RSA 2048 CSR on an rsa/3072 role",
        (st, &v),
        422,
        "key_type_not_allowed",
    );
    let (csr, _) = openssl_csr(P256, "/CN=k.sign.test", None);
    let (st, v) = sign(&role_name(&rsa3072), &json!({"csr_pem": csr}));
    assert_error(
        "EC CSR on an rsa role",
        (st, &v),
        422,
        "key_type_not_allowed",
    );
    assert!(list_all(&format!("ca_id={}", id_of(&int))).is_empty());
}

#[test]
fn a_csr_with_a_disallowed_name_is_422() {
    if !require_tool("openssl") {
        return;
    }
    let (int, role, _, _) = sign_role("sign-names", json!({"allow_ip_sans": false}));
    let (csr, _) = openssl_csr(
        P256,
        "/CN=ok.sign.test",
        Some("DNS:ok.sign.test,DNS:evil.example.com"),
    );
    let (st, v) = sign(&role_name(&role), &json!({"csr_pem": csr}));
    assert_error(
        "CSR with a disallowed SAN",
        (st, &v),
        422,
        "name_not_allowed",
    );
    let (csr, _) = openssl_csr(P256, "/CN=evil.example.com", None);
    let (st, v) = sign(&role_name(&role), &json!({"csr_pem": csr}));
    assert_error(
        "CSR with a disallowed CN",
        (st, &v),
        422,
        "name_not_allowed",
    );
    let (csr, _) = openssl_csr(P256, "/CN=ok.sign.test", Some("IP:10.0.0.1"));
    let (st, v) = sign(&role_name(&role), &json!({"csr_pem": csr}));
    assert_error("CSR with an IP SAN", (st, &v), 422, "ip_sans_not_allowed");
    let (csr, _) = openssl_csr(P256, "/O=No CN", Some("DNS:ok.sign.test"));
    let (st, v) = sign(&role_name(&role), &json!({"csr_pem": csr}));
    assert_eq!(st, 400, "CSR without a CN on a require_cn role -> {st} {v}");
    let (csr, _) = openssl_csr(P256, "/CN=ok.sign.test", None);
    let (st, v) = sign(&role_name(&role), &json!({"csr_pem": csr, "ttl": "721h"}));
    assert_error(
        "sign with ttl above max_ttl",
        (st, &v),
        422,
        "ttl_exceeds_max",
    );
    assert!(list_all(&format!("ca_id={}", id_of(&int))).is_empty());
}

#[test]
fn an_rsa_pss_signed_csr_is_signed_on_rsa_and_any_roles() {
    if !require_tool("openssl") {
        return;
    }
    let (int, _, root_pem, int_pem) = sign_role("sign-pss", json!({}));
    let rsa = create_role(
        &id_of(&int),
        json!({"allowed_domains": ["sign.test"], "allow_subdomains": true, "key_type": "rsa"}),
    );
    let any = create_role(
        &id_of(&int),
        json!({"allowed_domains": ["sign.test"], "allow_subdomains": true,
               "key_type": "any", "key_bits": 0}),
    );
    for role in [&rsa, &any] {
        let (csr, key) = openssl_csr(RSA2048_PSS, "/CN=pss.sign.test", Some("DNS:pss.sign.test"));
        let (st, v) = sign(&role_name(role), &json!({"csr_pem": csr}));
        assert_eq!(
            st, 201,
            "RSA-PSS CSR on a key_type {} role -> {st} {v}",
            role["key_type"]
        );
        assert_eq!(
            openssl_pubkey("x509", s(&v, "certificate")),
            openssl_pubkey("req", &csr)
        );
        let mut py = json!({"cn": "pss.sign.test", "dns": ["pss.sign.test"],
                            "key_type": "rsa", "key_bits": 2048});
        if role["key_type"] == "rsa" {
            merge(
                &mut py,
                json!({"ku": ["digital_signature", "key_encipherment"]}),
            );
        }
        judge_leaf(
            s(&v, "certificate"),
            &root_pem,
            &[&int_pem],
            &int_pem,
            Some(&key),
            py,
            &[],
        );
    }
    // An EC CSR on the any role, too.
    let (csr, _) = openssl_csr(P384, "/CN=any.sign.test", None);
    let (st, v) = sign(&role_name(&any), &json!({"csr_pem": csr}));
    assert_eq!(st, 201, "P-384 CSR on a key_type any role -> {st} {v}");
}

#[test]
fn with_use_csr_names_off_the_request_names_replace_the_csr_names() {
    if !require_tool("openssl") {
        return;
    }
    let (_, role, _, int_pem) = sign_role(
        "sign-override",
        json!({"use_csr_common_name": false, "use_csr_sans": false}),
    );
    let (csr, _) = openssl_csr(P256, "/CN=csr.sign.test", Some("DNS:csr-alt.sign.test"));
    let (st, v) = sign(
        &role_name(&role),
        &json!({"csr_pem": csr, "common_name": "req.sign.test", "alt_names": ["req-alt.sign.test"]}),
    );
    assert_eq!(st, 201, "{v}");
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(row["common_name"], "req.sign.test", "{row}");
    let dns: BTreeSet<&str> = row["san_dns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        dns,
        BTreeSet::from(["req.sign.test", "req-alt.sign.test"]),
        "{row}"
    );
    if require_python_cryptography() {
        python_leaf_check(
            s(&v, "certificate"),
            &int_pem,
            None,
            json!({"cn": "req.sign.test", "dns": ["req.sign.test", "req-alt.sign.test"],
                   "ku": ["digital_signature"], "key_type": "ec"}),
        );
    }
    // The request names are checked against the role.
    let (csr, _) = openssl_csr(P256, "/CN=csr.sign.test", None);
    let (st, v) = sign(
        &role_name(&role),
        &json!({"csr_pem": csr, "common_name": "evil.example.com"}),
    );
    assert_error(
        "request CN outside the role",
        (st, &v),
        422,
        "name_not_allowed",
    );
}

// ---------------------------------------------------------------- inactive CA

#[test]
fn issuing_or_signing_under_an_inactive_ca_is_422_ca_inactive() {
    let d = daemon();
    let ca = ec_root("inactive-iss");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["inactive.test"], "allow_subdomains": true}),
    );
    let name = role_name(&role);
    let first = issue_ok(&name, &json!({"common_name": "a.inactive.test"}));
    let (st, v) = d.patch(
        &format!("/v1/pki/ca/{}", id_of(&ca)),
        &json!({"is_active": false}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = issue(&name, &json!({"common_name": "b.inactive.test"}));
    assert_error("issue under an inactive CA", (st, &v), 422, "ca_inactive");
    if require_tool("openssl") {
        let (csr, _) = openssl_csr(P256, "/CN=c.inactive.test", None);
        let (st, v) = sign(&name, &json!({"csr_pem": csr}));
        assert_error("sign under an inactive CA", (st, &v), 422, "ca_inactive");
    }
    let (st, v) = d.post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&first)),
        &json!({}),
    );
    assert_error("renew under an inactive CA", (st, &v), 422, "ca_inactive");
    assert_eq!(
        ids(&list_all(&format!("ca_id={}", id_of(&ca)))),
        vec![id_of(&first)]
    );
    let (st, v) = d.patch(
        &format!("/v1/pki/ca/{}", id_of(&ca)),
        &json!({"is_active": true}),
    );
    assert_eq!(st, 200, "{v}");
    issue_ok(&name, &json!({"common_name": "d.inactive.test"}));
}

// ---------------------------------------------------------------- listing

#[test]
fn paging_with_limit_7_visits_each_of_25_certificates_exactly_once_in_issuance_order() {
    let ca = ec_root("paging");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["page.test"], "allow_subdomains": true}),
    );
    let issued: Vec<String> = (0..25)
        .map(|i| {
            id_of(&issue_ok(
                &role_name(&role),
                &json!({"common_name": format!("c{i}.page.test")}),
            ))
        })
        .collect();
    let pages = list_pages(&format!("ca_id={}", id_of(&ca)), 7);
    assert!(pages.len() >= 4, "25 rows in {} pages of ≤7", pages.len());
    let seen: Vec<String> = pages.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(
        seen, issued,
        "paging should return every certificate once, oldest first"
    );
    // Every row names the CA.
    for row in pages.iter().flatten() {
        assert_eq!(row["issuer_ca_id"], ca["id"], "{row}");
    }
    // Same with limit 1.
    let one = list_pages(&format!("ca_id={}", id_of(&ca)), 1);
    let seen: Vec<String> = one.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(seen, issued, "paging with limit 1");
    // Without ca_id the tenant-wide listing holds them all, once each.
    let everything = list_pages("revoked=false", 500);
    let all: Vec<String> = everything.iter().flat_map(|p| ids(p)).collect();
    let uniq: HashSet<&String> = all.iter().collect();
    assert_eq!(uniq.len(), all.len(), "tenant-wide listing repeats an id");
    for id in &issued {
        assert!(
            uniq.contains(id),
            "{id} missing from the tenant-wide listing"
        );
    }
}

#[test]
fn list_rows_have_the_documented_fields() {
    let ca = ec_root("rowfields");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["row.test"], "allow_subdomains": true}),
    );
    let v = issue_ok(&role_name(&role), &json!({"common_name": "a.row.test"}));
    let (st, list) = daemon().get(&format!("/v1/pki/certificates?ca_id={}", id_of(&ca)));
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["has_more"], false, "{list}");
    assert!(list["cursor"].is_null(), "{list}");
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    let row = &rows[0];
    let want = json!({
        "id": v["id"], "common_name": "a.row.test", "issuer_ca_id": ca["id"],
        "serial_number": v["serial_number"], "valid_from": v["not_before"],
        "valid_until": v["not_after"], "is_revoked": false, "revoked_at": null,
        "revocation_reason": null, "role": role["name"], "source": "issued",
        "key_type": "ec", "has_private_key": false,
    });
    for (k, w) in want.as_object().unwrap() {
        assert!(row.get(k).is_some(), "row lacks {k}: {row}");
        assert_eq!(&row[k], w, "row field {k}: {row}");
    }
}

#[test]
fn list_filters_by_common_name_role_and_revoked() {
    let ca = ec_root("filters");
    let ca_id = id_of(&ca);
    let body = json!({"allowed_domains": ["filter.test"], "allow_subdomains": true});
    let ra = create_role(&ca_id, body.clone());
    let rb = create_role(&ca_id, body);
    let tag = unique_name("cn").to_lowercase();
    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..3 {
        a.push(id_of(&issue_ok(
            &role_name(&ra),
            &json!({"common_name": format!("a{i}.filter.test")}),
        )));
    }
    for i in 0..2 {
        b.push(id_of(&issue_ok(
            &role_name(&rb),
            &json!({"common_name": format!("b{i}.filter.test")}),
        )));
    }
    let special = id_of(&issue_ok(
        &role_name(&rb),
        &json!({"common_name": format!("{tag}.filter.test")}),
    ));
    b.push(special.clone());

    let got = ids(&list_all(&format!("ca_id={ca_id}&role={}", role_name(&ra))));
    assert_eq!(got, a, "role filter A");
    let got = ids(&list_all(&format!("ca_id={ca_id}&role={}", role_name(&rb))));
    assert_eq!(got, b, "role filter B");
    let got = ids(&list_all(&format!("role={}", role_name(&rb))));
    assert_eq!(got, b, "role filter B without ca_id");

    let cn = format!("{tag}.filter.test");
    let got = ids(&list_all(&format!("common_name={}", percent_encode(&cn))));
    assert_eq!(
        got,
        vec![special.clone()],
        "common_name filter without ca_id"
    );
    let got = ids(&list_all(&format!(
        "ca_id={ca_id}&common_name={}",
        percent_encode(&cn)
    )));
    assert_eq!(got, vec![special], "common_name filter with ca_id");
    let got = ids(&list_all(&format!(
        "ca_id={ca_id}&common_name=nobody.filter.test"
    )));
    assert!(got.is_empty(), "unknown common_name matched {got:?}");

    let all: Vec<String> = a.iter().chain(&b).cloned().collect();
    let got = ids(&list_all(&format!("ca_id={ca_id}&revoked=false")));
    assert_eq!(got, all, "revoked=false");
    let got = ids(&list_all(&format!("ca_id={ca_id}&revoked=true")));
    assert!(
        got.is_empty(),
        "revoked=true lists unrevoked certificates: {got:?}"
    );
    // An unknown ca_id: an empty listing or 404 ca_not_found, never someone else's rows.
    let (st, v) = daemon().get(&format!(
        "/v1/pki/certificates?ca_id={}",
        unique_name("ca_nope")
    ));
    if st == 200 {
        assert_eq!(v["data"], json!([]), "an unknown ca_id lists rows: {v}");
    } else {
        assert_error("unknown ca_id", (st, &v), 404, "ca_not_found");
    }
}

#[test]
fn expiring_within_lists_only_live_certificates_in_the_window_by_not_after() {
    let ca = ec_root("expiring");
    let ca_id = id_of(&ca);
    let role = create_role(
        &ca_id,
        json!({"allowed_domains": ["exp.test"], "allow_subdomains": true, "max_ttl": "2000h"}),
    );
    let name = role_name(&role);
    let gone = id_of(&issue_ok(
        &name,
        &json!({"common_name": "gone.exp.test", "ttl": "1s"}),
    ));
    let d10 = id_of(&issue_ok(
        &name,
        &json!({"common_name": "d10.exp.test", "ttl": "240h"}),
    ));
    let h24 = id_of(&issue_ok(
        &name,
        &json!({"common_name": "h24.exp.test", "ttl": "24h"}),
    ));
    let d40 = id_of(&issue_ok(
        &name,
        &json!({"common_name": "d40.exp.test", "ttl": "960h"}),
    ));
    std::thread::sleep(std::time::Duration::from_millis(2500));

    for (window, want) in [
        ("30d", vec![h24.clone(), d10.clone()]),
        ("720h", vec![h24.clone(), d10.clone()]),
        ("2d", vec![h24.clone()]),
        ("1h", vec![]),
        ("60d", vec![h24.clone(), d10.clone(), d40.clone()]),
    ] {
        let got = ids(&list_all(&format!(
            "ca_id={ca_id}&expiring_within={window}"
        )));
        assert_eq!(
            got, want,
            "expiring_within={window} (ids: gone {gone}, d10 {d10}, h24 {h24}, d40 {d40})"
        );
    }
    // Tenant-wide: ours are among them, in notAfter order.
    let rows = list_all("expiring_within=30d");
    let mut last: Option<OffsetDateTime> = None;
    for row in &rows {
        let t = parse_time(row, "valid_until");
        assert!(t > now(), "an expired certificate is listed: {row}");
        assert!(
            last.is_none_or(|l| l <= t),
            "not ordered by valid_until: {rows:?}"
        );
        last = Some(t);
    }
    let all = ids(&rows);
    assert!(
        all.contains(&h24) && all.contains(&d10) && !all.contains(&d40) && !all.contains(&gone)
    );
    // Paging works with the window too.
    let paged: Vec<String> = list_pages(&format!("ca_id={ca_id}&expiring_within=60d"), 1)
        .iter()
        .flat_map(|p| ids(p))
        .collect();
    assert_eq!(
        paged,
        vec![h24, d10, d40],
        "paging expiring_within with limit 1"
    );
    // The expired one is still listed without the window.
    assert!(ids(&list_all(&format!("ca_id={ca_id}"))).contains(&gone));

    let (st, v) = daemon().get(&format!(
        "/v1/pki/certificates?ca_id={ca_id}&expiring_within=soon"
    ));
    assert_error("expiring_within=soon", (st, &v), 400, "invalid_request");
}

#[test]
fn a_limit_above_1000_is_400_and_1000_is_fine() {
    let d = daemon();
    let (st, v) = d.get("/v1/pki/certificates?limit=1001");
    assert_eq!(st, 400, "limit=1001 -> {st} {v}");
    assert!(
        v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
        "limit=1001: no error code in {v}"
    );
    let (st, v) = d.get("/v1/pki/certificates?limit=1000");
    assert_eq!(st, 200, "limit=1000 -> {st} {v}");
    let (st, v) = d.get("/v1/pki/certificates?limit=abc");
    assert_eq!(st, 400, "limit=abc -> {st} {v}");
}

#[test]
fn get_one_certificate_returns_the_row_with_pem_chain_and_sans() {
    let d = daemon();
    let (root, int) = ec_chain("getone");
    let role = create_role(
        &id_of(&int),
        json!({"allowed_domains": ["one.test"], "allow_subdomains": true}),
    );
    let v = issue_ok(
        &role_name(&role),
        &json!({"common_name": "a.one.test", "alt_names": ["b.one.test"], "ip_sans": ["192.0.2.1"]}),
    );
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(norm(s(&row, "certificate")), norm(s(&v, "certificate")));
    let chain: Vec<String> = row["ca_chain"]
        .as_array()
        .unwrap_or_else(|| panic!("no ca_chain: {row}"))
        .iter()
        .map(|c| norm(c.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        chain,
        vec![
            norm(&d.ca_certificate_pem(&id_of(&int))),
            norm(&d.ca_certificate_pem(&id_of(&root)))
        ]
    );
    let dns: BTreeSet<&str> = row["san_dns"]
        .as_array()
        .unwrap_or_else(|| panic!("{row}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(dns, BTreeSet::from(["a.one.test", "b.one.test"]), "{row}");
    assert_eq!(row["san_ip"], json!(["192.0.2.1"]), "{row}");
    assert_eq!(row["san_uri"], json!([]), "{row}");
    assert!(row.get("private_key").is_none_or(Value::is_null), "{row}");
    // The GET row is the list row plus more.
    let listed = list_all(&format!("ca_id={}", id_of(&int)));
    assert_eq!(listed.len(), 1);
    for (k, w) in listed[0].as_object().unwrap() {
        assert_eq!(&row[k], w, "GET vs list field {k}");
    }
}

#[test]
fn an_unknown_certificate_is_404_certificate_not_found() {
    let d = daemon();
    let (st, v) = get_cert("cert_doesnotexist");
    assert_error(
        "GET unknown certificate",
        (st, &v),
        404,
        "certificate_not_found",
    );
    let (st, v) = fetch_private_key("cert_doesnotexist");
    assert_error(
        "private key of unknown certificate",
        (st, &v),
        404,
        "certificate_not_found",
    );
    let (st, v) = d.post("/v1/pki/certificates/cert_doesnotexist/renew", &json!({}));
    assert_error(
        "renew unknown certificate",
        (st, &v),
        404,
        "certificate_not_found",
    );
}

// ---------------------------------------------------------------- stored private keys

#[test]
fn a_stored_private_key_can_be_fetched_again_and_is_the_issued_key() {
    let ca = ec_root("stored");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["stored.test"], "allow_subdomains": true, "store_private_keys": true}),
    );
    assert_eq!(role["store_private_keys"], true);
    let v = issue_ok(&role_name(&role), &json!({"common_name": "a.stored.test"}));
    let row = get_cert_ok(&id_of(&v));
    assert_eq!(row["has_private_key"], true, "{row}");
    assert!(
        row.get("private_key").is_none_or(Value::is_null),
        "GET must not leak the key: {row}"
    );
    let (st, k) = fetch_private_key(&id_of(&v));
    assert_eq!(st, 200, "POST private-key (no body) -> {st} {k}");
    assert_eq!(
        norm(s(&k, "private_key")),
        norm(s(&v, "private_key")),
        "stored key differs"
    );
    assert_eq!(k["private_key_type"], "ec", "{k}");
    // Again, with an empty JSON body: the same answer.
    let (st, k2) = daemon().post(
        &format!("/v1/pki/certificates/{}/private-key", id_of(&v)),
        &json!({}),
    );
    assert_eq!(st, 200, "POST private-key {{}} -> {st} {k2}");
    assert_eq!(k2["private_key"], k["private_key"]);

    // RSA and pkcs8 too.
    let rsa = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["stored.test"], "allow_subdomains": true,
               "store_private_keys": true, "key_type": "rsa"}),
    );
    let v = issue_ok(
        &role_name(&rsa),
        &json!({"common_name": "b.stored.test", "private_key_format": "pkcs8"}),
    );
    let (st, k) = fetch_private_key(&id_of(&v));
    assert_eq!(st, 200, "{k}");
    assert_eq!(k["private_key_type"], "rsa", "{k}");
    if require_tool("openssl") {
        assert_eq!(
            openssl_key_der(s(&k, "private_key")),
            openssl_key_der(s(&v, "private_key")),
            "the stored RSA key is not the issued one"
        );
    }
}

#[test]
fn without_store_private_keys_the_key_is_404_private_key_not_stored() {
    let ca = ec_root("notstored");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["ns.test"], "allow_subdomains": true}),
    );
    let v = issue_ok(&role_name(&role), &json!({"common_name": "a.ns.test"}));
    assert_eq!(get_cert_ok(&id_of(&v))["has_private_key"], false);
    let (st, k) = fetch_private_key(&id_of(&v));
    assert_error(
        "private key not stored",
        (st, &k),
        404,
        "private_key_not_stored",
    );
}

/// The (tag, content) items inside the outermost DER SEQUENCE.
fn der_items(der: &[u8]) -> Vec<(u8, &[u8])> {
    fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *b.first()?;
        let l0 = *b.get(1)? as usize;
        if l0 < 0x80 {
            return Some((tag, 2, l0));
        }
        let n = l0 & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        Some((tag, 2 + n, len))
    }
    let mut out = Vec::new();
    let Some((0x30, h, len)) = header(der) else {
        return out;
    };
    let mut rest = &der[h..(h + len).min(der.len())];
    while let Some((tag, h, len)) = header(rest) {
        if h + len > rest.len() {
            break;
        }
        out.push((tag, &rest[h..h + len]));
        rest = &rest[h + len..];
    }
    out
}

/// The ways a private key could sit in a file in plaintext, leaving out any
/// that also occur in `public` (the certificate in its encodings: an RSA
/// private key PEM carries the modulus, which the certificate carries too).
fn plaintext_forms(key_pem: &str, public: &[u8]) -> Vec<(String, Vec<u8>)> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut forms: Vec<(String, Vec<u8>)> = Vec::new();
    for line in key_pem.lines().map(str::trim) {
        if line.len() >= 16 && !line.starts_with("-----") {
            forms.push((format!("PEM line {line}"), line.as_bytes().to_vec()));
        }
    }
    let mut ders = vec![("DER as returned", pem_to_der(key_pem))];
    if require_tool("openssl") {
        let p = write_pem("key-trad", key_pem);
        let trad = openssl_ok(&[
            "pkey",
            "-in",
            p.to_str().unwrap(),
            "-outform",
            "DER",
            "-traditional",
        ]);
        ders.push(("traditional DER", trad));
        ders.push(("PKCS#8 DER", openssl_key_der(key_pem)));
    }
    let mut secrets: Vec<(&str, Vec<u8>)> = Vec::new();
    for (what, der) in &ders {
        forms.push((format!("{what} base64"), b64(der).as_bytes()[..48].to_vec()));
        forms.push((format!("{what} hex"), hex::encode(der).into_bytes()));
        forms.push((what.to_string(), der.clone()));
        let items = der_items(der);
        // SEC1 ECPrivateKey: INTEGER 1, OCTET STRING scalar, ...
        if items.len() >= 2 && items[0] == (0x02, &[1u8][..]) && items[1].0 == 0x04 {
            secrets.push(("EC scalar", items[1].1.to_vec()));
        }
        // PKCS#1 RSAPrivateKey: version, n, e, d, p, q, ...
        if items.len() >= 9 && items.iter().take(9).all(|(t, _)| *t == 0x02) {
            secrets.push(("RSA d", items[3].1.to_vec()));
            secrets.push(("RSA p", items[4].1.to_vec()));
            secrets.push(("RSA q", items[5].1.to_vec()));
        }
    }
    assert!(
        !secrets.is_empty() || !require_tool("openssl"),
        "could not find the secret inside the key:\n{key_pem}"
    );
    for (what, sec) in secrets {
        let sec: Vec<u8> = sec.iter().copied().skip_while(|b| *b == 0).collect();
        forms.push((format!("{what} hex"), hex::encode(&sec).into_bytes()));
        forms.push((
            format!("{what} base64"),
            b64(&sec).as_bytes()[..24].to_vec(),
        ));
        forms.push((what.to_string(), sec));
    }
    forms.retain(|(_, needle)| !contains_bytes(public, needle));
    forms
}

/// The certificate in the encodings a store might use.
fn public_encodings(cert_pem: &str) -> Vec<u8> {
    let der = pem_to_der(cert_pem);
    [
        cert_pem.as_bytes().to_vec(),
        base64::engine::general_purpose::STANDARD
            .encode(&der)
            .into_bytes(),
        hex::encode(&der).into_bytes(),
        der,
    ]
    .join(&b"\n"[..])
}

#[test]
fn no_private_key_appears_in_plaintext_in_the_store_files_or_the_log() {
    let d = daemon();
    let ca = ec_root("plaintext");
    let stored = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["pt.test"], "allow_subdomains": true, "store_private_keys": true}),
    );
    let stored_rsa = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["pt.test"], "allow_subdomains": true,
               "store_private_keys": true, "key_type": "rsa"}),
    );
    let plain = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["pt.test"], "allow_subdomains": true}),
    );
    let mut issued = vec![
        issue_ok(&role_name(&stored), &json!({"common_name": "a.pt.test"})),
        issue_ok(
            &role_name(&stored),
            &json!({"common_name": "b.pt.test", "private_key_format": "pkcs8"}),
        ),
        issue_ok(
            &role_name(&stored_rsa),
            &json!({"common_name": "c.pt.test"}),
        ),
        issue_ok(&role_name(&plain), &json!({"common_name": "d.pt.test"})),
    ];
    let mut keys: Vec<(String, String, String)> = issued
        .iter()
        .map(|v| {
            (
                id_of(v),
                s(v, "private_key").to_string(),
                s(v, "certificate").to_string(),
            )
        })
        .collect();
    // An imported certificate's key, too.
    if require_tool("openssl") {
        let (ca_pem, ca_key) = external_ca("Plaintext Ext CA");
        let cn = format!("{}.import.test", unique_name("pt").to_lowercase());
        let (leaf, key) = external_leaf(&ca_pem, &ca_key, &cn);
        let (st, v) = d.post(
            "/v1/pki/certificates/import",
            &json!({"certificate_pem": leaf, "private_key_pem": key, "chain_pem": ca_pem}),
        );
        assert_eq!(st, 201, "import -> {st} {v}");
        keys.push((id_of(&v), key, leaf));
        issued.push(v);
    }

    let mut files = read_tree(&d.data_dir.join("store"));
    assert!(
        !files.is_empty(),
        "no files under {}/store",
        d.data_dir.display()
    );
    // Positive control: the records are on disk and findable this way.
    for v in &issued {
        let id = id_of(v);
        assert!(
            files.iter().any(|(_, b)| contains_bytes(b, id.as_bytes())),
            "certificate id {id} not found in the store files: the search itself is blind"
        );
    }
    // Nor in the daemon's log.
    files.push((
        d.log_path.clone(),
        std::fs::read(&d.log_path).unwrap_or_default(),
    ));
    for (id, key, cert) in &keys {
        let forms = plaintext_forms(key, &public_encodings(cert));
        assert!(
            !require_tool("openssl")
                || forms
                    .iter()
                    .any(|(f, _)| f.starts_with("EC scalar") || f.starts_with("RSA d")),
            "no secret-only form of the key of {id} to look for"
        );
        for (form, needle) in forms {
            for (path, bytes) in &files {
                assert!(
                    !contains_bytes(bytes, &needle),
                    "the private key of {id} is in {} in plaintext ({form})",
                    path.display()
                );
            }
        }
    }
}

// ---------------------------------------------------------------- renew

#[test]
fn renewing_issues_a_new_certificate_with_the_same_names_and_keeps_the_old_one() {
    let d = daemon();
    let (root, int) = ec_chain("renew");
    let role = create_role(
        &id_of(&int),
        json!({"allowed_domains": ["renew.test"], "allow_subdomains": true}),
    );
    let old = issue_ok(
        &role_name(&role),
        &json!({"common_name": "a.renew.test", "alt_names": ["b.renew.test"],
                "ip_sans": ["10.1.1.1"], "ttl": "24h"}),
    );
    let t0 = now();
    let (st, new) = d.post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&old)),
        &json!({"ttl": "48h"}),
    );
    assert_eq!(st, 201, "renew -> {st} {new}");
    assert_issue_response(&new, true);
    assert_ne!(new["id"], old["id"], "renew kept the id");
    assert_ne!(
        new["serial_number"], old["serial_number"],
        "renew kept the serial"
    );
    assert_ne!(new["private_key"], old["private_key"], "renew kept the key");
    assert_between(
        "renewed not_after",
        parse_time(&new, "not_after"),
        t0 + time::Duration::hours(48),
        now() + time::Duration::hours(48),
        60,
    );
    let old_row = get_cert_ok(&id_of(&old));
    let new_row = get_cert_ok(&id_of(&new));
    for f in ["common_name", "issuer_ca_id", "role", "source", "key_type"] {
        assert_eq!(
            new_row[f], old_row[f],
            "field {f}: old {old_row}\nnew {new_row}"
        );
    }
    let set = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(set(&new_row["san_dns"]), set(&old_row["san_dns"]));
    assert_eq!(set(&new_row["san_ip"]), set(&old_row["san_ip"]));
    let root_pem = d.ca_certificate_pem(&id_of(&root));
    let int_pem = d.ca_certificate_pem(&id_of(&int));
    judge_leaf(
        s(&new, "certificate"),
        &root_pem,
        &[&int_pem],
        &int_pem,
        Some(s(&new, "private_key")),
        json!({"cn": "a.renew.test", "dns": ["a.renew.test", "b.renew.test"], "ips": ["10.1.1.1"],
               "ku": ["digital_signature"], "eku": [OID_SERVER_AUTH, OID_CLIENT_AUTH],
               "key_type": "ec", "serial": new["serial_number"], "not_after": new["not_after"]}),
        &[],
    );
    // Both are listed; the old one is untouched.
    let listed = ids(&list_all(&format!("ca_id={}", id_of(&int))));
    assert_eq!(listed, vec![id_of(&old), id_of(&new)]);
    assert_eq!(old_row["is_revoked"], false);
    assert_eq!(old_row["valid_until"], old["not_after"]);
    // Renew without a body ttl: the role's default applies.
    let (st, v) = d.post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&new)),
        &json!({}),
    );
    assert_eq!(st, 201, "renew with {{}} -> {st} {v}");
    let (st, v) = d.post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&new)),
        &json!({"ttl": "721h"}),
    );
    assert_error("renew above max_ttl", (st, &v), 422, "ttl_exceeds_max");
}

#[test]
fn renewing_after_the_role_stopped_allowing_the_name_is_422() {
    let d = daemon();
    let ca = ec_root("renew-role");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["before.test"], "allow_subdomains": true}),
    );
    let name = role_name(&role);
    let old = issue_ok(&name, &json!({"common_name": "a.before.test"}));
    let r = d.request(
        reqwest::Method::PUT,
        &format!("/v1/pki/roles/{name}"),
        Auth::Root,
        &[],
        Some((
            "application/json",
            json!({"ca_id": ca["id"], "allowed_domains": ["after.test"], "allow_subdomains": true})
                .to_string()
                .into_bytes(),
        )),
    );
    assert_eq!(r.status, 200, "PUT role -> {} {}", r.status, r.text());
    let (st, v) = d.post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&old)),
        &json!({}),
    );
    assert_error(
        "renew of a name the role no longer allows",
        (st, &v),
        422,
        "name_not_allowed",
    );
    assert_eq!(
        ids(&list_all(&format!("ca_id={}", id_of(&ca)))),
        vec![id_of(&old)]
    );

    // A deleted role cannot renew either.
    let other = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["after.test"], "allow_subdomains": true}),
    );
    let c = issue_ok(&role_name(&other), &json!({"common_name": "x.after.test"}));
    let r = d.request(
        reqwest::Method::DELETE,
        &format!("/v1/pki/roles/{}", role_name(&other)),
        Auth::Root,
        &[],
        None,
    );
    assert_eq!(r.status, 204);
    let (st, v) = d.post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&c)),
        &json!({}),
    );
    assert!(
        st == 404 || st == 422,
        "renew after the role was deleted -> {st} {v}, want a refusal"
    );
}

#[test]
fn renewing_a_signed_certificate_issues_a_new_key() {
    if !require_tool("openssl") {
        return;
    }
    let (_, role, _, _) = sign_role("renew-signed", json!({}));
    let (csr, _) = openssl_csr(P256, "/CN=r.sign.test", Some("DNS:r.sign.test"));
    let (st, old) = sign(&role_name(&role), &json!({"csr_pem": csr}));
    assert_eq!(st, 201, "{old}");
    let (st, new) = daemon().post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&old)),
        &json!({}),
    );
    assert_eq!(st, 201, "renew of a signed cert -> {st} {new}");
    assert_issue_response(&new, true);
    assert_ne!(
        openssl_pubkey("x509", s(&new, "certificate")),
        openssl_pubkey("x509", s(&old, "certificate")),
        "a renewal must have a new key"
    );
    assert_eq!(
        openssl_pubkey("x509", s(&new, "certificate")),
        openssl_pubkey("key", s(&new, "private_key"))
    );
    assert_eq!(get_cert_ok(&id_of(&new))["common_name"], "r.sign.test");
}

// ---------------------------------------------------------------- import

fn import(body: &Value) -> (u16, Value) {
    daemon().post("/v1/pki/certificates/import", body)
}

#[test]
fn importing_an_openssl_leaf_with_its_key_and_chain_is_201_and_listed_as_imported() {
    if !require_tool("openssl") {
        return;
    }
    let (ca_pem, ca_key) = external_ca("Import Ext CA");
    let cn = format!("{}.import.test", unique_name("imp").to_lowercase());
    let (leaf, key) = external_leaf(&ca_pem, &ca_key, &cn);
    let (st, v) =
        import(&json!({"certificate_pem": leaf, "private_key_pem": key, "chain_pem": ca_pem}));
    assert_eq!(st, 201, "import -> {st} {v}");
    let id = id_of(&v);
    assert!(id.starts_with("cert_"), "{v}");
    assert_eq!(v["source"], "imported", "{v}");
    assert_eq!(v["common_name"], cn.as_str(), "{v}");
    assert!(v["issuer_ca_id"].is_null(), "{v}");
    assert!(v["role"].is_null(), "{v}");
    assert_eq!(v["key_type"], "ec", "{v}");
    assert_eq!(v["has_private_key"], true, "{v}");
    assert_eq!(v["serial_number"], openssl_serial(&leaf).as_str(), "{v}");
    assert_eq!(norm(s(&v, "certificate")), norm(&leaf));

    let rows = list_all(&format!("common_name={}", percent_encode(&cn)));
    assert_eq!(ids(&rows), vec![id.clone()], "listed by common_name");
    assert_eq!(rows[0]["source"], "imported");
    let row = get_cert_ok(&id);
    assert_eq!(row["san_dns"], json!([cn]), "{row}");
    let chain: Vec<String> = row["ca_chain"]
        .as_array()
        .unwrap_or_else(|| panic!("{row}"))
        .iter()
        .map(|c| norm(c.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(chain, vec![norm(&ca_pem)], "the imported chain: {row}");
    let (st, k) = fetch_private_key(&id);
    assert_eq!(
        st, 200,
        "private key of an imported certificate -> {st} {k}"
    );
    assert_eq!(openssl_key_der(s(&k, "private_key")), openssl_key_der(&key));

    // Without key and chain.
    let cn2 = format!("{}.import.test", unique_name("imp2").to_lowercase());
    let (leaf2, _) = external_leaf(&ca_pem, &ca_key, &cn2);
    let (st, v) = import(&json!({"certificate_pem": leaf2}));
    assert_eq!(st, 201, "import of a bare certificate -> {st} {v}");
    assert_eq!(v["has_private_key"], false, "{v}");
    let (st, k) = fetch_private_key(&id_of(&v));
    assert_error(
        "key of a keyless import",
        (st, &k),
        404,
        "private_key_not_stored",
    );
}

#[test]
fn importing_a_key_that_does_not_match_is_400_key_mismatch() {
    if !require_tool("openssl") {
        return;
    }
    let (ca_pem, ca_key) = external_ca("Mismatch Ext CA");
    let cn = format!("{}.import.test", unique_name("mm").to_lowercase());
    let (leaf, _) = external_leaf(&ca_pem, &ca_key, &cn);
    let (_, other_key) = external_leaf(&ca_pem, &ca_key, "other.import.test");
    let (st, v) = import(&json!({"certificate_pem": leaf, "private_key_pem": other_key}));
    assert_error("mismatching key", (st, &v), 400, "key_mismatch");
    let ca_key_pem = common::read_to_string(&ca_key);
    let (st, v) = import(&json!({"certificate_pem": leaf, "private_key_pem": ca_key_pem}));
    assert_error("the CA's key for the leaf", (st, &v), 400, "key_mismatch");
    assert!(list_all(&format!("common_name={}", percent_encode(&cn))).is_empty());
}

#[test]
fn importing_with_a_chain_that_is_not_the_issuer_is_400_invalid_chain() {
    if !require_tool("openssl") {
        return;
    }
    let (ca_pem, ca_key) = external_ca("Chain Ext CA");
    let (other_ca, _) = external_ca("Chain Ext CA");
    let cn = format!("{}.import.test", unique_name("chain").to_lowercase());
    let (leaf, key) = external_leaf(&ca_pem, &ca_key, &cn);
    // Same subject name, different key: only a signature check tells.
    let (st, v) =
        import(&json!({"certificate_pem": leaf, "private_key_pem": key, "chain_pem": other_ca}));
    assert_error("chain of a look-alike CA", (st, &v), 400, "invalid_chain");
    let (unrelated, _) = external_ca("Unrelated CA");
    let (st, v) = import(&json!({"certificate_pem": leaf, "chain_pem": unrelated}));
    assert_error("unrelated chain", (st, &v), 400, "invalid_chain");
    assert!(list_all(&format!("common_name={}", percent_encode(&cn))).is_empty());
}

#[test]
fn importing_garbage_is_400_invalid_certificate() {
    for pem in [
        "garbage",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        "",
    ] {
        let (st, v) = import(&json!({"certificate_pem": pem}));
        assert_error(
            &format!("certificate_pem {pem:?}"),
            (st, &v),
            400,
            "invalid_certificate",
        );
    }
    let (st, v) = import(&json!({}));
    assert_error(
        "import without certificate_pem",
        (st, &v),
        400,
        "invalid_request",
    );
    if require_tool("openssl") {
        let (csr, _) = openssl_csr(P256, "/CN=csr.import.test", None);
        let (st, v) = import(&json!({"certificate_pem": csr}));
        assert_error("a CSR as certificate", (st, &v), 400, "invalid_certificate");
        let (ca_pem, ca_key) = external_ca("Garbage Key CA");
        let (leaf, _) = external_leaf(&ca_pem, &ca_key, "g.import.test");
        let (st, v) = import(&json!({"certificate_pem": leaf, "private_key_pem": "not a key"}));
        assert_eq!(st, 400, "garbage private_key_pem -> {st} {v}");

        // Bytes hidden behind a real certificate inside its PEM block: a lenient reader
        // takes the certificate and drops them; we refuse, for the leaf and the chain.
        let padded = |pem: &str| {
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let mut der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            der.extend_from_slice(b"smuggled");
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
        };
        let (st, v) = import(&json!({"certificate_pem": padded(&leaf)}));
        assert_error(
            "bytes after the certificate",
            (st, &v),
            400,
            "invalid_certificate",
        );
        let (st, v) = import(&json!({"certificate_pem": leaf, "chain_pem": padded(&ca_pem)}));
        assert_error(
            "bytes after a chain certificate",
            (st, &v),
            400,
            "invalid_chain",
        );
    }
}

#[test]
fn importing_the_same_certificate_twice_is_409_certificate_exists() {
    if !require_tool("openssl") {
        return;
    }
    let (ca_pem, ca_key) = external_ca("Dup Ext CA");
    let cn = format!("{}.import.test", unique_name("dup").to_lowercase());
    let (leaf, _) = external_leaf(&ca_pem, &ca_key, &cn);
    let (st, v) = import(&json!({"certificate_pem": leaf}));
    assert_eq!(st, 201, "{v}");
    let (st, v) = import(&json!({"certificate_pem": leaf}));
    assert_error("second import", (st, &v), 409, "certificate_exists");
    let (st, v) = import(&json!({"certificate_pem": leaf.replace('\n', "\r\n")}));
    assert_error(
        "second import with CRLF",
        (st, &v),
        409,
        "certificate_exists",
    );
    assert_eq!(
        list_all(&format!("common_name={}", percent_encode(&cn))).len(),
        1
    );
}

#[test]
fn renewing_an_imported_certificate_is_422_not_renewable() {
    if !require_tool("openssl") {
        return;
    }
    let (ca_pem, ca_key) = external_ca("Renew Ext CA");
    let cn = format!("{}.import.test", unique_name("nr").to_lowercase());
    let (leaf, key) = external_leaf(&ca_pem, &ca_key, &cn);
    let (st, v) = import(&json!({"certificate_pem": leaf, "private_key_pem": key}));
    assert_eq!(st, 201, "{v}");
    let (st, r) = daemon().post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&v)),
        &json!({}),
    );
    assert_error("renew imported", (st, &r), 422, "not_renewable");
}

// ---------------------------------------------------------------- public_base_url

#[test]
fn leaves_carry_crl_and_aia_urls_when_public_base_url_is_set() {
    let setup = new_daemon_setup("public_base_url = \"https://pki.example.internal\"")
        .unwrap_or_else(|e| panic!("{e}"));
    let own: Daemon = start_daemon_on(&setup).unwrap_or_else(|e| panic!("{e}"));
    let root = own.create_root("pbu-root", json!({"key_type": "ec"}));
    let int = own.create_intermediate("pbu-int", &id_of(&root), json!({"key_type": "ec"}));
    let body = role_body(
        &id_of(&int),
        json!({"allowed_domains": ["pbu.test"], "allow_subdomains": true}),
    );
    let (st, role) = own.post("/v1/pki/roles", &body);
    assert_eq!(st, 201, "{role}");
    let (st, v) = own.post(
        &format!("/v1/pki/issue/{}", role_name(&role)),
        &json!({"common_name": "a.pbu.test"}),
    );
    assert_eq!(st, 201, "{v}");
    let root_pem = own.ca_certificate_pem(&id_of(&root));
    let int_pem = own.ca_certificate_pem(&id_of(&int));
    let base = "https://pki.example.internal";
    judge_leaf(
        s(&v, "certificate"),
        &root_pem,
        &[&int_pem],
        &int_pem,
        Some(s(&v, "private_key")),
        json!({"cn": "a.pbu.test", "dns": ["a.pbu.test"], "ku": ["digital_signature"],
               "eku": [OID_SERVER_AUTH, OID_CLIENT_AUTH], "key_type": "ec",
               "crl_dp": format!("{base}/v1/pki/ca/{}/crl", id_of(&int)),
               "aia_ca_issuers": format!("{base}/v1/pki/ca/{}/certificate?format=der", id_of(&int))}),
        &[],
    );
}

// ------------------------------------------- acceptance findings (import, revoke, renew, names)

/// An openssl certificate for `cn` under an openssl CA, with extra `req` arguments (a
/// chosen serial, CA extensions): (certificate PEM, key PEM).
fn external_cert(ca_pem: &str, ca_key: &Path, cn: &str, extra: &[&str]) -> (String, String) {
    let d = daemon();
    let ca = write_pem("ext-ca", ca_pem);
    let key = d.scratch_path("ext-cert.key");
    let cert = d.scratch_path("ext-cert.pem");
    let subj = format!("/CN={cn}");
    let san = format!("subjectAltName=DNS:{cn}");
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-subj",
        &subj,
        "-CA",
        ca.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-days",
        "10",
        "-addext",
        &san,
    ];
    args.extend_from_slice(extra);
    openssl_ok(&args);
    (common::read_to_string(&cert), common::read_to_string(&key))
}

fn revoke_serial(serial: &str) -> (u16, Value) {
    daemon().post(
        "/v1/pki/revoke",
        &json!({"serial_number": serial, "reason": "key_compromise"}),
    )
}

/// Importing a certificate this daemon issued would give its serial a second row; an
/// outside certificate made with the same serial must not make ours unrevocable.
#[test]
fn a_certificate_issued_here_cannot_be_imported_and_a_borrowed_serial_does_not_block_its_revocation(
) {
    if !require_tool("openssl") {
        return;
    }
    let (_, int) = ec_chain("imp-own");
    let role = create_role(
        &id_of(&int),
        json!({"allowed_domains": ["own.test"], "allow_subdomains": true}),
    );
    let issued = issue_ok(&role_name(&role), &json!({"common_name": "a.own.test"}));
    let chain = issued["ca_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("");
    let (st, v) = import(&json!({
        "certificate_pem": issued["certificate"], "private_key_pem": issued["private_key"], "chain_pem": chain,
    }));
    assert_error(
        "import of a certificate issued here",
        (st, &v),
        409,
        "certificate_exists",
    );
    let int_pem = daemon()
        .get(&format!("/v1/pki/ca/{}/certificate", id_of(&int)))
        .1;
    let (st, v) = import(&json!({"certificate_pem": int_pem["certificate_pem"]}));
    assert_error(
        "import of our own intermediate",
        (st, &v),
        409,
        "certificate_exists",
    );

    // An outside certificate that borrows the serial is tracked, but revocation by that
    // serial still reaches the certificate issued here.
    let serial = s(&issued, "serial_number").to_string();
    let (ca_pem, ca_key) = external_ca("Borrowed Serial CA");
    let set_serial = format!("0x{}", serial.replace(':', ""));
    let (twin, _) = external_cert(
        &ca_pem,
        &ca_key,
        "twin.own.test",
        &["-set_serial", &set_serial],
    );
    assert_eq!(openssl_serial(&twin), serial);
    let (st, v) = import(&json!({"certificate_pem": twin}));
    assert_eq!(
        st, 201,
        "import of an outside certificate with a borrowed serial -> {st} {v}"
    );
    let (st, v) = revoke_serial(&serial);
    assert_eq!(st, 200, "revoke -> {st} {v}");
    let row = get_cert_ok(&id_of(&issued));
    assert_eq!(
        row["is_revoked"], true,
        "the certificate issued here is revoked: {row}"
    );
}

#[test]
fn a_chain_certificate_that_is_not_a_ca_is_400_invalid_chain() {
    if !require_tool("openssl") {
        return;
    }
    let (ca_pem, ca_key) = external_ca("Not A CA Root");
    let (leaf_pem, leaf_key_pem) = external_cert(
        &ca_pem,
        &ca_key,
        "leaf.notca.test",
        &["-addext", "basicConstraints=critical,CA:FALSE"],
    );
    let leaf_key = write_pem("notca-leaf-key", &leaf_key_pem);
    let (child, _) = external_cert(&leaf_pem, &leaf_key, "child.notca.test", &[]);
    let (st, v) =
        import(&json!({"certificate_pem": child, "chain_pem": format!("{leaf_pem}{ca_pem}")}));
    assert_error("a leaf as issuer", (st, &v), 400, "invalid_chain");
    // The same kind of chain through a real CA certificate is fine.
    let (sub_pem, sub_key_pem) = external_cert(
        &ca_pem,
        &ca_key,
        "sub.notca.test",
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let sub_key = write_pem("notca-sub-key", &sub_key_pem);
    let (child, _) = external_cert(&sub_pem, &sub_key, "child2.notca.test", &[]);
    let (st, v) =
        import(&json!({"certificate_pem": child, "chain_pem": format!("{sub_pem}{ca_pem}")}));
    assert_eq!(st, 201, "a CA as issuer -> {st} {v}");
}

/// The spec: "Issues a new cert with the same subject and SANs"; a revoked or held
/// certificate is not renewed.
#[test]
fn renewal_keeps_the_subject_and_refuses_revoked_certificates() {
    let d = daemon();
    let ca = ec_root("renew-subj");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["subj.test"], "allow_subdomains": true, "organization": ["Org A"]}),
    );
    let name = role_name(&role);
    let old = issue_ok(&name, &json!({"common_name": "a.subj.test"}));
    let r = d.request(
        reqwest::Method::PUT,
        &format!("/v1/pki/roles/{name}"),
        Auth::Root,
        &[],
        Some((
            "application/json",
            json!({"ca_id": ca["id"], "allowed_domains": ["subj.test"], "allow_subdomains": true, "organization": ["Org B"]})
                .to_string()
                .into_bytes(),
        )),
    );
    assert_eq!(r.status, 200, "PUT role -> {} {}", r.status, r.text());
    let (st, new) = d.post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&old)),
        &json!({}),
    );
    assert_eq!(st, 201, "renew -> {st} {new}");
    let subject = |pem: &str| openssl_x509(pem, &["-noout", "-subject", "-nameopt", "RFC2253"]);
    assert_eq!(
        subject(s(&new, "certificate")),
        subject(s(&old, "certificate"))
    );
    assert!(subject(s(&new, "certificate")).contains("O=Org A"));

    let (st, v) = revoke_serial(s(&old, "serial_number"));
    assert_eq!(st, 200, "revoke -> {st} {v}");
    let (st, v) = d.post(
        &format!("/v1/pki/certificates/{}/renew", id_of(&old)),
        &json!({}),
    );
    assert_error(
        "renewal of a revoked certificate",
        (st, &v),
        422,
        "not_renewable",
    );
}

/// The null-prefix CN and its relatives, with enforce_hostnames off.
#[test]
fn control_characters_in_a_common_name_are_400_even_without_enforce_hostnames() {
    let ca = ec_root("cn-ctl");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["example.com"], "allow_subdomains": true, "enforce_hostnames": false}),
    );
    for cn in [
        "evil.com\u{0}.www.example.com",
        "bell\u{7}.example.com",
        "x\u{202E}moc.example.com",
    ] {
        let (st, v) = issue(
            &role_name(&role),
            &json!({"common_name": cn, "alt_names": ["ok.example.com"]}),
        );
        assert_error(&format!("CN {cn:?}"), (st, &v), 400, "invalid_request");
    }
}

#[test]
fn a_stored_key_can_be_fetched_as_pkcs8_and_the_body_is_checked() {
    let d = daemon();
    let ca = ec_root("pk-fmt");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["pk.test"], "allow_subdomains": true, "store_private_keys": true}),
    );
    let v = issue_ok(&role_name(&role), &json!({"common_name": "a.pk.test"}));
    let path = format!("/v1/pki/certificates/{}/private-key", id_of(&v));
    let (st, k) = d.post(&path, &json!({"private_key_format": "pkcs8"}));
    assert_eq!(st, 200, "{k}");
    assert!(
        s(&k, "private_key").starts_with("-----BEGIN PRIVATE KEY-----"),
        "{k}"
    );
    let (st, k) = d.post(&path, &json!({"bogus": 1}));
    assert_error("unknown field", (st, &k), 400, "invalid_request");
    let (st, k) = fetch_private_key(&id_of(&v));
    assert_eq!(st, 200, "{k}");
    assert!(
        s(&k, "private_key").starts_with("-----BEGIN EC PRIVATE KEY-----"),
        "{k}"
    );
}

/// RFC 3161 §2.3: a time-stamping certificate's extKeyUsage is critical and alone.
#[test]
fn time_stamping_is_alone_and_critical() {
    let ca = ec_root("tsa");
    let (st, v) = daemon().post(
        "/v1/pki/roles",
        &role_body(
            &id_of(&ca),
            json!({"allow_any_name": true, "ext_key_usage": ["EmailProtection", "TimeStamping"]}),
        ),
    );
    assert_error(
        "TimeStamping with another usage",
        (st, &v),
        400,
        "invalid_request",
    );
    let role = create_role(
        &id_of(&ca),
        json!({"allow_any_name": true, "ext_key_usage": ["TimeStamping"]}),
    );
    let v = issue_ok(&role_name(&role), &json!({"common_name": "tsa.internal"}));
    let text = openssl_x509(s(&v, "certificate"), &["-noout", "-text"]);
    assert!(
        text.contains("X509v3 Extended Key Usage: critical") && text.contains("Time Stamping"),
        "{text}"
    );
    if require_tool("lint_pkix_cert") {
        let (ok, out) = pkilint_cert(s(&v, "certificate"));
        assert!(ok, "pkilint findings for the time-stamping leaf:\n{out}");
    }
}

/// `GET` then `PUT` of the same body, as `vault read` then `vault write` users do.
#[test]
fn a_role_read_with_get_can_be_put_back_unchanged() {
    let d = daemon();
    let ca = ec_root("role-roundtrip");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["rt.test"], "allow_subdomains": true, "organization": ["Org"]}),
    );
    let name = role_name(&role);
    let (st, got) = d.get(&format!("/v1/pki/roles/{name}"));
    assert_eq!(st, 200, "{got}");
    let r = d.request(
        reqwest::Method::PUT,
        &format!("/v1/pki/roles/{name}"),
        Auth::Root,
        &[],
        Some(("application/json", got.to_string().into_bytes())),
    );
    assert_eq!(
        r.status,
        200,
        "PUT of the GET body -> {} {}",
        r.status,
        r.text()
    );
    let put = r.json();
    for (k, v) in got.as_object().unwrap() {
        if k != "updated_at" {
            assert_eq!(&put[k], v, "field {k} changed: {put}");
        }
    }
}

/// README "Keys": a key no role can allow is 422 key_type_not_allowed, on any role.
#[test]
fn a_csr_with_an_ed25519_key_is_422_key_type_not_allowed() {
    if !require_tool("openssl") {
        return;
    }
    let ca = ec_root("ed-csr");
    let role = create_role(
        &id_of(&ca),
        json!({"allowed_domains": ["ed.test"], "allow_subdomains": true, "key_type": "any"}),
    );
    let (csr, _) = openssl_csr(&["-newkey", "ed25519"], "/CN=a.ed.test", None);
    let (st, v) = sign(&role_name(&role), &json!({"csr_pem": csr}));
    assert_error("Ed25519 CSR", (st, &v), 422, "key_type_not_allowed");
}
