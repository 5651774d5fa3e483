//! The daemon's configuration: a TOML file, a few environment overrides, and the PIN.
//!
//! Unknown keys and bad values stop the daemon at start with a sentence naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::hsm::{Pin, TokenConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("no HSM PIN: set `hsm.pin_file` in the configuration or SCAIVAULT_HSM_PIN in the environment")]
    NoPin,
    #[error("configuration key `hsm.pin_file`: cannot read the PIN file {path}: {source}")]
    PinFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8200))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/scaivault-pki")
}

fn default_pool_size() -> usize {
    4
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub public_base_url: Option<String>,
    #[serde(default)]
    pub log_format: LogFormat,
    /// Plain HTTP on an address other than loopback exposes bearer tokens on the wire;
    /// it has to be asked for by name.
    #[serde(default)]
    pub allow_plaintext_non_loopback: bool,
    pub hsm: HsmConfig,
    #[serde(default)]
    pub crl: CrlConfig,
    #[serde(default)]
    pub csr: CsrConfig,
    /// HTTPS for the API; absent means plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[limits]`: bounds on what a request's input can make the daemon do.
    #[serde(default)]
    pub limits: crate::limits::Limits,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub auth: AuthConfig,
}

/// `[audit]`: when the audit chain's head is signed by the audit key in the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Sign the head after this many new entries...
    pub sign_every: u64,
    /// ...or this long after the oldest unsigned entry.
    pub sign_interval: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            sign_every: 100,
            sign_interval: "5m".into(),
        }
    }
}

impl AuditConfig {
    pub fn settings(&self) -> Result<crate::service::audit::AuditSettings, ConfigError> {
        if self.sign_every == 0 || self.sign_every > 1_000_000 {
            return Err(ConfigError::Invalid {
                key: "audit.sign_every",
                message: "must be between 1 and 1000000".into(),
            });
        }
        let interval =
            crate::policy::Ttl::parse(&self.sign_interval).map_err(|e| ConfigError::Invalid {
                key: "audit.sign_interval",
                message: e.to_string(),
            })?;
        if interval.as_secs() == 0 {
            return Err(ConfigError::Invalid {
                key: "audit.sign_interval",
                message: "must be at least 1s".into(),
            });
        }
        Ok(crate::service::audit::AuditSettings {
            sign_every: self.sign_every,
            sign_interval: std::time::Duration::from_secs(interval.as_secs()),
        })
    }
}

/// `[auth]`: throttling of failed authentications, per client address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Failed bearer-token checks allowed per address within `failure_window`...
    pub max_failures: u32,
    /// ...after which the address gets 429 until the window has passed.
    pub failure_window: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            max_failures: 20,
            failure_window: "1m".into(),
        }
    }
}

impl AuthConfig {
    /// (max failures, window)
    pub fn throttle(&self) -> Result<(u32, std::time::Duration), ConfigError> {
        if self.max_failures == 0 {
            return Err(ConfigError::Invalid {
                key: "auth.max_failures",
                message: "must be at least 1".into(),
            });
        }
        let w =
            crate::policy::Ttl::parse(&self.failure_window).map_err(|e| ConfigError::Invalid {
                key: "auth.failure_window",
                message: e.to_string(),
            })?;
        if w.as_secs() == 0 {
            return Err(ConfigError::Invalid {
                key: "auth.failure_window",
                message: "must be at least 1s".into(),
            });
        }
        Ok((
            self.max_failures,
            std::time::Duration::from_secs(w.as_secs()),
        ))
    }
}

/// `[tls]`: the API over HTTPS (rustls). The files are read again on SIGHUP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the server certificate first, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key_file: PathBuf,
    /// PEM: the CA certificates that client certificates must chain to (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: refuse clients without a certificate (default), or only
    /// check the ones that present one.
    #[serde(default)]
    pub require_client_cert: Option<bool>,
    /// The oldest TLS version offered.
    #[serde(default)]
    pub min_version: TlsVersion,
}

