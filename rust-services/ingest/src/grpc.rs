//! The gRPC surface: `parallax.ingest.v1.IngestService/Publish`
//! (`proto/parallax/ingest/v1/ingest_service.proto`), the same pipeline as
//! `POST /v1/events` with a protobuf body — the same decoder, validation,
//! records, publisher and counters — on its own listener (`--grpc-listen`),
//! served by tonic's HTTP/2 server.
//!
//! The Go twin serves it with grpc-go, and the twins must answer alike
//! byte for byte (`docs/contract-ingest.md`, "gRPC"). So the unary call is
//! read with `parallax_common::grpc` rather than by tonic's codec, with
//! grpc-go's rules and grpc-go's words for every way a call can be wrong
//! (the content type, the method, the path, the compression, the framing,
//! a message over 8 MiB). The message itself reaches [`decode_view`] as raw
//! bytes, exactly as an HTTP body does, so both surfaces accept and reject
//! the same bytes. Server reflection (v1 and v1alpha) describes
//! `ingest_service.proto`, from the descriptor set the build script
//! compiles ([`DESCRIPTOR_SET`]).
//!
//! The contract's error answers map to gRPC statuses in one table,
//! [`code_for`]; the message is the HTTP error body's message, and the
//! contract's code travels in the `parallax-error-code` trailer.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::FromRef;
use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use parallax_common::grpc::{
    self, check_request, ok_response, read_unary, response_content_type, status_response,
    GrpcMetrics, Method,
};
use parallax_common::metrics::Metrics;
use parallax_common::ApiError;

use crate::decode::decode_view;
use crate::handler::{App, KAFKA_UNAVAILABLE, MALFORMED_BODY, MAX_BODY_BYTES, TOO_MANY_EVENTS};
use crate::media::Media;
use crate::metrics::IngestMetrics;
use crate::proto::IngestResponse;
use crate::publish::{records, Publisher};
use crate::response::encode;
use crate::validate::{validate, MAX_EVENTS_PER_BATCH};

/// The full name of the service.
pub const SERVICE: &str = "parallax.ingest.v1.IngestService";
/// The path of `Publish`.
pub const PUBLISH_PATH: &str = "/parallax.ingest.v1.IngestService/Publish";
/// `Publish`, the one method served.
const PUBLISH: Method = Method {
    service: SERVICE,
    path: PUBLISH_PATH,
};
/// The largest request message: the HTTP body limit.
pub const MAX_MESSAGE_BYTES: usize = MAX_BODY_BYTES;
/// Trailer carrying the contract's error code (`malformed_body`, …).
pub const TRAILER_ERROR_CODE: &str = "parallax-error-code";
/// gRPC's `Retry-After` (gRFC A6): how long a retry policy waits.
pub const TRAILER_RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

