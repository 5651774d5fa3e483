//! `scaivault-pki backup` and `restore`: the metadata store to one signed file and back.
//! While the daemon runs it holds the store, so the backup comes through its API; a
//! stopped daemon's data directory is read directly. Either way the file is signed by the
//! audit key in the token, so both `backup` without `--url` and `restore` need the
//! configuration (`--config`) to reach the token.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::{
    load_config, open_pki, open_pki_with, open_token, operator, plain, read_text_file, record_step,
    CliError, CmdResult, Outcome, Report,
};
use scaivault_pki::config::Config;
use scaivault_pki::service::auth::DEFAULT_TENANT;
use scaivault_pki::service::backup::{self as service_backup, Authenticity, RestoreError};
use scaivault_pki::store::backup::{self as store_backup, BackupSummary};

#[derive(Args)]
pub struct BackupArgs {
    /// Where to write the backup; the file must not exist yet.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Back up through the running daemon at this base URL, e.g. http://127.0.0.1:8200.
    #[arg(long, conflicts_with_all = ["data_dir", "config"])]
    url: Option<String>,
    /// A file holding a bearer token with the "sys" capability (with --url).
    #[arg(long, requires = "url", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for an https:// URL (with --url).
    #[arg(long, requires = "url", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// With --config: back up this data directory instead of the configured one.
    #[arg(long, requires = "config", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Back up the data directory of a stopped daemon with this configuration file, whose
    /// token signs the backup.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// The daemon's configuration file: its token checks the backup's signature, and the
    /// backup is restored into its data directory (unless --data-dir says otherwise).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With --config: restore into this data directory (absent or empty) instead.
    #[arg(long, requires = "config", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Only check the backup, write nothing: structure, counts and checksum, and with
    /// --config also its signature in the token.
    #[arg(long)]
    check: bool,
    /// Accept a backup without a signature (format version 1, written before backups were
    /// signed). Nothing shows such a file was not altered: use it only for a file you
    /// trust. A bad signature is never accepted.
    #[arg(long)]
    accept_unsigned: bool,
}

/// The configuration, with `--data-dir` in place of its data directory when given.
fn config_with_data_dir(config: &Path, data_dir: Option<PathBuf>) -> Result<Config, CliError> {
    let mut cfg = load_config(config)?;
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    Ok(cfg)
}

fn summary_text(verb: &str, file: &Path, s: &BackupSummary) -> String {
    let signed = match &s.signature {
        Some(sig) => format!("signed by the audit key with SHA-256 {}", sig.key_sha256),
        None => format!("NOT signed (format version {})", s.version),
    };
    format!(
        "{verb} {} ({} bytes): {} trees, {} entries, {} CRL files, taken {} by {}\n  SHA-256 (as recorded in the file): {}\n  {signed}\n",
        file.display(),
        s.bytes,
        s.trees,
        s.entries,
        s.files,
        s.created_at,
        s.producer,
        s.sha256
    )
}

fn authenticity_text(a: &Authenticity) -> String {
    match a {
        Authenticity::Verified { key_sha256 } => format!(
            "  The signature verifies with the audit key in the token (SHA-256 {key_sha256}).\n"
        ),
        Authenticity::UnsignedAccepted => "  WARNING: the backup is NOT signed and was accepted \
             only because of --accept-unsigned; nothing shows it was not altered.\n"
            .to_string(),
    }
}

/// A refused restore in words, with what the operator can do about an unsigned file.
fn restore_error(e: RestoreError) -> CliError {
    match e {
        RestoreError::Unsigned => CliError::failed(format!(
            "{e}; restore it only if you trust where it was kept, with --accept-unsigned"
        )),
        other => CliError::failed(other.to_string()),
    }
}

/// `FILE.partial`, created fresh with mode 0600: a backup holds token hashes and sealed keys.
fn partial_file(out: &Path) -> Result<(PathBuf, fs::File), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    let partial = PathBuf::from(name);
    let _ = fs::remove_file(&partial);
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", partial.display())))?;
    Ok((partial, f))
}

/// Check the written file end to end, then give it its final name.
fn seal_backup(partial: &Path, out: &Path) -> Result<BackupSummary, CliError> {
    let summary = store_backup::verify(partial).map_err(|e| {
        let _ = fs::remove_file(partial);
        CliError::failed(format!("the backup written does not check out: {e}"))
    })?;
    fs::rename(partial, out)
        .map_err(|e| CliError::failed(format!("cannot rename {}: {e}", partial.display())))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(summary)
}

