//! Recording a service's traffic to a capture (`[services.record]`), in the
//! format of `parallax-capture` (`docs/capture-format.md`).
//!
//! The client path decides (sampling, sticky by the service's `sticky_key`
//! when it has one) and encodes the record in the capture's layout (secret
//! headers and query parameters already redacted: the same [`Redactor`] as
//! mismatch samples) into a shared buffer of encoded records once the
//! answer's head is in; it never waits on the writer. The raw HTTP/1.1
//! path ([`Recorder::finish_raw`]) encodes each record once, straight into
//! that buffer, from the request's bytes as read (the capture's HTTP/1
//! request record: the header lines copied as the client sent them); hyper's path
//! ([`Recorder::begin`]) encodes the head as the request arrives (hyper
//! keeps no request bytes) and copies it in with the answer and body. One writer thread per recording
//! service lets records gather there (1 MiB, or until
//! `flush_interval_ms`), swaps the buffer out whole, applies the
//! JSON-pointer redaction rules (when the service has any), and writes it
//! as whole zstd frames (compressed at once: cheaper than streaming) to
//! size-rotated segments, so a killed proxy leaves files readable up to
//! their last frame. Traffic that does not compress
//! (`min_compression_ratio`) is stored in zstd raw blocks instead of being
//! run through the compressor for nothing.
//!
//! Why encode on the client path: it is one copy of the head and body
//! into a buffer that is reused (no allocation per record once warm), and
//! it lets the request's buffers go at once. Handing the writer hyper's
//! `HeaderMap` and `Bytes` instead cost more: cloning the map, building
//! owned strings on the writer, and freeing hyper's read buffers on another
//! thread (measured in `docs/benchmarks.md`, "Recording overhead").
//!
//! Whatever cannot be recorded is dropped and counted, never waited for:
//! `parallax_record_dropped_total{service,reason}` with `queue_full` (the
//! writer is behind: a slow or stalled disk), `body_too_large`,
//! `write_failed` (a full disk, a removed directory: the segment is given
//! up and a new one tried after [`RETRY_AFTER`]). A drop also leaves a
//! gap record in the capture. `parallax_record_records_total` counts
//! records on disk (flushed), `parallax_record_bytes_total` compressed
//! bytes written.
//!
//! WebSocket connections: the handshake is a request record (status 101)
//! and every message, both directions, a message record on the same
//! connection id ([`WsTap`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use parallax_capture::format::{self, Meta, Record, WsMessage};
use parallax_capture::{Rotation, Segments};
use parking_lot::Mutex;
use prometheus::{IntCounter, IntCounterVec, Opts};
use serde::Deserialize;

use crate::config::ConfigError;
use crate::h1::head::{self, Span};
use crate::metrics::ProxyMetrics;
use crate::redact::{Redactor, REDACTED};
use crate::request_tee::RequestCopy;
use crate::sampling::{Sampler, StickyKey};
use crate::ws::frame::{Event, Reader};