impl TlsConfig {
    /// Whether a client must present a certificate: only with a client CA, and then by
    /// default.
    pub fn client_cert_required(&self) -> bool {
        self.client_ca_file.is_some() && self.require_client_cert.unwrap_or(true)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// `[server]`: how long a client may take, so slow or idle clients cannot hold
/// connections (and, at shutdown, the process) forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Time to complete the TLS handshake and send a request's head; also how long an
    /// idle keep-alive connection stays open.
    pub header_read_timeout: String,
    /// Time for a whole request, body and handling included; past it the answer is 408.
    pub request_timeout: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: "10s".into(),
            request_timeout: "30s".into(),
        }
    }
}

/// The checked `[server]` timeouts.
#[derive(Debug, Clone, Copy)]
pub struct ServerTimeouts {
    pub header_read: std::time::Duration,
    pub request: std::time::Duration,
}

impl ServerConfig {
    pub fn timeouts(&self) -> Result<ServerTimeouts, ConfigError> {
        let header_read = seconds_in(
            "server.header_read_timeout",
            &self.header_read_timeout,
            1,
            300,
        )?;
        let request = seconds_in("server.request_timeout", &self.request_timeout, 1, 3600)?;
        Ok(ServerTimeouts {
            header_read,
            request,
        })
    }
}

/// A duration setting (`10s`, `2m`) between `min` and `max` seconds.
fn seconds_in(
    key: &'static str,
    value: &str,
    min: u64,
    max: u64,
) -> Result<std::time::Duration, ConfigError> {
    let t = crate::policy::Ttl::parse(value).map_err(|e| ConfigError::Invalid {
        key,
        message: e.to_string(),
    })?;
    if t.as_secs() < min || t.as_secs() > max {
        return Err(ConfigError::Invalid {
            key,
            message: format!("must be between {min}s and {max}s, not {value:?}"),
        });
    }
    Ok(std::time::Duration::from_secs(t.as_secs()))
}

/// `[metrics]`: `GET /metrics` in the Prometheus text format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Serve /metrics without a bearer token (for scrapers that cannot send one).
    pub unauthenticated_access: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            unauthenticated_access: false,
        }
    }
}

/// `[csr]`: the approval workflow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrConfig {
    /// The token that imported a CSR may not approve it (four-eyes principle).
    #[serde(default)]
    pub four_eyes: bool,
}

/// `[crl]`: how CRLs are kept fresh. Durations as in the API (`72h`, `1s`, `90m`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrlConfig {
    /// How long a published CRL is valid (nextUpdate - thisUpdate).
    pub next_update: String,
    /// How often every CA's CRL is rebuilt.
    pub rebuild_interval: String,
    /// Rebuild a CA's CRLs soon after a revocation.
    pub rebuild_on_revoke: bool,
    /// Quiet time after a revocation before the rebuild, so bursts coalesce.
    pub revoke_delay: String,
    /// Publish delta CRLs (and the Freshest CRL pointer, when public_base_url is set).
    pub delta: bool,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            next_update: "72h".into(),
            rebuild_interval: "1h".into(),
            rebuild_on_revoke: true,
            revoke_delay: "1s".into(),
            delta: true,
        }
    }
}

