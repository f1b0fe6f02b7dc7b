//! The gRPC surface: `parallax.fanout.v1.FanoutService/Subscribe`
//! (`proto/parallax/fanout/v1/fanout.proto`), a server-streaming
//! subscription on its own listener (`--grpc-listen`), fed by the same
//! [`Hub`] as the WebSocket endpoint (`docs/contract-fanout.md`, "gRPC").
//!
//! A stream is a hub connection like a WebSocket ([`Hub::connect_stream`]):
//! registered on its topics, with the same bounded drop-oldest
//! [`Outbox`](crate::outbox::Outbox), the same drop limit and the same
//! metrics, but no subscription frames: the response headers, sent once the
//! connection is registered, tell the client it is subscribed. Each
//! notification is encoded once per broadcast ([`notification_message`],
//! field-number order, defaults omitted — the bytes the Go twin writes) and
//! the same length-prefixed bytes are queued on every stream.
//!
//! The response body is a stream over the outbox. hyper polls it only when
//! the client's HTTP/2 window has room, so a client that stops reading
//! stops the polling; its outbox then fills, drops its oldest
//! notifications and at `--drop-limit` drops in a row closes: the stream
//! ends with `RESOURCE_EXHAUSTED` (the WebSocket's 1013) at the next poll.
//! Until then it holds at most one window of data, never a growing queue.
//!
//! The request, its framing and every way a call can be wrong are judged
//! by `parallax_common::grpc` with grpc-go's words; the error answers of the
//! contract are in one table, [`status_for`].

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures::Stream;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use parallax_common::grpc::{
    self, check_request, message_frame, read_unary, response_content_type, status_response,
    status_trailers, GrpcMetrics, Method,
};
use parallax_common::metrics::Metrics;

use crate::hub::{Conn, Hub};
use crate::outbox::Entry;
use crate::topics::{is_valid_name, TopicSet, MAX_TOPICS};
use crate::ws::close;

/// The full name of the service.
pub const SERVICE: &str = "parallax.fanout.v1.FanoutService";
/// `Subscribe`, the one method served.
pub const SUBSCRIBE: Method = Method {
    service: SERVICE,
    path: "/parallax.fanout.v1.FanoutService/Subscribe",
};
/// The largest request message: 64 topics of 64 bytes fit well under it.
pub const MAX_REQUEST_BYTES: usize = 16_384;
/// Trailer carrying the contract's error code, as on the ingest service.
pub const TRAILER_ERROR_CODE: &str = "parallax-error-code";

/// The encoded `FileDescriptorSet` of `fanout.proto`, compiled from
/// `proto/` by the build script, for server reflection.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Why a `Subscribe` call ended with an error of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request is not a `SubscribeRequest`.
    MalformedRequest,
    /// Its topics are not 1–64 valid names.
    InvalidTopics,
    /// The stream fell `--drop-limit` notifications behind (WebSocket 1013).
    SlowConsumer,
    /// The server shuts down (WebSocket 1001).
    GoingAway,
}

/// The contract's error answers of `Subscribe`, in one table (the Go twin's
/// `status*` variables have the same rows).
pub fn status_for(refusal: Refusal) -> Status {
    let (code, message, error_code) = match refusal {
        Refusal::MalformedRequest => (
            Code::InvalidArgument,
            "request is not a valid SubscribeRequest",
            "malformed_request",
        ),
        Refusal::InvalidTopics => (
            Code::InvalidArgument,
            crate::handler::INVALID_TOPICS.message,
            crate::handler::INVALID_TOPICS.code,
        ),
        Refusal::SlowConsumer => (
            Code::ResourceExhausted,
            "subscriber fell behind: too many notifications dropped in a row",
            "slow_consumer",
        ),
        Refusal::GoingAway => (
            Code::Unavailable,
            "the server is shutting down",
            "going_away",
        ),
    };
    let mut metadata = MetadataMap::new();
    metadata.insert(TRAILER_ERROR_CODE, MetadataValue::from_static(error_code));
    Status::with_metadata(code, message, metadata)
}

