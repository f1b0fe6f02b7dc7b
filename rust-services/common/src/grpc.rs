//! What the Rust twins' gRPC servers share (feature `grpc`): grpc-go's
//! answers, words included, for every way a call can be wrong; reading a
//! unary request message by grpc-go's rules; writing statuses and messages
//! as grpc-go writes them; the call metrics under the gRPC ecosystem's
//! names; server reflection; and serving with a bounded graceful stop.
//!
//! The Go twins serve with grpc-go, and the twins must answer alike byte
//! for byte (`docs/contract-ingest.md` and `docs/contract-fanout.md`,
//! "gRPC"). tonic's own codec answers several cases differently
//! (`OUT_OF_RANGE` for an oversized message where grpc-go says
//! `RESOURCE_EXHAUSTED`, other texts, more escaping in `grpc-message`), so
//! each service is a tower service over HTTP/2 requests that reads its
//! request with [`check_request`] and [`read_unary`] and answers with
//! [`ok_response`], [`stream_response`] or [`status_response`]; tonic only
//! provides the HTTP/2 server and, for reflection, `tonic-reflection`.
//!
//! # Layout
//! - [`Method`] and [`check_request`]: what grpc-go checks before a handler.
//! - [`read_unary`]: the one request message of a unary or server-streaming
//!   call.
//! - [`ok_response`], [`stream_response`], [`status_response`] and
//!   [`message_frame`]: answers.
//! - [`GrpcMetrics`]: `grpc_server_handled_total` and
//!   `grpc_server_handling_seconds`.
//! - [`with_reflection`]: a service plus `grpc.reflection.v1` and `v1alpha`.
//! - [`serve`]: tonic's HTTP/2 server with a bounded grace period.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::Stream;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};

use crate::metrics::{Metrics, LATENCY_BUCKETS};

/// One method a service serves: its service's full name and its path.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    /// `parallax.ingest.v1.IngestService`.
    pub service: &'static str,
    /// `/parallax.ingest.v1.IngestService/Publish`.
    pub path: &'static str,
}

impl Method {
    /// The method's name: the path after the service.
    pub fn name(&self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }
}

/// What grpc-go checks before a call reaches a handler, in its order, with
/// its answers: the content type (HTTP 415), the method (HTTP 405), the
/// path (`UNIMPLEMENTED`: `methods` are the ones served, all of one
/// service), the compression (`UNIMPLEMENTED`). Returns the method called.
pub fn check_request<B>(
    request: &Request<B>,
    methods: &[Method],
) -> Result<Method, (StatusCode, Status)> {
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
    if request.method() != http::Method::POST {
        let message = format!(
            "Received a HEADERS frame with :method {} which should be POST",
            go_quote(request.method().as_str())
        );
        return Err((StatusCode::METHOD_NOT_ALLOWED, Status::internal(message)));
    }
    let path = request.uri().path();
    let Some(method) = methods.iter().find(|m| m.path == path) else {
        let status = match path.strip_prefix('/').unwrap_or(path).rsplit_once('/') {
            None => Status::unimplemented(format!("malformed method name: {}", go_quote(path))),
            Some((service, method)) if methods.iter().any(|m| m.service == service) => {
                Status::unimplemented(format!("unknown method {method} for service {service}"))
            }
            Some((service, _)) => Status::unimplemented(format!("unknown service {service}")),
        };
        return Err((StatusCode::OK, status));
    };
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
    Ok(*method)
}

