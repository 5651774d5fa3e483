//! Daemon start-up and shutdown: open the token and the store, make the bootstrap token,
//! bind, tell systemd we're ready, serve, and on SIGTERM let requests finish and flush.

use std::path::Path;
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::hsm::Token;
use crate::service::{Pki, Settings};
use crate::store::Store;

/// File in the data directory that receives the bound address (useful with port 0).
pub const LISTEN_ADDR_FILE: &str = "listen-addr";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the token: {0}")]
    Token(#[from] crate::hsm::HsmError),
    #[error("cannot open the store in {path}: {message}")]
    Store { path: String, message: String },
    #[error("{0}")]
    Io(String),
}

impl StartError {
    /// The process's exit status: 2 for a configuration mistake, 3 when the token refused
    /// the PIN (wrong, locked or expired), 1 for anything else. The systemd unit restarts
    /// on failure but not after 2 or 3 (`RestartPreventExitStatus=`): a restart cannot fix
    /// either, and a token that counts failed logins locks the PIN after a few.
    pub fn exit_status(&self) -> u8 {
        match self {
            StartError::Config(_) => 2,
            StartError::Token(crate::hsm::HsmError::PinIncorrect) => 3,
            _ => 1,
        }
    }
}

pub struct Options {
    /// Exit when standard input closes: lets a test harness tie the daemon's life to its own.
    pub exit_on_stdin_close: bool,
}

pub async fn run(cfg: Config, opts: Options) -> Result<(), StartError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| StartError::Io(format!("cannot create {}: {e}", cfg.data_dir.display())))?;
    restrict_dir(&cfg.data_dir);
    restrict_root_token(&cfg.data_dir.join(crate::service::auth::ROOT_TOKEN_FILE));

    // Install the signal handlers first: a SIGTERM that arrives right after READY=1 must
    // still mean "finish and flush", not the default "die now".
    let shutdown = shutdown_signal(opts.exit_on_stdin_close)?;

    // Bad TLS files stop the daemon before it touches the token.
    let timeouts = cfg.server.timeouts()?;
    let tls = cfg
        .tls
        .clone()
        .map(api::tls::TlsReloader::new)
        .transpose()?;
    reload_on_sighup(tls.clone())?;
    let metrics = if cfg.metrics.enabled {
        api::metrics::install().map_err(StartError::Io)?;
        api::metrics::spawn_upkeep();
        Some(api::metrics::MetricsOptions {
            unauthenticated_access: cfg.metrics.unauthenticated_access,
        })
    } else {
        None
    };

    if let Some(warning) = cfg.pin_file_exposure() {
        tracing::warn!("{warning}");
    }
    let token_cfg = cfg.token_config()?;
    let label = token_cfg.token_label.clone();
    let token = tokio::task::spawn_blocking(move || Token::open(token_cfg))
        .await
        .map_err(|e| StartError::Io(e.to_string()))??;
    tracing::info!(token = %label, module = %cfg.hsm.module.display(), "logged in to the token");

    let store_dir = cfg.data_dir.join("store");
    let store = Store::open_with_cache(&store_dir, Some(cfg.limits.store_cache_bytes as u64))
        .map_err(|e| StartError::Store {
            path: store_dir.display().to_string(),
            message: e.to_string(),
        })?;
    let pki = Arc::new(Pki::new(store, Arc::new(token), service_settings(&cfg)?));
    if let Some(id) = pki
        .ensure_bootstrap_token()
        .map_err(|e| StartError::Io(e.to_string()))?
    {
        tracing::info!(token_id = %id, file = %cfg.data_dir.join("root-token").display(),
            "created the bootstrap admin token");
    }

    let audit_key = pki
        .ensure_audit_key()
        .map_err(|e| StartError::Io(format!("cannot set up the audit signing key: {e}")))?;
    // A log behind the token's anchor lost signed entries (tampering, or a restore from an
    // older backup): serving on top of it would bury that, so stop and say what to do.
    let anchor = pki
        .audit_anchor_state()
        .map_err(|e| StartError::Io(format!("cannot compare the audit log with the token: {e}")))?;
    if let Some(problem) = anchor.problem() {
        return Err(StartError::Io(format!(
            "the audit log does not match the token's anchor: {problem}. If the store was \
             restored from an older backup, run `scaivault-pki audit accept-rollback --config \
             <file>` (it records the rollback in the log) and start again; otherwise treat it \
             as tampering"
        )));
    }
    tracing::info!(key_label = %audit_key.label, "audit log ready");
    let audit_signer = pki.start_audit_signer();
    let crl_worker = pki.start_crl_worker();
    // Twice the token sessions: every session stays busy while the rest hash, build
    // certificates or wait on a shared flush.
    api::set_work_limit(cfg.hsm.pool_size.saturating_mul(2));

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| StartError::Io(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Io(e.to_string()))?;
    std::fs::write(cfg.data_dir.join(LISTEN_ADDR_FILE), addr.to_string())
        .map_err(|e| StartError::Io(format!("cannot write the listen-addr file: {e}")))?;
    match (
        &tls,
        cfg.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some()),
    ) {
        (None, _) => tracing::info!(%addr, "listening (plain HTTP)"),
        (Some(_), false) => tracing::info!(%addr, "listening (HTTPS)"),
        (Some(_), true) => tracing::info!(%addr, "listening (HTTPS, mutual TLS)"),
    }
    sd_notify("READY=1");

    let (max_failures, window) = cfg.auth.throttle()?;
    let state = AppState {
        pki: pki.clone(),
        token_label: label,
        throttle: Arc::new(api::AuthThrottle::new(max_failures, window)),
    };
    let shutdown = async move {
        shutdown.await;
        sd_notify("STOPPING=1");
    };
    let serve_opts = api::ServeOptions {
        timeouts,
        tls,
        metrics,
    };
    api::serve(listener, state, serve_opts, shutdown)
        .await
        .map_err(|e| StartError::Io(e.to_string()))?;

    // Requests have finished: stop the CRL worker (a rebuild in progress completes),
    // make everything durable, and close the token sessions.
    pki.stop_crl_worker();
    if crl_worker.join().is_err() {
        tracing::error!("the CRL worker panicked");
    }
    pki.stop_audit_signer();
    if audit_signer.join().is_err() {
        tracing::error!("the audit head signer panicked");
    }
    if let Err(e) = pki.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
    let still_open = pki.close_token_sessions();
    if still_open > 0 {
        tracing::warn!(
            sessions = still_open,
            "token sessions still in use by requests past the grace period"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// What the use cases need from the configuration (the daemon and the command line).
pub fn service_settings(cfg: &Config) -> Result<Settings, crate::config::ConfigError> {
    Ok(Settings {
        data_dir: cfg.data_dir.clone(),
        public_base_url: cfg.public_base_url.clone(),
        crl: cfg.crl.settings()?,
        four_eyes: cfg.csr.four_eyes,
        limits: cfg.limits,
        audit: cfg.audit.settings()?,
    })
}

/// SIGHUP reloads the TLS certificate and key (and the client CAs). Without TLS there is
/// nothing to reload, but the signal must not kill the daemon either.
fn reload_on_sighup(tls: Option<Arc<api::tls::TlsReloader>>) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| StartError::Io(format!("cannot handle SIGHUP: {e}")))?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(tls) = &tls else {
                tracing::info!("SIGHUP: no [tls] configured, nothing to reload");
                continue;
            };
            let tls = tls.clone();
            match tokio::task::spawn_blocking(move || tls.reload()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "SIGHUP: TLS reload failed; still serving the previous certificate"
                ),
                Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload task failed"),
            }
        }
    });
    Ok(())
}

