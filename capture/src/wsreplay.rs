//! Replaying recorded WebSocket sessions: each recorded connection's
//! handshake opens a session to the target, the client's messages are sent
//! at their intended times (the schedule's pace, like requests), and the
//! server's frames are collected and paired with the recorded ones.
//!
//! Pairing is positional per session: the i-th data frame (text or binary)
//! the target sends is paired with the i-th data frame the server sent
//! when the capture was recorded. A pair is `same` when opcode and payload
//! are byte-equal; frames recorded but not received within `ws_linger`
//! after the session's last message are `missing`, frames beyond the
//! recorded count `extra`. Control frames (ping, pong, close) are not
//! paired. This is collection, not a verdict: servers that stamp frames
//! with times or ids differ by design, and the report keeps the first few
//! differing pairs to show which.
//!
//! The pairing is [`pair_frames`], pure and tested on its own; a session
//! task ([`run_session`]) only moves frames.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use crate::format::Request;

/// RFC 6455 opcodes used here.
pub mod opcode {
    pub const TEXT: u8 = 1;
    pub const BINARY: u8 = 2;
    pub const CLOSE: u8 = 8;
}

/// What happens to one replayed WebSocket session, in order.
#[derive(Debug)]
pub(crate) enum WsJob {
    /// Send a client message (its intended time has come).
    Send {
        intended: Instant,
        opcode: u8,
        payload: Bytes,
    },
    /// The recorded server sent this frame at this point.
    Expect { opcode: u8, payload: Bytes },
}

/// Up to this many differing pairs are kept as samples.
pub const MAX_SAMPLES: usize = 3;
/// Payloads in samples are cut to this many bytes.
pub const SAMPLE_BYTES: usize = 256;

/// One differing, missing or extra frame of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSample {
    /// The handshake's path.
    pub path: String,
    /// The data frame's position in its session (0 first).
    pub index: usize,
    /// The recorded frame (`None`: extra).
    pub expected: Option<String>,
    /// The frame received (`None`: missing).
    pub received: Option<String>,
}

/// WebSocket sessions of a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsReport {
    /// Sessions whose handshake was replayed.
    pub sessions: u64,
    /// Sessions whose handshake failed (connect, or no 101).
    pub failed: u64,
    /// Client messages sent (data and close).
    pub sent: u64,
    /// Client messages sent later than `late_after` after their time.
    pub late: u64,
    /// Data frames the recorded server sent.
    pub expected: u64,
    /// Data frames the target sent.
    pub received: u64,
    /// Pairs with the same opcode and payload.
    pub same: u64,
    /// Pairs that differ.
    pub different: u64,
    /// Recorded frames not received.
    pub missing: u64,
    /// Received frames beyond the recorded ones.
    pub extra: u64,
    /// The first differing, missing or extra frames.
    pub samples: Vec<FrameSample>,
}

impl WsReport {
    /// Adds one session's outcome.
    pub(crate) fn add(&mut self, other: WsReport) {
        self.sessions += other.sessions;
        self.failed += other.failed;
        self.sent += other.sent;
        self.late += other.late;
        self.expected += other.expected;
        self.received += other.received;
        self.same += other.same;
        self.different += other.different;
        self.missing += other.missing;
        self.extra += other.extra;
        for s in other.samples {
            if self.samples.len() < MAX_SAMPLES {
                self.samples.push(s);
            }
        }
    }
}

/// How the frames of one session pair up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pairing {
    pub same: u64,
    pub different: u64,
    pub missing: u64,
    pub extra: u64,
    /// Indices of the frames that are not `same`, first few.
    pub unequal: Vec<usize>,
}

/// Pairs recorded and received data frames (`(opcode, payload)`) by
/// position.
pub fn pair_frames(expected: &[(u8, Bytes)], received: &[(u8, Bytes)]) -> Pairing {
    let mut p = Pairing::default();
    for i in 0..expected.len().max(received.len()) {
        let equal = match (expected.get(i), received.get(i)) {
            (Some(e), Some(r)) if e == r => {
                p.same += 1;
                true
            }
            (Some(_), Some(_)) => {
                p.different += 1;
                false
            }
            (Some(_), None) => {
                p.missing += 1;
                false
            }
            (None, _) => {
                p.extra += 1;
                false
            }
        };
        if !equal && p.unequal.len() < MAX_SAMPLES {
            p.unequal.push(i);
        }
    }
    p
}

/// Headers of the recorded handshake not replayed: the WebSocket client
/// sets its own key, version and extensions (none: frames are compared
/// uncompressed), and hop-by-hop ones belong to the recorded connection.
const NOT_REPLAYED: [&str; 10] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

/// Settings of a session.
#[derive(Debug, Clone)]
pub(crate) struct SessionSettings {
    pub addr: std::net::SocketAddr,
    pub host: HeaderValue,
    pub timeout: Duration,
    pub late_after: Duration,
    pub linger: Duration,
}

