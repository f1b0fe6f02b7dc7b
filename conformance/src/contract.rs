//! The ingest contract's fixed texts and limits (`docs/contract-ingest.md`),
//! and assertions that compare answers with a contract's texts byte for byte
//! (shared by every contract through [`ErrorAnswer`]).

use std::fmt::{Debug, Display};

use crate::http::{Request, Response};
use crate::parity::excerpt;
use crate::service::Service;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 8_388_608;
/// Most events in one batch.
pub const MAX_EVENTS: usize = 10_000;
/// Longest `event_id`, in UTF-8 bytes.
pub const MAX_EVENT_ID_BYTES: usize = 128;
/// Longest `tenant_id`, in UTF-8 bytes.
pub const MAX_TENANT_ID_BYTES: usize = 64;
/// Largest `payload`.
pub const MAX_PAYLOAD_BYTES: usize = 65_536;

/// The protobuf media type of requests and responses.
pub const PROTOBUF: &str = "application/x-protobuf";
/// The JSON media type of requests and responses.
pub const JSON: &str = "application/json";

/// Per-event rejection reasons.
pub mod reason {
    pub const INVALID_EVENT_ID: &str = "invalid_event_id";
    pub const DUPLICATE_EVENT_ID: &str = "duplicate_event_id";
    pub const INVALID_TENANT_ID: &str = "invalid_tenant_id";
    pub const MISSING_TYPE: &str = "missing_type";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
}

/// Every error answer of the contract's error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceError {
    MalformedBody,
    NotFound,
    MethodNotAllowed,
    BodyTooLarge,
    TooManyEvents,
    UnsupportedMediaType,
    /// `POST /v1/events` when Kafka did not acknowledge.
    KafkaUnavailable,
    /// `GET /readyz` when Kafka is unreachable.
    KafkaNotReachable,
}

/// An answer of a contract's error table: a status and the JSON body
/// `{"code":"…","message":"…"}`. Implemented by each contract's error enum,
/// so one set of assertions serves every contract.
pub trait ErrorAnswer: Copy + Debug {
    fn status(self) -> u16;
    fn code(self) -> &'static str;
    fn message(self) -> &'static str;

    /// The `Retry-After` value the answer must carry, if any.
    fn retry_after(self) -> Option<&'static str> {
        None
    }

    /// The exact body: `{"code":"…","message":"…"}`.
    fn body(self) -> String {
        format!(
            r#"{{"code":"{}","message":"{}"}}"#,
            self.code(),
            self.message()
        )
    }
}

impl ErrorAnswer for ServiceError {
    fn status(self) -> u16 {
        match self {
            ServiceError::MalformedBody => 400,
            ServiceError::NotFound => 404,
            ServiceError::MethodNotAllowed => 405,
            ServiceError::BodyTooLarge | ServiceError::TooManyEvents => 413,
            ServiceError::UnsupportedMediaType => 415,
            ServiceError::KafkaUnavailable | ServiceError::KafkaNotReachable => 503,
        }
    }

    fn code(self) -> &'static str {
        match self {
            ServiceError::MalformedBody => "malformed_body",
            ServiceError::NotFound => "not_found",
            ServiceError::MethodNotAllowed => "method_not_allowed",
            ServiceError::BodyTooLarge => "body_too_large",
            ServiceError::TooManyEvents => "too_many_events",
            ServiceError::UnsupportedMediaType => "unsupported_media_type",
            ServiceError::KafkaUnavailable | ServiceError::KafkaNotReachable => "kafka_unavailable",
        }
    }

    fn message(self) -> &'static str {
        match self {
            ServiceError::MalformedBody => "request body is not a valid EventBatch",
            ServiceError::NotFound => NO_SUCH_ROUTE,
            ServiceError::MethodNotAllowed => METHOD_NOT_ALLOWED,
            ServiceError::BodyTooLarge => "request body exceeds 8388608 bytes",
            ServiceError::TooManyEvents => "batch holds more than 10000 events",
            ServiceError::UnsupportedMediaType => {
                "Content-Type must be application/x-protobuf or application/json"
            }
            ServiceError::KafkaUnavailable => "Kafka did not acknowledge the batch; retry later",
            ServiceError::KafkaNotReachable => "Kafka is not reachable",
        }
    }

    /// `Retry-After: 1` on `kafka_unavailable` from `/v1/events`.
    fn retry_after(self) -> Option<&'static str> {
        (self == ServiceError::KafkaUnavailable).then_some("1")
    }
}

/// The `not_found` message every contract shares.
pub const NO_SUCH_ROUTE: &str = "no such route";
/// The `method_not_allowed` message every contract shares.
pub const METHOD_NOT_ALLOWED: &str = "method not allowed on this route";

/// Asserts `response` is exactly the contract's answer for `error`: status,
/// `Content-Type: application/json`, the body byte for byte, and the
/// `Retry-After` the error carries (`kafka_unavailable` on `/v1/events`).
#[track_caller]
pub fn assert_error(response: &Response, error: impl ErrorAnswer) {
    assert_error_for(response, error, "the request");
}

/// [`assert_error`], naming `what` was sent in failure messages.
#[track_caller]
pub fn assert_error_for(response: &Response, error: impl ErrorAnswer, what: impl Display) {
    assert_eq!(
        (response.status, response.text().as_str()),
        (error.status(), error.body().as_str()),
        "expected the contract's {} answer to {what}",
        error.code()
    );
    assert_eq!(
        response.content_type(),
        Some(JSON),
        "Content-Type of the error answer to {what}"
    );
    if let Some(retry_after) = error.retry_after() {
        assert_eq!(
            response.header("Retry-After"),
            Some(retry_after),
            "Retry-After of the answer to {what}"
        );
    }
}

/// Asserts a 200 whose `Content-Type` is exactly `content_type` and whose
/// body is exactly `body`.
#[track_caller]
pub fn assert_ok(response: &Response, content_type: &str, body: &[u8]) {
    assert_ok_for(response, content_type, body, "the request");
}

/// [`assert_ok`], naming `what` was sent in failure messages.
#[track_caller]
pub fn assert_ok_for(response: &Response, content_type: &str, body: &[u8], what: impl Display) {
    assert_eq!(
        response.status,
        200,
        "expected 200 for {what}, got {} {:?}",
        response.status,
        response.text()
    );
    assert_eq!(
        response.content_type(),
        Some(content_type),
        "Content-Type of the answer to {what}"
    );
    assert_eq!(
        response.body,
        body,
        "body of the answer to {what}: got {:?}, expected {:?}",
        response.text(),
        String::from_utf8_lossy(body)
    );
}

/// Asserts `service` answers `method path` with 405 and `Allow: allow`:
/// `error`'s body, or for `HEAD` no body at all (nor bytes after the head).
#[track_caller]
pub fn assert_method_not_allowed(
    service: &Service,
    method: &str,
    path: &str,
    allow: &str,
    error: impl ErrorAnswer,
) {
    let (response, after) = service.send_then_drain(&Request::new(method, path));
    let what = format!("{method} {path}");
    if method == "HEAD" {
        assert_eq!(response.status, 405, "{what}");
        assert_eq!(excerpt(&after), "", "bytes after {what}");
    } else {
        assert_error_for(&response, error, &what);
    }
    assert_eq!(response.header("Allow"), Some(allow), "Allow of {what}");
}
