//! Tenants, scoped tokens and the audit log, against the real daemon on its own token.
//!
//! The matrix: every authenticated endpoint × (no token, wrong token, expired token,
//! revoked token, another tenant's token, a token without the capability, a token with
//! it) → the documented status, and nothing of another tenant in any list.

mod common;

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{
    assert_error, new_daemon_setup, openssl_ca, openssl_csr, start_daemon_on, unique_name, Auth,
    Daemon, DaemonSetup,
};
use reqwest::Method;
use serde_json::{json, Value};

const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

struct World {
    setup: &'static DaemonSetup,
    d: Daemon,
}

/// One daemon for this file, with the failure throttle out of the way (the throttle has a
/// test of its own) and heads signed every 5 entries.
fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let setup: &'static DaemonSetup = Box::leak(Box::new(
            new_daemon_setup(
                "[auth]\nmax_failures = 1000000\n[audit]\nsign_every = 5\nsign_interval = \"2s\"",
            )
            .expect("setup"),
        ));
        let d = start_daemon_on(setup).expect("daemon starts");
        World { setup, d }
    })
}

fn req(d: &Daemon, m: Method, path: &str, auth: Auth<'_>, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|v| ("application/json", serde_json::to_vec(v).unwrap()));
    let r = d.request(m, path, auth, &[], body);
    (r.status, r.json())
}

