//! The gRPC surface: `parallax.ingest.v1.IngestService/Publish`
//! (`proto/parallax/ingest/v1/ingest_service.proto`), the same pipeline as
//! `POST /v1/events` with a protobuf body — the same decoder, validation,
//! records, publisher and counters — on its own listener (`--grpc-listen`),
//! served by tonic's HTTP/2 server.
//!
//! The Go twin serves it with grpc-go, and the twins must answer alike
//! byte for byte (`docs/contract-ingest.md`, "gRPC"). So the unary call is
//! read here rather than by tonic's codec, with grpc-go's rules and grpc-go's
//! words for every way a call can be wrong: the content type, the method,
//! the path, the compression, the framing (none, two or a truncated
//! message), a message over 8 MiB. tonic's own codec answers several of those
//! differently (`OUT_OF_RANGE` for an oversized message where grpc-go says
//! `RESOURCE_EXHAUSTED`, other texts). The message itself reaches
//! [`decode_view`] as raw bytes, exactly as an HTTP body does, so both
//! surfaces accept and reject the same bytes.
//!
//! The contract's error answers map to gRPC statuses in one table,
//! [`code_for`]; the message is the HTTP error body's message, and the
//! contract's code travels in the `parallax-error-code` trailer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::FromRef;
use axum::http::{self, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};

use parallax_common::metrics::{Metrics, LATENCY_BUCKETS};
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
        if let Err((http_status, status)) = check_request(&request) {
            return status_response(http_status, content_type, status);
        }
        // From here on the call has reached the method, as in grpc-go.
        let started = Instant::now();
        let outcome = match read_unary(request.into_body()).await {
            Ok(message) => self
                .publish(&message)
                .await
                .map_err(|error| status_for(&error)),
            Err(status) => Err(status),
        };
        let code = outcome.as_ref().err().map_or(Code::Ok, Status::code);
        self.calls.observe("Publish", started, code);
        match outcome {
            Ok(answer) => ok_response(content_type, answer),
            Err(status) => status_response(StatusCode::OK, content_type, status),
        }
    }
}

impl tower_service::Service<Request<Body>> for IngestService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.call(request).await) })
    }
}

/// Calls that reached a method, under the names of the gRPC ecosystem's
/// Prometheus middleware (the Go twin's names):
/// `grpc_server_handled_total{grpc_service, grpc_method, grpc_code}` (codes
/// spelt as grpc-go spells them) and
/// `grpc_server_handling_seconds{grpc_service, grpc_method}`. Calls refused
/// by [`check_request`] are not counted, as grpc-go refuses them before
/// any handler.
#[derive(Clone)]
struct GrpcMetrics {
    handled: IntCounterVec,
    seconds: HistogramVec,
}

impl GrpcMetrics {
    fn register(metrics: &Metrics) -> Self {
        let handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "gRPC calls completed by a method's handler, by service, method and status code.",
            ),
            &["grpc_service", "grpc_method", "grpc_code"],
        )
        .expect("valid metric");
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Time from a call reaching its handler to its status, by service and method.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["grpc_service", "grpc_method"],
        )
        .expect("valid metric");
        metrics.register(handled.clone());
        metrics.register(seconds.clone());
        Self { handled, seconds }
    }

    fn observe(&self, method: &str, started: Instant, code: Code) {
        self.handled
            .with_label_values(&[SERVICE, method, go_code_name(code)])
            .inc();
        self.seconds
            .with_label_values(&[SERVICE, method])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// A status code as grpc-go's `codes.Code.String` spells it.
fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// What grpc-go checks before a call reaches a handler, in its order, with
/// its answers: the content type (HTTP 415), the method (HTTP 405), the
/// path (`UNIMPLEMENTED`), the compression (`UNIMPLEMENTED`).
fn check_request(request: &Request<Body>) -> Result<(), (StatusCode, Status)> {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if !is_grpc_content_type(&content_type) {
        let message = format!(
            "invalid gRPC request content-type {}",
            go_quote(&content_type)
        );
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Status::invalid_argument(message),
        ));
    }
    if request.method() != Method::POST {
        let message = format!(
            "Received a HEADERS frame with :method {} which should be POST",
            go_quote(request.method().as_str())
        );
        return Err((StatusCode::METHOD_NOT_ALLOWED, Status::internal(message)));
    }
    let path = request.uri().path();
    if path != PUBLISH_PATH {
        let status = match path.strip_prefix('/').unwrap_or(path).rsplit_once('/') {
            None => Status::unimplemented(format!("malformed method name: {}", go_quote(path))),
            Some((service, _)) if service != SERVICE => {
                Status::unimplemented(format!("unknown service {service}"))
            }
            Some((service, method)) => {
                Status::unimplemented(format!("unknown method {method} for service {service}"))
            }
        };
        return Err((StatusCode::OK, status));
    }
    let encoding = request
        .headers()
        .get("grpc-encoding")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if !encoding.is_empty() && encoding != "identity" {
        // No decompressor is installed on either twin.
        let message = format!(
            "grpc: Decompressor is not installed for grpc-encoding {}",
            go_quote(&encoding)
        );
        return Err((StatusCode::OK, Status::unimplemented(message)));
    }
    Ok(())
}

