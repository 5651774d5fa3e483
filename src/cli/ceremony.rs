//! `scaivault-pki ceremony …`: key ceremonies on the host, in process, with the same use
//! cases the API runs. Every step goes through `record_step`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    load_config, open_pki, open_token, operator, plain, read_text_file, record_step, CliError,
    CmdResult, OutFile, Outcome, Report,
};
use scaivault_pki::ca::pem;
use scaivault_pki::config::Config;
use scaivault_pki::hsm::Pkcs11Uri;
use scaivault_pki::keys::KeyType;
use scaivault_pki::service::auth::DEFAULT_TENANT;
use scaivault_pki::service::cas::CreateCaRequest;
use scaivault_pki::service::ceremony::{ImportIntermediateRequest, IntermediateCsrRequest};
use scaivault_pki::service::{Pki, Principal};
use scaivault_pki::store::CaRecord;
use scaivault_pki::types::{rfc3339, CaType, Serial};

const DAEMON_HINT: &str =
    "stop the daemon before a key ceremony (ceremonies work on the store directly)";

#[derive(Args)]
pub struct CeremonyArgs {
    /// The configuration file (TOML): token, PIN file, data directory. The PIN is
    /// SCAIVAULT_HSM_PIN when that is set, else the configuration's `hsm.pin_file`.
    #[arg(long, env = "SCAIVAULT_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    step: Step,
}