fn make_tenant(d: &Daemon, prefix: &str) -> String {
    let name = unique_name(prefix).to_ascii_lowercase().replace('_', "-");
    let (st, v) = d.post("/v1/sys/tenants", &json!({"name": name}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["name"], name.as_str());
    name
}

/// A token made by `by` (root when None) for `tenant` with `caps`.
fn make_token(
    d: &Daemon,
    by: Option<&str>,
    tenant: &str,
    caps: &[&str],
    ttl: Option<&str>,
) -> Value {
    let mut body = json!({"name": unique_name("tok"), "tenant": tenant, "capabilities": caps});
    if let Some(t) = ttl {
        body["ttl"] = json!(t);
    }
    let auth = by.map_or(Auth::Root, Auth::Bearer);
    let (st, v) = req(d, Method::POST, "/v1/auth/tokens", auth, Some(&body));
    assert_eq!(st, 201, "make token {body}: {v}");
    assert!(v["token"].as_str().is_some_and(|t| t.len() >= 43), "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("tok_"), "{v}");
    v
}

fn secret(v: &Value) -> String {
    v["token"].as_str().unwrap().to_string()
}

/// The objects of one tenant that the matrix acts on.
struct Fixture {
    tenant: String,
    admin: String,
    ca_id: String,
    role: String,
    cert_id: String,
    anchor_id: String,
    csr_id: String,
}

fn fixture(d: &Daemon, tenant: &str) -> Fixture {
    let admin = secret(&make_token(d, None, tenant, &["admin"], None));
    let a = Auth::Bearer(&admin);
    let (st, ca) = req(
        d,
        Method::POST,
        "/v1/pki/ca",
        a,
        Some(
            &json!({"name": "acme-root", "common_name": format!("{tenant} Root"), "ca_type": "root"}),
        ),
    );
    assert_eq!(st, 201, "{ca}");
    let ca_id = ca["id"].as_str().unwrap().to_string();
    let (st, role) = req(
        d,
        Method::POST,
        "/v1/pki/roles",
        a,
        Some(
            &json!({"name": "web", "ca_id": ca_id, "allow_any_name": true, "store_private_keys": true}),
        ),
    );
    assert_eq!(st, 201, "{role}");
    let (st, cert) = req(
        d,
        Method::POST,
        "/v1/pki/issue/web",
        a,
        Some(&json!({"common_name": "svc.example.com"})),
    );
    assert_eq!(st, 201, "{cert}");
    let (anchor_pem, _, _) = openssl_ca(&format!("{tenant} outside CA"));
    let (st, anchor) = req(
        d,
        Method::POST,
        "/v1/pki/trust-anchors",
        a,
        Some(&json!({"name": "outside", "certificate_pem": anchor_pem})),
    );
    assert_eq!(st, 201, "{anchor}");
    let (csr_pem, _) = openssl_csr(P256, "/CN=pending.example.com", None);
    let (st, csr) = req(
        d,
        Method::POST,
        "/v1/pki/csr/import",
        a,
        Some(&json!({"csr_pem": csr_pem})),
    );
    assert_eq!(st, 201, "{csr}");
    Fixture {
        tenant: tenant.to_string(),
        admin,
        ca_id,
        role: "web".into(),
        cert_id: cert["id"].as_str().unwrap().to_string(),
        anchor_id: anchor["id"].as_str().unwrap().to_string(),
        csr_id: csr["id"].as_str().unwrap().to_string(),
    }
}

/// One endpoint of the matrix.
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    /// The capability a token needs (None: any valid token).
    cap: Option<&'static str>,
    /// What a token of another tenant (holding the capability there) gets: 404 for an
    /// object of this tenant, 200 for a list (checked for leaks), None to skip (creates).
    other: Option<u16>,
}

fn case(
    m: Method,
    path: String,
    body: Option<Value>,
    cap: Option<&'static str>,
    other: Option<u16>,
) -> Case {
    Case {
        method: m,
        path,
        body,
        cap,
        other,
    }
}

/// Every authenticated endpoint, with bodies that would succeed.
fn cases(f: &Fixture, cert_serial: &str) -> Vec<Case> {
    use Method as M;
    let (csr_pem, _) = openssl_csr(P256, "/CN=matrix.example.com", None);
    let ca = &f.ca_id;
    vec![
        case(M::GET, "/v1/sys/tenants".into(), None, Some("sys"), None),
        case(M::GET, "/v1/sys/backup".into(), None, Some("sys"), None),
        case(
            M::POST,
            "/v1/sys/tenants".into(),
            Some(json!({"name": "t-matrix"})),
            Some("sys"),
            None,
        ),
        case(
            M::GET,
            "/v1/auth/tokens".into(),
            None,
            Some("admin"),
            Some(200),
        ),
        case(
            M::GET,
            "/v1/audit".into(),
            None,
            Some("audit:read"),
            Some(200),
        ),
        case(M::GET, "/v1/pki/ca".into(), None, Some("read"), Some(200)),
        case(
            M::POST,
            "/v1/pki/ca".into(),
            Some(json!({"name": "m-root", "common_name": "M Root", "ca_type": "root"})),
            Some("ca:write"),
            None,
        ),
        case(
            M::GET,
            format!("/v1/pki/ca/{ca}"),
            None,
            Some("read"),
            Some(404),
        ),
        case(
            M::PATCH,
            format!("/v1/pki/ca/{ca}"),
            Some(json!({"is_active": true})),
            Some("ca:write"),
            Some(404),
        ),
        case(
            M::POST,
            format!("/v1/pki/ca/{ca}/crl"),
            None,
            Some("revoke"),
            Some(404),
        ),
        case(M::GET, "/v1/pki/csr".into(), None, Some("read"), Some(200)),
        case(
            M::POST,
            "/v1/pki/csr/import".into(),
            Some(json!({"csr_pem": csr_pem})),
            Some("csr:request"),
            None,
        ),
        case(
            M::POST,
            "/v1/pki/csr".into(),
            Some(
                json!({"subject": {"common_name": "matrix-int.example.com"}, "san_dns": ["matrix-int.example.com"]}),
            ),
            Some("ca:write"),
            None,
        ),
        case(
            M::GET,
            format!("/v1/pki/csr/{}", f.csr_id),
            None,
            Some("read"),
            Some(404),
        ),
        case(
            M::GET,
            "/v1/pki/trust-anchors".into(),
            None,
            Some("read"),
            Some(200),
        ),
        case(
            M::GET,
            format!("/v1/pki/trust-anchors/{}", f.anchor_id),
            None,
            Some("read"),
            Some(404),
        ),
        case(
            M::GET,
            "/v1/pki/roles".into(),
            None,
            Some("read"),
            Some(200),
        ),
        case(
            M::GET,
            format!("/v1/pki/roles/{}", f.role),
            None,
            Some("read"),
            Some(404),
        ),
        case(
            M::PUT,
            format!("/v1/pki/roles/{}", f.role),
            Some(json!({"ca_id": ca, "allow_any_name": true, "store_private_keys": true})),
            Some("role:write"),
            Some(404),
        ),
        case(
            M::POST,
            "/v1/pki/roles".into(),
            Some(json!({"name": "m-role", "ca_id": ca, "allow_any_name": true})),
            Some("role:write"),
            None,
        ),
        case(
            M::POST,
            format!("/v1/pki/issue/{}", f.role),
            Some(json!({"common_name": "m.example.com"})),
            Some("issue:web"),
            Some(404),
        ),
        case(
            M::POST,
            format!("/v1/pki/sign/{}", f.role),
            Some(json!({"csr_pem": openssl_csr(P256, "/CN=s.example.com", None).0})),
            Some("sign:web"),
            Some(404),
        ),
        case(
            M::GET,
            "/v1/pki/certificates".into(),
            None,
            Some("read"),
            Some(200),
        ),
        case(
            M::GET,
            format!("/v1/pki/certificates/{}", f.cert_id),
            None,
            Some("read"),
            Some(404),
        ),
        case(
            M::POST,
            format!("/v1/pki/certificates/{}/private-key", f.cert_id),
            None,
            Some("keys:read"),
            Some(404),
        ),
        case(
            M::POST,
            format!("/v1/pki/certificates/{}/renew", f.cert_id),
            None,
            Some("issue:web"),
            Some(404),
        ),
        case(
            M::POST,
            "/v1/pki/certificates/validate".into(),
            Some(
                json!({"certificate_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}),
            ),
            Some("read"),
            None,
        ),
        // Last: these change the fixture's state.
        case(
            M::POST,
            "/v1/pki/revoke".into(),
            Some(json!({"serial_number": cert_serial, "reason": "certificate_hold"})),
            Some("revoke"),
            Some(404),
        ),
        case(
            M::POST,
            "/v1/pki/unrevoke".into(),
            Some(json!({"serial_number": cert_serial})),
            Some("revoke"),
            Some(404),
        ),
        case(
            M::DELETE,
            format!("/v1/pki/trust-anchors/{}", f.anchor_id),
            None,
            Some("trust:write"),
            Some(404),
        ),
        case(
            M::POST,
            format!("/v1/pki/csr/{}/reject", f.csr_id),
            None,
            Some("csr:approve"),
            Some(404),
        ),
        case(
            M::DELETE,
            format!("/v1/pki/roles/{}", f.role),
            None,
            Some("role:write"),
            Some(404),
        ),
    ]
}

/// A capability that is not `cap` and does not cover it.
fn unrelated(cap: &str) -> &'static str {
    if cap == "audit:read" {
        "read"
    } else {
        "audit:read"
    }
}

/// Every string value anywhere in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
fn every_endpoint_answers_each_kind_of_caller_as_documented() {
    let w = world();
    let d = &w.d;
    let acme = make_tenant(d, "acme");
    let other = make_tenant(d, "other");
    let f = fixture(d, &acme);
    let (st, cert) = req(
        d,
        Method::GET,
        &format!("/v1/pki/certificates/{}", f.cert_id),
        Auth::Bearer(&f.admin),
        None,
    );
    assert_eq!(st, 200, "{cert}");
    let serial = cert["serial_number"].as_str().unwrap().to_string();

    // Tokens that fail authentication, one of each kind.
    let expired = secret(&make_token(
        d,
        Some(&f.admin),
        &acme,
        &["admin"],
        Some("1s"),
    ));
    let revoked = make_token(d, Some(&f.admin), &acme, &["admin"], None);
    let (st, v) = req(
        d,
        Method::DELETE,
        &format!("/v1/auth/tokens/{}", revoked["id"].as_str().unwrap()),
        Auth::Bearer(&f.admin),
        None,
    );
    assert_eq!(st, 204, "{v}");
    let revoked = secret(&revoked);
    std::thread::sleep(Duration::from_millis(1500));
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    // Ids and names of the acme tenant must never show up in the other tenant's answers.
    let acme_ids = [&f.ca_id, &f.cert_id, &f.anchor_id, &f.csr_id];

    for c in cases(&f, &serial) {
        let what = format!("{} {}", c.method, c.path);
        let body = c.body.as_ref();
        for (kind, auth) in [
            ("no token", Auth::None),
            ("wrong token", Auth::Bearer(wrong)),
            ("expired token", Auth::Bearer(&expired)),
            ("revoked token", Auth::Bearer(&revoked)),
        ] {
            let (st, v) = req(d, c.method.clone(), &c.path, auth, body);
            assert_error(
                &format!("{what} with {kind}"),
                (st, &v),
                401,
                "unauthorized",
            );
        }
        if let Some(cap) = c.cap {
            // Sys-only endpoints: a tenant admin lacks sys.
            let lacking_caps: &[&str] = if cap == "sys" {
                &["admin"]
            } else {
                &[unrelated(cap)]
            };
            let lacking = secret(&make_token(d, None, &acme, lacking_caps, None));
            let (st, v) = req(d, c.method.clone(), &c.path, Auth::Bearer(&lacking), body);
            assert_error(
                &format!("{what} without {cap}"),
                (st, &v),
                403,
                "missing_capability",
            );
            assert!(
                v["error"]["message"].as_str().unwrap().contains(cap),
                "{what}: the 403 must name {cap}: {v}"
            );
        }
        if let (Some(expect), Some(cap)) = (c.other, c.cap) {
            let theirs = secret(&make_token(d, None, &other, &[cap], None));
            let (st, v) = req(d, c.method.clone(), &c.path, Auth::Bearer(&theirs), body);
            assert_eq!(st, expect, "{what} with another tenant's token: {v}");
            let mut seen = Vec::new();
            strings(&v, &mut seen);
            for id in acme_ids {
                assert!(!seen.contains(id), "{what}: another tenant sees {id}: {v}");
            }
            assert!(
                !seen.contains(&acme),
                "{what}: another tenant sees tenant {acme}: {v}"
            );
        }
        let holder = match c.cap {
            Some("sys") => d.root_token.clone(),
            Some(cap) => secret(&make_token(d, None, &acme, &[cap], None)),
            None => f.admin.clone(),
        };
        let (st, v) = req(d, c.method.clone(), &c.path, Auth::Bearer(&holder), body);
        let ok = if c.path.ends_with("/validate") {
            // Authorized; the made-up certificate itself is refused as input.
            st == 400 || st == 200
        } else {
            (200..300).contains(&st)
        };
        assert!(ok, "{what} with {:?}: {st} {v}", c.cap);
    }

    // The other tenant, now with objects of its own (made after the matrix, so that names
    // like the role "web" exist only in acme while it ran): its lists hold only its own.
    let g = fixture(d, &other);
    for path in [
        "/v1/pki/ca",
        "/v1/pki/certificates",
        "/v1/pki/roles",
        "/v1/pki/trust-anchors",
        "/v1/pki/csr",
        "/v1/auth/tokens",
    ] {
        let (st, v) = req(d, Method::GET, path, Auth::Bearer(&g.admin), None);
        assert_eq!(st, 200, "{path}: {v}");
        let mut seen = Vec::new();
        strings(&v, &mut seen);
        for id in acme_ids {
            assert!(!seen.contains(id), "{path}: tenant {other} sees {id}: {v}");
        }
        assert!(
            !seen.contains(&acme),
            "{path}: tenant {other} sees tenant {acme}"
        );
    }
}

#[test]
fn names_are_unique_per_tenant_and_two_tenants_may_share_one() {
    let w = world();
    let d = &w.d;
    let a = fixture(d, &make_tenant(d, "na"));
    let b = fixture(d, &make_tenant(d, "nb"));
    // Both made a CA named acme-root, a role named web, an anchor named outside.
    let (st, v) = req(d, Method::GET, "/v1/pki/ca", Auth::Bearer(&a.admin), None);
    assert_eq!(st, 200);
    assert!(v.to_string().contains("\"acme-root\""), "{v}");
    assert_ne!(a.ca_id, b.ca_id);
    // The same name again in one tenant is a conflict.
    let (st, v) = req(
        d,
        Method::POST,
        "/v1/pki/ca",
        Auth::Bearer(&a.admin),
        Some(&json!({"name": "acme-root", "common_name": "Again", "ca_type": "root"})),
    );
    assert_error("duplicate CA name", (st, &v), 409, "ca_name_exists");
    let (st, v) = req(
        d,
        Method::POST,
        "/v1/pki/roles",
        Auth::Bearer(&b.admin),
        Some(&json!({"name": "web", "ca_id": b.ca_id})),
    );
    assert_error("duplicate role name", (st, &v), 409, "role_exists");
    // And a tenant name twice.
    let (st, v) = d.post("/v1/sys/tenants", &json!({"name": a.tenant}));
    assert_error("duplicate tenant", (st, &v), 409, "tenant_exists");
    let (st, v) = d.post("/v1/sys/tenants", &json!({"name": "Bad Name"}));
    assert_error("bad tenant name", (st, &v), 400, "invalid_request");
}

#[test]
fn a_token_grants_only_what_it_holds_in_its_own_tenant() {
    let w = world();
    let d = &w.d;
    let t = make_tenant(d, "grant");
    let u = make_tenant(d, "grant2");
    let issuer = secret(&make_token(d, None, &t, &["issue:*", "read"], Some("1h")));
    let a = Auth::Bearer(&issuer);
    // A subset: allowed, and never outlives its maker.
    let (st, v) = req(
        d,
        Method::POST,
        "/v1/auth/tokens",
        a,
        Some(&json!({"name": "child", "capabilities": ["issue:web"], "ttl": "768h"})),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["tenant"], t.as_str());
    let (st, me) = req(d, Method::GET, "/v1/auth/tokens/self", a, None);
    assert_eq!(st, 200, "{me}");
    assert!(
        v["expires_at"].as_str().unwrap() <= me["expires_at"].as_str().unwrap(),
        "{v} {me}"
    );
    assert!(
        me.get("token").is_none(),
        "self must not show a secret: {me}"
    );
    // More than it holds: 403 naming the capability.
    for cap in ["revoke", "admin", "sign:web", "sys"] {
        let (st, v) = req(
            d,
            Method::POST,
            "/v1/auth/tokens",
            a,
            Some(&json!({"name": "x", "capabilities": [cap]})),
        );
        assert_error(&format!("grant {cap}"), (st, &v), 403, "missing_capability");
    }
    // Another tenant: only sys may.
    let (st, v) = req(
        d,
        Method::POST,
        "/v1/auth/tokens",
        a,
        Some(&json!({"name": "x", "tenant": u, "capabilities": ["read"]})),
    );
    assert_error(
        "grant in another tenant",
        (st, &v),
        403,
        "missing_capability",
    );
    // Nonsense capabilities and missing tenants are input errors.
    let (st, v) = d.post(
        "/v1/auth/tokens",
        &json!({"name": "x", "capabilities": ["fly"]}),
    );
    assert_error("unknown capability", (st, &v), 400, "invalid_request");
    let (st, v) = d.post("/v1/auth/tokens", &json!({"name": "x", "capabilities": []}));
    assert_error("no capability", (st, &v), 400, "invalid_request");
    let (st, v) = d.post(
        "/v1/auth/tokens",
        &json!({"name": "x", "tenant": "no-such-tenant", "capabilities": ["read"]}),
    );
    assert_error("missing tenant", (st, &v), 404, "tenant_not_found");
    let (st, v) = d.post(
        "/v1/auth/tokens",
        &json!({"name": "x", "capabilities": ["read"], "ttl": "soon"}),
    );
    assert_error("bad ttl", (st, &v), 400, "invalid_request");
    // Listing shows no secrets; revocation works at once.
    let admin = secret(&make_token(d, None, &t, &["admin"], None));
    let (st, list) = req(
        d,
        Method::GET,
        "/v1/auth/tokens",
        Auth::Bearer(&admin),
        None,
    );
    assert_eq!(st, 200);
    assert!(
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x.get("token").is_none() && x["tenant"] == t.as_str()),
        "{list}"
    );
    let (st, _) = req(
        d,
        Method::DELETE,
        &format!("/v1/auth/tokens/{}", me["id"].as_str().unwrap()),
        Auth::Bearer(&admin),
        None,
    );
    assert_eq!(st, 204);
    let (st, v) = req(d, Method::GET, "/v1/pki/ca", a, None);
    assert_error("revoked token", (st, &v), 401, "unauthorized");
    // The bootstrap token cannot be revoked through the API.
    let (st, root) = d.get("/v1/auth/tokens/self");
    assert_eq!(st, 200);
    let (st, v) = req(
        d,
        Method::DELETE,
        &format!("/v1/auth/tokens/{}", root["id"].as_str().unwrap()),
        Auth::Root,
        None,
    );
    assert_error("revoke bootstrap", (st, &v), 409, "invalid_state");
}

#[test]
fn a_token_revokes_only_tokens_it_could_have_made() {
    let w = world();
    let d = &w.d;
    let revoke = |id: &Value, by: &str| {
        req(
            d,
            Method::DELETE,
            &format!("/v1/auth/tokens/{}", id.as_str().unwrap()),
            Auth::Bearer(by),
            None,
        )
    };
    // `sys` can be granted only in the root's own tenant.
    let sys = make_token(d, None, "default", &["sys"], None);
    let admin = secret(&make_token(d, None, "default", &["admin"], None));
    // `admin` covers everything in its tenant but `sys`: it could not have made this one.
    let (st, v) = revoke(&sys["id"], &admin);
    assert_error("admin revokes sys", (st, &v), 403, "missing_capability");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("sys"),
        "the 403 must name sys: {v}"
    );
    let (st, v) = req(
        d,
        Method::GET,
        "/v1/auth/tokens/self",
        Auth::Bearer(&secret(&sys)),
        None,
    );
    assert_eq!(st, 200, "the sys token still works: {v}");
    // What it could have made, it may revoke.
    let peer = make_token(d, None, "default", &["admin", "audit:read"], None);
    let (st, v) = revoke(&peer["id"], &admin);
    assert_eq!(st, 204, "{v}");
    // `sys` grants anything but `sys` in any tenant, so it revokes another tenant's admin.
    let t = make_tenant(d, "rvk");
    let theirs = make_token(d, None, &t, &["admin"], None);
    let (st, v) = revoke(&theirs["id"], &secret(&sys));
    assert_eq!(st, 204, "{v}");
    // The bootstrap token stays out of reach, whoever asks.
    let (st, root) = d.get("/v1/auth/tokens/self");
    assert_eq!(st, 200);
    let (st, v) = revoke(&root["id"], &admin);
    assert_error("admin revokes bootstrap", (st, &v), 409, "invalid_state");
    let (st, v) = revoke(&root["id"], &secret(&sys));
    assert_error("sys revokes bootstrap", (st, &v), 409, "invalid_state");
    // Revoking itself is always allowed; the root may revoke the sys token.
    let (st, v) = revoke(&sys["id"], &d.root_token);
    assert_eq!(st, 204, "{v}");
}