/// `application/grpc`, or it followed by `+` or `;` and anything.
fn is_grpc_content_type(value: &str) -> bool {
    match value.strip_prefix("application/grpc") {
        Some(rest) => rest.is_empty() || rest.starts_with(['+', ';']),
        None => false,
    }
}

/// Go's `%q` of a string, for the ASCII the texts above may hold.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads the one request message of a unary call as grpc-go does: each
/// message's length checked against [`MAX_MESSAGE_BYTES`] from its prefix
/// (before it is read), then read whole, then its compressed flag checked;
/// then the stream must end.
async fn read_unary(body: Body) -> Result<Bytes, Status> {
    let mut reader = FrameReader {
        body,
        buf: BytesMut::new(),
    };
    let mut message = None;
    loop {
        if !reader.fill(5).await? {
            if !reader.buf.is_empty() {
                return Err(Status::internal("unexpected EOF"));
            }
            return message.ok_or_else(|| {
                Status::internal(
                    "cardinality violation: received no request message from non-client-streaming RPC",
                )
            });
        }
        let flag = reader.buf[0];
        let len = u32::from_be_bytes([reader.buf[1], reader.buf[2], reader.buf[3], reader.buf[4]])
            as usize;
        if len > MAX_MESSAGE_BYTES {
            return Err(Status::resource_exhausted(format!(
                "grpc: received message larger than max ({len} vs. {MAX_MESSAGE_BYTES})"
            )));
        }
        if !reader.fill(5 + len).await? {
            return Err(Status::internal("unexpected EOF"));
        }
        reader.buf.advance(5);
        let data = reader.buf.split_to(len).freeze();
        match flag {
            0 => {}
            // grpc-encoding is absent or identity here (check_request).
            1 => {
                return Err(Status::internal(
                    "grpc: compressed flag set with identity or empty encoding",
                ))
            }
            other => {
                return Err(Status::internal(format!(
                    "grpc: received unexpected payload format {other}"
                )))
            }
        }
        if message.is_some() {
            return Err(Status::internal(
                "cardinality violation: received multiple request messages for non-client-streaming RPC",
            ));
        }
        message = Some(data);
    }
}

/// The request body, read frame by frame into `buf`.
struct FrameReader {
    body: Body,
    buf: BytesMut,
}

impl FrameReader {
    /// Reads until `buf` holds `n` bytes (true) or the body ends (false).
    async fn fill(&mut self, n: usize) -> Result<bool, Status> {
        while self.buf.len() < n {
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.put(data);
                    }
                }
                Some(Err(status)) => return Err(status),
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// The answer's content type, as grpc-go writes it: `application/grpc`,
/// with the request's content subtype (`application/grpc+proto` →
/// `+proto`) when it named one.
fn response_content_type(headers: &HeaderMap) -> HeaderValue {
    let subtype = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("application/grpc"))
        .and_then(|rest| rest.strip_prefix(['+', ';']))
        .filter(|subtype| !subtype.is_empty());
    match subtype {
        None => HeaderValue::from_static("application/grpc"),
        Some(subtype) => HeaderValue::try_from(format!("application/grpc+{subtype}"))
            .unwrap_or_else(|_| HeaderValue::from_static("application/grpc")),
    }
}

