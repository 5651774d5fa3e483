//! `scaivault-pki backup` and `restore`: the metadata store to one checksummed file and
//! back. While the daemon runs it holds the store, so the backup comes through its API;
//! a stopped daemon's data directory is read directly.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::{
    load_config, operator, plain, read_text_file, record_step, store_error, CliError, CmdResult,
    Outcome, Report,
};
use scaivault_pki::service::auth::DEFAULT_TENANT;
use scaivault_pki::store::backup::{self as store_backup, BackupSummary};
use scaivault_pki::store::Store;

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
    /// Back up the data directory of a stopped daemon.
    #[arg(long, conflicts_with = "config", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Back up the data directory named in this configuration file (daemon stopped).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// The data directory to restore into; it must be absent or empty.
    #[arg(long, conflicts_with = "config", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Restore into the data directory named in this configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only check the backup (structure, counts, checksum); write nothing.
    #[arg(long)]
    check: bool,
}

fn data_dir_of(
    data_dir: Option<PathBuf>,
    config: Option<&Path>,
) -> Result<Option<PathBuf>, CliError> {
    match (data_dir, config) {
        (Some(d), _) => Ok(Some(d)),
        (None, Some(c)) => Ok(Some(load_config(c)?.data_dir)),
        (None, None) => Ok(None),
    }
}

fn summary_text(verb: &str, file: &Path, s: &BackupSummary) -> String {
    format!(
        "{verb} {} ({} bytes): {} trees, {} entries, {} CRL files, taken {} by {}\n  SHA-256 (as recorded in the file): {}\n",
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
    let result = match &args.url {
        Some(url) => backup_online(url, &args),
        None => {
            let dir = data_dir_of(args.data_dir.clone(), args.config.as_deref()).map_err(plain)?;
            match dir {
                Some(d) => backup_offline(&d, &out),
                None => Err(CliError::usage(
                    "say where to back up from: --url URL --token-file FILE for a running daemon, \
                     or --data-dir DIR (or --config FILE) for a stopped one",
                )),
            }
        }
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

fn backup_offline(data_dir: &Path, out: &Path) -> Result<(BackupSummary, &'static str), CliError> {
    let store_dir = data_dir.join("store");
    if !store_dir.is_dir() {
        return Err(CliError::failed(format!(
            "there is no store in {}",
            data_dir.display()
        )));
    }
    let store = Store::open(&store_dir).map_err(|e| {
        store_error(
            e,
            "back it up through the daemon with --url URL --token-file FILE",
        )
    })?;
    let (partial, file) = partial_file(out)?;
    let written = {
        let mut w = std::io::BufWriter::new(file);
        store
            .backup(&mut w)
            .map_err(|e| CliError::failed(format!("the backup failed: {e}")))
            .and_then(|s| {
                w.flush()
                    .and_then(|()| w.get_ref().sync_all())
                    .map_err(|e| CliError::failed(format!("cannot write the backup: {e}")))
                    .map(|()| s)
            })
    };
    drop(store);
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
    Ok((summary, "daemon"))
}

pub fn restore(args: RestoreArgs) -> CmdResult {
    let who = operator(DEFAULT_TENANT);
    if args.check {
        let s = store_backup::verify(&args.input)
            .map_err(|e| plain(CliError::failed(e.to_string())))?;
        return Ok(Report {
            json: json!({ "file": args.input, "backup": s, "restored": false }),
            text: summary_text("Checked", &args.input, &s),
        });
    }
    let data_dir = data_dir_of(args.data_dir, args.config.as_deref())
        .map_err(plain)?
        .ok_or_else(|| {
            plain(CliError::usage(
                "say where to restore to: --data-dir DIR or --config FILE",
            ))
        })?;
    match store_backup::restore(&args.input, &data_dir) {
        Ok(s) => {
            record_step(
                None,
                &who,
                "restore",
                Some(&data_dir.display().to_string()),
                Outcome::Ok,
            );
            let mut text = summary_text("Restored", &args.input, &s);
            text.push_str(&format!(
                "  into {}. Start the daemon on the same token; put the admin token's secret \
                 back in {} if you use it (backups hold only token hashes).\n",
                data_dir.display(),
                data_dir.join("root-token").display()
            ));
            Ok(Report {
                json: json!({ "file": args.input, "data_dir": data_dir, "backup": s, "restored": true }),
                text,
            })
        }
        Err(e) => {
            let msg = e.to_string();
            record_step(None, &who, "restore", None, Outcome::Failed(&msg));
            Err(plain(CliError::failed(msg)))
        }
    }
}
