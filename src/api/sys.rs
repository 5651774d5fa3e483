//! `/v1/sys` endpoints: health.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::{blocking, AppState};

#[utoipa::path(get, path = "/v1/sys/health", tag = "sys", operation_id = "health",
    responses(
        (status = 200, description = "The token answered a round trip", body = super::openapi::Health),
        (status = 503, description = "The token cannot be reached", body = super::openapi::HealthUnavailable),
    ))]
/// 200 with the token's state when a real round trip to it works; 503 otherwise, so load
/// balancers and systemd watchdogs see a CA that cannot sign as down.
pub async fn health(State(st): State<AppState>) -> (StatusCode, Json<Value>) {
    let pki = st.pki.clone();
    match blocking(move || pki.token_status()).await {
        Ok(s) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "token": {
                    "label": s.label,
                    "state": "ready",
                    "manufacturer": s.manufacturer,
                    "model": s.model,
                    "serial": s.serial,
                    "sessions_open": s.sessions_open,
                    "sessions_idle": s.sessions_idle,
                }
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "token": {"label": st.token_label, "state": "unavailable"},
                "error": {"code": e.code, "message": e.message},
            })),
        ),
    }
}
