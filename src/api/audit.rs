//! The audit middleware: after each request, one audit entry for every state-changing
//! call (whatever its outcome), every private-key retrieval and every refused
//! authorization. Reads that succeed are not recorded. Refusals with no authenticated
//! caller are folded per client address and window (see `refusals`): the first has its
//! entry, the rest one summary entry.
//!
//! It runs as a route layer, after routing, so it knows the route template; the `Caller`
//! extractor tells it who called through an [`AuditSlot`] in the request's extensions.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ErrorCode;
use super::{authz, AppState};
use crate::service::audit::AuditEvent;
use crate::service::Principal;

/// Header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Shared between the middleware and the request: the `Caller` extractor fills in the
/// caller; a handler that writes the call's entry itself (issuance, in the same flush as
/// the certificate) marks it recorded so the middleware does not write a second one.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<SlotState>>);

#[derive(Default)]
struct SlotState {
    /// Token id and tenant.
    caller: Option<(String, String)>,
    /// The route's audit action, when it has one.
    action: Option<&'static str>,
    request_id: String,
    recorded: bool,
}

impl AuditSlot {
    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, who: &Principal) {
        self.state().caller = Some((who.token_id.clone(), who.tenant.clone()));
    }

    fn get(&self) -> Option<(String, String)> {
        self.state().caller.clone()
    }

    /// The entry for this call succeeding on `object_id`, if the route is audited and
    /// the caller known; the handler writes it and then calls `mark_recorded`.
    pub fn success_event(&self, object_id: &str) -> Option<AuditEvent> {
        let st = self.state();
        let (token_id, tenant) = st.caller.clone()?;
        Some(AuditEvent {
            token_id: Some(token_id),
            tenant: Some(tenant),
            action: st.action?.to_string(),
            object_id: Some(object_id.to_string()),
            outcome: "success".into(),
            request_id: Some(st.request_id.clone()),
        })
    }

    pub fn mark_recorded(&self) {
        self.state().recorded = true;
    }
}

/// A handler's view of the slot; outside the audit layer (never, for audited routes) a
/// fresh one, which no middleware reads.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AuditSlot {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<AuditSlot>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The request id: the one the outer layer gave the request (also on its log lines and
/// in the response), else the client's when it is a sane token, else a new one.
fn request_id(req: &Request) -> String {
    if let Some(id) = req.extensions().get::<super::RequestId>() {
        return id.0.clone();
    }
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| crate::types::new_id("req"))
}

/// The value of `{name}` in `path` for the route template `route`.
pub fn path_param(route: &str, path: &str, name: &str) -> Option<String> {
    let want = format!("{{{name}}}");
    route
        .split('/')
        .zip(path.split('/'))
        .find(|(t, _)| *t == want)
        .map(|(_, v)| v.to_string())
}

/// The first path parameter's value, whatever its name.
fn first_path_param(route: &str, path: &str) -> Option<String> {
    route
        .split('/')
        .zip(path.split('/'))
        .find(|(t, _)| t.starts_with('{'))
        .map(|(_, v)| v.to_string())
}

/// Largest response body inspected for the created object's id; only JSON bodies of a
/// known size are, so a streamed body (a backup) passes untouched.
const MAX_INSPECTED_BODY: usize = 4 * 1024 * 1024;

pub async fn record(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let rid = request_id(&req);
    if let Ok(v) = HeaderValue::from_str(&rid) {
        req.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let action = authz::rule_for(&method, &route).and_then(|r| r.action);
    let slot = AuditSlot::default();
    {
        let mut st = slot.state();
        st.action = action;
        st.request_id = rid.clone();
    }
    req.extensions_mut().insert(slot.clone());

    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }

    let status = resp.status();
    let code = resp.extensions().get::<ErrorCode>().map(|c| c.0);
    let refused = status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || code == Some("too_many_auth_failures")
        || code == Some("invalid_authorization");
    if (action.is_none() && !refused) || slot.state().recorded {
        return resp;
    }
    let action = action.unwrap_or("read");

    // The object: what the call created or acted on (its `id`), else the path's id.
    let mut object_id = None;
    let small_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
        && axum::body::HttpBody::size_hint(resp.body())
            .exact()
            .is_some_and(|n| n <= MAX_INSPECTED_BODY as u64);
    if status.is_success() && small_json {
        let (parts, body) = resp.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_INSPECTED_BODY).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a response body for the audit log");
                axum::body::Bytes::new()
            }
        };
        object_id = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                ["id", "name"]
                    .iter()
                    .find_map(|k| v.get(*k).and_then(|x| x.as_str()).map(str::to_string))
            });
        resp = Response::from_parts(parts, Body::from(bytes));
    }
    let object_id = object_id.or_else(|| first_path_param(&route, &path));
    let outcome = if status.is_success() {
        "success".to_string()
    } else {
        format!("error:{}", code.unwrap_or(status.as_str()))
    };
    let (token_id, tenant) = match slot.get() {
        Some((t, n)) => (Some(t), Some(n)),
        None => (None, None),
    };
    let authenticated = token_id.is_some();
    let ev = AuditEvent {
        token_id,
        tenant,
        action: action.to_string(),
        object_id,
        outcome,
        request_id: Some(rid),
    };
    let (summaries, own) = if authenticated {
        (Vec::new(), Some(ev))
    } else {
        // Nobody to hold to account and no cost to the sender: one entry per window and
        // address, the rest counted into a summary (see `refusals`).
        let noted = st.throttle.refusals().note(peer, &ev.outcome);
        (noted.summaries, noted.own_entry.then_some(ev))
    };
    if summaries.is_empty() && own.is_none() {
        return resp;
    }
    let pki = st.pki.clone();
    let appended = tokio::task::spawn_blocking(move || {
        super::refusals::write(&pki, summaries);
        own.map(|ev| pki.audit(ev))
    });
    match appended.await {
        Ok(None | Some(Ok(_))) => {}
        Ok(Some(Err(e))) => tracing::error!(error = %e, "cannot append to the audit log"),
        Err(e) => tracing::error!(error = %e, "the audit append task failed"),
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_params_come_from_the_template_position() {
        assert_eq!(
            path_param("/v1/pki/issue/{role}", "/v1/pki/issue/web", "role").as_deref(),
            Some("web")
        );
        assert_eq!(
            path_param("/v1/pki/issue/{role}", "/v1/pki/issue/web", "id"),
            None
        );
        assert_eq!(
            first_path_param("/v1/pki/ca/{id}/crl", "/v1/pki/ca/ca_1/crl").as_deref(),
            Some("ca_1")
        );
    }
}
