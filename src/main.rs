//! The `scaivault-pki` command: the daemon and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scaivault_pki::config::{Config, LogFormat};
use scaivault_pki::daemon;

#[derive(Parser)]
#[command(
    name = "scaivault-pki",
    version,
    about = "A CA daemon whose keys live in a PKCS#11 token"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Serve {
        /// The configuration file (TOML).
        #[arg(long, env = "SCAIVAULT_CONFIG")]
        config: PathBuf,
        /// Exit when standard input closes (for test harnesses).
        #[arg(long, hide = true)]
        exit_on_stdin_close: bool,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
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
        /// One JSON object on stdout instead of sentences.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// `audit verify`: say where the log breaks, if it does.
fn audit_verify(data_dir: &std::path::Path, expect_key: Option<&str>, json: bool) -> ExitCode {
    let store = match scaivault_pki::store::Store::open(&data_dir.join("store")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "scaivault-pki: cannot open the store in {} (is the daemon still running?): {e}",
                data_dir.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut rep = match scaivault_pki::service::audit::verify_log(&store) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scaivault-pki: cannot read the audit log: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(want) = expect_key {
        if rep.key_sha256.as_deref() != Some(&want.to_ascii_lowercase()) {
            rep.problems.insert(
                0,
                scaivault_pki::service::audit::Problem {
                    seq: 0,
                    what: format!(
                        "the store's audit key ({}) is not the expected key {want}",
                        rep.key_sha256.as_deref().unwrap_or("none")
                    ),
                },
            );
        }
    }
    let ok = rep.problems.is_empty();
    if json {
        println!("{}", serde_json::json!({"ok": ok, "report": rep}));
    } else {
        for p in &rep.problems {
            println!("BROKEN at entry {}: {}", p.seq, p.what);
        }
        println!(
            "{} entries, {} signed heads, last signed entry {}, {} entries after it not yet signed; audit key sha256 {}",
            rep.entries,
            rep.heads,
            rep.last_signed_seq.map_or("none".to_string(), |s| s.to_string()),
            rep.unsigned_tail,
            rep.key_sha256.as_deref().unwrap_or("none"),
        );
        println!(
            "{}",
            if ok {
                "audit log intact"
            } else {
                "audit log BROKEN"
            }
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Audit {
            command:
                AuditCommand::Verify {
                    data_dir,
                    expect_key_sha256,
                    json,
                },
        } => audit_verify(&data_dir, expect_key_sha256.as_deref(), json),
        Command::Serve {
            config,
            exit_on_stdin_close,
        } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("scaivault-pki: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(cfg.log_format);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("scaivault-pki: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = rt.block_on(daemon::run(
                cfg,
                daemon::Options {
                    exit_on_stdin_close,
                },
            ));
            // Everything that matters is flushed by now; don't wait on a blocking thread
            // that is still reading standard input (--exit-on-stdin-close).
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start");
                    eprintln!("scaivault-pki: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
