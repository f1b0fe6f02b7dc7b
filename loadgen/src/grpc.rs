//! Unary gRPC calls on the open model, over HTTP/2 (h2c with prior
//! knowledge, or TLS with ALPN `h2`).
//!
//! goose speaks HTTP/1.1 through reqwest and cannot read trailers, where a
//! gRPC answer keeps its `grpc-status`; so gRPC load is paced by
//! [`crate::pacing`] directly, as the ingest bench is: call `n` is due at
//! `start + n / rate` whatever became of earlier calls, latency is measured
//! from that moment (coordinated omission corrected), and slots taken late
//! are counted.
//!
//! HTTP/2 multiplexes: a few connections carry every call. Each sender (one
//! call in flight at a time, so the senders are the concurrency) is tied to
//! one of [`GrpcConfig::connections`] connections and clones its
//! `SendRequest` handle (a channel sender, cheap) for every call; a failed
//! connection is replaced by the next sender that finds it closed.
//!
//! What a call came to is an [`Outcome`]: the `grpc-status` the server
//! sent (in trailers, or in the headers of a trailers-only answer), an HTTP
//! status other than 200, an answer with no `grpc-status` at all, or a
//! transport failure. Outcomes are counted per distinct value, so a report
//! says how many calls ended `UNAVAILABLE` and how many `INVALID_ARGUMENT`.
//!
//! Messages are the caller's ([`Calls`]): bytes already encoded, e.g. from
//! a JSON template and a message type of a descriptor set
//! ([`encode_json`]).
//!
//! Server-streaming calls (a method whose descriptor says
//! `server_streaming`, [`method_shape`]) are sent the same way: one request
//! message, then every response message is read until the trailers. The
//! messages are counted as they complete (a message may span DATA frames),
//! the call's latency runs from its slot's time to the trailers, and the
//! first message's arrival is timed from the same moment
//! ([`GrpcReport::first_message_us`]). A stream that has not ended by
//! [`GrpcConfig::timeout`] is cut and counted as a timeout, like any call
//! that overstays: a load generator must not hold a slot's sender forever.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, TE};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::http::TransportError;
use crate::open::{OpenReport, Window};
use crate::pacing::{self, Plan, Schedule, Sender};
use crate::Error;

/// The TLS library whose client configuration [`Target::parse`] takes.
pub use rustls;

/// The canonical names of gRPC status codes 0–16 (`grpc/doc/statuscodes.md`).
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// What one call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server's `grpc-status`.
    Status(u32),
    /// An HTTP status other than 200 (a proxy or a server that is not gRPC).
    Http(u16),
    /// HTTP 200 without any `grpc-status`: not a gRPC answer.
    NoStatus,
    /// No answer: connect, timeout or a broken connection.
    Transport(TransportError),
    /// Not sent: the slot's message could not be built (a template that
    /// rendered something that does not encode as the input type).
    BadMessage,
}

impl Outcome {
    /// `OK`, `UNAVAILABLE`, `code 42`, `http 503`, `no grpc-status`,
    /// `transport timeout`: the key outcomes are counted under in reports.
    pub fn label(self) -> String {
        match self {
            Outcome::Status(c) => CODE_NAMES
                .get(c as usize)
                .map_or_else(|| format!("code {c}"), |n| (*n).to_owned()),
            Outcome::Http(s) => format!("http {s}"),
            Outcome::NoStatus => "no grpc-status".into(),
            Outcome::Transport(e) => format!("transport {e}"),
            Outcome::BadMessage => "message not encodable (not sent)".into(),
        }
    }
}

/// One call a slot makes.
#[derive(Debug, Clone)]
pub struct Call {
    /// Which of the caller's call templates this is (passed to [`Calls::ok`]).
    pub template: usize,
    /// `/package.Service/Method`.
    pub path: String,
    /// Request metadata (lower-case ASCII names; `-bin` names carry base64).
    pub metadata: Vec<(HeaderName, HeaderValue)>,
    /// The encoded request message, without the 5-byte gRPC prefix.
    pub message: Bytes,
}