pub fn backup(args: BackupArgs) -> CmdResult {
    let who = operator(DEFAULT_TENANT);
    let out = args.out.clone();
    if out.exists() {
        return Err(plain(CliError::usage(format!(
            "{} already exists; a backup never overwrites a file",
            out.display()
        ))));
    }
    let result = match (&args.url, &args.config) {
        (Some(url), _) => backup_online(url, &args),
        (None, Some(config)) => {
            let cfg = config_with_data_dir(config, args.data_dir.clone()).map_err(plain)?;
            backup_offline(&cfg, &out)
        }
        (None, None) => Err(CliError::usage(
            "say where to back up from: --url URL --token-file FILE for a running daemon, \
             or --config FILE for a stopped one (its token signs the backup)",
        )),
    };
    match result {
        Ok((summary, source)) => {
            record_step(
                None,
                &who,
                "backup",
                Some(&out.display().to_string()),
                Outcome::Ok,
            );
            Ok(Report {
                json: json!({ "file": out, "source": source, "backup": summary }),
                text: summary_text("Wrote", &out, &summary),
            })
        }
        Err(e) => {
            record_step(None, &who, "backup", None, Outcome::Failed(&e.message));
            Err(plain(e))
        }
    }
}

fn backup_offline(cfg: &Config, out: &Path) -> Result<(BackupSummary, &'static str), CliError> {
    let pki = open_pki(
        cfg,
        "back it up through the daemon with --url URL --token-file FILE",
    )?;
    let (partial, file) = partial_file(out)?;
    let written = {
        let mut w = std::io::BufWriter::new(file);
        pki.backup_to(&mut w)
            .map_err(|e| CliError::failed(format!("the backup failed: {e}")))
            .and_then(|s| {
                w.flush()
                    .and_then(|()| w.get_ref().sync_all())
                    .map_err(|e| CliError::failed(format!("cannot write the backup: {e}")))
                    .map(|()| s)
            })
    };
    drop(pki);
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    Ok((seal_backup(&partial, out)?, "data_dir"))
}

