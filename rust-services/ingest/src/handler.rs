//! The HTTP surface: routes, the `POST /v1/events` pipeline and its errors.
//!
//! The pipeline is: media type → body (bounded) → decode (protobuf in
//! place) → batch size → validate → records (borrowed from the body where
//! its bytes already are the record values) → publish (all records
//! together, one notification) → encode the answer. Every
//! failure maps to one row of the contract's error table.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use parallax_common::routing::{get_only, post_only};
use parallax_common::{error, health, metrics, ApiError};

use crate::decode::decode_view;
use crate::media::{request_media, response_media};
use crate::metrics::IngestMetrics;
use crate::proto::IngestResponse;
use crate::publish::{records, Publisher};
use crate::response::encode;
use crate::validate::{validate, MAX_EVENTS_PER_BATCH};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub const MALFORMED_BODY: ApiError = ApiError::new(
    StatusCode::BAD_REQUEST,
    "malformed_body",
    "request body is not a valid EventBatch",
);
pub const BODY_TOO_LARGE: ApiError = ApiError::new(
    StatusCode::PAYLOAD_TOO_LARGE,
    "body_too_large",
    "request body exceeds 8388608 bytes",
);
pub const TOO_MANY_EVENTS: ApiError = ApiError::new(
    StatusCode::PAYLOAD_TOO_LARGE,
    "too_many_events",
    "batch holds more than 10000 events",
);
pub const UNSUPPORTED_MEDIA_TYPE: ApiError = ApiError::new(
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    "unsupported_media_type",
    "Content-Type must be application/x-protobuf or application/json",
);
pub const KAFKA_UNAVAILABLE: ApiError = ApiError::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "kafka_unavailable",
    "Kafka did not acknowledge the batch; retry later",
)
.with_retry_after(1);
pub const KAFKA_NOT_READY: ApiError = ApiError::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "kafka_unavailable",
    "Kafka is not reachable",
)
.with_retry_after(1);

/// Shared state of the handlers.
#[derive(Clone)]
pub struct App {
    publisher: Arc<dyn Publisher>,
    metrics: metrics::Metrics,
    ingest: IngestMetrics,
}

impl App {
    pub fn new(publisher: Arc<dyn Publisher>, metrics: metrics::Metrics) -> Self {
        let ingest = IngestMetrics::register(&metrics);
        Self {
            publisher,
            metrics,
            ingest,
        }
    }

    /// The publisher and the event counters, shared with the gRPC surface
    /// ([`crate::grpc`]) so both count into the same series.
    pub(crate) fn publishing(&self) -> (Arc<dyn Publisher>, IngestMetrics) {
        (self.publisher.clone(), self.ingest.clone())
    }
}

impl FromRef<App> for metrics::Metrics {
    fn from_ref(app: &App) -> Self {
        app.metrics.clone()
    }
}

/// All routes of the service, with HTTP metrics on every one of them.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/events", post_only(post_events))
        .route("/healthz", get_only(health::healthz))
        .route("/readyz", get_only(readyz))
        .route("/metrics", get_only(metrics::handler))
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(
            app.metrics.clone(),
            metrics::track,
        ))
        .with_state(app)
}

async fn readyz(State(app): State<App>) -> Response {
    health::readyz(app.publisher.ready(), KAFKA_NOT_READY).await
}

async fn post_events(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = request_media(&headers).ok_or(UNSUPPORTED_MEDIA_TYPE)?;
    let body = read_body(&headers, body).await?;
    // JSON's events are decoded into owned values and viewed from here;
    // protobuf's are viewed in the body itself.
    let mut json_events = Vec::new();
    let batch = decode_view(request, &body, &mut json_events).map_err(|e| {
        tracing::debug!(error = %e, "malformed body");
        MALFORMED_BODY
    })?;
    if batch.events.len() > MAX_EVENTS_PER_BATCH {
        return Err(TOO_MANY_EVENTS);
    }

    let verdict = validate(&batch.events);
    app.ingest.rejected(verdict.rejected.len());
    let mut scratch = Vec::new();
    let records = records(&batch, &verdict.accepted, &mut scratch);
    if !records.is_empty() {
        if let Err(e) = app.publisher.publish(&records).await {
            app.ingest.failed(records.len(), e.failed);
            return Err(KAFKA_UNAVAILABLE);
        }
    }
    app.ingest.accepted(records.len());

    let answer = IngestResponse {
        accepted: records.len() as u32,
        rejected: verdict.rejected,
    };
    let media = response_media(&headers, request);
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(media.content_type()))],
        encode(&answer, media),
    )
        .into_response())
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] — early when
/// `Content-Length` already says so.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(BODY_TOO_LARGE);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BODY_TOO_LARGE),
        Err(e) => {
            tracing::debug!(error = %e, "request body could not be read");
            Err(MALFORMED_BODY)
        }
    }
}