/// After a failed write, records are dropped (`write_failed`) for this
/// long before a new segment is tried.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// `[services.record]`: record this service's traffic to a capture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordConfig {
    /// The capture's path, e.g. `"captures/ingest.plxcap"`: segments are
    /// written beside it as `ingest.000000.plxcap`, `ingest.000001.plxcap`,
    /// … (numbering continues after the segments already there). The
    /// directory is created. Required.
    pub path: PathBuf,
    /// Share of requests (and WebSocket connections) recorded, 0–100
    /// (fractions allowed), sticky by the service's `sticky_key` when it has
    /// one. Default `100`.
    pub sample_percent: f64,
    /// Start a new segment once the current one holds this many compressed
    /// bytes. At least 65536. Default `268435456` (256 MiB).
    pub max_file_bytes: u64,
    /// Keep at most this many segments, deleting the oldest; 0 keeps all.
    /// Default `0`.
    pub max_files: u32,
    /// A request body (or WebSocket message) longer than this is not
    /// recorded (`body_too_large`); a mirrored request's body of declared
    /// length is also bound by the service's `max_mirror_body_bytes`. A
    /// streamed body (gRPC, chunked, HTTP/2 without a length) is forwarded
    /// as it comes and recorded from a copy kept up to this limit, so an
    /// open stream holds up to this much until it ends. Requests served by
    /// a canary are not recorded. Default `1048576`.
    pub max_body_bytes: u64,
    /// Records waiting for the writer; more are dropped (`queue_full`).
    /// Default `8192`.
    pub queue_records: usize,
    /// Bytes (encoded records: heads and bodies) waiting for the writer;
    /// more are dropped (`queue_full`). Default `67108864` (64 MiB).
    pub queue_bytes: u64,
    /// The longest a record waits in the writer before it is flushed to
    /// the file (and survives a crash), in ms. Default `1000`.
    pub flush_interval_ms: u64,
    /// zstd level, -7 to -1 or 1 to 19: negative levels are zstd's fast
    /// modes, higher ones compress more for more CPU on the writer thread
    /// (which counts as the proxy's). Default `-2`: on recorded JSON
    /// traffic ~1 µs of writer CPU a 613-byte request, 3.9× smaller; `1`
    /// 5.6× for ~35 % more CPU; below -2 files grow and the writer is at
    /// most ~8 % faster (`docs/benchmarks.md`, "Recording overhead, fourth
    /// round").
    pub compression_level: i32,
    /// When 4 MiB of records (256 KiB at first and after a stored run)
    /// compress less than this (input over output), the next 60 MiB are
    /// stored uncompressed (zstd raw blocks: still a zstd stream), then
    /// compression probes the traffic again. Random or already-compressed bodies then cost a copy
    /// instead of zstd's ~1 µs a request, for files up to this ratio
    /// larger; JSON (4-7×) stays compressed. `0` compresses everything.
    /// Default `1.5`.
    pub min_compression_ratio: f64,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            sample_percent: 100.0,
            max_file_bytes: 256 << 20,
            max_files: 0,
            max_body_bytes: 1 << 20,
            queue_records: 8192,
            queue_bytes: 64 << 20,
            flush_interval_ms: 1000,
            compression_level: parallax_capture::writer::FAST_LEVEL,
            min_compression_ratio: 1.5,
        }
    }
}

/// A validated `[services.record]`.
#[derive(Debug, Clone)]
pub struct RecordSettings {
    pub path: PathBuf,
    pub sample_percent: f64,
    pub rotation: Rotation,
    pub max_body_bytes: u64,
    pub queue_records: usize,
    pub queue_bytes: u64,
    pub flush_interval: Duration,
}

impl RecordConfig {
    /// Checks the table; `field` is its name (`services[0].record`).
    pub fn validate(&self, field: &str) -> Result<RecordSettings, ConfigError> {
        let invalid = |name: &str, reason: String| ConfigError::Invalid {
            field: format!("{field}.{name}"),
            reason,
        };
        if self.path.as_os_str().is_empty() {
            return Err(invalid(
                "path",
                "missing; e.g. path = \"captures/ingest.plxcap\"".into(),
            ));
        }
        if self.path.file_name().is_none() {
            return Err(invalid(
                "path",
                format!(
                    "{:?} names no file; e.g. \"captures/ingest.plxcap\"",
                    self.path
                ),
            ));
        }
        if !(self.sample_percent.is_finite() && (0.0..=100.0).contains(&self.sample_percent)) {
            return Err(invalid(
                "sample_percent",
                format!("{} is not within 0-100", self.sample_percent),
            ));
        }
        if self.max_file_bytes < 65536 {
            return Err(invalid(
                "max_file_bytes",
                format!(
                    "{} is less than 65536; segments that small are mostly headers",
                    self.max_file_bytes
                ),
            ));
        }
        if self.queue_records == 0 || self.queue_bytes == 0 {
            let name = if self.queue_records == 0 {
                "queue_records"
            } else {
                "queue_bytes"
            };
            return Err(invalid(
                name,
                "0 would drop every record; use sample_percent = 0 to stop recording".into(),
            ));
        }
        if self.flush_interval_ms == 0 {
            return Err(invalid(
                "flush_interval_ms",
                "0 would flush on every record; e.g. 1000".into(),
            ));
        }
        if !(-7..=19).contains(&self.compression_level) || self.compression_level == 0 {
            return Err(invalid(
                "compression_level",
                format!(
                    "{} is not a zstd level within -7 to -1 or 1 to 19; e.g. -2 (fast, the default) or 1 (files ~1.4x smaller for ~35 % more writer CPU)",
                    self.compression_level
                ),
            ));
        }
        if !(self.min_compression_ratio.is_finite()
            && (0.0..=100.0).contains(&self.min_compression_ratio))
        {
            return Err(invalid(
                "min_compression_ratio",
                format!(
                    "{} is not within 0-100; e.g. 1.5 (store what compresses less), or 0 (compress everything)",
                    self.min_compression_ratio
                ),
            ));
        }
        Ok(RecordSettings {
            path: self.path.clone(),
            sample_percent: self.sample_percent,
            rotation: Rotation {
                max_file_bytes: self.max_file_bytes,
                max_files: self.max_files,
                level: self.compression_level,
                min_ratio: self.min_compression_ratio,
            },
            max_body_bytes: self.max_body_bytes,
            queue_records: self.queue_records,
            queue_bytes: self.queue_bytes,
            flush_interval: Duration::from_millis(self.flush_interval_ms),
        })
    }
}