/// The refusal a stream ends with when its connection closed with `code`.
fn refusal_for_close(code: u16) -> Refusal {
    if code == close::TRY_AGAIN_LATER {
        Refusal::SlowConsumer
    } else {
        Refusal::GoingAway
    }
}

/// Reads a `SubscribeRequest` by the rule of Go's protobuf runtime (which
/// the Go twin uses): field 1 as length-delimited UTF-8 strings; any other
/// field — an unknown number, or field 1 with another wire type — skipped.
/// (prost's derived decoder refuses a known field with a wrong wire type.)
/// Then checks the topics as the WebSocket's `topics` parameter: 1–64
/// distinct valid names, duplicates ignored. Also returns `limit` (field 2,
/// a varint): the stream ends with OK after that many notifications.
pub fn parse_subscribe_request(mut message: &[u8]) -> Result<(TopicSet, u32), Refusal> {
    let mut names = Vec::new();
    let mut limit = 0;
    while message.has_remaining() {
        let (tag, wire_type) = decode_key(&mut message).map_err(|_| Refusal::MalformedRequest)?;
        if tag == 2 && wire_type == WireType::Varint {
            // uint32: the low 32 bits of the varint, as Go reads it.
            limit = decode_varint(&mut message).map_err(|_| Refusal::MalformedRequest)? as u32;
        } else if tag == 1 && wire_type == WireType::LengthDelimited {
            let len = decode_varint(&mut message).map_err(|_| Refusal::MalformedRequest)?;
            if len > message.len() as u64 {
                return Err(Refusal::MalformedRequest);
            }
            let (name, rest) = message.split_at(len as usize);
            names.push(std::str::from_utf8(name).map_err(|_| Refusal::MalformedRequest)?);
            message = rest;
        } else {
            skip_field(wire_type, tag, &mut message, DecodeContext::default())
                .map_err(|_| Refusal::MalformedRequest)?;
        }
    }
    // Every name is checked before the count, as Go checks them.
    if names.iter().any(|n| !is_valid_name(n)) {
        return Err(Refusal::InvalidTopics);
    }
    let mut set = TopicSet::new();
    for name in names {
        set.insert(name);
    }
    if set.is_empty() || set.len() > MAX_TOPICS {
        return Err(Refusal::InvalidTopics);
    }
    Ok((set, limit))
}

/// The `Notification` message of a notification frame
/// (`{"id":…,"topic":…,"published_at_unix_us":…,"body":…}`, as
/// [`frame::notification`](crate::frame::notification) writes it and the
/// Kafka path carries it), length-prefixed for the stream: fields in
/// field-number order, defaults omitted, `body_json` the body's exact
/// bytes. `None` for bytes that are not such a frame (only a foreign Kafka
/// record can be that).
pub fn notification_message(frame: &[u8]) -> Option<Bytes> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Parts<'a> {
        id: String,
        topic: String,
        published_at_unix_us: u64,
        #[serde(borrow)]
        body: &'a serde_json::value::RawValue,
    }
    let parts: Parts = serde_json::from_slice(frame).ok()?;
    if parts.published_at_unix_us > i64::MAX as u64 {
        return None;
    }
    let mut out = Vec::with_capacity(frame.len());
    let string = |out: &mut Vec<u8>, field: u32, value: &str| {
        if !value.is_empty() {
            prost::encoding::string::encode(field, &value.to_owned(), out);
        }
    };
    string(&mut out, 1, &parts.id);
    string(&mut out, 2, &parts.topic);
    if parts.published_at_unix_us != 0 {
        prost::encoding::int64::encode(3, &(parts.published_at_unix_us as i64), &mut out);
    }
    string(&mut out, 4, parts.body.get());
    Some(message_frame(&out))
}

/// `FanoutService` as a tower service over HTTP/2 requests: every path of
/// the listener that is not reflection comes here, so unknown services and
/// methods get grpc-go's answers too.
#[derive(Clone)]
pub struct FanoutService {
    hub: Arc<Hub>,
    calls: GrpcMetrics,
    plant: Option<Arc<str>>,
}

impl FanoutService {
    /// The service over `hub`; its call metrics join `metrics`.
    pub fn new(hub: Arc<Hub>, metrics: &Metrics) -> Self {
        Self {
            hub,
            calls: GrpcMetrics::register(metrics),
            plant: None,
        }
    }

