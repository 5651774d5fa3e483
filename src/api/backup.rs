//! `GET /v1/sys/backup`: a consistent snapshot of the metadata store, streamed.
//!
//! CA keys are not in it (they never leave the token); see README "Backup and restore".

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use super::error::ApiError;
use super::extract::Caller;
use super::{blocking, AppState};
use crate::service::Principal;

/// The capability a caller needs for `/v1/sys` operations such as backups.
const SYS_CAPABILITY: &str = "sys";

/// A small local check until the service layer has a shared capability check.
fn require_capability(who: &Principal, cap: &str) -> Result<(), ApiError> {
    if who.capabilities.iter().any(|c| c == cap) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token lacks the {cap:?} capability"),
        ))
    }
}

pub async fn backup(State(st): State<AppState>, Caller(who): Caller) -> Result<Response, ApiError> {
    require_capability(&who, SYS_CAPABILITY)?;
    let pki = st.pki.clone();
    let token_id = who.token_id.clone();
    let started = std::time::Instant::now();
    let (file, summary) = blocking(move || pki.backup_snapshot()).await?;
    tracing::info!(token_id = %token_id, entries = summary.entries, files = summary.files,
        bytes = summary.bytes, sha256 = %summary.sha256,
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
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_token_with_the_sys_capability_may_take_a_backup() {
        let who = |caps: &[&str]| Principal {
            token_id: "tok_1".into(),
            tenant: "default".into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
        };
        assert!(require_capability(&who(&["sys", "admin"]), SYS_CAPABILITY).is_ok());
        let e = require_capability(&who(&["admin"]), SYS_CAPABILITY).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(e.code, "forbidden");
        assert!(require_capability(&who(&[]), SYS_CAPABILITY).is_err());
    }
}
