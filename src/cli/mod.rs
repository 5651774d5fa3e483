//! The command line: `serve`, `init`, the key-ceremony commands, `backup` and `restore`.
//!
//! Every command prints one JSON object on standard output with `--json`, readable text
//! otherwise (command-line mistakes included). A failure is one plain sentence on
//! standard error and a non-zero exit: 2 for a usage or configuration mistake, 3 when the
//! token refused the PIN, 1 for anything else.

mod audit;
mod backup;
mod ceremony;
mod init;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use scaivault_pki::config::{Config, LogFormat};
use scaivault_pki::daemon;
use scaivault_pki::hsm::{HsmError, Token};
use scaivault_pki::service::{Pki, Principal, ServiceError};
use scaivault_pki::store::{Store, StoreError};

#[derive(Parser)]
#[command(
    name = "scaivault-pki",
    version,
    about = "A CA daemon whose keys live in a PKCS#11 token",
    after_help = EXIT_STATUS_HELP
)]
struct Cli {
    /// Print one JSON object on standard output (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The exit statuses, for `--help`; the README says the same.
const EXIT_STATUS_HELP: &str = "Exit status: 0 done; 1 failed; 2 a mistake in the command line or \
the configuration; 3 the token refused the PIN (wrong, locked or expired). The systemd unit \
does not restart the daemon after 2 or 3: retrying a refused PIN can lock it.";

/// Exit status for a mistake in the command line or the configuration.
const EXIT_USAGE: u8 = 2;
/// Exit status when the token refused the PIN: retrying cannot help, and on a token that
/// counts failed logins it locks the PIN, so it must be told apart from other failures.
const EXIT_PIN_REFUSED: u8 = 3;

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
    /// Check the token, create the store and the bootstrap admin token (safe to re-run).
    Init {
        /// The configuration file (TOML).
        #[arg(long, env = "SCAIVAULT_CONFIG")]
        config: PathBuf,
    },
    /// Key ceremonies on this host, without HTTP. All but `list-keys` need the daemon stopped.
    Ceremony(ceremony::CeremonyArgs),
    /// Write a consistent backup of the metadata store (not the CA keys: see README).
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty data directory.
    Restore(backup::RestoreArgs),
    /// The audit log.
    Audit(audit::AuditArgs),
}

/// A failure, as the user sees it: one sentence, and the exit status that sorts it.
#[derive(Debug)]
pub(crate) struct CliError {
    status: u8,
    message: String,
}

impl CliError {
    /// A mistake in the command line or the configuration: exit status 2.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError {
            status: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// Anything else that went wrong: exit status 1.
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        CliError {
            status: 1,
            message: message.into(),
        }
    }
}

impl From<ServiceError> for CliError {
    fn from(e: ServiceError) -> Self {
        CliError::failed(e.to_string())
    }
}

impl From<scaivault_pki::config::ConfigError> for CliError {
    fn from(e: scaivault_pki::config::ConfigError) -> Self {
        CliError::usage(e.to_string())
    }
}

/// What a command reports on success: its JSON object and its text for people.
pub(crate) struct Report {
    pub json: Value,
    pub text: String,
}

/// How a ceremony step ended, for the record.
pub(crate) enum Outcome<'a> {
    Ok,
    Failed(&'a str),
}

/// The one place every ceremony, init, backup and restore step is recorded.
///
/// With the store open (`pki`), the step goes into the audit log like an API call, as
/// action `ceremony.<step>` by `cli:<login name>`, and the chain head is signed at once
/// (no daemon runs to sign it later). Steps that fail before the store is open can only
/// be logged (target `scaivault_pki::audit`).
pub(crate) fn record_step(
    pki: Option<&Pki>,
    who: &Principal,
    action: &str,
    object_id: Option<&str>,
    outcome: Outcome<'_>,
) {
    let object = object_id.unwrap_or("-");
    match outcome {
        Outcome::Ok => tracing::info!(target: "scaivault_pki::audit", actor = %who.token_id,
            tenant = %who.tenant, action, object, outcome = "ok", "ceremony step"),
        Outcome::Failed(why) => tracing::warn!(target: "scaivault_pki::audit",
            actor = %who.token_id, tenant = %who.tenant, action, object, outcome = "failed",
            reason = why, "ceremony step"),
    }
    let Some(pki) = pki else {
        return;
    };
    let outcome = match outcome {
        Outcome::Ok => "success".to_string(),
        Outcome::Failed(why) => format!("error:{}", why.chars().take(200).collect::<String>()),
    };
    let ev = scaivault_pki::service::audit::AuditEvent {
        token_id: Some(who.token_id.clone()),
        tenant: Some(who.tenant.clone()),
        // Already qualified: `ceremony.create_root`, `init.bootstrap_token`, …
        action: action.to_string(),
        object_id: object_id.map(str::to_string),
        outcome,
        request_id: None,
    };
    if let Err(e) = pki.audit(ev) {
        eprintln!("scaivault-pki: warning: cannot write the audit log: {e}");
        return;
    }
    if let Err(e) = pki.sign_audit_head() {
        eprintln!("scaivault-pki: warning: cannot sign the audit log's head: {e}");
    }
}