/// Why a record was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    QueueFull,
    BodyTooLarge,
    WriteFailed,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::QueueFull,
        DropReason::BodyTooLarge,
        DropReason::WriteFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::BodyTooLarge => "body_too_large",
            DropReason::WriteFailed => "write_failed",
        }
    }
}

/// The `parallax_record_*` families, registered once per proxy.
#[derive(Clone)]
pub struct RecordMetrics {
    records: IntCounterVec,
    dropped: IntCounterVec,
    bytes: IntCounterVec,
}

impl RecordMetrics {
    pub fn register(metrics: &ProxyMetrics) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            metrics.register(c.clone());
            c
        };
        Self {
            records: counter(
                "parallax_record_records_total",
                "Records written to the capture (flushed to its file).",
                &["service"],
            ),
            dropped: counter(
                "parallax_record_dropped_total",
                "Records not recorded, by reason (queue_full, body_too_large, write_failed).",
                &["service", "reason"],
            ),
            bytes: counter(
                "parallax_record_bytes_total",
                "Compressed bytes written to the capture.",
                &["service"],
            ),
        }
    }

    fn service(&self, service: &str) -> ServiceCounters {
        ServiceCounters {
            records: self.records.with_label_values(&[service]),
            dropped: DropReason::ALL
                .map(|r| self.dropped.with_label_values(&[service, r.as_str()])),
            bytes: self.bytes.with_label_values(&[service]),
        }
    }
}

struct ServiceCounters {
    records: IntCounter,
    dropped: [IntCounter; 3],
    bytes: IntCounter,
}

impl ServiceCounters {
    fn dropped(&self, reason: DropReason, n: u64) {
        self.dropped[reason as usize].inc_by(n);
    }
}

/// Records waiting for the writer, encoded back to back (length prefixes
/// included), and their count.
#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    records: u64,
}

/// What the client path and the writer thread share.
struct Shared {
    counters: ServiceCounters,
    /// The queue: a blocking mutex around a byte buffer that the writer
    /// swaps out whole (the two buffers keep their capacity, so a warm
    /// recorder allocates nothing per record). The client path holds it
    /// for one copy of a record (no `.await`, no I/O), and
    /// — unlike a channel — pays no wake-up of the writer per record: the
    /// writer looks at the queue every `poll` and is woken (one `unpark`,
    /// a futex wake) only by the record that fills a frame's worth
    /// (`gather_bytes`) or half the queue's records. Measured: a channel's
    /// per-record wake-up cost more than the recording itself at 5,000
    /// req/s (`docs/benchmarks.md`).
    queue: Mutex<Queue>,
    /// Set at drop: the writer drains the queue, finishes and exits.
    closed: AtomicBool,
    /// Every drop, whatever the reason; the writer turns increases into gap
    /// records.
    dropped_all: AtomicU64,
}

/// Encoded records gathered in the queue before the writer takes them as
/// one frame (or less, when the queue is smaller). Each frame starts with
/// cold caches and a fresh zstd context: in the proxy 1 MiB frames cost
/// the writer 0.93-0.97 µs a JSON record against 1.17-1.23 µs for 256 KiB
/// (A B B A, `docs/benchmarks.md`, "Recording overhead, fourth round"),
/// for the same ratio; at 5,000 req/s that is a frame every ~0.3 s,
/// inside the flush interval anyway. Memory: the queue's two buffers.
const GATHER_BYTES: usize = 1 << 20;