/// What to call: built per slot, judged per outcome. Shared by every
/// sender, so implementations keep no per-call mutable state.
pub trait Calls: Send + Sync + 'static {
    /// The call for slot `n`, or why its message could not be built (with
    /// the call template's index).
    fn call(&self, n: u64) -> Result<Call, (usize, String)>;
    /// Whether `outcome` of a call of template `template` is a success
    /// (default: `OK`).
    fn ok(&self, template: usize, outcome: Outcome) -> bool {
        let _ = template;
        outcome == Outcome::Status(0)
    }
    /// Whether the calls stream their answers, so a report counts their
    /// messages as its units (default: no, a unit is a call).
    fn streaming(&self) -> bool {
        false
    }
}

/// Where to call: `http://host:port` (h2c, prior knowledge) or
/// `https://host:port` (TLS, ALPN `h2`, with the caller's client config).
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    /// `scheme://authority`, the prefix of every request's URI.
    base: String,
    /// The TLS configuration and the name the certificate must carry.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.base)
    }
}

impl Target {
    /// Parses `url`; `https://` needs `tls` (its ALPN is set to `h2` here).
    pub fn parse(url: &str, tls: Option<rustls::ClientConfig>) -> Result<Self, Error> {
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::Config(format!("the target {url:?} is not a URL: {e}")))?;
        let secure = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(Error::Config(format!(
                    "the target {url:?} must be http://host:port (h2c) or https://host:port (TLS)"
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| Error::Config(format!("the target {url:?} has no host:port")))?;
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| Error::Config(format!("the target {url:?}: cannot resolve {host}")))?;
        let tls = match (secure, tls) {
            (false, _) => None,
            (true, None) => {
                return Err(Error::Config(format!(
                    "the target {url:?} is https:// but no TLS client configuration was given"
                )))
            }
            (true, Some(mut config)) => {
                config.alpn_protocols = vec![b"h2".to_vec()];
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| Error::Config(format!("the target {url:?}: {host}: {e}")))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
            }
        };
        Ok(Self {
            addr,
            base: format!("{}://{authority}", if secure { "https" } else { "http" }),
            tls,
        })
    }

    /// `scheme://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A new HTTP/2 connection, or why not (for the report's first error).
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
        // Small calls must not wait for Nagle's delayed-ACK dance.
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", self.base))?;
                if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                    // The server would read our preface as HTTP/1.1.
                    return Err(format!(
                        "{} did not choose h2 by ALPN: it does not serve HTTP/2 over TLS",
                        self.base
                    ));
                }
                handshake(tls).await
            }
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        // Many calls share a connection: windows large enough that flow
        // control never paces a benchmark.
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    // The connection future does the socket I/O; it ends when every
    // `SendRequest` clone is dropped or the server goes away.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// How to load.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    pub target: Target,
    pub schedule: Schedule,
    /// Slots due before this offset are sent but not measured.
    pub warmup: Duration,
    /// HTTP/2 connections the calls are spread over.
    pub connections: usize,
    /// Calls in flight at most (one per sender).
    pub concurrency: usize,
    /// A call without its whole answer after this long is a timeout.
    pub timeout: Duration,
    /// A slot taken more than this after its time counts as late.
    pub late_after: Duration,
    /// Slot numbers start here (keeps warm-up ids apart from measured ones).
    pub first_slot: u64,
}

impl GrpcConfig {
    /// 64 calls in flight over 2 connections, 10 s timeout, 10 ms late.
    pub fn new(target: Target, schedule: Schedule) -> Self {
        Self {
            target,
            schedule,
            warmup: Duration::ZERO,
            connections: 2,
            concurrency: 64,
            timeout: Duration::from_secs(10),
            late_after: Duration::from_millis(10),
            first_slot: 0,
        }
    }
}

/// What a gRPC run measured (warm-up excluded).
#[derive(Debug, Clone)]
pub struct GrpcReport {
    /// Outcomes with whether [`Calls::ok`] judged them a success.
    pub report: pacing::Report<(Outcome, bool)>,
    /// Response messages the measured calls received (a unary call's one,
    /// a stream's many; those of a stream cut by its timeout included).
    pub messages: u64,
    /// Measured calls' time from their slot's time to their first response
    /// message, µs (calls that received none are not in it). For a stream
    /// this is when it started delivering; `report.latency_us` is when it
    /// ended.
    pub first_message_us: Histogram<u64>,
    /// [`Calls::streaming`]: the units are the messages.
    pub streaming: bool,
    /// Measured calls judged failed.
    pub errors: u64,
    pub target_rate_per_sec: f64,
    /// Why the first connection that failed did (a refused port, a
    /// certificate the client does not trust, no h2 by ALPN).
    pub connect_error: Option<String>,
}