/// Who acts when an operator runs a command on the host: `cli:<name>`, see
/// [`operator_name`].
pub(crate) fn operator(tenant: &str) -> Principal {
    let user = operator_name();
    let token_id = format!("cli:{user}");
    Principal {
        party: token_id.clone(),
        token_id,
        tenant: tenant.to_string(),
        capabilities: vec!["sys".into(), "admin".into()],
        expires_at: None,
    }
}

/// The operator as the audit log names them: the user name of the process's real uid
/// (`uid=N` when /etc/passwd has no entry for it), then ` (sudo from NAME)` when SUDO_USER
/// names someone else. USER and LOGNAME are not asked: anyone can set them, and the log
/// must say who ran the command. SUDO_USER can be set by anyone too, so it is only ever
/// added to the uid's name, never instead of it.
fn operator_name() -> String {
    let name = match real_uid() {
        Some(uid) => std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| passwd_name(&passwd, uid))
            .unwrap_or_else(|| format!("uid={uid}")),
        None => "unknown".to_string(),
    };
    match std::env::var("SUDO_USER") {
        Ok(sudo) if sudo != name && plausible_user_name(&sudo) => {
            format!("{name} (sudo from {sudo})")
        }
        _ => name,
    }
}

/// The real uid, from the kernel (`/proc/self/status`, else the owner of `/proc/self`),
/// so that no `unsafe` call to getuid(2) is needed.
fn real_uid() -> Option<u32> {
    if let Some(uid) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_real_uid(&s))
    {
        return Some(uid);
    }
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// `Uid:\treal\teffective\tsaved\tfs` in /proc/PID/status: the real one.
fn status_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// The name of `uid` in /etc/passwd's text (`name:x:uid:gid:…`), the first one listed.
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let listed: u32 = fields.nth(1)?.parse().ok()?;
        (listed == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// What a user name can look like; anything else in SUDO_USER is left out of the log.
fn plausible_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$'))
}

/// Read the configuration; a problem with it is a usage error.
pub(crate) fn load_config(path: &Path) -> Result<Config, CliError> {
    Ok(Config::load(path)?)
}

/// A store problem in words: above all, "the daemon has it open".
pub(crate) fn store_error(e: StoreError, hint: &str) -> CliError {
    match e {
        StoreError::Locked(_) => CliError::failed(format!("{e}; {hint}")),
        other => CliError::failed(format!("cannot open the store: {other}")),
    }
}

/// Open the store of an initialised data directory, then the token, as the daemon does.
/// The store comes first, so a running daemon is reported before the token is touched.
pub(crate) fn open_pki(cfg: &Config, hint: &str) -> Result<Pki, CliError> {
    open_pki_with(cfg, hint, || open_token(cfg).map(Arc::new))
}

/// [`open_pki`] with a token the caller may already hold (logged in once, not twice).
pub(crate) fn open_pki_with(
    cfg: &Config,
    hint: &str,
    token: impl FnOnce() -> Result<Arc<Token>, CliError>,
) -> Result<Pki, CliError> {
    let store_dir = cfg.data_dir.join("store");
    if !store_dir.is_dir() {
        return Err(CliError::failed(format!(
            "there is no store in {}; run `scaivault-pki init` first",
            cfg.data_dir.display()
        )));
    }
    let store = Store::open(&store_dir).map_err(|e| store_error(e, hint))?;
    Ok(Pki::new(store, token()?, daemon::service_settings(cfg)?))
}

/// Log in to the token. The PIN is `SCAIVAULT_HSM_PIN` if set, else `hsm.pin_file`
/// (see `Config::token_config_env_first`). A refused PIN has an exit status of its own.
pub(crate) fn open_token(cfg: &Config) -> Result<Token, CliError> {
    if cfg.cli_reads_pin_file() {
        if let Some(warning) = cfg.pin_file_exposure() {
            eprintln!("scaivault-pki: warning: {warning}");
        }
    }
    Token::open(cfg.token_config_env_first()?).map_err(|e| {
        let message = format!("cannot open the token: {e}");
        match e {
            HsmError::PinIncorrect => CliError {
                status: EXIT_PIN_REFUSED,
                message,
            },
            _ => CliError::failed(message),
        }
    })
}

/// An output file named on the command line. It is created (empty, mode 0600) before
/// any work is done, so that a path that cannot be written is refused before the token or
/// the store changes, and filled at the end. If it is never filled, or filling it fails,
/// it is removed again: no empty or half-written file is left behind.
///
/// Mode 0600: certificates and CSRs are public, but a ceremony directory often holds
/// other things, and the operator can widen it; a file made wider than wanted cannot be
/// narrowed after someone has read it.
pub(crate) struct OutFile {
    path: PathBuf,
    file: std::fs::File,
    written: bool,
}