fn sample_text(b: &Bytes) -> String {
    let cut = &b[..b.len().min(SAMPLE_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Replays one session: the handshake, then the jobs as they come; ends
/// when the job channel closes and the recorded frames are in (or
/// `linger` has passed since the last job).
pub(crate) async fn run_session(
    settings: SessionSettings,
    handshake: Request,
    mut jobs: mpsc::UnboundedReceiver<WsJob>,
) -> (WsReport, Result<u16, &'static str>, Duration) {
    let mut report = WsReport {
        sessions: 1,
        ..WsReport::default()
    };
    let started = Instant::now();
    let connected = tokio::time::timeout(settings.timeout, connect(&settings, &handshake)).await;
    let ws = match connected {
        Ok(Ok(ws)) => ws,
        other => {
            let e = match other {
                Ok(Err(e)) => e,
                _ => "timeout",
            };
            report.failed = 1;
            // The jobs still count: what was expected is missing.
            while let Some(job) = jobs.recv().await {
                if let WsJob::Expect { opcode, .. } = job {
                    if is_data(opcode) {
                        report.expected += 1;
                        report.missing += 1;
                    }
                }
            }
            return (report, Err(e), started.elapsed());
        }
    };
    let handshake_latency = started.elapsed();
    let (mut sink, mut stream) = ws.split();
    let mut expected: Vec<(u8, Bytes)> = Vec::new();
    let mut received: Vec<(u8, Bytes)> = Vec::new();
    let mut jobs_open = true;
    let mut server_closed = false;
    let mut client_closed = false;
    let mut last_job = Instant::now();
    loop {
        let all_in = !jobs_open && received.len() >= expected.len();
        if (all_in && (client_closed || server_closed)) || (server_closed && !jobs_open) {
            break;
        }
        if all_in && !client_closed {
            // Nothing more to send and every recorded frame is in: close.
            let _ = sink.send(Message::Close(None)).await;
            client_closed = true;
            last_job = Instant::now();
            continue;
        }
        let linger_end = last_job + settings.linger;
        tokio::select! {
            job = jobs.recv(), if jobs_open => match job {
                None => {
                    jobs_open = false;
                    last_job = Instant::now();
                }
                Some(WsJob::Expect { opcode, payload }) => {
                    if is_data(opcode) {
                        expected.push((opcode, payload));
                    }
                }
                Some(WsJob::Send { intended, opcode, payload }) => {
                    last_job = Instant::now();
                    if client_closed || server_closed {
                        continue;
                    }
                    if last_job > intended + settings.late_after {
                        report.late += 1;
                    }
                    let message = match opcode {
                        opcode::TEXT => Message::text(String::from_utf8_lossy(&payload).into_owned()),
                        opcode::BINARY => Message::binary(payload),
                        opcode::CLOSE => {
                            client_closed = true;
                            Message::Close(close_frame(&payload))
                        }
                        // Pings and pongs are the connection's business.
                        _ => continue,
                    };
                    report.sent += 1;
                    if sink.send(message).await.is_err() {
                        server_closed = true;
                    }
                }
            },
            frame = stream.next(), if !server_closed => match frame {
                Some(Ok(Message::Text(t))) => received.push((opcode::TEXT, Bytes::copy_from_slice(t.as_bytes()))),
                Some(Ok(Message::Binary(b))) => received.push((opcode::BINARY, b)),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => server_closed = true,
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep_until(linger_end), if !jobs_open || client_closed => break,
        }
    }
    let _ = sink.close().await;
    let pairing = pair_frames(&expected, &received);
    report.expected = expected.len() as u64;
    report.received = received.len() as u64;
    report.same = pairing.same;
    report.different = pairing.different;
    report.missing = pairing.missing;
    report.extra = pairing.extra;
    for i in pairing.unequal {
        report.samples.push(FrameSample {
            path: handshake.path().to_owned(),
            index: i,
            expected: expected.get(i).map(|(_, b)| sample_text(b)),
            received: received.get(i).map(|(_, b)| sample_text(b)),
        });
    }
    (report, Ok(101), handshake_latency)
}

fn is_data(opcode: u8) -> bool {
    opcode == opcode::TEXT || opcode == opcode::BINARY
}

fn close_frame(payload: &[u8]) -> Option<CloseFrame> {
    let code = u16::from_be_bytes(payload.get(..2)?.try_into().ok()?);
    Some(CloseFrame {
        code: CloseCode::from(code),
        reason: String::from_utf8_lossy(&payload[2..]).into_owned().into(),
    })
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(settings: &SessionSettings, handshake: &Request) -> Result<Ws, &'static str> {
    let uri = format!(
        "ws://{}{}",
        settings.host.to_str().unwrap_or("localhost"),
        handshake.target
    );
    let mut b = http::Request::builder()
        .method("GET")
        .uri(uri)
        .header(http::header::HOST, settings.host.clone())
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, generate_key());
    for (name, value) in &handshake.headers {
        if NOT_REPLAYED.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            b = b.header(n, v);
        }
    }
    let request = b.body(()).map_err(|_| "invalid")?;
    let stream = TcpStream::connect(settings.addr)
        .await
        .map_err(|_| "connect")?;
    let _ = stream.set_nodelay(true);
    // A small read buffer: tungstenite allocates its default 128 KiB per
    // connection up front (ENVIRONMENT.md), which thousands of replayed
    // sessions cannot afford.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, response) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|_| "handshake")?;
    if response.status().as_u16() != 101 {
        return Err("handshake");
    }
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(op: u8, s: &'static str) -> (u8, Bytes) {
        (op, Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn frames_pair_by_position() {
        let expected = [f(1, "a"), f(1, "b"), f(2, "c")];
        let p = pair_frames(&expected, &[f(1, "a"), f(1, "x"), f(1, "c"), f(1, "d")]);
        assert_eq!(
            p,
            Pairing {
                same: 1,
                different: 2,
                missing: 0,
                extra: 1,
                unequal: vec![1, 2, 3],
            }
        );
        let p = pair_frames(&expected, &[f(1, "a")]);
        assert_eq!((p.same, p.missing, p.extra), (1, 2, 0));
        assert_eq!(pair_frames(&[], &[]), Pairing::default());
    }

    #[test]
    fn a_recorded_close_keeps_its_code() {
        let c = close_frame(&[0x03, 0xe8, b'b', b'y', b'e']).unwrap();
        assert_eq!(u16::from(c.code), 1000);
        assert_eq!(c.reason.as_str(), "bye");
        assert!(close_frame(&[]).is_none());
    }
}