impl GrpcReport {
    /// Measured calls per outcome label (`OK`, `UNAVAILABLE`, `http 503`…).
    pub fn by_code(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((outcome, _), count) in &self.report.outcomes {
            *out.entry(outcome.label()).or_default() += count;
        }
        out
    }

    /// As the HTTP open model reports it, so one results path serves both.
    pub fn to_open_report(&self) -> OpenReport {
        let r = &self.report;
        let failed: Vec<String> = r
            .outcomes
            .iter()
            .filter(|((_, ok), _)| !ok)
            .map(|((o, _), n)| format!("{n} calls ended {}", o.label()))
            .take(5)
            .chain(
                self.connect_error
                    .iter()
                    .map(|e| format!("first connection failure: {e}")),
            )
            .collect();
        OpenReport {
            target_rate_per_sec: self.target_rate_per_sec,
            latency_us: r.latency_us.clone(),
            requests: r.measured,
            units: if self.streaming {
                self.messages
            } else {
                r.measured
            },
            errors: self.errors,
            late: r.late,
            not_sent: r.not_sent,
            measured_secs: r.measured_elapsed.as_secs_f64(),
            windows: Vec::<Window>::new(),
            error_samples: if self.errors > 0 { failed } else { Vec::new() },
        }
    }
}

/// Splits a response body's bytes into gRPC messages (5-byte prefix, then
/// the message), across DATA frames, and counts the whole ones.
#[derive(Debug, Default)]
struct MessageCounter {
    /// Prefix bytes of the current message seen so far (up to 5).
    prefix: [u8; 5],
    prefix_len: usize,
    /// Message bytes still to skip after a complete prefix.
    rest: u64,
}

impl MessageCounter {
    /// Feeds `data`; returns how many messages it completed.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut done = 0;
        while !data.is_empty() {
            if self.prefix_len < 5 {
                let take = (5 - self.prefix_len).min(data.len());
                self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
                self.prefix_len += take;
                data = &data[take..];
                if self.prefix_len < 5 {
                    break;
                }
                let p = self.prefix;
                self.rest = u64::from(u32::from_be_bytes([p[1], p[2], p[3], p[4]]));
            }
            let take = self.rest.min(data.len() as u64);
            self.rest -= take;
            data = &data[take as usize..];
            if self.rest == 0 {
                done += 1;
                self.prefix_len = 0;
            }
        }
        done
    }
}

/// What one call received before it ended or was cut: kept outside the
/// exchange's future so a timeout does not lose it.
#[derive(Debug, Default)]
struct Progress {
    messages: u64,
    first_message: Option<Instant>,
}

/// One sender: a share of a connection, one call at a time.
struct GrpcSender<C> {
    calls: Arc<C>,
    target: Arc<Target>,
    /// The connection this sender uses; a tokio mutex because a sender that
    /// finds it closed holds it across the reconnect, so the others wait
    /// for that one new connection instead of each opening their own.
    connection: Arc<Mutex<Option<SendRequest<Full<Bytes>>>>>,
    timeout: Duration,
    first_slot: u64,
    /// The first connection failure's reason, shared by the senders.
    connect_error: Arc<std::sync::OnceLock<String>>,
    /// The schedule's start (given to [`pacing::run_from`]), its slots'
    /// offsets and the warm-up, so a first message is timed from the slot's
    /// time as the pacing times the end, and only measured slots count.
    start: Instant,
    schedule: Schedule,
    warmup: Duration,
    /// Measured slots' response messages and first-message latencies:
    /// this sender's own, summed after the run.
    messages: u64,
    first_message_us: Histogram<u64>,
}

