//! `GET /v1/sys/backup`: a consistent snapshot of the metadata store, streamed.
//!
//! CA keys are not in it (they never leave the token); see README "Backup and restore".
//! It is signed by the audit key in the token; `restore` checks that signature.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;

use super::error::ApiError;
use super::extract::Caller;
use super::{blocking, AppState};

#[utoipa::path(get, path = "/v1/sys/backup", tag = "sys", operation_id = "backup",
    responses((status = 200, description = "A consistent snapshot of the metadata store, one JSON object per line, signed by the audit key in the token (README, \"Backup and restore\")",
        content_type = "application/x-ndjson", body = String)))]
/// Needs `sys` (see `authz`).
pub async fn backup(State(st): State<AppState>, Caller(who): Caller) -> Result<Response, ApiError> {
    let pki = st.pki.clone();
    let token_id = who.token_id.clone();
    let started = std::time::Instant::now();
    let (file, summary) = blocking(move || pki.backup_snapshot()).await?;
    let key_sha256 = summary
        .signature
        .as_ref()
        .map(|s| s.key_sha256.clone())
        .unwrap_or_default();
    tracing::info!(token_id = %token_id, entries = summary.entries, files = summary.files,
        bytes = summary.bytes, sha256 = %summary.sha256, key_sha256 = %key_sha256,
        snapshot_ms = started.elapsed().as_millis() as u64, "backup taken");
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let name = format!(
        "attachment; filename=\"scaivault-pki-{}.backup\"",
        summary.created_at.replace(':', "")
    );
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(summary.bytes));
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&summary.sha256) {
        h.insert("x-scaivault-backup-sha256", v);
    }
    if let Ok(v) = HeaderValue::from_str(&key_sha256) {
        h.insert("x-scaivault-backup-key-sha256", v);
    }
    Ok(resp)
}
