//! `audit verify`: check the audit log's hash chain, signed heads and (with the token) its
//! anchor offline, and say where it breaks; `audit accept-rollback` after a restore.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{
    load_config, open_pki, open_token, operator, plain, store_error, CliError, CmdResult, Report,
};
use scaivault_pki::service::audit::{
    compare_with_anchor, token_anchor, verify_log, AnchorState, Problem,
};
use scaivault_pki::service::auth::DEFAULT_TENANT;
use scaivault_pki::store::Store;

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain and every signed head, offline (the daemon must be
    /// stopped: the store admits one process at a time). With `--config`, also compare the
    /// log with the anchor the token keeps, which is what shows signed entries removed
    /// from the end. Exit 0 when intact, 1 when not.
    Verify {
        /// The daemon's data directory (default with `--config`: the configured one).
        #[arg(long, required_unless_present = "config")]
        data_dir: Option<PathBuf>,
        /// The daemon's configuration: open its token and compare the log with the anchor.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The audit key's SHA-256 (hex, of its SubjectPublicKeyInfo) as recorded when the
        /// log was set up; without it the key is trusted as the store records it.
        #[arg(long)]
        expect_key_sha256: Option<String>,
    },
    /// After restoring an older backup: record in the log that the entries after it were
    /// lost, and anchor the log where it now ends (the daemon refuses to start on a log
    /// behind the token's anchor). The daemon must be stopped.
    AcceptRollback {
        /// The daemon's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

pub fn run(args: AuditArgs) -> CmdResult {
    match args.command {
        AuditCommand::Verify {
            data_dir,
            config,
            expect_key_sha256,
        } => verify(data_dir, config, expect_key_sha256),
        AuditCommand::AcceptRollback { config } => accept_rollback(&config),
    }
}

fn accept_rollback(config: &std::path::Path) -> CmdResult {
    let cfg = load_config(config).map_err(plain)?;
    let pki = open_pki(&cfg, "stop the daemon first").map_err(plain)?;
    let who = operator(DEFAULT_TENANT);
    let given_up = pki
        .accept_audit_rollback(&who.token_id)
        .map_err(|e| plain(CliError::failed(format!("cannot accept the rollback: {e}"))))?;
    Ok(match given_up {
        None => Report {
            json: json!({ "rolled_back": false }),
            text: "the audit log matches the token's anchor: nothing to accept\n".into(),
        },
        Some(anchor) => Report {
            text: format!(
                "recorded the rollback from entry {} (signed at {}) in the audit log; the \
                 token's anchor now follows the restored log\n",
                anchor.seq, anchor.signed_at
            ),
            json: json!({ "rolled_back": true, "given_up_anchor": anchor }),
        },
    })
}

fn verify(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    expect_key_sha256: Option<String>,
) -> CmdResult {
    let cfg = config
        .as_deref()
        .map(load_config)
        .transpose()
        .map_err(plain)?;
    let Some(data_dir) = data_dir.or_else(|| cfg.as_ref().map(|c| c.data_dir.clone())) else {
        return Err(plain(CliError::usage("give --data-dir or --config")));
    };
    let store_dir = data_dir.join("store");
    // Opening a store creates one: a mistyped directory would verify as an empty log.
    if !store_dir.is_dir() {
        return Err(plain(CliError::failed(format!(
            "there is no store in {}",
            data_dir.display()
        ))));
    }
    let store = Store::open(&store_dir).map_err(|e| {
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
    if let Some(cfg) = &cfg {
        let token = open_token(cfg).map_err(plain)?;
        let state = token_anchor(&store, &token)
            .and_then(|a| compare_with_anchor(&store, a))
            .map_err(|e| {
                plain(CliError::failed(format!(
                    "cannot read the token's anchor: {e}"
                )))
            })?;
        rep.anchor = match &state {
            AnchorState::Absent => "absent",
            AnchorState::Consistent(_) => "consistent",
            AnchorState::RolledBack { .. } => "rolled_back",
        };
        if let (Some(what), AnchorState::RolledBack { anchor, store_last }) =
            (state.problem(), &state)
        {
            rep.problems.push(Problem {
                seq: anchor.seq.min(store_last + 1),
                what,
            });
        }
    }
    let mut text = String::new();
    for p in &rep.problems {
        match p.seq {
            0 => text.push_str(&format!("BROKEN: {}\n", p.what)),
            seq => text.push_str(&format!("BROKEN at entry {seq}: {}\n", p.what)),
        }
    }
    for r in &rep.rollbacks_accepted {
        text.push_str(&format!("rollback accepted at {r}\n"));
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
    text.push_str(match rep.anchor {
        "consistent" => "the log matches the token's anchor\n",
        "absent" => "the token holds no anchor for this log yet\n",
        "rolled_back" => "the log is BEHIND the token's anchor\n",
        _ => {
            "not compared with the token's anchor (give --config): signed entries removed \
              from the end of the log show only there\n"
        }
    });
    let broken = !rep.problems.is_empty();
    let first = rep.problems.iter().map(|p| p.seq).min();
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
        let why = match first {
            Some(0) | None => "the audit log does not verify".to_string(),
            Some(at) => format!("the audit log is broken at entry {at}"),
        };
        return Err((Some(report), CliError::failed(why)));
    }
    Ok(report)
}