/// How often the writer looks at the queue when nobody wakes it: a tenth
/// of the flush interval, within 1-100 ms (records are written within
/// `flush_interval` of their arrival; the writer wakes 10 times a second
/// at the default).
fn poll_interval(flush_interval: Duration) -> Duration {
    (flush_interval / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
}

/// One service's recorder.
pub struct Recorder {
    /// Joined on drop, so a proxy that shuts down flushes and finishes its
    /// capture before the process exits.
    writer: Option<std::thread::JoinHandle<()>>,
    sampler: Sampler,
    epoch: Instant,
    max_body_bytes: u64,
    /// Secret headers and query parameters, redacted as the head is
    /// encoded (the JSON rules are the writer's).
    redactor: Redactor,
    /// Bounds of the queue: a record that does not fit is a drop.
    queue_records: u64,
    queue_bytes: usize,
    /// Queued bytes that make a frame: the record that reaches them wakes
    /// the writer.
    gather_bytes: usize,
    shared: Arc<Shared>,
}

/// A request being recorded: its head, already encoded in the capture's
/// layout (stamped with its arrival), waiting for its body and the
/// primary's answer.
pub struct Pending {
    conn: u64,
    head: Vec<u8>,
}

impl Pending {
    /// The connection id (for the WebSocket messages that follow).
    pub fn conn(&self) -> u64 {
        self.conn
    }
}

/// A request on the raw HTTP/1.1 path, as read, for
/// [`Recorder::finish_raw`].
pub struct RawRequest<'p> {
    pub client: SocketAddr,
    pub method: &'p str,
    /// The target's path, and its query without the `?` (ASCII: the raw
    /// path takes no other target).
    pub path: &'p [u8],
    pub query: Option<&'p [u8]>,
    /// The head as read (`head_len` bytes) and where [`head::judge`] found
    /// its headers: their lines are copied into the record
    /// ([`head::copy_recorded_lines`]).
    pub input: &'p [u8],
    pub spans: &'p [Span],
    pub head_len: usize,
}

/// A connection id from the client's address: IPv4 address and port
/// packed, IPv6 hashed. A port reused later by a new connection of the
/// same client gets the same id; its requests then replay after the
/// earlier ones on one connection, which is harmless.
pub fn conn_id(client: SocketAddr) -> u64 {
    match client {
        SocketAddr::V4(a) => (u64::from(u32::from(*a.ip())) << 16) | u64::from(a.port()),
        SocketAddr::V6(a) => {
            let h = a
                .ip()
                .octets()
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
                });
            (h << 16) | u64::from(a.port())
        }
    }
}

impl Recorder {
    /// Starts the writer thread and opens the first segment (so a path
    /// that cannot be written is an error at start-up, not a silent drop).
    pub fn start(
        settings: &RecordSettings,
        service: &str,
        sticky: Option<StickyKey>,
        redactor: Redactor,
        json_rules: bool,
        metrics: &RecordMetrics,
    ) -> std::io::Result<Self> {
        let started_at_unix_us = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let mut meta = Meta::new("proxy", started_at_unix_us);
        meta.service = Some(service.to_owned());
        meta.redacted = vec![
            "header:authorization".into(),
            "header:cookie".into(),
            "header:set-cookie".into(),
            "redact rules of the service (headers, query parameters, JSON pointers)".into(),
        ];
        let mut segments = Segments::new(&settings.path, meta, settings.rotation.clone());
        segments.open()?;
        let shared = Arc::new(Shared {
            counters: metrics.service(service),
            queue: Mutex::new(Queue::default()),
            closed: AtomicBool::new(false),
            dropped_all: AtomicU64::new(0),
        });
        let epoch = Instant::now();
        let client_redactor = redactor.clone();
        let gather_bytes = GATHER_BYTES.min(settings.queue_bytes as usize / 2).max(1);
        let writer = Writer {
            segments,
            redactor,
            scratch: Vec::new(),
            json_rules,
            shared: Arc::clone(&shared),
            flush_interval: settings.flush_interval,
            gather_bytes,
            half_records: (settings.queue_records as u64).div_ceil(2),
            epoch,
            broken_until: None,
            written_bytes: 0,
            gaps_seen: 0,
        };
        let writer = std::thread::Builder::new()
            .name(format!("record-{service}"))
            .spawn(move || writer.run())?;
        Ok(Self {
            writer: Some(writer),
            redactor: client_redactor,
            queue_records: settings.queue_records as u64,
            sampler: Sampler::new(settings.sample_percent, sticky),
            epoch,
            max_body_bytes: settings.max_body_bytes,
            queue_bytes: settings.queue_bytes as usize,
            gather_bytes,
            shared,
        })
    }