    /// A deliberate difference, for the proxy's tests only (the hidden
    /// `--test-plant-grpc-mismatch ID`): the notification with id `id` is
    /// sent with `published_at_unix_us` one higher, so a comparison with
    /// the Go twin must report exactly that field.
    pub fn plant_mismatch(mut self, id: Option<&str>) -> Self {
        self.plant = id.map(Arc::from);
        self
    }

    async fn call(self, request: Request<Body>) -> Response<Body> {
        let content_type = response_content_type(request.headers());
        let method = match check_request(&request, &[SUBSCRIBE]) {
            Ok(method) => method,
            Err((http_status, status)) => {
                return status_response(http_status, content_type, status)
            }
        };
        // From here on the call has reached the method, as in grpc-go.
        let started = Instant::now();
        let refused = |status: Status| {
            self.calls.observe(method, started, status.code());
            status_response(StatusCode::OK, content_type.clone(), status)
        };
        let message = match read_unary(request.into_body(), MAX_REQUEST_BYTES).await {
            Ok(message) => message,
            Err(status) => return refused(status),
        };
        let (topics, limit) = match parse_subscribe_request(&message) {
            Ok(parsed) => parsed,
            Err(refusal) => return refused(status_for(refusal)),
        };
        let conn = self.hub.connect_stream(&topics);
        if conn.outbox.closing().is_some() {
            // Registered during a shutdown: refused as grpc-go's twin
            // refuses it, before any header.
            self.hub.disconnect(&conn, &topics);
            return refused(status_for(Refusal::GoingAway));
        }
        let subscription = Subscription {
            hub: self.hub.clone(),
            conn,
            topics,
            calls: self.calls.clone(),
            started,
            limit,
            sent: 0,
            plant: self.plant.clone(),
            ended: false,
        };
        grpc::stream_response(content_type, subscription)
    }
}

