//! What the fuzz targets share: the certificate pool, reference models of the README's
//! rules, a software CA that stands in for the token, and helpers to turn fuzz bytes
//! into the text the daemon would receive.
//!
//! Nothing here reads the clock: every target validates and issues at [`NOW`].

pub mod duration_model;
pub mod names_model;

use std::sync::OnceLock;

use base64::Engine as _;
use der::{Decode, Encode};
use scaivault_pki::ca::{self, profile, CertificateTemplate, Issuer};
use scaivault_pki::keys::{DigestSigner, KeySpec, SignError, SignatureAlgorithm};
use scaivault_pki::policy::{ExtKeyUsage, KeyUsage, Role, RoleKeyType, SubjectFields, Ttl};
use scaivault_pki::types::Serial;
use time::OffsetDateTime;

/// The fixed "now" of every target: 2025-06-01T00:00:00Z, inside the pool's validity.
pub const NOW_UNIX: u64 = 1_748_736_000;

pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW_UNIX as i64).expect("a fixed, valid timestamp")
}

// ------------------------------------------------------------------ the pool

/// Certificates and CRLs made by `pool/make_pool.py`, DER, in file order.
pub struct Pool {
    pub certs: Vec<Vec<u8>>,
    pub crls: Vec<Vec<u8>>,
}

/// Pool indices the targets refer to by name (see `pool/make_pool.py`).
pub mod idx {
    pub const ROOT_A: usize = 0;
    pub const INT_RSA: usize = 11;
    pub const LEAF_A: usize = 13;
    pub const LEAF_P384: usize = 20;
}

/// The DER bodies of the PEM blocks with this label (a test fixture: no error handling
/// needed beyond panicking on a broken fixture).
pub fn pem_bodies(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == begin {
            cur = Some(String::new());
        } else if line == end {
            let b64 = cur.take().expect("END without BEGIN in the pool");
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("the pool's base64"),
            );
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    out
}

pub fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        certs: pem_bodies(include_str!("../pool/certs.pem"), "CERTIFICATE"),
        crls: pem_bodies(include_str!("../pool/crls.pem"), "X509 CRL"),
    })
}

/// The SubjectPublicKeyInfo (DER) of a pool certificate.
pub fn pool_spki(i: usize) -> Vec<u8> {
    let c = x509_cert::Certificate::from_der(&pool().certs[i]).expect("a pool certificate");
    c.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .expect("re-encoding an SPKI")
}

/// PEM text of DER bytes, as a client would paste it.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

// ------------------------------------------------------------------ text from bytes

/// Pieces names are built from: the characters the rules care about, and whole labels
/// that reach the interesting cases (`localhost`, the README's domains, a 63-octet label)
/// in one byte.
const TOKENS: [&str; 32] = [
    "a",
    "b",
    "w",
    "x",
    "-",
    ".",
    "*",
    "_",
    " ",
    "0",
    "9",
    "A",
    "Z",
    "\t",
    "\u{e9}",
    "svc",
    "internal",
    "example",
    "com",
    "localhost",
    "localdomain",
    "xn--",
    "web-",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "..",
    "*.",
    "/",
    ":",
    "cluster",
    "local",
    "\u{130}",
    "K",
];

/// A string of [`TOKENS`], one per byte, cut at 320 bytes: long enough for every length
/// rule (253), short enough to keep the quadratic reference matchers fast.
pub fn tokens_to_string(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        let t = TOKENS[usize::from(*b) % TOKENS.len()];
        if s.len() + t.len() > 320 {
            break;
        }
        s.push_str(t);
    }
    s
}

// ------------------------------------------------------------------ roles

