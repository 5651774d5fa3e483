//! HTTPS for the API: the rustls server configuration built from the `[tls]` files, and
//! its reload on SIGHUP.
//!
//! Each accepted connection takes the configuration current at that moment, so a reload
//! changes what new handshakes see while established connections keep the one they
//! started with. A reload that fails (a missing file, a key that does not match the
//! certificate) changes nothing and is logged.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use crate::config::{ConfigError, TlsConfig, TlsVersion};

/// The live server configuration, swapped whole on reload.
pub struct TlsReloader {
    settings: TlsConfig,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsReloader {
    /// Read the files once; any problem stops the daemon with the key it is about.
    pub fn new(settings: TlsConfig) -> Result<Arc<Self>, ConfigError> {
        let (config, expiry) = build(&settings)?;
        log_loaded(&settings, expiry, "TLS certificate loaded");
        Ok(Arc::new(TlsReloader {
            settings,
            current: RwLock::new(config),
        }))
    }

    /// The configuration for a connection accepted now.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Read the files again. On success new handshakes use them; on failure the old
    /// certificate stays in use and the error is returned for the log.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let result = build(&self.settings);
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("scaivault_tls_reloads_total", "result" => outcome).increment(1);
        let (config, expiry) = result?;
        log_loaded(&self.settings, expiry, "TLS certificate reloaded");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }
}

fn log_loaded(settings: &TlsConfig, not_after: Option<i64>, what: &str) {
    if let Some(t) = not_after {
        metrics::gauge!("scaivault_tls_certificate_not_after_timestamp_seconds").set(t as f64);
    }
    tracing::info!(
        cert_file = %settings.cert_file.display(),
        not_after = not_after.unwrap_or_default(),
        mutual_tls = settings.client_ca_file.is_some(),
        client_cert_required = settings.client_cert_required(),
        "{what}"
    );
}

/// The server certificate's notAfter (Unix seconds), for the expiry gauge.
fn not_after(leaf: &CertificateDer<'_>) -> Option<i64> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(leaf.as_ref()).ok()?;
    let t = cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration();
    i64::try_from(t.as_secs()).ok()
}

fn invalid(key: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { key, message }
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            invalid(
                key,
                format!("cannot read certificates from {}: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            key,
            format!("{} holds no PEM CERTIFICATE block", path.display()),
        ));
    }
    Ok(certs)
}

/// The server configuration and the certificate's notAfter.
type Built = (Arc<rustls::ServerConfig>, Option<i64>);

fn build(settings: &TlsConfig) -> Result<Built, ConfigError> {
    let chain = read_certs("tls.cert_file", &settings.cert_file)?;
    let expiry = not_after(&chain[0]);
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|e| {
        invalid(
            "tls.key_file",
            format!(
                "cannot read a private key from {}: {e}",
                settings.key_file.display()
            ),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| invalid("tls.min_version", e.to_string()))?;
    let builder = match &settings.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("tls.client_ca_file", path)? {
                roots.add(cert).map_err(|e| {
                    invalid(
                        "tls.client_ca_file",
                        format!("{}: not a usable CA certificate: {e}", path.display()),
                    )
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if settings.client_cert_required() {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| invalid("tls.client_ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        invalid(
            "tls.key_file",
            format!(
                "the key in {} cannot serve the certificate in {}: {e}",
                settings.key_file.display(),
                settings.cert_file.display()
            ),
        )
    })?;
    // HTTP/1.1 only: the header-read timeout and graceful close that keep slow clients
    // in check are HTTP/1.1 mechanisms (see `serve`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), expiry))
}