/// The gRPC status code of each error answer of the contract.
///
/// `body_too_large` has no row of its own: a message over
/// [`MAX_MESSAGE_BYTES`] is refused from its length prefix, before it is
/// read, as grpc-go refuses it (see [`read_unary`]).
pub fn code_for(error: &ApiError) -> Code {
    match error.code {
        "malformed_body" => Code::InvalidArgument,
        // A batch that will never be accepted as it is: the caller's
        // argument, not a quota that may free up.
        "too_many_events" => Code::InvalidArgument,
        "kafka_unavailable" => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// `error` as a gRPC status ([`code_for`]) with its code in the
/// `parallax-error-code` trailer and, where HTTP sends `Retry-After`, the
/// same wait as `grpc-retry-pushback-ms`.
pub fn status_for(error: &ApiError) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(TRAILER_ERROR_CODE, MetadataValue::from_static(error.code));
    if let Some(secs) = error.retry_after_secs {
        let ms = MetadataValue::try_from(format!("{secs}000")).expect("digits are ASCII");
        metadata.insert(TRAILER_RETRY_PUSHBACK, ms);
    }
    Status::with_metadata(code_for(error), error.message, metadata)
}

/// `IngestService` as a tower service over HTTP/2 requests: every path of
/// the listener comes here, so unknown services and methods get grpc-go's
/// answers too.
#[derive(Clone)]
pub struct IngestService {
    publisher: Arc<dyn Publisher>,
    ingest: IngestMetrics,
    calls: GrpcMetrics,
}

impl IngestService {
    /// The service over the HTTP handler's publisher and counters; its call
    /// metrics ([`GrpcMetrics`]) join the handler's registry.
    pub fn new(app: &App) -> Self {
        let (publisher, ingest) = app.publishing();
        let calls = GrpcMetrics::register(&Metrics::from_ref(app));
        Self {
            publisher,
            ingest,
            calls,
        }
    }

    /// `POST /v1/events` for a protobuf body: decode, bound, validate,
    /// publish every accepted event and await every acknowledgement, and
    /// the deterministic `IngestResponse`.
    async fn publish(&self, message: &[u8]) -> Result<Bytes, ApiError> {
        let mut json_events = Vec::new();
        let batch = decode_view(Media::Protobuf, message, &mut json_events).map_err(|e| {
            tracing::debug!(error = %e, "malformed gRPC message");
            MALFORMED_BODY
        })?;
        if batch.events.len() > MAX_EVENTS_PER_BATCH {
            return Err(TOO_MANY_EVENTS);
        }
        let verdict = validate(&batch.events);
        self.ingest.rejected(verdict.rejected.len());
        let mut scratch = Vec::new();
        let records = records(&batch, &verdict.accepted, &mut scratch);
        if !records.is_empty() {
            if let Err(e) = self.publisher.publish(&records).await {
                self.ingest.failed(records.len(), e.failed);
                return Err(KAFKA_UNAVAILABLE);
            }
        }
        self.ingest.accepted(records.len());
        let answer = IngestResponse {
            accepted: records.len() as u32,
            rejected: verdict.rejected,
        };
        Ok(encode(&answer, Media::Protobuf))
    }

    async fn call(self, request: Request<Body>) -> Response<Body> {
        let content_type = response_content_type(request.headers());
        if let Err((http_status, status)) = check_request(&request, &[PUBLISH]) {
            return status_response(http_status, content_type, status);
        }
        // From here on the call has reached the method, as in grpc-go.
        let started = Instant::now();
        let outcome = match read_unary(request.into_body(), MAX_MESSAGE_BYTES).await {
            Ok(message) => self
                .publish(&message)
                .await
                .map_err(|error| status_for(&error)),
            Err(status) => Err(status),
        };
        let code = outcome.as_ref().err().map_or(Code::Ok, Status::code);
        self.calls.observe(PUBLISH, started, code);
        match outcome {
            Ok(answer) => ok_response(content_type, answer),
            Err(status) => status_response(StatusCode::OK, content_type, status),
        }
    }
}

impl tower_service::Service<Request<Body>> for IngestService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = grpc::ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.call(request).await) })
    }
}

/// The encoded `FileDescriptorSet` of `ingest_service.proto` (and the
/// messages it imports), compiled from `proto/` by the build script.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Serves `service`, with server reflection, on `listener` (HTTP/2 only,
/// tonic's server) until `shutdown` resolves, then lets in-flight calls
/// finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    service: IngestService,
    shutdown: impl Future<Output = ()> + Clone + Send + 'static,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    let service = grpc::with_reflection(service, DESCRIPTOR_SET)
        .expect("the build script's descriptor set is complete");
    grpc::serve(listener, service, shutdown, grace).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_error_has_its_status_and_trailers() {
        use crate::handler::{KAFKA_UNAVAILABLE, MALFORMED_BODY, TOO_MANY_EVENTS};
        let status = status_for(&KAFKA_UNAVAILABLE);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), KAFKA_UNAVAILABLE.message);
        assert_eq!(
            status.metadata().get(TRAILER_RETRY_PUSHBACK).unwrap(),
            "1000"
        );
        assert_eq!(
            status.metadata().get(TRAILER_ERROR_CODE).unwrap(),
            "kafka_unavailable"
        );
        assert_eq!(code_for(&MALFORMED_BODY), Code::InvalidArgument);
        assert_eq!(code_for(&TOO_MANY_EVENTS), Code::InvalidArgument);
        assert!(status_for(&MALFORMED_BODY)
            .metadata()
            .get(TRAILER_RETRY_PUSHBACK)
            .is_none());
    }
}