fn backup_online(url: &str, args: &BackupArgs) -> Result<(BackupSummary, &'static str), CliError> {
    let token_file = args.token_file.as_deref().ok_or_else(|| {
        CliError::usage("--url needs --token-file FILE (a token with the \"sys\" capability)")
    })?;
    let secret = read_text_file(token_file, "token file")?;
    let secret = secret.trim();
    let mut client = reqwest::blocking::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(None);
    if let Some(ca) = &args.ca_file {
        let pem = fs::read(ca)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", ca.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
            CliError::usage(format!("{} is not a PEM certificate: {e}", ca.display()))
        })?;
        client = client.add_root_certificate(cert);
    }
    let client = client
        .build()
        .map_err(|e| CliError::failed(format!("cannot set up the HTTP client: {e}")))?;
    let endpoint = format!("{}/v1/sys/backup", url.trim_end_matches('/'));
    let mut resp = client
        .get(&endpoint)
        .bearer_auth(secret)
        .send()
        .map_err(|e| CliError::failed(format!("cannot reach the daemon at {url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let body: serde_json::Value = resp
            .bytes()
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let why = body["error"]["message"]
            .as_str()
            .unwrap_or("no reason given")
            .to_string();
        return Err(CliError::failed(format!(
            "the daemon refused the backup (HTTP {}): {why}",
            status.as_u16()
        )));
    }
    let announced = resp
        .headers()
        .get("x-scaivault-backup-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (partial, mut file) = partial_file(&args.out)?;
    let copied = resp
        .copy_to(&mut file)
        .map_err(|e| CliError::failed(format!("the download of the backup broke off: {e}")))
        .and_then(|_| {
            file.sync_all()
                .map_err(|e| CliError::failed(format!("cannot write the backup: {e}")))
        });
    if let Err(e) = copied {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    let summary = seal_backup(&partial, &args.out)?;
    if announced.is_some_and(|a| !a.eq_ignore_ascii_case(&summary.sha256)) {
        let _ = fs::remove_file(&args.out);
        return Err(CliError::failed(
            "the backup received is not the one the daemon announced; it was removed",
        ));
    }
    if summary.signature.is_none() {
        tracing::warn!(
            "the daemon sent an unsigned backup (it predates signed backups); restore refuses \
             it without --accept-unsigned"
        );
    }
    Ok((summary, "daemon"))
}

pub fn restore(args: RestoreArgs) -> CmdResult {
    let who = operator(DEFAULT_TENANT);
    if args.check {
        return check(&args);
    }
    let Some(config) = &args.config else {
        return Err(plain(CliError::usage(
            "say which daemon to restore for with --config FILE: its token checks the \
             backup's signature, and the backup goes into its data directory (or --data-dir DIR)",
        )));
    };
    let cfg = config_with_data_dir(config, args.data_dir.clone()).map_err(plain)?;
    let data_dir = cfg.data_dir.clone();
    let restored = open_token(&cfg).map(Arc::new).and_then(|token| {
        service_backup::restore(&token, &args.input, &data_dir, args.accept_unsigned)
            .map(|done| (done, token))
            .map_err(restore_error)
    });
    match restored {
        Ok(((s, auth), token)) => {
            // The restored log is older than the one the token's anchor follows: restoring
            // is the operator's act, so record it in the log as an accepted rollback (the
            // daemon would refuse to start otherwise), then the restore itself.
            let (rollback, pki) =
                match open_pki_with(&cfg, "the restored store is in use", || Ok(token)) {
                    Ok(pki) => (
                        pki.accept_audit_rollback(&who.token_id)
                            .map_err(|e| e.to_string()),
                        Some(pki),
                    ),
                    Err(e) => (Err(e.message), None),
                };
            record_step(
                pki.as_ref(),
                &who,
                "restore",
                Some(&data_dir.display().to_string()),
                Outcome::Ok,
            );
            drop(pki);
            let mut text = summary_text("Restored", &args.input, &s);
            text.push_str(&authenticity_text(&auth));
            text.push_str(&match &rollback {
                Ok(None) => String::new(),
                Ok(Some(a)) => format!(
                    "  The audit log went back from entry {} (signed at {}): recorded as \
                     audit.rollback_accepted.\n",
                    a.seq, a.signed_at
                ),
                Err(e) => format!(
                    "  WARNING: could not compare the restored audit log with the token's \
                     anchor ({e}); if the daemon refuses to start, run `scaivault-pki audit \
                     accept-rollback --config FILE`.\n"
                ),
            });
            text.push_str(&format!(
                "  into {}. Start the daemon on the same token; put the admin token's secret \
                 back in {} if you use it (backups hold only token hashes).\n",
                data_dir.display(),
                data_dir.join("root-token").display()
            ));
            Ok(Report {
                json: json!({ "file": args.input, "data_dir": data_dir, "backup": s,
                    "signature": auth, "restored": true }),
                text,
            })
        }
        Err(e) => {
            record_step(None, &who, "restore", None, Outcome::Failed(&e.message));
            Err(plain(e))
        }
    }
}

/// `restore --check`: with --config, everything a restore checks; without, the file's
/// integrity only (anyone who can write the file can make that pass), and it says so.
fn check(args: &RestoreArgs) -> CmdResult {
    let Some(config) = &args.config else {
        let s = store_backup::verify(&args.input)
            .map_err(|e| plain(CliError::failed(e.to_string())))?;
        let mut text = summary_text("Checked", &args.input, &s);
        text.push_str(
            "  Integrity only: the signature was not checked (add --config FILE to check it \
             with the token's audit key).\n",
        );
        return Ok(Report {
            json: json!({ "file": args.input, "backup": s,
                "signature": { "status": "not_checked" }, "restored": false }),
            text,
        });
    };
    let cfg = load_config(config).map_err(plain)?;
    let token = open_token(&cfg).map_err(plain)?;
    let (s, auth) = service_backup::check(&token, &args.input, args.accept_unsigned)
        .map_err(|e| plain(restore_error(e)))?;
    let mut text = summary_text("Checked", &args.input, &s);
    text.push_str(&authenticity_text(&auth));
    Ok(Report {
        json: json!({ "file": args.input, "backup": s, "signature": auth, "restored": false }),
        text,
    })
}