impl OutFile {
    /// Create `path`, which must not exist yet (an existing file is never overwritten).
    /// `what` names it in the error: "certificate", "CSR".
    pub(crate) fn create(path: &Path, what: &str) -> Result<Self, CliError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                CliError::usage(if e.kind() == std::io::ErrorKind::AlreadyExists {
                    format!(
                        "the {what} file {} already exists; remove it or name another \
                         (an existing file is never overwritten)",
                        path.display()
                    )
                } else {
                    format!("cannot create the {what} file {}: {e}", path.display())
                })
            })?;
        Ok(OutFile {
            path: path.to_path_buf(),
            file,
            written: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Write `bytes` and sync them to disk.
    pub(crate) fn write(mut self, bytes: &[u8]) -> Result<(), CliError> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", self.path.display())))?;
        self.written = true;
        Ok(())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if !self.written {
            // Best effort: the failure that got us here is what the user hears about.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub(crate) fn read_text_file(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read the {what} {}: {e}", path.display())))
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(config: PathBuf, exit_on_stdin_close: bool) -> ExitCode {
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scaivault-pki: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(cfg.log_format, "info");
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
    // Everything that matters is flushed by now; don't wait on a blocking thread that is
    // still reading standard input (--exit-on-stdin-close).
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("scaivault-pki: {e}");
            ExitCode::from(e.exit_status())
        }
    }
}

/// Parse the command line and run the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return command_line_refused(&e),
    };
    let json_out = cli.json;
    let result = match cli.command {
        Command::Serve {
            config,
            exit_on_stdin_close,
        } => return serve(config, exit_on_stdin_close),
        other => {
            // Operator commands talk in their output; logs only when asked (RUST_LOG).
            init_logging(LogFormat::Text, "warn,scaivault_pki::audit=off");
            match other {
                Command::Init { config } => init::run(&config),
                Command::Ceremony(args) => ceremony::run(args),
                Command::Backup(args) => backup::backup(args),
                Command::Restore(args) => backup::restore(args),
                Command::Audit(args) => audit::run(args),
                Command::Serve { .. } => unreachable!("handled above"),
            }
        }
    };
    finish(json_out, result)
}

/// A command line clap refused (or `--help`, `--version`): clap's own text on standard
/// error (or output), and with `--json` also the one JSON object every run prints, so a
/// script reading standard output sees `"ok": false` rather than nothing.
fn command_line_refused(e: &clap::Error) -> ExitCode {
    // Before the command line is parsed, `--json` can only be looked for by hand; after
    // `--` it is an operand, not the option.
    let wants_json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if wants_json && e.use_stderr() {
        let rendered = e.render().to_string();
        // "error: …\n  details\n\nUsage: …": the part before the first blank line.
        let head = rendered.split("\n\n").next().unwrap_or_default();
        let message = sentence(head.trim_start().trim_start_matches("error:"));
        println!(
            "{}",
            json!({ "ok": false, "error": { "message": message } })
        );
        let _ = std::io::stdout().flush();
    }
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE))
}

/// Print the outcome and choose the exit status.
fn finish(json_out: bool, result: CmdResult) -> ExitCode {
    match result {
        Ok(report) => {
            if json_out {
                let mut v = report.json;
                if let Some(o) = v.as_object_mut() {
                    o.insert("ok".into(), Value::Bool(true));
                }
                println!("{v}");
            } else {
                print!("{}", report.text);
            }
            ExitCode::SUCCESS
        }
        Err((partial, e)) => {
            let sentence = sentence(&e.message);
            if json_out {
                let mut v = partial.map_or_else(|| json!({}), |p| p.json);
                if let Some(o) = v.as_object_mut() {
                    o.insert("ok".into(), Value::Bool(false));
                    o.insert("error".into(), json!({ "message": sentence }));
                }
                println!("{v}");
            } else if let Some(p) = partial {
                print!("{}", p.text);
            }
            eprintln!("scaivault-pki: {sentence}");
            ExitCode::from(e.status)
        }
    }
}

/// One line, ending with a full stop.
fn sentence(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.ends_with(['.', '!', '?']) {
        one_line
    } else {
        format!("{one_line}.")
    }
}

/// A command's outcome; a failure may still carry what it found (shown before the error).
pub(crate) type CmdResult = Result<Report, (Option<Report>, CliError)>;

/// A failure with nothing to show but its sentence.
pub(crate) fn plain(e: CliError) -> (Option<Report>, CliError) {
    (None, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_one_sentence() {
        assert_eq!(sentence("no such\n  thing"), "no such thing.");
        assert_eq!(sentence("done."), "done.");
    }

    #[test]
    fn the_operator_is_named_by_uid_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      broken line\n\
                      alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n";
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(passwd, 1001), None);
        let status = "Name:\tscaivault-pki\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(status_real_uid(status), Some(1000));
        assert!(real_uid().is_some());
        assert!(plausible_user_name("alice") && plausible_user_name("svc-ca.1"));
        assert!(!plausible_user_name("alice (root)") && !plausible_user_name(""));
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
