//! Liveness and readiness.
//!
//! `/healthz` says the process answers; `/readyz` asks the service's
//! dependency (Kafka, for ingest) and answers 503 with the shared error body
//! when it is not reachable, so orchestrators and `parallax run` wait for it.

use std::future::Future;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// `GET /healthz`: always `{"status":"ok"}`.
pub async fn healthz() -> Response {
    json_status("{\"status\":\"ok\"}")
}

/// `GET /readyz` of a service with no dependency: always `{"status":"ready"}`.
pub async fn ready() -> Response {
    json_status("{\"status\":\"ready\"}")
}

/// Answers `{"status":"ready"}` when `check` succeeds, else `error`.
pub async fn readyz<F>(check: F, error: ApiError) -> Response
where
    F: Future<Output = bool>,
{
    if check.await {
        json_status("{\"status\":\"ready\"}")
    } else {
        error.into_response()
    }
}

fn json_status(body: &'static str) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
