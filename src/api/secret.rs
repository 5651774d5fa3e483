//! Responses that carry a secret: a private key, or a new API token's secret. The JSON is written once into memory that is wiped
//! when the response has been sent, and the secret's copy in the JSON value is wiped as
//! soon as it has been written out. (The bytes also pass through the kernel's socket buffers,
//! which no process can wipe.)

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

/// The top-level members of a [`SecretJson`] that hold secrets.
const SECRET_MEMBERS: [&str; 2] = ["private_key", "token"];

/// A JSON response whose `private_key` or `token` member is a secret.
pub struct SecretJson(pub StatusCode, pub Value);

/// Counts bytes, so the buffer can be sized once: growing a `Vec` would leave copies of
/// the secret behind in freed memory.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn wipe_secrets(v: &mut Value) {
    for m in SECRET_MEMBERS {
        if let Some(Value::String(s)) = v.get_mut(m) {
            s.zeroize();
        }
    }
}

impl IntoResponse for SecretJson {
    fn into_response(mut self) -> Response {
        let mut counter = Counter(0);
        let written = serde_json::to_writer(&mut counter, &self.1).is_ok();
        let mut buf = Zeroizing::new(Vec::with_capacity(counter.0));
        let written = written && serde_json::to_writer(&mut *buf, &self.1).is_ok();
        wipe_secrets(&mut self.1);
        if !written {
            return super::ApiError::internal("cannot serialize a response").into_response();
        }
        let mut resp = Response::new(Body::from(Bytes::from_owner(buf)));
        *resp.status_mut() = self.0;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_json_and_the_value_copy_is_wiped() {
        let mut v =
            serde_json::json!({"id": "cert_1", "private_key": "-----BEGIN EC PRIVATE KEY-----"});
        let mut counter = Counter(0);
        serde_json::to_writer(&mut counter, &v).unwrap();
        assert_eq!(counter.0, serde_json::to_vec(&v).unwrap().len());
        wipe_secrets(&mut v);
        assert_eq!(v["private_key"], "");
        assert_eq!(v["id"], "cert_1");
        let r = SecretJson(StatusCode::CREATED, serde_json::json!({"a": 1})).into_response();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
}