    /// The largest body recorded.
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    /// Whether to record this request; if so, its head, stamped now.
    pub fn begin(&self, head: &Parts, client: SocketAddr) -> Option<Pending> {
        if !self.sampler.sample(head) {
            return None;
        }
        let path = head.uri.path();
        let query = head.uri.query().map(str::as_bytes);
        let headers = head
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
        let at_us = self.epoch.elapsed().as_micros() as u64;
        let mut encoded = Vec::with_capacity(HEAD_CAPACITY);
        self.encode_head(
            &mut encoded,
            at_us,
            client,
            head.method.as_str(),
            (path.as_bytes(), query),
            headers,
        )
        .finish();
        Some(Pending {
            conn: conn_id(client),
            head: encoded,
        })
    }

    /// [`Recorder::begin`] for the raw HTTP/1.1 path ([`crate::h1`]), from
    /// the bytes as read: whether to record this request (sticky sampling
    /// by `path` and `headers`). Nothing is encoded yet: the record is
    /// encoded once, by [`Recorder::finish_raw`], straight into the queue.
    pub fn begin_raw<'a, H>(&self, path: &str, headers: H) -> bool
    where
        H: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let first = |name: &http::HeaderName| {
            headers
                .clone()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_str().as_bytes()))
                .map(|(_, v)| v)
        };
        self.sampler.sample_raw(path, first)
    }

    /// A request head in the capture's layout appended to `out`, secret
    /// headers and query parameters redacted (written straight into the
    /// record); the caller completes it.
    fn encode_head<'a, 'o>(
        &self,
        out: &'o mut Vec<u8>,
        at_us: u64,
        client: SocketAddr,
        method: &str,
        (path, query): (&[u8], Option<&[u8]>),
        headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> format::HeadWriter<'o> {
        let r = &self.redactor;
        let mut head =
            format::HeadWriter::append(out, at_us, Some(conn_id(client)), method, |out| {
                r.write_target_parts(path, query, out)
            });
        for (name, value) in headers {
            let value = if r.header_is_secret(name) {
                REDACTED.as_bytes()
            } else {
                value
            };
            if !head.header(name, value) {
                break;
            }
        }
        head
    }

    /// Counts a record that could not be taken.
    pub fn drop_record(&self, reason: DropReason) {
        self.shared.counters.dropped(reason, 1);
        self.shared.dropped_all.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues the request with its body and the primary's answer.
    pub fn finish<B: AsRef<[u8]>>(
        &self,
        pending: Pending,
        body: &[B],
        status: Option<u16>,
        latency: Option<Duration>,
    ) {
        let len: usize = body.iter().map(|b| b.as_ref().len()).sum();
        if len as u64 > self.max_body_bytes {
            return self.drop_record(DropReason::BodyTooLarge);
        }
        let latency_us = latency.map(|d| d.as_micros() as u64);
        self.push(pending.head.len() + 4 + len, |buf| {
            format::finish_request(buf, &pending.head, status, latency_us, body, false)
        });
    }

    /// Queues a request whose body was teed as it streamed to the primary
    /// ([`crate::request_tee`]), with the primary's answer: the whole body;
    /// past `max_body_bytes`, a drop (`body_too_large`); a body that broke
    /// off is no whole request and is not recorded (as a body that failed
    /// while being read first).
    pub fn finish_copied(
        &self,
        pending: Pending,
        copy: RequestCopy,
        status: Option<u16>,
        latency: Option<Duration>,
    ) {
        match copy {
            RequestCopy::Complete(chunks) => self.finish(pending, &chunks, status, latency),
            RequestCopy::TooLarge => self.drop_record(DropReason::BodyTooLarge),
            RequestCopy::Aborted => {}
        }
    }

    /// Queues a request [`Recorder::begin_raw`] chose, stamped `sent` (when
    /// it left for the primary: the clock read the raw path makes anyway),
    /// with its body and the primary's answer. The record is the one
    /// [`Recorder::begin`] and [`Recorder::finish`] give for the same
    /// request, redaction included.
    ///
    /// Encoded once, straight into the queue under its lock, as the
    /// capture's HTTP/1 request record: the target through the redactor,
    /// then the head's header lines copied as read in one or a few runs
    /// (hop-by-hop lines left out, secret values redacted), then the body.
    /// Readers decode it into the same request as [`Recorder::finish`]'s
    /// record; encoding each name and value on the client path cost more
    /// than the rest of recording together (`docs/benchmarks.md`,
    /// "Recording overhead, seventh round").
    pub fn finish_raw(
        &self,
        request: RawRequest<'_>,
        sent: Instant,
        body: &[u8],
        status: Option<u16>,
        latency: Option<Duration>,
    ) {
        if body.len() as u64 > self.max_body_bytes {
            return self.drop_record(DropReason::BodyTooLarge);
        }
        let at_us = sent.saturating_duration_since(self.epoch).as_micros() as u64;
        let latency_us = latency.map(|d| d.as_micros() as u64);
        // The head as read, the fixed fields and the body; a redacted
        // value may be longer than the secret was.
        let about = request.head_len + 64 + body.len();
        let RawRequest {
            client,
            method,
            path,
            query,
            input,
            spans,
            head_len,
        } = request;
        let r = &self.redactor;
        self.push(about, |buf| {
            buf.reserve(about);
            format::append_http1_request(
                buf,
                at_us,
                Some(conn_id(client)),
                method,
                |out| r.write_target_parts(path, query, out),
                status,
                latency_us,
                |out| {
                    head::copy_recorded_lines(
                        input,
                        spans,
                        head_len,
                        |name| r.header_is_secret(name),
                        REDACTED.as_bytes(),
                        out,
                    )
                },
                body,
            )
        });
    }

    /// Queues one WebSocket message of connection `conn`.
    pub fn ws_message(&self, conn: u64, from_client: bool, opcode: u8, payload: Bytes) {
        let len = payload.len();
        if len as u64 > self.max_body_bytes {
            return self.drop_record(DropReason::BodyTooLarge);
        }
        let record = Record::Ws(WsMessage {
            at_us: self.epoch.elapsed().as_micros() as u64,
            conn: Some(conn),
            from_client,
            opcode,
            payload,
        });
        self.push(len + 32, |buf| format::encode(&record, buf));
    }

    /// Appends one record (`len` bytes, about) to the queue with `encode`,
    /// or drops it when the queue is full.
    fn push(&self, len: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        let mut q = self.shared.queue.lock();
        if q.records >= self.queue_records || q.buf.len() + len > self.queue_bytes {
            drop(q);
            return self.drop_record(DropReason::QueueFull);
        }
        let before = q.buf.len();
        encode(&mut q.buf);
        q.records += 1;
        let wake = (before < self.gather_bytes && q.buf.len() >= self.gather_bytes)
            || q.records == self.queue_records.div_ceil(2);
        drop(q);
        if wake {
            if let Some(w) = &self.writer {
                w.thread().unpark();
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // The writer drains what is queued, flushes and finishes the
        // segment.
        self.shared.closed.store(true, Ordering::Release);
        if let Some(w) = self.writer.take() {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}

/// The initial capacity of a request's encoded head.
const HEAD_CAPACITY: usize = 512;
/// The queue's buffers start this large: room for a frame's worth and the
/// record that crosses it, so a queue filling to [`GATHER_BYTES`] does not
/// reallocate (and copy) on the client path. One that grew past
/// [`BATCH_SHRINK_ABOVE`] (a burst) is given back after use.
const BATCH_CAPACITY: usize = GATHER_BYTES + (64 << 10);
const BATCH_SHRINK_ABOVE: usize = 4 << 20;

/// The writer thread's state.
struct Writer {
    segments: Segments,
    redactor: Redactor,
    /// Reused for re-encoding records redacted by the JSON rules.
    scratch: Vec<u8>,
    json_rules: bool,
    shared: Arc<Shared>,
    flush_interval: Duration,
    /// Take the queue once it holds this many bytes ...
    gather_bytes: usize,
    /// ... or this many records (half its bound).
    half_records: u64,
    epoch: Instant,
    /// After a write error: drop until then.
    broken_until: Option<Instant>,
    written_bytes: u64,
    /// `dropped_all` as of the last gap record.
    gaps_seen: u64,
}

impl Writer {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH_CAPACITY);
        self.shared.queue.lock().buf.reserve(BATCH_CAPACITY);
        let poll = poll_interval(self.flush_interval);
        // When the writer first saw records waiting; they came at most one
        // `poll` earlier.
        let mut waiting_since: Option<Instant> = None;
        loop {
            // Read before taking: a record queued before the close is in
            // this take or an earlier one.
            let closed = self.shared.closed.load(Ordering::Acquire);
            let took = {
                let mut q = self.shared.queue.lock();
                let due = q.records > 0 && {
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    closed
                        || q.buf.len() >= self.gather_bytes
                        || q.records >= self.half_records
                        || since.elapsed() + poll >= self.flush_interval
                };
                if due {
                    std::mem::swap(&mut q.buf, &mut batch);
                    std::mem::take(&mut q.records)
                } else {
                    0
                }
            };
            if took > 0 {
                waiting_since = None;
                self.write(&batch, took);
                if batch.capacity() > BATCH_SHRINK_ABOVE {
                    batch = Vec::with_capacity(BATCH_CAPACITY);
                } else {
                    batch.clear();
                }
            }
            if closed {
                let _ = self.segments.close();
                return;
            }
            std::thread::park_timeout(poll);
        }
    }

    /// Writes a batch of `n` encoded records as whole frames: on disk (in
    /// the page cache) and readable when this returns.
    fn write(&mut self, batch: &[u8], n: u64) {
        if let Some(until) = self.broken_until {
            if Instant::now() < until {
                return self.dropped(n);
            }
            self.broken_until = None;
        }
        let dropped = self.shared.dropped_all.load(Ordering::Relaxed);
        if dropped > self.gaps_seen {
            let gap = Record::Gap {
                at_us: self.epoch.elapsed().as_micros() as u64,
                dropped: dropped - self.gaps_seen,
            };
            self.gaps_seen = dropped;
            if self.append(&gap).is_err() {
                return self.dropped(n);
            }
        }
        let result = if self.json_rules {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            for bytes in format::split_encoded(batch) {
                // Encoded here a moment ago, so it decodes; skipped if not.
                if let Ok(Some(mut record)) = format::decode(Bytes::copy_from_slice(bytes)) {
                    self.redact_json(&mut record);
                    format::encode(&record, &mut scratch);
                }
            }
            let result = self.segments.write_frames(&scratch, n);
            self.scratch = scratch;
            result
        } else {
            self.segments.write_frames(batch, n)
        };
        match result {
            Ok(()) => {
                self.shared.counters.records.inc_by(n);
                let total = self.segments.bytes_written();
                self.shared
                    .counters
                    .bytes
                    .inc_by(total.saturating_sub(self.written_bytes));
                self.written_bytes = total;
            }
            Err(error) => {
                self.failed(&error);
                self.dropped(n);
            }
        }
    }

    fn append(&mut self, record: &Record) -> Result<(), ()> {
        match self.segments.append(record) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.failed(&error);
                Err(())
            }
        }
    }

    /// A write or open failed: the segment is given up (its tail may be
    /// damaged; readers stop there); the frames written before it stay
    /// readable.
    fn failed(&mut self, error: &std::io::Error) {
        tracing::warn!(%error, "recording: writing the capture failed; dropping records for {RETRY_AFTER:?}, then a new segment");
        self.segments.abandon();
        self.broken_until = Some(Instant::now() + RETRY_AFTER);
    }

    fn dropped(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.shared.counters.dropped(DropReason::WriteFailed, n);
        // Counted as a gap only once written; this writer knows of them.
        self.shared.dropped_all.fetch_add(n, Ordering::Relaxed);
    }

    /// The JSON-pointer rules (headers and query parameters were redacted
    /// on the client path).
    fn redact_json(&self, record: &mut Record) {
        let r = &self.redactor;
        match record {
            Record::Request(req) => {
                if let Some(b) = redact_json(r, &req.body) {
                    req.body = b;
                }
            }
            Record::Ws(m) => {
                if m.opcode == 1 {
                    if let Some(b) = redact_json(r, &m.payload) {
                        m.payload = b;
                    }
                }
            }
            Record::Meta(_) | Record::Gap { .. } => {}
        }
    }
}