/// A role as the role API would store it: every flag given, `allowed_domains` normalised
/// and filtered as `service::roles` does on creation (an entry it would refuse is left
/// out here, where the API would refuse the whole role).
pub fn role(
    flags: names_model::Flags,
    allowed_domains: &[String],
    allowed_uri_sans: &[String],
    allow_ip_sans: bool,
) -> Role {
    let allowed_domains = allowed_domains
        .iter()
        .map(|d| scaivault_pki::policy::names::normalize(d))
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 253
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'_'))
        })
        .collect();
    Role {
        name: "fuzz".into(),
        tenant: "default".into(),
        ca_id: "ca_fuzz".into(),
        allowed_domains,
        allow_subdomains: flags.allow_subdomains,
        allow_bare_domains: flags.allow_bare_domains,
        allow_glob_domains: flags.allow_glob_domains,
        allow_wildcard_certificates: flags.allow_wildcard_certificates,
        allow_localhost: flags.allow_localhost,
        allow_any_name: flags.allow_any_name,
        enforce_hostnames: flags.enforce_hostnames,
        allow_ip_sans,
        allowed_uri_sans: allowed_uri_sans.to_vec(),
        ttl: None,
        max_ttl: Ttl::from_secs(720 * 3600),
        key_type: RoleKeyType::Ec,
        key_bits: 256,
        key_usage: vec![KeyUsage::DigitalSignature],
        ext_key_usage: vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth],
        subject: SubjectFields::default(),
        use_csr_common_name: true,
        use_csr_sans: true,
        not_before_duration: Ttl::from_secs(30),
        require_cn: true,
        store_private_keys: false,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
    }
}

/// Role flags from the bits of one byte (bit 0 = allow_subdomains ... bit 6 =
/// enforce_hostnames).
pub fn flags_from_byte(b: u8) -> names_model::Flags {
    names_model::Flags {
        allow_subdomains: b & 1 != 0,
        allow_bare_domains: b & 2 != 0,
        allow_glob_domains: b & 4 != 0,
        allow_wildcard_certificates: b & 8 != 0,
        allow_localhost: b & 16 != 0,
        allow_any_name: b & 32 != 0,
        enforce_hostnames: b & 64 != 0,
    }
}

// ------------------------------------------------------------------ the software CA

/// A P-256 key in memory standing in for the CA's token key: the service's code up to
/// the token is the same, and signing stays cheap and deterministic in what it checks.
pub struct SoftSigner(p256::ecdsa::SigningKey);

impl DigestSigner for SoftSigner {
    fn sign_digest(&self, _: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sig: p256::ecdsa::Signature = self
            .0
            .sign_prehash(digest)
            .map_err(|e| SignError::Failed(e.to_string()))?;
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// An intermediate-like CA: its certificate (DER), validity and signer.
pub struct SoftCa {
    pub cert_der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub signer: SoftSigner,
}

impl SoftCa {
    pub fn issuer(&self) -> Issuer<'_> {
        Issuer::from_certificate(&self.cert_der, KeySpec::EcP256, &self.signer)
            .expect("the soft CA's certificate")
    }
}

/// The software CA, made once: a self-signed P-256 root valid 2024-01-01 to 2034-01-01,
/// built by the crate's own signing core.
pub fn soft_ca() -> &'static SoftCa {
    static CA: OnceLock<SoftCa> = OnceLock::new();
    CA.get_or_init(|| {
        use p256::pkcs8::EncodePublicKey;
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("a fixed scalar");
        let spki = sk
            .verifying_key()
            .to_public_key_der()
            .expect("an SPKI")
            .as_bytes()
            .to_vec();
        let signer = SoftSigner(sk);
        let not_before =
            OffsetDateTime::from_unix_timestamp(1_704_067_200).expect("2024-01-01T00:00:00Z");
        let not_after =
            OffsetDateTime::from_unix_timestamp(2_019_686_400).expect("2034-01-01T00:00:00Z");
        let name = ca::common_name("Fuzz CA").expect("a name");
        let ski = profile::key_identifier(&spki).expect("a key id");
        let issuer = Issuer {
            name: name.clone(),
            spki_der: spki.clone(),
            key_id: ski.clone(),
            spec: KeySpec::EcP256,
            not_after: None,
            signer: &signer,
        };
        let template = CertificateTemplate {
            subject: name,
            spki_der: spki,
            serial: Serial::from_der_bytes(&[0x11; 16]),
            not_before,
            not_after,
            extensions: profile::ca_extensions(&ski, None, None).expect("CA extensions"),
            self_signed: true,
        };
        let cert = ca::sign_certificate(template, &issuer).expect("the soft CA's certificate");
        SoftCa {
            cert_der: cert.der,
            not_before,
            not_after,
            signer,
        }
    })
}
