//! `GET /metrics`: the Prometheus text format.
//!
//! Counters and histograms are recorded where things happen through the `metrics` facade
//! (HTTP here, token signatures in `ca`, issuance in `service`); what describes the
//! present state — token health, every CA's CRL age and size — is read at scrape time.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::error::ApiError;
use super::extract::Caller;
use super::{blocking, AppState};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds; from a fast cached GET to a slow RSA-4096 key generation.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Seconds; SoftHSM2 signs P-256 in ~50 µs, network HSMs take milliseconds.
const SIGN_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Whether `/metrics` needs a bearer token (the `[metrics]` section).
#[derive(Debug, Clone, Copy)]
pub struct MetricsOptions {
    pub unauthenticated_access: bool,
}

/// Install the process-wide recorder (once; later calls do nothing).
pub fn install() -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("scaivault_http_request_duration_seconds".into()),
            HTTP_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("scaivault_token_sign_duration_seconds".into()),
                SIGN_BUCKETS,
            )
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let _ = HANDLE.set(handle);
    describe();
    metrics::gauge!("scaivault_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "scaivault_http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "scaivault_http_request_duration_seconds",
        Unit::Seconds,
        "Time from the request's head to the response's head, by method and route template"
    );
    describe_gauge!(
        "scaivault_http_connections_open",
        "Client connections currently open"
    );
    describe_counter!(
        "scaivault_tls_handshake_failures_total",
        "TLS handshakes that failed or timed out (includes clients refused by mutual TLS)"
    );
    describe_counter!(
        "scaivault_tls_reloads_total",
        "Reloads of the TLS certificate on SIGHUP, by result (ok, error)"
    );
    describe_gauge!(
        "scaivault_tls_certificate_not_after_timestamp_seconds",
        Unit::Seconds,
        "notAfter of the TLS server certificate in use, as a Unix time"
    );
    describe_histogram!(
        "scaivault_token_sign_duration_seconds",
        Unit::Seconds,
        "Time the key token took to sign a digest, by signed object and algorithm"
    );
    describe_counter!(
        "scaivault_token_sign_errors_total",
        "Signatures the key token failed to make, by signed object and algorithm"
    );
    describe_counter!(
        "scaivault_certificates_issued_total",
        "Certificates issued and durably recorded, by issuing CA and kind (leaf, ca)"
    );
    describe_gauge!(
        "scaivault_token_up",
        "1 when a round trip to the key token works, else 0"
    );
    describe_gauge!(
        "scaivault_token_sessions_open",
        "Logged-in token sessions open"
    );
    describe_gauge!(
        "scaivault_token_sessions_idle",
        "Logged-in token sessions not in use"
    );
    describe_gauge!(
        "scaivault_crl_age_seconds",
        Unit::Seconds,
        "Seconds since the thisUpdate of the CA's published CRL (crl = full or delta)"
    );
    describe_gauge!(
        "scaivault_crl_expires_in_seconds",
        Unit::Seconds,
        "Seconds until the nextUpdate of the CA's published CRL; negative when stale"
    );
    describe_gauge!(
        "scaivault_crl_size_bytes",
        Unit::Bytes,
        "DER size of the CA's published CRL"
    );
    describe_gauge!("scaivault_crl_entries", "Entries in the CA's published CRL");
    describe_gauge!(
        "scaivault_crl_number",
        "CRL number of the CA's published CRL"
    );
    describe_gauge!(
        "scaivault_build_info",
        "Always 1; the version label says which build"
    );
}

/// Samples recorded but not yet scraped are folded into the histograms now and then, so
/// a daemon nobody scrapes does not keep them all.
pub fn spawn_upkeep() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if let Some(h) = HANDLE.get() {
                h.run_upkeep();
            }
        }
    });
}

pub(super) fn record_request(method: &'static str, route: &str, status: u16, elapsed: Duration) {
    metrics::counter!(
        "scaivault_http_requests_total",
        "method" => method,
        "route" => route.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        "scaivault_http_request_duration_seconds",
        "method" => method,
        "route" => route.to_string()
    )
    .record(elapsed.as_secs_f64());
}

#[utoipa::path(get, path = "/metrics", tag = "sys", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition format",
        content_type = "text/plain", body = String)))]
/// `GET /metrics` with a bearer token; the access rule (`authz`) asks for `sys`, since
/// the metrics span every tenant.
pub(super) async fn scrape(
    State(st): State<AppState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    render(st).await
}

/// `GET /metrics` for anyone, with `[metrics] unauthenticated_access = true`.
pub(super) async fn scrape_public(State(st): State<AppState>) -> Result<Response, ApiError> {
    render(st).await
}

async fn render(st: AppState) -> Result<Response, ApiError> {
    let Some(handle) = HANDLE.get() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are disabled",
        ));
    };
    let pki = st.pki.clone();
    let token = blocking(move || pki.token_status()).await;
    match token {
        Ok(s) => {
            metrics::gauge!("scaivault_token_up").set(1.0);
            metrics::gauge!("scaivault_token_sessions_open").set(s.sessions_open as f64);
            metrics::gauge!("scaivault_token_sessions_idle").set(s.sessions_idle as f64);
        }
        Err(_) => metrics::gauge!("scaivault_token_up").set(0.0),
    }
    let pki = st.pki.clone();
    match blocking(move || pki.crl_gauges()).await {
        Ok(crls) => {
            let now = crate::types::now();
            for c in crls {
                let labels = [("ca_id", c.ca_id.clone()), ("crl", c.kind.to_string())];
                let age = (now - c.this_update).as_seconds_f64();
                let left = (c.next_update - now).as_seconds_f64();
                metrics::gauge!("scaivault_crl_age_seconds", &labels).set(age);
                metrics::gauge!("scaivault_crl_expires_in_seconds", &labels).set(left);
                metrics::gauge!("scaivault_crl_size_bytes", &labels).set(c.size_bytes as f64);
                metrics::gauge!("scaivault_crl_entries", &labels).set(c.entries as f64);
                metrics::gauge!("scaivault_crl_number", &labels).set(c.number as f64);
            }
        }
        Err(e) => tracing::warn!(code = e.code, "cannot read CRL state for /metrics"),
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}