/// A JSON body with the redacted paths replaced; `None` when it is not
/// JSON (left as it is: the JSON rules cannot apply).
fn redact_json(r: &Redactor, body: &[u8]) -> Option<Bytes> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if !matches!(first, b'{' | b'[') {
        return None;
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let before = value.clone();
    r.json(&mut value);
    if value == before {
        return None;
    }
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

/// Records a WebSocket connection's messages: one frame reader per
/// direction, separate from the relay's own (which collect only while
/// comparing).
pub struct WsTap {
    conn: u64,
    client: Option<Reader>,
    primary: Option<Reader>,
    events: Vec<Event>,
}

impl WsTap {
    pub fn new(conn: u64, max_message_bytes: u64) -> Self {
        let limit = max_message_bytes.min(usize::MAX as u64) as usize;
        Self {
            conn,
            client: Some(Reader::new(limit.max(1))),
            primary: Some(Reader::new(limit.max(1))),
            events: Vec::new(),
        }
    }

    /// Bytes the client sent (relayed unchanged to the primary).
    pub fn client_bytes(&mut self, recorder: &Recorder, bytes: &[u8]) {
        self.feed(recorder, true, bytes);
    }

    /// Bytes the primary sent (relayed unchanged to the client).
    pub fn primary_bytes(&mut self, recorder: &Recorder, bytes: &[u8]) {
        self.feed(recorder, false, bytes);
    }

    fn feed(&mut self, recorder: &Recorder, from_client: bool, bytes: &[u8]) {
        let side = if from_client {
            &mut self.client
        } else {
            &mut self.primary
        };
        let Some(reader) = side else { return };
        if reader.feed(bytes, &mut self.events).is_err() {
            // No longer framed: this direction is not recorded further.
            *side = None;
        }
        for event in self.events.drain(..) {
            match event {
                Event::Message { opcode, payload } => {
                    recorder.ws_message(self.conn, from_client, opcode, Bytes::from(payload))
                }
                Event::Oversize { .. } => recorder.drop_record(DropReason::BodyTooLarge),
                Event::Close(code) => recorder.ws_message(
                    self.conn,
                    from_client,
                    crate::ws::frame::opcode::CLOSE,
                    code.map_or_else(Bytes::new, |c| Bytes::copy_from_slice(&c.to_be_bytes())),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_pack_ipv4_address_and_port() {
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        assert_eq!(conn_id(a), (0x7f00_0001 << 16) | 40000);
        assert_ne!(conn_id(a), conn_id(b));
    }

    #[test]
    fn settings_errors_name_the_field_and_the_fix() {
        let e = RecordConfig::default()
            .validate("services[0].record")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("services[0].record.path: missing"), "{e}");
        let c = RecordConfig {
            path: "x.plxcap".into(),
            sample_percent: 101.0,
            ..RecordConfig::default()
        };
        let e = c.validate("r").unwrap_err().to_string();
        assert_eq!(e, "r.sample_percent: 101 is not within 0-100");
        let c = RecordConfig {
            path: "x.plxcap".into(),
            queue_records: 0,
            ..RecordConfig::default()
        };
        let e = c.validate("r").unwrap_err().to_string();
        assert!(e.contains("sample_percent = 0"), "{e}");
        let c = RecordConfig {
            path: "x.plxcap".into(),
            compression_level: 0,
            ..RecordConfig::default()
        };
        let e = c.validate("r").unwrap_err().to_string();
        assert!(
            e.starts_with("r.compression_level: 0 is not a zstd level"),
            "{e}"
        );
        for bad in [-8, 20] {
            let c = RecordConfig {
                path: "x.plxcap".into(),
                compression_level: bad,
                ..RecordConfig::default()
            };
            let e = c.validate("r").unwrap_err().to_string();
            assert!(e.contains("e.g. -2 (fast, the default)"), "{e}");
        }
        for good in [-7, -1, 1, 19] {
            let c = RecordConfig {
                path: "x.plxcap".into(),
                compression_level: good,
                ..RecordConfig::default()
            };
            assert_eq!(c.validate("r").unwrap().rotation.level, good);
        }
        assert_eq!(RecordConfig::default().compression_level, -2);
    }

    #[test]
    fn json_bodies_lose_the_redacted_values_and_others_stay() {
        let r = Redactor::new(
            &[],
            &[parallax_compare::pointer::PointerGlob::new("/user/email")],
        );
        let b = redact_json(&r, br#"{"user":{"email":"a@b","n":1}}"#).unwrap();
        assert_eq!(&b[..], br#"{"user":{"email":"[redacted]","n":1}}"#);
        assert!(redact_json(&r, b"\x0a\x03abc").is_none());
        assert!(redact_json(&r, br#"{"other":1}"#).is_none());
    }
}
