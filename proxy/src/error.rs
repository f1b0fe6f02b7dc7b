//! Errors by side, as pingora tags them.
//!
//! Only two sides can shape what the client sees, and [`ClientPathError`]
//! holds exactly those: the **downstream** (the client's own request failed
//! to arrive) and the **primary** (its answer could not be had), plus
//! **internal** faults. The **shadow** and **secondary** sides have their own
//! type, [`MirrorError`](crate::mirror::MirrorError), which is private to the
//! mirror task: it has no conversion into a response or into this type, and
//! the task that holds it returns `()`, so a shadow failure cannot reach the
//! client by construction — only a counter and a debug log.
//!
//! The one exception is opted into: with a canary configured, the shadow
//! *serves* the requests the canary picks. When it cannot answer one, the
//! primary takes the request over if that is safe; if not (a write that
//! may have happened), the client gets [`ClientPathError::CanaryUnavailable`].
//!
//! Each error maps to one answer in one place ([`ClientPathError::response`]),
//! with the project's machine-readable body `{"code":…,"message":…}`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::ResponseBody;
use crate::upstream::CallError;

/// The side an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client, or the connection to it.
    Downstream,
    /// The primary upstream.
    Primary,
    /// The shadow upstream (never client-visible).
    Shadow,
    /// The secondary upstream (never client-visible).
    Secondary,
    /// The proxy itself.
    Internal,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Downstream => "downstream",
            Side::Primary => "primary",
            Side::Shadow => "shadow",
            Side::Secondary => "secondary",
            Side::Internal => "internal",
        }
    }
}

/// An error on the client's path; it decides the client's answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientPathError {
    /// The client's request body broke off while the proxy read it.
    #[error("downstream: the request body could not be read: {0}")]
    DownstreamBody(#[source] hyper::Error),
    /// The client's body broke off while it streamed to the primary.
    #[error("downstream: the request body broke off while streaming to the primary")]
    DownstreamAborted,
    /// The primary could not be reached, or broke off before answering.
    #[error("primary: no answer: {0}")]
    PrimaryUnavailable(#[source] CallError),
    /// A request the canary gave the shadow broke off after it was sent,
    /// and its method is not idempotent, so the primary cannot take it over.
    #[error("shadow (serving as canary): no answer to a non-idempotent request: {0}")]
    CanaryUnavailable(#[source] CallError),
}

impl ClientPathError {
    pub fn side(&self) -> Side {
        match self {
            ClientPathError::DownstreamBody(_) | ClientPathError::DownstreamAborted => {
                Side::Downstream
            }
            ClientPathError::PrimaryUnavailable(_) => Side::Primary,
            ClientPathError::CanaryUnavailable(_) => Side::Shadow,
        }
    }

    /// The answer the client gets.
    pub fn response(&self) -> Response<ResponseBody> {
        let (status, code, message) = match self {
            ClientPathError::DownstreamBody(_) | ClientPathError::DownstreamAborted => (
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "request body could not be read",
            ),
            ClientPathError::PrimaryUnavailable(_) => PRIMARY_UNAVAILABLE,
            ClientPathError::CanaryUnavailable(_) => (
                StatusCode::BAD_GATEWAY,
                "canary_unavailable",
                "the canary upstream broke off; the request may have taken effect",
            ),
        };
        error_response(status, code, message)
    }
}

/// The answer when the primary could not be had (status, code, message):
/// [`ClientPathError::PrimaryUnavailable`]'s, and the raw HTTP/1.1 path's
/// ([`crate::h1`]), which writes it without a `Response`.
pub const PRIMARY_UNAVAILABLE: (StatusCode, &str, &str) = (
    StatusCode::BAD_GATEWAY,
    "primary_unavailable",
    "the primary upstream did not answer",
);

/// The machine-readable error body, `{"code":…,"message":…}`. Codes and
/// messages are fixed ASCII without characters needing JSON escapes.
pub fn error_body(code: &str, message: &str) -> String {
    format!(r#"{{"code":"{code}","message":"{message}"}}"#)
}

/// [`error_body`] with `status`, as a response.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    let body = Bytes::from(error_body(code, message));
    let mut response = Response::new(ResponseBody::local(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