impl<C: Calls> GrpcSender<C> {
    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let mut slot = self.connection.lock().await;
        if let Some(s) = slot.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        match self.target.connect().await {
            Ok(fresh) => {
                *slot = Some(fresh.clone());
                Ok(fresh)
            }
            Err(reason) => {
                let _ = self.connect_error.set(reason);
                Err(TransportError::Connect)
            }
        }
    }

    async fn exchange(&self, call: Call, progress: &mut Progress) -> Outcome {
        let mut sender = match self.sender().await {
            Ok(s) => s,
            Err(e) => return Outcome::Transport(e),
        };
        let mut body = BytesMut::with_capacity(5 + call.message.len());
        body.put_u8(0);
        body.put_u32(call.message.len() as u32);
        body.put_slice(&call.message);
        let uri = format!("{}{}", self.target.base, call.path);
        let mut request = match Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
            .header(TE, HeaderValue::from_static("trailers"))
            .body(Full::new(body.freeze()))
        {
            Ok(r) => r,
            // Paths are checked when calls are built; an unusable one is
            // the server's business to refuse, not ours to panic on.
            Err(_) => return Outcome::Http(400),
        };
        request.headers_mut().extend(call.metadata);
        if sender.ready().await.is_err() {
            return Outcome::Transport(TransportError::Io);
        }
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(_) => return Outcome::Transport(TransportError::Io),
        };
        if response.status() != http::StatusCode::OK {
            return Outcome::Http(response.status().as_u16());
        }
        // Trailers-only: the status is in the headers.
        let mut status = grpc_status(response.headers());
        let mut body = response.into_body();
        let mut counter = MessageCounter::default();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Outcome::Transport(TransportError::Io);
            };
            if let Some(data) = frame.data_ref() {
                let complete = counter.feed(data);
                if complete > 0 && progress.messages == 0 {
                    progress.first_message = Some(Instant::now());
                }
                progress.messages += complete;
            }
            if let Some(trailers) = frame.trailers_ref() {
                status = grpc_status(trailers).or(status);
            }
        }
        status.map_or(Outcome::NoStatus, Outcome::Status)
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl<C: Calls> Sender for GrpcSender<C> {
    type Outcome = (Outcome, bool);

    async fn send(&mut self, n: u64) -> (Outcome, bool) {
        let slot = self.first_slot.wrapping_add(n);
        let call = match self.calls.call(slot) {
            Ok(call) => call,
            Err((template, _)) => {
                let outcome = Outcome::BadMessage;
                return (outcome, self.calls.ok(template, outcome));
            }
        };
        let template = call.template;
        let sent = Instant::now();
        let mut progress = Progress::default();
        let exchange = self.exchange(call, &mut progress);
        let outcome = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Transport(TransportError::Timeout),
        };
        if let Some(offset) = self.schedule.offset(n) {
            if offset >= self.warmup {
                self.messages += progress.messages;
                if let Some(first) = progress.first_message {
                    // As the pacing does: from the slot's time, or from
                    // the send when that was earlier.
                    let from = (self.start + offset).min(sent);
                    let us = first.saturating_duration_since(from).as_micros() as u64;
                    self.first_message_us.saturating_record(us.max(1));
                }
            }
        }
        (outcome, self.calls.ok(template, outcome))
    }
}

/// Runs the schedule of `config` with the calls of `calls`.
pub async fn run<C: Calls>(calls: Arc<C>, config: &GrpcConfig) -> Result<GrpcReport, Error> {
    let s = &config.schedule;
    if !crate::positive(s.rate_per_sec) {
        return Err(Error::Config("the rate must be above zero".into()));
    }
    if config.connections == 0 || config.concurrency == 0 {
        return Err(Error::Config(
            "at least one connection and one call in flight are needed".into(),
        ));
    }
    let target = Arc::new(config.target.clone());
    let connections: Vec<_> = (0..config.connections)
        .map(|_| Arc::new(Mutex::new(None)))
        .collect();
    let connect_error = Arc::new(std::sync::OnceLock::new());
    let start = Instant::now();
    let senders = (0..config.concurrency)
        .map(|i| GrpcSender {
            connect_error: Arc::clone(&connect_error),
            calls: Arc::clone(&calls),
            target: Arc::clone(&target),
            connection: Arc::clone(&connections[i % connections.len()]),
            timeout: config.timeout,
            first_slot: config.first_slot,
            start,
            schedule: config.schedule,
            warmup: config.warmup,
            messages: 0,
            first_message_us: pacing::latency_histogram(),
        })
        .collect();
    let plan = Plan {
        schedule: config.schedule,
        warmup: config.warmup,
        late_after: config.late_after,
        // See `pacing`: tokio's timer rounds up to the millisecond.
        early_by: pacing::EARLY_BY,
        overrun: Duration::from_secs(5),
    };
    let (report, senders) = pacing::run_from(start, plan, senders).await;
    let mut messages = 0;
    let mut first_message_us = pacing::latency_histogram();
    for s in &senders {
        messages += s.messages;
        first_message_us
            .add(&s.first_message_us)
            .expect("histograms share bounds");
    }
    let errors = report
        .outcomes
        .iter()
        .filter(|((_, ok), _)| !ok)
        .map(|(_, count)| count)
        .sum();
    Ok(GrpcReport {
        report,
        messages,
        first_message_us,
        streaming: calls.streaming(),
        errors,
        target_rate_per_sec: s.rate_per_sec,
        connect_error: connect_error.get().cloned(),
    })
}

