//! The machine-readable error body shared by every twin.
//!
//! Every non-2xx answer is `{"code":"…","message":"…"}` with a fixed message
//! per code, so the Go and Rust twins agree byte for byte and the proxy can
//! diff them. Status codes are decided here, in one table, never ad hoc.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::json;

/// An error answer: status, stable code, fixed message and optional headers.
///
/// Cheap to build (all `'static`), so hot paths can return it without
/// allocating until the response is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
    /// `Retry-After` seconds, for 503s.
    pub retry_after_secs: Option<u32>,
    /// `Allow` header value, for 405s.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message,
            retry_after_secs: None,
            allow: None,
        }
    }

    pub const fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    pub const fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        );
        e.allow = Some(allow);
        e
    }

    pub const fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The JSON body, exactly as both twins write it.
    pub fn body(&self) -> String {
        let mut out = String::with_capacity(32 + self.message.len());
        out.push_str("{\"code\":");
        json::write_string(&mut out, self.code);
        out.push_str(",\"message\":");
        json::write_string(&mut out, self.message);
        out.push('}');
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body(),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// The fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_code_then_message_without_whitespace() {
        assert_eq!(
            ApiError::not_found().body(),
            r#"{"code":"not_found","message":"no such route"}"#
        );
    }

    #[test]
    fn method_not_allowed_carries_allow_header() {
        let response = ApiError::method_not_allowed("POST").into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "POST");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn retry_after_is_sent_in_seconds() {
        let e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "x", "y").with_retry_after(1);
        assert_eq!(e.into_response().headers()[header::RETRY_AFTER], "1");
    }
}