/// The data directory holds the root token and the store: owner only.
fn restrict_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot restrict the data directory to its owner");
    }
}

/// The bootstrap admin token's secret is written 0600, but a copy put back by hand (after
/// a restore, say) may not be: set it back at every start, as the data directory is.
fn restrict_root_token(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(file) else {
        return; // not made yet (first start), or removed on purpose
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return; // 0600 or stricter
    }
    match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
        Ok(()) => tracing::warn!(file = %file.display(), was = %format!("{mode:04o}"),
            "the root token file was readable or writable beyond its owner; set it to 0600"),
        Err(e) => tracing::warn!(file = %file.display(), error = %e,
            "cannot restrict the root token file to its owner"),
    }
}

fn shutdown_signal(
    exit_on_stdin_close: bool,
) -> Result<impl std::future::Future<Output = ()>, StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| StartError::Io(format!("cannot handle SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| StartError::Io(format!("cannot handle SIGINT: {e}")))?;
    Ok(async move {
        let stdin_closed = async {
            if !exit_on_stdin_close {
                return std::future::pending::<()>().await;
            }
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    // A signal is no reason to stop; the read goes on.
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read standard input; taking it as closed");
                        break;
                    }
                }
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
            _ = int.recv() => tracing::info!("SIGINT: finishing in-flight requests"),
            _ = stdin_closed => tracing::info!("standard input closed: shutting down"),
        }
    })
}

/// Tell systemd (Type=notify) about our state, when it asked to be told.
fn sd_notify(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}