/// `--tenant`, on the steps that make something (a CA, a key pair); `list-keys` and
/// `verify` look at the whole token and every tenant's CAs, so they have none.
#[derive(Args)]
struct Owner {
    /// The tenant that will own what this step makes; it must exist (`default` always
    /// does; others are made with POST /v1/sys/tenants).
    #[arg(long, default_value = DEFAULT_TENANT)]
    tenant: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyKind {
    Ec,
    Rsa,
}

impl From<KeyKind> for KeyType {
    fn from(k: KeyKind) -> Self {
        match k {
            KeyKind::Ec => KeyType::Ec,
            KeyKind::Rsa => KeyType::Rsa,
        }
    }
}

#[derive(Args)]
struct NewCa {
    /// A name for the CA (letters, digits, '.', '_', '-'), unique in the tenant.
    #[arg(long)]
    name: String,
    /// The certificate's subject common name.
    #[arg(long)]
    common_name: String,
    /// Key family; the same default as the API (rsa).
    #[arg(long, value_enum)]
    key_type: Option<KeyKind>,
    /// Key size: 256 or 384 for EC; 2048, 3072 or 4096 for RSA.
    #[arg(long)]
    key_size: Option<u32>,
    /// Lifetime in days (roots 3650, intermediates 1825 by default).
    #[arg(long)]
    validity_days: Option<u32>,
    /// Also write the CA certificate (PEM) to this file, which must not exist yet. It is
    /// created before the key is made, so a path that cannot be written stops the ceremony
    /// before anything changes.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    #[command(flatten)]
    owner: Owner,
}

#[derive(Subcommand)]
enum Step {
    /// A key pair in the token and a self-signed root certificate.
    CreateRoot(NewCa),
    /// A key pair in the token and a certificate signed by a parent CA of this daemon.
    CreateIntermediate {
        /// The parent CA's id (`ca_…`).
        #[arg(long)]
        parent: String,
        #[command(flatten)]
        ca: NewCa,
    },
    /// A key pair in the token and a CSR for an offline or external root to sign.
    IntermediateCsr {
        /// The subject common name.
        #[arg(long)]
        common_name: String,
        /// Subject organization (O); may be repeated.
        #[arg(long)]
        organization: Vec<String>,
        /// Subject organizational unit (OU); may be repeated.
        #[arg(long)]
        ou: Vec<String>,
        /// Subject country (C), two capital letters.
        #[arg(long)]
        country: Vec<String>,
        /// Key family (default ec).
        #[arg(long, value_enum)]
        key_type: Option<KeyKind>,
        /// Key size: 256 or 384 for EC; 2048, 3072 or 4096 for RSA.
        #[arg(long)]
        key_size: Option<u32>,
        /// Write the CSR (PEM) to this file, which must not exist yet. It is created
        /// before the key pair is made, so a path that cannot be written stops the
        /// ceremony before anything changes.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        owner: Owner,
    },
    /// Make an intermediate CA from the certificate an external root signed for a CSR
    /// made by `intermediate-csr`, after checking it is for that token key.
    ImportIntermediate {
        /// The signed intermediate certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// A name for the CA, unique in the tenant.
        #[arg(long)]
        name: String,
        /// The certificates above it (PEM, nearest first); their signatures are checked
        /// and they complete the chains handed out.
        #[arg(long)]
        chain: Option<PathBuf>,
        /// The token key (PKCS#11 URI) the certificate must be for.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        owner: Owner,
    },
    /// The token's objects: label, id, type, size, sensitive and extractable. Works while
    /// the daemon runs (it needs the token only, not the store).
    ListKeys {
        /// Only the objects this PKCS#11 URI selects.
        uri: Option<String>,
    },
    /// Check every CA of every tenant: its key is in the token, is its certificate's, and
    /// cannot leave.
    Verify,
}

pub fn run(args: CeremonyArgs) -> CmdResult {
    let config = args.config.ok_or_else(|| {
        plain(CliError::usage(
            "a ceremony needs --config FILE (or SCAIVAULT_CONFIG)",
        ))
    })?;
    let cfg = load_config(&config).map_err(plain)?;
    let tenant = match &args.step {
        Step::CreateRoot(ca) | Step::CreateIntermediate { ca, .. } => Some(&ca.owner.tenant),
        Step::IntermediateCsr { owner, .. } | Step::ImportIntermediate { owner, .. } => {
            Some(&owner.tenant)
        }
        Step::ListKeys { .. } | Step::Verify => None,
    };
    let who = operator(tenant.map_or(DEFAULT_TENANT, String::as_str));
    // Listing the token needs no store, so it works while the daemon runs.
    if let Step::ListKeys { uri } = args.step {
        return list_keys(&cfg, &who, uri);
    }
    // The output file before the token and the store: a path that cannot be written must
    // stop the ceremony before a key pair or a CA exists that nobody asked to keep.
    let out = match &args.step {
        Step::CreateRoot(ca) | Step::CreateIntermediate { ca, .. } => ca
            .cert_out
            .as_deref()
            .map(|p| OutFile::create(p, "certificate")),
        Step::IntermediateCsr { out, .. } => out.as_deref().map(|p| OutFile::create(p, "CSR")),
        _ => None,
    }
    .transpose()
    .map_err(plain)?;
    let pki = match open_pki(&cfg, DAEMON_HINT).and_then(|pki| {
        match tenant {
            Some(t) => check_tenant(&pki, t),
            None => Ok(()),
        }
        .map(|()| pki)
    }) {
        Ok(p) => p,
        Err(e) => {
            // Recorded in `default`: the tenant asked for may not exist.
            record_step(
                None,
                &operator(DEFAULT_TENANT),
                "ceremony.open",
                None,
                Outcome::Failed(&e.message),
            );
            return Err(plain(e));
        }
    };
    record_step(
        Some(&pki),
        &who,
        "ceremony.open",
        Some(pki.token_label()),
        Outcome::Ok,
    );
    let result = match args.step {
        Step::CreateRoot(ca) => create_ca(&pki, &who, ca, CaType::Root, None, out),
        Step::CreateIntermediate { parent, ca } => {
            create_ca(&pki, &who, ca, CaType::Intermediate, Some(parent), out)
        }
        Step::IntermediateCsr {
            common_name,
            organization,
            ou,
            country,
            key_type,
            key_size,
            out: _,
            owner: _,
        } => intermediate_csr(
            &pki,
            &who,
            IntermediateCsrRequest {
                common_name,
                organization,
                ou,
                country,
                key_type: key_type.map(Into::into),
                key_size,
            },
            out,
        ),
        Step::ImportIntermediate {
            cert,
            name,
            chain,
            key,
            owner: _,
        } => import_intermediate(&pki, &who, cert, name, chain, key),
        Step::ListKeys { .. } => unreachable!("handled above"),
        Step::Verify => verify(&pki, &who),
    };
    if let Err(e) = pki.flush() {
        // What the step made is in the report; say that it may not be on disk.
        let shown = match result {
            Ok(report) => Some(report),
            Err((report, _)) => report,
        };
        return Err((
            shown,
            CliError::failed(format!(
                "the final flush of the store failed ({e}); what this step reports having made \
                 may be missing from the store after a crash: run `ceremony verify` and \
                 `ceremony list-keys`"
            )),
        ));
    }
    result
}

/// A step that makes something for a tenant needs the tenant to exist: a CA in a tenant
/// nobody can log in to is a CA nobody can use, and the name is most likely a typo.
fn check_tenant(pki: &Pki, tenant: &str) -> Result<(), CliError> {
    if tenant == DEFAULT_TENANT {
        return Ok(());
    }
    let known = pki.list_tenants(&operator(DEFAULT_TENANT))?;
    if known.iter().any(|t| t.name == tenant) {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "there is no tenant {tenant:?}; create it first (POST /v1/sys/tenants), or leave \
             out --tenant for `default`"
        )))
    }
}

