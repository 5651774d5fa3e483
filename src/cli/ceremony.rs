//! `scaivault-pki ceremony …`: key ceremonies on the host, in process, with the same use
//! cases the API runs. Every step goes through `record_step`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    load_config, open_pki, open_token, operator, plain, read_text_file, record_step,
    write_new_file, CliError, CmdResult, Outcome, Report,
};
use scaivault_pki::ca::pem;
use scaivault_pki::config::Config;
use scaivault_pki::hsm::Pkcs11Uri;
use scaivault_pki::keys::KeyType;
use scaivault_pki::service::cas::CreateCaRequest;
use scaivault_pki::service::ceremony::{ImportIntermediateRequest, IntermediateCsrRequest};
use scaivault_pki::service::{Pki, Principal};
use scaivault_pki::store::CaRecord;
use scaivault_pki::types::{rfc3339, CaType, Serial};

const DAEMON_HINT: &str =
    "stop the daemon before a key ceremony (ceremonies work on the store directly)";

#[derive(Args)]
pub struct CeremonyArgs {
    /// The configuration file (TOML): token, PIN file, data directory.
    #[arg(long, env = "SCAIVAULT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The tenant that owns what the ceremony makes.
    #[arg(long, default_value = "default", global = true)]
    tenant: String,
    #[command(subcommand)]
    step: Step,
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
    /// Also write the CA certificate (PEM) to this file.
    #[arg(long)]
    cert_out: Option<PathBuf>,
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
        /// Write the CSR (PEM) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
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
    },
    /// The token's objects: label, id, type, size, sensitive and extractable.
    ListKeys {
        /// Only the objects this PKCS#11 URI selects.
        uri: Option<String>,
    },
    /// Check every CA: its key is in the token, is its certificate's, and cannot leave.
    Verify,
}

pub fn run(args: CeremonyArgs) -> CmdResult {
    let config = args.config.ok_or_else(|| {
        plain(CliError::usage(
            "a ceremony needs --config FILE (or SCAIVAULT_CONFIG)",
        ))
    })?;
    let cfg = load_config(&config).map_err(plain)?;
    let who = operator(&args.tenant);
    // Listing the token needs no store, so it works while the daemon runs.
    if let Step::ListKeys { uri } = args.step {
        return list_keys(&cfg, &who, uri);
    }
    let pki = match open_pki(&cfg, DAEMON_HINT) {
        Ok(p) => p,
        Err(e) => {
            record_step(
                None,
                &who,
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
        Step::CreateRoot(ca) => create_ca(&pki, &who, ca, CaType::Root, None),
        Step::CreateIntermediate { parent, ca } => {
            create_ca(&pki, &who, ca, CaType::Intermediate, Some(parent))
        }
        Step::IntermediateCsr {
            common_name,
            organization,
            ou,
            country,
            key_type,
            key_size,
            out,
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
        } => import_intermediate(&pki, &who, cert, name, chain, key),
        Step::ListKeys { .. } => unreachable!("handled above"),
        Step::Verify => verify(&pki, &who),
    };
    if let Err(e) = pki.flush() {
        return Err(plain(CliError::failed(format!(
            "the final flush of the store failed: {e}"
        ))));
    }
    result
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
fn ca_json(pki: &Pki, rec: &CaRecord) -> Result<Value, CliError> {
    let serial = hex::decode(&rec.serial_hex)
        .map(|b| Serial::from_der_bytes(&b).to_colon_hex())
        .unwrap_or_default();
    let cert_pem =
        pem("CERTIFICATE", &rec.certificate_der).map_err(|e| CliError::failed(e.to_string()))?;
    Ok(json!({
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
    }))
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

fn write_cert(rec: &CaRecord, out: Option<&PathBuf>) -> Result<(), CliError> {
    if let Some(path) = out {
        let pem = pem("CERTIFICATE", &rec.certificate_der)
            .map_err(|e| CliError::failed(e.to_string()))?;
        write_new_file(path, pem.as_bytes())?;
    }
    Ok(())
}

fn create_ca(
    pki: &Pki,
    who: &Principal,
    ca: NewCa,
    ca_type: CaType,
    parent: Option<String>,
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
    write_cert(&rec, ca.cert_out.as_ref()).map_err(|e| failed(pki, who, action, e))?;
    let mut text = ca_text(pki, "Created", &rec);
    if let Some(p) = &ca.cert_out {
        text.push_str(&format!("  certificate: {}\n", p.display()));
    }
    Ok(Report {
        json: json!({ "ca": ca_json(pki, &rec).map_err(plain)? }),
        text,
    })
}

fn intermediate_csr(
    pki: &Pki,
    who: &Principal,
    req: IntermediateCsrRequest,
    out: Option<PathBuf>,
) -> CmdResult {
    const ACTION: &str = "ceremony.intermediate_csr";
    let rec = pki
        .generate_intermediate_csr(who, req)
        .map_err(|e| failed(pki, who, ACTION, e.into()))?;
    record_step(Some(pki), who, ACTION, Some(&rec.id), Outcome::Ok);
    if let Some(path) = &out {
        write_new_file(path, rec.csr_pem.as_bytes()).map_err(|e| failed(pki, who, ACTION, e))?;
    }
    let key_uri = scaivault_pki::hsm::KeyRef {
        label: rec.key_label.clone().unwrap_or_default(),
        id: rec.key_id.clone(),
    }
    .uri(pki.token_label());
    let mut text = format!(
        "Made a key pair ({} {}) in the token and a CSR for {:?} ({})\n  key: {key_uri}\n",
        rec.key_type, rec.key_size, rec.subject, rec.id
    );
    match &out {
        Some(p) => text.push_str(&format!("  CSR: {}\n", p.display())),
        None => text.push_str(&rec.csr_pem),
    }
    text.push_str(
        "Have the root sign it as a CA certificate (basicConstraints CA:TRUE, keyUsage \
         keyCertSign and cRLSign), then run `ceremony import-intermediate --cert FILE --name NAME`.\n",
    );
    Ok(Report {
        json: json!({
            "csr": {
                "id": rec.id,
                "subject": rec.subject,
                "key_type": rec.key_type,
                "key_size": rec.key_size,
                "key_uri": key_uri,
                "csr_pem": rec.csr_pem,
                "file": out,
            }
        }),
        text,
    })
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
    Ok(Report {
        json: json!({ "ca": ca_json(pki, &rec).map_err(plain)? }),
        text: ca_text(pki, "Imported", &rec),
    })
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
