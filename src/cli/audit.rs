//! `audit verify`: check the audit log's hash chain and signed heads offline and say
//! where it breaks.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{plain, store_error, CliError, CmdResult, Report};
use scaivault_pki::service::audit::{verify_log, Problem};
use scaivault_pki::store::Store;

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain and every signed head, offline (the daemon must be
    /// stopped: the store admits one process at a time). Exit 0 when intact, 1 when not.
    Verify {
        /// The daemon's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The audit key's SHA-256 (hex, of its SubjectPublicKeyInfo) as recorded when the
        /// log was set up; without it the key is trusted as the store records it.
        #[arg(long)]
        expect_key_sha256: Option<String>,
    },
}

pub fn run(args: AuditArgs) -> CmdResult {
    let AuditCommand::Verify {
        data_dir,
        expect_key_sha256,
    } = args.command;
    let store = Store::open(&data_dir.join("store")).map_err(|e| {
        plain(store_error(
            e,
            "stop the daemon first: the audit log is verified offline",
        ))
    })?;
    let mut rep = verify_log(&store)
        .map_err(|e| plain(CliError::failed(format!("cannot read the audit log: {e}"))))?;
    if let Some(want) = expect_key_sha256 {
        if rep.key_sha256.as_deref() != Some(want.to_ascii_lowercase().as_str()) {
            rep.problems.insert(
                0,
                Problem {
                    seq: 0,
                    what: format!(
                        "the store's audit key ({}) is not the expected key {want}",
                        rep.key_sha256.as_deref().unwrap_or("none")
                    ),
                },
            );
        }
    }
    let mut text = String::new();
    for p in &rep.problems {
        text.push_str(&format!("BROKEN at entry {}: {}\n", p.seq, p.what));
    }
    text.push_str(&format!(
        "{} entries, {} signed heads, last signed entry {}, {} entries after it not yet signed; audit key sha256 {}\n",
        rep.entries,
        rep.heads,
        rep.last_signed_seq
            .map_or("none".to_string(), |s| s.to_string()),
        rep.unsigned_tail,
        rep.key_sha256.as_deref().unwrap_or("none"),
    ));
    let broken = !rep.problems.is_empty();
    let first = rep.problems.first().map(|p| p.seq);
    let report = Report {
        json: json!({ "report": rep }),
        text: format!(
            "{text}{}\n",
            if broken {
                "audit log BROKEN"
            } else {
                "audit log intact"
            }
        ),
    };
    if broken {
        let at = first.unwrap_or(0);
        return Err((
            Some(report),
            CliError::failed(format!("the audit log is broken at entry {at}")),
        ));
    }
    Ok(report)
}