impl CrlConfig {
    /// The checked settings; a bad value names its key.
    pub fn settings(&self) -> Result<crate::service::crl::CrlSettings, ConfigError> {
        use crate::policy::Ttl;
        let parse = |key: &'static str, v: &str| {
            Ttl::parse(v).map_err(|e| ConfigError::Invalid {
                key,
                message: e.to_string(),
            })
        };
        let next_update = parse("crl.next_update", &self.next_update)?;
        let rebuild_interval = parse("crl.rebuild_interval", &self.rebuild_interval)?;
        let revoke_delay = parse("crl.revoke_delay", &self.revoke_delay)?;
        if next_update.as_secs() < 60 {
            return Err(ConfigError::Invalid {
                key: "crl.next_update",
                message: "must be at least 1m".into(),
            });
        }
        if rebuild_interval.as_secs() == 0 || rebuild_interval >= next_update {
            return Err(ConfigError::Invalid {
                key: "crl.rebuild_interval",
                message: "must be positive and shorter than crl.next_update, or relying parties see stale CRLs".into(),
            });
        }
        Ok(crate::service::crl::CrlSettings {
            next_update,
            rebuild_interval,
            rebuild_on_revoke: self.rebuild_on_revoke,
            revoke_delay: std::time::Duration::from_secs(revoke_delay.as_secs()),
            delta: self.delta,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    pub module: PathBuf,
    pub token_label: String,
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

impl Config {
    /// Read the file, apply `SCAIVAULT_DATA_DIR` and `SCAIVAULT_LISTEN`, and check values.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = parse_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        if let Ok(dir) = std::env::var("SCAIVAULT_DATA_DIR") {
            if !dir.is_empty() {
                cfg.data_dir = PathBuf::from(dir);
            }
        }
        if let Ok(listen) = std::env::var("SCAIVAULT_LISTEN") {
            if !listen.is_empty() {
                cfg.listen = listen.parse().map_err(|_| ConfigError::Invalid {
                    key: "listen",
                    message: format!("SCAIVAULT_LISTEN={listen:?} is not an address:port"),
                })?;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.audit.settings()?;
        self.auth.throttle()?;
        if self.hsm.pool_size == 0 || self.hsm.pool_size > 256 {
            return Err(ConfigError::Invalid {
                key: "hsm.pool_size",
                message: "must be between 1 and 256".into(),
            });
        }
        if self.hsm.token_label.is_empty() || self.hsm.token_label.len() > 32 {
            return Err(ConfigError::Invalid {
                key: "hsm.token_label",
                message: "must be 1 to 32 bytes (the PKCS#11 label field)".into(),
            });
        }
        if self.tls.is_none()
            && !self.listen.ip().is_loopback()
            && !self.allow_plaintext_non_loopback
        {
            return Err(ConfigError::Invalid {
                key: "listen",
                message: format!(
                    "{} is not a loopback address; plain HTTP there would expose bearer tokens. \
                     Configure [tls], or set allow_plaintext_non_loopback = true only behind a \
                     TLS-terminating proxy",
                    self.listen
                ),
            });
        }
        self.crl.settings()?;
        self.server.timeouts()?;
        if let Some(tls) = &self.tls {
            if tls.require_client_cert == Some(true) && tls.client_ca_file.is_none() {
                return Err(ConfigError::Invalid {
                    key: "tls.require_client_cert",
                    message: "needs tls.client_ca_file, the CAs client certificates must chain to"
                        .into(),
                });
            }
        }
        self.limits
            .check()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        if let Some(url) = &self.public_base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    key: "public_base_url",
                    message: "must start with http:// or https://".into(),
                });
            }
        }
        Ok(())
    }

    /// The token settings for the daemon: the PIN from `hsm.pin_file`, else
    /// `SCAIVAULT_HSM_PIN`. Never from the command line, where any user could read it in
    /// the process list.
    pub fn token_config(&self) -> Result<TokenConfig, ConfigError> {
        let pin = match &self.hsm.pin_file {
            Some(path) => read_pin_file(path)?,
            None => std::env::var("SCAIVAULT_HSM_PIN").map_err(|_| ConfigError::NoPin)?,
        };
        self.with_pin(pin)
    }

    /// The token settings for an operator command: `SCAIVAULT_HSM_PIN` when it is set,
    /// else `hsm.pin_file`. The other way round from the daemon, because under systemd
    /// `pin_file` names the service's credential, which exists only while the service
    /// runs, and ceremonies and `restore` checks run while it is stopped.
    pub fn token_config_env_first(&self) -> Result<TokenConfig, ConfigError> {
        match std::env::var("SCAIVAULT_HSM_PIN") {
            Ok(pin) if !pin.is_empty() => self.with_pin(pin),
            _ => self.token_config(),
        }
    }

    /// Whether the PIN in use comes from `hsm.pin_file` (and not from the environment)
    /// for an operator command; see [`Config::token_config_env_first`].
    pub fn cli_reads_pin_file(&self) -> bool {
        self.hsm.pin_file.is_some()
            && !matches!(std::env::var("SCAIVAULT_HSM_PIN"), Ok(p) if !p.is_empty())
    }

    /// A warning when `hsm.pin_file` can be read or changed by anyone but its owner:
    /// whoever reads the PIN can sign with every CA key, and whoever writes it can make
    /// the daemon lock the PIN with failed logins. `None` when it is private or unset (a
    /// file that cannot be read at all is reported by `token_config`).
    pub fn pin_file_exposure(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.hsm.pin_file.as_ref()?;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "the PIN file {} has mode {mode:04o}: group or others can use it; make it \
                 0600 (or 0400), owned by the user that reads it",
                path.display()
            )
        })
    }

    fn with_pin(&self, pin: String) -> Result<TokenConfig, ConfigError> {
        if pin.is_empty() {
            return Err(ConfigError::NoPin);
        }
        Ok(TokenConfig {
            module: self.hsm.module.clone(),
            token_label: self.hsm.token_label.clone(),
            pin: Pin::new(pin),
            pool_size: self.hsm.pool_size,
        })
    }
}

