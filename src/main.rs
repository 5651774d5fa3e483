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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
            // Everything that matters is flushed by now. Don't wait on blocking threads
            // that never end by themselves (a read of standard input, a token call stuck
            // past the grace period).
            rt.shutdown_timeout(std::time::Duration::from_millis(500));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e @ daemon::StartError::Config(_)) => {
                    tracing::error!(error = %e, "cannot start");
                    eprintln!("scaivault-pki: {e}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start");
                    eprintln!("scaivault-pki: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