/// A step whose work is done (and recorded) but whose output file could not be written:
/// the report says what was made, and the sentence says so plainly.
fn made_but_not_written(
    pki: &Pki,
    who: &Principal,
    object_id: &str,
    report: Report,
    message: String,
) -> (Option<Report>, CliError) {
    record_step(
        Some(pki),
        who,
        "ceremony.write_output",
        Some(object_id),
        Outcome::Failed(&message),
    );
    (Some(report), CliError::failed(message))
}

/// A failed step: recorded, then reported.
fn failed(pki: &Pki, who: &Principal, action: &str, e: CliError) -> (Option<Report>, CliError) {
    record_step(Some(pki), who, action, None, Outcome::Failed(&e.message));
    (None, e)
}

fn fingerprint_colons(der: &[u8]) -> String {
    scaivault_pki::types::colon_hex(&Sha256::digest(der))
}

/// A CA as the ceremony shows it: the API's fields plus the certificate.
fn ca_json(pki: &Pki, rec: &CaRecord, cert_pem: &str) -> Value {
    let serial = hex::decode(&rec.serial_hex)
        .map(|b| Serial::from_der_bytes(&b).to_colon_hex())
        .unwrap_or_default();
    json!({
        "id": rec.id,
        "name": rec.name,
        "common_name": rec.common_name,
        "ca_type": rec.ca_type,
        "parent_ca_id": rec.parent_id,
        "key_type": rec.key_spec.key_type(),
        "key_size": rec.key_spec.size(),
        "valid_from": rfc3339(rec.not_before),
        "valid_until": rfc3339(rec.not_after),
        "serial_number": serial,
        "fingerprint_sha256": hex::encode(Sha256::digest(&rec.certificate_der)),
        "key_uri": rec.key_ref().uri(pki.token_label()),
        "certificate_pem": cert_pem,
    })
}

/// The CA certificate as PEM. Encoding a certificate the token just signed cannot fail in
/// practice; if it does, the CA exists all the same, and the sentence says so.
fn ca_pem(rec: &CaRecord) -> Result<String, CliError> {
    pem("CERTIFICATE", &rec.certificate_der).map_err(|e| {
        CliError::failed(format!(
            "CA {} ({}) was made, but its certificate cannot be shown as PEM: {e}; fetch it \
             with GET /v1/pki/ca/{}/certificate",
            rec.name, rec.id, rec.id
        ))
    })
}

fn ca_text(pki: &Pki, verb: &str, rec: &CaRecord) -> String {
    format!(
        "{verb} {} CA {:?} ({})\n  common name: {}\n  key:         {}\n  valid:       {} to {}\n  SHA-256 fingerprint:\n    {}\n",
        match rec.ca_type {
            CaType::Root => "root",
            CaType::Intermediate => "intermediate",
        },
        rec.name,
        rec.id,
        rec.common_name,
        rec.key_ref().uri(pki.token_label()),
        rfc3339(rec.not_before),
        rfc3339(rec.not_after),
        fingerprint_colons(&rec.certificate_der),
    )
}