/// A descriptor set file (`protoc --include_imports --descriptor_set_out`,
/// `buf build -o`).
pub fn load_descriptors(path: &std::path::Path) -> Result<DescriptorPool, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    DescriptorPool::decode(bytes.as_slice()).map_err(|e| {
        format!(
            "{} is not a binary FileDescriptorSet (protoc --include_imports --descriptor_set_out=FILE, or buf build -o FILE): {e}",
            path.display()
        )
    })
}

/// A method as the loader sends it.
#[derive(Debug, Clone)]
pub struct MethodShape {
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
    /// The descriptor's `server_streaming`: the answer is a stream of
    /// `output` messages, read to its trailers.
    pub server_streaming: bool,
}

/// The request and response message types of `method`, given as
/// `package.Service/Method` (or `/package.Service/Method`).
pub fn method_types(
    pool: &DescriptorPool,
    method: &str,
) -> Result<(MessageDescriptor, MessageDescriptor), String> {
    method_shape(pool, method).map(|m| (m.input, m.output))
}

/// `method` (`package.Service/Method`) from the descriptors: its types and
/// whether it streams its answer. A client-streaming method is refused: a
/// call sends one request message.
pub fn method_shape(pool: &DescriptorPool, method: &str) -> Result<MethodShape, String> {
    let trimmed = method.trim_start_matches('/');
    let (service, name) = trimmed
        .rsplit_once('/')
        .ok_or_else(|| format!("{method:?} is not package.Service/Method"))?;
    let svc = pool.get_service_by_name(service).ok_or_else(|| {
        let known: Vec<_> = pool
            .services()
            .map(|s| s.full_name().to_owned())
            .take(8)
            .collect();
        format!(
            "no service {service:?} in the descriptors (they define: {})",
            if known.is_empty() {
                "no service".to_owned()
            } else {
                known.join(", ")
            }
        )
    })?;
    let m = svc.methods().find(|m| m.name() == name).ok_or_else(|| {
        let known: Vec<_> = svc.methods().map(|m| m.name().to_owned()).collect();
        format!(
            "{service} has no method {name:?} (it has: {})",
            known.join(", ")
        )
    })?;
    if m.is_client_streaming() {
        return Err(format!(
            "{trimmed} is a client-streaming method; only unary and server-streaming calls are sent (one request message each)"
        ));
    }
    Ok(MethodShape {
        input: m.input(),
        output: m.output(),
        server_streaming: m.is_server_streaming(),
    })
}