impl tower_service::Service<Request<Body>> for FanoutService {
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

/// One `Subscribe` stream's body: the connection's queued notifications,
/// then the trailers of the status it ends with. Dropped (the client went
/// away, or the call ended), it leaves the hub.
struct Subscription {
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    topics: TopicSet,
    calls: GrpcMetrics,
    started: Instant,
    /// Notifications after which the stream ends with OK; 0: no end.
    limit: u32,
    sent: u32,
    plant: Option<Arc<str>>,
    ended: bool,
}

impl Stream for Subscription {
    type Item = Result<Frame<Bytes>, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            if self.limit != 0 && self.sent == self.limit {
                self.ended = true;
                self.calls.observe(SUBSCRIBE, self.started, Code::Ok);
                let ok = Status::ok("");
                return Poll::Ready(Some(Ok(Frame::trailers(status_trailers(&ok)))));
            }
            if let Some(code) = self.conn.outbox.closing() {
                let status = status_for(refusal_for_close(code));
                self.ended = true;
                self.calls.observe(SUBSCRIBE, self.started, status.code());
                return Poll::Ready(Some(Ok(Frame::trailers(status_trailers(&status)))));
            }
            match self.conn.outbox.pop() {
                Some(Entry::Notification { frame, queued_at }) => {
                    // hyper polls only when the client's window has room:
                    // the frame is as good as written.
                    self.conn.outbox.written();
                    self.hub.metrics().sent(queued_at.elapsed());
                    self.sent += 1;
                    let frame = match &self.plant {
                        Some(id) => planted(frame, id),
                        None => frame,
                    };
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                // A stream gets no subscription frames; none is queued.
                Some(Entry::Subscribed(_)) => continue,
                None => {}
            }
            if self.conn.outbox.poll_changed(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.conn.outbox.close(close::GOING_AWAY);
        self.hub.disconnect(&self.conn, &self.topics);
        if !self.ended {
            // The client cancelled or went away: grpc-go's handler sees
            // its context cancelled.
            self.calls.observe(SUBSCRIBE, self.started, Code::Cancelled);
        }
    }
}

/// The `Notification` message, for [`planted`] only (the stream's messages
/// are written by [`notification_message`]).
#[derive(Clone, PartialEq, prost::Message)]
struct PlantedNotification {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    topic: String,
    #[prost(int64, tag = "3")]
    published_at_unix_us: i64,
    #[prost(string, tag = "4")]
    body_json: String,
}

/// `frame` (a length-prefixed Notification) with `published_at_unix_us`
/// one higher when its id is `id`; otherwise `frame` as it is.
fn planted(frame: Bytes, id: &str) -> Bytes {
    use prost::Message as _;
    match PlantedNotification::decode(&frame[5..]) {
        Ok(mut n) if n.id == id => {
            n.published_at_unix_us = n.published_at_unix_us.wrapping_add(1);
            message_frame(&n.encode_to_vec())
        }
        _ => frame,
    }
}

/// Serves `service`, with server reflection, on `listener` (HTTP/2 only,
/// tonic's server) until `shutdown` resolves; the hub's `close_all` ends
/// the streams, and in-flight calls get at most `grace`.
pub async fn serve(
    listener: TcpListener,
    service: FanoutService,
    shutdown: impl std::future::Future<Output = ()> + Clone + Send + 'static,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    let service = grpc::with_reflection(service, DESCRIPTOR_SET)
        .expect("the build script's descriptor set is complete");
    grpc::serve(listener, service, shutdown, grace).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_field(field: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![field << 3 | 2, value.len() as u8];
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn subscribe_requests_are_read_like_gos_runtime_and_checked_like_the_query() {
        let topics = |m: &[u8]| {
            parse_subscribe_request(m).map(|(s, _)| s.iter().map(str::to_owned).collect::<Vec<_>>())
        };
        let ab = [
            string_field(1, b"b"),
            string_field(1, b"a"),
            string_field(1, b"b"),
        ]
        .concat();
        assert_eq!(topics(&ab), Ok(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(topics(b""), Err(Refusal::InvalidTopics));
        assert_eq!(
            topics(&string_field(1, b"a b")),
            Err(Refusal::InvalidTopics)
        );
        assert_eq!(topics(&string_field(1, b"")), Err(Refusal::InvalidTopics));
        let unknown = [string_field(1, b"a"), vec![0x10, 0x01]].concat();
        assert_eq!(topics(&unknown), Ok(vec!["a".to_owned()]));
        let varint_topics = [vec![0x08, 0x01], string_field(1, b"a")].concat();
        assert_eq!(topics(&varint_topics), Ok(vec!["a".to_owned()]));
        assert_eq!(topics(&[0x0a, 0x01, 0xff]), Err(Refusal::MalformedRequest));
        let limit_as_bytes = [vec![0x12, 0x00], string_field(1, b"a")].concat();
        assert_eq!(topics(&limit_as_bytes), Ok(vec!["a".to_owned()]));
        let limit = [0x0a, 0x01, b'a', 0x10, 0x81, 0x80, 0x80, 0x80, 0x10];
        assert_eq!(parse_subscribe_request(&limit).map(|(_, l)| l), Ok(1));
        assert_eq!(topics(&[0x0a, 0x05, b'a']), Err(Refusal::MalformedRequest));
        let many: Vec<u8> = (0..65)
            .flat_map(|i| string_field(1, format!("t{i}").as_bytes()))
            .collect();
        assert_eq!(topics(&many), Err(Refusal::InvalidTopics));
    }

    #[test]
    fn a_notification_message_is_the_deterministic_encoding_of_its_frame() {
        let frame = crate::frame::notification("n-1", "news", 17, r#"{"a": [1,2]}"#);
        let message = notification_message(&frame).unwrap();
        let mut want = vec![0u8, 0, 0, 0, 0];
        want.extend(string_field(1, b"n-1"));
        want.extend(string_field(2, b"news"));
        want.extend([3 << 3, 17]);
        want.extend(string_field(4, br#"{"a": [1,2]}"#));
        want[4] = (want.len() - 5) as u8;
        assert_eq!(&message[..], &want[..]);
        assert!(notification_message(b"{}").is_none());
        assert!(notification_message(b"not json").is_none());
    }
}