fn create_ca(
    pki: &Pki,
    who: &Principal,
    ca: NewCa,
    ca_type: CaType,
    parent: Option<String>,
    cert_out: Option<OutFile>,
) -> CmdResult {
    let action = match ca_type {
        CaType::Root => "ceremony.create_root",
        CaType::Intermediate => "ceremony.create_intermediate",
    };
    let req = CreateCaRequest {
        name: ca.name,
        common_name: ca.common_name,
        ca_type,
        parent_ca_id: parent,
        key_type: ca.key_type.map(Into::into),
        key_size: ca.key_size,
        validity_days: ca.validity_days,
    };
    let rec = pki
        .create_ca(who, req)
        .map_err(|e| failed(pki, who, action, e.into()))?;
    record_step(Some(pki), who, action, Some(&rec.id), Outcome::Ok);
    // From here on the CA exists: every failure reports it.
    let key_uri = rec.key_ref().uri(pki.token_label());
    let mut text = ca_text(pki, "Created", &rec);
    let cert_pem = match ca_pem(&rec) {
        Ok(p) => p,
        Err(e) => {
            let report = Report {
                json: json!({ "ca": { "id": rec.id, "name": rec.name, "key_uri": key_uri } }),
                text,
            };
            return Err(made_but_not_written(pki, who, &rec.id, report, e.message));
        }
    };
    let written = cert_out.map(|f| {
        let path = f.path().to_path_buf();
        (f.write(cert_pem.as_bytes()), path)
    });
    let json = json!({ "ca": ca_json(pki, &rec, &cert_pem) });
    match written {
        None => Ok(Report { json, text }),
        Some((Ok(()), path)) => {
            text.push_str(&format!("  certificate: {}\n", path.display()));
            Ok(Report { json, text })
        }
        Some((Err(e), _)) => {
            text.push_str(&cert_pem);
            let message = format!(
                "CA {} ({}) was created, with its key {key_uri} in the token, but its \
                 certificate was not saved: {}; the certificate is in this output \
                 (certificate_pem) and at GET /v1/pki/ca/{}/certificate",
                rec.name, rec.id, e.message, rec.id
            );
            Err(made_but_not_written(
                pki,
                who,
                &rec.id,
                Report { json, text },
                message,
            ))
        }
    }
}

fn intermediate_csr(
    pki: &Pki,
    who: &Principal,
    req: IntermediateCsrRequest,
    out: Option<OutFile>,
) -> CmdResult {
    const ACTION: &str = "ceremony.intermediate_csr";
    let rec = pki
        .generate_intermediate_csr(who, req)
        .map_err(|e| failed(pki, who, ACTION, e.into()))?;
    record_step(Some(pki), who, ACTION, Some(&rec.id), Outcome::Ok);
    // From here on the key pair exists: every failure reports it.
    let key_uri = scaivault_pki::hsm::KeyRef {
        label: rec.key_label.clone().unwrap_or_default(),
        id: rec.key_id.clone(),
    }
    .uri(pki.token_label());
    let mut text = format!(
        "Made a key pair ({} {}) in the token and a CSR for {:?} ({})\n  key: {key_uri}\n",
        rec.key_type, rec.key_size, rec.subject, rec.id
    );
    let out_path = out.as_ref().map(|f| f.path().to_path_buf());
    let written = out.map(|f| f.write(rec.csr_pem.as_bytes())).transpose();
    match (&written, &out_path) {
        (Ok(_), Some(p)) => text.push_str(&format!("  CSR: {}\n", p.display())),
        _ => text.push_str(&rec.csr_pem),
    }
    let file = if written.is_ok() { out_path } else { None };
    let json = json!({
        "csr": {
            "id": rec.id,
            "subject": rec.subject,
            "key_type": rec.key_type,
            "key_size": rec.key_size,
            "key_uri": key_uri,
            "csr_pem": rec.csr_pem,
            "file": file,
        }
    });
    if let Err(e) = written {
        let message = format!(
            "the key pair {key_uri} and CSR {} were made, but the CSR was not saved: {}; the \
             CSR is in this output (csr_pem), and `ceremony import-intermediate` accepts the \
             certificate signed for it as usual",
            rec.id, e.message
        );
        return Err(made_but_not_written(
            pki,
            who,
            &rec.id,
            Report { json, text },
            message,
        ));
    }
    text.push_str(
        "Have the root sign it as a CA certificate (basicConstraints CA:TRUE, keyUsage \
         keyCertSign and cRLSign), then run `ceremony import-intermediate --cert FILE --name NAME`.\n",
    );
    Ok(Report { json, text })
}