/// `application/grpc`, or it followed by `+` or `;` and anything.
pub fn is_grpc_content_type(value: &str) -> bool {
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

/// Reads the one request message of a call whose client does not stream,
/// as grpc-go does: each message's length checked against `max_bytes`
/// from its prefix (before it is read), then read whole, then its
/// compressed flag checked; then the stream must end.
pub async fn read_unary(body: Body, max_bytes: usize) -> Result<Bytes, Status> {
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
        if len > max_bytes {
            return Err(Status::resource_exhausted(format!(
                "grpc: received message larger than max ({len} vs. {max_bytes})"
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
pub fn response_content_type(headers: &HeaderMap) -> HeaderValue {
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

/// One uncompressed length-prefixed message.
pub fn message_frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(message);
    framed.freeze()
}

/// The trailers of a call that ended with `status`: `grpc-status`, the
/// percent-encoded `grpc-message` (empty for OK, as grpc-go ends a call)
/// and the status's metadata.
pub fn status_trailers(status: &Status) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    let message = HeaderValue::try_from(encode_grpc_message(status.message()))
        .expect("percent-encoded text is a valid header value");
    trailers.insert("grpc-message", message);
    trailers.extend(status.metadata().clone().into_headers());
    trailers
}

/// A 200 with one length-prefixed message, then `grpc-status: 0` and an
/// empty `grpc-message` in the trailers (as grpc-go ends a call).
pub fn ok_response(content_type: HeaderValue, message: Bytes) -> Response<Body> {
    let frames = [
        Ok::<_, Status>(Frame::data(message_frame(&message))),
        Ok(Frame::trailers(status_trailers(&Status::ok("")))),
    ];
    let mut response = Response::new(Body::new(StreamBody::new(futures::stream::iter(frames))));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type);
    response
}

/// A 200 whose body is `frames`: length-prefixed messages, then the
/// trailers of the status the stream ends with. HTTP/2 flow control holds
/// the stream back: hyper polls it only when the client's window has room.
pub fn stream_response<S>(content_type: HeaderValue, frames: S) -> Response<Body>
where
    S: Stream<Item = Result<Frame<Bytes>, Status>> + Send + 'static,
{
    let mut response = Response::new(Body::new(StreamBody::new(frames)));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type);
    response
}

/// A trailers-only answer: `status` in the headers, no body. Written here
/// rather than by `Status::into_http`, whose `grpc-message` encoding
/// escapes more than grpc-go's (spaces, quotes, colons): both decode alike,
/// but the twins' bytes must match.
pub fn status_response(
    http_status: StatusCode,
    content_type: HeaderValue,
    status: Status,
) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = http_status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, content_type);
    headers.extend(status_trailers(&status));
    response
}

/// grpc-go's `grpc-message` encoding: printable ASCII other than `%` as
/// is, every other byte as `%XX` (upper-case hex).
pub fn encode_grpc_message(message: &str) -> String {
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

/// Calls that reached a method, under the names of the gRPC ecosystem's
/// Prometheus middleware (the Go twins' names):
/// `grpc_server_handled_total{grpc_service, grpc_method, grpc_code}` (codes
/// spelt as grpc-go spells them) and
/// `grpc_server_handling_seconds{grpc_service, grpc_method}`. Calls refused
/// by [`check_request`] are not counted, as grpc-go refuses them before
/// any handler. Labels are bounded: the methods a service serves, and
/// gRPC's 17 codes.
#[derive(Clone)]
pub struct GrpcMetrics {
    handled: IntCounterVec,
    seconds: HistogramVec,
}

impl GrpcMetrics {
    /// Registers the metrics in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
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

    /// Counts a call of `method` that started at `started` and ended with
    /// `code`.
    pub fn observe(&self, method: Method, started: Instant, code: Code) {
        self.handled
            .with_label_values(&[method.service, method.name(), go_code_name(code)])
            .inc();
        self.seconds
            .with_label_values(&[method.service, method.name()])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// A status code as grpc-go's `codes.Code.String` spells it.
pub fn go_code_name(code: Code) -> &'static str {
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

/// The boxed future of the services here.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// A service's own HTTP/2 requests, and server reflection
/// (`grpc.reflection.v1` and `v1alpha`, by `tonic-reflection`) from an
/// encoded `FileDescriptorSet` — the one each twin's build script compiles
/// from `proto/` with protox, so reflection describes exactly the contract.
/// grpc-go's `reflection.Register` serves the same two services.
#[derive(Clone)]
pub struct WithReflection<S, V1, V1Alpha> {
    service: S,
    v1: V1,
    v1alpha: V1Alpha,
}

const REFLECTION_V1: &str = "/grpc.reflection.v1.ServerReflection/";
const REFLECTION_V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/";

/// An HTTP/2 request handler as tonic's server runs it: what each of
/// [`WithReflection`]'s parts is.
pub trait GrpcService:
    tower_service::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<T> GrpcService for T where
    T: tower_service::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// `service` with server reflection describing the files of
/// `descriptor_set` (an encoded `FileDescriptorSet`).
///
/// # Errors
/// When the descriptor set does not decode or misses a dependency.
pub fn with_reflection<S: GrpcService>(
    service: S,
    descriptor_set: &'static [u8],
) -> Result<WithReflection<S, impl GrpcService, impl GrpcService>, tonic_reflection::server::Error>
{
    // Each version's builder adds its own reflection service's file; the
    // other version's is added here, so both list both services, as
    // grpc-go's do.
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(descriptor_set)
    };
    Ok(WithReflection {
        service,
        v1: builder()
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
            .build_v1()?,
        v1alpha: builder()
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?,
    })
}

impl<S, V1, V1Alpha> tower_service::Service<Request<Body>> for WithReflection<S, V1, V1Alpha>
where
    S: GrpcService,
    V1: GrpcService,
    V1Alpha: GrpcService,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Each inner service is always ready (tonic's generated servers
        // and ours); they are made ready again in `call` regardless.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if path.starts_with(REFLECTION_V1) {
            let mut v1 = self.v1.clone();
            Box::pin(async move { v1.call(request).await })
        } else if path.starts_with(REFLECTION_V1ALPHA) {
            let mut v1alpha = self.v1alpha.clone();
            Box::pin(async move { v1alpha.call(request).await })
        } else {
            let mut service = self.service.clone();
            Box::pin(async move { service.call(request).await })
        }
    }
}

/// Serves `service` on `listener` (HTTP/2 only, tonic's server) until
/// `shutdown` resolves, then lets in-flight calls finish for at most
/// `grace`. Streams that never end on their own must be ended by their
/// service at `shutdown` (the fan-out's hub does), or they take the whole
/// grace period.
pub async fn serve<S: GrpcService>(
    listener: TcpListener,
    service: S,
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
            .block_on(read_unary(body(chunks), 8 * 1024 * 1024))
    }

    const PUBLISH: Method = Method {
        service: "parallax.ingest.v1.IngestService",
        path: "/parallax.ingest.v1.IngestService/Publish",
    };

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

    fn checked(path: &str) -> Result<&'static str, String> {
        let request = Request::post(path)
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        check_request(&request, &[PUBLISH])
            .map(|m| m.path)
            .map_err(|(_, status)| status.message().to_owned())
    }

    #[test]
    fn paths_are_judged_like_grpc_go() {
        assert_eq!(checked(PUBLISH.path), Ok(PUBLISH.path));
        assert_eq!(
            checked("/parallax.ingest.v1.IngestService/Nope"),
            Err("unknown method Nope for service parallax.ingest.v1.IngestService".into())
        );
        assert_eq!(checked("/x.Y/Publish"), Err("unknown service x.Y".into()));
        assert_eq!(
            checked("/no-slash"),
            Err("malformed method name: \"/no-slash\"".into())
        );
        assert_eq!(PUBLISH.name(), "Publish");
    }
}
