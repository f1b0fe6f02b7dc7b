//! WebSocket clients that hold sessions and time what they receive: the
//! fan-out twins' subscribers (`parallax bench fanout`) and the
//! `[traffic.websocket]` sessions of an experiment file.
//!
//! [`connect`] opens many mostly idle connections to one path (the fan-out
//! twins' `GET /v1/subscribe?topics=…`), sends each session's opening
//! messages,
//! each bound to one of several source addresses in turn (one source
//! address reaches one destination from only ~28K ephemeral ports), with
//! small tungstenite buffers so the client side stays cheap. Every text
//! frame a client receives is timed against its `published_at_unix_us`
//! (the publisher sets it at send time) into one [`Recorder`]; histograms
//! cross process boundaries as hex of hdrhistogram's V2 serialisation
//! ([`encode_histogram`], [`decode_histogram`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Highest latency recorded exactly, µs (larger values are clamped).
const MAX_LATENCY_US: u64 = 600_000_000;

/// Who connects where.
#[derive(Debug, Clone)]
pub struct SubscribeConfig {
    pub server: SocketAddr,
    /// Path and query of the upgrade request, e.g. `/v1/subscribe?topics=news`.
    pub path: String,
    /// Headers added to the upgrade request.
    pub headers: Vec<(String, String)>,
    /// Text messages each connection sends right after its handshake (a
    /// subscribe command, say).
    pub messages: Vec<String>,
    pub connections: usize,
    /// Source addresses, used round-robin by global connection index.
    pub sources: Vec<IpAddr>,
    /// Global index of this process's first connection (for round-robin).
    pub first_index: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// New connections per second (`None`: as fast as `concurrency` allows).
    pub connect_rate_per_sec: Option<f64>,
}

/// Latencies of received notifications, µs from `published_at_unix_us`.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub latency_us: Histogram<u64>,
    /// Text frames without a readable `published_at_unix_us`.
    pub unparsed: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            latency_us: new_histogram(),
            unparsed: 0,
        }
    }
}

impl Recorder {
    /// Times one frame received at `now_us` (Unix µs).
    pub fn record(&mut self, frame: &str, now_us: u64) {
        match published_at_us(frame) {
            Some(at) => self
                .latency_us
                .saturating_record(now_us.saturating_sub(at).min(MAX_LATENCY_US)),
            None => self.unparsed += 1,
        }
    }
}

/// An empty latency histogram (1 µs … 600 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds")
}

/// `published_at_unix_us` of a notification frame.
pub fn published_at_us(frame: &str) -> Option<u64> {
    const KEY: &str = "\"published_at_unix_us\":";
    let rest = &frame[frame.find(KEY)? + KEY.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Microseconds since the Unix epoch.
pub fn now_unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Hex of the V2 serialisation of `h`.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut bytes)
        .expect("serialising into a Vec cannot fail");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`encode_histogram`].
pub fn decode_histogram(hex: &str) -> Result<Histogram<u64>, String> {
    let pairs = hex.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err("odd hex length".into());
    }
    let bytes = pairs
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| "not hex".to_owned())
        })
        .collect::<Result<Vec<u8>, _>>()?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("{e:?}"))
}

/// Open connections, recording into a shared [`Recorder`].
pub struct Subscribers {
    pub recorder: Arc<Mutex<Recorder>>,
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Reader tasks; dropping this closes the connections.
    _readers: JoinSet<()>,
}

/// Opens `config.connections` subscriptions; failures are counted, not fatal.
pub async fn connect(config: &SubscribeConfig) -> Subscribers {
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let gate = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let url = format!("ws://{}{}", config.server, config.path);
    let session = Arc::new((config.headers.clone(), config.messages.clone()));
    let mut handshakes = JoinSet::new();
    let mut readers = JoinSet::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = tokio::time::Instant::now();
    for i in 0..config.connections {
        if let Some(rate) = config.connect_rate_per_sec.filter(|r| *r > 0.0) {
            let due = started + std::time::Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
        let permit = gate.clone().acquire_owned().await.expect("never closed");
        let source = config.sources[(config.first_index + i) % config.sources.len()];
        let (url, server, tx) = (url.clone(), config.server, tx.clone());
        let session = Arc::clone(&session);
        handshakes.spawn(async move {
            let result = open(&url, server, source, &session.0, &session.1).await;
            drop(permit);
            let _ = tx.send(result);
        });
    }
    drop(tx);
    let (mut connected, mut failed, mut first_error) = (0, 0, None);
    while let Some(result) = rx.recv().await {
        match result {
            Ok(ws) => {
                connected += 1;
                readers.spawn(read(ws, recorder.clone()));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    while handshakes.join_next().await.is_some() {}
    Subscribers {
        recorder,
        connected,
        failed,
        first_error,
        _readers: readers,
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(
    url: &str,
    server: SocketAddr,
    source: IpAddr,
    headers: &[(String, String)],
    messages: &[String],
) -> Result<Ws, String> {
    use futures::SinkExt as _;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header {name:?}: {e}"))?;
        let value =
            http::HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        request.headers_mut().insert(name, value);
    }
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket
        .connect(server)
        .await
        .map_err(|e| format!("connect from {source}: {e}"))?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    for m in messages {
        ws.send(Message::text(m.as_str()))
            .await
            .map_err(|e| format!("sending {m:?}: {e}"))?;
    }
    Ok(ws)
}

async fn read(mut ws: Ws, recorder: Arc<Mutex<Recorder>>) {
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(text) = message {
            let now = now_unix_us();
            recorder
                .lock()
                .expect("not poisoned")
                .record(text.as_str(), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: &str =
        r#"{"id":"n1","topic":"bench","published_at_unix_us":1700000000000000,"body":{"seq":1}}"#;

    #[test]
    fn latency_is_receive_time_minus_published_at() {
        assert_eq!(published_at_us(FRAME), Some(1_700_000_000_000_000));
        let mut r = Recorder::default();
        r.record(FRAME, 1_700_000_000_001_500);
        r.record(FRAME, 1_699_999_999_000_000); // clock skew: 0, not a wrap
        r.record(r#"{"topic":"x"}"#, 1);
        assert_eq!(r.latency_us.len(), 2);
        assert_eq!(r.latency_us.min(), 0);
        assert!(r.latency_us.equivalent(r.latency_us.max(), 1500));
        assert_eq!(r.unparsed, 1);
    }

    #[test]
    fn histograms_survive_the_wire_and_merge() {
        let (mut a, mut b) = (new_histogram(), new_histogram());
        for v in 1..=1000 {
            a.record(v).unwrap();
        }
        b.record_n(1_000_000, 10).unwrap();
        let mut merged = new_histogram();
        for h in [&a, &b] {
            merged
                .add(decode_histogram(&encode_histogram(h)).unwrap())
                .unwrap();
        }
        assert_eq!(merged.len(), 1010);
        assert!(merged.equivalent(merged.value_at_quantile(0.5), 505));
        assert!(merged.equivalent(merged.max(), 1_000_000));
        assert!(decode_histogram("abc").is_err());
    }
}