fn import_intermediate(
    pki: &Pki,
    who: &Principal,
    cert: PathBuf,
    name: String,
    chain: Option<PathBuf>,
    key: Option<String>,
) -> CmdResult {
    const ACTION: &str = "ceremony.import_intermediate";
    let bad = |e: CliError| failed(pki, who, ACTION, e);
    let certificate_pem = read_text_file(&cert, "certificate file").map_err(bad)?;
    let chain_pem = chain
        .as_deref()
        .map(|p| read_text_file(p, "chain file"))
        .transpose()
        .map_err(bad)?;
    let key = key
        .map(|k| k.parse::<Pkcs11Uri>())
        .transpose()
        .map_err(|e| bad(CliError::usage(e.to_string())))?;
    let rec = pki
        .import_intermediate_ca(
            who,
            ImportIntermediateRequest {
                name,
                certificate_pem,
                chain_pem,
                key,
            },
        )
        .map_err(|e| bad(e.into()))?;
    record_step(Some(pki), who, ACTION, Some(&rec.id), Outcome::Ok);
    let text = ca_text(pki, "Imported", &rec);
    match ca_pem(&rec) {
        Ok(cert_pem) => Ok(Report {
            json: json!({ "ca": ca_json(pki, &rec, &cert_pem) }),
            text,
        }),
        Err(e) => {
            let json = json!({ "ca": { "id": rec.id, "name": rec.name } });
            Err(made_but_not_written(
                pki,
                who,
                &rec.id,
                Report { json, text },
                e.message,
            ))
        }
    }
}

fn list_keys(cfg: &Config, who: &Principal, uri: Option<String>) -> CmdResult {
    const ACTION: &str = "ceremony.list_keys";
    let fail = |e: CliError| {
        record_step(None, who, ACTION, None, Outcome::Failed(&e.message));
        (None, e)
    };
    let filter = uri
        .map(|u| u.parse::<Pkcs11Uri>())
        .transpose()
        .map_err(|e| fail(CliError::usage(e.to_string())))?;
    let token = open_token(cfg).map_err(fail)?;
    let objects: Vec<_> = token
        .list_objects()
        .map_err(|e| fail(CliError::failed(format!("cannot list the token: {e}"))))?
        .into_iter()
        .filter(|o| {
            filter
                .as_ref()
                .is_none_or(|f| f.selects(token.label(), &o.label, &o.id, o.kind))
        })
        .collect();
    record_step(None, who, ACTION, Some(token.label()), Outcome::Ok);
    let flag = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    let mut text = format!(
        "{} object(s) in token {:?}\n{:<10} {:<5} {:>5} {:<9} {:<11} {:<42} {}\n",
        objects.len(),
        token.label(),
        "TYPE",
        "KEY",
        "BITS",
        "SENSITIVE",
        "EXTRACTABLE",
        "LABEL",
        "ID"
    );
    for o in &objects {
        text.push_str(&format!(
            "{:<10} {:<5} {:>5} {:<9} {:<11} {:<42} {}\n",
            o.kind.name(),
            o.key_type.as_deref().unwrap_or("-"),
            o.bits.map_or("-".to_string(), |b| b.to_string()),
            flag(o.sensitive),
            flag(o.extractable),
            o.label,
            hex::encode(&o.id),
        ));
    }
    Ok(Report {
        json: json!({ "token": token.label(), "objects": objects }),
        text,
    })
}

fn verify(pki: &Pki, who: &Principal) -> CmdResult {
    const ACTION: &str = "ceremony.verify";
    let checks = pki
        .verify_ca_keys()
        .map_err(|e| failed(pki, who, ACTION, e.into()))?;
    let mut text = String::new();
    let mut failures = Vec::new();
    for c in &checks {
        if c.ok() {
            record_step(
                Some(pki),
                who,
                "ceremony.verify_key",
                Some(&c.ca_id),
                Outcome::Ok,
            );
            text.push_str(&format!(
                "ok      {} ({}): key in the token, matches its certificate, sensitive, not extractable\n",
                c.name, c.ca_id
            ));
        } else {
            let why = c.problems.join("; ");
            record_step(
                Some(pki),
                who,
                "ceremony.verify_key",
                Some(&c.ca_id),
                Outcome::Failed(&why),
            );
            text.push_str(&format!("FAILED  {} ({}): {why}\n", c.name, c.ca_id));
            failures.push(format!("CA {} ({}): {why}", c.name, c.ca_id));
        }
    }
    let json = json!({ "token": pki.token_label(), "cas": checks });
    if failures.is_empty() {
        record_step(Some(pki), who, ACTION, None, Outcome::Ok);
        text.push_str(&format!("{} CA key(s) verified.\n", checks.len()));
        Ok(Report { json, text })
    } else {
        let msg = format!(
            "{} of {} CA key(s) failed verification: {}",
            failures.len(),
            checks.len(),
            failures.join("; ")
        );
        record_step(Some(pki), who, ACTION, None, Outcome::Failed(&msg));
        // The table still goes to standard output; the sentence to standard error.
        Err((Some(Report { json, text }), CliError::failed(msg)))
    }
}
