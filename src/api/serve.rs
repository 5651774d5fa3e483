//! The server loop: accept TCP, optionally TLS, HTTP/1.1 with hyper, and shut down
//! gracefully. axum::serve would do for plain HTTP, but it exposes neither the
//! header-read timeout nor the TLS handshake, so the loop is ours.
//!
//! Limits on slow clients: the TLS handshake and each request head must arrive within
//! `header_read_timeout` (which also closes idle keep-alive connections), and a whole
//! request must be answered within `request_timeout` (else 408 `request_timeout`).
//! At shutdown the listener closes, idle connections close, and requests in flight get
//! up to `request_timeout` (plus a margin) to finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt;

use super::metrics::MetricsOptions;
use super::tls::TlsReloader;
use super::{metrics, request_id, router, ApiError, AppState};
use crate::config::ServerTimeouts;

/// How the API is served.
pub struct ServeOptions {
    pub timeouts: ServerTimeouts,
    /// HTTPS when set.
    pub tls: Option<Arc<TlsReloader>>,
    /// `GET /metrics` when set (the recorder must be installed: [`metrics::install`]).
    pub metrics: Option<MetricsOptions>,
}

/// Extra time, past `request_timeout`, that shutdown waits for connections to close.
const DRAIN_MARGIN: Duration = Duration::from_secs(5);

/// The router with everything around it: request ids, access log, HTTP metrics,
/// `/metrics`, and the request timeout.
pub fn app(state: AppState, opts: &ServeOptions) -> Router {
    let mut app = router(state.clone());
    if let Some(m) = opts.metrics {
        let scrape = if m.unauthenticated_access {
            get(metrics::scrape_public)
        } else {
            get(metrics::scrape)
        };
        app = app.merge(Router::new().route("/metrics", scrape).with_state(state));
    }
    app.layer(middleware::from_fn_with_state(
        opts.timeouts.request,
        request_timeout,
    ))
    .layer(middleware::from_fn(request_id::observe))
}

/// 408 `request_timeout` for a request not answered in time. The connection is closed:
/// part of the request body may still be on the wire.
async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(timeout_s = limit.as_secs(), "request not completed in time");
            let mut resp = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request was not completed within {}s (server.request_timeout)",
                    limit.as_secs()
                ),
            )
            .into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

/// Counts open connections for `scaivault_http_connections_open`.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        ::metrics::gauge!("scaivault_http_connections_open").increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        ::metrics::gauge!("scaivault_http_connections_open").decrement(1.0);
    }
}

/// Serve until `shutdown` completes; then stop accepting, let requests in flight finish
/// (bounded by the request timeout) and return.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let pki = state.pki.clone();
    let refusals = state.throttle.refusals().clone();
    let sweeper = super::refusals::Sweeper::start(pki.clone(), refusals.clone());
    let app = app(state, &opts);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.timeouts.header_read)
        .keep_alive(true);
    let http = Arc::new(http);
    let graceful = GracefulShutdown::new();
    let handshake_timeout = opts.timeouts.header_read;
    tokio::pin!(shutdown);

    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let http = http.clone();
        let app = app.clone();
        let acceptor = opts
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.current()));
        tokio::spawn(async move {
            let _open = OpenConnection::new();
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req)
            });
            let result = match acceptor {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(tcp), service))
                        .await
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => return handshake_failed(peer, Some(&e)),
                            Err(_) => return handshake_failed(peer, None),
                        };
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let drain = opts.timeouts.request + DRAIN_MARGIN;
    tracing::info!(
        connections = graceful.count(),
        "no longer accepting; waiting for requests in flight"
    );
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            after_s = drain.as_secs(),
            "connections still open at the end of the grace period; closing them"
        );
    }
    // Requests have finished: the refusals counted in windows still open would be lost
    // with the process, so their summaries are written now (before the final head is
    // signed). A request still running past the grace period may add one after this; its
    // count is then lost.
    sweeper.stop().await;
    let pending = refusals.take_all();
    if !pending.is_empty() {
        if let Err(e) =
            tokio::task::spawn_blocking(move || super::refusals::write(&pki, pending)).await
        {
            tracing::error!(error = %e, "the refusal summary task failed");
        }
    }
    Ok(())
}

/// Count every failed handshake; log client-certificate refusals (what an operator of
/// mutual TLS wants to see) at info, and the rest — port probes, plain HTTP, timeouts —
/// only at debug, so load-balancer probes do not flood the log.
fn handshake_failed(peer: SocketAddr, error: Option<&std::io::Error>) {
    use tokio_rustls::rustls::Error as TlsError;
    ::metrics::counter!("scaivault_tls_handshake_failures_total").increment(1);
    let Some(error) = error else {
        tracing::debug!(%peer, "TLS handshake timed out");
        return;
    };
    let tls = error.get_ref().and_then(|e| e.downcast_ref::<TlsError>());
    match tls {
        Some(TlsError::NoCertificatesPresented | TlsError::InvalidCertificate(_)) => {
            tracing::info!(%peer, error = %error, "TLS handshake failed: client certificate refused")
        }
        _ => tracing::debug!(%peer, error = %error, "TLS handshake failed"),
    }
}