/// A message of type `message` from its proto3 JSON form, encoded.
pub fn encode_json(message: &MessageDescriptor, json: &str) -> Result<Vec<u8>, String> {
    let mut de = serde_json::Deserializer::from_str(json);
    let decoded = DynamicMessage::deserialize(message.clone(), &mut de)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| format!("not a {} in proto3 JSON: {e}", message.full_name()))?;
    Ok(prost::Message::encode_to_vec(&decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_labelled_by_their_code_names() {
        assert_eq!(Outcome::Status(0).label(), "OK");
        assert_eq!(Outcome::Status(14).label(), "UNAVAILABLE");
        assert_eq!(Outcome::Status(99).label(), "code 99");
        assert_eq!(Outcome::Http(503).label(), "http 503");
        assert_eq!(
            Outcome::Transport(TransportError::Timeout).label(),
            "transport timeout"
        );
    }

    /// A real HTTP/2 server answering by path: `/ok/*` with a message and
    /// `grpc-status: 0` in trailers, `/bad/*` trailers-only
    /// `INVALID_ARGUMENT`, `/down/*` HTTP 503, `/stream/*` three messages
    /// (the first split across two DATA frames, two in one frame) then
    /// `grpc-status: 0`, `/hang/*` one message and never an end; it counts
    /// what it got.
    async fn server() -> (SocketAddr, Arc<std::sync::atomic::AtomicU64>) {
        use http_body_util::{Full, StreamBody};
        use hyper::body::Frame;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let counter = Arc::clone(&counter);
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let counter = Arc::clone(&counter);
                        async move {
                            let path = req.uri().path().to_owned();
                            let te = req.headers().get(TE).cloned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            // The 5-byte prefix and the message.
                            assert_eq!(&body[..5], &[0, 0, 0, 0, 3]);
                            assert_eq!(&body[5..], b"abc");
                            assert_eq!(te.unwrap(), "trailers");
                            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", HeaderValue::from_static("0"));
                            let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                                Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
                                Ok(Frame::trailers(trailers)),
                            ];
                            let stream: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                                Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02h"))),
                                Ok(Frame::data(Bytes::from_static(b"i\0\0\0\0\x01x\0\0\0\0\0"))),
                                Ok(Frame::trailers(frames_trailers())),
                            ];
                            let body: http_body_util::combinators::BoxBody<
                                Bytes,
                                std::convert::Infallible,
                            > = if path.starts_with("/ok/") {
                                StreamBody::new(futures::stream::iter(frames)).boxed()
                            } else if path.starts_with("/stream/") {
                                StreamBody::new(futures::stream::iter(stream)).boxed()
                            } else if path.starts_with("/hang/") {
                                let one: Result<Frame<Bytes>, std::convert::Infallible> =
                                    Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0])));
                                StreamBody::new(futures::StreamExt::chain(
                                    futures::stream::iter([one]),
                                    futures::stream::pending(),
                                ))
                                .boxed()
                            } else {
                                Full::new(Bytes::new()).boxed()
                            };
                            let mut response = http::Response::new(body);
                            if path.starts_with("/bad/") {
                                response
                                    .headers_mut()
                                    .insert("grpc-status", HeaderValue::from_static("3"));
                            } else if path.starts_with("/down/") {
                                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        (addr, seen)
    }

    fn frames_trailers() -> http::HeaderMap {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers
    }

    /// Every slot calls `path`.
    struct One(&'static str);

    impl Calls for One {
        fn call(&self, _: u64) -> Result<Call, (usize, String)> {
            Ok(Call {
                template: 0,
                path: self.0.into(),
                metadata: vec![],
                message: Bytes::from_static(b"abc"),
            })
        }
    }

    fn config(addr: SocketAddr, calls: u64) -> GrpcConfig {
        let target = Target::parse(&format!("http://{addr}"), None).unwrap();
        let mut config = GrpcConfig::new(
            target,
            Schedule {
                rate_per_sec: 100.0,
                ramp: Duration::ZERO,
                duration: Duration::from_secs(1),
                max_requests: calls,
            },
        );
        config.concurrency = 4;
        config
    }

    #[test]
    fn messages_are_counted_across_and_within_data_frames() {
        let mut c = MessageCounter::default();
        assert_eq!(c.feed(&[0, 0, 0]), 0);
        assert_eq!(c.feed(&[0, 3, b'a']), 0);
        assert_eq!(c.feed(&[b'b', b'c', 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]), 2);
        assert_eq!(c.feed(b"z"), 1);
        assert_eq!(c.feed(&[]), 0);
    }

    #[tokio::test]
    async fn a_stream_is_read_to_its_trailers_and_its_messages_counted() {
        let (addr, seen) = server().await;
        let report = run(Arc::new(One("/stream/x.S/M")), &config(addr, 5))
            .await
            .unwrap();
        assert_eq!(
            report.by_code().get("OK"),
            Some(&5),
            "{:?}",
            report.by_code()
        );
        assert_eq!(report.errors, 0);
        assert_eq!(report.messages, 15);
        assert_eq!(report.to_open_report().units, 5, "calls, unless streaming");
        assert_eq!(report.first_message_us.len(), 5);
        // The first message cannot arrive after the trailers.
        assert!(report.first_message_us.max() <= report.report.latency_us.max());
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn a_stream_that_never_ends_is_cut_at_the_timeout() {
        let (addr, _) = server().await;
        let mut config = config(addr, 2);
        config.timeout = Duration::from_millis(300);
        let report = run(Arc::new(One("/hang/x.S/M")), &config).await.unwrap();
        let codes = report.by_code();
        assert_eq!(codes.get("transport timeout"), Some(&2), "{codes:?}");
        assert_eq!(report.errors, 2);
        // What arrived before the cut still counts.
        assert_eq!(report.messages, 2);
        // Cut at the timeout, not held until the run's overrun.
        assert!(report.report.latency_us.min() >= 300_000);
        assert!(report.report.latency_us.max() < 5_000_000);
    }

    /// `x.S` with `Unary`, `Watch` (server streaming) and `Upload` (client
    /// streaming), all from and to `x.M`.
    fn descriptors() -> DescriptorPool {
        use prost_reflect::prost_types::{
            DescriptorProto, FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto,
            ServiceDescriptorProto,
        };
        let method = |name: &str, client: bool, server: bool| MethodDescriptorProto {
            name: Some(name.into()),
            input_type: Some(".x.M".into()),
            output_type: Some(".x.M".into()),
            client_streaming: Some(client),
            server_streaming: Some(server),
            ..Default::default()
        };
        let file = FileDescriptorProto {
            name: Some("x.proto".into()),
            package: Some("x".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("M".into()),
                ..Default::default()
            }],
            service: vec![ServiceDescriptorProto {
                name: Some("S".into()),
                method: vec![
                    method("Unary", false, false),
                    method("Watch", false, true),
                    method("Upload", true, false),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] }).unwrap()
    }

    #[test]
    fn streaming_is_read_from_the_descriptor_and_client_streaming_is_refused() {
        let pool = descriptors();
        assert!(method_shape(&pool, "x.S/Watch").unwrap().server_streaming);
        assert!(!method_shape(&pool, "/x.S/Unary").unwrap().server_streaming);
        let e = method_shape(&pool, "x.S/Upload").unwrap_err();
        assert!(e.contains("client-streaming"), "{e}");
        assert!(method_types(&pool, "x.S/Watch").is_ok());
    }

    /// Slot n calls `/ok/`, `/bad/` or `/down/` by n mod 3.
    struct Three;

    impl Calls for Three {
        fn call(&self, n: u64) -> Result<Call, (usize, String)> {
            let path = ["/ok/x.S/M", "/bad/x.S/M", "/down/x.S/M"][(n % 3) as usize];
            Ok(Call {
                template: (n % 3) as usize,
                path: path.into(),
                metadata: vec![],
                message: Bytes::from_static(b"abc"),
            })
        }
    }

    #[tokio::test]
    async fn every_call_is_counted_by_its_grpc_status_or_http_status() {
        let (addr, seen) = server().await;
        let target = Target::parse(&format!("http://{addr}"), None).unwrap();
        let mut config = GrpcConfig::new(
            target,
            Schedule {
                rate_per_sec: 300.0,
                ramp: Duration::ZERO,
                duration: Duration::from_secs(1),
                max_requests: 90,
            },
        );
        config.concurrency = 8;
        let report = run(Arc::new(Three), &config).await.unwrap();
        let codes = report.by_code();
        assert_eq!(codes.get("OK"), Some(&30), "{codes:?}");
        assert_eq!(codes.get("INVALID_ARGUMENT"), Some(&30), "{codes:?}");
        assert_eq!(codes.get("http 503"), Some(&30), "{codes:?}");
        assert_eq!(report.errors, 60);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 90);
        let open = report.to_open_report();
        assert_eq!((open.requests, open.errors), (90, 60));
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_error_not_a_status() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let target = Target::parse(&format!("http://{addr}"), None).unwrap();
        let mut config = GrpcConfig::new(
            target,
            Schedule {
                rate_per_sec: 100.0,
                ramp: Duration::ZERO,
                duration: Duration::from_secs(1),
                max_requests: 3,
            },
        );
        config.concurrency = 1;
        let report = run(Arc::new(Three), &config).await.unwrap();
        assert_eq!(report.by_code().get("transport connect"), Some(&3));
        assert_eq!(report.errors, 3);
        let why = report.connect_error.unwrap();
        assert!(why.starts_with("cannot connect to 127.0.0.1:"), "{why}");
    }

    #[test]
    fn a_target_is_http_or_https_with_a_tls_configuration() {
        let t = Target::parse("http://127.0.0.1:50051", None).unwrap();
        assert_eq!(t.base(), "http://127.0.0.1:50051");
        let e = Target::parse("https://127.0.0.1:1", None).unwrap_err();
        assert!(e.to_string().contains("no TLS client configuration"), "{e}");
        let e = Target::parse("grpc://127.0.0.1:1", None).unwrap_err();
        assert!(e.to_string().contains("http://host:port"), "{e}");
    }
}