/// The PIN file's text without its trailing newline.
fn read_pin_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::PinFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(zeroize::Zeroizing::new(text)
        .trim_end_matches(['\n', '\r'])
        .to_string())
}

/// Parse the TOML into a [`Config`]; a failure names the key it is about
/// (`hsm.pool_size: invalid type …`), not just a line number.
fn parse_toml(text: &str) -> Result<Config, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path.is_empty() || path == "." {
            inner
        } else {
            format!("key `{path}`: {inner}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, String> {
        let c = parse_toml(s)?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    const MIN: &str = "[hsm]\nmodule = \"/m.so\"\ntoken_label = \"t\"\n";

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.hsm.pool_size, 4);
    }

    #[test]
    fn an_unknown_key_is_named_in_the_error() {
        let e = parse(&format!("lisen = \"127.0.0.1:1\"\n{MIN}")).unwrap_err();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn limits_take_defaults_and_refuse_zero_and_unknown_keys() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.limits, crate::limits::Limits::default());
        let c = parse(&format!("{MIN}[limits]\nmax_sans = 5\n")).unwrap();
        assert_eq!(c.limits.max_sans, 5);
        let e = parse(&format!("{MIN}[limits]\nmax_sans = 0\n")).unwrap_err();
        assert!(e.contains("limits.max_sans"), "{e}");
        let e = parse(&format!("{MIN}[limits]\nmax_sanz = 5\n")).unwrap_err();
        assert!(e.contains("max_sanz"), "{e}");
    }

    #[test]
    fn the_example_limits_are_the_defaults() {
        let example = include_str!("../hsm-config/scaivault-pki.toml");
        let table: toml::Table = toml::from_str(example).unwrap();
        let limits: crate::limits::Limits = table["limits"].clone().try_into().unwrap();
        assert_eq!(limits, crate::limits::Limits::default());
    }

    #[test]
    fn plaintext_on_a_public_address_must_be_asked_for() {
        let e = parse(&format!("listen = \"0.0.0.0:8200\"\n{MIN}")).unwrap_err();
        assert!(e.contains("listen"), "{e}");
        parse(&format!(
            "listen = \"0.0.0.0:8200\"\nallow_plaintext_non_loopback = true\n{MIN}"
        ))
        .unwrap();
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("listen = \"nowhere\"\n", "listen"),
            ("log_format = \"xml\"\n", "log_format"),
            ("public_base_url = \"ftp://x\"\n", "public_base_url"),
            (
                "allow_plaintext_non_loopback = \"yes\"\n",
                "allow_plaintext_non_loopback",
            ),
            ("[crl]\nnext_update = \"soon\"\n", "crl.next_update"),
            (
                "[crl]\nrebuild_interval = \"100h\"\n",
                "crl.rebuild_interval",
            ),
            ("[crl]\ndelta = 1\n", "crl.delta"),
            ("[csr]\nfour_eyes = \"no\"\n", "csr.four_eyes"),
            (
                "[server]\nrequest_timeout = \"0s\"\n",
                "server.request_timeout",
            ),
            (
                "[server]\nheader_read_timeout = \"1h\"\n",
                "server.header_read_timeout",
            ),
            ("[server]\nidle = \"1h\"\n", "idle"),
            ("[metrics]\nenabled = \"on\"\n", "metrics.enabled"),
            ("[tls]\ncert_file = \"/c\"\n", "key_file"),
            (
                "[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\nmin_version = \"1.1\"\n",
                "tls.min_version",
            ),
            (
                "[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\nrequire_client_cert = true\n",
                "tls.require_client_cert",
            ),
        ];
        for (snippet, key) in cases {
            // [hsm] first, so the snippet's table (if any) does not swallow its keys.
            let text = if snippet.starts_with('[') {
                format!("{MIN}{snippet}")
            } else {
                format!("{snippet}{MIN}")
            };
            let e = parse(&text).expect_err(snippet);
            println!("{snippet:?} -> {e}");
            assert!(
                e.contains(key),
                "{snippet:?}: the error does not name {key}: {e}"
            );
        }
        for (snippet, key) in [
            ("pool_size = 0\n", "hsm.pool_size"),
            ("pool_size = \"four\"\n", "hsm.pool_size"),
            ("token_label = \"\"\n", "hsm.token_label"),
        ] {
            let text = format!(
                "[hsm]\nmodule = \"/m.so\"\n{snippet}{}",
                if snippet.starts_with("token_label") {
                    ""
                } else {
                    "token_label = \"t\"\n"
                }
            );
            let e = parse(&text).expect_err(snippet);
            println!("{snippet:?} -> {e}");
            assert!(
                e.contains(key),
                "{snippet:?}: the error does not name {key}: {e}"
            );
        }
    }

    #[test]
    fn a_pin_file_others_can_read_is_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        std::fs::write(&pin, "1234\n").unwrap();
        let mut c = parse(MIN).unwrap();
        assert_eq!(c.pin_file_exposure(), None, "no pin_file, nothing to say");
        c.hsm.pin_file = Some(pin.clone());
        for (mode, exposed) in [(0o600, false), (0o400, false), (0o640, true), (0o644, true)] {
            std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(mode)).unwrap();
            let w = c.pin_file_exposure();
            assert_eq!(w.is_some(), exposed, "{mode:o}: {w:?}");
            if let Some(w) = w {
                assert!(w.contains(&format!("{mode:04o}")), "{w}");
            }
        }
        assert_eq!(c.token_config().unwrap().pool_size, 4);
    }

    #[test]
    fn tls_lifts_the_loopback_rule() {
        parse(&format!(
            "listen = \"0.0.0.0:8200\"\n{MIN}[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn the_example_configuration_is_valid_with_and_without_its_tls_section() {
        let text = include_str!("../hsm-config/scaivault-pki.toml");
        let plain = parse(text).unwrap();
        assert!(plain.tls.is_none());
        // Uncomment the `# key = value` lines from `# [tls]` on.
        let mut in_tls = false;
        let mut with_tls = String::new();
        for line in text.lines() {
            if line == "# [tls]" {
                in_tls = true;
            }
            let uncommented = line.strip_prefix("# ").filter(|l| {
                in_tls
                    && (l.starts_with('[')
                        || l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')))
            });
            with_tls.push_str(uncommented.unwrap_or(line));
            with_tls.push('\n');
        }
        let c = parse(&with_tls).unwrap();
        let tls = c.tls.expect("the [tls] example");
        assert!(tls.client_ca_file.is_some() && tls.client_cert_required());
        assert_eq!(tls.min_version, TlsVersion::Tls12);
    }
}
