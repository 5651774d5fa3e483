//! The HTTP front end: the only module that uses axum. Routes, JSON in and out,
//! authentication, and the mapping of errors to statuses (in `error`).

mod access;
mod audit;
mod authz;
mod backup;
mod ca;
mod certs;
mod crl;
mod csr;
mod error;
mod extract;
pub mod metrics;
pub mod openapi;
mod refusals;
pub mod request_id;
mod roles;
mod secret;
mod serve;
mod sys;
pub mod tls;
mod trust;
mod validate;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

pub use authz::{rules, AuthThrottle, Need, Rule};
pub use error::ApiError;
pub use request_id::RequestId;
pub use serve::{app, serve, ServeOptions};

use crate::service::{Pki, ServiceError};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pki: Arc<Pki>,
    /// For key URIs and health output.
    pub token_label: String,
    /// Failed authentications per client address.
    pub throttle: Arc<AuthThrottle>,
}

/// Run a blocking use case (token calls, disk flushes) off the async runtime.
///
/// At most `work_limit` of them run at once; the rest wait here, as cheap async tasks.
/// Without the bound, 64 concurrent requests become 64 OS threads contending for a
/// handful of token sessions and the store, and the machine spends its time switching
/// between them (measured: a quarter of all CPU in the scheduler at 64 connections).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = work_permit().await?;
    on_blocking_thread(f).await
}

async fn work_permit() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    work_limiter()
        .acquire()
        .await
        .map_err(|e| ApiError::internal(format!("work limiter closed: {e}")))
}

/// Run `f` on a blocking thread, with no work permit.
async fn on_blocking_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    // The request's span goes along, so the work's log lines carry its request id.
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(f)).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("blocking task failed: {e}"))),
    }
}

/// Wait for a certificate's record to be durable, outside the work limit: the wait is
/// for a shared flush, and the more requests share one, the cheaper each becomes.
async fn durable(
    st: &AppState,
    pending: crate::service::issue::Pending,
) -> Result<crate::service::issue::Issued, ApiError> {
    let pki = st.pki.clone();
    on_blocking_thread(move || pki.make_durable(pending)).await
}

/// Issue, sign, renew: `blocking` and `durable` in one trip to a blocking thread. The
/// work permit is given back before the wait for the flush, and the call's audit entry
/// goes into that same flush (`Pki::make_durable_audited`). One handoff fewer per
/// certificate, and one flush instead of two: measured in BENCHMARKS.md.
async fn issue_durably(
    st: &AppState,
    slot: &audit::AuditSlot,
    f: impl FnOnce() -> Result<crate::service::issue::Pending, ServiceError> + Send + 'static,
) -> Result<crate::service::issue::Issued, ApiError> {
    let permit = work_permit().await?;
    let pki = st.pki.clone();
    let slot = slot.clone();
    on_blocking_thread(move || {
        let pending = f()?;
        drop(permit);
        let event = slot.success_event(pending.id());
        let audited = event.is_some();
        let issued = pki.make_durable_audited(pending, event)?;
        if audited {
            slot.mark_recorded();
        }
        Ok(issued)
    })
    .await
}

static WORK_LIMIT: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();

/// Default bound on concurrent blocking work: enough to keep the token sessions busy and
/// give group commit something to batch, few enough to keep context switches down.
pub const DEFAULT_WORK_LIMIT: usize = 8;

fn work_limiter() -> &'static tokio::sync::Semaphore {
    WORK_LIMIT.get_or_init(|| tokio::sync::Semaphore::new(DEFAULT_WORK_LIMIT))
}

/// Set the bound on concurrent blocking work (once, before serving).
pub fn set_work_limit(n: usize) {
    let _ = WORK_LIMIT.set(tokio::sync::Semaphore::new(n.max(1)));
}

/// Request body limit unless `limits.max_body_bytes` says otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Paths the concurrency gate never refuses: health checks must answer while the daemon
/// is busy, or a load balancer takes a slow but healthy instance out.
const UNGATED_PATHS: [&str; 2] = ["/v1/sys/health", "/metrics"];

/// Refuse a request at once, with 429 `too_many_requests` and `Retry-After`, when
/// `limits.max_concurrent_requests` are already in flight. Refusing instead of queueing
/// keeps memory bounded (each request may hold a body) and tells clients to back off.
async fn concurrency_gate(
    axum::extract::State(gate): axum::extract::State<Arc<tokio::sync::Semaphore>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if UNGATED_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    match gate.try_acquire_owned() {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(_) => {
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "the daemon is handling as many requests as limits.max_concurrent_requests allows; retry shortly",
            )
            .into_response();
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            resp
        }
    }
}

pub fn router(state: AppState) -> Router {
    let limits = *state.pki.limits();
    let gate = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_requests));
    Router::new()
        .route("/v1/sys/health", get(sys::health))
        .route("/v1/openapi.json", get(openapi::document))
        .route(
            "/v1/sys/tenants",
            get(access::list_tenants).post(access::create_tenant),
        )
        .route(
            "/v1/auth/tokens",
            get(access::list_tokens).post(access::create_token),
        )
        .route("/v1/auth/tokens/self", get(access::token_self))
        .route(
            "/v1/auth/tokens/{id}",
            axum::routing::delete(access::revoke_token),
        )
        .route("/v1/audit", get(access::audit))
        .route("/v1/sys/backup", get(backup::backup))
        .route("/v1/pki/ca", get(ca::list).post(ca::create))
        .route("/v1/pki/ca/{id}", get(ca::get).patch(ca::patch))
        .route("/v1/pki/ca/{id}/certificate", get(ca::certificate))
        .route("/v1/pki/ca/{id}/crl", get(crl::get_full).post(crl::rebuild))
        .route("/v1/pki/ca/{id}/crl/delta", get(crl::get_delta))
        .route("/v1/pki/revoke", post(crl::revoke))
        .route("/v1/pki/unrevoke", post(crl::unrevoke))
        .route("/v1/pki/csr", get(csr::list).post(csr::generate))
        .route("/v1/pki/csr/import", post(csr::import))
        .route("/v1/pki/csr/{id}", get(csr::get))
        .route("/v1/pki/csr/{id}/approve", post(csr::approve))
        .route("/v1/pki/csr/{id}/reject", post(csr::reject))
        .route("/v1/pki/csr/{id}/sign", post(csr::sign))
        .route(
            "/v1/pki/trust-anchors",
            get(trust::list).post(trust::create),
        )
        .route(
            "/v1/pki/trust-anchors/{id}",
            get(trust::get).delete(trust::delete),
        )
        .route("/v1/pki/roles", get(roles::list).post(roles::create))
        .route(
            "/v1/pki/roles/{name}",
            get(roles::get).put(roles::replace).delete(roles::delete),
        )
        .route("/v1/pki/issue/{role}", post(certs::issue))
        .route("/v1/pki/sign/{role}", post(certs::sign))
        .route("/v1/pki/certificates", get(certs::list))
        .route("/v1/pki/certificates/import", post(certs::import))
        .route("/v1/pki/certificates/validate", post(validate::validate))
        .route("/v1/pki/certificates/{id}", get(certs::get))
        .route(
            "/v1/pki/certificates/{id}/private-key",
            post(certs::private_key),
        )
        .route("/v1/pki/certificates/{id}/renew", post(certs::renew))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(gate, concurrency_gate))
        .with_state(state)
}
