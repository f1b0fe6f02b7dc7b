//! Test harness: the real server on 127.0.0.1:0 and two clients — an
//! independent WebSocket implementation (tokio-tungstenite) and a raw one
//! that writes exact frame bytes.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parallax_common::metrics::Metrics;
use parallax_fanout::handler::{self, App, Delivery};
use parallax_fanout::hub::Hub;
use parallax_fanout::metrics::FanoutMetrics;
use parallax_fanout::outbox::Limits;
use parallax_fanout::{listener, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct ServerBuilder {
    limits: Limits,
    ping_interval: Duration,
    grace: Duration,
}

/// A server with the contract's defaults.
pub fn server() -> ServerBuilder {
    ServerBuilder {
        limits: Limits {
            capacity: 256,
            drop_limit: 64,
        },
        ping_interval: Duration::from_secs(30),
        grace: Duration::from_secs(10),
    }
}

impl ServerBuilder {
    pub fn queue(mut self, capacity: usize, drop_limit: u32) -> Self {
        self.limits = Limits {
            capacity,
            drop_limit,
        };
        self
    }

    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    pub async fn start(self) -> Server {
        let listener = listener::bind("127.0.0.1:0", false).unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new();
        let hub = Arc::new(Hub::new(self.limits, FanoutMetrics::register(&metrics)));
        let app = App::new(
            hub.clone(),
            Delivery::Local,
            Arc::new(AtomicBool::new(true)),
            self.ping_interval,
            metrics.clone(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(
            listener,
            handler::router(app),
            hub.clone(),
            async move {
                let _ = stopped.await;
            },
            self.grace,
        ));
        Server {
            addr,
            hub,
            metrics,
            stop: Some(stop),
            task,
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl Server {
    /// One HTTP request on a fresh connection: status and body.
    pub async fn http(&self, request: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
            .await
            .expect("the server answers")
            .unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }

    /// `POST /v1/notify` with `body`.
    pub async fn notify(&self, body: &str) -> (u16, String) {
        self.http(&format!(
            "POST /v1/notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await
    }

    /// Notifies `topic` with `body` and id `id`; returns the frame the
    /// subscribers must receive.
    pub async fn notify_simple(&self, id: &str, topic: &str, body: &str) -> String {
        let (status, answer) = self
            .notify(&format!(
                r#"{{"id":"{id}","topic":"{topic}","published_at_unix_us":1,"body":{body}}}"#
            ))
            .await;
        assert_eq!(
            (status, answer.as_str()),
            (202, format!(r#"{{"id":"{id}"}}"#).as_str())
        );
        format!(r#"{{"id":"{id}","topic":"{topic}","published_at_unix_us":1,"body":{body}}}"#)
    }

    /// A tungstenite client on `topics`, past its first subscription frame.
    pub async fn ws(&self, topics: &str) -> Ws {
        let (mut ws, response) = tokio_tungstenite::connect_async(format!(
            "ws://{}/v1/subscribe?topics={topics}",
            self.addr
        ))
        .await
        .unwrap();
        assert_eq!(response.status(), 101);
        let first = next_text(&mut ws).await;
        assert!(
            first.starts_with(r#"{"op":"subscribed","topics":["#),
            "{first}"
        );
        ws
    }

    /// A raw client on `topics`, past the 101 (not past any frame).
    pub async fn raw(&self, topics: &str) -> Raw {
        Raw::connect(self.addr, topics).await
    }

    pub fn metric(&self, line_prefix: &str) -> Option<String> {
        self.metrics
            .render()
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .map(|l| l[line_prefix.len()..].trim().to_owned())
    }

    /// Starts the shutdown and waits for `serve` to return.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("serve returns")
            .unwrap()
            .unwrap();
    }

    /// Waits until `check` holds (polling; for state reached asynchronously).
    pub async fn eventually(&self, what: &str, check: impl Fn(&Server) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !check(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The next text message, skipping pings; panics on anything else.
pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a message arrives")
            .expect("the stream is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame; returns its code.
pub async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("the close arrives");
        match message {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// A WebSocket client that writes exact bytes and reads raw frames.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub async fn connect(addr: SocketAddr, topics: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /v1/subscribe?topics={topics} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{head}"
        );
        Self { stream }
    }

    /// Sends one masked frame: `first` is FIN/RSV/opcode.
    pub async fn send(&mut self, first: u8, payload: &[u8]) {
        self.stream
            .write_all(&masked(first, payload))
            .await
            .unwrap();
    }

    /// Reads one server frame: (first byte, payload).
    pub async fn frame(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head).await.unwrap();
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b).await.unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b).await.unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).await.unwrap();
        (head[0], payload)
    }

    /// Reads frames until a close frame; returns its status code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let (first, payload) = tokio::time::timeout(PATIENCE, self.frame())
                .await
                .expect("a close frame arrives");
            if first == 0x88 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    }

    /// After a close: the server closes the TCP connection.
    pub async fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        tokio::time::timeout(PATIENCE, self.stream.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection")
            .unwrap();
    }
}

/// A masked client frame.
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0xa1, 0xb2, 0xc3, 0xd4];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The binary, running; killed if a test fails before stopping it.
pub struct Binary {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Binary {
    /// Starts the binary and waits for its `listening on HOST:PORT` line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut child = binary(args, env).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        // Keep draining stderr so the binary never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[fanout {}] {line}", std::process::id());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut binary = Self {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines,
        };
        let line = binary.wait_for_line("listening on ");
        let (_, rest) = line.split_once("listening on ").unwrap();
        binary.addr = rest.trim().parse().expect("HOST:PORT");
        binary
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line containing {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// A handle on this binary's address for HTTP and WebSocket clients.
    pub fn client(&self) -> Client {
        Client { addr: self.addr }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary's command with `args` and `env` (no inherited FANOUT_*).
pub fn binary(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_parallax-fanout"));
    command
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("FANOUT_") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// HTTP and WebSocket clients of a server at `addr`.
#[derive(Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    pub async fn http(&self, request: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            stream.read_to_string(&mut response),
        )
        .await
        .expect("the server answers")
        .unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.http(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ))
        .await
    }

    pub async fn notify(&self, body: &str) -> (u16, String) {
        self.http(&format!(
            "POST /v1/notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await
    }

    pub async fn ws(&self, topics: &str) -> Ws {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!(
            "ws://{}/v1/subscribe?topics={topics}",
            self.addr
        ))
        .await
        .unwrap();
        let first = next_text(&mut ws).await;
        assert!(first.starts_with(r#"{"op":"subscribed""#), "{first}");
        ws
    }
}