#[test]
fn a_token_ttl_is_a_duration_string_or_a_number_of_seconds() {
    let w = world();
    let d = &w.d;
    let at = |v: &Value, k: &str| {
        time::OffsetDateTime::parse(
            v[k].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    for ttl in [json!(60), json!(60.0), json!("60"), json!("1m")] {
        let (st, v) = d.post(
            "/v1/auth/tokens",
            &json!({"name": "n", "capabilities": ["read"], "ttl": ttl}),
        );
        assert_eq!(st, 201, "ttl {ttl}: {v}");
        assert_eq!(
            at(&v, "expires_at") - at(&v, "created_at"),
            time::Duration::seconds(60),
            "ttl {ttl}: {v}"
        );
    }
    for bad in [json!(0), json!(-1), json!(1.5), json!("soon"), json!(true)] {
        let (st, v) = d.post(
            "/v1/auth/tokens",
            &json!({"name": "n", "capabilities": ["read"], "ttl": bad}),
        );
        assert_error(&format!("ttl {bad}"), (st, &v), 400, "invalid_request");
    }
    // The document says so too: the ttl schema admits a number.
    let (st, doc) = d.get_with("/v1/openapi.json", Auth::None);
    assert_eq!(st, 200);
    let mut ttl = doc["components"]["schemas"]["CreateTokenRequest"]["properties"]["ttl"].clone();
    let text = ttl.to_string();
    if let Some(r) = text
        .split("#/components/schemas/")
        .nth(1)
        .and_then(|t| t.split('"').next())
    {
        ttl = doc["components"]["schemas"][r].clone();
    }
    assert!(ttl.to_string().contains("\"integer\""), "{ttl}");
}

#[test]
fn token_names_refuse_control_and_invisible_characters() {
    let w = world();
    let d = &w.d;
    for bad in [
        "a\u{0}b",
        "line\nbreak",
        "tab\there",
        "\u{202e}gnp.exe",
        "zero\u{200b}width",
        "\u{feff}bom",
        "del\u{7f}",
    ] {
        let (st, v) = d.post(
            "/v1/auth/tokens",
            &json!({"name": bad, "capabilities": ["read"]}),
        );
        assert_error(&format!("name {bad:?}"), (st, &v), 400, "invalid_request");
    }
    // Letters of any script, spaces and punctuation are fine.
    let name = "Jürgen's laptop (CI) – 東京";
    let (st, v) = d.post(
        "/v1/auth/tokens",
        &json!({"name": name, "capabilities": ["read"]}),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["name"], name);
}

#[test]
fn four_eyes_lets_a_second_token_approve() {
    let setup = new_daemon_setup("[csr]\nfour_eyes = true").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon");
    let requester = secret(&make_token(
        &d,
        None,
        "default",
        &["csr:request", "csr:approve", "read"],
        None,
    ));
    let approver = secret(&make_token(&d, None, "default", &["csr:approve"], None));
    let (pem, _) = openssl_csr(P256, "/CN=two.example.com", None);
    let (st, csr) = req(
        &d,
        Method::POST,
        "/v1/pki/csr/import",
        Auth::Bearer(&requester),
        Some(&json!({"csr_pem": pem})),
    );
    assert_eq!(st, 201, "{csr}");
    let path = format!("/v1/pki/csr/{}/approve", csr["id"].as_str().unwrap());
    let (st, v) = req(&d, Method::POST, &path, Auth::Bearer(&requester), None);
    assert_error("self-approval", (st, &v), 403, "four_eyes");
    let (st, v) = req(&d, Method::POST, &path, Auth::Bearer(&approver), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "approved", "{v}");
}

#[test]
fn repeated_failed_authentication_is_throttled_per_address() {
    let setup =
        new_daemon_setup("[auth]\nmax_failures = 3\nfailure_window = \"1h\"").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon");
    for i in 0..3 {
        let (st, v) = d.get_with("/v1/pki/ca", Auth::Bearer("guess-guess-guess"));
        assert_error(&format!("failure {i}"), (st, &v), 401, "unauthorized");
    }
    let r = d.request(Method::GET, "/v1/pki/ca", Auth::Root, &[], None);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "too_many_auth_failures");
    assert!(r.header("retry-after").is_some());
    // Public endpoints stay reachable.
    let (st, _) = d.get_with("/v1/sys/health", Auth::None);
    assert_eq!(st, 200);
}

fn audit_all(d: &Daemon, auth: Auth<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut since = 0u64;
    loop {
        let (st, v) = req(
            d,
            Method::GET,
            &format!("/v1/audit?since={since}&limit=1000"),
            auth,
            None,
        );
        assert_eq!(st, 200, "{v}");
        let entries = v["entries"].as_array().unwrap().clone();
        out.extend(entries);
        match v["next"].as_u64() {
            Some(n) => since = n,
            None => return out,
        }
    }
}

#[test]
fn the_audit_log_records_changes_key_retrievals_and_refusals_without_secrets() {
    let w = world();
    let d = &w.d;
    let t = make_tenant(d, "audit");
    let f = fixture(d, &t);
    let (st, key) = req(
        d,
        Method::POST,
        &format!("/v1/pki/certificates/{}/private-key", f.cert_id),
        Auth::Bearer(&f.admin),
        None,
    );
    assert_eq!(st, 200, "{key}");
    let reader = make_token(d, Some(&f.admin), &t, &["read"], None);
    let rid = "matrix-request-42";
    let r = d.request(
        Method::POST,
        "/v1/pki/revoke",
        Auth::Bearer(reader["token"].as_str().unwrap()),
        &[("x-request-id", rid)],
        Some(("application/json", br#"{"serial_number":"01"}"#.to_vec())),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-request-id").as_deref(), Some(rid));

    let auditor = secret(&make_token(d, Some(&f.admin), &t, &["audit:read"], None));
    let entries = audit_all(d, Auth::Bearer(&auditor));
    assert!(
        entries.iter().all(|e| e["tenant"] == t.as_str()),
        "a tenant sees only its own entries"
    );
    let find = |action: &str| entries.iter().find(|e| e["action"] == action).cloned();
    for action in [
        "ca.create",
        "role.create",
        "cert.issue",
        "trust_anchor.create",
        "csr.import",
        "token.create",
        "cert.private_key.read",
    ] {
        let e = find(action).unwrap_or_else(|| panic!("no {action} entry in {entries:?}"));
        assert_eq!(e["outcome"], "success", "{e}");
        assert!(e["token_id"].as_str().unwrap().starts_with("tok_"), "{e}");
        assert!(e["request_id"].as_str().is_some(), "{e}");
        assert!(
            e["time"].as_str().is_some() && e["seq"].as_u64().is_some(),
            "{e}"
        );
    }
    assert_eq!(
        find("cert.private_key.read").unwrap()["object_id"],
        f.cert_id.as_str()
    );
    assert_eq!(find("ca.create").unwrap()["object_id"], f.ca_id.as_str());
    // Issuance writes its entry in the certificate's own flush: exactly one, naming it.
    let issued: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "cert.issue" && e["object_id"] == f.cert_id.as_str())
        .collect();
    assert_eq!(issued.len(), 1, "{entries:?}");
    let refused = entries
        .iter()
        .find(|e| e["request_id"] == rid)
        .expect("the refused revoke is recorded");
    assert_eq!(refused["action"], "cert.revoke");
    assert_eq!(refused["outcome"], "error:missing_capability");
    assert_eq!(refused["token_id"], reader["id"]);

    // Sys sees every tenant's entries, including unauthenticated refusals.
    let (st, _) = d.get_with("/v1/pki/ca", Auth::Bearer("nope"));
    assert_eq!(st, 401);
    let all = audit_all(d, Auth::Root);
    assert!(all
        .iter()
        .any(|e| e["tenant"].is_null() && e["outcome"] == "error:unauthorized"));
    assert!(all.iter().any(|e| e["tenant"] == t.as_str()));
    // Sequence numbers are dense and each entry links to a previous hash.
    for pair in all.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_u64().unwrap(),
            pair[0]["seq"].as_u64().unwrap() + 1
        );
    }
    // No secret anywhere: token secrets, the private key.
    let text = serde_json::to_string(&all).unwrap();
    for s in [
        f.admin.as_str(),
        reader["token"].as_str().unwrap(),
        &d.root_token,
        auditor.as_str(),
    ] {
        assert!(!text.contains(s), "a token secret is in the audit log");
    }
    assert!(
        !text.contains("PRIVATE KEY"),
        "a private key is in the audit log"
    );
    let (st, v) = req(d, Method::GET, "/v1/audit?limit=0", Auth::Root, None);
    assert_error("limit 0", (st, &v), 400, "invalid_request");
    let _ = &w.setup;
}

fn run_verify(data_dir: &std::path::Path, extra: &[&str]) -> (bool, String, Value) {
    // This test opens the store in-process to tamper with it; sled releases the database
    // lock when its last I/O job ends, which can be a moment after `drop` under load.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (out, text) = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_scaivault-pki"))
            .args(["audit", "verify", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .output()
            .expect("run audit verify");
        let text = common::output_text(&out);
        if !text.contains("in use by another process") || std::time::Instant::now() > deadline {
            break (out, text);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let json = Command::new(env!("CARGO_BIN_EXE_scaivault-pki"))
        .args(["audit", "verify", "--json", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .output()
        .expect("run audit verify --json");
    let v: Value = serde_json::from_slice(&json.stdout).unwrap_or(Value::Null);
    (out.status.success(), text, v)
}

#[test]
fn audit_verify_finds_the_altered_entry_and_a_rewritten_chain() {
    let setup = new_daemon_setup("[audit]\nsign_every = 4\nsign_interval = \"1h\"").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon");
    for i in 0..12 {
        let (st, v) = d.post(
            "/v1/pki/ca",
            &json!({"name": format!("a{i}"), "common_name": format!("A{i}"), "ca_type": "root"}),
        );
        assert_eq!(st, 201, "{v}");
    }
    let status = d.stop_gracefully();
    assert!(status.success(), "graceful stop: {status}");
    let (ok, text, v) = run_verify(&setup.data_dir, &[]);
    assert!(ok, "a fresh log verifies:\n{text}");
    assert!(text.contains("audit log intact"), "{text}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["report"]["entries"], 12, "{v}");
    assert_eq!(
        v["report"]["last_signed_seq"], 12,
        "the last head is signed at shutdown: {v}"
    );
    let key = v["report"]["key_sha256"].as_str().unwrap().to_string();
    let (ok, text, _) = run_verify(&setup.data_dir, &["--expect-key-sha256", &key]);
    assert!(ok, "{text}");
    let (ok, text, _) = run_verify(&setup.data_dir, &["--expect-key-sha256", &"0".repeat(64)]);
    assert!(!ok, "a different expected key must fail:\n{text}");

    // Someone with write access to the disk changes entry 6's outcome.
    let store =
        scaivault_pki::store::Store::open(&setup.data_dir.join("store")).expect("open store");
    let entries: Vec<(u64, Vec<u8>)> = store.audit_entries().map(|e| e.unwrap()).collect();
    let (_, six) = &entries[5];
    let altered = String::from_utf8(six.clone())
        .unwrap()
        .replace("\"success\"", "\"error:denied\"");
    assert_ne!(altered.as_bytes(), six.as_slice());
    store.tamper_audit_entry(6, altered.as_bytes()).unwrap();
    drop(store);
    let (ok, text, v) = run_verify(&setup.data_dir, &[]);
    assert!(!ok, "an altered entry must fail verification:\n{text}");
    assert!(
        text.contains("BROKEN at entry 6:"),
        "verify must point at entry 6:\n{text}"
    );
    assert_eq!(v["report"]["problems"][0]["seq"], 6, "{v}");

    // They go further: rewrite every link after it so the chain is whole again. The signed
    // head at entry 8 no longer matches.
    let store =
        scaivault_pki::store::Store::open(&setup.data_dir.join("store")).expect("open store");
    let mut entries: Vec<(u64, Vec<u8>)> = store.audit_entries().map(|e| e.unwrap()).collect();
    use sha2::Digest;
    for i in 6..entries.len() {
        let prev = hex::encode(sha2::Sha256::digest(&entries[i - 1].1));
        let mut e: Value = serde_json::from_slice(&entries[i].1).unwrap();
        e["prev_hash"] = json!(prev);
        let e: scaivault_pki::service::audit::AuditEntry = serde_json::from_value(e).unwrap();
        let bytes = serde_json::to_vec(&e).unwrap();
        entries[i].1 = bytes.clone();
        store.tamper_audit_entry(entries[i].0, &bytes).unwrap();
    }
    drop(store);
    let (ok, text, _) = run_verify(&setup.data_dir, &[]);
    assert!(!ok, "a rewritten chain must fail verification:\n{text}");
    // Heads are signed by a worker, so which entries they cover varies from run to run;
    // the last one (at shutdown) covers entry 12, after the change.
    assert!(text.contains("signed head"), "{text}");
    for early in 1..6 {
        assert!(
            !text.contains(&format!("BROKEN at entry {early}:")),
            "{text}"
        );
    }
}

// ---- Refusals in the audit log: folded per address and window; duplicate Authorization.

/// Audit entries after `since`, as the root sees them.
fn audit_after(d: &Daemon, since: u64) -> Vec<Value> {
    audit_all(d, Auth::Root)
        .into_iter()
        .filter(|e| e["seq"].as_u64().unwrap() > since)
        .collect()
}

/// How many refusals `entries` stand for: one per entry of its own, `count=N` per summary.
fn refusals_recorded(entries: &[Value]) -> u64 {
    entries
        .iter()
        .map(|e| {
            if e["action"] != "auth.refusals" {
                return 1;
            }
            let outcome = e["outcome"].as_str().unwrap();
            outcome
                .strip_prefix("count=")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a summary without its count: {e}"))
        })
        .sum()
}

#[test]
fn a_flood_of_refused_requests_costs_a_few_audit_entries_not_one_each() {
    // Throttled after 50 failures, and windows of 3 s so the summary is written while we
    // watch (the sweeper looks every second).
    let setup =
        new_daemon_setup("[auth]\nmax_failures = 50\nfailure_window = \"3s\"").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon");
    let last_seq = |d: &Daemon| {
        audit_all(d, Auth::Root)
            .last()
            .map_or(0, |e| e["seq"].as_u64().unwrap())
    };
    let before = last_seq(&d);

    let flood = |d: &Daemon, n: usize| {
        let mut statuses = std::collections::BTreeMap::new();
        for i in 0..n {
            // Reads and state-changing calls alike, as a scanner would send them.
            let r = if i % 2 == 0 {
                d.request(
                    Method::GET,
                    "/v1/pki/ca",
                    Auth::Bearer("not-a-token"),
                    &[],
                    None,
                )
            } else {
                d.request(
                    Method::POST,
                    "/v1/pki/issue/web",
                    Auth::Bearer("not-a-token"),
                    &[],
                    Some(("application/json", b"{}".to_vec())),
                )
            };
            *statuses.entry(r.status).or_insert(0u32) += 1;
        }
        statuses
    };
    let started = std::time::Instant::now();
    let statuses = flood(&d, 300);
    let took = started.elapsed();
    // 50 failures, then throttled (more 401s only if the flood outlasted a window).
    assert!(statuses.get(&401).is_some_and(|n| *n >= 50), "{statuses:?}");
    assert!(statuses.contains_key(&429), "{statuses:?}");

    // The window closes 3 s after the first refusal; the sweeper writes within a second.
    std::thread::sleep(Duration::from_millis(4500));
    let entries = audit_after(&d, before);
    // Before the fix: 300 entries. Now: the first refusal of each window and one summary
    // per window (the flood takes well under a window here; the bound allows for a slow
    // machine spreading it over a few).
    let windows = took.as_secs() / 3 + 1;
    assert!(
        entries.len() as u64 <= 2 * windows,
        "{} entries for 300 refusals in {took:?}: {entries:#?}",
        entries.len()
    );
    assert_eq!(refusals_recorded(&entries), 300, "{entries:#?}");
    let first = &entries[0];
    assert_eq!(first["action"], "read", "{first}");
    assert_eq!(first["outcome"], "error:unauthorized", "{first}");
    assert!(first["token_id"].is_null() && first["tenant"].is_null());
    let summaries: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "auth.refusals")
        .collect();
    assert!(!summaries.is_empty(), "{entries:#?}");
    let outcomes: String = summaries
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    for s in &summaries {
        assert_eq!(s["object_id"], "127.0.0.1", "{s}");
        assert!(s["token_id"].is_null() && s["tenant"].is_null(), "{s}");
        let o = s["outcome"].as_str().unwrap();
        assert!(o.contains(" first=") && o.contains(" last="), "{o}");
    }
    assert!(outcomes.contains("error:unauthorized="), "{outcomes}");
    assert!(
        outcomes.contains("error:too_many_auth_failures="),
        "{outcomes}"
    );

    // A window still open at shutdown is not lost: its summary is written on the way out.
    let before = last_seq(&d);
    let statuses = flood(&d, 100);
    assert!(statuses.get(&401).is_some_and(|n| *n >= 50), "{statuses:?}");
    assert!(d.stop_gracefully().success());
    drop(d);
    let d = start_daemon_on(&setup).expect("daemon, again");
    let entries = audit_after(&d, before);
    assert!(entries.len() <= 4, "{entries:#?}");
    assert_eq!(refusals_recorded(&entries), 100, "{entries:#?}");
    assert!(d.stop_gracefully().success());
}

#[test]
fn more_than_one_authorization_header_is_refused() {
    // A daemon of its own: on the shared one this refusal could become the first of the
    // address's window, the one recorded on its own, which another test expects to be a 401.
    let setup = new_daemon_setup("").expect("setup");
    let d = &start_daemon_on(&setup).expect("daemon");
    let root = format!("Bearer {}", d.root_token);
    for (what, second) in [
        ("the same token twice", root.as_str()),
        ("a second, wrong token", "Bearer not-a-token"),
    ] {
        let r = d.request(
            Method::GET,
            "/v1/pki/ca",
            Auth::Root,
            &[("authorization", second)],
            None,
        );
        assert_error(what, (r.status, &r.json()), 400, "invalid_authorization");
    }
    // One header is fine, and public endpoints do not read it at all.
    let (st, v) = d.get("/v1/pki/ca");
    assert_eq!(st, 200, "{v}");
    let r = d.request(
        Method::GET,
        "/v1/sys/health",
        Auth::Root,
        &[("authorization", "Bearer x")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