/// A 200 with one length-prefixed message, then `grpc-status: 0` and an
/// empty `grpc-message` in the trailers (as grpc-go ends a call).
fn ok_response(content_type: HeaderValue, message: Bytes) -> Response<Body> {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put(message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static(""));
    let frames = [
        Ok::<_, Status>(Frame::data(framed.freeze())),
        Ok(Frame::trailers(trailers)),
    ];
    let mut response = Response::new(Body::new(StreamBody::new(futures::stream::iter(frames))));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type);
    response
}

/// A trailers-only answer: `status` in the headers, no body. Written here
/// rather than by `Status::into_http`, whose `grpc-message` encoding
/// escapes more than grpc-go's (spaces, quotes, colons): both decode alike,
/// but the twins' bytes must match.
fn status_response(
    http_status: StatusCode,
    content_type: HeaderValue,
    status: Status,
) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = http_status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, content_type);
    headers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    let message = HeaderValue::try_from(encode_grpc_message(status.message()))
        .expect("percent-encoded text is a valid header value");
    headers.insert("grpc-message", message);
    headers.extend(status.metadata().clone().into_headers());
    response
}

/// grpc-go's `grpc-message` encoding: printable ASCII other than `%` as
/// is, every other byte as `%XX` (upper-case hex).
fn encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Serves `service` on `listener` (HTTP/2 only, tonic's server) until
/// `shutdown` resolves, then lets in-flight calls finish for at most
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    service: IngestService,
    shutdown: impl Future<Output = ()> + Clone + Send + 'static,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    let server = tonic::transport::Server::builder().serve_with_incoming_shutdown(
        service,
        TcpIncoming::from(listener),
        shutdown.clone(),
    );
    let grace_timer = async move {
        shutdown.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = grace_timer => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period ran out; abandoning in-flight gRPC calls");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&[u8]]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, Status>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        Body::new(StreamBody::new(futures::stream::iter(frames)))
    }

    fn read(chunks: &[&[u8]]) -> Result<Bytes, Status> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_unary(body(chunks)))
    }

    #[test]
    fn a_message_split_across_frames_is_read_whole() {
        let got = read(&[&[0, 0, 0], &[0, 3, b'a'], b"bc"]).unwrap();
        assert_eq!(&got[..], b"abc");
    }

    #[test]
    fn framing_errors_have_grpc_gos_words() {
        let cases: [(&[&[u8]], Code, &str); 5] = [
            (
                &[],
                Code::Internal,
                "cardinality violation: received no request message from non-client-streaming RPC",
            ),
            (&[&[0, 0, 0, 0, 2, 1]], Code::Internal, "unexpected EOF"),
            (
                &[&[0, 0, 0, 0, 0], &[0, 0, 0, 0, 0]],
                Code::Internal,
                "cardinality violation: received multiple request messages for non-client-streaming RPC",
            ),
            (
                &[&[0, 0, 0x80, 0, 1]],
                Code::ResourceExhausted,
                "grpc: received message larger than max (8388609 vs. 8388608)",
            ),
            (
                &[&[7, 0, 0, 0, 0]],
                Code::Internal,
                "grpc: received unexpected payload format 7",
            ),
        ];
        for (chunks, code, message) in cases {
            let status = read(chunks).unwrap_err();
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }

    #[test]
    fn grpc_message_is_percent_encoded_like_grpc_go() {
        assert_eq!(
            encode_grpc_message("a b:\"c\" 100% é\n"),
            "a b:\"c\" 100%25 %C3%A9%0A"
        );
    }

    #[test]
    fn content_types_are_judged_and_echoed_like_grpc_go() {
        for ok in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc;x",
        ] {
            assert!(is_grpc_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "application/grpcx",
            "application/json",
            "Application/grpc",
        ] {
            assert!(!is_grpc_content_type(bad), "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert_eq!(response_content_type(&headers), "application/grpc+proto");
        assert_eq!(response_content_type(&HeaderMap::new()), "application/grpc");
    }

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
